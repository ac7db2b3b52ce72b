//! The default and application limits with Flask-Limiter's options (`default_limits_*`,
//! `application_limits_*`): per method, cost, conditional deduction (exemptions are in
//! `exemptions.rs`).

mod common;

use common::{IP, build, check, get};
use ratekeeper_decision::{Limiter, RequestView, RoutePolicy, limits::Scope};

fn post(route: &str) -> RequestView<'_> {
    RequestView::new("POST", route).with_peer(IP.parse().unwrap())
}

#[test]
fn application_limits_per_method() {
    let (limiter, _) = build(
        Limiter::builder()
            .application_limits("1 per minute")
            .application_limits_per_method(true),
    );
    assert!(check(&limiter, &get("/a")).is_allowed());
    assert!(
        check(&limiter, &post("/b")).is_allowed(),
        "POST counts apart"
    );
    assert!(
        !check(&limiter, &get("/c")).is_allowed(),
        "GET is one counter across routes"
    );
}

#[test]
fn default_and_application_costs() {
    let (limiter, _) = build(
        Limiter::builder()
            .default_limits("10 per minute")
            .application_limits("10 per minute")
            .default_limits_cost(|req| if req.method() == "POST" { 4 } else { 1 })
            .application_limits_cost(|_| 3)
            .route("/own", RoutePolicy::new().cost(|_| 2)),
    );
    let d = check(&limiter, &post("/a"));
    assert_eq!(
        d.scope(),
        Some(Scope::Default),
        "10 - 4 = 6 left, the application 7"
    );
    assert_eq!(d.remaining(), 6);
    let d = check(&limiter, &get("/b"));
    assert_eq!(d.scope(), Some(Scope::Application));
    assert_eq!(d.remaining(), 4, "3 + 3 of the application's 10");
    // A route's own cost wins over the defaults' (the route counts under the defaults).
    let d = check(&limiter, &get("/own"));
    assert_eq!(d.scope(), Some(Scope::Application));
    assert_eq!(d.remaining(), 1);
    let (limiter, _) = build(
        Limiter::builder()
            .default_limits("10 per minute")
            .default_limits_cost(|_| 4)
            .route("/own", RoutePolicy::new().cost(|_| 2)),
    );
    assert_eq!(check(&limiter, &get("/own")).remaining(), 8);
}

#[test]
fn default_limits_deduct_when_refunds_only_the_defaults() {
    let (limiter, _) = build(
        Limiter::builder()
            .default_limits("3 per minute")
            .application_limits("5 per minute")
            .default_limits_deduct_when(|status| status < 500),
    );
    smol::block_on(async {
        let d = limiter.check(&get("/a")).await.unwrap();
        assert!(d.is_conditional());
        assert!(
            d.complete(503).await.unwrap(),
            "a 503 does not count under the defaults"
        );
        let d = limiter.check(&get("/a")).await.unwrap();
        assert!(!d.complete(200).await.unwrap(), "a 200 counts");
        // The defaults hold one charge (the 200's) of /a's three.
        let d = limiter.check(&get("/a")).await.unwrap();
        assert_eq!(d.scope(), Some(Scope::Default));
        assert_eq!(d.remaining(), 1);
        // The application limit kept all three: after a fourth request, 1 of its 5 is left.
        let last = limiter.check(&get("/other")).await.unwrap();
        assert_eq!(last.scope(), Some(Scope::Application));
        assert_eq!(last.remaining(), 1);
    });
}

#[test]
fn application_deduct_when_and_a_routes_own_deduct_when_wins() {
    let (limiter, _) = build(
        Limiter::builder()
            .application_limits("2 per minute")
            .application_limits_deduct_when(|status| status != 404)
            .route(
                "/own",
                RoutePolicy::new()
                    .limit("5 per minute")
                    .deduct_when(|status| status == 200),
            ),
    );
    smol::block_on(async {
        // A 404 is refunded under the application limit.
        for _ in 0..5 {
            let d = limiter.check(&get("/a")).await.unwrap();
            assert!(d.is_allowed());
            assert!(d.complete(404).await.unwrap());
        }
        // The route's deduct_when covers every charge of its requests: a 404 there is
        // refunded (it is not a 200), and so is a 500 that the application's would keep.
        let d = limiter.check(&get("/own")).await.unwrap();
        assert!(d.complete(500).await.unwrap());
        // Two counted requests fill the application limit.
        for _ in 0..2 {
            let d = limiter.check(&get("/a")).await.unwrap();
            assert!(!d.complete(200).await.unwrap());
        }
        let full = limiter.check(&get("/own")).await.unwrap();
        assert!(!full.is_allowed());
        assert_eq!(full.scope(), Some(Scope::Application));
    });
}

#[test]
fn the_defaults_and_the_application_limits_take_a_policy_as_a_route_does() {
    // The same limiter written twice: with the Flask-Limiter setters and as two policies.
    let setters = Limiter::builder()
        .default_limits("2 per minute")
        .default_limits_deduct_when(|status| status < 500)
        .application_limits("3 per minute")
        .application_limits_per_method(true)
        .application_limits_cost(|_| 1);
    let policies = Limiter::builder()
        .defaults(
            RoutePolicy::new()
                .limit("2 per minute")
                .deduct_when(|status| status < 500),
        )
        .application(
            RoutePolicy::new()
                .limit("3 per minute")
                .per_method()
                .cost(|_| 1),
        );
    for builder in [setters, policies] {
        let (limiter, _) = build(builder);
        // Failed requests are refunded under the defaults, not under the application limits.
        for _ in 0..3 {
            let d = check(&limiter, &get("/a"));
            assert!(d.is_allowed());
            assert!(smol::block_on(d.complete(503)).unwrap(), "refunded");
        }
        let d = check(&limiter, &get("/a"));
        assert!(!d.is_allowed(), "the application's 3 GETs are spent");
        assert_eq!(d.scope(), Some(Scope::Application));
        assert!(
            check(&limiter, &post("/a")).is_allowed(),
            "POST counts apart"
        );
    }
}

#[test]
fn a_route_option_that_does_not_apply_to_a_scope_fails_build() {
    let cases = [
        (
            Limiter::builder().defaults(RoutePolicy::new().limit("1 per minute").shared("s")),
            "default limits: the route option `shared` does not apply to them",
        ),
        (
            Limiter::builder().application(RoutePolicy::new().guard("1 per minute")),
            "application limits: the route option `guard` does not apply to them",
        ),
        (
            Limiter::builder().defaults(RoutePolicy::new().exempt_from_meta()),
            "default limits: the route option `exempt` does not apply to them",
        ),
        (
            Limiter::builder().defaults(RoutePolicy::new().limit("five per minute")),
            "default limits: invalid limit \"five per minute\"",
        ),
    ];
    for (builder, start) in cases {
        let err = builder.build().unwrap_err().to_string();
        assert!(err.starts_with(start), "{err}");
    }
}
