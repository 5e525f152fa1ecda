//! The HTTPS listener's certificates: read from PEM files at start-up and on every reload,
//! chosen per handshake by the SNI name the client sends, and their expiry exported for
//! monitoring. A reload replaces the whole set at once ([`CertificateResolver::replace`]):
//! handshakes already under way finish with the certificate they were given.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, LazyLock};

use arc_swap::ArcSwap;

use mindshop_config::{EdgeConfig, TlsCertificate};
use prometheus::{IntGaugeVec, register_int_gauge_vec};
use rustls::crypto::ring::sign::any_supported_type;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// `mindshop_tls_certificate_expiry_timestamp_seconds{host}`: when each served certificate's
/// validity ends, so an alert can fire weeks before.
static CERTIFICATE_EXPIRY: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "mindshop_tls_certificate_expiry_timestamp_seconds",
        "End of validity (notAfter, Unix seconds) of each certificate the HTTPS listener serves, by host.",
        &["host"]
    )
    .expect("metric names are valid and registered once")
});

/// The certificates of `edge.tls_certificates`, by the names they serve.
#[derive(Debug)]
pub struct Certificates {
    /// `shop.example.com` → its certificate.
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `example.com` for an entry `*.example.com`: serves one label under it.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    /// The first entry: for clients that send no SNI name or one no entry lists.
    default: Arc<CertifiedKey>,
    /// Each served host (`*` for an entry without hosts) and its certificate's notAfter.
    expiry: Vec<(String, i64)>,
}

impl Certificates {
    /// Reads every certificate and key; an error names the key of the file at fault
    /// (`edge.tls_certificates[1].key_file: …`).
    pub fn load(edge: &EdgeConfig) -> Result<Self, String> {
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        let mut default = None;
        let mut expiries = Vec::new();
        for (index, entry) in edge.tls_certificates.iter().enumerate() {
            let key = Arc::new(certified_key(index, entry)?);
            let expiry = not_after(index, entry, &key)?;
            for host in &entry.hosts {
                match host.strip_prefix("*.") {
                    Some(parent) => wildcard.entry(parent.to_owned()),
                    None => exact.entry(host.clone()),
                }
                .or_insert_with(|| key.clone());
                expiries.push((host.clone(), expiry));
            }
            if entry.hosts.is_empty() {
                expiries.push(("*".to_owned(), expiry));
            }
            default.get_or_insert(key);
        }
        let default = default.ok_or_else(|| {
            "edge.tls_certificates: at least one certificate is needed for edge.tls_listen"
                .to_owned()
        })?;
        Ok(Self {
            exact,
            wildcard,
            default,
            expiry: expiries,
        })
    }

    /// Exports the expiry of these certificates, and only these.
    fn publish(&self) {
        CERTIFICATE_EXPIRY.reset();
        for (host, expiry) in &self.expiry {
            CERTIFICATE_EXPIRY.with_label_values(&[host]).set(*expiry);
        }
    }

    /// The certificate for the SNI name `host` (any case, without a trailing dot).
    pub fn for_host(&self, host: Option<&str>) -> &Arc<CertifiedKey> {
        let Some(host) = host.map(|h| h.trim_end_matches('.').to_ascii_lowercase()) else {
            return &self.default;
        };
        if let Some(key) = self.exact.get(&host) {
            return key;
        }
        host.split_once('.')
            .and_then(|(_, parent)| self.wildcard.get(parent))
            .unwrap_or(&self.default)
    }
}

/// The certificates in use, as the HTTPS listener asks for them per handshake.
#[derive(Debug)]
pub struct CertificateResolver {
    current: ArcSwap<Certificates>,
}

impl CertificateResolver {
    pub fn new(certificates: Certificates) -> Self {
        certificates.publish();
        Self {
            current: ArcSwap::from_pointee(certificates),
        }
    }

    /// Serves `certificates` from the next handshake on.
    pub fn replace(&self, certificates: Certificates) {
        certificates.publish();
        self.current.store(Arc::new(certificates));
    }
}

impl ResolvesServerCert for CertificateResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load().for_host(hello.server_name()).clone())
    }
}

fn certified_key(index: usize, entry: &TlsCertificate) -> Result<CertifiedKey, String> {
    let named = |field: &str, path: &Path, problem: String| {
        format!(
            "edge.tls_certificates[{index}].{field}: {}: {problem}",
            path.display()
        )
    };
    let chain = CertificateDer::pem_file_iter(&entry.cert_file)
        .map_err(|e| named("cert_file", &entry.cert_file, e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| named("cert_file", &entry.cert_file, e.to_string()))?;
    if chain.is_empty() {
        return Err(named(
            "cert_file",
            &entry.cert_file,
            "holds no PEM certificate".to_owned(),
        ));
    }
    let private = PrivateKeyDer::from_pem_file(&entry.key_file)
        .map_err(|e| named("key_file", &entry.key_file, e.to_string()))?;
    let signing = any_supported_type(&private)
        .map_err(|e| named("key_file", &entry.key_file, e.to_string()))?;
    let key = CertifiedKey::new(chain, signing);
    key.keys_match().map_err(|e| {
        named(
            "key_file",
            &entry.key_file,
            format!("is not the key of {}: {e}", entry.cert_file.display()),
        )
    })?;
    Ok(key)
}

/// The leaf certificate's notAfter, in Unix seconds.
fn not_after(index: usize, entry: &TlsCertificate, key: &CertifiedKey) -> Result<i64, String> {
    let leaf = key.end_entity_cert().map_err(|e| e.to_string())?;
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf.as_ref()).map_err(|e| {
        format!(
            "edge.tls_certificates[{index}].cert_file: {}: not an X.509 certificate: {e}",
            entry.cert_file.display()
        )
    })?;
    Ok(parsed.validity().not_after.timestamp())
}
