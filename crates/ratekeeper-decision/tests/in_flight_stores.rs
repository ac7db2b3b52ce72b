//! In-flight limits on every store: the same random requests, releases, renewals and clock
//! steps decided by a limiter on memory and by one on a real Redis (a node, and a cluster,
//! where a request's slots span hash slots) or memcached must give the same decisions, mixed
//! with rate and meta limits in one batch; and a limiter whose Redis is down counts slots in
//! memory.

mod common;

use std::sync::Arc;

use common::T0;
use ratekeeper_core::{Duration, ManualClock};
use ratekeeper_decision::{Decision, Limiter, LimiterBuilder, Outage, RequestView, RoutePolicy};
use ratekeeper_memcached::MemcachedStorage;
use ratekeeper_redis::RedisStorage;
use ratekeeper_storage::Storage;
use ratekeeper_stores::Stores;
use ratekeeper_test_support::{
    memcached::MemcachedServer,
    redis::{RedisCluster, RedisServer},
};

/// Routes with in-flight limits beside rate limits, and meta limits over them.
fn configured(b: LimiterBuilder, clock: &Arc<ManualClock>) -> Limiter {
    b.clock(clock.clone())
        .in_flight_lease(core::time::Duration::from_secs(20))
        .meta_limits("6 per minute")
        .application(RoutePolicy::new().concurrent_shared(5))
        .route(
            "/report",
            RoutePolicy::new()
                .limit("8 per minute")
                .concurrent(2)
                .concurrent_shared(3),
        )
        .route("/export", RoutePolicy::new().concurrent(1))
        .route("/plain", RoutePolicy::new().limit("5 per minute"))
        .build()
        .unwrap()
}

/// What two decisions must agree on.
fn seen(d: &Decision) -> String {
    let headers: Vec<String> = d.headers().map(|(n, v)| format!("{n}: {v}")).collect();
    format!(
        "{:?} {:?} remaining {} slots {:?} {headers:?}",
        d.kind(),
        d.scope(),
        d.remaining(),
        d.slots().map(|s| s.len())
    )
}

/// A small generator: the same sequence for both limiters.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

/// A store for `uri` on `clock` (a networked store otherwise keeps its own time).
fn store_on(uri: &str, clock: &Arc<ManualClock>) -> Arc<dyn Storage> {
    // The manual clock stands still while real time passes: keys must not time out.
    let grace = core::time::Duration::from_secs(3_600);
    if uri.starts_with("memcached") {
        let b = MemcachedStorage::builder_from_uri(uri).unwrap();
        return Arc::new(b.clock(clock.clone()).ttl_grace(grace).build().unwrap());
    }
    let b = RedisStorage::builder_from_uri(uri).unwrap();
    Arc::new(b.clock(clock.clone()).ttl_grace(grace).build().unwrap())
}

/// `steps` random operations on a limiter on memory and one on `uri`, decision by decision.
fn compare(uri: &str, seed: u64, steps: usize) {
    let clock = Arc::new(ManualClock::new(T0));
    let memory = configured(Limiter::builder(), &clock);
    let other = configured(
        Limiter::builder()
            .storage(store_on(uri, &clock))
            .key_prefix(&format!("s{seed}")),
        &clock,
    );
    let mut rng = Rng(seed);
    let mut held: Vec<(Decision, Decision)> = Vec::new();
    smol::block_on(async {
        for step in 0..steps {
            match rng.below(10) {
                0..=5 => {
                    let route = ["/report", "/export", "/plain"][rng.below(3) as usize];
                    let ip = format!("10.0.0.{}", rng.below(4));
                    let req = RequestView::new("GET", route).with_peer(ip.parse().unwrap());
                    let (a, b) = (
                        memory.check(&req).await.unwrap(),
                        other.check(&req).await.unwrap(),
                    );
                    assert_eq!(seen(&a), seen(&b), "seed {seed} step {step}: {route} {ip}");
                    if a.slots().is_some() {
                        held.push((a, b));
                    }
                }
                6 | 7 if !held.is_empty() => {
                    let (a, b) = held.swap_remove(rng.below(held.len() as u64) as usize);
                    a.finish(200, None).await.unwrap();
                    b.finish(200, None).await.unwrap();
                }
                8 if !held.is_empty() => {
                    let (a, b) = &held[rng.below(held.len() as u64) as usize];
                    let renewed = (
                        a.slots().unwrap().renew().await.unwrap(),
                        b.slots().unwrap().renew().await.unwrap(),
                    );
                    assert_eq!(renewed.0, renewed.1, "seed {seed} step {step}: renewal");
                }
                _ => clock.advance(Duration::from_millis(rng.below(12_000))),
            }
        }
        for (a, b) in held {
            a.finish(200, None).await.unwrap();
            b.finish(200, None).await.unwrap();
        }
    });
}

#[test]
fn redis_decides_in_flight_limits_as_memory_does() {
    let server = RedisServer::start();
    for seed in 1..=6 {
        compare(&server.url(), seed, 300);
    }
}

#[test]
fn a_redis_cluster_decides_in_flight_limits_as_memory_does() {
    let cluster = RedisCluster::start(3);
    for seed in 11..=13 {
        compare(&cluster.url(), seed, 300);
    }
}

#[test]
fn memcached_decides_in_flight_limits_as_memory_does() {
    let server = MemcachedServer::start();
    for seed in 21..=23 {
        compare(&server.url(), seed, 300);
    }
}

/// A limiter on a Redis that is down, answering by `outage`, with `slots` in flight per client
/// on `/report`.
fn redis_down(outage: Outage, slots: u64) -> Limiter {
    let mut server = RedisServer::start();
    let url = format!(
        "{}?socket_timeout=0.2&socket_connect_timeout=0.2",
        server.url()
    );
    server.kill();
    Limiter::builder()
        .stores(Stores::new())
        .storage_uri(&url)
        .on_outage(outage)
        .route("/report", RoutePolicy::new().concurrent(slots))
        .build()
        .unwrap()
}

/// While Redis is down the fallback counts slots in memory, and gives them back there.
#[test]
fn slots_are_counted_in_memory_while_redis_is_down() {
    let limiter = redis_down(Outage::fallback_to_memory(), 1);
    let req = RequestView::new("GET", "/report").with_peer("10.0.0.1".parse().unwrap());
    smol::block_on(async {
        let held = limiter.check(&req).await.unwrap();
        assert!(held.is_allowed());
        assert!(!limiter.check(&req).await.unwrap().is_allowed());
        held.finish(200, None).await.unwrap();
        assert!(limiter.check(&req).await.unwrap().is_allowed());
    });
}

/// With fallback limits of its own, a store that is down counts slots with the batch's limits
/// in memory, and a slot given back gives back none of the fallback limits' quota.
#[test]
fn a_slot_given_back_during_an_outage_gives_back_no_fallback_quota() {
    let limiter = redis_down(Outage::in_memory_fallback("2 per minute"), 5);
    let req = RequestView::new("GET", "/report").with_peer("10.0.0.1".parse().unwrap());
    smol::block_on(async {
        for _ in 0..2 {
            let d = limiter.check(&req).await.unwrap();
            assert!(d.is_allowed());
            d.finish(200, None).await.unwrap();
        }
        let third = limiter.check(&req).await.unwrap();
        assert!(!third.is_allowed(), "{third:?}");
    });
}
