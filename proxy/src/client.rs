//! Who the client is: the connection's peer, or — when the peer is one of our own load
//! balancers (`edge.trusted_proxies`) — the address they report in `X-Forwarded-For`.
//!
//! Each proxy appends the address it received the connection from, so the list reads
//! `client, proxy1, proxy2` and only its right end was written by someone we trust. The
//! client is the rightmost entry that is not a trusted proxy: anything left of it may be
//! forged by the client itself.

use std::net::{IpAddr, SocketAddr};

use http::HeaderValue;
use ipnet::IpNet;
use mindshop_config::canonical_ip;

/// `edge.trusted_proxies`.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    pub fn new(nets: &[IpNet]) -> Self {
        Self(nets.to_vec())
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical_ip(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client's address for a connection from `peer` that sent `forwarded_for` (every
    /// `X-Forwarded-For` field, in order).
    pub fn client<'v>(
        &self,
        peer: IpAddr,
        forwarded_for: impl DoubleEndedIterator<Item = &'v HeaderValue>,
    ) -> IpAddr {
        let peer = canonical_ip(peer);
        if !self.contains(peer) {
            return peer;
        }
        let mut client = peer;
        for value in forwarded_for.rev() {
            let Ok(text) = value.to_str() else {
                return client;
            };
            for entry in text.rsplit(',') {
                let Some(hop) = parse_hop(entry) else {
                    // A trusted proxy wrote something that is no address: believe no more.
                    return client;
                };
                client = hop;
                if !self.contains(hop) {
                    return hop;
                }
            }
        }
        client
    }
}

/// One `X-Forwarded-For` entry: an address, perhaps with a port (`203.0.113.7:41234`,
/// `[2001:db8::1]:443`).
fn parse_hop(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .map(canonical_ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trusted(nets: &[&str]) -> TrustedProxies {
        TrustedProxies(nets.iter().map(|n| n.parse().unwrap()).collect())
    }

    fn client(proxies: &TrustedProxies, peer: &str, headers: &[&str]) -> String {
        let values: Vec<HeaderValue> = headers
            .iter()
            .map(|h| HeaderValue::from_str(h).unwrap())
            .collect();
        proxies
            .client(peer.parse().unwrap(), values.iter())
            .to_string()
    }

    #[test]
    fn without_trusted_proxies_the_header_is_ignored() {
        let none = trusted(&[]);
        assert_eq!(
            client(&none, "198.51.100.9", &["203.0.113.7"]),
            "198.51.100.9"
        );
    }

    #[test]
    fn an_untrusted_peer_cannot_name_a_client() {
        let lb = trusted(&["10.0.0.0/8"]);
        assert_eq!(client(&lb, "198.51.100.9", &["10.1.1.1"]), "198.51.100.9");
    }

    #[test]
    fn the_rightmost_untrusted_entry_is_the_client() {
        let lb = trusted(&["10.0.0.0/8"]);
        // The client forged 1.1.1.1; our balancers appended the real address and their own.
        assert_eq!(
            client(&lb, "10.0.0.2", &["1.1.1.1, 203.0.113.7", "10.0.0.1"]),
            "203.0.113.7"
        );
        assert_eq!(
            client(&lb, "10.0.0.2", &["[2001:db8::7]:443"]),
            "2001:db8::7"
        );
        assert_eq!(
            client(&lb, "::ffff:10.0.0.2", &["203.0.113.7:5000"]),
            "203.0.113.7"
        );
    }

    #[test]
    fn garbage_or_an_all_trusted_chain_stops_at_the_last_trusted_hop() {
        let lb = trusted(&["10.0.0.0/8"]);
        assert_eq!(client(&lb, "10.0.0.2", &["unknown, 10.0.0.1"]), "10.0.0.1");
        assert_eq!(client(&lb, "10.0.0.2", &["10.0.0.5"]), "10.0.0.5");
        assert_eq!(client(&lb, "10.0.0.2", &[]), "10.0.0.2");
    }
}
