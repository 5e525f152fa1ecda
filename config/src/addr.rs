//! Serde helpers for socket addresses whose errors quote the rejected text.
//!
//! serde's own `SocketAddr` impl says only "invalid socket address syntax"; an operator fixing
//! `edge.listen = "localhost:80"` is better served by seeing the value that was refused.

use std::net::SocketAddr;

use serde::{Deserialize, Deserializer};

fn parse<E: serde::de::Error>(text: &str) -> Result<SocketAddr, E> {
    text.trim().parse().map_err(|_| {
        E::custom(format_args!(
            "invalid socket address {text:?} (expected IP:port, e.g. 127.0.0.1:8080)"
        ))
    })
}

/// One `SocketAddr` as a string.
pub(crate) mod one {
    use super::*;

    pub(crate) fn serialize<S: serde::Serializer>(
        addr: &SocketAddr,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_str(addr)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<SocketAddr, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse(&text)
    }
}

/// A list of `SocketAddr`s as strings.
pub(crate) mod many {
    use super::*;

    pub(crate) fn serialize<S: serde::Serializer>(
        addrs: &[SocketAddr],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(addrs.iter().map(ToString::to_string))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<SocketAddr>, D::Error> {
        let texts = Vec::<String>::deserialize(deserializer)?;
        texts.iter().map(|text| parse(text)).collect()
    }
}
