//! Shadow mode: decided and counted as usual, headers set, breaches logged and counted, but no
//! request rejected.

mod common;

use common::{build, check, get, header};
use ratekeeper_decision::{Kind, Limiter, RoutePolicy, limits::Scope};

#[test]
fn shadow_mode_serves_what_it_would_reject_and_counts_it() {
    let (limiter, _) = build(
        Limiter::builder()
            .default_limits("2 per minute")
            .shadow(true),
    );
    assert_eq!(check(&limiter, &get("/")).kind(), Kind::Allowed);
    assert_eq!(check(&limiter, &get("/")).kind(), Kind::Allowed);
    for n in 1..=3 {
        let d = check(&limiter, &get("/"));
        assert_eq!(d.kind(), Kind::ShadowRejected);
        assert!(d.is_allowed(), "served");
        assert_eq!(d.status(), 200);
        assert_eq!(d.body(), None);
        assert_eq!(
            d.retry_after_secs(),
            Some(60),
            "what the client would have been told"
        );
        assert_eq!(header(&d, "X-RateLimit-Remaining"), Some("0"));
        assert_eq!(header(&d, "Retry-After"), None, "not on a served request");
        assert_eq!(limiter.shadow_rejections(), n);
    }
}

#[test]
fn shadow_mode_counts_as_usual() {
    // A shadow rejection charges nothing (as a rejection), so the counter stays at the limit,
    // and the breach counts toward the meta limits as usual.
    let (limiter, _) = build(
        Limiter::builder()
            .default_limits("1 per minute")
            .meta_limits("1 per hour")
            .shadow(true),
    );
    assert_eq!(check(&limiter, &get("/a")).kind(), Kind::Allowed);
    let breach = check(&limiter, &get("/a"));
    assert_eq!(breach.kind(), Kind::ShadowRejected);
    assert_eq!(breach.scope(), Some(Scope::Default));
    let meta = check(&limiter, &get("/b"));
    assert_eq!(meta.kind(), Kind::ShadowRejected);
    assert_eq!(
        meta.scope(),
        Some(Scope::Meta),
        "the meta limit would have rejected it"
    );
    assert_eq!(limiter.shadow_rejections(), 2);
}

#[test]
fn shadow_mode_per_route() {
    let (limiter, _) = build(
        Limiter::builder()
            .default_limits("1 per minute")
            .route("/new", RoutePolicy::new().limit("1 per minute").shadow()),
    );
    check(&limiter, &get("/new"));
    assert_eq!(check(&limiter, &get("/new")).kind(), Kind::ShadowRejected);
    check(&limiter, &get("/old"));
    let old = check(&limiter, &get("/old"));
    assert_eq!(old.kind(), Kind::Rejected, "other routes reject as usual");
    assert_eq!(old.status(), 429);
    assert_eq!(limiter.shadow_rejections(), 1);
}
