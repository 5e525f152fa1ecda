//! Helpers both benches share: running the real `mindshop` binary and its admin commands.

use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_mindshop");

/// Kills the child on drop.
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn free_addr() -> SocketAddr {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

pub fn mindshop(dir: &Path, args: &[&str], env: &[(&str, String)]) -> Command {
    let mut command = Command::new(BIN);
    command.args(args).current_dir(dir).stdin(Stdio::null());
    for (name, _) in std::env::vars() {
        if name.starts_with("MINDSHOP_") || name == "RUST_LOG" {
            command.env_remove(name);
        }
    }
    command.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    command
}

/// Runs `mindshop <args>` (an admin command) with `env`; its JSON output.
pub fn admin_json(dir: &Path, args: &[&str], env: &[(&str, String)]) -> serde_json::Value {
    let output = mindshop(dir, args, env)
        .output()
        .expect("run an admin command");
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("admin JSON")
}
