//! [`Config::changed_keys`]: which keys two configurations set differently, so a reload can
//! say what it applied and what waits for a restart.

use std::collections::BTreeMap;

use toml::{Table, Value};

use crate::{Config, Secret};

impl Config {
    /// The dotted keys whose values differ between `self` and `other`, sorted. Arrays
    /// (`edge.backends`, `edge.tls_certificates`) count as one key; a changed secret is named
    /// without its value.
    pub fn changed_keys(&self, other: &Config) -> Vec<String> {
        let (mine, theirs) = (flatten(self), flatten(other));
        let mut changed: Vec<String> = mine
            .iter()
            .filter(|(key, value)| theirs.get(*key) != Some(*value))
            .map(|(key, _)| key.clone())
            .chain(
                theirs
                    .keys()
                    .filter(|key| !mine.contains_key(*key))
                    .cloned(),
            )
            .collect();
        // Secrets serialize as "[redacted]" whatever they hold: compare them as they are.
        let secret = |s: Option<&Secret>| s.map(Secret::expose).map(str::to_owned);
        for (key, a, b) in [
            (
                "auth.jwt_secret",
                self.auth.jwt_secret.as_ref(),
                other.auth.jwt_secret.as_ref(),
            ),
            (
                "internal.secret",
                self.internal.secret.as_ref(),
                other.internal.secret.as_ref(),
            ),
            (
                "redis.url",
                self.redis.url.as_ref(),
                other.redis.url.as_ref(),
            ),
            (
                "chat.llm_api_key",
                self.chat.llm_api_key.as_ref(),
                other.chat.llm_api_key.as_ref(),
            ),
        ] {
            if secret(a) != secret(b) && !changed.iter().any(|k| k == key) {
                changed.push(key.to_owned());
            }
        }
        changed.sort();
        changed
    }
}

/// Every leaf of the configuration as `section.key` (tables nested deeper keep going:
/// `routes.sync.enabled`, `limits.plan_multipliers.pro`).
fn flatten(config: &Config) -> BTreeMap<String, Value> {
    let mut leaves = BTreeMap::new();
    if let Ok(table) = Table::try_from(config) {
        walk(&table, "", &mut leaves);
    }
    leaves
}

fn walk(table: &Table, prefix: &str, leaves: &mut BTreeMap<String, Value>) {
    for (key, value) in table {
        let path = format!("{prefix}{key}");
        match value {
            Value::Table(inner) => walk(inner, &format!("{path}."), leaves),
            leaf => {
                leaves.insert(path, leaf.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_each_changed_key_secrets_included() {
        let before = Config::default();
        let mut after = before.clone();
        assert!(before.changed_keys(&after).is_empty());
        after.edge.threads = 4;
        after.routes.sync.enabled = false;
        after.limits.plan_multipliers.insert("pro".into(), 5.0);
        after.internal.secret = Some(Secret::new("x".repeat(32)));
        after.edge.backends = vec!["127.0.0.1:9000".parse().unwrap()];
        assert_eq!(
            before.changed_keys(&after),
            [
                "edge.backends",
                "edge.threads",
                "internal.secret",
                "limits.plan_multipliers.pro",
                "routes.sync.enabled",
            ]
        );
        let mut rotated = after.clone();
        rotated.internal.secret = Some(Secret::new("y".repeat(32)));
        assert_eq!(after.changed_keys(&rotated), ["internal.secret"]);
    }
}
