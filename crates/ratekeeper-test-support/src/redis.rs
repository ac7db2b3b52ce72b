//! Real `redis-server` processes for tests, on free loopback ports: a single node, a cluster
//! of masters, and a master with a replica watched by a sentinel. Each process lives in its
//! own temporary directory and is killed when its handle drops; nothing is left running.
//!
//! The binaries are `redis-server` and `redis-cli` from `PATH` (override with the `REDIS_SERVER`
//! and `REDIS_CLI` environment variables). On Debian: `apt-get install -y redis-server`.

use core::time::Duration;
use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Command, Stdio},
    thread,
    time::Instant,
};

pub use crate::process::wait_until;
use crate::process::{Process, temp_dir, wait_port_free};

fn server_binary() -> String {
    std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_owned())
}

fn cli_binary() -> String {
    std::env::var("REDIS_CLI").unwrap_or_else(|_| "redis-cli".to_owned())
}

/// Runs `redis-cli -p port args...`: its trimmed output, or why it failed (the CLI could not
/// run, exited with an error, or printed an error reply).
pub fn try_cli(port: u16, args: &[&str]) -> Result<String, String> {
    let out = Command::new(cli_binary())
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", cli_binary()))?;
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() {
        return Err(format!(
            "redis-cli -p {port} {args:?} exited with {}: {} {}",
            out.status,
            stdout,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    // redis-cli exits 0 on an error reply; without a terminal it prints it as is.
    if stdout.starts_with("ERR ") || stdout.starts_with("Could not connect") {
        return Err(format!("redis-cli -p {port} {args:?}: {stdout}"));
    }
    Ok(stdout)
}

/// Runs `redis-cli -p port args...` and returns its trimmed output; panics when the CLI fails
/// or the server answers an error, so that a check built on the output cannot pass because
/// the server was never asked.
pub fn cli(port: u16, args: &[&str]) -> String {
    try_cli(port, args).unwrap_or_else(|e| panic!("{e}"))
}

/// A loopback port nobody listens on, and whose cluster bus port (+10000) is free too.
pub fn free_port() -> u16 {
    for _ in 0..1000 {
        let Ok(listener) = TcpListener::bind("127.0.0.1:0") else {
            continue;
        };
        let Ok(addr) = listener.local_addr() else {
            continue;
        };
        let port = addr.port();
        if port < 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port found")
}

/// One `redis-server` process.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    args: Vec<String>,
    /// For a sentinel: the port of the master it monitors.
    sentinel_of: Option<u16>,
    process: Process,
}

impl RedisServer {
    /// A fresh node (no persistence) on a free port, answering PING.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// A fresh node with extra `redis-server` arguments (e.g. `["--cluster-enabled", "yes"]`).
    pub fn start_with(extra: &[&str]) -> Self {
        Self::launch(extra.iter().map(|s| (*s).to_owned()).collect(), None)
    }

    fn launch(args: Vec<String>, sentinel_of: Option<u16>) -> Self {
        let port = free_port();
        let tag = if sentinel_of.is_some() {
            "sentinel"
        } else {
            "node"
        };
        let mut server = Self {
            port,
            dir: temp_dir(&format!("{tag}-{port}")),
            args,
            sentinel_of,
            process: Process::default(),
        };
        // The port was free when picked, but it is released before the server binds it: if
        // another process took it meanwhile, pick another (only a restart must keep its port).
        for attempt in 1.. {
            match server.spawn() {
                Ok(()) => break,
                Err(e) if attempt < 5 => {
                    eprintln!(
                        "redis-server on port {}: {e}; trying another port",
                        server.port
                    );
                    server.port = free_port();
                }
                Err(e) => panic!("redis-server on port {}: {e}", server.port),
            }
        }
        server
    }

    /// Starts the process and waits until it answers PING, and is the one answering (its pid
    /// in `INFO server`). Its output goes to `server.log` in its directory, quoted in the error.
    fn spawn(&mut self) -> Result<(), String> {
        let log_path = self.dir.join("server.log");
        let log = std::fs::File::create(&log_path).map_err(|e| format!("create the log: {e}"))?;
        let log_err = log.try_clone().map_err(|e| format!("clone the log: {e}"))?;
        let mut command = Command::new(server_binary());
        if let Some(master) = self.sentinel_of {
            let conf = self.dir.join("sentinel.conf");
            std::fs::write(
                &conf,
                format!(
                    "port {port}\nbind 127.0.0.1\ndir {dir}\nsentinel monitor {s} 127.0.0.1 {master} 1\n\
                     sentinel down-after-milliseconds {s} 500\nsentinel failover-timeout {s} 5000\n\
                     sentinel parallel-syncs {s} 1\n",
                    port = self.port,
                    dir = self.dir.display(),
                    s = RedisSentinel::SERVICE,
                ),
            )
            .map_err(|e| format!("write sentinel.conf: {e}"))?;
            command.arg(&conf).arg("--sentinel");
        } else {
            command
                .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
                .arg("--dir")
                .arg(&self.dir)
                .args(&self.args);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {}: {e} (install it: apt-get install -y redis-server)",
                    server_binary()
                )
            });
        let pid = child.id();
        self.process.run(child);
        let log = || {
            std::fs::read_to_string(&log_path)
                .map(|l| l.lines().rev().take(20).collect::<Vec<_>>().join("\n"))
                .unwrap_or_default()
        };
        let start = Instant::now();
        loop {
            if let Some(status) = self.process.exited() {
                return Err(format!("exited with {status}; its log ends:\n{}", log()));
            }
            if try_cli(self.port, &["PING"]).is_ok_and(|pong| pong == "PONG") {
                let info = try_cli(self.port, &["INFO", "server"]).unwrap_or_default();
                let ours = format!("process_id:{pid}");
                if info.lines().any(|l| l.trim() == ours) {
                    return Ok(());
                }
                self.kill();
                return Err("another process answers on this port".to_owned());
            }
            if start.elapsed() > Duration::from_secs(20) {
                self.kill();
                return Err(format!("no PONG within 20 s; its log ends:\n{}", log()));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// Runs a command on it through `redis-cli`.
    pub fn cli(&self, args: &[&str]) -> String {
        cli(self.port, args)
    }

    /// SIGKILL: the server dies at once, without saving anything.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Starts it again on the same port, empty (after [`kill`](Self::kill)).
    pub fn restart(&mut self) {
        self.kill();
        let port = self.port;
        wait_port_free(port);
        if let Err(e) = self.spawn() {
            panic!("restarting redis-server on port {port}: {e}");
        }
    }

    /// SIGSTOP: the server hangs (connections stay open, nothing is answered).
    pub fn pause(&self) {
        self.process.pause();
    }

    /// SIGCONT: a paused server resumes.
    pub fn resume(&self) {
        self.process.resume();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.process.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A cluster of masters without replicas, all 16384 slots assigned.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// `masters` nodes (at least 3), created with `redis-cli --cluster create`.
    pub fn start(masters: usize) -> Self {
        let nodes: Vec<RedisServer> = (0..masters.max(3))
            .map(|_| {
                RedisServer::start_with(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "2000",
                ])
            })
            .collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        let status = Command::new(cli_binary())
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run redis-cli --cluster create");
        assert!(status.success(), "redis-cli --cluster create failed");
        for n in &nodes {
            wait_until(
                &format!("cluster_state:ok on port {}", n.port()),
                Duration::from_secs(20),
                || n.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok"),
            );
        }
        Self { nodes }
    }

    /// The nodes.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// One node, to kill or restart.
    pub fn node_mut(&mut self, i: usize) -> &mut RedisServer {
        &mut self.nodes[i]
    }

    /// `redis+cluster://127.0.0.1:<p1>,127.0.0.1:<p2>,...`.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        format!("redis+cluster://{}", hosts.join(","))
    }

    /// The node that serves `key`'s slot.
    pub fn node_of(&self, key: &str) -> &RedisServer {
        let slot = self.nodes[0].cli(&["CLUSTER", "KEYSLOT", key]);
        let slot = slot.parse::<u16>().expect("a slot number");
        self.nodes
            .iter()
            .find(|n| owns_slot(n, slot))
            .expect("a node owns every slot")
    }
}

fn owns_slot(node: &RedisServer, slot: u16) -> bool {
    // `CLUSTER NODES` lines: id addr flags master ping pong epoch state slot-ranges...
    node.cli(&["CLUSTER", "NODES"])
        .lines()
        .filter(|l| l.contains("myself"))
        .flat_map(|l| {
            l.split_whitespace()
                .skip(8)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .any(|range| {
            let mut ends = range.split('-').filter_map(|s| s.parse::<u16>().ok());
            match (ends.next(), ends.next()) {
                (Some(a), Some(b)) => (a..=b).contains(&slot),
                (Some(a), None) => a == slot,
                _ => false,
            }
        })
}

/// A master, one replica and one sentinel (quorum 1, down after 500 ms) for the service
/// [`RedisSentinel::SERVICE`].
#[derive(Debug)]
pub struct RedisSentinel {
    master: RedisServer,
    replica: RedisServer,
    sentinel: RedisServer,
}

impl RedisSentinel {
    /// The monitored service's name.
    pub const SERVICE: &'static str = "mymaster";

    /// Starts the three processes and waits until the sentinel knows the replica.
    pub fn start() -> Self {
        let master = RedisServer::start();
        let replica =
            RedisServer::start_with(&["--replicaof", "127.0.0.1", &master.port().to_string()]);
        wait_until("the replica to sync", Duration::from_secs(20), || {
            replica
                .cli(&["INFO", "replication"])
                .contains("master_link_status:up")
        });
        let sentinel = RedisServer::launch(Vec::new(), Some(master.port()));
        wait_until(
            "the sentinel to discover the replica",
            Duration::from_secs(30),
            || {
                sentinel
                    .cli(&["SENTINEL", "REPLICAS", Self::SERVICE])
                    .contains(&replica.port().to_string())
            },
        );
        Self {
            master,
            replica,
            sentinel,
        }
    }

    /// `redis+sentinel://127.0.0.1:<sentinel port>/mymaster`.
    pub fn url(&self) -> String {
        format!(
            "redis+sentinel://127.0.0.1:{}/{}",
            self.sentinel.port(),
            Self::SERVICE
        )
    }

    /// The first master.
    pub fn master(&mut self) -> &mut RedisServer {
        &mut self.master
    }

    /// The replica, master after a failover.
    pub fn replica(&self) -> &RedisServer {
        &self.replica
    }

    /// The sentinel process.
    pub fn sentinel(&self) -> &RedisServer {
        &self.sentinel
    }

    /// The port of the master the sentinel names now.
    pub fn current_master_port(&self) -> Option<u16> {
        let out = self
            .sentinel
            .cli(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", Self::SERVICE]);
        out.lines().nth(1).and_then(|p| p.trim().parse().ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_taken_by_another_server_is_refused() {
        let first = RedisServer::start();
        let mut second = RedisServer {
            port: first.port(),
            dir: temp_dir("taken"),
            args: Vec::new(),
            sentinel_of: None,
            process: Process::default(),
        };
        let err = second
            .spawn()
            .expect_err("the port belongs to the first server");
        assert!(
            err.contains("Address already in use") || err.contains("another process answers"),
            "{err}"
        );
    }

    #[test]
    fn the_cli_fails_loudly() {
        let server = RedisServer::start();
        assert!(try_cli(server.port(), &["NOSUCHCOMMAND"]).is_err());
        let closed = free_port();
        let err = try_cli(closed, &["PING"]).expect_err("nobody listens");
        assert!(err.contains("exited with"), "{err}");
        assert!(std::panic::catch_unwind(|| cli(closed, &["--scan"])).is_err());
    }
}
