//! Route policies: compiling one against a limiter's scopes (at build, or later for an adapter
//! that learns a route's limits where the route is declared), and which configured routes
//! match none an adapter knows.

use core::fmt;
use std::sync::Arc;

use ratekeeper_core::Limit;

use crate::{
    error::ConfigError,
    key::KeyFunction,
    keyed::parse_keyed,
    limiter::{Compiled, Inner, Limiter, RouteLimits},
    policy::{LimitSet, LimitSource, RoutePolicy, parse_set},
};

/// Compiles `policy` (named `context` in errors) against the application and default limits
/// it may combine with, each scope's keyed groups after its own.
pub(crate) fn compile(
    context: &str,
    policy: RoutePolicy,
    application_all: &[Limit],
    defaults_all: &[Limit],
) -> Result<Compiled, ConfigError> {
    let limits = match &policy.limits {
        None => None,
        Some(LimitSource::Text(text)) => Some(RouteLimits::Set(parse_set(context, text)?)),
        Some(LimitSource::Set(s)) => Some(RouteLimits::Set(s.clone())),
        Some(LimitSource::Dynamic(f)) => Some(RouteLimits::Dynamic(f.clone())),
    };
    if policy.shared.as_deref() == Some("") {
        return Err(ConfigError::Invalid(format!(
            "{context}: an empty shared scope name"
        )));
    }
    let guard: LimitSet = match &policy.guard {
        None => Vec::new().into(),
        Some(text) => parse_set(&format!("{context} guard"), text)?,
    };
    let keyed = parse_keyed(context, &policy.keyed)?;
    Ok(Compiled::new(
        limits,
        keyed,
        guard,
        policy,
        application_all,
        defaults_all,
    ))
}

/// Refuses a key function whose namespace is empty or the one reserved for addresses.
pub(crate) fn check_namespace(key: &KeyFunction) -> Result<(), ConfigError> {
    if key
        .namespace()
        .is_some_and(|ns| ns.is_empty() || ns == "ip")
    {
        return Err(ConfigError::Invalid(format!(
            "key function {key:?}: the namespace must be non-empty and not \"ip\" (reserved for client addresses)"
        )));
    }
    Ok(())
}

/// A route policy compiled by one [`Limiter`] with [`Limiter::compile_route`], for an adapter
/// that learns a route's limits where the route is declared (the tower layer's
/// `limited_route`) rather than from the builder. A request carries it with
/// [`RequestView::with_policy`](crate::RequestView::with_policy); only the limiter that
/// compiled it uses it.
#[derive(Clone)]
pub struct CompiledPolicy {
    route: Arc<str>,
    /// The compiling limiter's state, by address: another limiter ignores the policy.
    owner: usize,
    compiled: Arc<Compiled>,
}

impl fmt::Debug for CompiledPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompiledPolicy")
            .field("route", &self.route)
            .finish_non_exhaustive()
    }
}

impl CompiledPolicy {
    /// The route the policy was compiled for.
    pub fn route(&self) -> &str {
        &self.route
    }

    /// The compiled policy, if `inner` is the limiter that compiled it.
    pub(crate) fn for_limiter(&self, inner: &Arc<Inner>) -> Option<&Compiled> {
        (Arc::as_ptr(inner) as usize == self.owner).then_some(&*self.compiled)
    }
}

impl Limiter {
    /// Compiles a policy for `route` against this limiter's default and application limits,
    /// as the builder's [`route`](crate::LimiterBuilder::route) would: its limit strings must
    /// parse, its key functions be well named and its limits fit the store. A request that
    /// carries the result ([`RequestView::with_policy`](crate::RequestView::with_policy)) is
    /// decided under it, whatever the builder configured for its route.
    ///
    /// ```
    /// use ratekeeper_decision::{Limiter, RequestView, RoutePolicy};
    ///
    /// # smol::block_on(async {
    /// let limiter = Limiter::builder().default_limits("100 per minute").build()?;
    /// let login = limiter.compile_route("/login", RoutePolicy::new().limit("2 per minute"))?;
    /// let req = RequestView::new("POST", "/login")
    ///     .with_peer("203.0.113.7".parse()?)
    ///     .with_policy(&login);
    /// assert!(limiter.check(&req).await?.is_allowed());
    /// assert!(limiter.check(&req).await?.is_allowed());
    /// assert!(!limiter.check(&req).await?.is_allowed());
    /// assert!(limiter.compile_route("/x", RoutePolicy::new().limit("2 per sec")).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn compile_route(
        &self,
        route: &str,
        policy: RoutePolicy,
    ) -> Result<CompiledPolicy, ConfigError> {
        let inner = &self.inner;
        for key in policy.key.iter().chain(policy.keyed.iter().map(|(_, k)| k)) {
            check_namespace(key)?;
        }
        let compiled = compile(
            &format!("route {route}"),
            policy,
            &inner.scopes.application_all,
            &inner.scopes.defaults_all,
        )?;
        for limit in compiled.static_limits() {
            inner
                .storage
                .check_limit(limit, inner.strategy)
                .map_err(ConfigError::Storage)?;
        }
        Ok(CompiledPolicy {
            route: route.into(),
            owner: Arc::as_ptr(inner) as usize,
            compiled: Arc::new(compiled),
        })
    }

    /// The routes and route groups the builder configured (`"GET /a"` for a single method's
    /// policy, `"/api/*"` for a prefix group) whose pattern matches none of `known`, the route
    /// patterns an adapter serves: a policy for a route that does not exist, most often a
    /// typo, that would otherwise leave the real route under the defaults without a word.
    ///
    /// ```
    /// use ratekeeper_decision::{Limiter, RoutePolicy};
    ///
    /// let limiter = Limiter::builder()
    ///     .route("/logn", RoutePolicy::new().limit("5 per minute"))
    ///     .route("/search", RoutePolicy::new().limit("9 per minute"))
    ///     .build()?;
    /// assert_eq!(limiter.unmatched_routes(&["/login", "/search"]), ["/logn"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn unmatched_routes(&self, known: &[&str]) -> Vec<String> {
        let inner = &self.inner;
        let mut unmatched: Vec<String> = inner
            .routes
            .exact
            .keys()
            .filter(|route| !known.contains(&route.as_str()))
            .cloned()
            .collect();
        for (route, methods) in &inner.routes.by_method {
            if !known.contains(&route.as_str()) {
                unmatched.extend(methods.iter().map(|(m, _)| format!("{m} {route}")));
            }
        }
        unmatched.extend(
            inner
                .routes
                .prefixes
                .iter()
                .filter(|(prefix, _)| !known.iter().any(|k| k.starts_with(prefix.as_str())))
                .map(|(prefix, _)| format!("{prefix}*")),
        );
        unmatched.sort();
        unmatched
    }

    /// Logs, at `warn`, every configured route policy that matches none of `known` (see
    /// [`Limiter::unmatched_routes`]); `known_as` says where the known routes come from
    /// ("registered with the Tide middleware"). Returns how many it reported.
    pub fn warn_unmatched_routes(&self, known: &[&str], known_as: &str) -> usize {
        let unmatched = self.unmatched_routes(known);
        for route in &unmatched {
            tracing::warn!(target: "ratekeeper", route = %route, "a route policy for {route:?} matches no route {known_as}: its limits never apply, and the route it was meant for counts under the defaults (a typo in the pattern?)");
        }
        unmatched.len()
    }
}
