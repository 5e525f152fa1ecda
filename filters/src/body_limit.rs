//! Refusing request bodies over `edge.max_body_bytes`: up front from `Content-Length`, and
//! while streaming for chunked bodies (the proxy counts bytes with [`BodyBudget`]).

use crate::Rejection;

fn too_large(max: u64) -> Rejection {
    Rejection::new(
        413,
        "PAYLOAD_TOO_LARGE",
        format!("The request body is larger than the limit of {max} bytes"),
    )
}

/// Checks a declared `Content-Length`. Unparseable values are left to the HTTP layer.
pub fn check_declared(content_length: Option<&[u8]>, max: u64) -> Result<(), Rejection> {
    let declared = content_length
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match declared {
        Some(length) if length > max => Err(too_large(max)),
        _ => Ok(()),
    }
}

/// Bytes of body seen so far against the limit.
#[derive(Debug, Clone, Copy)]
pub struct BodyBudget {
    max: u64,
    seen: u64,
}

impl BodyBudget {
    pub fn new(max: u64) -> Self {
        Self { max, seen: 0 }
    }

    /// Counts a chunk; refuses once the total passes the limit.
    pub fn consume(&mut self, chunk_len: usize) -> Result<(), Rejection> {
        self.seen = self.seen.saturating_add(chunk_len as u64);
        if self.seen > self.max {
            return Err(too_large(self.max));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_length_over_the_limit_is_refused() {
        assert!(check_declared(Some(b"100"), 100).is_ok());
        let rejection = check_declared(Some(b"101"), 100).unwrap_err();
        assert_eq!(rejection.status, 413);
        assert_eq!(rejection.failure.code, "PAYLOAD_TOO_LARGE");
        assert!(check_declared(None, 100).is_ok());
    }

    #[test]
    fn streamed_bodies_are_counted() {
        let mut budget = BodyBudget::new(10);
        assert!(budget.consume(6).is_ok());
        assert!(budget.consume(4).is_ok());
        assert_eq!(budget.consume(1).unwrap_err().status, 413);
    }
}
