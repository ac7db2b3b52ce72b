//! Route groups (Flask's Blueprints) through the Decision API: by prefix or membership, counted
//! per route or shared, with the group's exemptions, cost, key function and breach response,
//! and a route's own policy replacing its group's.

mod common;

use common::{IP, build, check, get};
use ratekeeper_decision::{
    KeyFunction, Kind, Limiter, RequestView, RoutePolicy, breach::BreachResponse, limits::Scope,
};

fn allowed(limiter: &Limiter, req: &RequestView<'_>, n: usize) -> usize {
    (0..n).filter(|_| check(limiter, req).is_allowed()).count()
}

#[test]
fn a_prefix_group_counts_each_route_apart_unless_shared() {
    let (limiter, _) = build(
        Limiter::builder()
            .default_limits("100 per minute")
            .group_prefix("/admin/", RoutePolicy::new().limit("2 per minute"))
            .group_prefix(
                "/ops/",
                RoutePolicy::new().limit("2 per minute").shared("ops"),
            ),
    );
    // Per route: each admin route has its own 2.
    assert_eq!(allowed(&limiter, &get("/admin/users"), 3), 2);
    assert_eq!(allowed(&limiter, &get("/admin/audit"), 3), 2);
    let d = check(&limiter, &get("/admin/users"));
    assert_eq!(d.scope(), Some(Scope::Route));
    // Shared: the ops routes share 2.
    assert!(check(&limiter, &get("/ops/a")).is_allowed());
    assert!(check(&limiter, &get("/ops/b")).is_allowed());
    let shared = check(&limiter, &get("/ops/c"));
    assert!(!shared.is_allowed());
    assert_eq!(shared.scope(), Some(Scope::Shared));
    // Outside the groups, the defaults.
    assert_eq!(
        check(&limiter, &get("/public")).scope(),
        Some(Scope::Default)
    );
}

#[test]
fn a_routes_own_policy_replaces_its_groups_and_the_longest_prefix_wins() {
    let (limiter, _) = build(
        Limiter::builder()
            .group_prefix("/api/", RoutePolicy::new().limit("1 per minute"))
            .group_prefix("/api/v2/", RoutePolicy::new().limit("3 per minute"))
            .route("/api/special", RoutePolicy::new().limit("5 per minute")),
    );
    assert_eq!(allowed(&limiter, &get("/api/x"), 5), 1);
    assert_eq!(allowed(&limiter, &get("/api/v2/x"), 5), 3);
    assert_eq!(allowed(&limiter, &get("/api/special"), 9), 5);
}

#[test]
fn a_membership_group_and_its_options() {
    let (limiter, _) = build(
        Limiter::builder()
            .default_limits("100 per minute")
            .group(
                &["/upload", "/import"],
                RoutePolicy::new()
                    .limit("10 per minute")
                    .cost(|_| 5)
                    .exempt_when(|req| req.header("X-Internal") == Some("1"))
                    .key(KeyFunction::header_or_ip("X-Tenant", "tenant"))
                    .on_breach_response(|_| BreachResponse::new("quota").status(402)),
            )
            .route("/import", RoutePolicy::new().limit("1 per minute")),
    );
    // Cost 5 of 10: two uploads, then the group's own response.
    assert!(check(&limiter, &get("/upload")).is_allowed());
    assert!(check(&limiter, &get("/upload")).is_allowed());
    let third = check(&limiter, &get("/upload"));
    assert_eq!((third.kind(), third.status()), (Kind::Rejected, 402));
    // The group's exemption.
    let internal = [("X-Internal", "1")];
    let req = RequestView::new("GET", "/upload")
        .with_peer(IP.parse().unwrap())
        .with_headers(&internal);
    assert!(check(&limiter, &req).is_allowed());
    // The group's key function: another tenant has its own quota.
    let tenant = [("X-Tenant", "acme")];
    let acme = RequestView::new("GET", "/upload")
        .with_peer(IP.parse().unwrap())
        .with_headers(&tenant);
    assert!(check(&limiter, &acme).is_allowed());
    // A member with its own policy keeps it (1 per minute, cost 1, the default 429).
    assert!(check(&limiter, &get("/import")).is_allowed());
    let d = check(&limiter, &get("/import"));
    assert_eq!(d.status(), 429);
}

#[test]
fn an_empty_prefix_is_refused() {
    let err = Limiter::builder()
        .group_prefix("", RoutePolicy::new().limit("1 per minute"))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("prefix"), "{err}");
    let err = Limiter::builder()
        .group_prefix("/a/", RoutePolicy::new().limit("1 per fortnight"))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("group /a/*"), "{err}");
}
