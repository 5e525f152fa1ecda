//! Resource ids: a short type prefix and a UUIDv7 (`key_01a2…`, `evt_01a2…`), so an id says
//! what it names and ids sort by creation time.

/// A new id such as `key_01a21cf2c53e777f82ecc75ac0cd94ab`.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_their_prefix_and_are_unique() {
        let (a, b) = (new_id("key"), new_id("key"));
        assert!(a.starts_with("key_"));
        assert_eq!(a.len(), "key_".len() + 32);
        assert_ne!(a, b);
    }
}
