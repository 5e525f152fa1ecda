//! `ftp` sources: one file over plain FTP, in passive mode, as binary.
//!
//! The control connection goes to an address [`guard::resolve`] accepted, and the data
//! connection to that same address: only the port of the server's `PASV` reply is used, never
//! its address, so a server cannot send the backend to another host.

use std::net::SocketAddr;

use reqwest::Url;
use suppaftp::tokio::AsyncFtpStream;
use suppaftp::types::FileType;
use suppaftp::{FtpError, Mode, Status};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use super::{Download, FetchError, Limits, append_capped, guard};

/// How much of the file one read takes.
const CHUNK_BYTES: usize = 64 * 1024;

/// Fetches the one file `url` names (`ftp://[user[:password]@]host[:port]/path/file`) in
/// passive mode; `auth` (`user:password`) is used when the URL holds no credentials.
pub(super) async fn fetch(
    url: &str,
    auth: Option<&str>,
    limits: &Limits,
) -> Result<Download, FetchError> {
    let source = FtpSource::parse(url, auth)?;
    let mut ftp = log_in(&source, limits).await?;
    // On an error from here the connections are dropped, which ends the session without QUIT.
    let bytes = retrieve(&mut ftp, &source, limits).await?;
    // The file is complete: a server that answers QUIT badly does not fail the pull.
    if let Err(error) = ftp.quit().await {
        tracing::debug!(%error, "FTP QUIT after a complete transfer failed");
    }
    Ok(Download {
        bytes,
        content_type: None,
    })
}

/// Connects to a checked address of the source's host, logs in and asks for binary transfers.
async fn log_in(source: &FtpSource, limits: &Limits) -> Result<AsyncFtpStream, FetchError> {
    let addresses = guard::resolve(&source.host, source.port, limits.allow_private).await?;
    let control = TcpStream::connect(addresses.as_slice())
        .await
        .map_err(|_| {
            FetchError::Unreachable(format!(
                "the FTP server {}:{} refused the connection or could not be reached",
                source.host, source.port
            ))
        })?;
    let peer = control.peer_addr().map_err(|_| broke_off())?;
    let fail = |step| failure(step, &source.shown_path);
    let mut ftp = AsyncFtpStream::connect_with_stream(control)
        .await
        .map_err(fail(Step::Greeting))?;
    ftp.set_mode(passive_mode(peer));
    // The data connection goes to the control connection's (checked) address.
    ftp.set_passive_nat_workaround(true);
    ftp.login(&source.user, &source.password)
        .await
        .map_err(fail(Step::Login))?;
    ftp.transfer_type(FileType::Binary)
        .await
        .map_err(fail(Step::Binary))?;
    Ok(ftp)
}

/// `RETR`s the file, at most `limits.max_bytes` of it, and reads the server's completion reply.
async fn retrieve(
    ftp: &mut AsyncFtpStream,
    source: &FtpSource,
    limits: &Limits,
) -> Result<Vec<u8>, FetchError> {
    let fail = |step| failure(step, &source.shown_path);
    let mut transfer = ftp
        .retr_as_stream(&source.file)
        .await
        .map_err(fail(Step::Retrieve))?;
    let mut bytes = Vec::new();
    let mut chunk = vec![0; CHUNK_BYTES];
    loop {
        let read = transfer.read(&mut chunk).await.map_err(|_| broke_off())?;
        if read == 0 {
            break;
        }
        append_capped(&mut bytes, &chunk[..read], limits.max_bytes)?;
    }
    transfer.finish().await.map_err(fail(Step::Complete))?;
    Ok(bytes)
}

/// What to log in with and which file to retrieve.
#[derive(Debug, PartialEq, Eq)]
struct FtpSource {
    host: String,
    port: u16,
    user: String,
    password: String,
    /// The path for `RETR`: relative to the login directory, as RFC 1738 reads an FTP URL
    /// (`ftp://host/%2Fdata/x.csv` names the absolute `/data/x.csv`).
    file: String,
    /// The path as the merchant wrote it, decoded, for messages.
    shown_path: String,
}

impl FtpSource {
    fn parse(url: &str, auth: Option<&str>) -> Result<Self, FetchError> {
        let not_a_url =
            || FetchError::NotPullable(format!("sourceUrl {url:?} is not an ftp:// URL"));
        let parsed: Url = url.parse().map_err(|_| not_a_url())?;
        if parsed.scheme() != "ftp" {
            return Err(not_a_url());
        }
        let host = parsed
            .host_str()
            .ok_or_else(|| FetchError::NotPullable("sourceUrl has no host".to_owned()))?
            .to_owned();
        let undecodable =
            || FetchError::NotPullable("sourceUrl has a %-escape that is not UTF-8".to_owned());
        let relative = parsed.path().strip_prefix('/').unwrap_or(parsed.path());
        let file = percent_decode(relative).ok_or_else(undecodable)?;
        if file.is_empty() || file.ends_with('/') {
            return Err(FetchError::NotPullable(
                "sourceUrl names a directory; it must name the file to fetch".to_owned(),
            ));
        }
        let (user, password) = if !parsed.username().is_empty() {
            let password = parsed.password().unwrap_or_default();
            (
                percent_decode(parsed.username()).ok_or_else(undecodable)?,
                percent_decode(password).ok_or_else(undecodable)?,
            )
        } else if let Some(auth) = auth {
            let (user, password) = auth.split_once(':').unwrap_or((auth, ""));
            (user.to_owned(), password.to_owned())
        } else {
            // The convention for public FTP servers.
            ("anonymous".to_owned(), "anonymous@".to_owned())
        };
        Ok(Self {
            host,
            port: parsed.port().unwrap_or(21),
            user,
            password,
            shown_path: format!("/{file}"),
            file,
        })
    }
}

/// `PASV` for IPv4. It cannot describe an IPv6 address, so there `EPSV`, whose reply holds
/// only a port.
fn passive_mode(peer: SocketAddr) -> Mode {
    match peer {
        SocketAddr::V4(_) => Mode::Passive,
        SocketAddr::V6(_) => Mode::ExtendedPassive,
    }
}

/// The step of an FTP session that failed.
#[derive(Debug, Clone, Copy)]
enum Step {
    Greeting,
    Login,
    Binary,
    Retrieve,
    Complete,
}

/// The merchant's message for an FTP error at `step`; `path` is the file's, for messages.
fn failure(step: Step, path: &str) -> impl FnOnce(FtpError) -> FetchError + '_ {
    move |error| {
        let reply = match error {
            FtpError::UnexpectedResponse(reply) => reply.status,
            FtpError::ConnectionError(_) => return broke_off(),
            _ => {
                return FetchError::Source(
                    "the FTP server sent a reply that is not valid FTP".to_owned(),
                );
            }
        };
        let code = reply.code();
        FetchError::Source(match (step, reply) {
            (Step::Greeting, _) => {
                format!("the FTP server turned the connection away (reply {code})")
            }
            (Step::Login, _) => "the FTP server refused the login".to_owned(),
            (Step::Binary, _) => {
                format!("the FTP server refused binary transfers (reply {code})")
            }
            (Step::Retrieve, Status::FileUnavailable) => {
                format!("the FTP server has no file at {path}")
            }
            (Step::Retrieve, _) => format!("the FTP server would not send {path} (reply {code})"),
            (Step::Complete, _) => {
                format!("the FTP server reported that sending {path} failed (reply {code})")
            }
        })
    }
}

fn broke_off() -> FetchError {
    FetchError::Unreachable("the connection to the FTP server broke off".to_owned())
}

/// Decodes `%XX` escapes as URLs do; `None` if the result is not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let hex = |byte: Option<&u8>| byte.and_then(|byte| char::from(*byte).to_digit(16));
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while let Some(&byte) = bytes.get(at) {
        match (byte, hex(bytes.get(at + 1)), hex(bytes.get(at + 2))) {
            (b'%', Some(high), Some(low)) => {
                // Two hex digits make at most 0xFF.
                decoded.push(u8::try_from(high * 16 + low).ok()?);
                at += 3;
            }
            _ => {
                decoded.push(byte);
                at += 1;
            }
        }
    }
    String::from_utf8(decoded).ok()
}

#[cfg(test)]
pub(super) mod tests {
    use std::path::Path;
    use std::process::{Child, Command, Stdio};
    use std::time::Duration;

    use super::*;

    /// A Python server (pyftpdlib, moto) on a free loopback port, killed when dropped.
    pub(in crate::sync::fetch) struct PythonServer {
        child: Child,
        pub(in crate::sync::fetch) port: u16,
    }

    impl PythonServer {
        /// Runs `python3 args(port)`, with `env`, and waits until the port accepts connections.
        /// The port was free when asked for, but another process may take it first; then the
        /// server exits and another port is tried.
        pub(in crate::sync::fetch) async fn start(
            env: &[(&str, &str)],
            args: impl Fn(&str) -> Vec<String>,
        ) -> Self {
            for _ in 0..5 {
                let port = std::net::TcpListener::bind("127.0.0.1:0")
                    .and_then(|listener| listener.local_addr())
                    .expect("a free loopback port")
                    .port();
                let child = Command::new("python3")
                    .args(args(&port.to_string()))
                    .envs(env.iter().copied())
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("python3 starts");
                let mut server = Self { child, port };
                if server.accepts().await {
                    return server;
                }
            }
            panic!("the Python server did not start (is the module installed?)");
        }

        /// Whether the server listens within 30 seconds (moto takes a few to import).
        async fn accepts(&mut self) -> bool {
            for _ in 0..300 {
                if !matches!(self.child.try_wait(), Ok(None)) {
                    return false;
                }
                if TcpStream::connect(("127.0.0.1", self.port)).await.is_ok() {
                    return matches!(self.child.try_wait(), Ok(None));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            false
        }
    }

    impl Drop for PythonServer {
        fn drop(&mut self) {
            // Already gone if it exited; nothing else to do in a test's teardown.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    const USER: &str = "merchant";
    /// With characters a URL must escape, to show the URL's credentials are decoded.
    const PASSWORD: &str = "p@ss word";
    /// `\n` line endings and UTF-8, which must arrive byte for byte.
    const CATALOG: &[u8] = "sku,title\nA-1,Crème brûlée\nA-2,Tea\n".as_bytes();

    /// pyftpdlib serving `dir`, with `USER`/`PASSWORD`, or anonymous access when `login` is
    /// false.
    async fn ftp_server(dir: &Path, login: bool) -> PythonServer {
        let dir = dir.to_str().expect("a UTF-8 temp dir");
        PythonServer::start(&[], |port| {
            // PASV replies name 192.0.2.1 (TEST-NET-1, which reaches nothing): a transfer
            // works only if the data connection goes to the control connection's address.
            let mut args = vec!["-m", "pyftpdlib", "-i", "127.0.0.1", "-p", port];
            args.extend(["-n", "192.0.2.1", "-d", dir]);
            if login {
                args.extend(["-u", USER, "-P", PASSWORD]);
            }
            args.into_iter().map(str::to_owned).collect()
        })
        .await
    }

    fn exports() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("exports")).unwrap();
        std::fs::write(dir.path().join("exports/products.csv"), CATALOG).unwrap();
        dir
    }

    fn limits(max_bytes: u64, allow_private: bool) -> Limits {
        Limits {
            timeout: Duration::from_secs(30),
            max_bytes,
            allow_private,
        }
    }

    #[tokio::test]
    #[ignore = "needs python3 with pyftpdlib (pip install pyftpdlib)"]
    async fn a_file_is_fetched_with_the_credentials_in_the_url() {
        let dir = exports();
        let server = ftp_server(dir.path(), true).await;
        let url = format!(
            "ftp://{USER}:p%40ss%20word@127.0.0.1:{}/exports/products.csv",
            server.port
        );
        let download = fetch(&url, Some("someone:else"), &limits(1 << 20, true))
            .await
            .unwrap();
        assert_eq!(download.bytes, CATALOG);
        assert_eq!(download.content_type, None);
    }

    #[tokio::test]
    #[ignore = "needs python3 with pyftpdlib (pip install pyftpdlib)"]
    async fn a_file_is_fetched_with_the_configured_auth() {
        let dir = exports();
        let server = ftp_server(dir.path(), true).await;
        let url = format!("ftp://127.0.0.1:{}/exports/products.csv", server.port);
        let auth = format!("{USER}:{PASSWORD}");
        let download = fetch(&url, Some(&auth), &limits(1 << 20, true))
            .await
            .unwrap();
        assert_eq!(download.bytes, CATALOG);
    }

    #[tokio::test]
    #[ignore = "needs python3 with pyftpdlib (pip install pyftpdlib)"]
    async fn without_credentials_the_login_is_anonymous() {
        let dir = exports();
        let server = ftp_server(dir.path(), false).await;
        let url = format!("ftp://127.0.0.1:{}/exports/products.csv", server.port);
        let download = fetch(&url, None, &limits(1 << 20, true)).await.unwrap();
        assert_eq!(download.bytes, CATALOG);
    }

    #[tokio::test]
    #[ignore = "needs python3 with pyftpdlib (pip install pyftpdlib)"]
    async fn a_missing_file_is_named_in_the_error() {
        let dir = exports();
        let server = ftp_server(dir.path(), true).await;
        let url = format!("ftp://127.0.0.1:{}/exports/missing.csv", server.port);
        let auth = format!("{USER}:{PASSWORD}");
        let error = fetch(&url, Some(&auth), &limits(1 << 20, true))
            .await
            .unwrap_err();
        assert_eq!(
            error,
            FetchError::Source("the FTP server has no file at /exports/missing.csv".to_owned())
        );
    }

    #[tokio::test]
    #[ignore = "needs python3 with pyftpdlib (pip install pyftpdlib)"]
    async fn a_wrong_password_is_a_refused_login() {
        let dir = exports();
        let server = ftp_server(dir.path(), true).await;
        let url = format!("ftp://127.0.0.1:{}/exports/products.csv", server.port);
        let error = fetch(&url, Some("merchant:wrong"), &limits(1 << 20, true))
            .await
            .unwrap_err();
        assert_eq!(
            error,
            FetchError::Source("the FTP server refused the login".to_owned())
        );
    }

    #[tokio::test]
    #[ignore = "needs python3 with pyftpdlib (pip install pyftpdlib)"]
    async fn a_file_over_the_cap_is_too_large() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("big.csv"), vec![b'x'; 4 << 20]).unwrap();
        let server = ftp_server(dir.path(), true).await;
        let url = format!("ftp://127.0.0.1:{}/big.csv", server.port);
        let auth = format!("{USER}:{PASSWORD}");
        let error = fetch(&url, Some(&auth), &limits(100_000, true))
            .await
            .unwrap_err();
        assert_eq!(error, FetchError::TooLarge(100_000));
    }

    #[tokio::test]
    async fn loopback_is_refused_unless_private_sources_are_allowed() {
        let error = fetch(
            "ftp://127.0.0.1:2121/products.csv",
            None,
            &limits(1 << 20, false),
        )
        .await
        .unwrap_err();
        assert!(matches!(error, FetchError::Refused(_)), "{error:?}");
    }

    #[tokio::test]
    async fn a_closed_port_is_unreachable() {
        // Bound and let go: nothing listens there now.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .unwrap()
            .port();
        let url = format!("ftp://127.0.0.1:{port}/products.csv");
        let error = fetch(&url, None, &limits(1 << 20, true)).await.unwrap_err();
        assert!(matches!(error, FetchError::Unreachable(_)), "{error:?}");
    }

    #[test]
    fn credentials_come_from_the_url_then_auth_then_anonymous() {
        let source = FtpSource::parse("ftp://m%40x:p%3Aw@shop.example/feed.csv", Some("a:b"));
        let source = source.unwrap();
        assert_eq!(
            (source.user.as_str(), source.password.as_str()),
            ("m@x", "p:w")
        );
        assert_eq!(source.port, 21);
        let source = FtpSource::parse("ftp://shop.example:2121/feed.csv", Some("a:b:c")).unwrap();
        assert_eq!(
            (source.user.as_str(), source.password.as_str()),
            ("a", "b:c")
        );
        assert_eq!(source.port, 2121);
        let source = FtpSource::parse("ftp://shop.example/feed.csv", None).unwrap();
        assert_eq!(
            (source.user.as_str(), source.password.as_str()),
            ("anonymous", "anonymous@")
        );
    }

    #[test]
    fn the_path_is_relative_to_the_login_directory_unless_it_starts_with_2f() {
        let source = FtpSource::parse("ftp://h/out/my%20feed.csv", None).unwrap();
        assert_eq!(source.file, "out/my feed.csv");
        assert_eq!(source.shown_path, "/out/my feed.csv");
        let source = FtpSource::parse("ftp://h/%2Fdata/feed.csv", None).unwrap();
        assert_eq!(source.file, "/data/feed.csv");
    }

    #[test]
    fn urls_that_name_no_file_are_not_pullable() {
        for url in [
            "ftp://h/",
            "ftp://h/exports/",
            "http://h/feed.csv",
            "ftp://h/%FF.csv",
            "feed.csv",
        ] {
            let error = FtpSource::parse(url, None).unwrap_err();
            assert!(
                matches!(error, FetchError::NotPullable(_)),
                "{url}: {error:?}"
            );
        }
    }

    #[test]
    fn stray_percent_signs_are_kept() {
        assert_eq!(percent_decode("100%").as_deref(), Some("100%"));
        assert_eq!(percent_decode("%4g%41%e2%82%ac").as_deref(), Some("%4gA€"));
    }
}
