//! Route-local limits for axum: the route and its limits declared in one call, so the path is
//! written once.

use axum::{Router, routing::MethodRouter};
use ratekeeper_decision::{ConfigError, RoutePolicy};

use crate::RateLimitLayer;

/// Adds routes with limits of their own to an axum [`Router`].
///
/// ```
/// use axum::{Router, routing::{get, post}};
/// use ratekeeper_decision::Limiter;
/// use ratekeeper_tower::{LimitedRoutes as _, RateLimitLayer};
///
/// let mut limits = RateLimitLayer::new(Limiter::builder().default_limits("100 per minute").build()?);
/// let app: Router = Router::new()
///     .route("/", get(|| async { "home" }))
///     // `POST /login` counts 5 per minute per client, not under the defaults.
///     .limited_route("/login", post(|| async { "welcome" }), &mut limits, "5 per minute")?
///     .layer(limits);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait LimitedRoutes<S>: Sized {
    /// Adds `method_router` at `path` (as [`Router::route`] does) and limits that route by
    /// `policy` (a limit string, or a full
    /// [`RoutePolicy`](ratekeeper_decision::RoutePolicy)) in `limits`, the layer the router
    /// is wrapped in. The policy is checked now: a limit string that does not parse or a
    /// limit the store cannot count is an error here, not at the first request.
    fn limited_route(
        self,
        path: &str,
        method_router: MethodRouter<S>,
        limits: &mut RateLimitLayer,
        policy: impl Into<RoutePolicy>,
    ) -> Result<Self, ConfigError>;
}

impl<S: Clone + Send + Sync + 'static> LimitedRoutes<S> for Router<S> {
    fn limited_route(
        self,
        path: &str,
        method_router: MethodRouter<S>,
        limits: &mut RateLimitLayer,
        policy: impl Into<RoutePolicy>,
    ) -> Result<Self, ConfigError> {
        limits.add_route_policy(path, policy)?;
        Ok(self.route(path, method_router))
    }
}
