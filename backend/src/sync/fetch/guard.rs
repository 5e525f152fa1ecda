//! Which addresses a pull may reach. A merchant chooses the URL, so without this check the
//! backend could be made to fetch from its own network (an admin port on loopback, a database
//! on a private address, the cloud metadata service at 169.254.169.254).
//!
//! [`resolve`] resolves the host once and refuses it if any address is not public; the caller
//! then connects to exactly those addresses, so a second lookup (DNS rebinding) cannot swap in
//! another one.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::FetchError;

/// The addresses of `host:port`, all public unless `allow_private`.
pub(crate) async fn resolve(
    host: &str,
    port: u16,
    allow_private: bool,
) -> Result<Vec<SocketAddr>, FetchError> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|_| FetchError::Unreachable(format!("the host {host} could not be resolved")))?
        .collect();
    if addresses.is_empty() {
        return Err(FetchError::Unreachable(format!(
            "the host {host} has no address"
        )));
    }
    if !allow_private
        && let Some(internal) = addresses.iter().find(|address| !is_public(address.ip()))
    {
        return Err(FetchError::Refused(format!(
            "the host {host} resolves to {}, a loopback, private or link-local address, \
             which sync sources may not use",
            internal.ip()
        )));
    }
    Ok(addresses)
}

/// Whether `ip` is a public unicast address.
pub(crate) fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => is_public_v4(ip),
        IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
            Some(mapped) => is_public_v4(mapped),
            None => is_public_v6(ip),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        // Carrier-grade NAT, 100.64.0.0/10.
        || (a == 100 && (64..128).contains(&b))
        // IETF protocol assignments, 192.0.0.0/24.
        || (a == 192 && b == 0 && c == 0)
        // Benchmarking, 198.18.0.0/15.
        || (a == 198 && (b == 18 || b == 19))
        // Reserved, 240.0.0.0/4.
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        // Unique local, fc00::/7.
        || (first & 0xfe00) == 0xfc00
        // Link-local, fe80::/10.
        || (first & 0xffc0) == 0xfe80
        // Documentation, 2001:db8::/32.
        || (first == 0x2001 && ip.segments()[1] == 0x0db8)
        // NAT64 (64:ff9b::/96) embeds an IPv4 address: judge that one.
        || (first == 0x0064 && ip.segments()[1] == 0xff9b && {
            let [.., a, b, c, d] = ip.octets();
            !is_public_v4(Ipv4Addr::new(a, b, c, d))
        }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_not_public() {
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "64:ff9b::a00:1",
        ] {
            assert!(!is_public(internal.parse().unwrap()), "{internal}");
        }
        for public in ["93.184.216.34", "8.8.8.8", "2606:4700::6810:84e5"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[tokio::test]
    async fn loopback_is_refused_unless_allowed() {
        let refused = resolve("127.0.0.1", 80, false).await.unwrap_err();
        assert!(matches!(refused, FetchError::Refused(_)), "{refused:?}");
        assert!(refused.to_string().contains("127.0.0.1"));
        let allowed = resolve("localhost", 8080, true).await.unwrap();
        assert!(
            allowed
                .iter()
                .all(|a| a.ip().is_loopback() && a.port() == 8080)
        );
    }
}
