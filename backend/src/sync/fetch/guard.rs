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

/// Whether `ip` is a public unicast address. An IPv6 address that stands for an IPv4 one
/// ([`carried_v4`]) is judged as that IPv4 address, since that is where it leads.
pub(crate) fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => is_public_v4(ip),
        IpAddr::V6(ip) => match carried_v4(ip) {
            Some(carried) => is_public_v4(carried),
            None => is_public_v6(ip),
        },
    }
}

/// The IPv4 address that `ip` carries, in the forms a host or the network turns back into
/// IPv4: the host's own stack (mapped, compatible, translated), a 6to4 relay, a NAT64
/// gateway. Without this, `::127.0.0.1` or `2002:a9fe:a9fe::` would pass as public IPv6.
fn carried_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let [.., a, b, c, d] = ip.octets();
    let low = Ipv4Addr::new(a, b, c, d);
    match ip.segments() {
        // IPv4-mapped `::ffff:a.b.c.d`; IPv4-compatible `::a.b.c.d` (deprecated, RFC 4291),
        // which also covers `::` and `::1` (as 0.0.0.0 and 0.0.0.1: not public either).
        [0, 0, 0, 0, 0, 0xffff, ..] | [0, 0, 0, 0, 0, 0, ..] => Some(low),
        // IPv4-translated `::ffff:0:a.b.c.d` (RFC 2765).
        [0, 0, 0, 0, 0xffff, 0, ..] => Some(low),
        // NAT64 well-known prefix `64:ff9b::/96` (RFC 6052).
        [0x0064, 0xff9b, 0, 0, 0, 0, ..] => Some(low),
        // 6to4 `2002:AABB:CCDD::/48` (RFC 3056): the IPv4 address follows the prefix.
        [0x2002, high, low_half, ..] => Some(Ipv4Addr::from(
            (u32::from(high) << 16) | u32::from(low_half),
        )),
        _ => None,
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
    let [first, second, ..] = ip.segments();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        // Unique local, fc00::/7.
        || (first & 0xfe00) == 0xfc00
        // Link-local, fe80::/10.
        || (first & 0xffc0) == 0xfe80
        // Site-local (deprecated, still private), fec0::/10.
        || (first & 0xffc0) == 0xfec0
        // Documentation, 2001:db8::/32.
        || (first == 0x2001 && second == 0x0db8)
        // The rest of 64:ff9b::/32 after the well-known /96 ([`carried_v4`]): the local-use
        // NAT64 prefix 64:ff9b:1::/48 (RFC 8215) translates into the operator's own network,
        // and the remainder is unassigned.
        || (first == 0x0064 && second == 0xff9b))
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

    #[test]
    fn ipv6_forms_of_an_ipv4_address_are_judged_as_that_address() {
        // (form, carrying an internal IPv4 address, carrying a public one)
        let forms = [
            ("mapped", "::ffff:127.0.0.1", "::ffff:8.8.8.8"),
            ("mapped", "::ffff:169.254.169.254", "::ffff:93.184.216.34"),
            ("compatible", "::127.0.0.1", "::8.8.8.8"),
            ("compatible", "::10.0.0.1", "::93.184.216.34"),
            ("compatible", "::169.254.169.254", "::1.1.1.1"),
            ("translated", "::ffff:0:192.168.1.1", "::ffff:0:8.8.8.8"),
            ("6to4", "2002:7f00:1::", "2002:808:808::"),
            ("6to4", "2002:a9fe:a9fe::1", "2002:5db8:d822::1"),
            ("6to4", "2002:c0a8:101:42::1", "2002:101:101:42::1"),
            ("6to4", "2002:a00:1::", "2002:808:404::"),
            ("nat64", "64:ff9b::127.0.0.1", "64:ff9b::8.8.8.8"),
            ("nat64", "64:ff9b::a9fe:a9fe", "64:ff9b::5db8:d822"),
            ("nat64", "64:ff9b::10.1.2.3", "64:ff9b::1.1.1.1"),
        ];
        for (form, internal, public) in forms {
            assert!(!is_public(internal.parse().unwrap()), "{form}: {internal}");
            assert!(is_public(public.parse().unwrap()), "{form}: {public}");
        }
    }

    #[test]
    fn nat64_local_use_and_unassigned_prefixes_are_not_public() {
        for address in [
            // Local-use NAT64 (64:ff9b:1::/48) leads into the operator's own network,
            // whatever IPv4 address it carries.
            "64:ff9b:1::8.8.8.8",
            "64:ff9b:1::10.0.0.1",
            "64:ff9b:1:abcd::1",
            // Inside 64:ff9b::/32 but outside the well-known /96.
            "64:ff9b:0:0:1::808:808",
            // Site-local, fec0::/10.
            "fec0::1",
        ] {
            assert!(!is_public(address.parse().unwrap()), "{address}");
        }
    }

    #[tokio::test]
    async fn an_ipv6_literal_carrying_loopback_is_refused() {
        for literal in ["[::127.0.0.1]", "[2002:7f00:1::]", "[64:ff9b::7f00:1]"] {
            let refused = resolve(literal, 80, false).await.unwrap_err();
            assert!(
                matches!(refused, FetchError::Refused(_)),
                "{literal}: {refused:?}"
            );
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
