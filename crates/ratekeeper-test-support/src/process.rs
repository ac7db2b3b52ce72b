//! What every test server needs: free loopback ports, a temporary directory, a child process
//! that can be killed, paused and resumed, and waiting on a condition or on a stopped process.

use core::{
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};
use std::{
    net::{TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command},
    thread,
    time::Instant,
};

/// Waits until `check` holds, polling every 20 ms, or panics after `limit` saying `what`.
pub fn wait_until(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// A loopback port nobody listens on.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Waits until nothing listens on loopback `port` any more (an old server's port is released),
/// or panics after 10 s.
pub(crate) fn wait_port_free(port: u16) {
    wait_until("the old server's port", Duration::from_secs(10), || {
        TcpStream::connect(("127.0.0.1", port)).is_err()
    });
}

/// A server's process while it runs: killed (after a resume, should it be paused) when dropped.
#[derive(Debug, Default)]
pub(crate) struct Process(Option<Child>);

impl Process {
    /// Takes charge of a freshly spawned `child`.
    pub(crate) fn run(&mut self, child: Child) {
        self.kill();
        self.0 = Some(child);
    }

    /// The process id, while it runs.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.0.as_ref().map(Child::id)
    }

    /// Whether it has exited on its own, and how; it is forgotten then.
    pub(crate) fn exited(&mut self) -> Option<std::process::ExitStatus> {
        let status = self.0.as_mut()?.try_wait().ok().flatten()?;
        self.0 = None;
        Some(status)
    }

    /// SIGKILL, then reaps it.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGSTOP, and waits until it has taken effect.
    pub(crate) fn pause(&self) {
        if let Some(pid) = self.pid() {
            signal(pid, "STOP");
            wait_stopped(pid, Duration::from_secs(5));
        }
    }

    /// SIGCONT.
    pub(crate) fn resume(&self) {
        if let Some(pid) = self.pid() {
            signal(pid, "CONT");
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.resume();
        self.kill();
    }
}

/// A fresh temporary directory for one server (`tag` in its name).
pub(crate) fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "ratekeeper-test-{}-{}-{tag}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a temporary directory");
    dir
}

/// Sends signal `name` (`STOP`, `CONT`, `KILL`) to `pid`.
fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name} {pid} failed");
}

/// Waits (at most `within`, then panics) until every thread of `pid` has stopped: `kill -STOP`
/// returns before the signal takes effect, and a request sent at once could still be served.
fn wait_stopped(pid: u32, within: Duration) {
    let stopped = || {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return true; // no /proc: nothing to wait on
        };
        tasks.flatten().all(|task| {
            std::fs::read_to_string(task.path().join("stat")).is_ok_and(|stat| {
                // `pid (comm) S ...`: the state follows the last `)`.
                let state = stat
                    .rsplit_once(')')
                    .and_then(|(_, r)| r.trim_start().chars().next());
                matches!(state, Some('T' | 't'))
            })
        })
    };
    let deadline = Instant::now() + within;
    while !stopped() {
        // A pause that never took effect would be reported later as the store's fault.
        assert!(
            Instant::now() < deadline,
            "process {pid} was sent SIGSTOP but is still running after {within:?}"
        );
        thread::sleep(Duration::from_millis(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A process that was never stopped fails the wait once its deadline passes, instead of
    /// letting a test go on against a server that still answers.
    #[test]
    fn waiting_on_a_pause_that_never_happens_fails() {
        let mut running = Command::new("sleep").arg("10").spawn().unwrap();
        let pid = running.id();
        let waited = std::panic::catch_unwind(|| wait_stopped(pid, Duration::from_millis(50)));
        let message = waited.map_err(|e| e.downcast_ref::<String>().cloned());
        assert!(
            matches!(&message, Err(Some(m)) if m.contains("still running after 50ms")),
            "{message:?}"
        );
        signal(pid, "STOP");
        wait_stopped(pid, Duration::from_secs(5));
        let _ = running.kill();
        let _ = running.wait();
    }
}
