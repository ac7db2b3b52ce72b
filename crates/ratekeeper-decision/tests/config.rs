//! Configuration under Flask-Limiter's names, from a key/value list (the process environment
//! is never touched), through the Decision API on a manual clock.

mod common;

use std::sync::Arc;

use common::{Broken, IP, T0, build, check, get, header};
use ratekeeper_core::ManualClock;
use ratekeeper_decision::{
    ConfigError, Kind, Limiter, LimiterBuilder, RequestView, config::CONFIG_KEYS, limits::Scope,
};
use ratekeeper_stores::Stores;

fn configured(vars: &[(&str, &str)]) -> LimiterBuilder {
    LimiterBuilder::default()
        .with_config(vars.iter().copied())
        .unwrap()
}

#[test]
fn limits_prefix_and_strategy_come_from_the_keys() {
    let (limiter, _) = build(configured(&[
        ("RATELIMIT_DEFAULT", "2 per minute"),
        ("RATELIMIT_APPLICATION", "10 per minute"),
        ("RATELIMIT_META", "1 per hour"),
        ("RATELIMIT_STRATEGY", "moving-window"),
        ("RATELIMIT_KEY_PREFIX", "svc"),
        ("PATH", "/usr/bin"),
    ]));
    assert!(check(&limiter, &get("/a")).is_allowed());
    let d = check(&limiter, &get("/a"));
    assert_eq!(d.scope(), Some(Scope::Default));
    assert_eq!(d.remaining(), 0);
    assert!(!check(&limiter, &get("/a")).is_allowed());
    // The breach counted toward the meta limit (1 per hour): every route is now closed.
    let meta = check(&limiter, &get("/b"));
    assert!(!meta.is_allowed());
    assert_eq!(meta.scope(), Some(Scope::Meta));
    let debug = format!("{limiter:?}");
    assert!(debug.contains("MovingWindow"), "{debug}");
}

#[test]
fn the_prefix_reaches_the_storage_keys() {
    // Two limiters on one store: one prefix shares counters, another does not.
    let store = Arc::new(ratekeeper_memory::MemoryStorage::new());
    let make = |prefix: &str| {
        configured(&[
            ("RATELIMIT_DEFAULT", "1 per minute"),
            ("RATELIMIT_KEY_PREFIX", prefix),
        ])
        .storage(store.clone())
        .build()
        .unwrap()
    };
    let (a, b, c) = (make("one"), make("one"), make("two"));
    assert!(check(&a, &get("/")).is_allowed());
    assert!(
        !check(&b, &get("/")).is_allowed(),
        "same prefix, same counter"
    );
    assert!(
        check(&c, &get("/")).is_allowed(),
        "another prefix, another counter"
    );
}

#[test]
fn the_kill_switch_limits_nothing_and_calls_no_store() {
    let limiter = configured(&[
        ("RATELIMIT_ENABLED", "false"),
        ("RATELIMIT_DEFAULT", "1/hour"),
    ])
    .storage(Arc::new(Broken))
    .build()
    .unwrap();
    for _ in 0..3 {
        let d = smol::block_on(limiter.check(&get("/"))).unwrap();
        assert_eq!(d.kind(), Kind::Unlimited);
    }
    let on = configured(&[("RATELIMIT_ENABLED", "on"), ("RATELIMIT_DEFAULT", "1/hour")])
        .storage(Arc::new(Broken))
        .build()
        .unwrap();
    assert!(
        smol::block_on(on.check(&get("/"))).is_err(),
        "enabled: the store is asked"
    );
}

#[test]
fn defaults_per_method_count_methods_apart() {
    let (limiter, _) = build(configured(&[
        ("RATELIMIT_DEFAULT", "1 per minute"),
        ("RATELIMIT_DEFAULTS_PER_METHOD", "true"),
    ]));
    let post = RequestView::new("POST", "/a").with_peer(IP.parse().unwrap());
    assert!(check(&limiter, &get("/a")).is_allowed());
    assert!(
        check(&limiter, &post).is_allowed(),
        "POST has its own counter"
    );
    assert!(!check(&limiter, &get("/a")).is_allowed());
    let (shared, _) = build(configured(&[("RATELIMIT_DEFAULT", "1 per minute")]));
    assert!(check(&shared, &get("/a")).is_allowed());
    assert!(
        !check(&shared, &post).is_allowed(),
        "without it, one counter"
    );
}

#[test]
fn header_keys_switch_rename_and_format() {
    let (limiter, _) = build(configured(&[
        ("RATELIMIT_DEFAULT", "1 per minute"),
        ("RATELIMIT_HEADER_LIMIT", "X-Quota"),
        ("RATELIMIT_HEADER_REMAINING", "X-Quota-Left"),
        ("RATELIMIT_HEADER_RESET", "X-Quota-Reset"),
        ("RATELIMIT_HEADER_RETRY_AFTER", "X-Retry"),
        ("RATELIMIT_HEADER_RETRY_AFTER_VALUE", "http-date"),
        ("RATELIMIT_HEADERS_ENABLED", "true"),
    ]));
    let ok = check(&limiter, &get("/"));
    assert_eq!(header(&ok, "X-Quota"), Some("1"));
    assert_eq!(header(&ok, "X-Quota-Left"), Some("0"));
    let reset = (T0.as_secs() + 60).to_string();
    assert_eq!(header(&ok, "X-Quota-Reset"), Some(&*reset));
    assert_eq!(header(&ok, "X-RateLimit-Limit"), None);
    let rejected = check(&limiter, &get("/"));
    // T0 is 2023-11-14 22:00:00 UTC; the window opens again a minute later.
    assert_eq!(
        header(&rejected, "X-Retry"),
        Some("Tue, 14 Nov 2023 22:01:00 GMT")
    );

    let (quiet, _) = build(configured(&[
        ("RATELIMIT_DEFAULT", "1 per minute"),
        ("RATELIMIT_HEADERS_ENABLED", "no"),
    ]));
    assert!(check(&quiet, &get("/")).headers().next().is_none());
    assert!(check(&quiet, &get("/")).headers().next().is_none());
}

#[test]
fn outage_keys_choose_the_outage_mode() {
    let open = configured(&[
        ("RATELIMIT_DEFAULT", "1/hour"),
        ("RATELIMIT_SWALLOW_ERRORS", "1"),
    ])
    .storage(Arc::new(Broken))
    .build()
    .unwrap();
    assert!(smol::block_on(open.check(&get("/"))).unwrap().is_allowed());

    let clock = Arc::new(ManualClock::new(T0));
    let fallback = configured(&[
        ("RATELIMIT_DEFAULT", "5/hour"),
        ("RATELIMIT_IN_MEMORY_FALLBACK", "2 per hour"),
    ])
    .storage(Arc::new(Broken))
    .clock(clock)
    .build()
    .unwrap();
    let allowed = (0..5)
        .filter(|_| {
            smol::block_on(fallback.check(&get("/")))
                .unwrap()
                .is_allowed()
        })
        .count();
    assert_eq!(allowed, 2, "counted in memory under the fallback limit");

    let same = configured(&[
        ("RATELIMIT_DEFAULT", "3/hour"),
        ("RATELIMIT_IN_MEMORY_FALLBACK_ENABLED", "yes"),
    ])
    .storage(Arc::new(Broken))
    .build()
    .unwrap();
    let allowed = (0..5)
        .filter(|_| smol::block_on(same.check(&get("/"))).unwrap().is_allowed())
        .count();
    assert_eq!(allowed, 3, "counted in memory under the same limits");
}

#[test]
fn malformed_values_name_the_key_the_value_and_what_was_expected() {
    for (key, value, expected) in [
        ("RATELIMIT_ENABLED", "maybe", "true or false"),
        ("RATELIMIT_DEFAULTS_PER_METHOD", "2", "true or false"),
        (
            "RATELIMIT_STRATEGY",
            "leaky-bucket",
            "fixed-window, moving-window",
        ),
        (
            "RATELIMIT_HEADER_RETRY_AFTER_VALUE",
            "soon",
            "delta-seconds or http-date",
        ),
        ("RATELIMIT_DEFAULT", "10 per fortnight", "unit"),
        (
            "RATELIMIT_IN_MEMORY_FALLBACK",
            "ten per minute",
            "RATELIMIT_IN_MEMORY_FALLBACK",
        ),
    ] {
        let err = LimiterBuilder::default()
            .with_config([(key, value)])
            .unwrap_err()
            .to_string();
        assert!(err.contains(key), "{err}");
        assert!(err.contains(value), "{err}");
        assert!(err.contains(expected), "{key}: {err}");
    }
    // A header name that is not a valid field name fails the build, naming it.
    let err = configured(&[("RATELIMIT_HEADER_LIMIT", "X Quota")])
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("X Quota"), "{err}");
}

#[test]
fn whatever_is_applied_last_wins() {
    let vars = [("RATELIMIT_DEFAULT", "1 per minute")];
    // Code after the configuration overrides it...
    let (code_wins, _) = build(configured(&vars).default_limits("3 per minute"));
    assert_eq!(check(&code_wins, &get("/")).remaining(), 2);
    // ...and configuration applied after code overrides that.
    let (config_wins, _) = build(
        Limiter::builder()
            .default_limits("3 per minute")
            .with_config(vars)
            .unwrap(),
    );
    assert_eq!(check(&config_wins, &get("/")).remaining(), 0);
    // Empty values count as unset.
    let (unset, _) = build(
        Limiter::builder()
            .default_limits("3 per minute")
            .with_config([("RATELIMIT_DEFAULT", " ")])
            .unwrap(),
    );
    assert_eq!(check(&unset, &get("/")).remaining(), 2);
}

#[test]
fn every_documented_key_is_read() {
    // Each key with a valid value is applied without an error (none is silently unknown).
    let valid = |key: &str| match key {
        "RATELIMIT_DEFAULT"
        | "RATELIMIT_APPLICATION"
        | "RATELIMIT_META"
        | "RATELIMIT_IN_MEMORY_FALLBACK" => "1 per second",
        "RATELIMIT_STORAGE_URI" => "memory://",
        "RATELIMIT_STRATEGY" => "gcra",
        "RATELIMIT_KEY_PREFIX"
        | "RATELIMIT_HEADER_LIMIT"
        | "RATELIMIT_HEADER_REMAINING"
        | "RATELIMIT_HEADER_RESET"
        | "RATELIMIT_HEADER_RETRY_AFTER" => "X-Name",
        "RATELIMIT_HEADER_RETRY_AFTER_VALUE" => "delta-seconds",
        "RATELIMIT_IN_FLIGHT_LEASE" => "90s",
        _ => "true",
    };
    assert_eq!(CONFIG_KEYS.len(), 18);
    for key in CONFIG_KEYS {
        let b = LimiterBuilder::default().with_config([(*key, valid(key))]);
        assert!(b.is_ok(), "{key}");
    }
}

/// A limit the store cannot count fails `build()`, with a message that names the limit and the
/// store's bound, instead of a 503 on every request.
#[test]
fn limits_past_the_stores_bounds_fail_the_build() {
    use ratekeeper_core::StrategyKind;
    let error = |builder: LimiterBuilder| builder.build().unwrap_err().to_string();
    let moving = |uri: &str, limits: &str| {
        Limiter::builder()
            .stores(Stores::new())
            .storage_uri(uri)
            .strategy(StrategyKind::MovingWindow)
            .default_limits("10 per minute")
            .route(
                "/big",
                ratekeeper_decision::RoutePolicy::new().limit(limits),
            )
    };
    let memory = error(moving("memory://", "1000001 per hour"));
    assert!(
        memory.contains("1000001 per 1 hour") && memory.contains("max_log_entries (1000000)"),
        "{memory}"
    );
    assert!(moving("memory://", "1000000 per hour").build().is_ok());
    {
        // Built without connecting: the bound is the store's, not the server's.
        let redis = error(
            Limiter::builder()
                .stores(Stores::new())
                .storage_uri("redis://127.0.0.1:1")
                .default_limits("18446744073709551615 per second"),
        );
        assert!(
            redis.contains("18446744073709551615 per 1 second") && redis.contains("2^53"),
            "{redis}"
        );
        let meta = error(
            Limiter::builder()
                .stores(Stores::new())
                .storage_uri("redis://127.0.0.1:1")
                .meta_limits("9007199254740993 per hour"),
        );
        assert!(meta.contains("2^53"), "{meta}");
    }
    {
        let memcached = error(moving("memcached://127.0.0.1:1", "60001 per hour"));
        assert!(
            memcached.contains("60001 per 1 hour") && memcached.contains("at most 60000"),
            "{memcached}"
        );
    }
}

/// The limiter opens `memory://` itself and names no backend: any other scheme without stores
/// fails `build()` with a typed error that says what to give it; with the stores, the same URI
/// builds (nothing connects before a request).
#[test]
fn a_storage_uri_without_stores_says_what_opens_it() {
    for uri in [
        "redis://127.0.0.1:1",
        "valkey+cluster://127.0.0.1:1",
        "memcached://127.0.0.1:1",
        "mongodb://h:1",
    ] {
        let scheme = uri.split_once("://").unwrap().0;
        match Limiter::builder().storage_uri(uri).build() {
            Err(e @ ConfigError::NoStores { .. }) => {
                assert!(matches!(&e, ConfigError::NoStores { scheme: s } if s == scheme));
                let text = e.to_string();
                assert!(
                    text.starts_with(&format!("storage URI {scheme}://:"))
                        && text.contains(".stores(ratekeeper::Stores::new())"),
                    "{text}"
                );
            }
            other => panic!("{uri} without stores: {:?}", other.map(|_| ())),
        }
    }
    for uri in [
        "redis://127.0.0.1:1",
        "memcached://127.0.0.1:1",
        "memory://",
    ] {
        let built = Limiter::builder()
            .stores(Stores::new())
            .storage_uri(uri)
            .build();
        assert!(built.is_ok(), "{uri}: {:?}", built.err());
    }
    assert!(Limiter::builder().storage_uri("memory://").build().is_ok());
}

/// An error report (each `source()` in turn) prints every cause once: a message that includes
/// its cause's text does not hand the cause on as its source too.
#[test]
fn error_reports_print_each_cause_once() {
    use ratekeeper_decision::DecisionError;
    use ratekeeper_storage::StorageError;
    fn chain(e: &dyn core::error::Error) -> Vec<String> {
        let mut messages = vec![e.to_string()];
        let mut next = e.source();
        while let Some(cause) = next {
            messages.push(cause.to_string());
            next = cause.source();
        }
        messages
    }
    fn once(e: &dyn core::error::Error) {
        let messages = chain(e);
        for (i, outer) in messages.iter().enumerate() {
            for inner in &messages[i + 1..] {
                assert!(
                    !outer.contains(inner.as_str()),
                    "printed twice: {messages:?}"
                );
            }
        }
    }
    let limit = Limiter::builder()
        .default_limits("5 per fortnight")
        .build()
        .unwrap_err();
    assert!(limit.to_string().contains("fortnight"), "{limit}");
    once(&limit);
    let uri = Limiter::builder().storage_uri("nope").build().unwrap_err();
    assert!(uri.to_string().contains("no scheme"), "{uri}");
    once(&uri);
    let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
    let storage = StorageError::unreachable("redis", io.to_string()).with_source(io);
    let decision = DecisionError::from(storage);
    assert!(
        decision.to_string().contains("connection refused"),
        "{decision}"
    );
    once(&decision);
}

/// The errors a caller could act on are typed: which network list, which setting, which
/// route option; their messages stay as they were.
#[test]
fn configuration_errors_a_caller_can_act_on_are_typed() {
    let proxies = Limiter::builder()
        .trusted_proxy_networks("10.0.0.0/8, 300.1.1.1")
        .build()
        .unwrap_err();
    assert!(
        matches!(&proxies, ConfigError::Network { context: "trusted proxy networks", error }
            if error.to_string().contains("300.1.1.1")),
        "{proxies:?}"
    );
    assert!(
        proxies
            .to_string()
            .starts_with("trusted proxy networks: network \"300.1.1.1\"")
    );
    let exempt = Limiter::builder()
        .exempt_clients("nope")
        .build()
        .unwrap_err();
    assert!(matches!(
        exempt,
        ConfigError::Network {
            context: "exempt clients",
            ..
        }
    ));

    let setting = LimiterBuilder::default()
        .with_config([("RATELIMIT_ENABLED", "maybe")])
        .map(|_| ())
        .unwrap_err();
    assert!(
        matches!(&setting, ConfigError::Setting { key, value, .. }
            if key == "RATELIMIT_ENABLED" && value == "maybe"),
        "{setting:?}"
    );

    let option = Limiter::builder()
        .defaults(
            ratekeeper_decision::RoutePolicy::new()
                .limit("1/second")
                .shared("s"),
        )
        .build()
        .unwrap_err();
    assert!(
        matches!(
            &option,
            ConfigError::UnsupportedOption {
                option: "shared",
                ..
            }
        ),
        "{option:?}"
    );
    assert!(
        option
            .to_string()
            .contains("the route option `shared` does not apply")
    );
}
