//! The layer in an axum router: routes by `MatchedPath` (nested routers, per-method policies,
//! the catch-all for what no route matches), clients by `ConnectInfo` (and without one), the
//! headers on 200 and 429, and conditional deduction completed from the response.

use core::net::SocketAddr;
use std::sync::Arc;

use axum::{
    Router,
    body::Body,
    extract::ConnectInfo,
    http::{HeaderMap, Request, StatusCode},
    routing::get,
};
use http_body_util::BodyExt;
use ratelimit_core::{ManualClock, Timestamp};
use ratelimit_decision::{LimiterBuilder, RoutePolicy, UnknownClient};
use ratelimit_tower::RateLimitLayer;
use tower::ServiceExt;

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

fn layer(builder: LimiterBuilder) -> RateLimitLayer {
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_700_000_000)));
    RateLimitLayer::new(builder.clock(clock).build().unwrap())
}

async fn send(app: &Router, method: &str, path: &str, peer: Option<&str>) -> Reply {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .body(Body::empty())
        .unwrap();
    if let Some(ip) = peer {
        let addr: SocketAddr = format!("{ip}:40000").parse().unwrap();
        req.extensions_mut().insert(ConnectInfo(addr));
    }
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body =
        String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    Reply {
        status,
        headers,
        body,
    }
}

const A: Option<&str> = Some("203.0.113.7");
const B: Option<&str> = Some("198.51.100.4");

#[tokio::test]
async fn routes_come_from_matched_path_and_nested_routers() {
    let limits = layer(
        LimiterBuilder::default()
            .default_limits("100 per minute")
            .route("/users/{id}", RoutePolicy::new().limit("2 per minute"))
            .route("/api/items/{id}", RoutePolicy::new().limit("3 per minute")),
    );
    let api = Router::new().route("/items/{id}", get(|| async { "item" }));
    let app = Router::new()
        .route("/users/{id}", get(|| async { "user" }))
        .nest("/api", api)
        .layer(limits);
    // Different users share the route's counter: the route is the pattern, not the path.
    for (path, limit, remaining) in [("/users/1", "2", "1"), ("/users/2", "2", "0")] {
        let r = send(&app, "GET", path, A).await;
        assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "user"));
        assert_eq!(r.header("x-ratelimit-limit"), Some(limit));
        assert_eq!(r.header("x-ratelimit-remaining"), Some(remaining));
    }
    let r = send(&app, "GET", "/users/3", A).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.header("retry-after").is_some());
    assert!(
        r.body.contains("Rate limit exceeded") || r.body.contains("2 per 1 minute"),
        "{}",
        r.body
    );
    // Another client has its own counter.
    assert_eq!(
        send(&app, "GET", "/users/3", B).await.status,
        StatusCode::OK
    );
    // A nested router's route is limited by its full pattern.
    let r = send(&app, "GET", "/api/items/9", A).await;
    assert_eq!(r.header("x-ratelimit-limit"), Some("3"));
}

#[tokio::test]
async fn per_method_policies_and_the_catch_all() {
    let limits = layer(
        LimiterBuilder::default()
            .default_limits("2 per minute")
            .route_method("POST", "/items", RoutePolicy::new().limit("1 per minute"))
            .route("/items", RoutePolicy::new().limit("5 per minute")),
    );
    let app = Router::new()
        .route(
            "/items",
            get(|| async { "list" }).post(|| async { "created" }),
        )
        .layer(limits);
    assert_eq!(
        send(&app, "GET", "/items", A)
            .await
            .header("x-ratelimit-limit"),
        Some("5")
    );
    assert_eq!(send(&app, "POST", "/items", A).await.status, StatusCode::OK);
    assert_eq!(
        send(&app, "POST", "/items", A).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(send(&app, "GET", "/items", A).await.status, StatusCode::OK);
    // No route matches: every unknown path counts under one catch-all route, on the defaults.
    let statuses = [
        send(&app, "GET", "/a", A).await.status,
        send(&app, "GET", "/b", A).await.status,
        send(&app, "GET", "/c", A).await.status,
    ];
    assert_eq!(
        statuses,
        [
            StatusCode::NOT_FOUND,
            StatusCode::NOT_FOUND,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
}

#[tokio::test]
async fn clients_come_from_connect_info_and_a_missing_peer_follows_the_policy() {
    let shared = layer(LimiterBuilder::default().default_limits("1 per minute"));
    let app = Router::new()
        .route("/", get(|| async { "hi" }))
        .layer(shared);
    assert_eq!(send(&app, "GET", "/", A).await.status, StatusCode::OK);
    assert_eq!(
        send(&app, "GET", "/", A).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(send(&app, "GET", "/", B).await.status, StatusCode::OK);
    // Without an address: one shared identity by default...
    assert_eq!(send(&app, "GET", "/", None).await.status, StatusCode::OK);
    assert_eq!(
        send(&app, "GET", "/", None).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    // ...or refused, as configured.
    let strict = layer(
        LimiterBuilder::default()
            .default_limits("1 per minute")
            .unknown_client(UnknownClient::Reject),
    );
    let app = Router::new()
        .route("/", get(|| async { "hi" }))
        .layer(strict);
    assert_eq!(
        send(&app, "GET", "/", None).await.status,
        StatusCode::FORBIDDEN
    );
    // A peer from elsewhere: the configured extractor.
    let custom = layer(LimiterBuilder::default().default_limits("1 per minute"))
        .peer(|ext| ext.get::<core::net::IpAddr>().copied());
    let app = Router::new()
        .route("/", get(|| async { "hi" }))
        .layer(custom);
    let mut req = Request::builder().uri("/").body(Body::empty()).unwrap();
    req.extensions_mut()
        .insert("192.0.2.1".parse::<core::net::IpAddr>().unwrap());
    let res = app.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn conditional_deduction_refunds_what_the_response_says_does_not_count() {
    let limits = layer(
        LimiterBuilder::default().route(
            "/process",
            RoutePolicy::new()
                .limit("3 per minute")
                .deduct_when(|s| s == 200),
        ),
    );
    let app = Router::new()
        .route(
            "/process",
            get(|req: Request<Body>| async move {
                if req.uri().query() == Some("fail=1") {
                    (StatusCode::BAD_REQUEST, "failed")
                } else {
                    (StatusCode::OK, "done")
                }
            }),
        )
        .layer(limits);
    for _ in 0..5 {
        let r = send(&app, "GET", "/process?fail=1", A).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
    }
    let mut served = 0;
    for _ in 0..5 {
        served += usize::from(send(&app, "GET", "/process", A).await.status == StatusCode::OK);
    }
    assert_eq!(
        served, 3,
        "failed requests were refunded; successful ones count"
    );
}

/// The user an authentication layer found.
#[derive(Clone)]
struct User(&'static str);

#[tokio::test]
async fn key_functions_read_what_an_outer_layer_put_in_the_extensions() {
    let by_user = ratelimit_decision::KeyFunction::custom("user", |req, _| {
        req.extension::<User>()
            .map(|u| u.0.to_owned())
            .unwrap_or_default()
    });
    let limits = layer(
        LimiterBuilder::default()
            .default_limits("2 per minute")
            .key_function(by_user),
    )
    .extension::<User>();
    // The outer layer: `X-User` stands for whatever authentication it does.
    let app = Router::new()
        .route("/", get(|| async { "hi" }))
        .layer(limits)
        .layer(axum::middleware::map_request(
            |mut req: Request<Body>| async move {
                let user = match req.headers().get("x-user").map(|v| v.as_bytes()) {
                    Some(b"ada") => Some(User("ada")),
                    Some(b"bob") => Some(User("bob")),
                    _ => None,
                };
                if let Some(user) = user {
                    req.extensions_mut().insert(user);
                }
                req
            },
        ));
    let as_user = |user: Option<&'static str>, ip: &'static str| {
        let app = app.clone();
        async move {
            let mut req = Request::builder().uri("/").body(Body::empty()).unwrap();
            if let Some(user) = user {
                req.headers_mut().insert("x-user", user.parse().unwrap());
            }
            let addr: SocketAddr = format!("{ip}:40000").parse().unwrap();
            req.extensions_mut().insert(ConnectInfo(addr));
            app.oneshot(req).await.unwrap().status()
        }
    };
    // ada's two, from two addresses; a third from a third address is hers all the same.
    assert_eq!(as_user(Some("ada"), "10.0.0.1").await, StatusCode::OK);
    assert_eq!(as_user(Some("ada"), "10.0.0.2").await, StatusCode::OK);
    assert_eq!(
        as_user(Some("ada"), "10.0.0.3").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // bob has his own.
    assert_eq!(as_user(Some("bob"), "10.0.0.1").await, StatusCode::OK);
    // Nobody authenticated: an empty identity, not limited.
    for _ in 0..3 {
        assert_eq!(as_user(None, "10.0.0.1").await, StatusCode::OK);
    }
}
