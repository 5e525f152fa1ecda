//! [`TcpRelay`]: a TCP forwarder in front of a real server (Redis), which a test stops to see
//! what the edge does when that server goes away mid-flight, and starts again on the same
//! port to see it recover.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// Forwards every connection made to [`TcpRelay::addr`] to the target, byte for byte.
pub struct TcpRelay {
    pub addr: SocketAddr,
    target: SocketAddr,
    /// The accept loop; it owns every forwarded connection, so aborting it closes them all.
    running: Option<JoinHandle<()>>,
}

impl TcpRelay {
    /// Relays a fresh loopback port to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the relay");
        let addr = listener.local_addr().expect("the relay's address");
        Self {
            addr,
            target,
            running: Some(tokio::spawn(relay(listener, target))),
        }
    }

    /// Stops listening and closes every relayed connection, as if the target had died.
    pub async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            running.abort();
            // Wait until the task (and with it every connection) is gone.
            let _ = running.await;
        }
    }

    /// Listens again on the same port (tokio sets SO_REUSEADDR, so closed connections in
    /// TIME_WAIT do not block it).
    pub async fn resume(&mut self) {
        self.stop().await;
        let listener = TcpListener::bind(self.addr)
            .await
            .expect("bind the relay's port again");
        self.running = Some(tokio::spawn(relay(listener, self.target)));
    }
}

impl Drop for TcpRelay {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            running.abort();
        }
    }
}

async fn relay(listener: TcpListener, target: SocketAddr) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((mut inbound, _)) = accepted else { continue };
                connections.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
            // Reap finished connections so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}
