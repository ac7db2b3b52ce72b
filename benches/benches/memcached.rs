//! The memcached backend beside raw memcached operations on the same server, in the same run:
//! decisions per second with 1 and 64 concurrent tasks beside raw `gets` and raw
//! `gets` + `cas` round trips (what one charge needs at the least), and single-caller latency
//! p50/p99 beside a raw `gets`.
//!
//!     taskset -c 0 memcached -l 127.0.0.1 -p 21211 -U 0 -u root &
//!     MEMCACHED_BENCH_PORT=21211 taskset -c 1 cargo bench -p ratekeeper-benches --bench memcached
//!
//! Without `--bench` (as `cargo test --all-targets` runs it) it does a short smoke run on a
//! server of its own. Environment: `MEMCACHED_BENCH_PORT` (a server to use; default: start
//! one), `MEMCACHED_BENCH_SECS` (seconds per throughput figure, default 3),
//! `MEMCACHED_BENCH_SAMPLES` (latency samples, default 20000).

use std::net::TcpStream;

use async_io::Async;
use futures::{AsyncBufReadExt, AsyncWriteExt, io::BufReader};
use ratekeeper_benches::{latency, throughput};
use ratekeeper_core::{Limit, StrategyKind};
use ratekeeper_decision::{Limiter, RequestView, headers::HeaderOptions};
use ratekeeper_memcached::MemcachedStorage;
use ratekeeper_storage::{Charge, Key, Storage};
use ratekeeper_test_support::memcached::MemcachedServer;

fn env_or<T: core::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A raw connection: one command, read to the end of its reply.
struct Raw(async_lock::Mutex<BufReader<Async<TcpStream>>>);

impl Raw {
    async fn connect(port: u16) -> Self {
        let stream = Async::<TcpStream>::connect(([127, 0, 0, 1], port))
            .await
            .unwrap();
        stream.get_ref().set_nodelay(true).unwrap();
        Self(async_lock::Mutex::new(BufReader::new(stream)))
    }

    /// Sends `request` and reads lines until one is `last` (or, for `None`, one line).
    async fn call(&self, request: &[u8], last: Option<&str>) -> String {
        let mut conn = self.0.lock().await;
        conn.get_mut().write_all(request).await.unwrap();
        let mut reply = String::new();
        loop {
            let mut line = String::new();
            conn.read_line(&mut line).await.unwrap();
            let done = last.is_none_or(|l| line.trim_end() == l);
            reply.push_str(&line);
            if done {
                return reply;
            }
        }
    }

    /// `gets key`: the value and its CAS token.
    async fn gets(&self, key: &str) -> Option<(String, u64)> {
        let reply = self
            .call(format!("gets {key}\r\n").as_bytes(), Some("END"))
            .await;
        let mut lines = reply.lines();
        let head = lines.next()?;
        let cas = head.split(' ').nth(4)?.parse().ok()?;
        Some((lines.next()?.to_owned(), cas))
    }
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let own = std::env::var("MEMCACHED_BENCH_PORT")
        .is_err()
        .then(MemcachedServer::start);
    let port = own.as_ref().map_or_else(
        || env_or("MEMCACHED_BENCH_PORT", 21211),
        MemcachedServer::port,
    );
    let secs: f64 = if full {
        env_or("MEMCACHED_BENCH_SECS", 3.0)
    } else {
        0.2
    };
    let samples: usize = if full {
        env_or("MEMCACHED_BENCH_SAMPLES", 20_000)
    } else {
        200
    };
    let url = format!("memcached://127.0.0.1:{port}?prefix=bench");
    let store = MemcachedStorage::from_uri(&url).unwrap();
    let limit: Limit = "1000000000 per minute".parse().unwrap();
    let charge = |task: usize| {
        [Charge::new(
            Key::new("bench", &task.to_string()),
            limit,
            StrategyKind::Gcra,
            1,
        )]
    };
    let limiter = Limiter::builder()
        .stores(ratekeeper_stores::Stores::new())
        .storage_uri(&url)
        .default_limits("1000000000 per minute; 1000000000 per day")
        .headers(HeaderOptions::all())
        .build()
        .unwrap();
    smol::block_on(async {
        // 64 raw connections, as the store keeps up to 64 idle ones.
        let mut raws = Vec::new();
        for _ in 0..64 {
            raws.push(Raw::connect(port).await);
        }
        for raw in &raws {
            raw.call(b"set raw 0 0 8\r\n00000000\r\n", None).await;
        }
        println!(
            "memcached benchmark: server port {port}, {secs} s per throughput figure, {samples} latency samples"
        );
        for c in [1, 64] {
            let raws = &raws;
            let gets = throughput(c, secs, |task| async move {
                raws[task].gets("raw").await.unwrap();
            })
            .await;
            let gets_cas = throughput(c, secs, |task| async move {
                let (value, cas) = raws[task].gets("raw").await.unwrap();
                let request = format!("cas raw 0 0 {} {cas}\r\n{value}\r\n", value.len());
                raws[task].call(request.as_bytes(), None).await;
            })
            .await;
            let ours = throughput(c, secs, |task| {
                let store = store.clone();
                async move {
                    assert!(store.hit(&charge(task)).await.unwrap().allowed);
                }
            })
            .await;
            let decisions = throughput(c, secs, |task| {
                let limiter = limiter.clone();
                async move {
                    let ip = format!("10.0.0.{}", task % 250);
                    let req = RequestView::new("GET", "/api/data").with_peer(ip.parse().unwrap());
                    assert!(limiter.check(&req).await.unwrap().is_allowed());
                }
            })
            .await;
            println!(
                "concurrency {c:>2}: raw gets {gets:>8.0}/s | raw gets+cas {gets_cas:>8.0}/s | MemcachedStorage hit {ours:>8.0}/s ({:.2}x gets+cas) | Limiter decision, 2 limits {decisions:>8.0}/s",
                ours / gets_cas
            );
        }
        let raw = &raws[0];
        let (g50, g99) = latency(samples, || async {
            raw.gets("raw").await.unwrap();
        })
        .await;
        let (h50, h99) = latency(samples, || {
            let store = store.clone();
            async move {
                store.hit(&charge(0)).await.unwrap();
            }
        })
        .await;
        let (d50, d99) = latency(samples, || {
            let limiter = limiter.clone();
            async move {
                let req =
                    RequestView::new("GET", "/api/data").with_peer("10.0.0.1".parse().unwrap());
                limiter.check(&req).await.unwrap();
            }
        })
        .await;
        println!(
            "latency, one caller: raw gets p50 {g50:.1} us p99 {g99:.1} us | MemcachedStorage hit p50 {h50:.1} us ({:.2}x) p99 {h99:.1} us | Limiter decision p50 {d50:.1} us p99 {d99:.1} us",
            h50 / g50
        );
    });
}
