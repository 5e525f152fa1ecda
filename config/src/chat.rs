//! `[chat]`: how the assistant answers: from retrieval alone (the default), or through an
//! OpenAI-compatible chat-completions endpoint given what retrieval found.

use serde::{Deserialize, Serialize};

use crate::Secret;

/// The assistant's answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChatSettings {
    /// Base URL of an OpenAI-compatible API (`https://api.openai.com/v1`, a vLLM or Ollama
    /// server); `{llm_base_url}/chat/completions` is called. Unset: grounded answers only.
    pub llm_base_url: Option<String>,
    /// The model asked for.
    pub llm_model: String,
    /// Sent as `Authorization: Bearer …` when set.
    pub llm_api_key: Option<Secret>,
    /// Longest the model may take to start answering and, after that, between two chunks, in
    /// seconds; past it the grounded answer is given instead.
    pub llm_timeout_secs: u64,
    /// Longest a whole model answer may take, from asking the model to its last chunk, in
    /// seconds (at least `llm_timeout_secs`). Past it the model call is stopped: a streamed
    /// answer is stored as far as it got, marked cut short, and its stream ends with an
    /// `error` event; a JSON answer is the grounded one instead.
    pub llm_total_timeout_secs: u64,
    /// Longest answer asked of the model, in tokens.
    pub llm_max_tokens: u32,
    /// How often each backend indexes products written since the last pass, in milliseconds
    /// (imports wake it at once; this bounds the wait when they do not).
    pub index_interval_ms: u64,
}

impl Default for ChatSettings {
    fn default() -> Self {
        Self {
            llm_base_url: None,
            llm_model: "gpt-4o-mini".to_owned(),
            llm_api_key: None,
            llm_timeout_secs: 10,
            llm_total_timeout_secs: 120,
            llm_max_tokens: 400,
            index_interval_ms: 500,
        }
    }
}
