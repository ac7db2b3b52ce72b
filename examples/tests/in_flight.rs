//! The seed tour's in-flight limits over real HTTP (`GET /api/report`: 2 in flight per client,
//! 20 in all): servers in this process on the memory store (Tide and axum), and `seed_tour`
//! processes sharing one Redis (a node, and a cluster), one of them killed while it holds slots.
//!
//! The processes are the `seed_tour` example binary, which `cargo test --all-targets` builds
//! beside this test.

use core::time::Duration;
use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Instant,
};

use async_std::{
    io::{ReadExt, WriteExt},
    net::TcpStream,
};
use futures::future::join_all;
use ratekeeper_examples::{SeedConfig, seed_app, serve_on_free_port};
use ratekeeper_test_support::redis::{RedisCluster, RedisServer, free_port};

/// One reply, read whole.
#[derive(Debug)]
struct Reply {
    status: u16,
    head: String,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    /// A refusal for want of a slot, as the seed tour words it, with the in-flight headers.
    fn is_slot_refusal(&self) -> bool {
        self.status == 429
            && self.body.contains("in flight")
            && self.header("Retry-After").is_none()
            && self.header("X-RateLimit-Reset").is_none()
    }
}

/// `host:port` of a base URL.
fn address(base: &str) -> &str {
    base.trim_start_matches("http://").trim_end_matches('/')
}

/// Sends `GET path` from `client` (as `X-Forwarded-For` names it) on a connection of its own.
async fn send(base: &str, path: &str, client: &str) -> TcpStream {
    let mut stream = TcpStream::connect(address(base)).await.unwrap();
    let head = format!(
        "GET {path} HTTP/1.1\r\nHost: test\r\nX-Forwarded-For: {client}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
}

/// Reads a reply to its end; `None` when the connection broke first.
async fn read(mut stream: TcpStream) -> Option<Reply> {
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).await.ok()?;
    let text = String::from_utf8_lossy(&bytes);
    let (head, body) = text.split_once("\r\n\r\n")?;
    Some(Reply {
        status: head.get(9..12)?.parse().ok()?,
        head: head.to_owned(),
        body: body.to_owned(),
    })
}

async fn get(base: &str, path: &str, client: &str) -> Reply {
    read(send(base, path, client).await).await.unwrap()
}

/// Statuses, sorted.
fn statuses(replies: &[Reply]) -> Vec<u16> {
    let mut s: Vec<u16> = replies.iter().map(|r| r.status).collect();
    s.sort_unstable();
    s
}

/// The seed tour in this process, on memory, reading `X-Forwarded-For` from loopback.
async fn in_process(axum: bool) -> String {
    let config = SeedConfig {
        trusted_hops: 1,
        ..SeedConfig::default()
    };
    if axum {
        return ratekeeper_examples::serve_axum_on_free_port(
            ratekeeper_examples::seed_axum_app(&config).unwrap(),
        )
        .unwrap();
    }
    serve_on_free_port(seed_app(&config).unwrap())
        .await
        .unwrap()
}

fn five_reports_from_one_client_admit_two_then_two_more(axum: bool) {
    async_std::task::block_on(async {
        let base = in_process(axum).await;
        let client = "10.9.0.1";
        let replies = join_all((0..5).map(|_| get(&base, "/api/report?ms=1500", client))).await;
        assert_eq!(
            statuses(&replies),
            [200, 200, 429, 429, 429],
            "{replies:#?}"
        );
        for refused in replies.iter().filter(|r| r.status == 429) {
            assert!(refused.is_slot_refusal(), "{refused:#?}");
            assert_eq!(refused.header("X-RateLimit-Limit"), Some("2"));
            assert_eq!(refused.header("X-RateLimit-Remaining"), Some("0"));
        }
        // The two finished: their slots are free before their replies end.
        let again = join_all((0..2).map(|_| get(&base, "/api/report?ms=0", client))).await;
        assert_eq!(statuses(&again), [200, 200], "{again:#?}");
    });
}

#[test]
fn five_reports_from_one_client_admit_two_then_two_more_on_tide() {
    five_reports_from_one_client_admit_two_then_two_more(false);
}

#[test]
fn five_reports_from_one_client_admit_two_then_two_more_on_axum() {
    five_reports_from_one_client_admit_two_then_two_more(true);
}

/// Sends 5-second reports from `client` one at a time until one is refused for want of a
/// slot: the ones still running hold the client's slots (a refusal comes at once, an admitted
/// report takes 5 s). Probing with short requests instead would take slots of its own.
async fn fill_slots(base: &str, client: &str) -> Vec<(TcpStream, Instant)> {
    let mut held = Vec::new();
    loop {
        let sent = Instant::now();
        let stream = send(base, "/api/report?ms=5000", client).await;
        match async_std::future::timeout(Duration::from_secs(1), read(stream.clone())).await {
            Ok(reply) => {
                let reply = reply.expect("a reply");
                assert!(reply.is_slot_refusal(), "{reply:#?}");
                assert_eq!(held.len(), 2, "two reports hold the client's slots");
                return held;
            }
            Err(_) => held.push((stream, sent)),
        }
        assert!(
            held.len() <= 2,
            "more than two reports running for one client"
        );
    }
}

fn a_client_that_disconnects_frees_its_slot(axum: bool) {
    async_std::task::block_on(async {
        let base = in_process(axum).await;
        let client = "10.9.0.2";
        let mut held = fill_slots(&base, client).await;
        let (first, sent) = held.remove(0);
        drop(first);
        // The server notices the close and drops the handler, long before its 5 s are up (at
        // most three probes: each refusal counts toward the meta limit of 5 per minute).
        let mut freed = None;
        for _ in 0..3 {
            async_std::task::sleep(Duration::from_millis(300)).await;
            let r = get(&base, "/api/report?ms=0", client).await;
            if r.status == 200 {
                freed = Some(sent.elapsed());
                break;
            }
        }
        let freed = freed.expect("the slot of the closed connection was never freed");
        assert!(
            freed < Duration::from_millis(4_500),
            "freed after {freed:?}"
        );
        drop(held);
    });
}

#[test]
fn a_client_that_disconnects_frees_its_slot_on_tide() {
    a_client_that_disconnects_frees_its_slot(false);
}

#[test]
fn a_client_that_disconnects_frees_its_slot_on_axum() {
    a_client_that_disconnects_frees_its_slot(true);
}

/// A `seed_tour` process of its own on `store`, reading `X-Forwarded-For` from loopback;
/// killed (SIGKILL) when dropped.
struct Seed {
    child: Child,
    base: String,
}

/// The `seed_tour` example binary beside this test's: `target/<profile>/examples/seed_tour`,
/// or, as `cargo test --all-targets` leaves it, the newest `seed_tour-<hash>` there.
fn seed_tour_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|dir| dir.join("examples"))
        .unwrap();
    let plain = dir.join("seed_tour");
    if plain.is_file() {
        return plain;
    }
    let hashed = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_prefix("seed_tour-")
                .is_some_and(|hash| hash.chars().all(|c| c.is_ascii_hexdigit()))
        })
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok());
    match hashed {
        Some(entry) => entry.path(),
        None => panic!(
            "no seed_tour binary in {}: run the tests with --all-targets (it builds the examples)",
            dir.display()
        ),
    }
}

impl Seed {
    fn start(store: &str, extra: &[(&str, &str)]) -> Self {
        let binary = seed_tour_binary();
        let port = free_port();
        let child = Command::new(&binary)
            .env("PORT", port.to_string())
            .env("REDIS_URL", store)
            .env("TRUSTED_PROXY_HOPS", "1")
            .envs(extra.iter().copied())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "seed_tour never listened"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // One decision first (from a client of its own), so that the store's connection and
        // script are ready before the test's requests.
        let warm = async_std::task::block_on(get(&base, "/api/data", "10.255.0.1"));
        assert_eq!(warm.status, 200, "{warm:#?}");
        Self { child, base }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Seed {
    fn drop(&mut self) {
        self.kill();
    }
}

/// 40 clients send two reports each at once, half to each of two processes on `store`: exactly
/// 20 are admitted (the shared limit), the 60 others refused for want of a slot.
fn forty_clients_share_twenty_slots(store: &str) {
    let (a, b) = (Seed::start(store, &[]), Seed::start(store, &[]));
    async_std::task::block_on(async {
        let requests = (0..80).map(|i| {
            let base = if i % 2 == 0 { &a.base } else { &b.base };
            let client = format!("10.8.0.{}", i / 2);
            async move { get(base, "/api/report?ms=4000", &client).await }
        });
        let replies = join_all(requests).await;
        let admitted = replies.iter().filter(|r| r.status == 200).count();
        assert_eq!(admitted, 20, "{:?}", statuses(&replies));
        assert!(
            replies
                .iter()
                .filter(|r| r.status != 200)
                .all(Reply::is_slot_refusal),
            "{replies:#?}"
        );
    });
}

#[test]
#[ignore = "needs the seed_tour example binary with the redis feature: cargo build -p ratekeeper-examples --features full --example seed_tour, then -- --ignored"]
fn forty_clients_share_twenty_slots_across_two_processes_on_one_redis() {
    let redis = RedisServer::start();
    forty_clients_share_twenty_slots(&format!("{}?prefix=inflight", redis.url()));
}

#[test]
#[ignore = "needs the seed_tour example binary with the redis feature: cargo build -p ratekeeper-examples --features full --example seed_tour, then -- --ignored"]
fn forty_clients_share_twenty_slots_across_two_processes_on_a_cluster() {
    let cluster = RedisCluster::start(3);
    forty_clients_share_twenty_slots(&cluster.url());
}

/// A process killed with SIGKILL while its requests hold slots gives nothing back: another
/// process on the same Redis refuses the client until the lease (2 s here) has ended.
#[test]
#[ignore = "needs the seed_tour example binary with the redis feature: cargo build -p ratekeeper-examples --features full --example seed_tour, then -- --ignored"]
fn a_killed_holder_loses_its_slots_after_the_lease() {
    let redis = RedisServer::start();
    let store = format!("{}?prefix=killed", redis.url());
    let lease = [("RATELIMIT_IN_FLIGHT_LEASE", "2")];
    let (mut doomed, survivor) = (Seed::start(&store, &lease), Seed::start(&store, &lease));
    async_std::task::block_on(async {
        let client = "10.7.0.1";
        let held = fill_slots(&doomed.base, client).await;
        // The other process sees the slots taken.
        let probe = get(&survivor.base, "/api/report?ms=0", client).await;
        assert!(probe.is_slot_refusal(), "{probe:#?}");
        doomed.kill();
        let killed = Instant::now();
        for (stream, _) in held {
            assert!(read(stream).await.is_none_or(|r| r.status != 200));
        }
        // Nothing was given back: the slots stand until their lease ends.
        let right_after = get(&survivor.base, "/api/report?ms=0", client).await;
        if killed.elapsed() < Duration::from_millis(900) {
            assert!(right_after.is_slot_refusal(), "{right_after:#?}");
        }
        async_std::task::sleep(Duration::from_millis(2_500).saturating_sub(killed.elapsed())).await;
        let after_lease = get(&survivor.base, "/api/report?ms=0", client).await;
        assert_eq!(after_lease.status, 200, "{after_lease:#?}");
    });
}
