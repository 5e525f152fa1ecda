//! Browser origins (`Origin: https://shop.acme.com:8443`): parsing and the allowed-domain rule.
//!
//! An origin is a scheme, a host and an optional port, nothing else. Anything that does not
//! parse as exactly that (`null`, a path, user info, an unknown scheme) is never admitted.

use std::fmt;

/// A parsed `Origin` header value, host lowercased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub scheme: Scheme,
    pub host: String,
    /// The explicit port, `None` for the scheme's default.
    pub port: Option<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Origin {
    /// Parses `scheme://host[:port]`. Returns `None` for anything else, `null` included.
    pub fn parse(value: &str) -> Option<Self> {
        let (scheme, rest) = if let Some(rest) = value.strip_prefix("https://") {
            (Scheme::Https, rest)
        } else if let Some(rest) = value.strip_prefix("http://") {
            (Scheme::Http, rest)
        } else {
            return None;
        };
        // An IPv6 literal keeps its colons inside brackets.
        let split_at = match rest.strip_prefix('[') {
            Some(inner) => inner.find(']').map(|i| i + 2)?,
            None => rest.find(':').unwrap_or(rest.len()),
        };
        let (host, port) = rest.split_at(split_at);
        let port = match port {
            "" => None,
            port => Some(
                port.strip_prefix(':')?
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)?,
            ),
        };
        let host = host.to_ascii_lowercase();
        let valid_host = !host.is_empty()
            && host.len() <= 253
            && host.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'[' | b']' | b':')
            });
        if !valid_host {
            return None;
        }
        let default_port = match scheme {
            Scheme::Http => 80,
            Scheme::Https => 443,
        };
        Some(Self {
            scheme,
            host,
            port: port.filter(|p| *p != default_port),
        })
    }

    /// Whether the host is `domain` or one of its subdomains: `shop.acme.com` and `acme.com`
    /// for `acme.com`; never `evilacme.com` or `acme.com.evil.io`. `domain` is a normalized
    /// allowed domain (see [`crate::merchant::normalize_domain`]).
    pub fn host_within(&self, domain: &str) -> bool {
        match self.host.strip_suffix(domain) {
            Some("") => true,
            Some(prefix) => prefix.ends_with('.'),
            None => false,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        write!(f, "{scheme}://{}", self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_scheme_host_and_port_only() {
        let origin = Origin::parse("https://Shop.Acme.com:8443").unwrap();
        assert_eq!(origin.scheme, Scheme::Https);
        assert_eq!(origin.host, "shop.acme.com");
        assert_eq!(origin.port, Some(8443));
        assert_eq!(origin.to_string(), "https://shop.acme.com:8443");
        let local = Origin::parse("http://[::1]:3000").unwrap();
        assert_eq!((local.host.as_str(), local.port), ("[::1]", Some(3000)));
        assert_eq!(Origin::parse("http://[::1]").unwrap().port, None);
        // The default port is the same origin as no port.
        assert_eq!(
            Origin::parse("https://acme.com:443"),
            Origin::parse("https://acme.com")
        );
        for bad in [
            "null",
            "",
            "acme.com",
            "ftp://acme.com",
            "https://acme.com/",
            "https://acme.com/path",
            "https://user@acme.com",
            "https://acme.com:0",
            "https://acme.com:99999",
            "https://",
            "https://acme .com",
            "https://acme.com:80:80",
            "https://[::1",
        ] {
            assert_eq!(Origin::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn hosts_are_within_a_domain_or_its_subdomains_only() {
        let within =
            |origin: &str, domain: &str| Origin::parse(origin).unwrap().host_within(domain);
        assert!(within("https://acme.com", "acme.com"));
        assert!(within("https://shop.acme.com", "acme.com"));
        assert!(!within("https://evilacme.com", "acme.com"));
        assert!(!within("https://acme.com.evil.io", "acme.com"));
        assert!(!within("https://cme.com", "acme.com"));
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    fn scheme() -> impl Strategy<Value = Scheme> {
        prop_oneof![Just(Scheme::Http), Just(Scheme::Https)]
    }

    fn scheme_text(scheme: Scheme) -> &'static str {
        match scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    fn default_port(scheme: Scheme) -> u16 {
        match scheme {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }

    /// A DNS host as browsers send it, in any letter case, or a bracketed IPv6 literal.
    fn host() -> impl Strategy<Value = String> {
        let label = "[a-zA-Z0-9]([a-zA-Z0-9-]{0,8}[a-zA-Z0-9])?";
        prop_oneof![
            4 => prop::collection::vec(label, 1..5).prop_map(|labels| labels.join(".")),
            1 => "\\[[0-9a-fA-F:]{2,39}\\]",
        ]
    }

    /// Text that often gets past the scheme, then anything origin-like or not.
    fn origin_like() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            (
                "(https?://|HTTPS://|https:/)?",
                "[a-zA-Z0-9.:\\[\\]@/?# %+-]{0,24}"
            )
                .prop_map(|(scheme, rest)| format!("{scheme}{rest}")),
        ]
    }

    /// Whether `host` is `domain` or under it, by whole labels.
    fn within_by_labels(host: &str, domain: &str) -> bool {
        let host: Vec<&str> = host.split('.').collect();
        let domain: Vec<&str> = domain.split('.').collect();
        host.len() >= domain.len() && host[host.len() - domain.len()..] == domain[..]
    }

    proptest! {
        /// Any header value parses without panicking, and what parses is an origin that
        /// prints and parses back to itself (so a configured origin compares equal to the
        /// header a browser sends for it).
        #[test]
        fn parsed_origins_print_and_parse_back_to_themselves(value in origin_like()) {
            if let Some(origin) = Origin::parse(&value) {
                let printed = origin.to_string();
                prop_assert_eq!(Origin::parse(&printed), Some(origin.clone()), "{}", printed);
                prop_assert_eq!(origin.host.to_ascii_lowercase(), origin.host.clone());
                prop_assert_ne!(origin.port, Some(default_port(origin.scheme)));
            }
        }

        /// Every `scheme://host[:port]` a browser can send is admitted: host lowercased, the
        /// scheme's default port the same as none.
        #[test]
        fn browser_origins_parse(
            scheme in scheme(),
            host in host(),
            port in prop::option::of(prop_oneof![Just(80u16), Just(443), 1u16..]),
        ) {
            let mut value = format!("{}://{host}", scheme_text(scheme));
            if let Some(port) = port {
                value.push_str(&format!(":{port}"));
            }
            let expected = Origin {
                scheme,
                host: host.to_ascii_lowercase(),
                port: port.filter(|p| *p != default_port(scheme)),
            };
            prop_assert_eq!(Origin::parse(&value), Some(expected));
        }

        /// Anything beyond scheme, host and port (a path, a query, a fragment, user info,
        /// a zero or oversized port) is never admitted.
        #[test]
        fn more_than_an_origin_is_refused(
            scheme in scheme(),
            host in host(),
            extra in prop_oneof![
                "[/?#][ -~]{0,10}".prop_map(|tail| (tail, false)),
                "[a-z]{1,6}(:[a-z]{1,6})?@".prop_map(|user| (user, true)),
                "(0|6553[6-9]|[7-9][0-9]{4}|[1-9][0-9]{5,7})"
                    .prop_map(|port| (format!(":{port}"), false)),
            ],
        ) {
            let (extra, before_host) = extra;
            let scheme = scheme_text(scheme);
            let value = if before_host {
                format!("{scheme}://{extra}{host}")
            } else {
                format!("{scheme}://{host}{extra}")
            };
            prop_assert_eq!(Origin::parse(&value), None, "{}", value);
        }

        /// `host_within` admits the domain and its subdomains and nothing else: it agrees with
        /// comparing whole labels from the right.
        #[test]
        fn host_within_matches_whole_labels(
            domain in prop::collection::vec("[ab]{1,2}", 2..4),
            prefix in prop::collection::vec("[ab]{1,2}", 0..3),
            glued in "[ab]{0,2}",
            related in any::<bool>(),
            other in prop::collection::vec("[ab]{1,2}", 1..5),
        ) {
            let domain = domain.join(".");
            let host = if related {
                // The domain's own labels under a prefix, sometimes glued onto its first one.
                let mut labels = prefix;
                labels.push(format!("{glued}{domain}"));
                labels.join(".")
            } else {
                other.join(".")
            };
            let origin = Origin::parse(&format!("https://{host}")).expect("a host name");
            prop_assert_eq!(
                origin.host_within(&domain),
                within_by_labels(&host, &domain),
                "{} within {}", host, domain
            );
        }
    }
}
