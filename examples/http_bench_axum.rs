//! A hello-world axum server, bare or behind the rate-limiting layer (memory store), on a
//! single-threaded tokio runtime, for `SERVER=http_bench_axum scripts/callgrind-http.sh`.
//! Usage: `http_bench_axum bare|headers|limited PORT`.

use axum::{Router, http::HeaderValue, routing::get};
use ratekeeper::Limiter;
use ratekeeper::integrations::tower::RateLimitLayer;

fn main() -> Result<(), Box<dyn core::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "bare".into());
    let port: u16 = args.next().unwrap_or_else(|| "8080".into()).parse()?;
    let app = Router::new().route("/", get(|| async { "ok" }));
    let app = match mode.as_str() {
        "bare" => app,
        "limited" => {
            // Every request is allowed (a limit the run cannot reach) and carries the
            // X-RateLimit-* headers: the full cost of a decision on every request.
            let limiter = Limiter::builder()
                .default_limits("4000000000 per hour")
                .build()?;
            app.layer(RateLimitLayer::new(limiter))
        }
        "headers" => {
            // A middleware that adds three headers the size of the limiter's.
            app.layer(axum::middleware::map_response(
                |mut res: axum::response::Response| async move {
                    let h = res.headers_mut();
                    h.insert("x-ratelimit-limit", HeaderValue::from_static("4000000000"));
                    h.insert(
                        "x-ratelimit-remaining",
                        HeaderValue::from_static("3999999999"),
                    );
                    h.insert("x-ratelimit-reset", HeaderValue::from_static("1795777596"));
                    res
                },
            ))
        }
        other => {
            return Err(format!("unknown mode {other:?}: bare, headers or limited").into());
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        ratekeeper_examples::serve_axum(listener, app).await
    })?;
    Ok(())
}
