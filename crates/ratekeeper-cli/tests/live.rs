//! The `ratekeeper` binary's commands on live stores (`redis-server` and `memcached` processes
//! of its own, single node and cluster). It needs the workspace's test servers, so it is not
//! part of the published package.

mod common;

use core::net::IpAddr;

use common::ratekeeper;
use ratekeeper_decision::{Limiter, RequestView};
use ratekeeper_test_support::redis::{RedisCluster, RedisServer};

/// Three requests from `ip` on `/api/data`, counted by a limiter on `url` as the seed counts
/// its defaults.
fn charge(url: &str, ip: &str, n: usize) {
    charge_under(url, None, ip, n);
}

/// [`charge`] by a limiter with key prefix `prefix` (`LIMITER` when `None`).
fn charge_under(url: &str, prefix: Option<&str>, ip: &str, n: usize) {
    let mut builder = Limiter::builder()
        .stores(ratekeeper_stores::Stores::new())
        .storage_uri(url)
        .default_limits("10 per minute; 100 per day");
    if let Some(prefix) = prefix {
        builder = builder.key_prefix(prefix);
    }
    let limiter = builder.build().unwrap();
    let peer: IpAddr = ip.parse().unwrap();
    for _ in 0..n {
        let req = RequestView::new("GET", "/api/data").with_peer(peer);
        assert!(smol::block_on(limiter.check(&req)).unwrap().is_allowed());
    }
}

fn remaining(url: &str, ip: &str) -> Vec<u64> {
    remaining_under(url, None, ip)
}

/// [`remaining`] as `inspect --prefix` reads it for a limiter with key prefix `prefix`.
fn remaining_under(url: &str, prefix: Option<&str>, ip: &str) -> Vec<u64> {
    let key = format!("ip:{ip}");
    let mut args = vec![
        "inspect",
        "--storage",
        url,
        "--limits",
        "10 per minute; 100 per day",
        "--key",
        &key,
        "--route",
        "/api/data",
        "--json",
    ];
    if let Some(prefix) = prefix {
        args.extend(["--prefix", prefix]);
    }
    let r = ratekeeper(&args);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|l| {
            assert_eq!(l["scope"], "default");
            l["remaining"].as_u64().unwrap()
        })
        .collect()
}

fn inspect_and_clear(url: &str) {
    charge(url, "203.0.113.7", 3);
    charge(url, "198.51.100.4", 1);
    assert_eq!(remaining(url, "203.0.113.7"), [7, 97]);
    // Looking charged nothing.
    assert_eq!(remaining(url, "203.0.113.7"), [7, 97]);
    assert_eq!(remaining(url, "198.51.100.4"), [9, 99]);
    let table = ratekeeper(&[
        "inspect",
        "--storage",
        url,
        "--limits",
        "10 per minute; 100 per day",
        "--key",
        "ip:203.0.113.7",
        "--route",
        "/api/data",
    ]);
    assert_eq!(table.code, 0, "{}", table.stderr);
    assert!(table.stdout.contains("10 per 1 minute"), "{}", table.stdout);

    let r = ratekeeper(&["clear", "--storage", url, "--key", "ip:203.0.113.7"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, "cleared every counter of ip:203.0.113.7\n");
    assert_eq!(remaining(url, "203.0.113.7"), [10, 100]);
    assert_eq!(
        remaining(url, "198.51.100.4"),
        [9, 99],
        "another client is untouched"
    );

    // A limiter with a key prefix of its own: `inspect --prefix` reads its counters, which
    // the default prefix does not see.
    charge_under(url, Some("APP"), "192.0.2.5", 2);
    assert_eq!(remaining_under(url, Some("APP"), "192.0.2.5"), [8, 98]);
    assert_eq!(remaining(url, "192.0.2.5"), [10, 100]);
    // Another store on the same server, under a store prefix of its own (`?prefix=`): `clear
    // --all` on the first leaves its counters, and `clear --key` on it reaches them.
    let other = format!("{url}?prefix=other");
    charge(&other, "198.51.100.4", 2);
    assert_eq!(remaining(&other, "198.51.100.4"), [8, 98]);

    let r = ratekeeper(&["clear", "--storage", url, "--all"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, "cleared every counter under the store's prefix\n");
    assert_eq!(remaining(url, "198.51.100.4"), [10, 100]);
    assert_eq!(remaining_under(url, Some("APP"), "192.0.2.5"), [10, 100]);
    assert_eq!(
        remaining(&other, "198.51.100.4"),
        [8, 98],
        "the other store's counters survive --all"
    );
    let r = ratekeeper(&["clear", "--storage", &other, "--key", "ip:198.51.100.4"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(remaining(&other, "198.51.100.4"), [10, 100]);
}

#[test]
fn inspect_and_clear_a_redis_node() {
    let server = RedisServer::start();
    inspect_and_clear(&server.url());
}

#[test]
fn inspect_and_clear_a_redis_cluster() {
    let cluster = RedisCluster::start(3);
    inspect_and_clear(&cluster.url());
}

#[test]
fn inspect_and_clear_memcached() {
    let server = ratekeeper_test_support::memcached::MemcachedServer::start();
    inspect_and_clear(&server.url());
}

#[test]
fn bench_runs_against_a_live_redis_for_a_second() {
    let server = RedisServer::start();
    let r = ratekeeper(&[
        "bench",
        "--storage",
        &server.url(),
        "--duration",
        "1s",
        "--concurrency",
        "4",
        "--json",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let decisions = v["decisions"].as_u64().unwrap();
    assert!(decisions > 100, "{v}");
    assert_eq!(v["errors"], 0, "{v}");
    assert_eq!(v["allowed"].as_u64().unwrap(), decisions, "{v}");
    let (p50, p99) = (v["p50_us"].as_f64().unwrap(), v["p99_us"].as_f64().unwrap());
    assert!(p50 > 0.0 && p50 <= p99, "{v}");
    let elapsed = v["elapsed_secs"].as_f64().unwrap();
    assert!((0.9..5.0).contains(&elapsed), "{v}");
    // The bench's counters are its own: under its prefix, not the application's.
    assert!(
        !server
            .cli(&["--scan", "--pattern", "*RATELIMIT-BENCH*"])
            .is_empty()
    );

    let r = ratekeeper(&[
        "bench",
        "--storage",
        "redis://127.0.0.1:1",
        "--duration",
        "1s",
    ]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("storage"), "{}", r.stderr);
}

/// `inspect` shows a route's in-flight limits and how many of their slots are held, while a
/// limiter on the same Redis holds them.
#[test]
fn inspect_counts_the_holders_of_in_flight_slots() {
    use ratekeeper_decision::RoutePolicy;
    let server = RedisServer::start();
    let url = server.url();
    let limiter = Limiter::builder()
        .stores(ratekeeper_stores::Stores::new())
        .storage_uri(&url)
        .route(
            "/report",
            RoutePolicy::new()
                .limit("30 per minute")
                .concurrent(2)
                .concurrent_shared(20),
        )
        .build()
        .unwrap();
    let req = RequestView::new("GET", "/report").with_peer("10.0.0.5".parse().unwrap());
    let held = smol::block_on(limiter.check(&req)).unwrap();
    assert!(held.slots().is_some());
    let inspect = |json: bool| {
        let mut args = vec![
            "inspect",
            "--storage",
            &url,
            "--limits",
            "30 per minute",
            "--scope",
            "route",
            "--route",
            "/report",
            "--key",
            "ip:10.0.0.5",
            "--concurrent",
            "2",
            "--concurrent-shared",
            "20",
        ];
        if json {
            args.push("--json");
        }
        let r = ratekeeper(&args);
        assert_eq!(r.code, 0, "{}", r.stderr);
        r.stdout
    };
    let v: serde_json::Value = serde_json::from_str(&inspect(true)).unwrap();
    let slots: Vec<(u64, u64)> = v
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["scope"] == "in_flight")
        .map(|l| {
            (
                l["in_flight"].as_u64().unwrap(),
                l["held"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(slots, [(2, 1), (20, 1)]);
    let table = inspect(false);
    assert!(
        table.contains("2 in flight") && table.contains("1 held"),
        "{table}"
    );
    smol::block_on(held.finish(200, None)).unwrap();
    let v: serde_json::Value = serde_json::from_str(&inspect(true)).unwrap();
    assert!(
        v.as_array()
            .unwrap()
            .iter()
            .filter(|l| l["scope"] == "in_flight")
            .all(|l| l["held"] == 0),
        "{v}"
    );
}
