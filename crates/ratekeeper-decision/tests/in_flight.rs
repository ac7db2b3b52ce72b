//! In-flight limits on the memory store and a manual clock: slots taken with the rate limits,
//! all or nothing; given back when the response is finished or the decision dropped; lost by a
//! holder that never returns them when the lease ends, and kept by one that renews.

mod common;

use core::time::Duration;

use common::{build, check, get, header};
use ratekeeper_decision::{Decision, Kind, Limiter, RequestView, RoutePolicy, limits::Scope};

fn report(policy: RoutePolicy) -> (Limiter, std::sync::Arc<ratekeeper_core::ManualClock>) {
    build(Limiter::builder().route("/report", policy))
}

fn from(peer: &str) -> RequestView<'_> {
    RequestView::new("GET", "/report").with_peer(peer.parse().unwrap())
}

/// What `current_limits` says is left of the request's in-flight limits.
fn slots_left(limiter: &Limiter, req: &RequestView<'_>) -> Vec<u64> {
    smol::block_on(limiter.current_limits(req))
        .unwrap()
        .into_iter()
        .filter(|l| l.scope == Scope::InFlight)
        .map(|l| l.remaining)
        .collect()
}

#[test]
fn two_slots_admit_two_and_refuse_the_third_with_no_promise() {
    let (limiter, _) = report(RoutePolicy::new().limit("30 per minute").concurrent(2));
    let req = from("10.0.0.1");
    let first = check(&limiter, &req);
    let second = check(&limiter, &req);
    assert!(first.is_allowed() && second.is_allowed());
    assert_eq!(first.slots().map(|s| s.len()), Some(1));
    let third = check(&limiter, &req);
    assert_eq!(third.kind(), Kind::Rejected);
    assert_eq!(third.scope(), Some(Scope::InFlight));
    assert_eq!(third.status(), 429);
    assert!(
        third
            .body()
            .unwrap()
            .contains("too many requests in flight")
    );
    assert!(third.body().unwrap().contains("\"2 in flight\""));
    assert_eq!(header(&third, "X-RateLimit-Limit"), Some("2"));
    assert_eq!(header(&third, "X-RateLimit-Remaining"), Some("0"));
    assert_eq!(header(&third, "X-RateLimit-Reset"), None);
    assert_eq!(header(&third, "Retry-After"), None);
    assert_eq!(third.retry_after_secs(), None);
    // Another client has slots of its own.
    assert!(check(&limiter, &from("10.0.0.2")).is_allowed());
    // A finished response gives its slot back.
    smol::block_on(first.settle("/report", 200, None));
    let again = check(&limiter, &req);
    assert!(again.is_allowed());
    assert!(!check(&limiter, &req).is_allowed());
    drop((second, again));
    assert_eq!(slots_left(&limiter, &req), [2]);
}

#[test]
fn a_dropped_decision_gives_its_slot_back() {
    let (limiter, _) = report(RoutePolicy::new().concurrent(1));
    let req = from("10.0.0.1");
    let held = check(&limiter, &req);
    assert!(held.is_allowed());
    assert!(!check(&limiter, &req).is_allowed());
    drop(held);
    let mut again = check(&limiter, &req);
    assert!(again.is_allowed(), "{again:?}");
    // Taken out of the decision, the slots are the taker's to drop.
    let slots = again.take_slots().unwrap();
    drop(again);
    assert!(!check(&limiter, &req).is_allowed());
    drop(slots);
    assert_eq!(slots_left(&limiter, &req), [1]);
}

#[test]
fn the_shared_limit_counts_every_client() {
    let (limiter, _) = report(RoutePolicy::new().concurrent(2).concurrent_shared(3));
    let mut held: Vec<Decision> = Vec::new();
    let mut admitted = 0;
    for client in 1..=4 {
        for _ in 0..2 {
            let d = check(&limiter, &from(&format!("10.0.0.{client}")));
            if d.is_allowed() {
                admitted += 1;
                held.push(d);
            }
        }
    }
    assert_eq!(admitted, 3);
    held.pop();
    assert!(check(&limiter, &from("10.0.0.9")).is_allowed());
}

#[test]
fn a_rate_refusal_takes_no_slot_and_a_slot_refusal_is_charged_no_rate() {
    let (limiter, _) = report(RoutePolicy::new().limit("2 per minute").concurrent(5));
    let req = from("10.0.0.1");
    let a = check(&limiter, &req);
    let b = check(&limiter, &req);
    let refused = check(&limiter, &req);
    assert!(a.is_allowed() && b.is_allowed());
    assert_eq!(refused.scope(), Some(Scope::Route));
    assert!(refused.retry_after_secs().is_some());
    assert_eq!(slots_left(&limiter, &req), [3]);

    let (limiter, _) = report(RoutePolicy::new().limit("10 per minute").concurrent(1));
    let held = check(&limiter, &req);
    for _ in 0..5 {
        assert_eq!(check(&limiter, &req).scope(), Some(Scope::InFlight));
    }
    drop(held);
    let next = check(&limiter, &req);
    assert!(next.is_allowed());
    // One charge for each admitted request, none for the five refused.
    assert_eq!(next.remaining(), 8);
}

#[test]
fn a_holder_that_never_returns_its_slot_loses_it_when_the_lease_ends() {
    let (limiter, clock) = build(
        Limiter::builder()
            .in_flight_lease(Duration::from_secs(30))
            .route("/report", RoutePolicy::new().concurrent(1)),
    );
    let req = from("10.0.0.1");
    // A process killed while holding it: nothing gives it back.
    core::mem::forget(check(&limiter, &req));
    clock.advance(ratekeeper_core::Duration::from_secs(29));
    assert!(!check(&limiter, &req).is_allowed());
    clock.advance(ratekeeper_core::Duration::from_secs(1));
    assert!(check(&limiter, &req).is_allowed());
}

#[test]
fn a_renewed_slot_outlives_its_first_lease() {
    let (limiter, clock) = build(
        Limiter::builder()
            .in_flight_lease(Duration::from_secs(30))
            .route("/report", RoutePolicy::new().concurrent(1)),
    );
    let req = from("10.0.0.1");
    let held = check(&limiter, &req);
    let slots = held.slots().unwrap();
    assert_eq!(slots.lease(), Duration::from_secs(30));
    clock.advance(ratekeeper_core::Duration::from_secs(20));
    assert!(smol::block_on(slots.renew()).unwrap());
    clock.advance(ratekeeper_core::Duration::from_secs(25));
    assert!(!check(&limiter, &req).is_allowed());
    assert_eq!(slots_left(&limiter, &req), [0]);
    // A renewal after the lease ended, its slot taken meanwhile, loses it.
    clock.advance(ratekeeper_core::Duration::from_secs(30));
    let other = check(&limiter, &req);
    assert!(other.is_allowed());
    assert!(!smol::block_on(slots.renew()).unwrap());
    assert!(slots.is_empty());
    drop(held);
    assert!(
        !check(&limiter, &req).is_allowed(),
        "the lost slot is not given back"
    );
}

#[test]
fn slot_refusals_count_toward_meta_limits() {
    let (limiter, _) = build(
        Limiter::builder()
            .meta_limits("2 per hour")
            .route("/report", RoutePolicy::new().concurrent(1)),
    );
    let req = from("10.0.0.1");
    let held = check(&limiter, &req);
    assert_eq!(check(&limiter, &req).scope(), Some(Scope::InFlight));
    assert_eq!(check(&limiter, &req).scope(), Some(Scope::InFlight));
    drop(held);
    // The slot is free, but two breaches shut the client out.
    let shut = check(&limiter, &req);
    assert_eq!(shut.scope(), Some(Scope::Meta));
}

#[test]
fn application_and_default_slots_apply_where_routes_have_none() {
    let (limiter, _) = build(
        Limiter::builder()
            .defaults(RoutePolicy::new().limit("100 per minute").concurrent(1))
            .application(RoutePolicy::new().concurrent_shared(2))
            .route("/own", RoutePolicy::new().limit("100 per minute")),
    );
    let a = check(&limiter, &get("/a"));
    // The defaults' slot is per route: another route has its own.
    assert!(!check(&limiter, &get("/a")).is_allowed());
    let b = check(&limiter, &get("/b"));
    assert!(a.is_allowed() && b.is_allowed());
    // The application's two slots are taken, whatever the route.
    let own = check(&limiter, &get("/own"));
    assert_eq!(own.scope(), Some(Scope::InFlight));
    drop(a);
    assert!(check(&limiter, &get("/own")).is_allowed());
}

#[test]
fn the_lease_is_configurable_by_name() {
    use ratekeeper_decision::LimiterBuilder;
    let lease = |value: &str| {
        LimiterBuilder::default()
            .with_config([("RATELIMIT_IN_FLIGHT_LEASE", value)])
            .map(|b| b.route("/report", RoutePolicy::new().concurrent(1)))
    };
    let (limiter, clock) = build(lease("2m").unwrap());
    let req = from("10.0.0.1");
    core::mem::forget(check(&limiter, &req));
    clock.advance(ratekeeper_core::Duration::from_secs(119));
    assert!(!check(&limiter, &req).is_allowed());
    clock.advance(ratekeeper_core::Duration::from_secs(1));
    assert!(check(&limiter, &req).is_allowed());
    let error = lease("soon").unwrap_err().to_string();
    assert!(error.contains("RATELIMIT_IN_FLIGHT_LEASE"), "{error}");
    assert!(lease("0").is_err());
}
