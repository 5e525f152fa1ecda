//! The identity the edge asserts to the backend.
//!
//! The backend trusts identity only from the edge. The edge strips every client-sent
//! `X-Mindshop-*` header, then sends the caller's merchant, principal, permissions and roles,
//! a Unix timestamp and an HMAC-SHA256 over all of them plus the method, the path and the
//! request id, keyed with `internal.secret`. Binding the method and path means a captured
//! signature cannot be replayed against another route; the timestamp bounds replay in time.
//! The body is not signed: edge and backend share a trusted network.

use hmac::{Hmac, Mac};
use http::header::InvalidHeaderValue;
use http::{HeaderMap, HeaderValue};
use sha2::Sha256;

/// Prefix of every internal header; the edge removes client-sent ones.
pub const HEADER_PREFIX: &str = "x-mindshop-";
pub const MERCHANT: &str = "x-mindshop-merchant";
pub const PRINCIPAL: &str = "x-mindshop-principal";
pub const PERMISSIONS: &str = "x-mindshop-permissions";
pub const ROLES: &str = "x-mindshop-roles";
pub const TIMESTAMP: &str = "x-mindshop-timestamp";
pub const SIGNATURE: &str = "x-mindshop-signature";
/// Set by the backend on its 401 for a bad signature, so the edge can tell its operator that
/// the edge's own configuration is wrong (the edge removes it before the client sees it).
pub const REJECTED: &str = "x-mindshop-rejected";

/// Principal of a request that carried no credential.
pub const ANONYMOUS: &str = "anonymous";

/// Who is calling, as resolved by the edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The merchant the credential belongs to; `None` for anonymous callers and global admins.
    pub merchant: Option<String>,
    /// `anonymous`, `key:<key id>` or `user:<jwt sub>`.
    pub principal: String,
    /// API-key permissions (`documents:read`, `*`, …).
    pub permissions: Vec<String>,
    /// JWT roles (`admin`, …).
    pub roles: Vec<String>,
}

impl Identity {
    pub fn anonymous() -> Self {
        Self {
            merchant: None,
            principal: ANONYMOUS.to_owned(),
            permissions: Vec::new(),
            roles: Vec::new(),
        }
    }
}

/// An identity as it travels: its fields as the header values the backend reads. An API key's
/// identity serves every request made with the key, so the edge encodes it once, with the
/// cached key, and each request only signs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedIdentity {
    identity: Identity,
    merchant: HeaderValue,
    principal: HeaderValue,
    permissions: HeaderValue,
    roles: HeaderValue,
}

impl EncodedIdentity {
    /// Fails when the merchant or the principal cannot be a header value (the edge only
    /// resolves ones that can); permissions and roles that cannot travel are dropped.
    pub fn new(identity: Identity) -> Result<Self, InvalidHeaderValue> {
        Ok(Self {
            merchant: HeaderValue::try_from(identity.merchant.clone().unwrap_or_default())?,
            principal: HeaderValue::try_from(identity.principal.clone())?,
            permissions: HeaderValue::try_from(join_list(&identity.permissions))?,
            roles: HeaderValue::try_from(join_list(&identity.roles))?,
            identity,
        })
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The signed fields, in the order [`feed`] signs them.
    fn texts(&self) -> [&str; 4] {
        // Built from strings (`new`), so always text.
        fn text(value: &HeaderValue) -> &str {
            std::str::from_utf8(value.as_bytes()).unwrap_or("")
        }
        [
            text(&self.merchant),
            text(&self.principal),
            text(&self.permissions),
            text(&self.roles),
        ]
    }
}

/// The request line and id that a signature is bound to.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    pub method: &'a str,
    pub path_and_query: &'a str,
    pub request_id: &'a str,
}

/// Why the backend refused an identity.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdentityError {
    #[error("missing or unreadable header {0}")]
    MissingHeader(&'static str),
    #[error("timestamp is not a Unix time")]
    BadTimestamp,
    #[error("timestamp is {0}s away from now")]
    Stale(u64),
    #[error("signature does not match")]
    BadSignature,
}

/// Signs and verifies identities with `internal.secret`.
#[derive(Clone)]
pub struct IdentitySigner {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for IdentitySigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdentitySigner([redacted])")
    }
}

impl IdentitySigner {
    pub fn new(secret: &[u8]) -> Self {
        // HMAC accepts keys of any length.
        let mac = Hmac::<Sha256>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
        Self { mac }
    }

    /// The headers the edge adds to the upstream request: the identity's fields, the
    /// timestamp and the signature.
    pub fn sign(
        &self,
        identity: &EncodedIdentity,
        request: SignedRequest<'_>,
        unix_secs: i64,
    ) -> [(&'static str, HeaderValue); 6] {
        let mut digits = itoa::Buffer::new();
        let timestamp = digits.format(unix_secs);
        let signature = crate::lower_hex(&self.digest(request, timestamp, identity.texts()));
        [
            (MERCHANT, identity.merchant.clone()),
            (PRINCIPAL, identity.principal.clone()),
            (PERMISSIONS, identity.permissions.clone()),
            (ROLES, identity.roles.clone()),
            (TIMESTAMP, HeaderValue::from(unix_secs)),
            (
                SIGNATURE,
                HeaderValue::try_from(signature).unwrap_or_else(|_| HeaderValue::from_static("")),
            ),
        ]
    }

    /// Checks the signature and age of the identity headers; returns the identity.
    pub fn verify(
        &self,
        headers: &HeaderMap,
        request: SignedRequest<'_>,
        now_unix_secs: i64,
        max_skew_secs: u64,
    ) -> Result<Identity, IdentityError> {
        let merchant = header(headers, MERCHANT)?;
        let principal = header(headers, PRINCIPAL)?;
        let permissions = header(headers, PERMISSIONS)?;
        let roles = header(headers, ROLES)?;
        let timestamp = header(headers, TIMESTAMP)?;
        let signature = header(headers, SIGNATURE)?;

        let signed_at: i64 = timestamp.parse().map_err(|_| IdentityError::BadTimestamp)?;
        let skew = now_unix_secs.abs_diff(signed_at);
        if skew > max_skew_secs {
            return Err(IdentityError::Stale(skew));
        }
        let expected = hex::decode(signature).map_err(|_| IdentityError::BadSignature)?;
        let mut mac = self.mac.clone();
        feed(
            &mut mac,
            request,
            timestamp,
            [merchant, principal, permissions, roles],
        );
        // verify_slice compares in constant time.
        mac.verify_slice(&expected)
            .map_err(|_| IdentityError::BadSignature)?;

        Ok(Identity {
            merchant: (!merchant.is_empty()).then(|| merchant.to_owned()),
            principal: principal.to_owned(),
            permissions: split_list(permissions),
            roles: split_list(roles),
        })
    }

    fn digest(&self, request: SignedRequest<'_>, timestamp: &str, fields: [&str; 4]) -> Vec<u8> {
        let mut mac = self.mac.clone();
        feed(&mut mac, request, timestamp, fields);
        mac.finalize().into_bytes().to_vec()
    }
}

/// The signed text: a version tag and every field, newline separated. Header values cannot
/// contain newlines, so the encoding is unambiguous.
fn feed(mac: &mut Hmac<Sha256>, request: SignedRequest<'_>, timestamp: &str, fields: [&str; 4]) {
    mac.update(b"mindshop-identity-v1");
    for part in [
        timestamp,
        request.method,
        request.path_and_query,
        request.request_id,
    ]
    .into_iter()
    .chain(fields)
    {
        mac.update(b"\n");
        mac.update(part.as_bytes());
    }
}

fn header<'h>(headers: &'h HeaderMap, name: &'static str) -> Result<&'h str, IdentityError> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .ok_or(IdentityError::MissingHeader(name))
}

/// Whether a permission or role can travel in a comma-separated header: a non-empty run of
/// letters, digits and `:*_.-`.
fn is_list_item(item: &str) -> bool {
    !item.is_empty()
        && item
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'*' | b'_' | b'.' | b'-'))
}

/// Joins the items that can travel in the header. Others are dropped, never merged: a role
/// `"x,admin"` from a token must not arrive at the backend as `x` and `admin`. Dropping only
/// ever removes privileges.
fn join_list(items: &[String]) -> String {
    let mut joined = String::new();
    for item in items.iter().filter(|item| is_list_item(item)) {
        if !joined.is_empty() {
            joined.push(',');
        }
        joined.push_str(item);
    }
    joined
}

fn split_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQ: SignedRequest<'static> = SignedRequest {
        method: "GET",
        path_and_query: "/api/merchants/m1/sync/status",
        request_id: "req-1",
    };

    fn signed(signer: &IdentitySigner, identity: &Identity, at: i64) -> HeaderMap {
        let encoded = EncodedIdentity::new(identity.clone()).unwrap();
        signer
            .sign(&encoded, REQ, at)
            .into_iter()
            .map(|(name, value)| (http::HeaderName::from_static(name), value))
            .collect()
    }

    fn key_identity() -> Identity {
        Identity {
            merchant: Some("m1".into()),
            principal: "key:key_1".into(),
            permissions: vec!["documents:read".into(), "chat:write".into()],
            roles: vec![],
        }
    }

    #[test]
    fn round_trips_an_identity() {
        let signer = IdentitySigner::new(b"0123456789abcdef0123456789abcdef");
        let headers = signed(&signer, &key_identity(), 1_000);
        assert_eq!(signer.verify(&headers, REQ, 1_010, 30), Ok(key_identity()));
        let anon = signed(&signer, &Identity::anonymous(), 1_000);
        assert_eq!(
            signer.verify(&anon, REQ, 1_000, 30),
            Ok(Identity::anonymous())
        );
    }

    #[test]
    fn list_items_that_would_split_are_dropped_not_merged() {
        let signer = IdentitySigner::new(b"0123456789abcdef0123456789abcdef");
        let sneaky = Identity {
            roles: vec!["x,admin".into(), "".into(), "viewer".into()],
            ..key_identity()
        };
        let headers = signed(&signer, &sneaky, 1_000);
        let verified = signer.verify(&headers, REQ, 1_000, 30).unwrap();
        assert_eq!(verified.roles, ["viewer"]);
        assert_eq!(verified.permissions, key_identity().permissions);
    }

    #[test]
    fn refuses_tampering_other_routes_other_secrets_and_old_signatures() {
        let signer = IdentitySigner::new(b"secret-one-secret-one-secret-one");
        let headers = signed(&signer, &key_identity(), 1_000);

        let mut tampered = headers.clone();
        tampered.insert(MERCHANT, HeaderValue::from_static("m2"));
        assert_eq!(
            signer.verify(&tampered, REQ, 1_000, 30),
            Err(IdentityError::BadSignature)
        );

        let other_route = SignedRequest {
            path_and_query: "/api/merchants/m2/sync/status",
            ..REQ
        };
        assert_eq!(
            signer.verify(&headers, other_route, 1_000, 30),
            Err(IdentityError::BadSignature)
        );

        let other = IdentitySigner::new(b"secret-two-secret-two-secret-two");
        assert_eq!(
            other.verify(&headers, REQ, 1_000, 30),
            Err(IdentityError::BadSignature)
        );

        assert_eq!(
            signer.verify(&headers, REQ, 1_031, 30),
            Err(IdentityError::Stale(31))
        );
        assert_eq!(
            signer.verify(&HeaderMap::new(), REQ, 1_000, 30),
            Err(IdentityError::MissingHeader(MERCHANT))
        );
    }
}

#[cfg(test)]
mod properties {
    use http::HeaderName;
    use proptest::prelude::*;

    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const NAMES: [&str; 6] = [
        MERCHANT,
        PRINCIPAL,
        PERMISSIONS,
        ROLES,
        TIMESTAMP,
        SIGNATURE,
    ];

    /// Identities as the edge resolves them: a valid merchant id or none, a principal of
    /// visible ASCII (the edge refuses other JWT subjects), and lists holding anything a key
    /// or a token may carry, commas and spaces included.
    fn identity() -> impl Strategy<Value = Identity> {
        let item = prop_oneof![
            3 => "[a-z:*_.-]{0,12}",
            1 => "[ -~]{0,12}",
            1 => any::<String>(),
        ];
        (
            prop::option::of("[A-Za-z0-9_-]{1,64}"),
            prop_oneof![
                Just(ANONYMOUS.to_owned()),
                "key:[a-z0-9_]{1,24}",
                "user:[\\x21-\\x2B\\x2D-\\x7E]{1,40}",
            ],
            prop::collection::vec(item.clone(), 0..5),
            prop::collection::vec(item, 0..5),
        )
            .prop_map(|(merchant, principal, permissions, roles)| Identity {
                merchant,
                principal,
                permissions,
                roles,
            })
    }

    fn request() -> impl Strategy<Value = (String, String, String)> {
        ("[A-Z]{3,7}", "/[!-~]{0,40}", "[A-Za-z0-9-]{1,36}")
    }

    fn signed_request((method, path, id): &(String, String, String)) -> SignedRequest<'_> {
        SignedRequest {
            method,
            path_and_query: path,
            request_id: id,
        }
    }

    fn signed(identity: &Identity, request: SignedRequest<'_>, at: i64) -> HeaderMap {
        let encoded = EncodedIdentity::new(identity.clone()).expect("an edge identity");
        IdentitySigner::new(SECRET)
            .sign(&encoded, request, at)
            .into_iter()
            .map(|(name, value)| (HeaderName::from_static(name), value))
            .collect()
    }

    /// What may travel in a list header: letters, digits and `:*_.-`, at least one.
    fn travels(item: &str) -> bool {
        !item.is_empty()
            && item
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ":*_.-".contains(c))
    }

    /// One edit of one header: replace, insert or remove a byte (visible ASCII).
    #[derive(Debug, Clone)]
    enum Edit {
        Replace(usize, u8),
        Insert(usize, u8),
        Remove(usize),
    }

    fn edit() -> impl Strategy<Value = Edit> {
        prop_oneof![
            (any::<usize>(), 0x20u8..0x7F).prop_map(|(at, byte)| Edit::Replace(at, byte)),
            (any::<usize>(), 0x20u8..0x7F).prop_map(|(at, byte)| Edit::Insert(at, byte)),
            any::<usize>().prop_map(Edit::Remove),
        ]
    }

    /// `value` edited, or `None` when the edit changes nothing.
    fn edited(value: &[u8], edit: &Edit) -> Option<Vec<u8>> {
        let mut bytes = value.to_vec();
        match *edit {
            Edit::Replace(_, byte) | Edit::Insert(_, byte) if bytes.is_empty() => bytes.push(byte),
            Edit::Replace(at, byte) => {
                let at = at % bytes.len();
                if bytes[at] == byte {
                    return None;
                }
                bytes[at] = byte;
            }
            Edit::Insert(at, byte) => bytes.insert(at % (bytes.len() + 1), byte),
            Edit::Remove(_) if bytes.is_empty() => return None,
            Edit::Remove(at) => {
                bytes.remove(at % bytes.len());
            }
        }
        Some(bytes)
    }

    proptest! {
        /// What the edge signs, the backend reads back as the same identity; list items that
        /// could not travel are dropped, so the backend never grants more than the edge did.
        #[test]
        fn signed_identities_verify_as_sent(
            identity in identity(),
            request in request(),
            at in any::<i64>(),
        ) {
            let request = signed_request(&request);
            let headers = signed(&identity, request, at);
            let verified = IdentitySigner::new(SECRET).verify(&headers, request, at, 0);
            let expected = Identity {
                permissions: identity.permissions.iter().filter(|p| travels(p)).cloned().collect(),
                roles: identity.roles.iter().filter(|r| travels(r)).cloned().collect(),
                ..identity.clone()
            };
            prop_assert_eq!(verified, Ok(expected));
        }

        /// Any one byte changed, added or removed in any identity header is refused. (A
        /// signature digit in upper case is the same signature, so it is not a change.)
        #[test]
        fn a_tampered_header_is_refused(
            identity in identity(),
            request in request(),
            which in 0..NAMES.len(),
            edit in edit(),
        ) {
            let request = signed_request(&request);
            let mut headers = signed(&identity, request, 1_000);
            let name = NAMES[which];
            let Some(bytes) = edited(headers[name].as_bytes(), &edit) else {
                return Ok(());
            };
            let same_signature = name == SIGNATURE
                && hex::decode(&bytes).ok() == hex::decode(headers[name].as_bytes()).ok();
            headers.insert(name, HeaderValue::from_bytes(&bytes).expect("visible ASCII"));
            let verified = IdentitySigner::new(SECRET).verify(&headers, request, 1_000, 30);
            if !same_signature {
                let shown = String::from_utf8_lossy(&bytes);
                prop_assert!(verified.is_err(), "{} edited to {:?} passed", name, shown);
            }
        }

        /// A signature made for one request line or request id does not pass for another.
        #[test]
        fn a_signature_is_bound_to_its_request(
            identity in identity(),
            request in request(),
            other in request(),
            which in 0..3usize,
        ) {
            let mut replay = request.clone();
            match which {
                0 => replay.0 = other.0,
                1 => replay.1 = other.1,
                _ => replay.2 = other.2,
            }
            prop_assume!(replay != request);
            let headers = signed(&identity, signed_request(&request), 1_000);
            prop_assert_eq!(
                IdentitySigner::new(SECRET).verify(&headers, signed_request(&replay), 1_000, 30),
                Err(IdentityError::BadSignature)
            );
        }

        /// A signature is accepted exactly while the clocks are within the allowed skew, at
        /// any instant (no overflow at the ends of the range).
        #[test]
        fn signatures_age_out_at_the_allowed_skew(
            at in prop_oneof![any::<i64>(), -10_000i64..10_000],
            offset in prop_oneof![any::<i64>(), -100i64..100],
            max_skew in 0u64..60,
        ) {
            let now = at.saturating_add(offset);
            let line = ("GET".to_owned(), "/".to_owned(), "r".to_owned());
            let request = signed_request(&line);
            let headers = signed(&Identity::anonymous(), request, at);
            let verified = IdentitySigner::new(SECRET).verify(&headers, request, now, max_skew);
            let skew = now.abs_diff(at);
            if skew <= max_skew {
                prop_assert_eq!(verified, Ok(Identity::anonymous()));
            } else {
                prop_assert_eq!(verified, Err(IdentityError::Stale(skew)));
            }
        }

        /// Identity headers a client made up (any bytes, any of them missing) are refused,
        /// never a panic.
        #[test]
        fn made_up_headers_are_refused(
            values in prop::collection::vec(
                prop::option::of(prop_oneof![
                    prop::collection::vec(any::<u8>(), 0..80),
                    "-?[0-9]{1,20}".prop_map(String::into_bytes),
                    "[0-9a-f]{64}".prop_map(String::into_bytes),
                ]),
                NAMES.len(),
            ),
            now in any::<i64>(),
            max_skew in any::<u64>(),
        ) {
            let mut headers = HeaderMap::new();
            for (name, value) in NAMES.iter().zip(values) {
                if let Some(value) = value.and_then(|v| HeaderValue::from_bytes(&v).ok()) {
                    headers.insert(*name, value);
                }
            }
            let line = ("GET".to_owned(), "/".to_owned(), "r".to_owned());
            let request = signed_request(&line);
            let verified = IdentitySigner::new(SECRET).verify(&headers, request, now, max_skew);
            prop_assert!(verified.is_err());
        }
    }
}
