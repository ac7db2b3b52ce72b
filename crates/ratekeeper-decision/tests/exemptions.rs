//! Per-request exemptions (Flask-Limiter's `exempt_when`, `default_limits_exempt_when`,
//! `application_limits_exempt_when`) and request filters (`request_filter`), through the
//! Decision API on a manual clock.

mod common;

use common::{Broken, IP, build, check, get};
use ratekeeper_decision::{Kind, Limiter, RequestView, RoutePolicy, limits::Scope};

/// `GET route` from [`IP`] with `headers`.
fn with<'a>(route: &'a str, headers: &'a [(&'a str, &'a str); 1]) -> RequestView<'a> {
    RequestView::new("GET", route)
        .with_peer(IP.parse().unwrap())
        .with_headers(headers)
}

fn is_internal(req: &RequestView<'_>) -> bool {
    req.header("X-Internal") == Some("1")
}

#[test]
fn a_route_exemption_skips_the_routes_limits_for_matching_requests_only() {
    let (limiter, _) = build(
        Limiter::builder().route(
            "/status",
            RoutePolicy::new()
                .limit("2 per minute")
                .exempt_when(is_internal),
        ),
    );
    let internal = [("X-Internal", "1")];
    for _ in 0..5 {
        let d = check(&limiter, &with("/status", &internal));
        assert!(d.is_allowed());
        assert_eq!(d.kind(), Kind::Unlimited, "no limit applies to it");
    }
    // The exempt requests counted nothing: others still get their 2.
    assert!(check(&limiter, &get("/status")).is_allowed());
    assert!(check(&limiter, &get("/status")).is_allowed());
    assert!(!check(&limiter, &get("/status")).is_allowed());
    // An exempt request is still served once the others are limited.
    assert!(check(&limiter, &with("/status", &internal)).is_allowed());
}

#[test]
fn a_route_exemption_covers_the_defaults_it_counts_under_but_not_application_limits() {
    let (limiter, _) = build(
        Limiter::builder()
            .default_limits("1 per minute")
            .application_limits("3 per minute")
            .route("/a", RoutePolicy::new().exempt_when(is_internal)),
    );
    let internal = [("X-Internal", "1")];
    let d = check(&limiter, &with("/a", &internal));
    assert_eq!(
        d.scope(),
        Some(Scope::Application),
        "only the application limit"
    );
    assert!(check(&limiter, &with("/a", &internal)).is_allowed());
    assert!(check(&limiter, &with("/a", &internal)).is_allowed());
    let fourth = check(&limiter, &with("/a", &internal));
    assert!(!fourth.is_allowed(), "the application limit still holds");
    assert_eq!(fourth.scope(), Some(Scope::Application));
}

#[test]
fn default_and_application_exemptions_each_skip_their_own_limits() {
    let (limiter, _) = build(
        Limiter::builder()
            .default_limits("1 per minute")
            .application_limits("2 per minute")
            .default_limits_exempt_when(is_internal)
            .application_limits_exempt_when(|req| req.header("X-Batch") == Some("1")),
    );
    let internal = [("X-Internal", "1")];
    // Defaults skipped: only the application limit (2) counts.
    assert!(check(&limiter, &with("/x", &internal)).is_allowed());
    assert!(check(&limiter, &with("/x", &internal)).is_allowed());
    let third = check(&limiter, &with("/x", &internal));
    assert!(!third.is_allowed());
    assert_eq!(third.scope(), Some(Scope::Application));

    let (limiter, _) = build(
        Limiter::builder()
            .default_limits("1 per minute")
            .application_limits("2 per minute")
            .application_limits_exempt_when(|req| req.header("X-Batch") == Some("1")),
    );
    let batch = [("X-Batch", "1")];
    // Application limits skipped: the defaults (1 per route) decide.
    let first = check(&limiter, &with("/y", &batch));
    assert_eq!(first.scope(), Some(Scope::Default));
    let second = check(&limiter, &with("/y", &batch));
    assert!(!second.is_allowed());
    assert_eq!(second.scope(), Some(Scope::Default));
    // ...and the application counter was not touched: another route's requests get both.
    assert!(check(&limiter, &get("/z")).is_allowed());
    let d = check(&limiter, &get("/w"));
    assert!(d.is_allowed());
    assert_eq!(d.scope(), Some(Scope::Application));
    assert_eq!(d.remaining(), 0, "two of the application's two, none by /y");
}

#[test]
fn a_request_filter_exempts_from_everything_without_a_storage_call() {
    // The store is down: a filtered request never reaches it.
    let (limiter, _) = build(
        Limiter::builder()
            .default_limits("1 per minute")
            .application_limits("1 per minute")
            .meta_limits("1 per hour")
            .storage(std::sync::Arc::new(Broken))
            .request_filter(|req| req.route() == "/metrics")
            .request_filter(is_internal),
    );
    let internal = [("X-Internal", "1")];
    for req in [get("/metrics"), with("/anything", &internal)] {
        let d = check(&limiter, &req);
        assert_eq!(d.kind(), Kind::Exempt);
        assert!(d.headers().next().is_none());
    }
    // Anything else goes to the store (and fails: it is down).
    assert!(smol::block_on(limiter.check(&get("/other"))).is_err());
}

/// The allow-list and request filters see the client as resolved behind trusted proxies: a
/// listed client forwarded by the proxy is exempt; a stranger who sends the listed address in
/// a header straight to the app is not, and neither is the proxy itself.
#[test]
fn the_allow_list_and_request_filters_see_the_resolved_client() {
    use ratekeeper_decision::proxy::ForwardedHeader;
    let (limiter, _) = build(
        Limiter::builder()
            .default_limits("1 per minute")
            .trusted_proxies(1, ForwardedHeader::XForwardedFor)
            .exempt_clients("198.51.100.0/24")
            .request_filter(|req| req.client_ip() == Some("192.0.2.9".parse().unwrap())),
    );
    let via_proxy = |client: &'static str| {
        let headers: &'static [(&str, &str); 1] =
            Box::leak(Box::new([("X-Forwarded-For", client)]));
        RequestView::new("GET", "/")
            .with_peer("10.0.0.2".parse().unwrap())
            .with_headers(headers)
    };
    for client in ["198.51.100.77", "192.0.2.9"] {
        for _ in 0..3 {
            assert_eq!(
                check(&limiter, &via_proxy(client)).kind(),
                Kind::Exempt,
                "{client}"
            );
        }
    }
    // Straight from the internet, a forwarded header is the client's own claim.
    let spoofed = [("X-Forwarded-For", "198.51.100.77")];
    let direct = RequestView::new("GET", "/")
        .with_peer("203.0.113.7".parse().unwrap())
        .with_headers(&spoofed);
    assert_eq!(check(&limiter, &direct).kind(), Kind::Allowed);
    assert!(!check(&limiter, &direct).is_allowed());
    // The proxy's own requests (no forwarded header) are not exempt either.
    let proxy = RequestView::new("GET", "/").with_peer("10.0.0.2".parse().unwrap());
    assert!(check(&limiter, &proxy).is_allowed());
    assert!(!check(&limiter, &proxy).is_allowed());
}
