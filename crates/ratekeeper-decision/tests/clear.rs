//! Unblocking one client (`Limiter::clear_client`): its counters in every scope and route are
//! forgotten, on memory, a real Redis node and cluster, and through the fallback store; no
//! other client's counter is touched.

mod common;

use std::sync::Arc;

use common::{IP, T0};
use ratekeeper_core::ManualClock;
use ratekeeper_decision::{Limiter, LimiterBuilder, Outage, RequestView, RoutePolicy};
use ratekeeper_stores::Stores;
use ratekeeper_test_support::redis::{RedisCluster, RedisServer};

const OTHER: &str = "198.51.100.9";

fn builder() -> LimiterBuilder {
    LimiterBuilder::default()
        .application_limits("3 per hour")
        .default_limits("2 per minute")
        .meta_limits("1 per hour")
        .route("/login", RoutePolicy::new().limit("1 per minute"))
        .route(
            "/shared",
            RoutePolicy::new().limit("1 per minute").shared("s"),
        )
        .clock(Arc::new(ManualClock::new(T0)))
}

fn from<'a>(route: &'a str, ip: &str) -> RequestView<'a> {
    RequestView::new("GET", route).with_peer(ip.parse().unwrap())
}

async fn allowed(limiter: &Limiter, route: &str, ip: &str) -> bool {
    limiter.check(&from(route, ip)).await.unwrap().is_allowed()
}

async fn unblocks_one_client(limiter: &Limiter) {
    let check = |route, ip| allowed(limiter, route, ip);
    // The client uses up its login, shared and application limits, and breaches (meta).
    assert!(check("/login", IP).await);
    assert!(check("/shared", IP).await);
    assert!(check("/data", IP).await);
    assert!(!check("/login", IP).await);
    assert!(!check("/data", IP).await, "shut out by the meta limit");
    // Another client spends some of its own.
    assert!(check("/login", OTHER).await);
    assert!(check("/data", OTHER).await);

    limiter.clear_client("ip", IP).await.unwrap();

    // Every scope of the client starts afresh...
    let now = limiter.current_limits(&from("/login", IP)).await.unwrap();
    let left: Vec<u64> = now.iter().map(|c| c.remaining).collect();
    assert_eq!(left, [3, 1, 1], "application, login, meta");
    assert!(check("/login", IP).await);
    assert!(check("/shared", IP).await);
    // ...and the other client's counters are untouched.
    let other = limiter
        .current_limits(&from("/login", OTHER))
        .await
        .unwrap();
    let left: Vec<u64> = other.iter().map(|c| c.remaining).collect();
    assert_eq!(left, [1, 0, 1]);
    assert!(!check("/login", OTHER).await);
}

#[test]
fn on_memory() {
    smol::block_on(unblocks_one_client(&builder().build().unwrap()));
}

#[test]
fn on_a_redis_node() {
    let redis = RedisServer::start();
    let limiter = builder()
        .stores(Stores::new())
        .storage_uri(&format!("{}?prefix=clear", redis.url()))
        .build()
        .unwrap();
    async_std::task::block_on(unblocks_one_client(&limiter));
}

#[test]
fn on_a_redis_cluster() {
    let cluster = RedisCluster::start(3);
    let limiter = builder()
        .stores(Stores::new())
        .storage_uri(&cluster.url())
        .build()
        .unwrap();
    async_std::task::block_on(unblocks_one_client(&limiter));
}

#[test]
fn through_the_fallback_store() {
    let redis = RedisServer::start();
    let limiter = builder()
        .stores(Stores::new())
        .storage_uri(&format!("{}?prefix=clearfb", redis.url()))
        .on_outage(Outage::fallback_to_memory())
        .build()
        .unwrap();
    async_std::task::block_on(unblocks_one_client(&limiter));
}
