//! The rate-limit headers of every strategy, on an allowed and on a rejected request, with the
//! numbers worked out by hand; the IETF fields on a 429, renamed; the policy list across
//! scopes; a cost above the limit.

mod common;

use common::{T0, build, check, get, header};
use ratekeeper_core::{Duration, StrategyKind};
use ratekeeper_decision::{Limiter, RoutePolicy, headers::HeaderOptions};

/// What one strategy's headers must say for "5 per minute": after one hit at T0, and on the
/// sixth request, 10 s after five hits at T0.
struct Expected {
    kind: StrategyKind,
    /// After the first hit: seconds from T0 to the reset.
    first_reset: u64,
    /// On the rejection at T0 + 10 s: seconds from T0 to the reset, and Retry-After.
    rejected_reset: u64,
    retry_after: u64,
}

const EXPECTED: [Expected; 4] = [
    // The window opened by the first hit ends at T0 + 60; the sixth waits for it.
    Expected {
        kind: StrategyKind::FixedWindow,
        first_reset: 60,
        rejected_reset: 60,
        retry_after: 50,
    },
    // The oldest hit (T0) leaves the window at T0 + 60.
    Expected {
        kind: StrategyKind::MovingWindow,
        first_reset: 60,
        rejected_reset: 60,
        retry_after: 50,
    },
    // Bucket [T0, T0 + 60) holds the hits; once it is the previous bucket its weight is
    // 5 * left / 60, which drops below 5 a nanosecond after T0 + 60: 50 s and 1 ns, so 51.
    Expected {
        kind: StrategyKind::SlidingWindowCounter,
        first_reset: 60,
        rejected_reset: 60,
        retry_after: 51,
    },
    // Emission interval 12 s: one hit puts the TAT at T0 + 12, five at T0 + 60; a sixth fits
    // when TAT + 12 <= now + 60, at T0 + 12: 2 s after T0 + 10.
    Expected {
        kind: StrategyKind::Gcra,
        first_reset: 12,
        rejected_reset: 60,
        retry_after: 2,
    },
];

#[test]
fn every_strategy_reports_reset_retry_after_and_ietf_t() {
    for e in EXPECTED {
        let kind = e.kind;
        let (limiter, clock) = build(
            Limiter::builder()
                .default_limits("5 per minute")
                .strategy(kind)
                .headers(HeaderOptions::all()),
        );
        let first = check(&limiter, &get("/h"));
        assert!(first.is_allowed(), "{kind}");
        let reset = (T0.as_secs() + e.first_reset).to_string();
        assert_eq!(header(&first, "X-RateLimit-Limit"), Some("5"), "{kind}");
        assert_eq!(header(&first, "X-RateLimit-Remaining"), Some("4"), "{kind}");
        assert_eq!(header(&first, "X-RateLimit-Reset"), Some(&*reset), "{kind}");
        assert_eq!(header(&first, "Retry-After"), None, "{kind}");
        let field = format!("\"5 per 1 minute\";r=4;t={}", e.first_reset);
        assert_eq!(header(&first, "RateLimit"), Some(&*field), "{kind}");
        assert_eq!(
            header(&first, "RateLimit-Policy"),
            Some("\"5 per 1 minute\";q=5;w=60"),
            "{kind}"
        );

        for _ in 0..4 {
            assert!(check(&limiter, &get("/h")).is_allowed(), "{kind}");
        }
        clock.advance(Duration::from_secs(10));
        let rejected = check(&limiter, &get("/h"));
        assert!(!rejected.is_allowed(), "{kind}");
        let reset = (T0.as_secs() + e.rejected_reset).to_string();
        let retry = e.retry_after.to_string();
        assert_eq!(
            header(&rejected, "X-RateLimit-Remaining"),
            Some("0"),
            "{kind}"
        );
        assert_eq!(
            header(&rejected, "X-RateLimit-Reset"),
            Some(&*reset),
            "{kind}"
        );
        assert_eq!(header(&rejected, "Retry-After"), Some(&*retry), "{kind}");
        assert_eq!(rejected.retry_after_secs(), Some(e.retry_after), "{kind}");
        // On a 429 the IETF field names the limit that rejected, with nothing remaining.
        let field = format!("\"5 per 1 minute\";r=0;t={}", e.rejected_reset - 10);
        assert_eq!(header(&rejected, "RateLimit"), Some(&*field), "{kind}");
    }
}

#[test]
fn ietf_names_can_be_renamed() {
    let (limiter, _) = build(
        Limiter::builder().default_limits("1 per minute").headers(
            HeaderOptions::all()
                .rename("RateLimit-Policy", "X-Policy")
                .rename("ratelimit", "X-Quota"),
        ),
    );
    let _ = check(&limiter, &get("/h"));
    let rejected = check(&limiter, &get("/h"));
    assert!(!rejected.is_allowed());
    assert_eq!(
        header(&rejected, "X-Policy"),
        Some("\"1 per 1 minute\";q=1;w=60")
    );
    assert_eq!(
        header(&rejected, "X-Quota"),
        Some("\"1 per 1 minute\";r=0;t=60")
    );
    assert_eq!(header(&rejected, "RateLimit-Policy"), None);
    assert_eq!(header(&rejected, "RateLimit"), None);
    assert_eq!(header(&rejected, "Retry-After"), Some("60"));
}

#[test]
fn the_policy_lists_route_shared_and_application_limits_but_not_meta() {
    let (limiter, _) = build(
        Limiter::builder()
            .default_limits("50 per hour")
            .application_limits("1000 per day")
            .meta_limits("3 per minute")
            .headers(HeaderOptions::all())
            .route(
                "/search",
                RoutePolicy::new().limit("10 per minute").shared("find"),
            )
            .route("/plain", RoutePolicy::new().limit("20 per minute")),
    );
    // Application limits first, then the route's (or the shared scope's, or the defaults).
    let shared = check(&limiter, &get("/search"));
    assert_eq!(
        header(&shared, "RateLimit-Policy"),
        Some("\"1000 per 1 day\";q=1000;w=86400, \"10 per 1 minute\";q=10;w=60")
    );
    let plain = check(&limiter, &get("/plain"));
    assert_eq!(
        header(&plain, "RateLimit-Policy"),
        Some("\"1000 per 1 day\";q=1000;w=86400, \"20 per 1 minute\";q=20;w=60")
    );
    let defaults = check(&limiter, &get("/other"));
    assert_eq!(
        header(&defaults, "RateLimit-Policy"),
        Some("\"1000 per 1 day\";q=1000;w=86400, \"50 per 1 hour\";q=50;w=3600")
    );
    // The field shows the limit closest to exhaustion: the route's.
    assert_eq!(
        header(&plain, "RateLimit"),
        Some("\"20 per 1 minute\";r=19;t=60")
    );
}

#[test]
fn a_cost_above_the_limit_has_no_retry_after() {
    let (limiter, _) = build(Limiter::builder().headers(HeaderOptions::all()).route(
        "/upload",
        RoutePolicy::new().limit("5 per minute").cost(|_| 10),
    ));
    let d = check(&limiter, &get("/upload"));
    assert!(!d.is_allowed());
    assert_eq!(d.retry_after_secs(), None, "it will never fit");
    assert_eq!(d.retry_after(), ratekeeper_core::RetryAfter::Never);
    assert_eq!(header(&d, "Retry-After"), None);
    assert_eq!(header(&d, "X-RateLimit-Remaining"), Some("5"));
    assert_eq!(
        d.body(),
        Some(
            "{\"error\": \"rate limit exceeded\", \"limit\": \"5 per 1 minute\", \"retry_after\": null}"
        )
    );
}

/// A renamed header must still be a header: a name no response can carry (it made every
/// response of the Tide middleware panic) is refused when the limiter is built, and so is one
/// name for two headers.
#[test]
fn invalid_header_names_are_refused_at_build() {
    for bad in [
        "",
        "X Left",
        "X-Left:",
        "X-Left\r\nSet-Cookie",
        "X-Ĺeft",
        "(X-Left)",
        "Retry-After",
    ] {
        let err = Limiter::builder()
            .default_limits("1 per minute")
            .headers(HeaderOptions::all().rename("X-RateLimit-Remaining", bad))
            .build()
            .expect_err(bad);
        let text = err.to_string();
        assert!(text.starts_with("header name "), "{bad:?}: {text}");
        assert!(text.contains(&format!("{bad:?}")), "{bad:?}: {text}");
    }
    for good in ["X-Left", "x_left", "X-Left.v2", "!#$%&'*+-.^_`|~09aZ"] {
        assert!(
            Limiter::builder()
                .headers(HeaderOptions::all().rename("X-RateLimit-Remaining", good))
                .build()
                .is_ok(),
            "{good}"
        );
    }
}

/// `X-RateLimit-Reset` is the exact end of the window, rounded up: at a whole second with
/// `10/minute` it is 60 s on (Flask-Limiter's `floor(reset) + 1` would say 61).
#[test]
fn the_reset_header_is_the_window_end_at_a_whole_second() {
    let clock = std::sync::Arc::new(ratekeeper_core::ManualClock::new(
        ratekeeper_core::Timestamp::from_secs(1_700_000_000),
    ));
    let limiter = Limiter::builder()
        .default_limits("10/minute")
        .clock(clock)
        .build()
        .unwrap();
    let d = check(&limiter, &get("/x"));
    assert_eq!(header(&d, "X-RateLimit-Reset"), Some("1700000060"));
}
