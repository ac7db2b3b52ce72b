//! What a request is charged: its route's policy applied, its identity, and a charge per limit
//! of every scope it is charged in, each scope's charges added by a method of its own.

use core::{net::IpAddr, sync::atomic::Ordering};
use std::borrow::Cow;

use ratekeeper_core::{Limit, StrategyKind};
use smallvec::SmallVec;

use ratekeeper_storage::{Charge, Key, ScopePath, StorageError, Verdict};

use super::{
    Inner, Limiter,
    keys::{KeyParts, ScopeParts, uppercase},
    routes::{Compiled, RouteLimits},
};
use crate::{
    decision::{Kind, Scope},
    key::{Identity, Who},
    keyed::Keyed,
    outage::FallbackScope,
    policy::{LimitSet, RequestPredicate},
    request::RequestView,
};

/// Charges per request held inline (no heap allocation).
pub(super) const INLINE_CHARGES: usize = 8;

/// The charges of one request, and the scope each belongs to.
#[derive(Default)]
pub(super) struct Plan {
    pub(super) charges: SmallVec<[Charge; INLINE_CHARGES]>,
    pub(super) scopes: SmallVec<[Scope; INLINE_CHARGES]>,
    /// What the request costs on its route (application limits and gates aside).
    pub(super) cost: u64,
    /// Whether the default limits were charged at that cost (not at the defaults' own).
    pub(super) defaults_at_route_cost: bool,
}

impl Plan {
    /// `verdict`, if it has one status per charge (a store that answers otherwise is an
    /// error, not a panic).
    pub(super) fn answered_by(&self, verdict: Verdict) -> Result<Verdict, StorageError> {
        if verdict.statuses.len() == self.charges.len() {
            return Ok(verdict);
        }
        Err(StorageError::protocol(
            "storage",
            format!(
                "{} statuses for a batch of {} charges",
                verdict.statuses.len(),
                self.charges.len()
            ),
        ))
    }

    /// A charge per limit under `key` (moved into the last one: a key is a string).
    fn push(
        &mut self,
        key: Key,
        limits: &[Limit],
        strategy: StrategyKind,
        cost: u64,
        scope: Scope,
    ) {
        let Some((&last, rest)) = limits.split_last() else {
            return;
        };
        for &l in rest {
            self.charges
                .push(Charge::new(key.clone(), l, strategy, cost));
            self.scopes.push(scope);
        }
        self.charges.push(Charge::new(key, last, strategy, cost));
        self.scopes.push(scope);
    }
}

impl Plan {
    /// A meta gate per limit under `key`: room for the request is needed under each, and a
    /// rejected request counts its breach there.
    fn gates(&mut self, key: Key, limits: &[Limit], strategy: StrategyKind) {
        let gate = |key: Key, l: Limit| Charge::gate(key, l, strategy, 1).charging_on_reject(1);
        let Some((&last, rest)) = limits.split_last() else {
            return;
        };
        for &l in rest {
            self.charges.push(gate(key.clone(), l));
            self.scopes.push(Scope::Meta);
        }
        self.charges.push(gate(key, last));
        self.scopes.push(Scope::Meta);
    }
}

/// Why a request is charged nothing.
pub(super) enum Early<'a> {
    /// Exempt or unlimited.
    Free(Kind),
    /// A credential is required in this header.
    Unauthorized(&'a str),
    /// The client address is unknown and such requests are refused.
    UnknownClient,
}

impl Limiter {
    /// Who is asking and what it would cost: the route's policy, the identity, the plan of
    /// charges (into `plan`); or why nothing is charged.
    pub(super) fn prepare<'a>(
        &'a self,
        req: &'a RequestView<'a>,
        plan: &mut Plan,
    ) -> Result<&'a Compiled, Early<'a>> {
        if self.inner.disabled {
            return Err(Early::Free(Kind::Unlimited));
        }
        let compiled = self.policy(req);
        if compiled.policy.exempt.all {
            return Err(Early::Free(Kind::Exempt));
        }
        let ip = req.client_ip();
        if ip.is_some_and(|ip| self.inner.clients.exempt.iter().any(|n| n.contains(ip)))
            || self.inner.clients.request_filters.iter().any(|f| f(req))
        {
            return Err(Early::Free(Kind::Exempt));
        }
        let key = compiled
            .policy
            .key
            .as_ref()
            .unwrap_or(&self.inner.clients.key);
        if ip.is_none()
            && !self
                .inner
                .clients
                .warned_unknown_client
                .swap(true, Ordering::Relaxed)
        {
            tracing::warn!(target: "ratekeeper", route = req.route(), policy = ?self.inner.clients.addressing.unknown,
                "a request without a client address (no peer address, e.g. a Unix socket); further ones are not logged");
        }
        let identity = match key.identify(req, ip, &self.inner.clients.addressing) {
            Identity::Key(identity) => identity,
            Identity::Unlimited => {
                tracing::debug!(target: "ratekeeper", route = req.route(), "empty key: request not limited");
                return Err(Early::Free(Kind::Unlimited));
            }
            Identity::Unauthorized(header) => return Err(Early::Unauthorized(header)),
            Identity::UnknownClient => return Err(Early::UnknownClient),
        };
        self.plan(plan, compiled, req, &identity, ip)?;
        if plan.scopes.iter().all(|s| *s == Scope::Meta) {
            return Err(Early::Free(Kind::Unlimited));
        }
        Ok(compiled)
    }

    /// What to charge: the application limits, the route's (or a shared scope's, or the
    /// defaults), the route's guard limits by client address, and a gate per meta limit, each
    /// under its storage key; each scope's limits with key functions of their own after its
    /// others. `Err` when such a key function refuses the request.
    fn plan<'a>(
        &'a self,
        plan: &mut Plan,
        compiled: &'a Compiled,
        req: &'a RequestView<'a>,
        identity: &Who<'_>,
        ip: Option<IpAddr>,
    ) -> Result<(), Early<'a>> {
        let policy = &compiled.policy;
        let options = &self.inner.scopes.options;
        let defaults_per_method = policy.per_method || self.inner.scopes.defaults_per_method;
        let method = if defaults_per_method || options.application_per_method {
            uppercase(req.method())
        } else {
            Cow::Borrowed("")
        };
        let planner = Planner::new(&self.inner, compiled, req, ip, &method);
        let keys = planner.keys(identity);
        plan.cost = planner.costs.route;
        plan.defaults_at_route_cost = policy.cost.is_some() || options.defaults_cost.is_none();
        planner.application(plan, keys.application)?;
        planner.route(plan, keys.route)?;
        planner.defaults(plan, keys.defaults)?;
        planner.guard(plan);
        planner.meta(plan, keys.meta)?;
        if let Some(key) = keys.fallback {
            for charge in plan.charges.iter_mut().filter(|c| c.cost > 0) {
                charge.fallback_key = Some(key.clone());
            }
        }
        Ok(())
    }
}

/// What each group of a request's charges costs.
struct Costs {
    /// The route's (and the guard's).
    route: u64,
    /// The default limits': the route's cost, else their own.
    defaults: u64,
    /// The application limits': their own (1 unless configured).
    application: u64,
}

/// The storage keys of a request's identity, one per scope it is charged in.
#[derive(Default)]
struct ScopeKeys {
    application: Option<Key>,
    route: Option<Key>,
    defaults: Option<Key>,
    meta: Option<Key>,
    /// Whom in-memory fallback limits count the request against.
    fallback: Option<Key>,
}

/// One request's planning: which scopes it is charged in (decided once), at what cost, under
/// which keys; one method per scope adds that scope's charges.
struct Planner<'a, 'm> {
    inner: &'a Inner,
    compiled: &'a Compiled,
    req: &'a RequestView<'a>,
    ip: Option<IpAddr>,
    costs: Costs,
    /// The route's own limits, unless it has none or the request is exempt from them.
    route_limits: Option<LimitSet>,
    /// Whether the route's limits (and its keyed groups) are skipped by `exempt_when`.
    route_exempt: bool,
    /// The key scopes of each scope the request is charged in (`None`: not charged there).
    application: Option<ScopeParts<'m>>,
    route: (ScopeParts<'m>, Scope),
    defaults: Option<ScopeParts<'m>>,
    meta: Option<ScopeParts<'m>>,
    fallback: Option<ScopeParts<'m>>,
    guard: ScopeParts<'m>,
}

impl<'a: 'm, 'm> Planner<'a, 'm> {
    fn new(
        inner: &'a Inner,
        compiled: &'a Compiled,
        req: &'a RequestView<'a>,
        ip: Option<IpAddr>,
        method: &'m str,
    ) -> Self {
        let policy = &compiled.policy;
        let options = &inner.scopes.options;
        let paths = &inner.paths;
        let parts = KeyParts {
            method: policy.per_method.then_some(method),
        };
        let default_parts = KeyParts {
            method: (policy.per_method || inner.scopes.defaults_per_method).then_some(method),
        };
        let route_cost = policy.cost.as_ref().map_or(1, |f| f(req));
        let costs = Costs {
            route: route_cost,
            defaults: match (&policy.cost, &options.defaults_cost) {
                (None, Some(f)) => f(req),
                _ => route_cost,
            },
            application: options.application_cost.as_ref().map_or(1, |f| f(req)),
        };
        let holds = |p: &Option<RequestPredicate>| p.as_ref().is_some_and(|f| f(req));
        let any = |limits: &[Limit], groups: &[Keyed]| !limits.is_empty() || !groups.is_empty();
        let route_exempt = holds(&policy.exempt_when);
        let own = compiled.limits.as_ref().map(|l| match l {
            RouteLimits::Set(s) => s.clone(),
            RouteLimits::Dynamic(f) => f(req),
        });
        let charges_defaults = (own.is_none() && compiled.keyed.is_empty()) || policy.combine;
        let application = !policy.exempt.application
            && any(&inner.scopes.application, &inner.scopes.keyed.application)
            && !holds(&inner.scopes.application_exempt_when);
        let defaults = charges_defaults
            && !policy.exempt.defaults
            && any(&inner.scopes.defaults, &inner.scopes.keyed.defaults)
            && !route_exempt
            && !holds(&inner.scopes.defaults_exempt_when);
        let meta = !policy.exempt.meta && any(&inner.scopes.meta, &inner.scopes.keyed.meta);
        let route = match &policy.shared {
            Some(name) => (parts.of(&paths.shared, Some(name)), Scope::Shared),
            None => (parts.of_route(&paths.route, req.route()), Scope::Route),
        };
        Self {
            inner,
            compiled,
            req,
            ip,
            costs,
            route_limits: own.filter(|l| !route_exempt && !l.is_empty()),
            route_exempt,
            application: application
                .then(|| parts.of(&paths.app, options.application_per_method.then_some(method))),
            route,
            defaults: defaults.then(|| default_parts.of_route(&paths.default, req.route())),
            meta: meta.then(|| parts.of(&paths.meta, None)),
            fallback: inner.fallback_scope.map(|scope| match scope {
                FallbackScope::Route => parts.of(&paths.fallback, Some(req.route())),
                FallbackScope::Client => parts.of(&paths.fallback, None),
            }),
            guard: parts.of_route(&paths.guard, req.route()),
        }
    }

    /// Every key of the identity the request is charged under, built in one allocation and
    /// handed out by scope.
    fn keys(&self, identity: &Who<'_>) -> ScopeKeys {
        let route = self.route_limits.as_ref().map(|_| self.route.0);
        let scopes = [
            self.application,
            route,
            self.defaults,
            self.meta,
            self.fallback,
        ];
        let lists: SmallVec<[(&ScopePath, &[&str]); 5]> =
            scopes.iter().flatten().map(ScopeParts::as_list).collect();
        let mut built = identity.keys_under(&lists);
        let [application, route, defaults, meta, fallback] =
            scopes.map(|scope| scope.and_then(|_| built.next()));
        ScopeKeys {
            application,
            route,
            defaults,
            meta,
            fallback,
        }
    }

    /// The application limits, then their keyed groups.
    fn application(&self, plan: &mut Plan, key: Option<Key>) -> Result<(), Early<'a>> {
        let Some(parts) = self.application else {
            return Ok(());
        };
        let (inner, cost) = (self.inner, self.costs.application);
        if let Some(key) = key {
            plan.push(
                key,
                &inner.scopes.application,
                inner.strategy,
                cost,
                Scope::Application,
            );
        }
        self.keyed(
            plan,
            &inner.scopes.keyed.application,
            parts,
            cost,
            Scope::Application,
        )
    }

    /// The route's own limits (or its shared scope's), then its keyed groups.
    fn route(&self, plan: &mut Plan, key: Option<Key>) -> Result<(), Early<'a>> {
        let (parts, scope) = self.route;
        if let (Some(limits), Some(key)) = (&self.route_limits, key) {
            plan.push(key, limits, self.inner.strategy, self.costs.route, scope);
        }
        if self.route_exempt {
            return Ok(());
        }
        self.keyed(plan, &self.compiled.keyed, parts, self.costs.route, scope)
    }

    /// The default limits, then their keyed groups.
    fn defaults(&self, plan: &mut Plan, key: Option<Key>) -> Result<(), Early<'a>> {
        let Some(parts) = self.defaults else {
            return Ok(());
        };
        let (inner, cost) = (self.inner, self.costs.defaults);
        if let Some(key) = key {
            plan.push(
                key,
                &inner.scopes.defaults,
                inner.strategy,
                cost,
                Scope::Default,
            );
        }
        self.keyed(
            plan,
            &inner.scopes.keyed.defaults,
            parts,
            cost,
            Scope::Default,
        )
    }

    /// The route's guard limits, by client address whatever the key function.
    fn guard(&self, plan: &mut Plan) {
        let guard = &self.compiled.guard;
        if !guard.is_empty()
            && let Identity::Key(address) = self.inner.clients.addressing.identity(self.ip)
            && let Some(key) = address.keys_under(&[self.guard.as_list()]).next()
        {
            plan.push(
                key,
                guard,
                self.inner.strategy,
                self.costs.route,
                Scope::Guard,
            );
        }
    }

    /// A gate per meta limit (the request needs room under each; when it is rejected all the
    /// same, by its own limits, the gate counts the breach in this call), then the keyed
    /// groups' gates.
    fn meta(&self, plan: &mut Plan, key: Option<Key>) -> Result<(), Early<'a>> {
        let Some(parts) = self.meta else {
            return Ok(());
        };
        if let Some(key) = key {
            plan.gates(key, &self.inner.scopes.meta, self.inner.strategy);
        }
        self.keyed(plan, &self.inner.scopes.keyed.meta, parts, 1, Scope::Meta)
    }

    /// A charge per limit of each of a scope's groups with key functions of their own, under
    /// the key the group's function gives (under `parts` and the group's tag); a group that
    /// gives no identity is skipped. Out of line: most limiters have none.
    #[inline(never)]
    fn keyed(
        &self,
        plan: &mut Plan,
        groups: &'a [Keyed],
        parts: ScopeParts<'_>,
        cost: u64,
        scope: Scope,
    ) -> Result<(), Early<'a>> {
        let strategy = self.inner.strategy;
        for group in groups {
            let who = match group
                .key
                .identify(self.req, self.ip, &self.inner.clients.addressing)
            {
                Identity::Key(who) => who,
                Identity::Unlimited => continue,
                Identity::Unauthorized(header) => return Err(Early::Unauthorized(header)),
                Identity::UnknownClient => return Err(Early::UnknownClient),
            };
            let tagged = parts.tagged(&group.tag);
            if let Some(key) = who.keys_under(&[tagged.as_list()]).next() {
                match scope {
                    Scope::Meta => plan.gates(key, &group.limits, strategy),
                    _ => plan.push(key, &group.limits, strategy, cost, scope),
                }
            }
        }
        Ok(())
    }
}
