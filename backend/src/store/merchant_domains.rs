//! The allowed-domain index: `merchant_domains (domain, merchant_id)`.
//!
//! `merchants.allowed_domains` keeps the list as the merchant wrote it (order included), for
//! the API. The index holds the same domains, normalised, one row each, and is rewritten in the
//! transaction that writes the list. "Does any merchant allow this host" then becomes one
//! query over the host and its parent domains (`a.shop.acme.com`, `shop.acme.com`,
//! `acme.com`, `com`), each a primary-key lookup, however many merchants there are. A public
//! suffix is never a candidate, so an entry such as `co.uk` stored before they were refused
//! admits nothing.
//!
//! A domain belongs to one merchant: a merchant may not add one that overlaps another
//! merchant's (the same, a parent or a subdomain), since either would admit the other's
//! sites; whoever controls `acme.com` controls `shop.acme.com` too. An admin may (one company,
//! two merchants). [`overlaps_sql`] finds the overlapping rows of other merchants in one
//! query: parents and the same by primary key, subdomains by a `LIKE '%.acme.com'` scan of
//! the index, which only settings writes (rare) pay.

use std::fmt;

use mindshop_wire::merchant::{self, is_public_suffix, normalize_domain};

/// How a domain being added overlaps another merchant's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DomainOverlap {
    /// The other merchant lists this very domain.
    Same,
    /// The other merchant lists a parent domain of it (which admits it).
    Under,
    /// The other merchant lists a subdomain of it (which it would admit).
    Over,
}

impl fmt::Display for DomainOverlap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Same => "another merchant lists it",
            Self::Under => "another merchant lists a domain above it",
            Self::Over => "another merchant lists a domain under it",
        })
    }
}

/// How `domain` overlaps `other` (both normalised), if it does.
pub(super) fn overlap(domain: &str, other: &str) -> Option<DomainOverlap> {
    let under = |child: &str, parent: &str| {
        child
            .strip_suffix(parent)
            .is_some_and(|rest| rest.ends_with('.'))
    };
    if domain == other {
        Some(DomainOverlap::Same)
    } else if under(domain, other) {
        Some(DomainOverlap::Under)
    } else if under(other, domain) {
        Some(DomainOverlap::Over)
    } else {
        None
    }
}

/// The index rows another merchant's domain could overlap `added` through: each added domain
/// and its parents that are not public suffixes (`IN`), and `%.<domain>` for the subdomains
/// of each (`LIKE`; allowed domains hold only letters, digits, `-` and `.`, none of them
/// special to `LIKE`).
pub(super) struct OverlapQuery {
    pub sql: String,
    pub exact: Vec<String>,
    pub patterns: Vec<String>,
}

/// `SELECT domain` of rows not of merchant `$1` that may overlap `added`; `None` when nothing
/// is added.
pub(super) fn overlaps_sql(added: &[String]) -> Option<OverlapQuery> {
    if added.is_empty() {
        return None;
    }
    let mut exact: Vec<String> = Vec::new();
    for domain in added {
        for candidate in registrable_and_parents(domain) {
            if !exact.contains(&candidate) {
                exact.push(candidate);
            }
        }
    }
    let patterns: Vec<String> = added.iter().map(|domain| format!("%.{domain}")).collect();
    let mut placeholder = 1;
    let mut next = || {
        placeholder += 1;
        format!("${placeholder}")
    };
    let mut condition: Vec<String> = Vec::new();
    if !exact.is_empty() {
        let list: Vec<String> = exact.iter().map(|_| next()).collect();
        condition.push(format!("domain IN ({})", list.join(", ")));
    }
    condition.extend(patterns.iter().map(|_| format!("domain LIKE {}", next())));
    Some(OverlapQuery {
        sql: format!(
            "SELECT domain FROM merchant_domains WHERE merchant_id <> $1 AND ({})",
            condition.join(" OR ")
        ),
        exact,
        patterns,
    })
}

/// `domain` and its parents, down to the registrable domain (never a public suffix).
fn registrable_and_parents(domain: &str) -> Vec<String> {
    merchant::host_and_parents(domain)
        .take_while(|candidate| !is_public_suffix(candidate))
        .map(str::to_owned)
        .collect()
}

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

/// The host and each of its parent domains that is not a public suffix, most specific first;
/// `None` for a host no allowed domain can admit (not a host name: an IP literal, a port, a
/// path, empty; or a public suffix itself).
pub(super) fn host_and_parents(host: &str) -> Option<Vec<String>> {
    let host = normalize_domain(host).ok()?;
    Some(registrable_and_parents(&host)).filter(|candidates| !candidates.is_empty())
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
    pub const OF_MERCHANT: &str = "SELECT domain FROM merchant_domains WHERE merchant_id = $1";
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
            ["a.shop.acme.com", "shop.acme.com", "acme.com"]
        );
        // Public suffixes are never candidates: a `co.uk` row admits nothing.
        assert_eq!(
            host_and_parents("shop.acme.co.uk").unwrap(),
            ["shop.acme.co.uk", "acme.co.uk"]
        );
        assert_eq!(
            host_and_parents("acme.myshopify.com").unwrap(),
            ["acme.myshopify.com"]
        );
        assert_eq!(host_and_parents("github.io"), None);
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
    fn overlaps_are_the_same_a_parent_or_a_subdomain() {
        assert_eq!(overlap("acme.com", "acme.com"), Some(DomainOverlap::Same));
        assert_eq!(
            overlap("shop.acme.com", "acme.com"),
            Some(DomainOverlap::Under)
        );
        assert_eq!(
            overlap("acme.com", "a.shop.acme.com"),
            Some(DomainOverlap::Over)
        );
        for unrelated in ["evilacme.com", "acme.com.evil.io", "acme.co", "cme.com"] {
            assert_eq!(overlap("acme.com", unrelated), None, "{unrelated}");
            assert_eq!(overlap(unrelated, "acme.com"), None, "{unrelated}");
        }
    }

    #[test]
    fn the_overlap_query_looks_up_parents_and_scans_for_subdomains() {
        assert!(overlaps_sql(&[]).is_none());
        let query = overlaps_sql(&["shop.acme.co.uk".to_owned(), "acme.co.uk".to_owned()])
            .expect("a query");
        assert_eq!(
            query.sql,
            "SELECT domain FROM merchant_domains WHERE merchant_id <> $1 AND \
             (domain IN ($2, $3) OR domain LIKE $4 OR domain LIKE $5)"
        );
        assert_eq!(query.exact, ["shop.acme.co.uk", "acme.co.uk"]);
        assert_eq!(query.patterns, ["%.shop.acme.co.uk", "%.acme.co.uk"]);
    }

    #[test]
    fn the_lookup_has_one_placeholder_per_candidate() {
        assert_eq!(
            any_domain_sql(3),
            "SELECT EXISTS (SELECT 1 FROM merchant_domains WHERE domain IN ($1, $2, $3))"
        );
    }
}
