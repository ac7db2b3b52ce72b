//! What a decision costs the Redis server: `usec_per_call` of `INFO commandstats` (summed over
//! every command a request sends) for each kind of charge, beside anchors measured in the same
//! run on the same server: a trivial `EVALSHA`, one `INCR`, `INCR` + `PEXPIRE` in one `MULTI`
//! (what a plain fixed-window counter pays), and the floor under any script: a bare
//! fixed-window script that reads the clock and the counter and writes it back.
//!
//! `scripts/bench-redis-cost.sh` runs it with Redis alone on core 0. Without `--bench` (as
//! `cargo test --all-targets` runs it) it does a short smoke run on a server of its own.
//!
//! Environment: `REDIS_BENCH_PORT` (a server to use; default: start one), `REDIS_COST_CALLS`
//! (requests per row, default 20000).

use core::{future::Future, sync::atomic::AtomicU64, sync::atomic::Ordering};
use std::{process::Command, sync::Arc};

use ratekeeper_core::{Limit, StrategyKind};
use ratekeeper_decision::{Limiter, RequestView, headers::HeaderOptions};
use ratekeeper_redis::RedisStorage;
use ratekeeper_storage::{Charge, Key, Storage};

/// In-flight requests: enough to keep the server busy, so that its per-call figures are steady.
const CONCURRENCY: usize = 32;

fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli");
    assert!(out.status.success(), "redis-cli {args:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The commands our store sends itself. A script's or a transaction's time includes the
/// commands it runs, which `INFO commandstats` also lists on their own: only the commands a
/// client sent are summed.
const SCRIPTS: &[&str] = &["evalsha", "eval", "fcall", "function|load", "script|load"];

/// (usec, calls) summed over the `top`-level commands in `INFO commandstats`, and every command
/// seen (inner ones included, for the record).
fn server_time(port: u16, top: &[&str]) -> (f64, u64, Vec<String>) {
    let mut usec = 0.0;
    let mut calls = 0;
    let mut names = Vec::new();
    for line in cli(port, &["INFO", "commandstats"]).lines() {
        let Some(rest) = line.trim().strip_prefix("cmdstat_") else {
            continue;
        };
        let (name, fields) = rest.split_once(':').unwrap();
        if name.starts_with("config") || name == "info" {
            continue;
        }
        names.push(name.to_owned());
        if !top.contains(&name) {
            continue;
        }
        for f in fields.split(',') {
            match f.split_once('=') {
                Some(("usec", v)) => usec += v.parse::<f64>().unwrap(),
                Some(("calls", v)) => calls += v.parse::<u64>().unwrap(),
                _ => {}
            }
        }
    }
    (usec, calls, names)
}

/// Runs `n` requests (`CONCURRENCY` at a time) and prints the server's time per request,
/// summed over the `top`-level commands.
fn row<F, Fut>(port: u16, what: &str, top: &[&str], n: u64, request: F) -> f64
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = ()>,
{
    cli(port, &["CONFIG", "RESETSTAT"]);
    let next = AtomicU64::new(0);
    smol::block_on(futures::future::join_all((0..CONCURRENCY).map(|_| async {
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= n {
                break;
            }
            request(i).await;
        }
    })));
    let (usec, calls, names) = server_time(port, top);
    let per = usec / n as f64;
    println!(
        "{what:<58} {per:7.2} us/request  {:5.2} commands/request  ({})",
        calls as f64 / n as f64,
        names.join(" ")
    );
    per
}

fn charge(i: u64, limit: &str, kind: StrategyKind, keys: u64) -> [Charge; 1] {
    [Charge::new(
        Key::new(
            "ip",
            &format!("10.{}.{}", (i % keys) / 256, (i % keys) % 256),
        ),
        limit.parse::<Limit>().unwrap(),
        kind,
        1,
    )]
}

/// A fixed window and nothing else: no batch, no limits from the arguments, no exactness
/// beyond what this benchmark's keys need. What any script that charges a fixed window pays.
const FLOOR_LUA: &str = r"
local t = redis.call('TIME')
local now_s, now_n = tonumber(t[1]), tonumber(t[2]) * 1000
local k = KEYS[1]
local amount, w, E = 1000000000, 3600000000000, 1000000000
local v = redis.call('GET', k)
local start, count, ks, kn = -E * E, 0, nil, nil
if v then
  ks, kn, count = struct.unpack('<ddd', v)
  start = (ks - now_s) * E + (kn - now_n)
end
local used = (count > 0 and -start < w) and count or 0
if used == 0 then
  redis.call('SET', k, struct.pack('<ddd', now_s, now_n, 1), 'PX', 3600000)
  start = 0
else
  redis.call('SET', k, struct.pack('<ddd', ks, kn, used + 1), 'KEEPTTL')
end
used = used + 1
local reset = start + w
local q = math.floor(reset / E)
local n = reset - q * E + now_n
if n >= E then q = q + 1; n = n - E end
return { 1, 1, amount - used, now_s + q, n, 0 }
";

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (_own_server, port) = ratekeeper_benches::redis_server();
    let n: u64 = std::env::var("REDIS_COST_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if full { 20_000 } else { 300 });
    // Keys are drawn from a pool a tenth the size of the run: most calls find state to read.
    let keys = (n / 10).max(1);
    let url = format!("redis://127.0.0.1:{port}");
    let client = redis::Client::open(url.as_str()).unwrap();
    let conn = smol::block_on(client.get_multiplexed_async_connection()).unwrap();
    cli(port, &["FLUSHALL"]);
    println!("Redis server time per request, {n} requests per row, {CONCURRENCY} in flight");

    // Anchors.
    let trivial = redis::Script::new("return 1");
    row(port, "anchor: EVALSHA of `return 1`", SCRIPTS, n, |_| {
        let mut c = conn.clone();
        let s = &trivial;
        async move {
            let _: i64 = s.invoke_async(&mut c).await.unwrap();
        }
    });
    row(port, "anchor: INCR", &["incr"], n, |i| {
        let mut c = conn.clone();
        async move {
            let _: i64 = redis::cmd("INCR")
                .arg(format!("anchor:{}", i % keys))
                .query_async(&mut c)
                .await
                .unwrap();
        }
    });
    row(
        port,
        "anchor: MULTI INCR PEXPIRE EXEC",
        &["multi", "exec"],
        n,
        |i| {
            let mut c = conn.clone();
            async move {
                let key = format!("anchor2:{}", i % keys);
                let _: (i64, i64) = redis::pipe()
                    .atomic()
                    .cmd("INCR")
                    .arg(&key)
                    .cmd("PEXPIRE")
                    .arg(&key)
                    .arg(60_000)
                    .query_async(&mut c)
                    .await
                    .unwrap();
            }
        },
    );

    // The floor under any script: a hand-written fixed window that does only what a charge
    // must (read the clock, read the counter, write it back keeping its TTL, answer the five
    // values of a status), called with the same arguments as the store's batch.
    let floor = redis::Script::new(FLOOR_LUA);
    row(
        port,
        "floor: a bare fixed-window script (TIME, GET, SET)",
        SCRIPTS,
        n,
        |i| {
            let mut c = conn.clone();
            let s = &floor;
            async move {
                let _: Vec<i64> = s
                    .key(format!("floor:{{ip:{}}}", i % keys))
                    .arg("h")
                    .arg("")
                    .arg(0)
                    .arg("f 1000000000 3600000000000 3600")
                    .arg("1 1 0")
                    .invoke_async(&mut c)
                    .await
                    .unwrap();
            }
        },
    );

    let store = Arc::new(
        RedisStorage::builder_from_uri(&url)
            .unwrap()
            .prefix("cost")
            // The server's cost of one call per request: no shared calls, no refusals
            // answered from the cache.
            .coalesce(0)
            .deny_cache(0)
            .build()
            .unwrap(),
    );
    for (kind, what) in [
        (StrategyKind::FixedWindow, "one fixed-window charge"),
        (StrategyKind::Gcra, "one GCRA charge"),
        (
            StrategyKind::SlidingWindowCounter,
            "one sliding-window-counter charge",
        ),
        (
            StrategyKind::MovingWindow,
            "one moving-window charge (room left)",
        ),
    ] {
        row(port, what, SCRIPTS, n, |i| {
            let store = Arc::clone(&store);
            async move {
                let b = charge(i, "1000000000 per hour", kind, keys);
                assert!(store.hit(&b).await.unwrap().allowed);
            }
        });
    }
    // Moving window with a full log of 100 distinct instants: every hit is rejected, and the
    // retry-after walks the log.
    let full_keys = 64;
    smol::block_on(async {
        for k in 0..full_keys {
            for _ in 0..100 {
                let b = charge(k, "100 per hour", StrategyKind::MovingWindow, full_keys);
                assert!(store.hit(&b).await.unwrap().allowed);
            }
        }
    });
    row(
        port,
        "one moving-window charge (limit 100, log full)",
        SCRIPTS,
        n,
        |i| {
            let store = Arc::clone(&store);
            async move {
                let b = charge(i, "100 per hour", StrategyKind::MovingWindow, full_keys);
                assert!(!store.hit(&b).await.unwrap().allowed);
            }
        },
    );

    // The seed decision: two default limits and a meta-limit gate, fixed window.
    let seed = |defaults: &str| {
        Limiter::builder()
            .default_limits(defaults)
            .meta_limits("1000000 per minute")
            .headers(HeaderOptions::all())
            .storage(Arc::clone(&store) as Arc<dyn Storage>)
            .build()
            .unwrap()
    };
    let allowed = seed("200 per day; 50 per hour");
    row(
        port,
        "the seed decision (2 defaults + meta gate), allowed",
        SCRIPTS,
        n,
        |i| {
            let limiter = allowed.clone();
            async move {
                let ip = format!("10.1.{}.{}", (i % keys) / 256 % 256, (i % keys) % 256);
                let req = RequestView::new("GET", "/api/status").with_peer(ip.parse().unwrap());
                assert!(limiter.check(&req).await.unwrap().is_allowed());
            }
        },
    );
    let rejecting = seed("1 per day");
    let clients = 64;
    smol::block_on(async {
        for i in 0..clients {
            let ip = format!("10.2.0.{i}");
            let req = RequestView::new("GET", "/r").with_peer(ip.parse().unwrap());
            assert!(rejecting.check(&req).await.unwrap().is_allowed());
        }
    });
    row(
        port,
        "a rejected request with meta limits",
        SCRIPTS,
        n,
        |i| {
            let limiter = rejecting.clone();
            async move {
                let ip = format!("10.2.0.{}", i % clients);
                let req = RequestView::new("GET", "/r").with_peer(ip.parse().unwrap());
                assert!(!limiter.check(&req).await.unwrap().is_allowed());
            }
        },
    );
}
