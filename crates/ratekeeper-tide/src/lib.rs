//! Tide middleware for the `ratekeeper-*` crates: every request goes through the Decision API of
//! `ratekeeper-decision`; rejections become `429 Too Many Requests` with the configured body and
//! `Retry-After` (a request without the credential a key function requires, `401 Unauthorized`);
//! rate-limit headers go on every response; conditional deduction is completed from the response
//! status, and a settled cost from the request body bytes the handler read (so a body without a
//! `Content-Length` cannot dodge a cost that depends on its size).
//!
//! # Routes
//!
//! Tide does not tell an application-level middleware which route matched, but limits are per
//! route. [`RateLimit::at`] therefore registers a route twice: with Tide, and in the
//! middleware's own registry, a [`route_recognizer`] router (the crate Tide routes with, so both
//! match a path to the same pattern). The middleware names each request by its pattern
//! (`/users/:id`, not `/users/42`), which keeps per-route counters bounded and lets route policies
//! be configured by pattern. A request whose path matches no registered pattern (a route added
//! with plain `app.at`, or a 404) is counted under the catch-all route `*`: it cannot escape the
//! default limits by accident, and clients cannot mint a fresh counter per path. Tide routes
//! per method; where patterns overlap under different methods (`GET /items/:id` beside
//! `POST /items/search`), register each with its method ([`RateLimit::register_method`]) and
//! the middleware picks the pattern Tide serves the request from. Each request costs one
//! decision, so one storage round trip (a rejection's breach count toward meta limits included).
//!
//! # Example
//!
//! ```
//! use ratekeeper_decision::{Limiter, RoutePolicy};
//! use ratekeeper_tide::RateLimit;
//!
//! # fn main() -> Result<(), Box<dyn core::error::Error>> {
//! let limiter = Limiter::builder()
//!     .default_limits("200 per day; 50 per hour")
//!     .route("/auth/login", RoutePolicy::new().limit("5 per minute"))
//!     .route("/health", RoutePolicy::new().exempt())
//!     .build()?;
//! let limits = RateLimit::new(limiter);
//! let mut app = tide::new();
//! app.with(limits.clone());
//! limits.at(&mut app, "/auth/login").post(|_| async { Ok("welcome") });
//! limits.at(&mut app, "/health").get(|_| async { Ok("ok") });
//! limits.at(&mut app, "/users/:id").get(|_| async { Ok("a user") });
//! # Ok(())
//! # }
//! ```
//!
//! # Serving
//!
//! Serve the app with [`HttpListener`] (from `ratekeeper-listener`, re-exported here) rather
//! than Tide's own listener: `app.listen(HttpListener::new("0.0.0.0:8080"))`. It puts deadlines
//! on heads, bodies and idle connections, answers request heads Tide's parser cannot decode
//! with `400 Bad Request`, and turns Nagle's algorithm off. Tide's listener stays usable: the
//! middleware does not depend on how the app is served.
//!
//! ```no_run
//! use ratekeeper_decision::Limiter;
//! use ratekeeper_tide::{HttpListener, RateLimit};
//!
//! # async_std::task::block_on(async {
//! let limits = RateLimit::new(Limiter::builder().default_limits("100 per minute").build()?);
//! let mut app = tide::new();
//! app.with(limits.clone());
//! limits.at(&mut app, "/").get(|_| async { Ok("hello") });
//! app.listen(HttpListener::new("127.0.0.1:8080")).await?;
//! # Ok::<(), Box<dyn core::error::Error>>(())
//! # });
//! ```
//!
//! # Errors
//!
//! When the store fails, the request is answered `503 Service Unavailable` (and logged); the
//! fallback store (`ratekeeper-fallback`) is how to keep serving through a storage outage.
//!
//! # Feature flags
//!
//! The middleware names no storage backend: the limiter is given its store (or the
//! `ratekeeper-stores` that open storage URIs), so nothing of Redis is built unless asked for.
//!
//! - `metrics`: decisions and storage errors through the `metrics` facade.
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]

mod held;
mod middleware;

pub use middleware::{CATCH_ALL, Nested, RateLimit};
/// The HTTP/1.1 listener to serve a limited app with (`ratekeeper-listener`).
pub use ratekeeper_listener::{DEFAULT_BODY_TIMEOUT, DEFAULT_MAX_BODY, HttpListener, Stopper};
