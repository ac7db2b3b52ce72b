//! The seed tour on axum: the same routes, bodies, limits and configuration as
//! [`seed_app`](crate::seed_app), behind `ratekeeper-tower`'s layer instead of the Tide middleware.

use core::time::Duration;

use axum::{
    Router,
    body::Bytes,
    extract::{DefaultBodyLimit, RawQuery, Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use ratekeeper::ConfigError;
use ratekeeper::integrations::tower::RateLimitLayer;

use crate::{METRICS_CONTENT_TYPE, SeedConfig, metrics_text, prometheus, report_ms, seed_limiter};

/// The default largest body, as the Tide listener's.
const MAX_BODY: u64 = 64 << 20;

fn json(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn ok(body: &'static str) -> Response {
    json(StatusCode::OK, body.to_owned())
}

/// The seed tour application on axum.
pub fn seed_axum_app(config: &SeedConfig) -> Result<Router, ConfigError> {
    // The recorder goes in before the limiter decides anything.
    prometheus();
    let limits = RateLimitLayer::new(seed_limiter(config)?);
    let max_body = usize::try_from(config.max_body.unwrap_or(MAX_BODY)).unwrap_or(usize::MAX);
    Ok(Router::new()
        .route("/api/data", get(|| async { ok("{\"data\": [1, 2, 3]}") }))
        .route("/api/status", get(|| async { ok("{\"status\": \"ok\"}") }))
        .route(
            "/auth/login",
            post(|| async { ok("{\"token\": \"example\"}") }),
        )
        .route("/api/search", get(|| async { ok("{\"results\": []}") }))
        .route("/api/feed", get(|| async { ok("{\"items\": []}") }))
        .route("/health", get(|| async { ok("{\"status\": \"healthy\"}") }))
        .route(
            "/metrics",
            get(|| async {
                match metrics_text() {
                    Some(text) => (
                        StatusCode::OK,
                        [(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
                        text,
                    )
                        .into_response(),
                    None => json(
                        StatusCode::NOT_FOUND,
                        "{\"error\": \"metrics go to the application's own recorder\"}".to_owned(),
                    ),
                }
            }),
        )
        .route(
            "/api/generate",
            get(|| async { ok("{\"generated\": true}") }),
        )
        .route(
            "/api/upload",
            post(|body: Bytes| async move {
                json(StatusCode::OK, format!("{{\"uploaded\": {}}}", body.len()))
            }),
        )
        .route(
            "/api/process",
            get(|RawQuery(query): RawQuery| async move {
                let failed = query
                    .as_deref()
                    .is_some_and(|q| q.split('&').any(|p| p == "fail=1"));
                if failed {
                    json(
                        StatusCode::BAD_REQUEST,
                        "{\"error\": \"processing failed\"}".to_owned(),
                    )
                } else {
                    ok("{\"processed\": true}")
                }
            }),
        )
        .route(
            "/api/report",
            get(|RawQuery(query): RawQuery| async move {
                let ms = report_ms(query.as_deref());
                tokio::time::sleep(Duration::from_millis(ms)).await;
                json(
                    StatusCode::OK,
                    format!("{{\"report\": \"done\", \"ms\": {ms}}}"),
                )
            }),
        )
        .route(
            "/api/expensive",
            get(|| async { ok("{\"result\": \"expensive\"}") }),
        )
        .layer(DefaultBodyLimit::max(max_body))
        .layer(limits)
        // Outermost: a declared length over the cap is refused before anything else runs.
        .layer(middleware::from_fn_with_state(max_body as u64, cap)))
}

/// Refuses a request whose declared body is larger than `max` bytes before a byte of it is
/// read: `413` with the JSON body the Tide listener sends, and the connection closed (a body
/// that goes past it undeclared is refused by `DefaultBodyLimit` as it is read).
async fn cap(State(max): State<u64>, req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > max) {
        let mut res = json(
            StatusCode::PAYLOAD_TOO_LARGE,
            "{\"error\": \"Payload Too Large\", \"message\": \"the request body is larger than this server accepts\"}".to_owned(),
        );
        res.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return res;
    }
    next.run(req).await
}

/// How long a client has to send a request head, and how long an idle keep-alive connection
/// stays open for the next one.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a client has to send a request body.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `app` on `listener` on the current tokio runtime, as users should: Nagle off on every
/// connection, client addresses from the socket (`ConnectInfo`), and deadlines on heads, idle
/// keep-alives ([`HEADER_TIMEOUT`]) and bodies ([`BODY_TIMEOUT`]), which `axum::serve` does
/// not set: without them a client that sends half a request holds its connection for ever.
pub async fn serve_axum(listener: tokio::net::TcpListener, app: Router) -> std::io::Result<()> {
    serve_axum_with(listener, app, HEADER_TIMEOUT, BODY_TIMEOUT).await
}

/// [`serve_axum`] with deadlines of your choice.
pub async fn serve_axum_with(
    listener: tokio::net::TcpListener,
    app: Router,
    header_timeout: Duration,
    body_timeout: Duration,
) -> std::io::Result<()> {
    ratekeeper::integrations::tower::serve(listener, app)
        .header_timeout(header_timeout)
        .body_timeout(body_timeout)
        .await
}

/// Starts `app` on `127.0.0.1:0` on a tokio runtime of its own (in a background thread) and
/// returns its base URL.
pub fn serve_axum_on_free_port(app: Router) -> std::io::Result<String> {
    serve_axum_on_free_port_with(app, HEADER_TIMEOUT, BODY_TIMEOUT)
}

/// [`serve_axum_on_free_port`] with deadlines of your choice.
pub fn serve_axum_on_free_port_with(
    app: Router,
    header_timeout: Duration,
    body_timeout: Duration,
) -> std::io::Result<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("seed-axum".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            runtime.block_on(async move {
                match tokio::net::TcpListener::bind("127.0.0.1:0").await {
                    Ok(listener) => {
                        let addr = listener.local_addr();
                        let _ = tx.send(addr.map(|a| format!("http://{a}")));
                        let served =
                            serve_axum_with(listener, app, header_timeout, body_timeout).await;
                        if let Err(e) = served {
                            tracing::error!("server stopped: {e}");
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            });
        })?;
    rx.recv().map_err(std::io::Error::other)?
}
