//! The allowed-domain index: `merchant_domains (domain, merchant_id)`.
//!
//! `merchants.allowed_domains` keeps the list as the merchant wrote it (order included), for
//! the API. The index holds the same domains, normalised, one row each, and is rewritten in the
//! transaction that writes the list. "Does any merchant allow this host" then becomes one
//! query over the host and its parent domains (`a.shop.acme.com`, `shop.acme.com`,
//! `acme.com`, `com`), each a primary-key lookup, however many merchants there are.

use mindshop_wire::merchant::{self, normalize_domain};

/// The rows the index holds for a merchant's list: lowercased, without a trailing dot, no
/// empty entries, each once.
pub(super) fn index_entries(domains: &[String]) -> Vec<String> {
    let mut entries: Vec<String> = Vec::with_capacity(domains.len());
    for domain in domains {
        let entry = domain.trim().trim_end_matches('.').to_ascii_lowercase();
        if !entry.is_empty() && !entries.contains(&entry) {
            entries.push(entry);
        }
    }
    entries
}

/// The host and each of its parent domains, most specific first; `None` for a host no allowed
/// domain can admit (not a host name: an IP literal, a port, a path, empty).
pub(super) fn host_and_parents(host: &str) -> Option<Vec<String>> {
    let host = normalize_domain(host).ok()?;
    Some(
        merchant::host_and_parents(&host)
            .map(str::to_owned)
            .collect(),
    )
}

/// `SELECT` whether any index row matches one of `candidates` domains (`$1` … `$n`). Built
/// from placeholders only, never from the values, so it is safe to format.
pub(super) fn any_domain_sql(candidates: usize) -> String {
    let placeholders: Vec<String> = (1..=candidates).map(|i| format!("${i}")).collect();
    format!(
        "SELECT EXISTS (SELECT 1 FROM merchant_domains WHERE domain IN ({}))",
        placeholders.join(", ")
    )
}

/// SQL that both databases accept as written.
pub(super) mod sql {
    pub const DELETE_FOR_MERCHANT: &str = "DELETE FROM merchant_domains WHERE merchant_id = $1";
    pub const INSERT: &str = "INSERT INTO merchant_domains (domain, merchant_id) VALUES ($1, $2) \
         ON CONFLICT (domain, merchant_id) DO NOTHING";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_is_looked_up_with_each_parent_domain() {
        assert_eq!(
            host_and_parents("A.Shop.Acme.com.").unwrap(),
            ["a.shop.acme.com", "shop.acme.com", "acme.com", "com"]
        );
        // Allowed domains have two labels at least, so a single-label host matches none.
        assert_eq!(host_and_parents("localhost"), None);
        // `evilacme.com` is never a candidate for `acme.com`, nor `acme.com.evil.io`.
        assert!(
            !host_and_parents("evilacme.com")
                .unwrap()
                .contains(&"acme.com".to_owned())
        );
        assert!(
            !host_and_parents("acme.com.evil.io")
                .unwrap()
                .contains(&"acme.com".to_owned())
        );
        for not_a_host in ["", "[::1]", "acme.com:443", "https://acme.com", "a..com"] {
            assert_eq!(host_and_parents(not_a_host), None, "{not_a_host:?}");
        }
    }

    #[test]
    fn index_entries_are_normalised_and_unique() {
        let domains = ["Acme.com.", "acme.com", "", "shop.acme.com"].map(str::to_owned);
        assert_eq!(index_entries(&domains), ["acme.com", "shop.acme.com"]);
    }

    #[test]
    fn the_lookup_has_one_placeholder_per_candidate() {
        assert_eq!(
            any_domain_sql(3),
            "SELECT EXISTS (SELECT 1 FROM merchant_domains WHERE domain IN ($1, $2, $3))"
        );
    }
}
