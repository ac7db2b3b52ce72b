//! Looking at a client's limits without charging anything (`Limiter::current_limits`), on the
//! memory store and on real Redis servers (a single node and a cluster) started by the test.

mod common;

use std::sync::Arc;

use common::{T0, get};
use ratekeeper_core::{Limit, ManualClock, Timestamp};
use ratekeeper_decision::{
    Limiter, LimiterBuilder, RoutePolicy,
    limits::{CurrentLimit, Scope},
};
use ratekeeper_stores::Stores;
use ratekeeper_test_support::redis::{RedisCluster, RedisServer};

fn limiter(storage_uri: Option<String>) -> Limiter {
    let mut b = LimiterBuilder::default()
        .application_limits("100 per hour")
        .default_limits("10 per minute")
        .meta_limits("3 per hour")
        .route("/exempt", RoutePolicy::new().exempt())
        .clock(Arc::new(ManualClock::new(T0)));
    if let Some(uri) = storage_uri {
        // The Redis server's clock: resets are checked relative to the first look.
        b = b.stores(Stores::new()).storage_uri(&uri);
    }
    b.build().unwrap()
}

async fn looks_without_charging(limiter: &Limiter) {
    let req = get("/api");
    let fresh = limiter.current_limits(&req).await.unwrap();
    let scopes: Vec<(Scope, u64)> = fresh.iter().map(|c| (c.scope, c.remaining)).collect();
    assert_eq!(
        scopes,
        [
            (Scope::Application, 100),
            (Scope::Default, 10),
            (Scope::Meta, 3)
        ]
    );
    for _ in 0..4 {
        assert!(limiter.check(&req).await.unwrap().is_allowed());
    }
    let now = limiter.current_limits(&req).await.unwrap();
    let again = limiter.current_limits(&req).await.unwrap();
    // Looking charges nothing. (An untouched counter, the meta limit's here, resets "now":
    // its reset moves with the clock, the others' do not.)
    let standing = |l: &[CurrentLimit]| -> Vec<(Scope, Limit, u64)> {
        l.iter().map(|c| (c.scope, c.limit, c.remaining)).collect()
    };
    assert_eq!(standing(&now), standing(&again));
    assert_eq!(now[..2], again[..2]);
    let limit = |s: &str| s.parse::<Limit>().unwrap();
    assert_eq!(now[0].limit, limit("100 per hour"));
    assert_eq!(now[0].remaining, 96);
    assert_eq!(now[1].limit, limit("10 per minute"));
    assert_eq!(now[1].remaining, 6);
    assert_eq!(now[2].remaining, 3, "no breach yet");
    // The default limit resets a minute after its first charge, on the store's clock; a fresh
    // counter resets at once (the first look's reset is that look's instant).
    let secs = ratekeeper_core::Duration::from_secs;
    let first_look: Timestamp = fresh[1].reset;
    assert!(now[1].reset >= first_look.saturating_add(secs(60)));
    assert!(now[1].reset <= first_look.saturating_add(secs(70)));
    // Another route has its own default counter; the application counter is shared.
    let other = limiter.current_limits(&get("/other")).await.unwrap();
    assert_eq!((other[0].remaining, other[1].remaining), (96, 10));
    // An exempt route has no limits.
    assert!(
        limiter
            .current_limits(&get("/exempt"))
            .await
            .unwrap()
            .is_empty()
    );
}

#[test]
fn on_memory() {
    smol::block_on(looks_without_charging(&limiter(None)));
}

#[test]
fn on_a_redis_node() {
    let redis = RedisServer::start();
    let limiter = limiter(Some(format!("{}?prefix=inspect", redis.url())));
    async_std::task::block_on(looks_without_charging(&limiter));
}

#[test]
fn on_a_redis_cluster() {
    let cluster = RedisCluster::start(3);
    let limiter = limiter(Some(cluster.url()));
    async_std::task::block_on(looks_without_charging(&limiter));
}
