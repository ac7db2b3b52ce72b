//! The Redis backend through the `Storage` trait on a real server, on async-std and on smol:
//! atomic batches, the server's clock, TTLs on every key, clear and reset, script reloading,
//! errors for bad URIs, a closed port and a hung server.

mod common;

use core::time::Duration as StdDuration;
use std::time::Instant;

use common::manual_store;
use ratekeeper_core::{Duration, Limit, RetryAfter, StrategyKind};
use ratekeeper_redis::RedisStorage;
use ratekeeper_storage::{Charge, Key, Storage, StorageError};
use ratekeeper_test_support::redis::RedisServer;

fn charge(key: &Key, l: &str, strategy: StrategyKind, cost: u64) -> Charge {
    Charge::new(key.clone(), l.parse::<Limit>().unwrap(), strategy, cost)
}

/// Whether each of `n` hits of `batch` in a row was admitted.
async fn hits(store: &RedisStorage, batch: &[Charge], n: usize) -> Vec<bool> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(store.hit(batch).await.unwrap().allowed);
    }
    out
}

/// Every key under `prefix` with its PTTL in ms.
fn keys_with_ttl(server: &RedisServer, prefix: &str) -> Vec<(String, i64)> {
    let listed = server.cli(&["--scan", "--pattern", &format!("{prefix}:*")]);
    listed
        .lines()
        .filter(|l| !l.is_empty())
        .map(|k| (k.to_owned(), server.cli(&["PTTL", k]).parse().unwrap()))
        .collect()
}

async fn batches_are_all_or_nothing() {
    let server = RedisServer::start();
    let (store, _) = manual_store(&server.url(), "atomic");
    let key = Key::new("ip", "10.0.0.1");
    let batch = [
        charge(&key, "10 per minute", StrategyKind::FixedWindow, 1),
        charge(&key, "1 per second", StrategyKind::Gcra, 1),
        charge(&key, "5 per hour", StrategyKind::MovingWindow, 1),
        charge(&key, "7 per hour", StrategyKind::SlidingWindowCounter, 1),
    ];
    assert!(store.hit(&batch).await.unwrap().allowed);
    let rejected = store.hit(&batch).await.unwrap();
    assert!(!rejected.allowed);
    assert_eq!(rejected.rejected_by(), Some(1));
    assert_eq!(
        rejected.retry_after(),
        RetryAfter::After(Duration::from_secs(1))
    );
    let remaining: Vec<u64> = rejected.statuses.iter().map(|s| s.remaining).collect();
    assert_eq!(remaining, [9, 0, 4, 6], "the other limits were not charged");
    // The same counter twice in one batch: the costs add up.
    let twice = [
        charge(&key, "10 per minute", StrategyKind::FixedWindow, 5),
        charge(&key, "10 per minute", StrategyKind::FixedWindow, 5),
    ];
    assert!(!store.hit(&twice).await.unwrap().allowed);
    // A gate needs room without charging.
    let mut gate = charge(&key, "5 per hour", StrategyKind::MovingWindow, 0);
    gate = gate.needing(4);
    let v = store.hit(&[gate.clone()]).await.unwrap();
    assert!(v.allowed);
    assert_eq!(v.statuses[0].remaining, 4);
    gate = gate.needing(5);
    assert!(!store.hit(&[gate]).await.unwrap().allowed);
    // Refunds give back.
    store.refund(&batch[..1]).await.unwrap();
    assert_eq!(
        store.test(&batch[..1]).await.unwrap().statuses[0].remaining,
        10
    );
}

async fn the_server_clock_counts_and_every_key_has_a_ttl() {
    let server = RedisServer::start();
    let store = RedisStorage::from_uri(&format!("{}?prefix=ttl", server.url())).unwrap();
    let key = Key::new("user", "alice").under(&["GET /"]);
    let limits = [
        ("3 per minute", StrategyKind::FixedWindow, 60_000),
        ("3 per minute", StrategyKind::MovingWindow, 60_000),
        ("3 per minute", StrategyKind::SlidingWindowCounter, 120_000),
        ("3 per minute", StrategyKind::Gcra, 60_000),
    ];
    for (l, kind, _) in limits {
        let batch = [charge(&key, l, kind, 1)];
        let before = server_minute(&server);
        let mut admitted = 0;
        for _ in 0..5 {
            admitted += usize::from(store.hit(&batch).await.unwrap().allowed);
        }
        let status = store.test(&batch).await.unwrap().statuses[0];
        let straddled = server_minute(&server) != before;
        if kind == StrategyKind::SlidingWindowCounter && straddled {
            // The calls straddled a bucket boundary of the server's clock: the previous
            // bucket's weight dropped a little, which can make room for one more. The exact
            // arithmetic is checked on an explicit clock (tests/semantics.rs).
            assert!((3..=4).contains(&admitted), "{kind}: {admitted}");
        } else {
            // Fixed and moving windows open at the first hit, GCRA spaces hits 20 s apart:
            // where the server's clock stands does not change their count.
            assert_eq!(admitted, 3, "{kind}");
            assert_eq!(status.remaining, 0, "{kind}");
            assert!(matches!(status.retry_after, RetryAfter::After(d) if d > Duration::ZERO));
        }
    }
    let keys = keys_with_ttl(&server, "ttl");
    assert_eq!(keys.len(), 5, "{keys:?}"); // the moving window has a log and a total
    for (k, ttl) in &keys {
        let bound = limits
            .iter()
            .find(|(_, kind, _)| k.contains(&format!(":{}:", code(*kind))))
            .map(|(_, _, b)| *b)
            .unwrap();
        assert!(
            *ttl > 0 && *ttl <= bound,
            "{k}: PTTL {ttl} ms, window bound {bound}"
        );
        assert!(k.starts_with("ttl:{user:alice}:GET%20%2F/:"), "{k}");
    }
    // Clear forgets every counter of the key; reset everything under the prefix.
    store.clear(&key).await.unwrap();
    assert!(keys_with_ttl(&server, "ttl").is_empty());
    store
        .hit(&[charge(&key, "1 per day", StrategyKind::Gcra, 1)])
        .await
        .unwrap();
    server.cli(&["SET", "other:key", "1"]);
    store.reset().await.unwrap();
    assert!(keys_with_ttl(&server, "ttl").is_empty());
    assert_eq!(
        server.cli(&["GET", "other:key"]),
        "1",
        "reset stays in its prefix"
    );
    store.health().await.unwrap();
}

/// The minute the server's clock is in (`TIME`), for the epoch-aligned sliding window.
fn server_minute(server: &RedisServer) -> u64 {
    let time = server.cli(&["TIME"]);
    let secs: u64 = time.lines().next().unwrap().trim().parse().unwrap();
    secs / 60
}

/// A strategy's part of a key name: its code and the stored format's version.
fn code(kind: StrategyKind) -> &'static str {
    match kind {
        StrategyKind::FixedWindow => "f2",
        StrategyKind::MovingWindow => "m2",
        StrategyKind::SlidingWindowCounter => "s2",
        StrategyKind::Gcra => "g2",
        _ => unreachable!("the tests know every strategy of StrategyKind::ALL"),
    }
}

async fn functions_are_reloaded_after_a_flush() {
    let server = RedisServer::start();
    let (store, _) = manual_store(&server.url(), "reload");
    let batch = [charge(
        &Key::new("ip", "1"),
        "3 per minute",
        StrategyKind::Gcra,
        1,
    )];
    assert!(store.hit(&batch).await.unwrap().allowed);
    assert!(
        server
            .cli(&["FUNCTION", "LIST"])
            .contains("ratelimit_batch_"),
        "the batch runs as a function"
    );
    assert_eq!(server.cli(&["FUNCTION", "FLUSH"]), "OK");
    assert_eq!(server.cli(&["SCRIPT", "FLUSH"]), "OK");
    assert!(store.hit(&batch).await.unwrap().allowed);
    assert!(store.hit(&batch).await.unwrap().allowed);
    assert!(!store.hit(&batch).await.unwrap().allowed);
    assert_eq!(succeeded(&server, "fcall"), 4, "every hit ran the function");
    assert_eq!(succeeded(&server, "evalsha"), 0);
}

/// Successful calls of `command` (`INFO commandstats`: calls less failed calls).
fn succeeded(server: &RedisServer, command: &str) -> u64 {
    let stats = server.cli(&["INFO", "commandstats"]);
    let Some(line) = stats
        .lines()
        .find(|l| l.starts_with(&format!("cmdstat_{command}:")))
    else {
        return 0;
    };
    let field = |name: &str| -> u64 {
        line.split([':', ','])
            .find_map(|f| f.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in {line}"))
    };
    field("calls") - field("failed_calls")
}

/// A server without functions (before Redis 7; here they are renamed away): the store runs
/// the same batch as a script, and a flushed script cache is refilled.
async fn servers_without_functions_run_the_script() {
    let server = common::server_without_functions();
    let (store, _) = manual_store(&server.url(), "old");
    let batch = [charge(
        &Key::new("ip", "1"),
        "2 per minute",
        StrategyKind::Gcra,
        1,
    )];
    assert!(store.hit(&batch).await.unwrap().allowed);
    assert_eq!(server.cli(&["SCRIPT", "FLUSH"]), "OK");
    assert!(store.hit(&batch).await.unwrap().allowed);
    assert!(!store.hit(&batch).await.unwrap().allowed);
    assert_eq!(succeeded(&server, "evalsha"), 3, "every hit ran the script");
}

async fn a_closed_port_is_unreachable_fast() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let store = RedisStorage::from_uri(&format!("redis://127.0.0.1:{port}")).unwrap();
    let start = Instant::now();
    let batch = [charge(
        &Key::new("ip", "1"),
        "2 per minute",
        StrategyKind::Gcra,
        1,
    )];
    let err = store.hit(&batch).await.unwrap_err();
    assert!(err.is_unavailable(), "{err}");
    assert!(matches!(err, StorageError::Unreachable { .. }), "{err:?}");
    assert!(start.elapsed() < store.deadline(), "{:?}", start.elapsed());
    assert!(store.health().await.is_err());
}

async fn a_hung_server_times_out_within_the_deadline() {
    let server = RedisServer::start();
    let store = RedisStorage::builder_from_uri(&format!(
        "{}?socket_timeout=0.2&socket_connect_timeout=0.2",
        server.url()
    ))
    .unwrap()
    .build()
    .unwrap();
    let batch = [charge(
        &Key::new("ip", "1"),
        "100 per minute",
        StrategyKind::FixedWindow,
        1,
    )];
    assert!(store.hit(&batch).await.unwrap().allowed);
    server.pause();
    let start = Instant::now();
    let err = store.hit(&batch).await.unwrap_err();
    let waited = start.elapsed();
    server.resume();
    assert!(err.is_unavailable(), "{err}");
    // The promise is the deadline (0.4 s); the margin is for a loaded machine. Without a
    // deadline the call would wait for the paused server forever.
    assert!(
        waited <= store.deadline() + StdDuration::from_secs(2),
        "waited {waited:?}, deadline {:?}",
        store.deadline()
    );
    // After SIGCONT the same store works again, and counts each hit once: the first (1), the
    // timed-out one, which the server may still run when it wakes (at most 1), every failed
    // attempt below (at most 1 each, the same way), and the one that succeeds (1).
    let mut failed = 0;
    let recovered = loop {
        match store.hit(&batch).await {
            Ok(v) => break v,
            Err(_) if failed < 50 => failed += 1,
            Err(e) => panic!("the store did not recover after SIGCONT: {e}"),
        }
        async_io::Timer::after(StdDuration::from_millis(50)).await;
    };
    assert!(recovered.allowed);
    let used = 100 - recovered.statuses[0].remaining;
    assert!(
        (2..=3 + failed).contains(&used),
        "{used} charged after 2 successful hits, 1 timed out and {failed} failed"
    );
}

async fn a_restarted_server_is_reconnected_to() {
    let mut server = RedisServer::start();
    let store = RedisStorage::from_uri(&format!(
        "{}?socket_timeout=0.2&socket_connect_timeout=0.2",
        server.url()
    ))
    .unwrap();
    let batch = [charge(
        &Key::new("ip", "1"),
        "5 per minute",
        StrategyKind::FixedWindow,
        1,
    )];
    assert!(store.hit(&batch).await.unwrap().allowed);
    server.kill();
    let err = store.hit(&batch).await.unwrap_err();
    assert!(err.is_unavailable(), "{err}");
    server.restart();
    let start = Instant::now();
    let verdict = loop {
        match store.hit(&batch).await {
            Ok(v) => break v,
            Err(e) => assert!(e.is_unavailable(), "{e}"),
        }
        assert!(
            start.elapsed() < StdDuration::from_secs(10),
            "never reconnected"
        );
        async_io::Timer::after(StdDuration::from_millis(20)).await;
    };
    // The restarted server is empty: counting starts again.
    assert!(verdict.allowed);
    assert_eq!(verdict.statuses[0].remaining, 4);
}

async fn a_unix_socket_serves_like_tcp() {
    let dir = std::env::temp_dir().join(format!("ratelimit-unix-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let socket =
        dir.join(format!("redis-{:?}.sock", std::thread::current().id()).replace(['(', ')'], ""));
    let socket_arg = socket.display().to_string();
    let server = RedisServer::start_with(&["--unixsocket", &socket_arg, "--unixsocketperm", "700"]);
    let store = RedisStorage::from_uri(&format!("redis+unix://{}?db=2", socket.display())).unwrap();
    let key = Key::new("ip", "10.9.8.7");
    let batch = [charge(&key, "2 per minute", StrategyKind::FixedWindow, 1)];
    assert_eq!(hits(&store, &batch, 3).await, [true, true, false]);
    store.health().await.unwrap();
    // The counter is in database 2 of that server, reached over the socket.
    let listed = server.cli(&["-n", "2", "--scan", "--pattern", "ratelimit:*"]);
    assert_eq!(listed.lines().count(), 1, "{listed}");
    assert!(
        server
            .cli(&["--scan", "--pattern", "ratelimit:*"])
            .is_empty(),
        "not in db 0"
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A user whose ACL forbids `FUNCTION`: the store runs its batch as a script instead of failing.
async fn a_user_without_functions_runs_the_script() {
    let server = RedisServer::start_with(&[
        "--user",
        "default",
        "on",
        "nopass",
        "~*",
        "&*",
        "+@all",
        "--user",
        "app",
        "on",
        ">app-pw",
        "~*",
        "+@all",
        "-function",
    ]);
    let store =
        RedisStorage::from_uri(&format!("redis://app:app-pw@127.0.0.1:{}", server.port())).unwrap();
    let batch = [charge(
        &Key::new("ip", "1"),
        "2 per minute",
        StrategyKind::FixedWindow,
        1,
    )];
    assert_eq!(hits(&store, &batch, 3).await, [true, true, false]);
    assert_eq!(succeeded(&server, "evalsha"), 3, "every hit ran the script");
}

/// A key keeps its TTL while it still outlasts the state (a SET with a TTL costs Redis twice
/// one without), so the TTL must be renewed in time: a GCRA counter driven to its limit is
/// worth a window from its last hit, not from its first. Each key must live at least until
/// the reset its last verdict announced.
async fn a_key_in_steady_use_lives_until_its_reset() {
    let server = RedisServer::start();
    let store = RedisStorage::from_uri(&format!("{}?prefix=steady", server.url())).unwrap();
    for kind in [
        StrategyKind::Gcra,
        StrategyKind::FixedWindow,
        StrategyKind::SlidingWindowCounter,
        StrategyKind::MovingWindow,
    ] {
        let key = Key::new("user", code(kind));
        let batch = [charge(&key, "1000 per second", kind, 1)];
        // GCRA: each hit moves the counter's end 1 ms on, far faster than the clock, so by
        // the first rejection it lies well past the window its first hit opened.
        let mut last = store.hit(&batch).await.unwrap();
        for _ in 0..5000 {
            if !last.allowed {
                break;
            }
            last = store.hit(&batch).await.unwrap();
        }
        let reset_ms = i64::try_from(last.statuses[0].reset.as_nanos() / 1_000_000).unwrap();
        let name = format!("steady:{{user:{0}}}::{0}:1000/1", code(kind));
        // The instant the key expires, in ms since the epoch (it lives through that ms).
        let expires: i64 = server.cli(&["PEXPIRETIME", &name]).parse().unwrap();
        assert!(
            expires >= reset_ms,
            "{kind}: the key expires at {expires} ms, {} ms before its reset",
            reset_ms - expires
        );
    }
}

ratekeeper_conformance::on_both_runtimes! {
    a_key_in_steady_use_lives_until_its_reset,
    a_user_without_functions_runs_the_script,
    a_unix_socket_serves_like_tcp,
    a_restarted_server_is_reconnected_to,
    batches_are_all_or_nothing,
    the_server_clock_counts_and_every_key_has_a_ttl,
    functions_are_reloaded_after_a_flush,
    servers_without_functions_run_the_script,
    a_closed_port_is_unreachable_fast,
    a_hung_server_times_out_within_the_deadline,
}

/// A field of `INFO <section>`.
fn info(server: &RedisServer, section: &str, field: &str) -> u64 {
    server
        .cli(&["INFO", section])
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix(&format!("{field}:"))
                .map(str::to_owned)
        })
        .unwrap()
        .parse()
        .unwrap()
}

/// Every key carries a TTL, so a Redis with bounded memory can evict instead of refusing:
/// under `maxmemory-policy volatile-ttl` a flood of new identities (a client minting them) is
/// answered without a single error, the keys nearest their expiry making room.
#[test]
fn a_flood_under_volatile_ttl_evicts_instead_of_failing() {
    let server = RedisServer::start();
    let store = RedisStorage::from_uri(&format!("{}?prefix=flood", server.url())).unwrap();
    smol::block_on(async {
        let warm = [charge(
            &Key::new("ip", "warm"),
            "5 per minute",
            StrategyKind::Gcra,
            1,
        )];
        store.hit(&warm).await.unwrap();
        let used = info(&server, "memory", "used_memory");
        assert_eq!(
            server.cli(&["CONFIG", "SET", "maxmemory-policy", "volatile-ttl"]),
            "OK"
        );
        let room = (used + (512 << 10)).to_string();
        assert_eq!(server.cli(&["CONFIG", "SET", "maxmemory", &room]), "OK");
        for i in 0..12_000 {
            let minted = Key::new("apikey", &format!("minted-{i:05}"));
            let batch = [charge(
                &minted,
                "5 per minute",
                StrategyKind::FixedWindow,
                1,
            )];
            let verdict = store.hit(&batch).await;
            assert!(verdict.is_ok(), "hit {i}: {verdict:?}");
        }
    });
    assert!(
        info(&server, "stats", "evicted_keys") > 0,
        "the flood outgrew the memory"
    );
}

#[test]
fn uris_are_checked() {
    for good in [
        "redis://localhost",
        "redis://:pw@127.0.0.1:6380/2?prefix=app&socket_timeout=0.25",
        "redis+unix:///var/run/redis.sock?db=1",
        "redis+cluster://127.0.0.1:7000,127.0.0.1:7001",
        "redis+sentinel://127.0.0.1:26379,127.0.0.1:26380/mymaster?connect_timeout=250ms",
        "redis://localhost?time=client",
    ] {
        assert!(RedisStorage::from_uri(good).is_ok(), "{good}");
    }
    for (bad, says) in [
        ("memory://", "scheme"),
        ("redis://localhost?timeout=1", "unknown option \"timeout\""),
        ("redis://localhost?socket_timeout=-1", "socket_timeout"),
        ("redis://localhost?prefix=%7Bx%7D", "prefix"),
        ("redis+sentinel://127.0.0.1:26379", "names no service"),
        ("redis://a:1,b:2", "several hosts"),
        ("redis://localhost/x", "database"),
        ("redis://localhost?time=gps", "time"),
        ("redis+cluster://127.0.0.1:7000?db=2", "database 0"),
    ] {
        let err = RedisStorage::from_uri(bad).unwrap_err().to_string();
        assert!(err.contains(says), "{bad}: {err}");
    }
}
