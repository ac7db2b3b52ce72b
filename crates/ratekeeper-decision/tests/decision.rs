//! The Decision API end to end on the memory store and a manual clock: the seed article's
//! behaviours, one test each.

mod common;

use std::sync::Arc;

use common::{Broken, IP, Short, T0, build, check, get, header};
use ratekeeper_core::Duration;
use ratekeeper_decision::{
    ConfigError, DecisionError, KeyFunction, Kind, Limiter, LimiterBuilder, Outage, RequestView,
    RoutePolicy,
    headers::HeaderOptions,
    limits::{Scope, limit_set},
    proxy::ForwardedHeader,
};
use ratekeeper_stores::Stores;

/// How many of `n` identical requests are allowed.
fn allowed(limiter: &Limiter, req: &RequestView<'_>, n: usize) -> usize {
    (0..n).filter(|_| check(limiter, req).is_allowed()).count()
}

#[test]
fn defaults_apply_to_routes_without_a_policy() {
    let (limiter, clock) = build(Limiter::builder().default_limits("200 per day; 50 per hour"));
    assert_eq!(allowed(&limiter, &get("/api/data"), 50), 50);
    let d = check(&limiter, &get("/api/data"));
    assert!(!d.is_allowed());
    assert_eq!(d.limit().unwrap().to_string(), "50 per 1 hour");
    assert_eq!(d.scope(), Some(Scope::Default));
    assert_eq!(header(&d, "X-RateLimit-Limit"), Some("50"));
    assert_eq!(header(&d, "X-RateLimit-Remaining"), Some("0"));
    assert_eq!(header(&d, "Retry-After"), Some("3600"));
    // Per route: another route has its own counters.
    assert!(check(&limiter, &get("/api/status")).is_allowed());
    clock.advance(Duration::from_secs(3600));
    let next_hour = check(&limiter, &get("/api/data"));
    assert!(next_hour.is_allowed());
    assert_eq!(
        next_hour.remaining(),
        49,
        "the hour limit is still the tightest"
    );
}

#[test]
fn route_limits_replace_the_defaults() {
    let (limiter, clock) = build(
        Limiter::builder()
            .default_limits("2 per hour")
            .route("/auth/login", RoutePolicy::new().limit("5 per minute")),
    );
    let login = get("/auth/login");
    assert!(check(&limiter, &login).is_allowed());
    clock.advance(Duration::from_millis(10_500));
    assert_eq!(
        allowed(&limiter, &login, 4),
        4,
        "the defaults (2 per hour) do not apply"
    );
    let sixth = check(&limiter, &login);
    assert!(!sixth.is_allowed());
    assert_eq!(
        sixth.retry_after_secs(),
        Some(50),
        "49.5 s to the window's end, rounded up"
    );
    assert_eq!(
        sixth.retry_after(),
        ratekeeper_core::RetryAfter::After(Duration::from_millis(49_500)),
        "exactly"
    );
    assert_eq!(header(&sixth, "Retry-After"), Some("50"));
    assert_eq!(header(&sixth, "X-RateLimit-Remaining"), Some("0"));
    assert_eq!(
        header(&sixth, "X-RateLimit-Reset"),
        Some(&*(T0.as_secs() + 60).to_string())
    );
    let combined = build(
        Limiter::builder().default_limits("2 per hour").route(
            "/x",
            RoutePolicy::new()
                .limit("5 per minute")
                .combine_with_defaults(),
        ),
    )
    .0;
    assert_eq!(
        allowed(&combined, &get("/x"), 5),
        2,
        "combined: the defaults apply too"
    );
}

#[test]
fn exempt_routes_are_never_limited_nor_counted() {
    let (limiter, _) = build(
        Limiter::builder()
            .default_limits("1 per minute")
            .meta_limits("1 per minute")
            .route("/health", RoutePolicy::new().exempt()),
    );
    assert_eq!(allowed(&limiter, &get("/health"), 1000), 1000);
    let d = check(&limiter, &get("/health"));
    assert_eq!(d.kind(), Kind::Exempt);
    assert!(d.headers().next().is_none());
    // A breach elsewhere trips the meta limit; the exempt route does not notice.
    assert!(check(&limiter, &get("/a")).is_allowed());
    assert!(!check(&limiter, &get("/a")).is_allowed());
    let shut = check(&limiter, &get("/b"));
    assert_eq!(shut.scope(), Some(Scope::Meta));
    assert!(check(&limiter, &get("/health")).is_allowed());
}

#[test]
fn partial_exemptions_skip_only_what_they_name() {
    let (limiter, _) = build(
        Limiter::builder()
            .default_limits("1 per minute")
            .application_limits("3 per minute")
            .meta_limits("3 per minute")
            .route("/no-defaults", RoutePolicy::new().exempt_from_defaults())
            .route(
                "/no-app",
                RoutePolicy::new()
                    .limit("10 per minute")
                    .exempt_from_application(),
            )
            .route(
                "/no-meta",
                RoutePolicy::new().limit("10 per minute").exempt_from_meta(),
            ),
    );
    // Without the defaults, only the application limit (3) applies.
    assert_eq!(allowed(&limiter, &get("/no-defaults"), 5), 3);
    // The application limit is spent, but this route does not use it (two breaches so far).
    assert_eq!(allowed(&limiter, &get("/no-app"), 11), 10);
    // The third breach exhausts the meta limit: other routes are shut, the exempt one is not.
    assert_eq!(check(&limiter, &get("/other")).scope(), Some(Scope::Meta));
    let d = check(&limiter, &get("/no-meta"));
    assert_eq!(
        d.scope(),
        Some(Scope::Application),
        "not gated by meta: only the spent app limit"
    );
}

#[test]
fn per_method_policies_count_apart() {
    let (limiter, _) = build(Limiter::builder().route(
        "/items",
        RoutePolicy::new().limit("1 per minute").per_method(),
    ));
    let post = RequestView::new("POST", "/items").with_peer(IP.parse().unwrap());
    assert!(check(&limiter, &get("/items")).is_allowed());
    assert!(
        check(&limiter, &post).is_allowed(),
        "POST has its own counter"
    );
    assert!(!check(&limiter, &get("/items")).is_allowed());
    assert!(!check(&limiter, &post).is_allowed());
    // A method-specific policy takes precedence over the route's.
    let (limiter, _) = build(
        Limiter::builder()
            .route("/items", RoutePolicy::new().limit("1 per minute"))
            .route_method("POST", "/items", RoutePolicy::new().limit("3 per minute")),
    );
    assert_eq!(allowed(&limiter, &post, 5), 3);
    assert_eq!(allowed(&limiter, &get("/items"), 5), 1);
}

#[test]
fn shared_scopes_and_application_limits_share_counters() {
    let (limiter, _) = build(
        Limiter::builder()
            .route(
                "/a",
                RoutePolicy::new().limit("3 per minute").shared("search"),
            )
            .route(
                "/b",
                RoutePolicy::new().limit("3 per minute").shared("search"),
            )
            .route("/c", RoutePolicy::new().limit("3 per minute")),
    );
    assert_eq!(
        allowed(&limiter, &get("/a"), 2) + allowed(&limiter, &get("/b"), 5),
        3
    );
    assert_eq!(check(&limiter, &get("/b")).scope(), Some(Scope::Shared));
    assert_eq!(
        allowed(&limiter, &get("/c"), 5),
        3,
        "an unshared route counts alone"
    );

    let (limiter, _) = build(Limiter::builder().application_limits("4 per minute"));
    let total: usize = ["/x", "/y", "/z"]
        .iter()
        .map(|r| allowed(&limiter, &get(r), 2))
        .sum();
    assert_eq!(total, 4);
    assert_eq!(
        check(&limiter, &get("/w")).scope(),
        Some(Scope::Application)
    );
}

#[test]
fn a_rejected_request_charges_nothing() {
    let (limiter, _) = build(
        Limiter::builder()
            .application_limits("2 per minute")
            .route("/strict", RoutePolicy::new().limit("1 per minute")),
    );
    assert!(check(&limiter, &get("/strict")).is_allowed());
    let rejected = check(&limiter, &get("/strict"));
    assert_eq!(rejected.scope(), Some(Scope::Route));
    // Flask-Limiter would have charged the application limit for the rejected request.
    let other = check(&limiter, &get("/other"));
    assert!(other.is_allowed(), "one application hit is left");
    assert_eq!(other.remaining(), 0);
    assert!(!check(&limiter, &get("/other")).is_allowed());
}

#[test]
fn api_keys_and_addresses_never_collide() {
    let (limiter, _) = build(
        Limiter::builder()
            .default_limits("1 per minute")
            .key_function(KeyFunction::header_or_ip("X-API-Key", "apikey")),
    );
    let with = |key: &'static str| [("X-API-Key", key)];
    let k1 = with("k1");
    assert!(check(&limiter, &get("/r").with_headers(&k1)).is_allowed());
    assert!(
        check(&limiter, &get("/r")).is_allowed(),
        "same IP without a key: its own counter"
    );
    assert!(!check(&limiter, &get("/r").with_headers(&k1)).is_allowed());
    for tricky in ["ip:203.0.113.7", "k1/../ip:203.0.113.7", "a:b", "k1:"] {
        let h = with(tricky);
        assert!(
            check(&limiter, &get("/r").with_headers(&h)).is_allowed(),
            "{tricky}"
        );
    }
    // An empty identity from a custom key function is "not limited".
    let (limiter, _) = build(
        Limiter::builder()
            .default_limits("1 per minute")
            .key_function(KeyFunction::custom("user", |req, _| {
                req.header("X-User").unwrap_or("").to_owned()
            })),
    );
    assert_eq!(check(&limiter, &get("/r")).kind(), Kind::Unlimited);
    assert_eq!(allowed(&limiter, &get("/r"), 10), 10);
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Tier {
    Free,
    Premium,
}

#[test]
fn dynamic_limits_follow_the_tier_per_request() {
    let (free, premium) = (
        limit_set("2 per minute").unwrap(),
        limit_set("4 per minute").unwrap(),
    );
    let (limiter, _) = build(Limiter::builder().route(
        "/api/generate",
        RoutePolicy::new().dynamic(move |req| match req.extension::<Tier>() {
            Some(Tier::Premium) => premium.clone(),
            _ => free.clone(),
        }),
    ));
    let as_tier = |t: &'static Tier| get("/api/generate").with_extension(t);
    assert_eq!(allowed(&limiter, &as_tier(&Tier::Free), 5), 2);
    // Upgraded: the next request is judged by the premium limit (its own counter).
    let d = check(&limiter, &as_tier(&Tier::Premium));
    assert!(d.is_allowed());
    assert_eq!(d.limit().unwrap().amount(), 4);
    assert_eq!(allowed(&limiter, &as_tier(&Tier::Premium), 5), 3);
}

#[test]
fn costs_come_from_the_request() {
    let (limiter, _) = build(Limiter::builder().route(
        "/api/upload",
        RoutePolicy::new().limit("100 per minute").cost(|req| {
            if req.content_length().unwrap_or(0) > 10 << 20 {
                5
            } else {
                1
            }
        }),
    ));
    let big = RequestView::new("POST", "/api/upload")
        .with_peer(IP.parse().unwrap())
        .with_content_length(15 << 20);
    assert_eq!(allowed(&limiter, &big, 21), 20);
    let small = RequestView::new("POST", "/api/upload")
        .with_peer("198.51.100.1".parse().unwrap())
        .with_content_length(100);
    assert_eq!(check(&limiter, &small).remaining(), 99);
}

#[test]
fn conditional_deduction_reserves_then_refunds() {
    async_std::task::block_on(async {
        let (limiter, _) = build(
            Limiter::builder().route(
                "/api/process",
                RoutePolicy::new()
                    .limit("10 per minute")
                    .deduct_when(|status| status == 200),
            ),
        );
        let run = |status: u16| {
            let limiter = limiter.clone();
            async_std::task::spawn(async move {
                let req = get("/api/process");
                let d = limiter.check(&req).await.unwrap();
                let allowed = d.is_allowed();
                async_std::task::yield_now().await;
                d.complete(status).await.unwrap();
                allowed
            })
        };
        let failures: Vec<_> = (0..50).map(|_| run(400)).collect();
        for f in failures {
            f.await;
        }
        let after = limiter.check(&get("/api/process")).await.unwrap();
        assert_eq!(
            after.remaining(),
            9,
            "fifty 400s left the limit untouched (this one reserved 1)"
        );
        after.complete(400).await.unwrap();
        let successes: Vec<_> = (0..50).map(|_| run(200)).collect();
        let mut admitted = 0;
        for s in successes {
            admitted += usize::from(s.await);
        }
        assert_eq!(admitted, 10, "exactly ten 200s count");
        // Forgetting `complete` leaves the reservation standing.
        let (limiter, _) = build(
            Limiter::builder().route(
                "/p",
                RoutePolicy::new()
                    .limit("1 per minute")
                    .deduct_when(|s| s == 200),
            ),
        );
        let forgotten = limiter.check(&get("/p")).await.unwrap();
        assert!(forgotten.is_conditional());
        drop(forgotten);
        assert!(!limiter.check(&get("/p")).await.unwrap().is_allowed());
    });
}

#[test]
fn meta_limits_shut_out_a_client_that_keeps_breaching() {
    let (limiter, clock) = build(
        Limiter::builder()
            .meta_limits("5 per minute")
            .route("/auth/login", RoutePolicy::new().limit("1 per hour"))
            .route("/api/data", RoutePolicy::new().limit("100 per hour"))
            .route("/health", RoutePolicy::new().exempt()),
    );
    assert!(check(&limiter, &get("/auth/login")).is_allowed());
    for _ in 0..5 {
        let d = check(&limiter, &get("/auth/login"));
        assert_eq!(d.scope(), Some(Scope::Route), "a breach of the route limit");
    }
    let shut = check(&limiter, &get("/api/data"));
    assert!(!shut.is_allowed(), "five breaches: rejected everywhere");
    assert_eq!(shut.scope(), Some(Scope::Meta));
    assert!(check(&limiter, &get("/health")).is_allowed());
    let other = RequestView::new("GET", "/api/data").with_peer("198.51.100.1".parse().unwrap());
    assert!(
        check(&limiter, &other).is_allowed(),
        "other clients are unaffected"
    );
    clock.advance(Duration::from_secs(60));
    let back = check(&limiter, &get("/api/data"));
    assert!(back.is_allowed(), "the meta window freed up");
    assert_eq!(
        back.remaining(),
        99,
        "the rejected requests charged nothing"
    );
}

#[test]
fn forwarded_headers_only_through_trusted_proxies() {
    let spoofed = [("X-Forwarded-For", "1.2.3.4, 5.6.7.8")];
    let peer: core::net::IpAddr = "10.0.0.1".parse().unwrap();
    let req = RequestView::new("GET", "/")
        .with_peer(peer)
        .with_headers(&spoofed);
    let (direct, _) = build(Limiter::builder().default_limits("1 per minute"));
    assert_eq!(direct.client_ip(&req), Some(peer));
    assert!(check(&direct, &req).is_allowed());
    let (proxied, _) = build(
        Limiter::builder()
            .default_limits("1 per minute")
            .trusted_proxies(1, ForwardedHeader::XForwardedFor),
    );
    assert_eq!(proxied.client_ip(&req), Some("5.6.7.8".parse().unwrap()));
    assert!(check(&proxied, &req).is_allowed());
    let other_client = [("X-Forwarded-For", "9.9.9.9")];
    assert!(
        check(
            &proxied,
            &RequestView::new("GET", "/")
                .with_peer(peer)
                .with_headers(&other_client)
        )
        .is_allowed(),
        "through the same proxy, another client has its own counter"
    );
    let garbage = [("X-Forwarded-For", "definitely not an address")];
    assert_eq!(
        proxied.client_ip(
            &RequestView::new("GET", "/")
                .with_peer(peer)
                .with_headers(&garbage)
        ),
        None,
        "a malformed client entry makes the client unknown, never the proxy's address"
    );
}

#[test]
fn headers_families_names_and_ietf_syntax() {
    let (limiter, _) = build(
        Limiter::builder()
            .default_limits("10 per minute; 100 per hour")
            .headers(HeaderOptions::all().rename("X-RateLimit-Remaining", "X-Left")),
    );
    let d = check(&limiter, &get("/h"));
    assert_eq!(header(&d, "X-RateLimit-Limit"), Some("10"));
    assert_eq!(header(&d, "X-Left"), Some("9"));
    assert_eq!(header(&d, "X-RateLimit-Remaining"), None);
    assert_eq!(
        header(&d, "X-RateLimit-Reset"),
        Some(&*(T0.as_secs() + 60).to_string())
    );
    assert_eq!(
        header(&d, "RateLimit-Policy"),
        Some("\"10 per 1 minute\";q=10;w=60, \"100 per 1 hour\";q=100;w=3600")
    );
    assert_eq!(
        header(&d, "RateLimit"),
        Some("\"10 per 1 minute\";r=9;t=60")
    );
    assert_eq!(header(&d, "Retry-After"), None, "only on rejections");
    let (quiet, _) = build(
        Limiter::builder()
            .default_limits("1 per minute")
            .headers(HeaderOptions::none()),
    );
    assert!(check(&quiet, &get("/h")).headers().next().is_none());
    let rejected = check(&quiet, &get("/h"));
    assert!(rejected.headers().next().is_none());
    assert_eq!(
        rejected.body(),
        Some(
            "{\"error\": \"rate limit exceeded\", \"limit\": \"1 per 1 minute\", \"retry_after\": 60}"
        )
    );
}

#[test]
fn breach_hooks_write_the_body() {
    let (limiter, _) = build(
        Limiter::builder()
            .default_limits("1 per minute")
            .on_breach(|b| {
                format!(
                    "{{\"message\": \"{}\", \"retry_after\": {}}}",
                    b.limit,
                    b.retry_after.unwrap_or(0)
                )
            })
            .route(
                "/api/expensive",
                RoutePolicy::new().limit("1 per minute").on_breach(|b| {
                    format!(
                        "{{\"error\": \"Rate limit exceeded\", \"limit\": \"{}\"}}",
                        b.limit
                    )
                }),
            ),
    );
    for _ in 0..2 {
        let _ = check(&limiter, &get("/api/expensive"));
        let _ = check(&limiter, &get("/api/other"));
    }
    let route = check(&limiter, &get("/api/expensive"));
    assert_eq!(
        route.body(),
        Some("{\"error\": \"Rate limit exceeded\", \"limit\": \"1 per 1 minute\"}")
    );
    let global = check(&limiter, &get("/api/other"));
    assert_eq!(
        global.body(),
        Some("{\"message\": \"1 per 1 minute\", \"retry_after\": 60}")
    );
}

#[test]
fn malformed_configuration_fails_build_with_where_and_what() {
    // Every scheme the enabled features know, in order.
    let schemes = ratekeeper_stores::KNOWN_SCHEMES
        .iter()
        .map(|s| format!("{s}://"))
        .collect::<Vec<_>>()
        .join(", ");
    assert!(schemes.starts_with("memory://, redis://"), "{schemes}");
    let unknown_scheme = format!("unknown storage scheme \"mongodb\"; known schemes: {schemes}");
    let cases: Vec<(LimiterBuilder, &str)> = vec![
        (
            Limiter::builder().default_limits("200 per day; 50 per hr"),
            "default limits: invalid limit \"200 per day; 50 per hr\": unknown unit \"hr\" at byte 20; did you mean \"hour\"?",
        ),
        (
            Limiter::builder().application_limits("10/minute;"),
            "application limits: invalid limit \"10/minute;\": expected an amount (a whole number) at byte 10, found the end of the input",
        ),
        (
            Limiter::builder().meta_limits("five per minute"),
            "meta limits: invalid limit \"five per minute\": expected an amount (a whole number) at byte 0, found 'f'",
        ),
        (
            Limiter::builder().route("/login", RoutePolicy::new().limit("5 per 0 minutes")),
            "route /login: invalid limit \"5 per 0 minutes\": a window of 0 units at byte 6; use 1 or more",
        ),
        (
            Limiter::builder().route_method("post", "/x", RoutePolicy::new().limit("1 per sec")),
            "route POST /x: invalid limit \"1 per sec\": unknown unit \"sec\" at byte 6; did you mean \"second\"?",
        ),
        (
            Limiter::builder()
                .stores(Stores::new())
                .storage_uri("mongodb://h:1"),
            &unknown_scheme,
        ),
        (
            Limiter::builder()
                .stores(Stores::new())
                .storage_uri("redis://h:1?timeout=1"),
            "redis storage configuration: unknown option \"timeout\" in the URI; known options: prefix, key_prefix, connect_timeout, socket_connect_timeout, response_timeout, socket_timeout, time, db, service_name, ssl_ca_certs, deny_cache, coalesce",
        ),
        (
            Limiter::builder().key_function(KeyFunction::header_or_ip("X-API-Key", "ip")),
            "key function HeaderOrIp(\"X-API-Key\" as \"ip\"): the namespace must be non-empty and not \"ip\" (reserved for client addresses)",
        ),
    ];
    for (builder, message) in cases {
        let err: ConfigError = builder.build().unwrap_err();
        assert_eq!(err.to_string(), message);
    }
}

#[test]
fn storage_errors_are_typed_and_charge_nothing() {
    let (limiter, _) = build(
        Limiter::builder()
            .default_limits("1 per minute")
            .storage(Arc::new(Broken)),
    );
    let err = smol::block_on(limiter.check(&get("/x"))).unwrap_err();
    assert!(matches!(err, DecisionError::Storage(_)));
    assert_eq!(
        err.to_string(),
        "rate-limit storage failed: broken is unreachable: connection refused"
    );
}

#[test]
fn many_tasks_never_over_admit() {
    for &strategy in ratekeeper_core::StrategyKind::ALL {
        let (limiter, _) = build(
            Limiter::builder()
                .strategy(strategy)
                .application_limits("1000 per minute")
                .route("/auth/login", RoutePolicy::new().limit("25 per minute")),
        );
        let admitted: usize = smol::block_on(async {
            let tasks: Vec<_> = (0..64)
                .map(|_| {
                    let limiter = limiter.clone();
                    smol::spawn(async move {
                        let mut n = 0;
                        for _ in 0..3 {
                            n += usize::from(
                                limiter
                                    .check(&get("/auth/login"))
                                    .await
                                    .unwrap()
                                    .is_allowed(),
                            );
                        }
                        n
                    })
                })
                .collect();
            futures::future::join_all(tasks).await.into_iter().sum()
        });
        assert_eq!(admitted, 25, "{strategy}");
    }
}

#[test]
fn outage_modes_apply_when_the_storage_is_down() {
    let (open, _) = build(
        Limiter::builder()
            .default_limits("1 per minute")
            .storage(Arc::new(Broken))
            .on_outage(Outage::fail_open()),
    );
    for _ in 0..3 {
        assert!(check(&open, &get("/x")).is_allowed(), "fail-open allows");
    }
    let (closed, _) = build(
        Limiter::builder()
            .default_limits("1 per minute")
            .storage(Arc::new(Broken))
            .on_outage(Outage::fail_closed()),
    );
    assert!(matches!(
        smol::block_on(closed.check(&get("/x"))),
        Err(DecisionError::Storage(_))
    ));
    let transitions = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = Arc::clone(&transitions);
    let (fallback, _) = build(
        Limiter::builder()
            .default_limits("100 per minute")
            .route("/y", RoutePolicy::new().limit("50 per minute"))
            .storage(Arc::new(Broken))
            .on_outage(
                Outage::in_memory_fallback("2 per minute")
                    .timeout(core::time::Duration::from_millis(100))
                    .probe_backoff(
                        core::time::Duration::from_millis(50),
                        core::time::Duration::from_secs(1),
                    )
                    .on_transition(move |t| seen.lock().unwrap().push(t.primary_up)),
            ),
    );
    // The fallback counts the client per route: 2 per minute on each.
    assert!(check(&fallback, &get("/x")).is_allowed());
    assert!(check(&fallback, &get("/x")).is_allowed());
    assert!(check(&fallback, &get("/y")).is_allowed());
    assert!(!check(&fallback, &get("/x")).is_allowed());
    assert!(check(&fallback, &get("/y")).is_allowed());
    assert!(!check(&fallback, &get("/y")).is_allowed());
    assert_eq!(transitions.lock().unwrap().first(), Some(&false));
    let err = Limiter::builder()
        .on_outage(Outage::in_memory_fallback("2 per fortnight"))
        .build()
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("in-memory fallback: invalid limit \"2 per fortnight\""),
        "{err}"
    );
}

#[test]
fn a_store_that_answers_short_is_an_error_not_a_panic() {
    let (limiter, _) = build(
        Limiter::builder()
            .default_limits("10 per minute; 100 per hour")
            .storage(Arc::new(Short)),
    );
    match smol::block_on(limiter.check(&get("/x"))) {
        Err(DecisionError::Storage(e)) => {
            assert!(e.to_string().contains("0 statuses for a batch of 2"), "{e}")
        }
        other => panic!("expected a storage error, got {other:?}"),
    }
}
