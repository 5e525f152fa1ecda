//! End-to-end tests of loading: file, environment, validation and printing together.

use std::fs;
use std::path::PathBuf;

use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect()
}

/// A config file in a fresh temp dir (kept alive by the returned guard).
fn file_with(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("mindshop.toml");
    fs::write(&path, text).expect("write config");
    (dir, path)
}

fn addr(text: &str) -> SocketAddr {
    text.parse().expect("literal address")
}

fn load_error(path: Option<&Path>, vars: &[(&str, &str)]) -> String {
    match Config::load(path, env(vars)) {
        Ok(config) => panic!("expected an error, loaded {config:?}"),
        Err(err) => err.to_string(),
    }
}

#[test]
fn no_file_and_no_env_gives_the_embedded_defaults() {
    // The crate directory has no mindshop.toml, so this is the default-file-absent path.
    let config = Config::load(None, env(&[])).expect("defaults load");
    assert_eq!(config, Config::default());
    assert_eq!(config.edge.listen, addr("127.0.0.1:8080"));
    assert_eq!(config.edge.metrics_listen, addr("127.0.0.1:9464"));
    assert_eq!(config.backend.listen, addr("127.0.0.1:8081"));
    assert_eq!(config.edge.max_body_bytes, 16 * 1024 * 1024);
    assert_eq!(config.database.url, "sqlite://data/mindshop.db");
    assert_eq!(config.database.kind(), DatabaseKind::Sqlite);
    assert_eq!(config.log.format, LogFormat::Text);
    assert_eq!(config.auth.jwt_secret, None);
}

#[test]
fn a_file_overrides_defaults_and_keeps_the_rest() {
    let (_dir, path) = file_with(
        "[edge]\nlisten = \"0.0.0.0:80\"\n\n[database]\nurl = \"postgres://shop@db/m\"\n\n\
         [log]\nformat = \"json\"\n",
    );
    let config = Config::load(Some(&path), env(&[])).expect("valid file");
    assert_eq!(config.edge.listen, addr("0.0.0.0:80"));
    assert_eq!(config.edge.threads, 2);
    assert_eq!(config.database.kind(), DatabaseKind::Postgres);
    assert_eq!(config.log.format, LogFormat::Json);
}

#[test]
fn environment_wins_over_the_file() {
    let (_dir, path) = file_with("[edge]\nthreads = 3\nlisten = \"127.0.0.1:7000\"\n");
    let config = Config::load(
        Some(&path),
        env(&[
            ("MINDSHOP_EDGE_THREADS", "6"),
            ("MINDSHOP_DATABASE_URL", "sqlite::memory:"),
        ]),
    )
    .expect("valid");
    assert_eq!(config.edge.threads, 6);
    assert_eq!(config.edge.listen, addr("127.0.0.1:7000"));
    assert_eq!(config.database.url, "sqlite::memory:");
}

#[test]
fn env_arrays_take_commas_or_a_toml_literal() {
    let expected = vec![addr("127.0.0.1:8081"), addr("127.0.0.1:8082")];
    for text in [
        "127.0.0.1:8081,127.0.0.1:8082",
        r#"["127.0.0.1:8081", "127.0.0.1:8082"]"#,
    ] {
        let config = Config::load(None, env(&[("MINDSHOP_EDGE_BACKENDS", text)])).expect(text);
        assert_eq!(config.edge.backends, expected, "from {text}");
        assert_eq!(config.edge_backends(), expected);
    }
}

#[test]
fn env_secrets_are_read_as_strings_and_checked() {
    let long = "k".repeat(48);
    let config = Config::load(
        None,
        env(&[
            ("MINDSHOP_AUTH_JWT_SECRET", &long),
            ("MINDSHOP_INTERNAL_SECRET", &long),
        ]),
    )
    .expect("long secrets");
    assert_eq!(
        config.auth.jwt_secret.as_ref().map(Secret::expose),
        Some(long.as_str())
    );
    assert_eq!(
        config.internal.secret.as_ref().map(Secret::expose),
        Some(long.as_str())
    );

    let message = load_error(None, &[("MINDSHOP_INTERNAL_SECRET", "too-short")]);
    assert!(
        message.starts_with("MINDSHOP_INTERNAL_SECRET: internal.secret: must be at least 32 bytes"),
        "{message}"
    );
    assert!(!message.contains("too-short"));
}

#[test]
fn jwt_max_lifetime_comes_from_the_file_or_the_environment_and_is_checked() {
    assert_eq!(Config::default().auth.jwt_max_lifetime_secs, None);
    let (_dir, path) = file_with("[auth]\njwt_max_lifetime_secs = 86400\n");
    let from_file = Config::load(Some(&path), env(&[])).expect("valid file");
    assert_eq!(from_file.auth.jwt_max_lifetime_secs, Some(86400));
    let from_env = Config::load(
        Some(&path),
        env(&[("MINDSHOP_AUTH_JWT_MAX_LIFETIME_SECS", "900")]),
    )
    .expect("valid variable");
    assert_eq!(from_env.auth.jwt_max_lifetime_secs, Some(900));

    let message = load_error(None, &[("MINDSHOP_AUTH_JWT_MAX_LIFETIME_SECS", "0")]);
    assert!(
        message.starts_with(
            "MINDSHOP_AUTH_JWT_MAX_LIFETIME_SECS: auth.jwt_max_lifetime_secs: must be greater"
        ),
        "{message}"
    );
}

#[test]
fn bad_env_values_name_the_variable_and_key() {
    let message = load_error(None, &[("MINDSHOP_EDGE_THREADS", "abc")]);
    assert_eq!(
        message,
        "MINDSHOP_EDGE_THREADS: edge.threads: expected an integer, got \"abc\""
    );

    let message = load_error(None, &[("MINDSHOP_EDGE_LISTEN", "abc")]);
    assert!(
        message.starts_with("MINDSHOP_EDGE_LISTEN: edge.listen: invalid socket address \"abc\""),
        "{message}"
    );

    let message = load_error(None, &[("MINDSHOP_EDGE_THREADS", "-1")]);
    assert!(
        message.starts_with("MINDSHOP_EDGE_THREADS: edge.threads: "),
        "{message}"
    );

    let message = load_error(None, &[("MINDSHOP_LOG_FORMAT", "xml")]);
    assert!(
        message.starts_with("MINDSHOP_LOG_FORMAT: log.format: "),
        "{message}"
    );
}

#[test]
fn unknown_env_key_in_a_known_section_is_an_error() {
    let message = load_error(None, &[("MINDSHOP_EDGE_LISTN", "127.0.0.1:1")]);
    assert_eq!(message, "MINDSHOP_EDGE_LISTN: unknown key edge.listn");
}

#[test]
fn other_tools_mindshop_variables_are_ignored() {
    let config = Config::load(
        None,
        env(&[
            ("MINDSHOP_TEST_POSTGRES_URL", "postgres://test@localhost/t"),
            ("MINDSHOP_CONFIG", "/nowhere.toml"),
        ]),
    )
    .expect("ignored");
    assert_eq!(config, Config::default());
}

#[test]
fn unknown_key_in_the_file_is_named_with_the_file() {
    let (_dir, path) = file_with("[edge]\nlisen = \"127.0.0.1:1\"\n");
    let message = load_error(Some(&path), &[]);
    assert_eq!(
        message,
        format!("unknown key edge.lisen in {}", path.display())
    );

    let (_dir, path) = file_with("[rediss]\nurl = \"redis://x\"\n");
    let message = load_error(Some(&path), &[]);
    assert_eq!(message, format!("unknown key rediss in {}", path.display()));
}

#[test]
fn invalid_listen_address_names_edge_listen() {
    let err = Config::from_toml_str("[edge]\nlisten = \"abc\"\n").expect_err("not an address");
    assert!(
        err.to_string()
            .starts_with("edge.listen: invalid socket address \"abc\""),
        "{err}"
    );

    let (_dir, path) = file_with("[edge]\nbackends = [\"127.0.0.1:1\", \"nope\"]\n");
    let message = load_error(Some(&path), &[]);
    assert!(
        message.starts_with("edge.backends: invalid socket address \"nope\""),
        "{message}"
    );
    assert!(
        message.ends_with(&format!("(in {})", path.display())),
        "{message}"
    );
}

#[test]
fn bad_database_url_names_database_url() {
    let err = Config::from_toml_str("[database]\nurl = \"mysql://root@db/shop\"\n")
        .expect_err("unsupported scheme");
    assert_eq!(
        err.to_string(),
        "database.url: must start with sqlite:, postgres:// or postgresql://"
    );
}

#[test]
fn wrong_types_and_broken_toml_are_reported_with_key_or_file() {
    let err = Config::from_toml_str("[edge]\nthreads = \"four\"\n").expect_err("string for int");
    assert!(
        err.to_string()
            .starts_with("edge.threads: invalid type: string \"four\""),
        "{err}"
    );

    let (_dir, path) = file_with("[edge\nthreads = 4\n");
    let message = load_error(Some(&path), &[]);
    assert!(
        message.starts_with(&format!("invalid TOML in {}: ", path.display())),
        "{message}"
    );
}

#[test]
fn an_explicit_missing_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("absent.toml");
    let message = load_error(Some(&path), &[]);
    assert!(message.starts_with(&format!("cannot read config file {}", path.display())));
}

#[test]
fn redacted_toml_hides_secrets_and_the_db_password_only() {
    let mut config = Config::default();
    config.auth.jwt_secret = Some(Secret::new("jwt-secret-value-0123456789abcdef".to_owned()));
    config.internal.secret = Some(Secret::new("internal-secret-value-0123456789ab".to_owned()));
    config.database.url = "postgres://shop:pa55word@db.internal:5432/mindshop".to_owned();
    let shown = config.redacted_toml();
    assert!(!shown.contains("jwt-secret-value"), "{shown}");
    assert!(!shown.contains("internal-secret-value"), "{shown}");
    assert!(!shown.contains("pa55word"), "{shown}");
    assert!(
        shown.contains("postgres://shop:[redacted]@db.internal:5432/mindshop"),
        "{shown}"
    );
    assert!(shown.contains("jwt_secret = \"[redacted]\""), "{shown}");
    // The secret inside the config value itself is untouched.
    assert_eq!(
        config.database.url,
        "postgres://shop:pa55word@db.internal:5432/mindshop"
    );
}

#[test]
fn printed_config_without_secrets_loads_back_unchanged() {
    let mut config = Config::default();
    config.edge.backends = vec![addr("10.0.0.2:8081"), addr("[::1]:8081")];
    config.log.format = LogFormat::Json;
    let reloaded = Config::from_toml_str(&config.redacted_toml()).expect("printed config loads");
    assert_eq!(reloaded, config);
}

#[test]
fn jwt_secret_is_generated_once_in_the_data_dir_unless_configured() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config::default();
    config.data.dir = dir.path().join("data");
    let first = config.resolve_jwt_secret().expect("generated");
    assert!(first.expose().len() >= 32);
    assert_eq!(config.resolve_jwt_secret().expect("reused"), first);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let file = config.data.dir.join("jwt_secret");
        let mode = fs::metadata(file).expect("file").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let configured = Secret::new("c".repeat(32));
    config.auth.jwt_secret = Some(configured.clone());
    assert_eq!(config.resolve_jwt_secret().expect("configured"), configured);
}

#[test]
fn edge_backends_fall_back_to_the_local_backend() {
    let mut config = Config::default();
    assert_eq!(config.edge_backends(), vec![addr("127.0.0.1:8081")]);

    config.backend.listen = addr("0.0.0.0:9001");
    assert_eq!(config.edge_backends(), vec![addr("127.0.0.1:9001")]);
    config.backend.listen = addr("[::]:9001");
    assert_eq!(config.edge_backends(), vec![addr("[::1]:9001")]);

    config.edge.backends = vec![addr("10.0.0.5:8081")];
    assert_eq!(config.edge_backends(), vec![addr("10.0.0.5:8081")]);
}

#[test]
fn the_whole_answer_timeout_is_set_by_env_and_must_cover_the_first_chunk() {
    assert_eq!(Config::default().chat.llm_total_timeout_secs, 120);
    let config =
        Config::load(None, env(&[("MINDSHOP_CHAT_LLM_TOTAL_TIMEOUT_SECS", "45")])).expect("valid");
    assert_eq!(config.chat.llm_total_timeout_secs, 45);

    let message = load_error(None, &[("MINDSHOP_CHAT_LLM_TOTAL_TIMEOUT_SECS", "0")]);
    assert!(
        message.contains("chat.llm_total_timeout_secs: must be greater than 0"),
        "{message}"
    );
    let message = load_error(
        None,
        &[
            ("MINDSHOP_CHAT_LLM_TIMEOUT_SECS", "30"),
            ("MINDSHOP_CHAT_LLM_TOTAL_TIMEOUT_SECS", "20"),
        ],
    );
    assert!(
        message.contains("chat.llm_total_timeout_secs: must be at least chat.llm_timeout_secs"),
        "{message}"
    );
}

#[test]
fn the_https_listener_and_its_certificates_load_from_the_file() {
    let (_dir, path) = file_with(
        "[edge]\ntls_listen = \"0.0.0.0:8443\"\nhsts_max_age_secs = 31536000\n\
         trusted_proxies = [\"10.0.0.0/8\", \"2001:db8::1\"]\n\n\
         [[edge.tls_certificates]]\ncert_file = \"a.pem\"\nkey_file = \"a.key\"\nhosts = [\"shop.test\", \"*.stores.test\"]\n",
    );
    let config = Config::load(Some(&path), env(&[])).expect("loads");
    assert_eq!(config.edge.tls_listen, Some(addr("0.0.0.0:8443")));
    assert_eq!(
        config.edge.tls_certificates[0].hosts,
        ["shop.test", "*.stores.test"]
    );
    assert!(config.edge.is_trusted_proxy("10.2.3.4".parse().unwrap()));
    assert!(
        config
            .edge
            .is_trusted_proxy("::ffff:10.2.3.4".parse().unwrap())
    );
    assert!(config.edge.is_trusted_proxy("2001:db8::1".parse().unwrap()));
    assert!(!config.edge.is_trusted_proxy("192.0.2.1".parse().unwrap()));

    // The environment sets and clears the listener and the ranges.
    let config = Config::load(
        None,
        env(&[
            ("MINDSHOP_EDGE_TLS_LISTEN", ""),
            ("MINDSHOP_EDGE_TRUSTED_PROXIES", "127.0.0.1/32,::1"),
            ("MINDSHOP_EDGE_MAX_CONNECTIONS_PER_IP", "8"),
        ]),
    )
    .expect("loads");
    assert_eq!(config.edge.tls_listen, None);
    assert_eq!(config.edge.trusted_proxies.len(), 2);
    assert_eq!(config.edge.max_connections_per_ip, 8);
}

#[test]
fn edge_tls_and_client_limits_are_checked_naming_the_key() {
    let (_dir, path) = file_with("[edge]\ntls_listen = \"127.0.0.1:8443\"\n");
    assert!(load_error(Some(&path), &[]).contains("edge.tls_certificates"));
    let (_dir, path) = file_with(
        "[edge]\ntls_listen = \"127.0.0.1:8443\"\n[[edge.tls_certificates]]\n\
         cert_file = \"a.pem\"\nkey_file = \"a.key\"\nhosts = [\"Shop.Test\"]\n",
    );
    assert!(load_error(Some(&path), &[]).contains("edge.tls_certificates[0].hosts"));
    let (_dir, path) = file_with("[edge]\nredirect_http_to_https = true\n");
    assert!(load_error(Some(&path), &[]).contains("edge.redirect_http_to_https"));
    let (_dir, path) = file_with("[edge]\ntrusted_proxies = [\"10.0.0.0/33\"]\n");
    assert!(load_error(Some(&path), &[]).contains("10.0.0.0/33"));
    let (_dir, path) = file_with("[edge]\nmax_connections = 10\nmax_connections_per_ip = 11\n");
    assert!(load_error(Some(&path), &[]).contains("edge.max_connections_per_ip"));
    let (_dir, path) = file_with("[edge]\nheader_read_timeout_ms = 0\n");
    assert!(load_error(Some(&path), &[]).contains("edge.header_read_timeout_ms"));
}
