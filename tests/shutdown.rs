//! SIGTERM: in-flight requests finish within `edge.shutdown_grace_secs`, and the process exits 0.

mod support;

use std::time::Duration;

use support::upstream::RecordingUpstream;
use support::{Launch, Reply, SECRET, client};

#[tokio::test]
async fn sigterm_lets_an_in_flight_request_finish() {
    // A backend that takes a second to answer.
    let mut upstream = RecordingUpstream::with_delay(Duration::from_secs(1)).await;
    let mut edge = Launch::edge(SECRET, &[upstream.addr])
        .env("MINDSHOP_EDGE_SHUTDOWN_GRACE_SECS", "2")
        .start()
        .await;

    let in_flight = tokio::spawn(
        client()
            .get(edge.url("/ready"))
            .header("X-Request-ID", "drain-1")
            .send(),
    );
    // The request has reached the backend: it is in flight at the edge.
    let seen = upstream.next_request().await;
    assert_eq!(seen.one("x-request-id"), Some("drain-1"));
    edge.send_sigterm().await;

    let response = in_flight
        .await
        .expect("the request task")
        .expect("the in-flight request completes despite SIGTERM");
    let reply = Reply::read(response).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.request_id(), "drain-1");

    let status = edge.wait_exit().await;
    assert!(status.success(), "the edge exited with {status}");
}

#[tokio::test]
async fn serve_exits_0_on_sigterm() {
    let mut server = Launch::serve().start().await;
    let status = server.terminate().await;
    assert!(status.success(), "serve exited with {status}");
}

#[tokio::test]
async fn backend_exits_0_on_sigterm() {
    let mut backend = Launch::backend(SECRET).start().await;
    let status = backend.terminate().await;
    assert!(status.success(), "backend exited with {status}");
}
