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
    routing::{get, post},
};
use http_body_util::BodyExt;
use ratekeeper_core::{ManualClock, Timestamp};
use ratekeeper_decision::{LimiterBuilder, RoutePolicy, keys::UnknownClient};
use ratekeeper_tower::{LimitedRoutes as _, RateLimitLayer};
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

/// The 429's body for the `2 per minute` route, as the Tide middleware sends it too.
const EXPECTED_429: &str =
    "{\"error\": \"rate limit exceeded\", \"limit\": \"2 per 1 minute\", \"retry_after\": 60}";

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
    assert_eq!(r.body, EXPECTED_429);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("retry-after"), Some("60"));
    assert_eq!(r.header("x-ratelimit-limit"), Some("2"));
    assert_eq!(r.header("x-ratelimit-remaining"), Some("0"));
    assert_eq!(r.header("x-ratelimit-reset"), Some("1700000060"));
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
async fn a_limited_route_counts_under_its_own_limits_and_not_the_defaults() {
    let mut limits = layer(
        LimiterBuilder::default()
            .default_limits("3 per minute")
            .meta_limits("1 per hour"),
    );
    let app =
        Router::new()
            .route("/", get(|| async { "home" }))
            .limited_route(
                "/login",
                post(|| async { "welcome" }),
                &mut limits,
                "2 per minute",
            )
            .unwrap()
            .limited_route(
                "/users/{id}",
                get(|| async { "user" }),
                &mut limits,
                RoutePolicy::new().limit("4 per minute").key(
                    ratekeeper_decision::KeyFunction::custom("all", |_, _| "everyone".to_owned()),
                ),
            )
            .unwrap()
            .layer(limits.clone());
    // The route's own 2, not the defaults' 3; each client apart.
    for _ in 0..2 {
        assert_eq!(send(&app, "POST", "/login", A).await.status, StatusCode::OK);
    }
    let refused = send(&app, "POST", "/login", A).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.body, EXPECTED_429);
    assert_eq!(send(&app, "POST", "/login", B).await.status, StatusCode::OK);
    // Other routes keep the defaults, and the breach above counted toward A's meta limit.
    assert_eq!(
        send(&app, "GET", "/", B).await.header("x-ratelimit-limit"),
        Some("3")
    );
    assert_eq!(
        send(&app, "GET", "/", A).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    // A full policy: one counter for every user page, across clients (A is shut out by its
    // meta limit, so others).
    let c = Some("192.0.2.1");
    for (i, peer) in [B, c, B, c].into_iter().enumerate() {
        let path = format!("/users/{i}");
        assert_eq!(
            send(&app, "GET", &path, peer).await.status,
            StatusCode::OK,
            "{i}"
        );
    }
    let shared = send(&app, "GET", "/users/9", B).await;
    assert_eq!(shared.status, StatusCode::TOO_MANY_REQUESTS);
    // A limit string that does not parse fails where the route is declared.
    let err = Router::<()>::new()
        .limited_route("/x", get(|| async { "x" }), &mut limits, "5 per fortnight")
        .unwrap_err();
    assert!(err.to_string().contains("fortnight"), "{err}");
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
    let from = |ip: &str| {
        let mut req = Request::builder().uri("/").body(Body::empty()).unwrap();
        req.extensions_mut()
            .insert(ip.parse::<core::net::IpAddr>().unwrap());
        app.clone().oneshot(req)
    };
    // The extractor's address is the client: its second request is refused, and another
    // address has a counter of its own (a layer that ignored the extractor would put both in
    // one shared identity).
    assert_eq!(from("192.0.2.1").await.unwrap().status(), StatusCode::OK);
    assert_eq!(
        from("192.0.2.1").await.unwrap().status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(from("192.0.2.2").await.unwrap().status(), StatusCode::OK);
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
    let by_user = ratekeeper_decision::KeyFunction::custom("user", |req, _| {
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

/// A bare tower service (no axum router, so no `MatchedPath`): the layer names requests by the
/// patterns registered with [`RateLimitLayer::route`], so `/u/1` and `/u/2` share `/u/{id}`'s
/// limit, and a path no pattern matches falls to the catch-all and the defaults.
#[tokio::test]
async fn without_matched_path_routes_come_from_the_registered_patterns() {
    let limits = layer(
        LimiterBuilder::default()
            .default_limits("5 per minute")
            .route("/u/{id}", RoutePolicy::new().limit("2 per minute")),
    )
    .route("/u/{id}");
    let service = tower::ServiceBuilder::new()
        .layer(limits)
        .service(tower::service_fn(
            |_req: Request<ratekeeper_tower::CountedBody<Body>>| async {
                Ok::<_, core::convert::Infallible>(axum::response::Response::new(Body::from("ok")))
            },
        ));
    let call = |path: &str| {
        let mut req = Request::builder().uri(path).body(Body::empty()).unwrap();
        req.extensions_mut().insert(ConnectInfo(
            "203.0.113.7:40000".parse::<SocketAddr>().unwrap(),
        ));
        service.clone().oneshot(req)
    };
    let limit_of = |res: &axum::response::Response<ratekeeper_tower::LimitedBody<Body>>| {
        res.headers()
            .get("x-ratelimit-limit")
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let first = call("/u/1").await.unwrap();
    assert_eq!(limit_of(&first).as_deref(), Some("2"));
    assert_eq!(call("/u/2").await.unwrap().status(), StatusCode::OK);
    assert_eq!(
        call("/u/3").await.unwrap().status(),
        StatusCode::TOO_MANY_REQUESTS,
        "one counter for the pattern"
    );
    let other = call("/elsewhere").await.unwrap();
    assert_eq!(other.status(), StatusCode::OK);
    assert_eq!(
        limit_of(&other).as_deref(),
        Some("5"),
        "the catch-all's defaults"
    );
}

/// A store that fails every call: the layer answers 503 with its JSON body and never calls
/// the service.
#[tokio::test]
async fn a_failing_store_is_a_503_and_the_service_is_not_called() {
    #[derive(Debug)]
    struct Broken;
    fn down() -> ratekeeper_storage::StorageError {
        ratekeeper_storage::StorageError::unreachable("test", "down")
    }
    impl ratekeeper_storage::Storage for Broken {
        fn apply<'a>(
            &'a self,
            _: ratekeeper_storage::Op,
            _: &'a [ratekeeper_storage::Charge],
        ) -> ratekeeper_storage::StorageFuture<'a, ratekeeper_storage::Verdict> {
            Box::pin(async { Err(down()) })
        }
        fn clear<'a>(
            &'a self,
            _: &'a ratekeeper_storage::Key,
        ) -> ratekeeper_storage::StorageFuture<'a, ()> {
            Box::pin(async { Err(down()) })
        }
        fn reset(&self) -> ratekeeper_storage::StorageFuture<'_, ()> {
            Box::pin(async { Err(down()) })
        }
        fn health(&self) -> ratekeeper_storage::StorageFuture<'_, ()> {
            Box::pin(async { Err(down()) })
        }
    }
    let called = Arc::new(core::sync::atomic::AtomicUsize::new(0));
    let seen = Arc::clone(&called);
    let limits = layer(
        LimiterBuilder::default()
            .default_limits("5 per minute")
            .storage(Arc::new(Broken)),
    );
    let app = Router::new()
        .route(
            "/",
            get(move || {
                seen.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
                async { "hi" }
            }),
        )
        .layer(limits.clone());
    let r = send(&app, "GET", "/", A).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.body, "{\"error\": \"rate limiting unavailable\"}");
    assert_eq!(called.load(core::sync::atomic::Ordering::Relaxed), 0);
    // The application's own 503: the hook sees the refusal the layer would have sent.
    let shaped = Router::new()
        .route("/", get(|| async { "hi" }))
        .layer(limits.respond_with(page));
    let r = send(&shaped, "GET", "/", A).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.header("content-type"), Some("text/html"));
    assert_eq!(
        r.body,
        "<p>503: {\"error\": \"rate limiting unavailable\"}</p>"
    );
}

/// An HTML page for every refusal, carrying the refusal's status and body.
fn page(refusal: &ratekeeper_decision::adapter::Refusal) -> http::Response<bytes::Bytes> {
    let text = format!("<p>{}: {}</p>", refusal.status(), refusal.body());
    http::Response::builder()
        .status(refusal.status())
        .header("content-type", "text/html")
        .body(text.into())
        .unwrap()
}

/// A 429 written by the application's hook still carries the rate-limit headers, and a
/// served request never reaches the hook.
#[tokio::test]
async fn refusals_can_be_the_applications_own_responses() {
    let limits = layer(LimiterBuilder::default().default_limits("1 per minute"));
    let app = Router::new()
        .route("/", get(|| async { "hi" }))
        .layer(limits.respond_with(page));
    let served = send(&app, "GET", "/", A).await;
    assert_eq!(
        (served.status, served.body.as_str()),
        (StatusCode::OK, "hi")
    );
    let refused = send(&app, "GET", "/", A).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.header("content-type"), Some("text/html"));
    assert!(refused.body.starts_with("<p>429: {"), "{}", refused.body);
    assert_eq!(refused.header("x-ratelimit-limit"), Some("1"));
    assert_eq!(refused.header("x-ratelimit-remaining"), Some("0"));
    assert_eq!(refused.header("retry-after"), Some("60"));
}

pin_project_lite::pin_project! {
    /// A response body that is not `Unpin`, as a body built on an `async` block is.
    struct Pinned {
        data: Option<bytes::Bytes>,
        #[pin]
        _pinned: core::marker::PhantomPinned,
    }
}

impl http_body::Body for Pinned {
    type Data = bytes::Bytes;
    type Error = core::convert::Infallible;

    fn poll_frame(
        self: core::pin::Pin<&mut Self>,
        _: &mut core::task::Context<'_>,
    ) -> core::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        let data = self.project().data.take();
        core::task::Poll::Ready(data.map(|d| Ok(http_body::Frame::data(d))))
    }
}

/// The layer wraps services whose bodies are not `Unpin`, and passes them through whole.
#[tokio::test]
async fn a_body_that_is_not_unpin_passes_through() {
    let limits = layer(LimiterBuilder::default().default_limits("1 per minute"));
    let svc = tower::ServiceBuilder::new()
        .layer(limits)
        .service_fn(|_req: Request<_>| async {
            let body = Pinned {
                data: Some("streamed".into()),
                _pinned: core::marker::PhantomPinned,
            };
            Ok::<_, core::convert::Infallible>(http::Response::new(body))
        });
    let req = || {
        let mut req = Request::builder().uri("/").body(Body::empty()).unwrap();
        req.extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([203, 0, 113, 7], 4000))));
        req
    };
    let res = svc.clone().oneshot(req()).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "streamed");
    let refused = svc.oneshot(req()).await.unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(
        !refused
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .is_empty()
    );
}
