//! Chat: answers to shoppers' questions from the merchant's own catalog and documents.
//!
//! - `understand`: the question's search words and constraints (price range, in stock).
//! - `answer`: the grounded answer, composed only from what retrieval found.
//! - `llm`: the optional language model (an OpenAI-compatible endpoint), streamed.
//! - `metrics`: chat requests, latency, retrieval time, model fallbacks.

pub(crate) mod answer;
pub(crate) mod llm;
pub(crate) mod metrics;
pub mod understand;
