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

/// An optional `SocketAddr`; `""` (how it is written when unset, so that
/// `MINDSHOP_EDGE_TLS_LISTEN` has a key to name) is none.
pub(crate) mod optional {
    use super::*;

    pub(crate) fn serialize<S: serde::Serializer>(
        addr: &Option<SocketAddr>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match addr {
            Some(addr) => serializer.collect_str(addr),
            None => serializer.serialize_str(""),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<SocketAddr>, D::Error> {
        let text = String::deserialize(deserializer)?;
        if text.trim().is_empty() {
            return Ok(None);
        }
        parse(&text).map(Some)
    }
}

/// A list of address ranges (`10.0.0.0/8`, `2001:db8::/32`, or one address) as strings.
pub(crate) mod nets {
    use ipnet::IpNet;

    use super::*;

    pub(crate) fn serialize<S: serde::Serializer>(
        nets: &[IpNet],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(nets.iter().map(ToString::to_string))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<IpNet>, D::Error> {
        let texts = Vec::<String>::deserialize(deserializer)?;
        texts
            .iter()
            .map(|text| {
                let text = text.trim();
                text.parse::<IpNet>()
                    .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from))
                    .map(|net| net.trunc())
                    .map_err(|_| {
                        serde::de::Error::custom(format_args!(
                            "invalid address range {text:?} (expected CIDR, e.g. 10.0.0.0/8, \
                             or one address)"
                        ))
                    })
            })
            .collect()
    }
}
