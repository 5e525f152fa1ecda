//! [`RecordingUpstream`]: a minimal HTTP/1.1 server standing in for the backend behind `mindshop
//! edge`, so a test can see exactly what the edge forwards.
//!
//! It reads each request's head and its whole body (`Content-Length` or chunked), reports the
//! head as soon as it has it (so a test knows a request is in flight), optionally waits, then
//! answers `200 {}` and closes the connection.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// A request as the upstream received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// The request target, e.g. `/ready?x=1`.
    pub target: String,
    /// Header names lowercase, in arrival order, repeated names kept.
    pub headers: Vec<(String, String)>,
}

impl Recorded {
    /// Every value of the header `name` (lowercase).
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The single value of `name`, `None` if absent; fails the test if repeated.
    pub fn one(&self, name: &str) -> Option<&str> {
        let values = self.all(name);
        assert!(
            values.len() <= 1,
            "{name} sent {} times: {self:?}",
            values.len()
        );
        values.first().copied()
    }
}

/// The upstream, serving on `addr` until dropped.
pub struct RecordingUpstream {
    pub addr: SocketAddr,
    received: mpsc::UnboundedReceiver<Recorded>,
    accept_loop: JoinHandle<()>,
}

impl RecordingUpstream {
    /// Answers at once.
    pub async fn start() -> Self {
        Self::with_delay(Duration::ZERO).await
    }

    /// Waits `delay` after reading a request before answering it (a slow backend).
    pub async fn with_delay(delay: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the upstream");
        let addr = listener.local_addr().expect("the upstream's address");
        let (sender, received) = mpsc::unbounded_channel();
        let accept_loop = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let sender = sender.clone();
                tokio::spawn(async move {
                    // A connection the edge drops halfway (e.g. a refused body) is no error here.
                    let _ = serve(stream, sender, delay).await;
                });
            }
        });
        Self {
            addr,
            received,
            accept_loop,
        }
    }

    /// The next request whose head arrived, waiting at most 10 s.
    pub async fn next_request(&mut self) -> Recorded {
        tokio::time::timeout(Duration::from_secs(10), self.received.recv())
            .await
            .expect("no request reached the upstream within 10 s")
            .expect("the upstream stopped")
    }
}

impl Drop for RecordingUpstream {
    fn drop(&mut self) {
        self.accept_loop.abort();
    }
}

async fn serve(
    stream: TcpStream,
    sender: mpsc::UnboundedSender<Recorded>,
    delay: Duration,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    let request_line = read_line(&mut reader).await?;
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap_or_default().to_owned();
    let target = parts.next().unwrap_or_default().to_owned();
    let mut headers = Vec::new();
    loop {
        let line = read_line(&mut reader).await?;
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    let recorded = Recorded {
        method,
        target,
        headers,
    };
    let _ = sender.send(recorded.clone());

    read_body(&mut reader, &recorded).await?;
    tokio::time::sleep(delay).await;
    let mut stream = reader.into_inner();
    stream
        .write_all(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\
              connection: close\r\n\r\n{}",
        )
        .await?;
    stream.shutdown().await
}

/// Reads and discards the body, whatever its framing.
async fn read_body(reader: &mut BufReader<TcpStream>, request: &Recorded) -> std::io::Result<()> {
    let chunked = request
        .all("transfer-encoding")
        .iter()
        .any(|v| v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        loop {
            let size_line = read_line(reader).await?;
            let size = size_line.split(';').next().unwrap_or_default().trim();
            let size = u64::from_str_radix(size, 16).map_err(std::io::Error::other)?;
            if size == 0 {
                // Trailers, up to the empty line.
                while !read_line(reader).await?.is_empty() {}
                return Ok(());
            }
            discard(reader, size + 2).await?;
        }
    }
    let length = request
        .one("content-length")
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    discard(reader, length).await
}

async fn discard(reader: &mut BufReader<TcpStream>, bytes: u64) -> std::io::Result<()> {
    let copied = tokio::io::copy(&mut reader.take(bytes), &mut tokio::io::sink()).await?;
    if copied < bytes {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

/// One line without its CRLF; an error at end of stream.
async fn read_line(reader: &mut BufReader<TcpStream>) -> std::io::Result<String> {
    let mut line = String::new();
    if reader.read_line(&mut line).await? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}
