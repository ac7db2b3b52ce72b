//! Metrics label requests by route pattern, never by path, through both adapters' real
//! routers: `/users/1` and `/users/2` are one series under the pattern, every path no route
//! matches is one series under `*`. (Its own test binary: the recorder is the process's.)

use ratekeeper::{Limiter, integrations::tide::RateLimit};
use ratekeeper_examples::{metrics_text, serve_on_free_port};

/// The `route` labels of the decision series on the page.
fn routes_on(page: &str) -> Vec<String> {
    let mut routes: Vec<String> = page
        .lines()
        .filter(|l| l.starts_with("ratelimit_decisions_total{"))
        .filter_map(|l| {
            let start = l.find("route=\"")? + 7;
            let end = start + l[start..].find('"')?;
            Some(l[start..end].to_owned())
        })
        .collect();
    routes.sort();
    routes.dedup();
    routes
}

async fn get_all(base: &str) {
    let paths = ["/users/1", "/users/2", "/nope-1", "/nope-2", "/nope-3"];
    for path in paths {
        // A fresh client per request: async-h1's pooled client misreads a reused connection.
        let client = surf::Client::new();
        let status = client.get(format!("{base}{path}")).await.unwrap().status();
        assert!(matches!(u16::from(status), 200 | 404), "{path}: {status}");
    }
}

fn limiter() -> Limiter {
    Limiter::builder()
        .default_limits("100 per minute")
        .build()
        .unwrap()
}

#[test]
fn a_route_is_one_series_whatever_its_paths() {
    assert!(metrics_text().is_some(), "the recorder is installed");
    async_std::task::block_on(async {
        // Tide: the middleware's own registry names the pattern.
        let limits = RateLimit::new(limiter());
        let mut app = tide::new();
        app.with(limits.clone());
        limits
            .at(&mut app, "/users/:id")
            .get(|_| async { Ok("a user") });
        let base = serve_on_free_port(app).await.unwrap();
        get_all(&base).await;
        // axum: the layer reads the `MatchedPath`.
        let app = axum::Router::new()
            .route("/users/{id}", axum::routing::get(|| async { "a user" }))
            .layer(ratekeeper::integrations::tower::RateLimitLayer::new(
                limiter(),
            ));
        let base = ratekeeper_examples::serve_axum_on_free_port(app).unwrap();
        get_all(&base).await;
    });
    let page = metrics_text().unwrap();
    assert_eq!(
        routes_on(&page),
        ["*", "/users/:id", "/users/{id}"],
        "{page}"
    );
}
