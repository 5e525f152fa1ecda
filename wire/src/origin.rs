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
