//! `mindshop admin tls self-signed`: a local certificate authority and a certificate signed by
//! it, for trying the HTTPS listener on a laptop. Trust `ca.pem` in the browser or pass it to
//! `curl --cacert`; never use these for a real store.

use std::fs;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, bail};
use base64::Engine;
use chrono::{Datelike, Utc};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, PublicKeyData,
};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::cli::SelfSignedArgs;

/// Writes `ca.pem`, `cert.pem` (the certificate, then the CA) and `key.pem` (mode 0600) to
/// `--out`, and prints their paths, the config that serves them and the certificate's SPKI
/// hash (for Chromium's `--ignore-certificate-errors-spki-list`).
pub fn run(args: &SelfSignedArgs) -> anyhow::Result<()> {
    if args.hosts.is_empty() {
        bail!("--host: name at least one host (e.g. --host localhost)");
    }
    if args.days == 0 || args.days > 825 {
        bail!("--days must be between 1 and 825 (browsers refuse longer-lived certificates)");
    }
    let out = Path::new(&args.out);
    fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;

    // From yesterday (clocks differ) to `--days` from now.
    let date = |at: chrono::DateTime<Utc>| {
        rcgen::date_time_ymd(at.year(), at.month() as u8, at.day() as u8)
    };
    let now = Utc::now();
    let not_before = date(now - chrono::Duration::days(1));
    let not_after = date(now + chrono::Duration::days(i64::from(args.days)));
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "mindshop local development CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca_params.not_before = not_before;
    ca_params.not_after = not_after;
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;

    let mut leaf_params = CertificateParams::new(args.hosts.clone())
        .context("--host: not a valid DNS name or IP address")?;
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, args.hosts[0].clone());
    leaf_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf_params.use_authority_key_identifier_extension = true;
    leaf_params.not_before = not_before;
    leaf_params.not_after = not_after;
    let leaf_key = KeyPair::generate()?;
    let leaf = leaf_params.signed_by(&leaf_key, &ca)?;

    let ca_file = out.join("ca.pem");
    let cert_file = out.join("cert.pem");
    let key_file = out.join("key.pem");
    write(&ca_file, ca.pem().as_bytes(), false)?;
    write(
        &cert_file,
        format!("{}{}", leaf.pem(), ca.pem()).as_bytes(),
        false,
    )?;
    write(&key_file, leaf_key.serialize_pem().as_bytes(), true)?;

    let spki = base64::engine::general_purpose::STANDARD
        .encode(Sha256::digest(leaf_key.subject_public_key_info()));
    let hosts = args
        .hosts
        .iter()
        .map(|h| format!("{h:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    let config = format!(
        "[edge]\ntls_listen = \"127.0.0.1:8443\"\n\n[[edge.tls_certificates]]\ncert_file = {:?}\nkey_file = {:?}\nhosts = [{hosts}]\n",
        cert_file.display().to_string(),
        key_file.display().to_string(),
    );
    let printed = json!({
        "caFile": ca_file,
        "certFile": cert_file,
        "keyFile": key_file,
        "hosts": args.hosts,
        "notAfter": not_after.unix_timestamp(),
        "spkiSha256": spki,
        "config": config,
    });
    println!("{}", serde_json::to_string_pretty(&printed)?);
    Ok(())
}

fn write(path: &Path, contents: &[u8], private: bool) -> anyhow::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(contents)
        .with_context(|| format!("cannot write {}", path.display()))
}
