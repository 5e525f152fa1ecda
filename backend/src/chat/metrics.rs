//! Chat metrics in the default Prometheus registry (served on the edge's `/metrics` under
//! `mindshop serve`, on `backend.metrics_listen` for a backend run apart).

use std::sync::LazyLock;
use std::time::Duration;

use prometheus::{
    Histogram, HistogramVec, IntCounterVec, register_histogram, register_histogram_vec,
    register_int_counter_vec,
};

struct ChatMetrics {
    requests: IntCounterVec,
    duration: HistogramVec,
    retrieval: Histogram,
    llm_fallbacks: IntCounterVec,
}

/// Latency buckets from 1 ms (retrieval) to 30 s (a slow model).
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

static METRICS: LazyLock<ChatMetrics> = LazyLock::new(|| ChatMetrics {
    requests: register_int_counter_vec!(
        "mindshop_chat_requests_total",
        "Chat questions by outcome (completed, failed; client_closed, timed_out: the model was \
         stopped and its answer stored cut short) and how the answer was written (grounded, llm, \
         fallback: the model failed and the grounded answer was given; none when failed).",
        &["outcome", "answer"]
    )
    .expect("metric names are valid and registered once"),
    duration: register_histogram_vec!(
        "mindshop_chat_duration_seconds",
        "Time to answer a chat question in full, by response mode (json, stream).",
        &["mode"],
        BUCKETS.to_vec()
    )
    .expect("metric names are valid and registered once"),
    retrieval: register_histogram!(
        "mindshop_chat_retrieval_seconds",
        "Time to search the catalog and documents for one question.",
        BUCKETS.to_vec()
    )
    .expect("metric names are valid and registered once"),
    llm_fallbacks: register_int_counter_vec!(
        "mindshop_chat_llm_fallbacks_total",
        "Answers where the language model failed and the grounded answer was given, by reason \
         (LLM_TIMEOUT, LLM_TOTAL_TIMEOUT, LLM_STATUS, LLM_UNREACHABLE, LLM_MALFORMED).",
        &["reason"]
    )
    .expect("metric names are valid and registered once"),
});

pub(crate) fn retrieval(elapsed: Duration) {
    METRICS.retrieval.observe(elapsed.as_secs_f64());
}

pub(crate) fn llm_fallback(reason: &str) {
    METRICS.llm_fallbacks.with_label_values(&[reason]).inc();
}

/// A question answered (`answer` = grounded, llm, fallback), answered cut short (`outcome` =
/// a `CutShort` label), or failed (`answer` = none).
pub(crate) fn finished(outcome: &str, answer: &str, mode: &str, elapsed: Duration) {
    METRICS.requests.with_label_values(&[outcome, answer]).inc();
    METRICS
        .duration
        .with_label_values(&[mode])
        .observe(elapsed.as_secs_f64());
}
