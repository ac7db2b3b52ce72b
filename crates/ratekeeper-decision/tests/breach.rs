//! Breach responses: a hook may write the whole response (status, content type, headers, body),
//! meta breaches may have their own, and the most specific hook wins.

mod common;

use common::{build, check, get, header};
use ratekeeper_decision::{Kind, Limiter, RoutePolicy, breach::BreachResponse, limits::Scope};

fn busy(b: &ratekeeper_decision::breach::Breach<'_>) -> BreachResponse {
    BreachResponse::new(format!("busy: {}", b.limit))
        .status(503)
        .content_type("text/plain; charset=utf-8")
        .header("Cache-Control", "no-store")
}

#[test]
fn a_whole_response_with_the_rate_limit_headers() {
    let (limiter, _) = build(
        Limiter::builder()
            .default_limits("1 per minute")
            .on_breach_response(busy),
    );
    let ok = check(&limiter, &get("/"));
    assert_eq!(ok.status(), 200);
    assert!(ok.response().is_none());
    let d = check(&limiter, &get("/"));
    assert_eq!(d.kind(), Kind::Rejected);
    assert_eq!(d.status(), 503);
    assert_eq!(d.content_type(), "text/plain; charset=utf-8");
    assert_eq!(d.body(), Some("busy: 1 per 1 minute"));
    let extra: Vec<_> = d.response().unwrap().headers().collect();
    assert_eq!(extra, [("Cache-Control", "no-store")]);
    assert_eq!(header(&d, "X-RateLimit-Remaining"), Some("0"));
    assert!(header(&d, "Retry-After").is_some());
}

#[test]
fn without_a_hook_the_default_json_429() {
    let (limiter, _) = build(Limiter::builder().default_limits("1 per minute"));
    check(&limiter, &get("/"));
    let d = check(&limiter, &get("/"));
    assert_eq!(d.status(), 429);
    assert_eq!(d.content_type(), "application/json");
    assert!(d.body().unwrap().contains("rate limit exceeded"));
    assert!(d.response().is_none());
}

#[test]
fn the_most_specific_hook_wins() {
    let (limiter, _) = build(
        Limiter::builder()
            .default_limits("1 per minute")
            .on_breach_response(busy)
            .route(
                "/body",
                RoutePolicy::new()
                    .limit("1 per minute")
                    .on_breach(|_| "{\"route\": \"body\"}".to_owned()),
            )
            .route(
                "/whole",
                RoutePolicy::new()
                    .limit("1 per minute")
                    .on_breach(|_| "unused".to_owned())
                    .on_breach_response(|_| BreachResponse::new("teapot").status(418)),
            ),
    );
    for route in ["/body", "/whole", "/other"] {
        check(&limiter, &get(route));
    }
    // A route's body hook wins over the limiter's whole response.
    let body = check(&limiter, &get("/body"));
    assert_eq!(
        (body.status(), body.body()),
        (429, Some("{\"route\": \"body\"}"))
    );
    // A route's whole response wins over its body hook.
    let whole = check(&limiter, &get("/whole"));
    assert_eq!((whole.status(), whole.body()), (418, Some("teapot")));
    // Elsewhere, the limiter's.
    assert_eq!(check(&limiter, &get("/other")).status(), 503);
}

#[test]
fn meta_breaches_have_their_own_response() {
    let (limiter, _) = build(
        Limiter::builder()
            .default_limits("1 per minute")
            .meta_limits("1 per hour")
            .on_breach_response(busy)
            .on_meta_breach(|b| {
                assert!(b.meta);
                BreachResponse::new("{\"error\": \"blocked for an hour\"}").status(403)
            }),
    );
    assert!(check(&limiter, &get("/a")).is_allowed());
    let first = check(&limiter, &get("/a"));
    assert_eq!(first.scope(), Some(Scope::Default));
    assert_eq!(first.status(), 503, "an ordinary breach: the ordinary hook");
    let blocked = check(&limiter, &get("/b"));
    assert_eq!(blocked.scope(), Some(Scope::Meta));
    assert_eq!(blocked.status(), 403);
    assert_eq!(blocked.body(), Some("{\"error\": \"blocked for an hour\"}"));
}

#[test]
fn unsendable_headers_and_statuses_are_not_sent() {
    let (limiter, _) = build(
        Limiter::builder()
            .default_limits("1 per minute")
            .on_breach_response(|_| {
                BreachResponse::new("{}")
                    .status(1000)
                    .header("X Bad", "1")
                    .header("X-Split", "a\r\nSet-Cookie: x=1")
                    .header("X-Good", "fine\tvalue")
            }),
    );
    check(&limiter, &get("/"));
    let d = check(&limiter, &get("/"));
    assert_eq!(d.status(), 429, "an impossible status is answered as 429");
    let extra: Vec<_> = d.response().unwrap().headers().collect();
    assert_eq!(extra, [("X-Good", "fine\tvalue")]);
}
