//! The running process as other commands find it: the pid file that `mindshop reload` and
//! `--upgrade` read, and the hand-over of listening sockets to a new process.
//!
//! # Upgrades
//! Pingora hands its listening sockets to a new process over a Unix socket
//! (`edge.upgrade_socket`): the new process, started with `--upgrade`, listens there; the
//! running one, on SIGQUIT, sends its sockets, keeps accepting on them for five seconds beside
//! the new one, then stops accepting, lets its requests finish within
//! `edge.shutdown_grace_secs` and exits. The kernel queues connections on the listening sockets
//! the whole time, so no client is refused. [`take_over`] sends the SIGQUIT itself once the new
//! process listens for the sockets, so one command does the whole hand-over.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;

/// The pid file of this process, removed when it exits unless another process (the one that
/// took over by `--upgrade`) has written its own pid there since.
pub(crate) struct PidFile {
    path: PathBuf,
    pid: u32,
}

impl PidFile {
    /// Writes this process's id to `path` (through a temporary file renamed into place, so a
    /// reader never sees half of it).
    pub fn write(path: &Path) -> anyhow::Result<Self> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {} for edge.pid_file", parent.display()))?;
        }
        let pid = std::process::id();
        let partial = path.with_extension("pid.partial");
        std::fs::write(&partial, format!("{pid}\n"))
            .and_then(|()| std::fs::rename(&partial, path))
            .with_context(|| format!("cannot write edge.pid_file {}", path.display()))?;
        Ok(Self {
            path: path.to_path_buf(),
            pid,
        })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        if read_pid(&self.path).ok() == Some(self.pid) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn read_pid(path: &Path) -> anyhow::Result<u32> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read the pid file {}: is `mindshop serve` or `mindshop edge` running with \
             this data.dir (or edge.pid_file)?",
            path.display()
        )
    })?;
    text.trim()
        .parse()
        .with_context(|| format!("{} holds no process id", path.display()))
}

/// The process named by the pid file at `path`, if it is running.
pub(crate) fn running(path: &Path) -> anyhow::Result<Pid> {
    let pid = read_pid(path)?;
    let pid = Pid::from_raw(i32::try_from(pid).context("the pid file holds no process id")?);
    // Signal 0 checks that the process exists and may be signalled.
    signal::kill(pid, None).with_context(|| {
        format!(
            "the pid file {} names process {pid}, which is not running",
            path.display()
        )
    })?;
    // After a crash the file stays behind, and its pid may be another program's by now.
    if let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) {
        let runs_ours = cmdline
            .split(|b| *b == 0)
            .any(|arg| arg == b"serve" || arg == b"edge");
        if !runs_ours {
            bail!(
                "the pid file {} names process {pid}, which is not `mindshop serve` or `mindshop \
                 edge` (a stale file left by a crash?)",
                path.display()
            );
        }
    }
    Ok(pid)
}

/// Sends `signal` to `pid`.
pub(crate) fn send(pid: Pid, signal: Signal) -> anyhow::Result<()> {
    signal::kill(pid, signal).with_context(|| format!("cannot signal process {pid}"))
}

/// Takes the listening sockets over from the running process `old`: sends it SIGQUIT as soon
/// as this process listens on `socket`, then waits (in Pingora's bootstrap, at most five
/// seconds) until they have arrived. Pingora exits the process if they never do.
pub(crate) fn take_over(
    server: &mut pingora::server::Server,
    old: Pid,
    socket: &Path,
) -> anyhow::Result<()> {
    if let Some(parent) = socket.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| {
            format!("cannot create {} for edge.upgrade_socket", parent.display())
        })?;
    }
    // A socket left by an earlier upgrade would be taken for this process's.
    match std::fs::remove_file(socket) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => bail!("cannot remove the old {}: {error}", socket.display()),
    }
    let watched = socket.to_path_buf();
    std::thread::Builder::new()
        .name("mindshop-upgrade".into())
        .spawn(move || ask_for_sockets(old, &watched))
        .context("cannot start the upgrade thread")?;
    tracing::info!(%old, socket = %socket.display(), "taking over the listening sockets");
    server.bootstrap();
    tracing::info!(%old, "listening sockets received; the old process finishes its requests");
    Ok(())
}

/// Waits until `socket` exists (the new process listens), then sends `old` SIGQUIT.
fn ask_for_sockets(old: Pid, socket: &Path) {
    for _ in 0..1_000 {
        if socket.exists() {
            // `bind` creates the file just before `listen`; the old process retries a refused
            // connection after a second, which this pause spares.
            std::thread::sleep(Duration::from_millis(20));
            if let Err(error) = send(old, Signal::SIGQUIT) {
                tracing::error!(error = %format!("{error:#}"), "cannot ask the old process for its sockets");
            }
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    tracing::error!(socket = %socket.display(), "never listened for the sockets");
}
