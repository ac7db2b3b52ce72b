//! A route policy whose pattern matches no route registered with the middleware (a typo) is
//! reported at `warn` at the first request. `tracing` prints nothing without a subscriber, so
//! the test installs one that keeps the warnings.

use ratekeeper_decision::{Limiter, RoutePolicy};
use ratekeeper_test_support::logs::Kept;
use ratekeeper_tide::RateLimit;
use tide::http::{Method, Request, Url};
use tracing::Level;

#[test]
fn a_policy_for_a_route_that_is_not_registered_is_reported_at_the_first_request() {
    let kept = Kept::default();
    tracing::subscriber::with_default(kept.clone(), || {
        async_std::task::block_on(async {
            let limiter = Limiter::builder()
                .default_limits("100 per minute")
                // A typo: the route is `/login`.
                .route("/logn", RoutePolicy::new().limit("5 per minute"))
                .route("/users/:id", RoutePolicy::new().limit("9 per minute"))
                .group_prefix("/api/", RoutePolicy::new().limit("50 per minute"))
                .group_prefix("/admin/", RoutePolicy::new().limit("5 per minute"))
                .build()
                .unwrap();
            let limits = RateLimit::new(limiter);
            let mut app = tide::new();
            app.with(limits.clone());
            limits
                .at(&mut app, "/login")
                .post(|_| async { Ok("welcome") });
            limits
                .at(&mut app, "/users/:id")
                .get(|_| async { Ok("a user") });
            limits
                .at(&mut app, "/api/items")
                .get(|_| async { Ok("items") });
            assert!(kept.at(Level::WARN).is_empty(), "nothing before a request");
            for _ in 0..3 {
                let mut req = Request::new(Method::Post, Url::parse("http://test/login").unwrap());
                req.set_peer_addr(Some("203.0.113.7:4000"));
                let res: tide::http::Response = app.respond(req).await.unwrap();
                assert_eq!(u16::from(res.status()), 200);
            }
        });
    });
    let warnings = kept.at(Level::WARN);
    assert_eq!(
        warnings.len(),
        2,
        "once each, for /logn and /admin/*: {warnings:?}"
    );
    for (warning, route) in warnings.iter().zip(["\"/admin/*\"", "\"/logn\""]) {
        assert!(
            warning.contains(route) && warning.contains("matches no route registered"),
            "{warning}"
        );
    }
}
