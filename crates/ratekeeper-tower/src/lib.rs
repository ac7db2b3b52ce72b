//! A [tower](https://docs.rs/tower) layer for the `ratekeeper-*` crates: the Decision API in
//! front of any `http` service (axum, hyper, tonic), doing what the Tide middleware does.
//!
//! - **Route**: axum's `MatchedPath` when the request has one (the layer added with
//!   `Router::layer`), else a pattern registered with [`RateLimitLayer::route`], else the
//!   catch-all [`CATCH_ALL`].
//! - **Client**: axum's `ConnectInfo<SocketAddr>` (serve with
//!   `into_make_service_with_connect_info::<SocketAddr>()`), or [`RateLimitLayer::peer`];
//!   forwarded headers as the limiter is configured to trust them.
//! - **Answers**: a refused request gets the configured status, body, content type and
//!   headers (429 with `Retry-After`); every response carries the rate-limit headers; a
//!   storage error is a 503 (or what the limiter's outage mode decides).
//! - **Conditional deduction and settled costs** are completed from the response's status and
//!   the bytes the handler read from the request body.
//!
//! Policies, groups and configuration come from the same [`Limiter`](ratekeeper_decision::Limiter)
//! as everywhere else. The layer is runtime-neutral; its examples and tests run on tokio.
//!
//! ```no_run
//! use axum::{Router, routing::{get, post}};
//! use ratekeeper_decision::Limiter;
//! use ratekeeper_tower::{LimitedRoutes as _, RateLimitLayer};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let mut limits = RateLimitLayer::new(
//!     Limiter::builder().default_limits("200 per day; 50 per hour").build()?,
//! );
//! let app = Router::new()
//!     .route("/", get(|| async { "hello" }))
//!     .limited_route("/login", post(|| async { "welcome" }), &mut limits, "5 per minute")?
//!     .layer(limits);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! // Clients known by address (`ConnectInfo`), deadlines on heads, bodies and idle
//! // connections. With `axum::serve`, pass
//! // `app.into_make_service_with_connect_info::<std::net::SocketAddr>()`.
//! ratekeeper_tower::serve(listener, app).await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Feature flags
//!
//! The layer names no storage backend: the limiter is given its store (or the
//! `ratekeeper-stores` that open storage URIs; their `tokio` feature has Redis connections
//! opened inside a tokio runtime driven by it).
//!
//! - `axum` (default): routes by axum's `MatchedPath`, peers by its `ConnectInfo`.
//! - `metrics`: decisions and storage errors through the `metrics` facade.
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]

mod body;
mod layer;
#[cfg(feature = "axum")]
mod limited;
mod routes;
#[cfg(feature = "axum")]
mod serve;

pub use body::{CountedBody, LimitedBody};
pub use layer::{PeerFn, RateLimitLayer, RateLimitService, ResponseFuture};
#[cfg(feature = "axum")]
pub use limited::LimitedRoutes;
pub use routes::CATCH_ALL;
#[cfg(feature = "axum")]
pub use serve::{DEFAULT_BODY_TIMEOUT, DEFAULT_HEADER_TIMEOUT, Serve, serve};
