//! Identities a client cannot mint: credentials counted only once the application recognises
//! them, everything else by address (or refused with 401), and guard limits by address beside
//! limits by credential.

mod common;

use common::{build, check, get, header};
use ratekeeper_decision::{KeyFunction, Kind, Limiter, RoutePolicy, limits::Scope};

/// `basic-key` and `premium-key` belong to accounts; anything else is unknown.
fn known(value: &str) -> Option<String> {
    match value {
        "basic-key" => Some("acct-1".to_owned()),
        "premium-key" => Some("acct-2".to_owned()),
        _ => None,
    }
}

#[test]
fn minted_keys_are_counted_by_address() {
    let login = || {
        Limiter::builder()
            .route("/login", RoutePolicy::new().limit("5 per minute"))
            .meta_limits("3 per minute")
    };
    // Taken as they come, 100 made-up keys from one address are 100 clients: all admitted.
    let (trusting, _) =
        build(login().key_function(KeyFunction::header_or_ip("X-API-Key", "apikey")));
    // Recognised first, they are one client: the address.
    let (checked, _) =
        build(login().key_function(KeyFunction::credential("X-API-Key", "apikey", known)));
    let admitted = |limiter: &Limiter| {
        (0..100)
            .filter(|i| {
                let value = format!("minted-{i}");
                let minted = [("X-API-Key", value.as_str())];
                check(limiter, &get("/login").with_headers(&minted)).is_allowed()
            })
            .count()
    };
    assert_eq!(admitted(&trusting), 100);
    assert_eq!(admitted(&checked), 5);
}

#[test]
fn a_known_credential_has_its_own_counter_and_accounts_share_one() {
    let (limiter, _) = build(
        Limiter::builder()
            .default_limits("2 per minute")
            .key_function(KeyFunction::credential("X-API-Key", "apikey", |v| {
                // Two keys of one account.
                matches!(v, "key-a" | "key-b").then(|| "acct-1".to_owned())
            })),
    );
    let a = [("X-API-Key", "key-a")];
    let b = [("X-API-Key", " key-b ")];
    assert!(check(&limiter, &get("/r").with_headers(&a)).is_allowed());
    assert!(check(&limiter, &get("/r").with_headers(&b)).is_allowed());
    assert!(
        !check(&limiter, &get("/r").with_headers(&a)).is_allowed(),
        "the account's two keys share its quota"
    );
    // The address behind them is another identity, with its own quota; so are missing, empty
    // and unknown keys, which all count by address.
    let unknown = [("X-API-Key", "key-c")];
    let empty = [("X-API-Key", "  ")];
    assert!(check(&limiter, &get("/r")).is_allowed());
    assert!(check(&limiter, &get("/r").with_headers(&unknown)).is_allowed());
    assert!(!check(&limiter, &get("/r").with_headers(&empty)).is_allowed());
}

#[test]
fn unknown_credentials_can_be_refused() {
    let (limiter, _) = build(
        Limiter::builder()
            .default_limits("1 per minute")
            .key_function(
                KeyFunction::credential("X-API-Key", "apikey", known).rejecting_unknown(),
            ),
    );
    for headers in [
        vec![],
        vec![("X-API-Key", "")],
        vec![("X-API-Key", "guess")],
    ] {
        let d = check(&limiter, &get("/r").with_headers(&headers));
        assert_eq!(d.kind(), Kind::Unauthorized, "{headers:?}");
        assert!(!d.is_allowed());
        assert_eq!(
            header(&d, "WWW-Authenticate"),
            Some("ApiKey header=\"X-API-Key\"")
        );
        assert!(d.body().unwrap().contains("Unauthorized"));
    }
    let good = [("X-API-Key", "basic-key")];
    assert_eq!(
        check(&limiter, &get("/r").with_headers(&good)).kind(),
        Kind::Allowed
    );
    assert_eq!(
        check(&limiter, &get("/r").with_headers(&good)).kind(),
        Kind::Rejected
    );
}

#[test]
fn a_guard_caps_an_address_whatever_credentials_it_presents() {
    let (limiter, _) = build(
        Limiter::builder()
            .route(
                "/api",
                RoutePolicy::new()
                    .limit("3 per minute")
                    .guard("4 per minute"),
            )
            .key_function(KeyFunction::credential("X-API-Key", "apikey", known)),
    );
    let basic = [("X-API-Key", "basic-key")];
    let premium = [("X-API-Key", "premium-key")];
    let mut kinds = Vec::new();
    for h in [&basic, &basic, &premium, &premium, &premium] {
        kinds.push(check(&limiter, &get("/api").with_headers(h)));
    }
    let allowed: Vec<bool> = kinds.iter().map(|d| d.is_allowed()).collect();
    // Each key is under its own 3, but the address has had its 4.
    assert_eq!(allowed, [true, true, true, true, false]);
    assert_eq!(kinds[4].scope(), Some(Scope::Guard));
    assert_eq!(kinds[4].limit().unwrap().to_string(), "4 per 1 minute");
    // Another address is not held by the first one's guard.
    let other = ratekeeper_decision::RequestView::new("GET", "/api")
        .with_peer("198.51.100.9".parse().unwrap())
        .with_headers(&premium);
    assert!(check(&limiter, &other).is_allowed());
}

#[test]
fn a_guard_that_does_not_parse_is_refused_at_build() {
    let err = Limiter::builder()
        .route("/api", RoutePolicy::new().guard("4 per fortnight"))
        .build()
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("route /api guard: invalid limit"),
        "{err}"
    );
}
