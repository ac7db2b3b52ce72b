//! A key function per limit (Flask-Limiter's `key_func=` on one limit): route, default,
//! application and meta limits counted by key functions of their own, charged in the same atomic
//! batch as the request's other limits, for every strategy, on memory and on a real Redis.

mod common;

use std::sync::Arc;

use common::T0;
use ratekeeper_core::{ManualClock, StrategyKind};
use ratekeeper_decision::{
    KeyFunction, Kind, Limiter, LimiterBuilder, RequestView, RoutePolicy, adapter::Headers,
    limits::Scope,
};
use ratekeeper_stores::Stores;
use ratekeeper_test_support::redis::RedisServer;

/// Flask's `key_func=lambda: "test"`: one identity for every request.
fn everyone() -> KeyFunction {
    KeyFunction::custom("const", |_, _| "test".to_owned())
}

/// The tenant a request names in `X-Tenant`; none: not counted by tenant.
fn tenant() -> KeyFunction {
    KeyFunction::custom("tenant", |req, _| {
        req.header("X-Tenant").unwrap_or_default().to_owned()
    })
}

fn on(b: LimiterBuilder, kind: StrategyKind) -> Limiter {
    b.strategy(kind)
        .clock(Arc::new(ManualClock::new(T0)))
        .build()
        .unwrap()
}

fn request<'a>(route: &'a str, ip: &str, headers: &'a dyn Headers) -> RequestView<'a> {
    RequestView::new("GET", route)
        .with_peer(ip.parse().unwrap())
        .with_headers(headers)
}

async fn allowed(limiter: &Limiter, route: &str, ip: &str) -> bool {
    limiter
        .check(&request(route, ip, &[]))
        .await
        .unwrap()
        .is_allowed()
}

/// Where each limit of `route` stands for a client: scope, amount and remaining, charging
/// nothing.
async fn standing(
    limiter: &Limiter,
    route: &str,
    ip: &str,
    headers: &dyn Headers,
) -> Vec<(Scope, u64, u64)> {
    limiter
        .current_limits(&request(route, ip, headers))
        .await
        .unwrap()
        .iter()
        .map(|c| (c.scope, c.limit.amount(), c.remaining))
        .collect()
}

/// `@limit("2/minute")` and `@limit("3/minute", key_func=lambda: "test")` on one route.
fn stacked() -> LimiterBuilder {
    Limiter::builder().default_limits("100 per minute").route(
        "/t",
        RoutePolicy::new()
            .limit("2 per minute")
            .limit_by("3 per minute", everyone()),
    )
}

async fn two_keys_on_one_route(limiter: &Limiter) {
    // 2 per address, 3 for everyone together; a request one of them rejects charges neither.
    assert!(allowed(limiter, "/t", "10.0.0.1").await);
    assert!(allowed(limiter, "/t", "10.0.0.1").await);
    assert!(!allowed(limiter, "/t", "10.0.0.1").await, "its address's 2");
    assert!(allowed(limiter, "/t", "10.0.0.2").await);
    let third = limiter
        .check(&request("/t", "10.0.0.3", &[]))
        .await
        .unwrap();
    assert!(!third.is_allowed(), "everyone's 3");
    assert_eq!(third.limit().map(|l| l.amount()), Some(3));
    // Nothing of 10.0.0.3's own was charged (one batch, all or nothing), and the route has
    // limits of its own, so the defaults do not apply.
    let seen = standing(limiter, "/t", "10.0.0.3", &[]).await;
    assert_eq!(seen, [(Scope::Route, 2, 2), (Scope::Route, 3, 0)]);
}

#[test]
fn a_route_counts_two_limits_by_two_key_functions() {
    for &kind in StrategyKind::ALL {
        smol::block_on(two_keys_on_one_route(&on(stacked(), kind)));
    }
}

#[test]
fn a_route_counts_two_limits_by_two_key_functions_on_redis() {
    let redis = RedisServer::start();
    for &kind in StrategyKind::ALL {
        let limiter = on(
            stacked()
                .stores(Stores::new())
                .storage_uri(&format!("{}?prefix=keyed-{kind}", redis.url())),
            kind,
        );
        smol::block_on(two_keys_on_one_route(&limiter));
        // 32 clients at once on a fresh route's shared 3: exactly 3 admitted.
        let limiter = on(
            Limiter::builder()
                .stores(Stores::new())
                .storage_uri(&format!("{}?prefix=keyed-race-{kind}", redis.url()))
                .route(
                    "/r",
                    RoutePolicy::new().limit_by("3 per minute", everyone()),
                ),
            kind,
        );
        let admitted = smol::block_on(futures::future::join_all((0..32).map(|i| {
            let limiter = limiter.clone();
            async move { allowed(&limiter, "/r", &format!("10.1.0.{i}")).await }
        })))
        .into_iter()
        .filter(|a| *a)
        .count();
        assert_eq!(admitted, 3, "{kind}");
    }
}

#[test]
fn groups_keep_their_counters_apart_even_with_the_same_key() {
    // The same limit by the same key function twice: two counters, not one charged twice.
    let limiter = on(
        Limiter::builder().route(
            "/t",
            RoutePolicy::new()
                .limit("2 per minute")
                .limit_by("2 per minute", KeyFunction::client_ip()),
        ),
        StrategyKind::FixedWindow,
    );
    smol::block_on(async {
        let admitted = [
            allowed(&limiter, "/t", "10.0.0.1").await,
            allowed(&limiter, "/t", "10.0.0.1").await,
            allowed(&limiter, "/t", "10.0.0.1").await,
        ];
        assert_eq!(admitted, [true, true, false]);
    });
}

#[test]
fn default_application_and_meta_limits_by_their_own_keys() {
    for &kind in StrategyKind::ALL {
        let limiter = on(
            Limiter::builder()
                .default_limits("5 per minute")
                .default_limits_by("3 per minute", tenant())
                .application_limits("50 per minute")
                .application_limits_by("4 per minute", tenant())
                .meta_limits_by("1 per hour", tenant())
                .route("/own", RoutePolicy::new().limit("10 per minute")),
            kind,
        );
        smol::block_on(async {
            let acme = [("X-Tenant", "acme")];
            let check = |route, ip| {
                let limiter = &limiter;
                async move {
                    limiter
                        .check(&request(route, ip, &acme))
                        .await
                        .unwrap()
                        .is_allowed()
                }
            };
            // acme's default limits are per route and per tenant: 3 on /a from any address.
            assert!(check("/a", "10.0.0.1").await);
            assert!(check("/a", "10.0.0.2").await);
            assert!(check("/a", "10.0.0.3").await);
            assert!(!check("/a", "10.0.0.4").await, "{kind}: acme's 3 on /a");
            // That was acme's breach: its meta limit of 1 per hour now shuts it out of every
            // route, its application limit (3 of 4 used) notwithstanding.
            assert!(!check("/own", "10.0.0.5").await, "{kind}: meta by tenant");
            // A request without a tenant skips every tenant group, and is counted by address.
            assert!(allowed(&limiter, "/a", "10.0.0.4").await, "{kind}");
            let seen = standing(&limiter, "/a", "10.0.0.4", &[]).await;
            assert_eq!(
                seen,
                [(Scope::Application, 50, 49), (Scope::Default, 5, 4)],
                "{kind}"
            );
            // Another tenant is not touched by acme's counters.
            let other = [("X-Tenant", "globex")];
            let d = limiter
                .check(&request("/own", "10.0.0.1", &other))
                .await
                .unwrap();
            assert!(d.is_allowed(), "{kind}");
            let seen = standing(&limiter, "/own", "10.0.0.9", &other).await;
            assert_eq!(
                seen,
                [
                    (Scope::Application, 50, 50),
                    (Scope::Application, 4, 3),
                    (Scope::Route, 10, 10),
                    (Scope::Meta, 1, 1),
                ],
                "{kind}"
            );
        });
    }
}

#[test]
fn a_keyed_group_can_refuse_a_request_or_skip_it() {
    let partners = KeyFunction::credential("X-Partner", "partner", |v| {
        (v == "p-1").then(|| "one".to_owned())
    })
    .rejecting_unknown();
    let limiter = on(
        Limiter::builder()
            .route(
                "/partner",
                RoutePolicy::new().limit_by("1 per minute", partners),
            )
            .route(
                "/t",
                RoutePolicy::new()
                    .limit("1 per minute")
                    .limit_by("5 per minute", tenant()),
            ),
        StrategyKind::FixedWindow,
    );
    smol::block_on(async {
        let unknown = [("X-Partner", "p-2")];
        let d = limiter
            .check(&request("/partner", "10.0.0.1", &unknown))
            .await
            .unwrap();
        assert_eq!(d.kind(), Kind::Unauthorized);
        let known = [("X-Partner", "p-1")];
        for (ip, expected) in [("10.0.0.1", true), ("10.0.0.2", false)] {
            let d = limiter
                .check(&request("/partner", ip, &known))
                .await
                .unwrap();
            assert_eq!(d.is_allowed(), expected, "{ip}");
        }
        // No tenant: the tenant group is skipped, the address's own limit still counts.
        assert!(allowed(&limiter, "/t", "10.0.0.1").await);
        assert!(!allowed(&limiter, "/t", "10.0.0.1").await);
    });
}

#[test]
fn keyed_groups_follow_the_routes_exemptions_and_the_defaults_rule() {
    let limiter = on(
        Limiter::builder()
            .default_limits("1 per minute")
            .route(
                "/only-keyed",
                RoutePolicy::new().limit_by("3 per minute", everyone()),
            )
            .route(
                "/both",
                RoutePolicy::new()
                    .limit_by("3 per minute", everyone())
                    .combine_with_defaults(),
            )
            .route(
                "/internal",
                RoutePolicy::new()
                    .limit_by("1 per minute", everyone())
                    .exempt_when(|req| req.header("X-Internal") == Some("1")),
            ),
        StrategyKind::FixedWindow,
    );
    smol::block_on(async {
        // A route limited only by a keyed group does not count under the defaults...
        let only: Vec<bool> =
            futures::future::join_all((0..4).map(|_| allowed(&limiter, "/only-keyed", "10.0.0.1")))
                .await;
        assert_eq!(only, [true, true, true, false]);
        // ...unless combined with them.
        assert!(allowed(&limiter, "/both", "10.0.0.1").await);
        assert!(
            !allowed(&limiter, "/both", "10.0.0.1").await,
            "the default 1"
        );
        // exempt_when skips the keyed group with the route's limits.
        let internal = [("X-Internal", "1")];
        for _ in 0..3 {
            let d = limiter
                .check(&request("/internal", "10.0.0.1", &internal))
                .await
                .unwrap();
            assert!(d.is_allowed());
        }
        // The control: without the header the keyed group counts, 1 per minute for everyone.
        let none: [(&str, &str); 0] = [];
        let mut control = Vec::new();
        for ip in ["10.0.0.1", "10.0.0.2"] {
            let d = limiter
                .check(&request("/internal", ip, &none))
                .await
                .unwrap();
            control.push(d.is_allowed());
        }
        assert_eq!(control, [true, false], "one counter for everyone");
    });
}

#[test]
fn malformed_keyed_limits_and_reserved_namespaces_fail_the_build() {
    let err = Limiter::builder()
        .route(
            "/t",
            RoutePolicy::new().limit_by("3 per fortnight", everyone()),
        )
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("route /t by Custom(\"const\")"), "{err}");
    assert!(err.contains("fortnight"), "{err}");
    let err = Limiter::builder()
        .application_limits_by("1 per minute", KeyFunction::custom("ip", |_, _| "x".into()))
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("namespace"), "{err}");
    let err = Limiter::builder()
        .meta_limits_by("", tenant())
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("meta limits by Custom(\"tenant\"): invalid limit \"\""),
        "{err}"
    );
}
