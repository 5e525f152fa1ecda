//! Rules for merchant ids and allowed domains, shared by the edge (routing, CORS), the
//! backend (settings) and the admin CLI.

/// Longest merchant id.
pub const MAX_ID_LEN: usize = 64;

/// A merchant id appears in paths and headers: 1 to 64 ASCII letters, digits, `-` or `_`.
/// No escaping is ever needed, so the edge and the backend read the same id from a path.
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Why an allowed domain was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a host name such as acme.com (no scheme, port, path or wildcard)")]
pub struct InvalidDomain(pub String);

/// An allowed domain is a bare host name of at least two labels (`acme.com`, which also admits
/// its subdomains): no scheme, port, path or wildcard. For `localhost` and other development
/// origins use `cors.allowed_origins`. Returns it lowercased, without a trailing dot.
pub fn normalize_domain(domain: &str) -> Result<String, InvalidDomain> {
    let host = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    // At least two labels: a bare `com` would admit every `.com` store.
    if host.len() > 253 || !host.contains('.') || !host.split('.').all(label_ok) {
        return Err(InvalidDomain(domain.to_owned()));
    }
    Ok(host)
}

/// A host and each of its parent domains, most specific first (`a.b.com`, `b.com`, `com`):
/// the allowed domains that could admit it.
pub fn host_and_parents(host: &str) -> impl Iterator<Item = &str> {
    std::iter::successors(Some(host), |h| h.split_once('.').map(|(_, parent)| parent))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_bare_host_names() {
        assert_eq!(normalize_domain("Shop.Acme.com.").unwrap(), "shop.acme.com");
        for bad in [
            "https://acme.com",
            "acme.com:443",
            "acme.com/x",
            "*.acme.com",
            "",
            "-a.com",
            "a..com",
            "com",
            "localhost",
        ] {
            assert!(normalize_domain(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parents_run_from_the_host_up() {
        let parents: Vec<&str> = host_and_parents("a.shop.acme.com").collect();
        assert_eq!(
            parents,
            ["a.shop.acme.com", "shop.acme.com", "acme.com", "com"]
        );
    }

    #[test]
    fn merchant_ids_are_path_and_header_safe() {
        assert!(is_valid_id("acme_store-1"));
        for bad in ["", "a/b", "a b", "é", "%61cme", &"a".repeat(MAX_ID_LEN + 1)] {
            assert!(!is_valid_id(bad), "{bad}");
        }
    }
}
