//! The compiled route policies, and which one applies to a request.

use std::sync::Arc;

use ratekeeper_core::Limit;

use super::Limiter;
use crate::{
    headers::policy_field,
    keyed::{Keyed, limits_of},
    policy::{LimitSet, RoutePolicy},
    request::RequestView,
};

/// A route's own limits: fixed, or chosen per request.
#[derive(Clone)]
pub(crate) enum RouteLimits {
    Set(LimitSet),
    Dynamic(Arc<dyn Fn(&RequestView<'_>) -> LimitSet + Send + Sync>),
}

/// A route policy with its limit strings parsed.
#[derive(Clone)]
pub(crate) struct Compiled {
    pub(super) limits: Option<RouteLimits>,
    /// The route's limits counted by key functions of their own.
    pub(super) keyed: Vec<Keyed>,
    pub(super) guard: LimitSet,
    pub(super) policy: RoutePolicy,
    /// The `RateLimit-Policy` field of the limits the route charges, rendered at build (and
    /// those limits): `None` when they vary by request (dynamic limits).
    pub(super) policy_field: Option<(Vec<Limit>, Arc<str>)>,
}

impl Compiled {
    /// The limits this route charges that are known before any request: its own (unless they
    /// are dynamic), its keyed groups' and its guard's.
    pub(crate) fn static_limits(&self) -> impl Iterator<Item = &Limit> {
        let own: &[Limit] = match &self.limits {
            Some(RouteLimits::Set(set)) => set,
            _ => &[],
        };
        own.iter()
            .chain(self.keyed.iter().flat_map(|k| k.limits.iter()))
            .chain(self.guard.iter())
    }

    pub(crate) fn new(
        limits: Option<RouteLimits>,
        keyed: Vec<Keyed>,
        guard: LimitSet,
        policy: RoutePolicy,
        application: &[Limit],
        defaults: &[Limit],
    ) -> Self {
        let mut compiled = Self {
            limits,
            keyed,
            guard,
            policy,
            policy_field: None,
        };
        compiled.policy_field = compiled.fixed_limits(application, defaults).map(|limits| {
            let field = policy_field(&limits);
            (limits, field)
        });
        compiled
    }

    /// The limits this route charges on every request, in the plan's order (meta gates aside),
    /// when they do not depend on the request.
    fn fixed_limits(&self, application: &[Limit], defaults: &[Limit]) -> Option<Vec<Limit>> {
        let policy = &self.policy;
        let route = match &self.limits {
            Some(RouteLimits::Dynamic(_)) => return None,
            Some(RouteLimits::Set(set)) => Some(&set[..]),
            None => None,
        };
        let mut out = Vec::new();
        if !policy.exempt.application {
            out.extend_from_slice(application);
        }
        out.extend_from_slice(route.unwrap_or_default());
        out.extend(limits_of(&self.keyed));
        if (!self.has_own_limits() || policy.combine) && !policy.exempt.defaults {
            out.extend_from_slice(defaults);
        }
        out.extend_from_slice(&self.guard);
        Some(out)
    }

    /// Whether the route has limits of its own (else it counts under the defaults).
    fn has_own_limits(&self) -> bool {
        self.limits.is_some() || !self.keyed.is_empty()
    }
}

impl Limiter {
    pub(super) fn policy<'a>(&'a self, req: &RequestView<'a>) -> &'a Compiled {
        let inner = &self.inner;
        if let Some(p) = req.policy().and_then(|p| p.for_limiter(inner)) {
            return p;
        }
        let (method, route) = (req.method(), req.route());
        if let Some(methods) = inner.routes.by_method.get(route)
            && let Some((_, p)) = methods.iter().find(|(m, _)| m.eq_ignore_ascii_case(method))
        {
            return p;
        }
        if let Some(p) = inner.routes.exact.get(route) {
            return p;
        }
        inner
            .routes
            .prefixes
            .iter()
            .find(|(prefix, _)| route.starts_with(prefix.as_str()))
            .map_or(&inner.routes.fallback, |(_, p)| p)
    }
}
