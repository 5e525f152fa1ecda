//! `[edge]`: the Pingora edge — where it listens (plain HTTP, HTTPS), how it talks to the
//! backends, whom it believes about a client's address, and what it allows one client.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::addr;
use crate::sections::loopback;

/// The Pingora edge: where it listens and how it talks to the backends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EdgeConfig {
    /// Address the public HTTP listener binds to; clients and widgets connect here. It keeps
    /// answering when `tls_listen` is set, for a load balancer that terminates TLS itself.
    #[serde(with = "addr::one")]
    pub listen: SocketAddr,
    /// Address of the HTTPS listener (HTTP/2 and HTTP/1.1 by ALPN); `""` for none. Needs at
    /// least one `[[edge.tls_certificates]]`.
    #[serde(with = "addr::optional")]
    pub tls_listen: Option<SocketAddr>,
    /// Certificates of the HTTPS listener, chosen by the SNI name the client sends; the first
    /// serves clients that send none or a name no entry lists.
    pub tls_certificates: Vec<TlsCertificate>,
    /// Answer plain-HTTP requests with a 308 to the same URL on `https://` (not `/health` and
    /// `/ready`, which probes call on the plain listener).
    pub redirect_http_to_https: bool,
    /// `Strict-Transport-Security: max-age=…` on every HTTPS answer; 0 sends none.
    pub hsts_max_age_secs: u64,
    /// HTTP/2: streams one connection may have open at once.
    pub h2_max_concurrent_streams: u32,
    /// HTTP/2: largest header list (decoded names and values plus 32 bytes per field), bytes.
    pub h2_max_header_list_bytes: u32,
    /// HTTP/2: streams a client may open and reset before they are accepted (the "rapid reset"
    /// attack, CVE-2023-44487) before the connection is closed.
    pub h2_max_pending_reset_streams: usize,
    /// HTTP/2: streams the edge may reset for a client's protocol errors before it closes the
    /// connection (CVE-2024-2653 and kin).
    pub h2_max_local_error_resets: usize,
    /// HTTP/2: a connection with no open stream for this long is closed, seconds.
    pub h2_idle_timeout_secs: u64,
    /// Address ranges of our own load balancers. Only a connection from one of them may name
    /// the client in `X-Forwarded-For`; from anyone else the header is ignored.
    #[serde(with = "addr::nets")]
    pub trusted_proxies: Vec<IpNet>,
    /// Longest a client may take to send a whole request head (request line and headers),
    /// however slowly it trickles, in milliseconds; then the connection is closed.
    pub header_read_timeout_ms: u64,
    /// An idle keep-alive connection is closed after this many seconds without a new request.
    pub keepalive_timeout_secs: u64,
    /// Longest wait for the next piece of a request body, in milliseconds; then 408.
    pub body_read_timeout_ms: u64,
    /// Slowest accepted average rate of a request body after its first second, bytes per
    /// second; a slower body is answered 408. 0 disables the check.
    pub body_min_bytes_per_sec: u64,
    /// Open connections one client address may hold (plain and HTTPS together); more are
    /// closed at once. Trusted proxies are exempt.
    pub max_connections_per_ip: usize,
    /// Open client connections in total; more are closed at once.
    pub max_connections: usize,
    /// Address of the Prometheus `/metrics` listener, kept apart so it is never public by accident.
    #[serde(with = "addr::one")]
    pub metrics_listen: SocketAddr,
    /// Upstream backends the edge forwards to; empty means "the local `backend.listen`"
    /// (see [`crate::Config::edge_backends`]).
    #[serde(with = "addr::many")]
    pub backends: Vec<SocketAddr>,
    /// Largest request body the edge accepts before answering 413, in bytes.
    pub max_body_bytes: u64,
    /// Worker threads of the edge's Pingora service.
    pub threads: usize,
    /// How long SIGTERM lets in-flight requests finish before the edge exits, in seconds.
    pub shutdown_grace_secs: u64,
    /// Where `serve` and `edge` write their process id (default `<data.dir>/mindshop.pid`);
    /// `mindshop reload` signals that process, `--upgrade` takes over from it.
    pub pid_file: Option<PathBuf>,
    /// The Unix socket a process started with `--upgrade` receives the listening sockets on
    /// (default `<data.dir>/upgrade.sock`); at most 107 bytes, as Unix socket paths are.
    pub upgrade_socket: Option<PathBuf>,
    /// Time allowed to open a connection to a backend before answering 502, in milliseconds.
    pub upstream_connect_timeout_ms: u64,
    /// Time allowed between reads from a backend before answering 504, in milliseconds;
    /// generous because chat answers stream slowly.
    pub upstream_read_timeout_ms: u64,
}

/// One certificate of the HTTPS listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsCertificate {
    /// PEM: the certificate first, then its intermediates.
    pub cert_file: PathBuf,
    /// PEM: its private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// SNI names it serves: `shop.example.com`, or `*.example.com` for one label under it.
    pub hosts: Vec<String>,
}

impl Default for EdgeConfig {
    fn default() -> Self {
        Self {
            listen: loopback(8080),
            tls_listen: None,
            tls_certificates: Vec::new(),
            redirect_http_to_https: false,
            hsts_max_age_secs: 0,
            h2_max_concurrent_streams: 100,
            h2_max_header_list_bytes: 64 * 1024,
            h2_max_pending_reset_streams: 20,
            h2_max_local_error_resets: 1024,
            h2_idle_timeout_secs: 120,
            trusted_proxies: Vec::new(),
            header_read_timeout_ms: 10_000,
            keepalive_timeout_secs: 60,
            body_read_timeout_ms: 30_000,
            body_min_bytes_per_sec: 1024,
            max_connections_per_ip: 256,
            max_connections: 10_000,
            metrics_listen: loopback(9464),
            backends: Vec::new(),
            max_body_bytes: 16 * 1024 * 1024,
            threads: 2,
            shutdown_grace_secs: 5,
            pid_file: None,
            upgrade_socket: None,
            upstream_connect_timeout_ms: 2_000,
            upstream_read_timeout_ms: 60_000,
        }
    }
}

impl EdgeConfig {
    /// Whether a connection from `peer` comes from one of our own load balancers.
    pub fn is_trusted_proxy(&self, peer: IpAddr) -> bool {
        let peer = canonical_ip(peer);
        self.trusted_proxies.iter().any(|net| net.contains(&peer))
    }
}

/// `peer` with an IPv4-mapped IPv6 address (`::ffff:10.0.0.1`, as a dual-stack socket reports
/// IPv4 clients) as the IPv4 address it is, so one client has one address and IPv4 ranges match.
pub fn canonical_ip(peer: IpAddr) -> IpAddr {
    match peer {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(peer, IpAddr::V4),
        v4 => v4,
    }
}
