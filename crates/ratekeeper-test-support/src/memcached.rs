//! Real `memcached` processes for tests, on free loopback ports, killed when their handle
//! drops. The binary is `memcached` from `PATH` (override with `MEMCACHED`); on Debian:
//! `apt-get install -y memcached`.

use core::time::Duration;
use std::{
    io::{BufRead, BufReader, Write},
    net::TcpStream,
    process::{Command, Stdio},
};

pub use crate::process::free_port;
use crate::process::{Process, wait_port_free, wait_until};

fn binary() -> String {
    std::env::var("MEMCACHED").unwrap_or_else(|_| "memcached".to_owned())
}

/// One `memcached` process.
#[derive(Debug)]
pub struct MemcachedServer {
    port: u16,
    process: Process,
}

impl MemcachedServer {
    /// A fresh server on a free port, answering `version`.
    pub fn start() -> Self {
        let mut server = Self {
            port: free_port(),
            process: Process::default(),
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new(binary());
        cmd.args([
            "-l",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-U",
            "0",
            "-m",
            "64",
        ]);
        // memcached refuses to run as root without a user to switch to.
        if running_as_root() {
            cmd.args(["-u", "root"]);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {} (apt-get install memcached): {e}", binary()));
        self.process.run(child);
        wait_until("memcached to answer", Duration::from_secs(10), || {
            self.version().is_some()
        });
    }

    /// The server's `version` answer, or `None` when it does not answer.
    fn version(&self) -> Option<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
        stream.write_all(b"version\r\n").ok()?;
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).ok()?;
        line.starts_with("VERSION").then_some(line)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `memcached://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("memcached://127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:<port>`, for a URI naming several servers.
    pub fn host_port(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// SIGKILL: the server dies at once, and its items with it.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Starts it again on the same port, empty (after [`kill`](Self::kill)).
    pub fn restart(&mut self) {
        self.kill();
        wait_port_free(self.port);
        self.spawn();
    }

    /// SIGSTOP: the server hangs.
    pub fn pause(&self) {
        self.process.pause();
    }

    /// SIGCONT: a paused server resumes.
    pub fn resume(&self) {
        self.process.resume();
    }
}

/// Whether this process runs as root (memcached then needs `-u root`).
fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}
