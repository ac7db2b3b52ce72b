//! `RateLimit` on raw HTTP/1.1 requests to a Tide app (in process, a manual clock): the
//! headers of every strategy on a 429, per-method routes, the `*` catch-all, one counter per
//! pattern, routes registered without Tide, routes by method, and 401 for a missing credential.

mod common;

use std::sync::Arc;

use common::{Reply, Served, get};
use ratekeeper_core::{Duration, ManualClock, StrategyKind, Timestamp};
use ratekeeper_decision::{
    KeyFunction, Limiter, LimiterBuilder, RoutePolicy, breach::BreachResponse,
    headers::HeaderOptions,
};
use ratekeeper_tide::RateLimit;

/// Minute-aligned, for the sliding window's buckets.
const T0: Timestamp = Timestamp::from_secs(1_699_999_200);

fn limiter(b: LimiterBuilder) -> (RateLimit, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(T0));
    let limiter = b.clock(clock.clone()).build().unwrap();
    (RateLimit::new(limiter), clock)
}

/// `request` to the app; its reply.
async fn send(server: &Served, request: &[u8]) -> Reply {
    server.send(request).await
}

fn request(method: &str, path: &str) -> Vec<u8> {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .into_bytes()
}

#[test]
fn every_strategy_answers_429_with_its_headers() {
    // "5 per minute": five requests at T0, the sixth at T0 + 10 s. The numbers are worked out
    // in the decision crate's header tests; here they must reach the wire unchanged.
    for (kind, retry_after, reset_in) in [
        (StrategyKind::FixedWindow, 50, 50),
        (StrategyKind::MovingWindow, 50, 50),
        (StrategyKind::SlidingWindowCounter, 51, 50),
        (StrategyKind::Gcra, 2, 50),
    ] {
        async_std::task::block_on(async {
            let (limits, clock) = limiter(
                Limiter::builder()
                    .default_limits("5 per minute")
                    .strategy(kind)
                    .headers(HeaderOptions::all()),
            );
            let mut app = tide::new();
            app.with(limits.clone());
            limits.at(&mut app, "/").get(|_| async { Ok("hello") });
            let server = Served(app);
            for _ in 0..5 {
                let ok = send(&server, &get("/", "")).await;
                assert_eq!(ok.status, 200, "{kind}");
                assert!(ok.header("X-RateLimit-Remaining").is_some(), "{kind}");
                assert_eq!(ok.header("Retry-After"), None, "{kind}");
            }
            clock.advance(Duration::from_secs(10));
            let r = send(&server, &get("/", "")).await;
            assert_eq!(r.status, 429, "{kind}");
            assert_eq!(
                r.header("Retry-After"),
                Some(&*retry_after.to_string()),
                "{kind}"
            );
            assert_eq!(r.header("X-RateLimit-Limit"), Some("5"), "{kind}");
            assert_eq!(r.header("X-RateLimit-Remaining"), Some("0"), "{kind}");
            let reset = (T0.as_secs() + 60).to_string();
            assert_eq!(r.header("X-RateLimit-Reset"), Some(&*reset), "{kind}");
            let field = format!("\"5 per 1 minute\";r=0;t={reset_in}");
            assert_eq!(r.header("RateLimit"), Some(&*field), "{kind}");
            assert_eq!(r.header("content-type"), Some("application/json"), "{kind}");
            let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
            assert_eq!(body["retry_after"], retry_after, "{kind}");
        });
    }
}

#[test]
fn retry_after_as_an_http_date() {
    async_std::task::block_on(async {
        let (limits, clock) = limiter(
            Limiter::builder()
                .default_limits("1 per minute")
                .headers(HeaderOptions::default().retry_after_http_date()),
        );
        let mut app = tide::new();
        app.with(limits.clone());
        limits.at(&mut app, "/").get(|_| async { Ok("hello") });
        let server = Served(app);
        assert_eq!(send(&server, &get("/", "")).await.status, 200);
        clock.advance(Duration::from_millis(12_500));
        let r = send(&server, &get("/", "")).await;
        assert_eq!(r.status, 429);
        // The window opens again at T0 + 60 s.
        assert_eq!(
            r.header("Retry-After"),
            Some("Tue, 14 Nov 2023 22:01:00 GMT")
        );
        let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(body["retry_after"], 48, "the body still counts seconds");
    });
}

#[test]
fn a_breach_hooks_whole_response_reaches_the_wire() {
    async_std::task::block_on(async {
        let (limits, _) = limiter(
            Limiter::builder()
                .default_limits("1 per minute")
                .meta_limits("1 per hour")
                .on_breach_response(|b| {
                    BreachResponse::new(format!("slow down ({})", b.limit))
                        .status(503)
                        .content_type("text/plain; charset=utf-8")
                        .header("X-Reason", "rate")
                        .header("X Broken", "dropped")
                })
                .on_meta_breach(|_| BreachResponse::new("{\"blocked\": true}").status(403)),
        );
        let mut app = tide::new();
        app.with(limits.clone());
        limits.at(&mut app, "/").get(|_| async { Ok("hello") });
        limits.at(&mut app, "/other").get(|_| async { Ok("hello") });
        let server = Served(app);
        assert_eq!(send(&server, &get("/", "")).await.status, 200);
        let r = send(&server, &get("/", "")).await;
        assert_eq!(r.status, 503);
        assert_eq!(r.header("content-type"), Some("text/plain;charset=utf-8"));
        assert_eq!(r.header("X-Reason"), Some("rate"));
        assert_eq!(r.header("X-RateLimit-Remaining"), Some("0"));
        assert_eq!(r.body, "slow down (1 per 1 minute)");
        // That breach used up the meta limit: every route is now the meta response.
        let meta = send(&server, &get("/other", "")).await;
        assert_eq!(meta.status, 403);
        assert_eq!(meta.header("content-type"), Some("application/json"));
        assert_eq!(meta.body, "{\"blocked\": true}");
    });
}

/// A refusal written by the application's hook, as a Tide response, still carries the
/// rate-limit headers; a served request never reaches the hook.
#[test]
fn refusals_can_be_the_applications_own_responses() {
    async_std::task::block_on(async {
        let (limits, _) = limiter(Limiter::builder().default_limits("1 per minute"));
        let limits = limits.respond_with(|refusal| {
            let mut res = tide::Response::new(refusal.status());
            res.set_body(format!("<p>{}: {}</p>", refusal.status(), refusal.body()));
            res.set_content_type(tide::http::mime::HTML);
            res
        });
        let mut app = tide::new();
        app.with(limits.clone());
        limits.at(&mut app, "/").get(|_| async { Ok("hello") });
        let server = Served(app);
        let served = send(&server, &get("/", "")).await;
        assert_eq!((served.status, served.body.as_str()), (200, "hello"));
        let r = send(&server, &get("/", "")).await;
        assert_eq!(r.status, 429);
        assert_eq!(r.header("content-type"), Some("text/html;charset=utf-8"));
        assert!(r.body.starts_with("<p>429: {"), "{}", r.body);
        assert_eq!(r.header("X-RateLimit-Limit"), Some("1"));
        assert_eq!(r.header("X-RateLimit-Remaining"), Some("0"));
        assert_eq!(r.header("Retry-After"), Some("60"));
    });
}

#[test]
fn a_group_limit_holds_across_a_nested_apps_routes() {
    async_std::task::block_on(async {
        let (limits, _) = limiter(
            Limiter::builder()
                .default_limits("100 per minute")
                .group_prefix(
                    "/api/",
                    RoutePolicy::new().limit("3 per minute").shared("api"),
                )
                .route("/api/special", RoutePolicy::new().limit("1 per minute")),
        );
        let mut app = tide::new();
        app.with(limits.clone());
        let mut api = tide::new();
        let nested = limits.under("/api");
        nested.at(&mut api, "/a").get(|_| async { Ok("a") });
        nested.at(&mut api, "/b").get(|_| async { Ok("b") });
        nested
            .at(&mut api, "/special")
            .get(|_| async { Ok("special") });
        app.at("/api").nest(api);
        limits
            .at(&mut app, "/outside")
            .get(|_| async { Ok("outside") });
        let server = Served(app);
        let mut statuses = Vec::new();
        for path in ["/api/a", "/api/b", "/api/a", "/api/b"] {
            let r = send(&server, &get(path, "")).await;
            statuses.push(r.status);
        }
        assert_eq!(statuses, [200, 200, 200, 429], "three for the whole group");
        let body = send(&server, &get("/api/b", "")).await;
        assert_eq!(body.header("X-RateLimit-Limit"), Some("3"));
        // A route's own policy overrides the group's.
        let special = send(&server, &get("/api/special", "")).await;
        assert_eq!(special.status, 200);
        assert_eq!(special.body, "special");
        assert_eq!(special.header("X-RateLimit-Limit"), Some("1"));
        assert_eq!(send(&server, &get("/api/special", "")).await.status, 429);
        // Outside the group, the defaults.
        let outside = send(&server, &get("/outside", "")).await;
        assert_eq!(outside.header("X-RateLimit-Limit"), Some("100"));
    });
}

#[test]
fn shadow_mode_serves_with_the_headers() {
    async_std::task::block_on(async {
        let (limits, _) = limiter(
            Limiter::builder()
                .default_limits("1 per minute")
                .shadow(true),
        );
        let mut app = tide::new();
        app.with(limits.clone());
        limits.at(&mut app, "/").get(|_| async { Ok("hello") });
        let server = Served(app);
        for _ in 0..3 {
            let r = send(&server, &get("/", "")).await;
            assert_eq!((r.status, r.body.as_str()), (200, "hello"));
            assert_eq!(r.header("X-RateLimit-Remaining"), Some("0"));
            assert_eq!(r.header("Retry-After"), None);
        }
        assert_eq!(limits.limiter().shadow_rejections(), 2);
    });
}

#[test]
fn per_method_routes_count_apart_over_http() {
    async_std::task::block_on(async {
        let (limits, _) = limiter(Limiter::builder().route(
            "/items",
            RoutePolicy::new().limit("1 per minute").per_method(),
        ));
        let mut app = tide::new();
        app.with(limits.clone());
        limits
            .at(&mut app, "/items")
            .get(|_| async { Ok("list") })
            .post(|_| async { Ok("created") });
        let server = Served(app);
        let statuses = [
            send(&server, &request("GET", "/items")).await.status,
            send(&server, &request("POST", "/items")).await.status,
            send(&server, &request("GET", "/items")).await.status,
            send(&server, &request("POST", "/items")).await.status,
        ];
        assert_eq!(statuses, [200, 200, 429, 429]);
    });
}

#[test]
fn unregistered_paths_share_the_catch_all_counter() {
    async_std::task::block_on(async {
        let (limits, _) = limiter(Limiter::builder().default_limits("2 per minute"));
        let mut app = tide::new();
        app.with(limits.clone());
        limits.at(&mut app, "/known").get(|_| async { Ok("known") });
        // Added with plain Tide, not through the middleware: counted under `*` too.
        app.at("/plain").get(|_| async { Ok("plain") });
        let server = Served(app);
        let statuses = [
            send(&server, &get("/nope/1", "")).await.status,
            send(&server, &get("/plain", "")).await.status,
            send(&server, &get("/nope/2", "")).await.status,
        ];
        // A fresh path per request gets no fresh counter: the third is over the limit.
        assert_eq!(statuses, [404, 200, 429]);
        // A registered route counts apart.
        assert_eq!(send(&server, &get("/known", "")).await.status, 200);
        assert_eq!(
            limits.route_of("/nope/3").as_ref(),
            ratekeeper_tide::CATCH_ALL
        );
        assert_eq!(limits.route_of("/known").as_ref(), "/known");
    });
}

#[test]
fn a_pattern_route_is_one_counter_and_register_names_routes_tide_owns() {
    async_std::task::block_on(async {
        let (limits, _) = limiter(
            Limiter::builder()
                .default_limits("100 per minute")
                .route("/users/:id", RoutePolicy::new().limit("2 per minute"))
                .route("/legacy", RoutePolicy::new().limit("1 per minute")),
        );
        let mut app = tide::new();
        app.with(limits.clone());
        limits
            .at(&mut app, "/users/:id")
            .get(|_| async { Ok("a user") });
        app.at("/legacy").get(|_| async { Ok("legacy") });
        limits.register("/legacy");
        let server = Served(app);
        let users = [
            send(&server, &get("/users/1", "")).await.status,
            send(&server, &get("/users/2", "")).await.status,
            send(&server, &get("/users/3", "")).await.status,
        ];
        assert_eq!(users, [200, 200, 429], "one counter for the pattern");
        let legacy = [
            send(&server, &get("/legacy", "")).await.status,
            send(&server, &get("/legacy", "")).await.status,
        ];
        assert_eq!(legacy, [200, 429], "the registered route's own policy");
        assert_eq!(limits.route_of("/users/42").as_ref(), "/users/:id");
    });
}

/// Tide routes per method: with `GET /items/:id` and `POST /items/search`, a
/// `GET /items/search` is served by `/items/:id`, so its limits are `/items/:id`'s. (Looked up
/// for every method, the more specific `/items/search` was chosen: the wrong policy.)
#[test]
fn overlapping_patterns_under_different_methods_pick_tides_route() {
    async_std::task::block_on(async {
        let (limits, _) = limiter(
            Limiter::builder()
                .route("/items/:id", RoutePolicy::new().limit("2 per minute"))
                .route("/items/search", RoutePolicy::new().limit("1 per minute")),
        );
        let mut app = tide::new();
        app.with(limits.clone());
        app.at("/items/:id").get(|_| async { Ok("an item") });
        app.at("/items/search").post(|_| async { Ok("results") });
        limits.register_method("GET", "/items/:id");
        limits.register_method("POST", "/items/search");
        assert_eq!(
            limits.route_for("GET", "/items/search").as_ref(),
            "/items/:id"
        );
        assert_eq!(limits.route_for("HEAD", "/items/7").as_ref(), "/items/:id");
        assert_eq!(
            limits.route_for("post", "/items/search").as_ref(),
            "/items/search"
        );
        // A method no pattern serves (Tide answers 405) counts under the path's pattern.
        assert_eq!(
            limits.route_for("PUT", "/items/search").as_ref(),
            "/items/search"
        );
        assert_eq!(
            limits.route_for("GET", "/elsewhere").as_ref(),
            ratekeeper_tide::CATCH_ALL
        );
        let server = Served(app);
        let gets = [
            send(&server, &request("GET", "/items/search")).await,
            send(&server, &request("GET", "/items/search")).await,
            send(&server, &request("GET", "/items/search")).await,
        ];
        let statuses = gets.iter().map(|r| r.status).collect::<Vec<_>>();
        assert_eq!(statuses, [200, 200, 429], "the GET pattern's 2 per minute");
        assert_eq!(gets[0].header("X-RateLimit-Limit"), Some("2"));
        let posts = [
            send(&server, &request("POST", "/items/search"))
                .await
                .status,
            send(&server, &request("POST", "/items/search"))
                .await
                .status,
        ];
        assert_eq!(posts, [200, 429], "the POST pattern's 1 per minute");
    });
}

/// A key function that requires a known credential answers without one with 401 and a
/// `WWW-Authenticate` naming the header; a known one is served and limited.
#[test]
fn a_required_credential_missing_is_401() {
    async_std::task::block_on(async {
        let (limits, _) = limiter(
            Limiter::builder()
                .default_limits("1 per minute")
                .key_function(
                    KeyFunction::credential("X-API-Key", "apikey", |v| {
                        (v == "good").then(|| "acct".to_owned())
                    })
                    .rejecting_unknown(),
                ),
        );
        let mut app = tide::new();
        app.with(limits.clone());
        limits.at(&mut app, "/r").get(|_| async { Ok("ok") });
        let server = Served(app);
        let with_key = |key: &str| {
            format!(
                "GET /r HTTP/1.1\r\nHost: test\r\nX-API-Key: {key}\r\nConnection: close\r\n\r\n"
            )
            .into_bytes()
        };
        for req in [request("GET", "/r"), with_key("guess")] {
            let r = send(&server, &req).await;
            assert_eq!(r.status, 401);
            assert_eq!(
                r.header("WWW-Authenticate"),
                Some("ApiKey header=\"X-API-Key\"")
            );
            assert!(r.body.contains("Unauthorized"), "{}", r.body);
        }
        assert_eq!(send(&server, &with_key("good")).await.status, 200);
        assert_eq!(send(&server, &with_key("good")).await.status, 429);
    });
}

/// A request without a peer address (Tide's Unix-socket listener gives none) is limited under
/// a shared identity by default, and answered 403 when the limiter refuses such requests.
#[test]
fn a_request_without_an_address_is_limited_or_refused() {
    use ratekeeper_decision::keys::UnknownClient;
    use tide::http::{Method, Request as HttpRequest, Url};
    let respond = |limits: RateLimit| async move {
        let mut app = tide::new();
        app.with(limits.clone());
        limits.at(&mut app, "/r").get(|_| async { Ok("ok") });
        let mut statuses = Vec::new();
        for _ in 0..2 {
            let req = HttpRequest::new(Method::Get, Url::parse("http://test/r").unwrap());
            assert!(req.peer_addr().is_none());
            let res: tide::http::Response = app.respond(req).await.unwrap();
            statuses.push(u16::from(res.status()));
        }
        statuses
    };
    async_std::task::block_on(async {
        let (shared, _) = limiter(Limiter::builder().default_limits("1 per minute"));
        assert_eq!(respond(shared).await, [200, 429]);
        let (refusing, _) = limiter(
            Limiter::builder()
                .default_limits("1 per minute")
                .unknown_client(UnknownClient::Reject),
        );
        assert_eq!(respond(refusing).await, [403, 403]);
    });
}

/// The user an authentication middleware found.
#[derive(Clone)]
struct User(&'static str);

#[test]
fn key_functions_read_what_earlier_middleware_set() {
    async_std::task::block_on(async {
        let by_user = KeyFunction::custom("user", |req, _| {
            req.extension::<User>()
                .map(|u| u.0.to_owned())
                .unwrap_or_default()
        });
        let (limits, _) = limiter(
            Limiter::builder()
                .default_limits("2 per minute")
                .key_function(by_user),
        );
        let limits = limits.extension::<User>();
        let mut app = tide::new();
        // Authentication first: `X-User` stands for whatever it checks.
        app.with(tide::utils::Before(
            |mut req: tide::Request<()>| async move {
                let user = match req.header("x-user").map(|v| v.as_str()) {
                    Some("ada") => Some(User("ada")),
                    Some("bob") => Some(User("bob")),
                    _ => None,
                };
                if let Some(user) = user {
                    req.set_ext(user);
                }
                req
            },
        ));
        app.with(limits.clone());
        limits.at(&mut app, "/").get(|_| async { Ok("hi") });
        let server = Served(app);
        let as_user = |user: &str| get("/", &format!("X-User: {user}\r\n"));
        let mut statuses = Vec::new();
        for user in ["ada", "ada", "ada", "bob"] {
            statuses.push(send(&server, &as_user(user)).await.status);
        }
        assert_eq!(statuses, [200, 200, 429, 200]);
        // Nobody authenticated: an empty identity, not limited.
        for _ in 0..3 {
            assert_eq!(send(&server, &get("/", "")).await.status, 200);
        }
    });
}

/// A route declared with its limits (`limited_at`) counts under them, not the defaults; other
/// routes keep the defaults; a bad limit string fails where the route is declared.
#[test]
fn a_limited_route_counts_under_its_own_limits() {
    use tide::http::{Method, Request as HttpRequest, Url};
    async_std::task::block_on(async {
        let (limits, _) = limiter(Limiter::builder().default_limits("3 per minute"));
        let mut app = tide::new();
        app.with(limits.clone());
        limits
            .limited_at(&mut app, "/login", "2 per minute")
            .unwrap()
            .post(|_| async { Ok("welcome") });
        limits.at(&mut app, "/").get(|_| async { Ok("home") });
        let send = |method: Method, path: &str, peer: &str| {
            let mut req = HttpRequest::new(method, Url::parse(&format!("http://t{path}")).unwrap());
            req.set_peer_addr(Some(format!("{peer}:4000")));
            let app = app.clone();
            async move {
                let res: tide::http::Response = app.respond(req).await.unwrap();
                let limit = res
                    .header("X-RateLimit-Limit")
                    .map(|v| v.as_str().to_owned());
                (u16::from(res.status()), limit)
            }
        };
        let mut logins = Vec::new();
        for _ in 0..3 {
            logins.push(send(Method::Post, "/login", "203.0.113.7").await);
        }
        let two = Some("2".to_owned());
        assert_eq!(logins, [(200, two.clone()), (200, two.clone()), (429, two)]);
        assert_eq!(send(Method::Post, "/login", "198.51.100.4").await.0, 200);
        assert_eq!(
            send(Method::Get, "/", "203.0.113.7").await,
            (200, Some("3".to_owned()))
        );
        let err = limits
            .limited_at(&mut app, "/x", "2 per fortnight")
            .err()
            .unwrap();
        assert!(err.to_string().contains("fortnight"), "{err}");
    });
}
