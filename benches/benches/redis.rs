//! The Redis backend against a raw `EVALSHA` of the same script, on the same server, in the same
//! run: decisions per second with 1 and 64 concurrent tasks beside `redis-benchmark` (1 and 64
//! clients) and an in-process raw `EVALSHA` loop, single-client latency p50/p99 beside the raw
//! round trip, and `INFO commandstats` around full `Limiter` decisions (one call each: `FCALL` on
//! Redis 7).
//!
//! `scripts/bench-redis.sh` runs it pinned (Redis on core 0, this and redis-benchmark on core 1).
//! Without `--bench` (as `cargo test --all-targets` runs it) it does a short smoke run on a
//! server of its own.
//!
//! Environment: `REDIS_BENCH_PORT` (a server to use; default: start one), `REDIS_BENCH_SECS`
//! (seconds per throughput measurement, default 3), `REDIS_BENCH_SAMPLES` (latency samples,
//! default 20000), `REDIS_BENCH_SPAWN` (set: the callers run as a task on smol's global
//! executor, where the redis crate also drives its connection, as in a smol application;
//! unset: they run in `block_on` on the main thread, so every call crosses threads, as from
//! another runtime's executor).

use std::{process::Command, sync::Arc};

use ratekeeper_benches::{latency, throughput};
use ratekeeper_core::{Limit, StrategyKind};
use ratekeeper_decision::{Limiter, RequestView, headers::HeaderOptions};
use ratekeeper_redis::{BATCH_LUA, RedisStorage};
use ratekeeper_storage::{Charge, Key, Storage};
use redis::{AsyncCommands as _, Cmd};

fn env_or<T: core::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn redis_benchmark(port: u16, clients: usize, requests: usize, args: &[String]) -> Option<f64> {
    let out = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args([
            "-c",
            &clients.to_string(),
            "-n",
            &requests.to_string(),
            "--csv",
        ])
        .arg("EVALSHA")
        .args(args)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "test","rps",...  then  "EVALSHA ...","12345.67",...
    text.lines()
        .nth(1)?
        .split("\",\"")
        .nth(1)?
        .trim_matches('"')
        .parse()
        .ok()
}

fn commandstats(port: u16) -> String {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string(), "INFO", "commandstats"])
        .output()
        .expect("redis-cli");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("cmdstat_"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (_own_server, port) = ratekeeper_benches::redis_server();
    let secs = if full {
        env_or("REDIS_BENCH_SECS", 3.0)
    } else {
        0.2
    };
    let samples = if full {
        env_or("REDIS_BENCH_SAMPLES", 20_000)
    } else {
        200
    };
    let url = format!("redis://127.0.0.1:{port}?prefix=bench");
    let store = RedisStorage::from_uri(&url).unwrap();
    // Large enough that nothing is rejected during the run.
    let limit: Limit = "1000000000 per minute".parse().unwrap();
    let charge = Charge::new(Key::new("bench", "k"), limit, StrategyKind::Gcra, 1);
    let key = store.counter_key(&charge.key, &limit, StrategyKind::Gcra);
    let sha = redis::Script::new(BATCH_LUA).get_hash().to_owned();
    let script_args: Vec<String> = [
        sha,
        "1".into(),
        key.clone(),
        "h".into(),
        String::new(),
        "0".into(),
        // The batch's arguments for one charge: the limit, then cost, need and on-reject.
        format!(
            "g {} {} {}",
            limit.amount(),
            limit.window().as_nanos(),
            limit.emission_interval().as_nanos()
        ),
        "1 1 0".into(),
    ]
    .into();
    let mut raw_cmd = Cmd::new();
    raw_cmd.arg("EVALSHA").arg(&script_args);

    let run = async move {
        let batch = [charge.clone()];
        for _ in 0..100 {
            assert!(store.hit(&batch).await.unwrap().allowed);
        }
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
        let raw = client.get_multiplexed_async_connection().await.unwrap();
        // The store calls the batch as a function on Redis 7; the raw baseline (and
        // redis-benchmark) send the same batch as a script, which must be loaded first.
        let _: String = redis::cmd("SCRIPT")
            .arg("LOAD")
            .arg(BATCH_LUA)
            .query_async(&mut raw.clone())
            .await
            .unwrap();
        let _: i64 = raw.clone().exists(&key).await.unwrap();
        let ours = || {
            let (store, batch) = (&store, &batch);
            async move {
                assert!(store.hit(batch).await.unwrap().allowed);
            }
        };
        let raw_call = || {
            let (mut raw, cmd) = (raw.clone(), &raw_cmd);
            async move {
                let _: redis::Value = cmd.query_async(&mut raw).await.unwrap();
            }
        };

        println!(
            "redis benchmark: server port {port}, {secs} s per throughput figure, {samples} latency samples"
        );
        for c in [1usize, 64] {
            let ours_rps = throughput(c, secs, |_| ours()).await;
            let raw_rps = throughput(c, secs, |_| raw_call()).await;
            let requests = ((raw_rps * secs) as usize).max(1000);
            let rb = redis_benchmark(port, c, requests, &script_args);
            let rb_text = rb.map_or("n/a".to_owned(), |r| format!("{r:.0}"));
            let ratio = rb.map_or("n/a".to_owned(), |r| format!("{:.2}", ours_rps / r));
            println!(
                "concurrency {c:>2}: RedisStorage {ours_rps:>8.0}/s | raw EVALSHA in-process {raw_rps:>8.0}/s ({:.2}x) | redis-benchmark EVALSHA {rb_text}/s ({ratio}x)",
                ours_rps / raw_rps
            );
        }
        let (p50, p99) = latency(samples, ours).await;
        let (r50, r99) = latency(samples, raw_call).await;
        println!(
            "latency, 1 client: RedisStorage p50 {p50:.1} us p99 {p99:.1} us | raw EVALSHA p50 {r50:.1} us p99 {r99:.1} us | p50 ratio {:.2}x",
            p50 / r50
        );

        // Round trips per full request decision: two default limits and a meta limit (three
        // charges, one of them a gate), through the Decision API.
        let limiter = Limiter::builder()
            .default_limits("4000000000 per day; 4000000000 per hour")
            .meta_limits("5 per minute")
            .headers(HeaderOptions::all())
            .storage(Arc::new(store.clone()))
            .build()
            .unwrap();
        let headers = [("User-Agent", "bench")];
        let req = RequestView::new("GET", "/api/data")
            .with_peer("203.0.113.7".parse().unwrap())
            .with_headers(&headers);
        let decisions = 1_000;
        let mut c = Cmd::new();
        c.arg("CONFIG").arg("RESETSTAT");
        let _: () = c.query_async(&mut raw.clone()).await.unwrap();
        for _ in 0..decisions {
            assert!(limiter.check(&req).await.unwrap().is_allowed());
        }
        println!("INFO commandstats after {decisions} Limiter decisions (3 limits each):");
        println!("{}", commandstats(port));
    };
    if std::env::var_os("REDIS_BENCH_SPAWN").is_some() {
        smol::block_on(smol::spawn(run));
    } else {
        smol::block_on(run);
    }
}
