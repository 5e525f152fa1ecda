//! What one client may hold: open connections per address and in total
//! (`edge.max_connections_per_ip`, `edge.max_connections`), and the time a request head may
//! take however slowly it trickles (`edge.header_read_timeout_ms`).
//!
//! Pingora's own timeouts apply to each read, so a client that sends one header byte every
//! few seconds keeps a connection (and a file handle) for as long as it likes; with enough
//! such connections the process runs out of handles. Here:
//! - [`Guarded`] wraps the proxy application: a plain connection takes a [`Slot`] when it
//!   arrives or is closed at once; every connection's stream is wrapped in [`Watched`], whose
//!   reads fail once the head's deadline passes.
//! - [`CountBeforeHandshake`] takes the slot of an HTTPS connection before its TLS handshake,
//!   so a client cannot hold handshakes open past the caps either.
//! - [`HeadClock`] is the deadline a connection is under; the edge's hooks stop it when a head
//!   has arrived and start it again when an answer is done (see `edge.rs`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::listeners::PreTlsProcess;
use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::tls::{SslDigest, TlsRef};
use pingora::protocols::{
    ALPN, GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl,
    Stream, TimingDigest, UniqueID, UniqueIDType,
};
use pingora::server::ShutdownWatch;
use pingora::upstreams::peer::{Tracer, Tracing};
use pingora::{Error, ErrorType};
use prometheus::{IntCounterVec, IntGauge, register_int_counter_vec, register_int_gauge};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use crate::client::TrustedProxies;

/// Connection metrics, all present (at 0) from start-up.
struct ConnectionMetrics {
    /// `mindshop_edge_open_connections`
    open: IntGauge,
    /// `mindshop_edge_connections_refused_total{reason="per_ip"|"total"}`
    refused: IntCounterVec,
    /// `mindshop_edge_client_timeouts_total{phase="header"|"body"}`
    timeouts: IntCounterVec,
}

static METRICS: LazyLock<ConnectionMetrics> = LazyLock::new(|| {
    let metrics = ConnectionMetrics {
        open: register_int_gauge!(
            "mindshop_edge_open_connections",
            "Client connections the edge holds open, plain and HTTPS."
        )
        .expect("metric names are valid and registered once"),
        refused: register_int_counter_vec!(
            "mindshop_edge_connections_refused_total",
            "Client connections closed on arrival because a cap was reached, by cap.",
            &["reason"]
        )
        .expect("metric names are valid and registered once"),
        timeouts: register_int_counter_vec!(
            "mindshop_edge_client_timeouts_total",
            "Connections or requests ended because the client sent too slowly, by phase.",
            &["phase"]
        )
        .expect("metric names are valid and registered once"),
    };
    for reason in [Refusal::PerIp, Refusal::Total] {
        metrics.refused.with_label_values(&[reason.label()]);
    }
    for phase in ["header", "body"] {
        metrics.timeouts.with_label_values(&[phase]);
    }
    metrics
});

/// A request body arrived too slowly: counted here, answered 408 by the edge.
pub fn count_body_timeout() {
    METRICS.timeouts.with_label_values(&["body"]).inc();
}

/// Which cap refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    PerIp,
    Total,
}

impl Refusal {
    fn label(self) -> &'static str {
        match self {
            Self::PerIp => "per_ip",
            Self::Total => "total",
        }
    }
}

/// The caps and the connections open now.
#[derive(Debug)]
pub struct Limits {
    per_ip: usize,
    total: usize,
    trusted: TrustedProxies,
    /// Open connections: by client address, and the sum.
    open: Mutex<(HashMap<IpAddr, usize>, usize)>,
    header_timeout: Duration,
}

impl Limits {
    pub fn new(edge: &mindshop_config::EdgeConfig, trusted: TrustedProxies) -> Arc<Self> {
        LazyLock::force(&METRICS);
        Arc::new(Self {
            per_ip: edge.max_connections_per_ip,
            total: edge.max_connections,
            trusted,
            open: Mutex::new((HashMap::new(), 0)),
            header_timeout: Duration::from_millis(edge.header_read_timeout_ms),
        })
    }

    /// A slot for a connection from `peer`, or which cap refuses it. A trusted proxy carries
    /// many clients, so only the total applies to it.
    pub fn acquire(self: &Arc<Self>, peer: Option<IpAddr>) -> Result<Slot, Refusal> {
        let peer = peer.map(mindshop_config::canonical_ip);
        let per_address = peer.filter(|ip| !self.trusted.contains(*ip));
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let (by_address, total) = &mut *open;
        if *total >= self.total {
            METRICS.refused.with_label_values(&["total"]).inc();
            return Err(Refusal::Total);
        }
        if let Some(ip) = per_address {
            let count = by_address.entry(ip).or_insert(0);
            if *count >= self.per_ip {
                METRICS.refused.with_label_values(&["per_ip"]).inc();
                return Err(Refusal::PerIp);
            }
            *count += 1;
        }
        *total += 1;
        METRICS.open.inc();
        Ok(Slot {
            limits: self.clone(),
            address: per_address,
        })
    }

    fn release(&self, address: Option<IpAddr>) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let (by_address, total) = &mut *open;
        if let Some(ip) = address
            && let Some(count) = by_address.get_mut(&ip)
        {
            *count -= 1;
            if *count == 0 {
                by_address.remove(&ip);
            }
        }
        *total -= 1;
        METRICS.open.dec();
    }
}

/// One open connection's place under the caps, given back when dropped.
#[derive(Debug)]
pub struct Slot {
    limits: Arc<Limits>,
    address: Option<IpAddr>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.limits.release(self.address);
    }
}

fn peer_ip(digest: Option<Arc<SocketDigest>>) -> Option<IpAddr> {
    digest?.peer_addr()?.as_inet().map(|a| a.ip())
}

/// The deadline a connection's next request head must arrive by, shared by its [`Watched`]
/// stream and the edge's hooks.
#[derive(Debug)]
pub struct HeadClock {
    /// Milliseconds after `epoch` by which the head must be in; 0 while none is awaited.
    due: AtomicU64,
    epoch: Instant,
    header_timeout: Duration,
}

impl HeadClock {
    fn new(header_timeout: Duration) -> Self {
        let clock = Self {
            due: AtomicU64::new(0),
            epoch: Instant::now(),
            header_timeout,
        };
        clock.await_head(Duration::ZERO);
        clock
    }

    /// A head arrived: the body and the answer are under their own timeouts.
    pub fn head_received(&self) {
        self.due.store(0, Ordering::Relaxed);
    }

    /// The answer is sent: the next head must arrive within `idle` (the keep-alive timeout)
    /// plus `edge.header_read_timeout_ms`.
    pub fn await_head(&self, idle: Duration) {
        let due = self.epoch.elapsed() + idle + self.header_timeout;
        self.due.store(
            u64::try_from(due.as_millis()).unwrap_or(u64::MAX).max(1),
            Ordering::Relaxed,
        );
    }

    fn due(&self) -> Option<Instant> {
        match self.due.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(self.epoch + Duration::from_millis(ms)),
        }
    }
}

/// A client stream whose reads fail once its [`HeadClock`] runs out, holding its [`Slot`].
#[derive(Debug)]
pub struct Watched {
    inner: Stream,
    clock: Arc<HeadClock>,
    /// Wakes a read that waits past the deadline; re-armed when the deadline moves.
    timer: Pin<Box<Sleep>>,
    armed_for: Option<Instant>,
    _slot: Option<Slot>,
}

impl Watched {
    fn new(inner: Stream, header_timeout: Duration, slot: Option<Slot>) -> Self {
        Self {
            inner,
            clock: Arc::new(HeadClock::new(header_timeout)),
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
            armed_for: None,
            _slot: slot,
        }
    }

    /// The clock of the connection `stream` is, when it is one of ours.
    pub fn clock_of(stream: &Stream) -> Option<&Arc<HeadClock>> {
        stream
            .as_any()
            .downcast_ref::<Self>()
            .map(|watched| &watched.clock)
    }

    /// `Err(TimedOut)` once the head is overdue, else arms the timer for the deadline.
    fn check_deadline(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let Some(due) = self.clock.due() else {
            return Poll::Pending;
        };
        if self.armed_for != Some(due) {
            self.timer.as_mut().reset(due.into());
            self.armed_for = Some(due);
        }
        match self.timer.as_mut().poll(cx) {
            Poll::Ready(()) => {
                METRICS.timeouts.with_label_values(&["header"]).inc();
                Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the request head was not received within edge.header_read_timeout_ms",
                )))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(done) => {
                // Bytes that came in time are delivered; an overdue head fails the next read.
                if this.clock.due().is_some_and(|due| Instant::now() >= due) && done.is_ok() {
                    METRICS.timeouts.with_label_values(&["header"]).inc();
                    return Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "the request head was not received within edge.header_read_timeout_ms",
                    )));
                }
                Poll::Ready(done)
            }
            Poll::Pending => this.check_deadline(cx),
        }
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[async_trait]
impl Shutdown for Watched {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await;
    }
}

impl UniqueID for Watched {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for Watched {
    fn get_ssl(&self) -> Option<&TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for Watched {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for Watched {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }

    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest);
    }
}

impl GetSocketDigest for Watched {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }

    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest);
    }
}

#[async_trait]
impl Peek for Watched {
    async fn try_peek(&mut self, buf: &mut [u8]) -> std::io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}

/// The proxy application behind the caps: a plain connection over them is closed on arrival,
/// and every connection is [`Watched`].
pub struct Guarded<A> {
    pub inner: Arc<A>,
    pub limits: Arc<Limits>,
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for Guarded<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        // An HTTPS connection took its slot before its handshake (`CountBeforeHandshake`)
        // and holds it in its TCP stream; a plain one takes it now.
        let slot = if stream.get_ssl_digest().is_some() || Watched::clock_of(&stream).is_some() {
            None
        } else {
            match self.limits.acquire(peer_ip(stream.get_socket_digest())) {
                Ok(slot) => Some(slot),
                Err(_) => return None,
            }
        };
        let watched: Stream = if Watched::clock_of(&stream).is_some() {
            stream
        } else {
            let watched = Watched::new(stream, self.limits.header_timeout, slot);
            // HTTP/2 frames its heads itself, bounded by `edge.h2_*`; the deadline is HTTP/1's.
            if watched.selected_alpn_proto() == Some(ALPN::H2) {
                watched.clock.head_received();
            }
            Box::new(watched)
        };
        self.inner.process_new(watched, shutdown).await
    }

    async fn cleanup(&self) {
        self.inner.cleanup().await;
    }
}

/// Takes an HTTPS connection's slot before its TLS handshake, or refuses it there.
pub struct CountBeforeHandshake(pub Arc<Limits>);

#[async_trait]
impl PreTlsProcess for CountBeforeHandshake {
    async fn process(&self, stream: &mut L4Stream) -> pingora::Result<()> {
        match self.0.acquire(peer_ip(stream.get_socket_digest())) {
            Ok(slot) => {
                stream.tracer = Some(Tracer(Box::new(SlotHolder(Mutex::new(Some(slot))))));
                Ok(())
            }
            Err(refusal) => Error::e_explain(
                ErrorType::AcceptError,
                format!(
                    "connection refused: edge.max_connections{} reached",
                    match refusal {
                        Refusal::PerIp => "_per_ip",
                        Refusal::Total => "",
                    }
                ),
            ),
        }
    }
}

/// Keeps a [`Slot`] for as long as the TCP stream that carries it (Pingora's tracer slot is
/// the one place a stream holds a value of ours).
#[derive(Debug)]
struct SlotHolder(Mutex<Option<Slot>>);

impl Tracing for SlotHolder {
    fn on_connected(&self) {}

    fn on_disconnected(&self) {
        // The stream is going: give the place back now rather than when it is freed.
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take();
    }

    fn boxed_clone(&self) -> Box<dyn Tracing> {
        // A copy holds no slot: the connection counts once.
        Box::new(SlotHolder(Mutex::new(None)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_ip: usize, total: usize, trusted: &[&str]) -> Arc<Limits> {
        let edge = mindshop_config::EdgeConfig {
            max_connections_per_ip: per_ip,
            max_connections: total,
            ..Default::default()
        };
        let nets: Vec<ipnet::IpNet> = trusted.iter().map(|n| n.parse().unwrap()).collect();
        Limits::new(&edge, TrustedProxies::new(&nets))
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn one_address_gets_its_share_and_a_slot_comes_back_when_dropped() {
        let limits = limits(2, 10, &[]);
        let first = limits.acquire(ip("192.0.2.1")).unwrap();
        let _second = limits.acquire(ip("192.0.2.1")).unwrap();
        assert_eq!(limits.acquire(ip("192.0.2.1")).unwrap_err(), Refusal::PerIp);
        // IPv4-mapped IPv6 is the same client.
        assert_eq!(
            limits.acquire(ip("::ffff:192.0.2.1")).unwrap_err(),
            Refusal::PerIp
        );
        let _other = limits.acquire(ip("192.0.2.2")).unwrap();
        drop(first);
        assert!(limits.acquire(ip("192.0.2.1")).is_ok());
    }

    #[test]
    fn the_total_caps_everyone_and_trusted_proxies_only_by_it() {
        let limits = limits(1, 3, &["10.0.0.0/8"]);
        let a = limits.acquire(ip("10.0.0.1")).unwrap();
        let b = limits.acquire(ip("10.0.0.1")).unwrap();
        let c = limits.acquire(ip("192.0.2.9")).unwrap();
        assert_eq!(
            limits.acquire(ip("192.0.2.10")).unwrap_err(),
            Refusal::Total
        );
        drop((a, b, c));
        assert_eq!(limits.open.lock().unwrap().1, 0);
        assert!(limits.open.lock().unwrap().0.is_empty());
    }
}
