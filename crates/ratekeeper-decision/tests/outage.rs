//! Deciding through a storage outage, for every strategy: the in-memory fallback with the
//! request's own limits keeps meta limits (gates), exempt routes and conditional refunds as they
//! are on a healthy store; fallback limits cap each client per route (as Flask-Limiter does) or
//! across routes on top of the request's own limits (never looser than a healthy store), and
//! refunds go back to both.

mod common;

use std::sync::Arc;

use common::{Broken, T0};
use ratekeeper_core::{ManualClock, StrategyKind};
use ratekeeper_decision::{
    Decision, Kind, Limiter, Outage, RequestView, RoutePolicy, limits::Scope, outage::FallbackScope,
};

/// The seed-like policy set on a dead store, deciding with `kind`.
fn on_a_dead_store(kind: StrategyKind, outage: Outage) -> Limiter {
    let clock = Arc::new(ManualClock::new(T0));
    let builder = Limiter::builder()
        .default_limits("3 per minute")
        .meta_limits("2 per minute")
        .strategy(kind)
        .clock(clock)
        .storage(Arc::new(Broken))
        .on_outage(
            outage
                .timeout(core::time::Duration::from_millis(100))
                .probe_backoff(
                    core::time::Duration::from_secs(30),
                    core::time::Duration::from_secs(30),
                ),
        )
        .route("/health", RoutePolicy::new().exempt())
        .route(
            "/process",
            RoutePolicy::new()
                .limit("2 per minute")
                .deduct_when(|status| status == 200)
                .exempt_from_meta(),
        );
    builder.build().unwrap()
}

fn from(ip: &str, route: &'static str) -> RequestView<'static> {
    RequestView::new("GET", route).with_peer(ip.parse().unwrap())
}

fn check(limiter: &Limiter, req: &RequestView<'_>) -> Decision {
    smol::block_on(limiter.check(req)).expect("the fallback answers, never an error")
}

/// Two requests that fail (their reservations refunded), then how many of five that succeed
/// are admitted.
fn conditional(limiter: &Limiter, ip: &str) -> usize {
    for _ in 0..2 {
        let d = check(limiter, &from(ip, "/process"));
        assert!(d.is_allowed());
        assert!(smol::block_on(d.complete(500)).unwrap(), "refunded");
    }
    (0..5)
        .filter(|_| {
            let d = check(limiter, &from(ip, "/process"));
            let allowed = d.is_allowed();
            smol::block_on(d.complete(200)).unwrap();
            allowed
        })
        .count()
}

#[test]
fn the_same_limits_in_memory_keep_gates_exemptions_and_refunds() {
    for &kind in StrategyKind::ALL {
        let limiter = on_a_dead_store(kind, Outage::fallback_to_memory());
        // Exempt: never limited, never counted.
        for _ in 0..10 {
            assert_eq!(
                check(&limiter, &from("10.0.0.1", "/health")).kind(),
                Kind::Exempt
            );
        }
        // The defaults, counted in memory: 3 admitted, then two breaches...
        let admitted = (0..5)
            .filter(|_| check(&limiter, &from("10.0.0.1", "/x")).is_allowed())
            .count();
        assert_eq!(admitted, 3, "{kind}");
        // ...which spend the meta limit: the client is shut out of a fresh route too.
        let shut = check(&limiter, &from("10.0.0.1", "/y"));
        assert!(!shut.is_allowed(), "{kind}");
        assert_eq!(shut.scope(), Some(Scope::Meta), "{kind}");
        assert_eq!(
            check(&limiter, &from("10.0.0.1", "/health")).kind(),
            Kind::Exempt
        );
        // Another client is untouched.
        assert!(
            check(&limiter, &from("10.0.0.2", "/y")).is_allowed(),
            "{kind}"
        );
        // Refunded failures do not count: both successes of "2 per minute" still fit.
        assert_eq!(conditional(&limiter, "10.0.0.3"), 2, "{kind}");
    }
}

#[test]
fn fallback_limits_per_client_cap_each_client_and_take_refunds_back() {
    for &kind in StrategyKind::ALL {
        let limiter = on_a_dead_store(
            kind,
            Outage::in_memory_fallback("4 per minute").scope(FallbackScope::Client),
        );
        for _ in 0..10 {
            assert_eq!(
                check(&limiter, &from("10.0.0.1", "/health")).kind(),
                Kind::Exempt
            );
        }
        // One counter per client across routes: four requests in all.
        let routes = ["/a", "/b", "/c", "/d", "/a", "/e"];
        let admitted: Vec<bool> = routes
            .iter()
            .map(|r| check(&limiter, &from("10.0.0.1", r)).is_allowed())
            .collect();
        assert_eq!(admitted, [true, true, true, true, false, false], "{kind}");
        // Refunds go back to both counters: 2 failures refunded, then the route's own
        // "2 per minute" admits 2 of 5 (the cap of 4 would have let 4 through: a fallback that
        // replaced the route's limits was looser than the store it stood in for).
        assert_eq!(conditional(&limiter, "10.0.0.4"), 2, "{kind}");
    }
}

/// Flask-Limiter's own scenario: default `5/minute`, `/t2` with `3 per minute`,
/// `in_memory_fallback("1/minute")`, the store unreachable.
fn flask_scenario(kind: StrategyKind, scope: Option<FallbackScope>) -> [bool; 5] {
    let builder = Limiter::builder()
        .default_limits("5/minute")
        .route("/t2", RoutePolicy::new().limit("3 per minute"))
        .strategy(kind)
        .clock(Arc::new(ManualClock::new(T0)))
        .storage(Arc::new(Broken));
    let mut outage =
        Outage::in_memory_fallback("1/minute").timeout(core::time::Duration::from_millis(100));
    if let Some(scope) = scope {
        outage = outage.scope(scope);
    }
    let limiter = builder.on_outage(outage).build().unwrap();
    ["/t1", "/t1", "/t2", "/t2", "/t1"].map(|route| {
        let d = check(&limiter, &from("10.0.0.1", route));
        assert_eq!(d.status(), if d.is_allowed() { 200 } else { 429 });
        d.is_allowed()
    })
}

#[test]
fn fallback_limits_count_per_route_by_default_as_flask_limiter_does() {
    for &kind in StrategyKind::ALL {
        // /t1 200, /t1 429, /t2 200 (its own count), /t2 429, /t1 still 429.
        let expected = [true, false, true, false, false];
        assert_eq!(flask_scenario(kind, None), expected, "{kind}");
        assert_eq!(
            flask_scenario(kind, Some(FallbackScope::Route)),
            expected,
            "{kind}"
        );
        // Per client: the first request uses the client's one for every route.
        assert_eq!(
            flask_scenario(kind, Some(FallbackScope::Client)),
            [true, false, false, false, false],
            "{kind}"
        );
    }
}

#[test]
fn per_route_fallback_limits_are_never_looser_than_the_routes_own() {
    // A fallback of 100 per minute per route does not lift /t2's own 3 per minute.
    let limiter = Limiter::builder()
        .route("/t2", RoutePolicy::new().limit("3 per minute"))
        .on_outage(Outage::in_memory_fallback("100/minute"))
        .clock(Arc::new(ManualClock::new(T0)))
        .storage(Arc::new(Broken))
        .build()
        .unwrap();
    let admitted = (0..10)
        .filter(|_| check(&limiter, &from("10.0.0.1", "/t2")).is_allowed())
        .count();
    assert_eq!(admitted, 3);
}
