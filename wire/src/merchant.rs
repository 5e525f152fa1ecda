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

/// Why a domain may not be a merchant's allowed domain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainRefusal {
    #[error(transparent)]
    Invalid(#[from] InvalidDomain),
    /// Listing it would admit every site under it, each someone else's.
    #[error(
        "{0:?} is a public suffix: the sites under it belong to different owners; list your \
         own domain under it instead (e.g. acme.{0})"
    )]
    PublicSuffix(String),
}

/// [`normalize_domain`], and not a public suffix by the Public Suffix List, its private
/// section included: `co.uk`, `myshopify.com` and `github.io` are refused, `acme.co.uk`,
/// `acme.myshopify.com` and `acme.github.io` are fine. Every place that takes a merchant's
/// allowed domains (the portal's settings, the admin CLI) checks with this.
pub fn allowed_domain(domain: &str) -> Result<String, DomainRefusal> {
    let host = normalize_domain(domain)?;
    if is_public_suffix(&host) {
        return Err(DomainRefusal::PublicSuffix(host));
    }
    Ok(host)
}

/// Whether `host` (normalised) is a public suffix, so that no one owns what is under it.
/// A name under an unknown top-level domain (`acme.test`) is not; the top-level domain is.
pub fn is_public_suffix(host: &str) -> bool {
    // `domain` is the registrable part (one label above the suffix); a suffix has none.
    psl::domain(host.as_bytes()).is_none()
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
    fn public_suffixes_are_refused_from_both_sections_of_the_list() {
        for suffix in [
            "co.uk",
            "com.au",
            "myshopify.com",
            "github.io",
            "blogspot.com",
            // A wildcard rule: every name under `ck` is a suffix, but for its exception.
            "anything.ck",
        ] {
            assert_eq!(
                allowed_domain(suffix),
                Err(DomainRefusal::PublicSuffix(suffix.to_owned())),
                "{suffix}"
            );
        }
        assert_eq!(
            allowed_domain("MyShopify.com.").unwrap_err().to_string(),
            "\"myshopify.com\" is a public suffix: the sites under it belong to different \
             owners; list your own domain under it instead (e.g. acme.myshopify.com)"
        );
        for own in [
            "acme.co.uk",
            "acme.myshopify.com",
            "acme.github.io",
            "shop.acme.com",
            "www.ck",
            "acme.test",
        ] {
            assert_eq!(allowed_domain(own).as_deref(), Ok(own), "{own}");
        }
        assert!(matches!(
            allowed_domain("https://acme.com"),
            Err(DomainRefusal::Invalid(_))
        ));
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
