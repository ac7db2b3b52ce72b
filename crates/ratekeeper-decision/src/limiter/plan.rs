//! What a request is charged: its route's policy applied, its identity, and a charge per limit
//! of every scope it is charged in, each scope's charges added by a method of its own.

use core::{net::IpAddr, sync::atomic::Ordering};
use std::borrow::Cow;

use ratekeeper_core::{Limit, StrategyKind, Unit};
use smallvec::SmallVec;

use ratekeeper_storage::{Charge, Key, ScopePath, StorageError, Verdict};

use super::{
    Inner, Limiter,
    keys::{KeyParts, ScopeParts, uppercase},
    routes::{Compiled, RouteLimits},
};
use crate::{
    decision::{Kind, Scope},
    key::{Identity, Value, Who},
    keyed::Keyed,
    outage::FallbackScope,
    policy::{InFlight, LimitSet, RequestPredicate},
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
    /// Whether the request takes in-flight slots (its charges of [`Scope::InFlight`]).
    pub(super) holds: bool,
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
    #[inline]
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
        if self.inner.scopes.in_flight.any || !compiled.policy.in_flight.is_empty() {
            planner.in_flight(plan, identity);
        }
        if let Some(key) = keys.fallback {
            // Moved through, not cloned: each charge is rebuilt with the key in place.
            plan.charges = core::mem::take(&mut plan.charges)
                .into_iter()
                .map(|c| match c.cost {
                    0 => c,
                    _ => c.with_fallback_key(key.clone()),
                })
                .collect();
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
    /// Whether the request is charged in each scope.
    application: bool,
    defaults: bool,
    meta: bool,
    /// The request's method, upper case (when some scope counts methods apart).
    method: &'m str,
    /// The key parts of the route's scopes (the method, when the route counts it apart).
    parts: KeyParts<'m>,
}

impl<'a: 'm, 'm> Planner<'a, 'm> {
    #[inline(always)]
    fn new(
        inner: &'a Inner,
        compiled: &'a Compiled,
        req: &'a RequestView<'a>,
        ip: Option<IpAddr>,
        method: &'m str,
    ) -> Self {
        let policy = &compiled.policy;
        let options = &inner.scopes.options;
        let parts = KeyParts {
            method: policy.per_method.then_some(method),
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
        Self {
            inner,
            compiled,
            req,
            ip,
            costs,
            route_limits: own.filter(|l| !route_exempt && !l.is_empty()),
            route_exempt,
            application,
            defaults,
            meta,
            method,
            parts,
        }
    }

    /// The key scopes of the application limits.
    fn application_parts(&self) -> ScopeParts<'m> {
        let per_method = self.inner.scopes.options.application_per_method;
        self.parts
            .of(&self.inner.paths.app, per_method.then_some(self.method))
    }

    /// The key scopes of the route's limits (or its shared scope's), and which scope that is.
    fn route_parts(&self) -> (ScopeParts<'m>, Scope) {
        let paths = &self.inner.paths;
        match &self.compiled.policy.shared {
            Some(name) => (self.parts.of(&paths.shared, Some(name)), Scope::Shared),
            None => (
                self.parts.of_route(&paths.route, self.req.route()),
                Scope::Route,
            ),
        }
    }

    /// The key scopes of the default limits: per route, and per method when they count
    /// methods apart.
    fn default_parts(&self) -> ScopeParts<'m> {
        let per_method = self.compiled.policy.per_method || self.inner.scopes.defaults_per_method;
        let parts = KeyParts {
            method: per_method.then_some(self.method),
        };
        parts.of_route(&self.inner.paths.default, self.req.route())
    }

    /// The key scopes of whom in-memory fallback limits count the request against.
    fn fallback_parts(&self) -> Option<ScopeParts<'m>> {
        let path = &self.inner.paths.fallback;
        self.inner.fallback_scope.map(|scope| match scope {
            FallbackScope::Route => self.parts.of(path, Some(self.req.route())),
            FallbackScope::Client => self.parts.of(path, None),
        })
    }

    /// Every key of the identity the request is charged under, built in one allocation and
    /// handed out by scope.
    #[inline(always)]
    fn keys(&self, identity: &Who<'_>) -> ScopeKeys {
        // The order keys are built in, and handed out in below.
        let scopes = [
            self.application.then(|| self.application_parts()),
            self.route_limits.as_ref().map(|_| self.route_parts().0),
            self.defaults.then(|| self.default_parts()),
            self.meta
                .then(|| self.parts.of(&self.inner.paths.meta, None)),
            self.fallback_parts(),
        ];
        let lists: SmallVec<[(&ScopePath, &[&str]); 5]> =
            scopes.iter().flatten().map(ScopeParts::as_list).collect();
        let mut built = identity.keys_under(&lists);
        let mut next = |i: usize| scopes[i].and_then(|_| built.next());
        ScopeKeys {
            application: next(0),
            route: next(1),
            defaults: next(2),
            meta: next(3),
            fallback: next(4),
        }
    }

    /// The application limits, then their keyed groups.
    #[inline(always)]
    fn application(&self, plan: &mut Plan, key: Option<Key>) -> Result<(), Early<'a>> {
        if !self.application {
            return Ok(());
        }
        let scopes = &self.inner.scopes;
        let (limits, keyed) = (&scopes.application, &scopes.keyed.application);
        let parts = self.application_parts();
        self.limiter_wide(
            plan,
            key,
            (limits, keyed),
            parts,
            self.costs.application,
            Scope::Application,
        )
    }

    /// The route's own limits (or its shared scope's), then its keyed groups.
    #[inline(always)]
    fn route(&self, plan: &mut Plan, key: Option<Key>) -> Result<(), Early<'a>> {
        let (parts, scope) = self.route_parts();
        if let (Some(limits), Some(key)) = (&self.route_limits, key) {
            plan.push(key, limits, self.inner.strategy, self.costs.route, scope);
        }
        if self.route_exempt {
            return Ok(());
        }
        self.keyed(plan, &self.compiled.keyed, parts, self.costs.route, scope)
    }

    /// The default limits, then their keyed groups.
    #[inline(always)]
    fn defaults(&self, plan: &mut Plan, key: Option<Key>) -> Result<(), Early<'a>> {
        if !self.defaults {
            return Ok(());
        }
        let scopes = &self.inner.scopes;
        let (limits, keyed) = (&scopes.defaults, &scopes.keyed.defaults);
        let parts = self.default_parts();
        self.limiter_wide(
            plan,
            key,
            (limits, keyed),
            parts,
            self.costs.defaults,
            Scope::Default,
        )
    }

    /// Limits the limiter sets for every route (the application's or the defaults), counted
    /// under `key` when there is one, then their keyed groups.
    #[inline(always)]
    fn limiter_wide(
        &self,
        plan: &mut Plan,
        key: Option<Key>,
        (limits, keyed): (&[Limit], &'a [Keyed]),
        parts: ScopeParts<'_>,
        cost: u64,
        scope: Scope,
    ) -> Result<(), Early<'a>> {
        if let Some(key) = key {
            plan.push(key, limits, self.inner.strategy, cost, scope);
        }
        self.keyed(plan, keyed, parts, cost, scope)
    }

    /// The route's guard limits, by client address whatever the key function.
    #[inline(always)]
    fn guard(&self, plan: &mut Plan) {
        let guard = &self.compiled.guard;
        if !guard.is_empty()
            && let Identity::Key(address) = self.inner.clients.addressing.identity(self.ip)
            && let Some(key) = address
                .keys_under(&[self
                    .parts
                    .of_route(&self.inner.paths.guard, self.req.route())
                    .as_list()])
                .next()
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
    #[inline(always)]
    fn meta(&self, plan: &mut Plan, key: Option<Key>) -> Result<(), Early<'a>> {
        if !self.meta {
            return Ok(());
        }
        let parts = self.parts.of(&self.inner.paths.meta, None);
        if let Some(key) = key {
            plan.gates(key, &self.inner.scopes.meta, self.inner.strategy);
        }
        self.keyed(plan, &self.inner.scopes.keyed.meta, parts, 1, Scope::Meta)
    }

    /// A slot per in-flight limit: the route's (or its shared scope's, or the defaults'), then
    /// the application's; per client under the request's identity, in all under one of its own.
    /// Each is a moving window whose window is the lease: a slot counts until it is given back
    /// or its lease ends.
    #[inline(always)]
    fn in_flight(&self, plan: &mut Plan, identity: &Who<'_>) {
        let policy = &self.compiled.policy;
        let scopes = &self.inner.scopes.in_flight;
        let route = match policy.in_flight {
            _ if self.route_exempt => InFlight::default(),
            own if !own.is_empty() => own,
            _ if self.defaults => scopes.defaults,
            _ => InFlight::default(),
        };
        let application = match policy.exempt.application {
            true => InFlight::default(),
            false => scopes.application,
        };
        if route.is_empty() && application.is_empty() {
            return;
        }
        self.in_flight_slots(plan, identity, route, application);
    }

    #[inline(never)]
    fn in_flight_slots(
        &self,
        plan: &mut Plan,
        identity: &Who<'_>,
        route: InFlight,
        application: InFlight,
    ) {
        let path = &self.inner.paths.in_flight;
        let name = match &self.compiled.policy.shared {
            Some(name) => name.as_str(),
            None => self.req.route(),
        };
        let lease = self.inner.scopes.in_flight.lease_secs;
        let everyone = Who {
            namespace: "all",
            value: Value::Borrowed("*"),
        };
        let route_items = [name];
        let slots = [
            (route.per_client, identity, &route_items[..]),
            (route.total, &everyone, &route_items[..]),
            (application.per_client, identity, &[][..]),
            (application.total, &everyone, &[][..]),
        ];
        for (n, who, items) in slots {
            // (The lease was checked when the limiter was built.)
            let Some(limit) = n.and_then(|n| Limit::new(n, lease, Unit::Second).ok()) else {
                continue;
            };
            if let Some(key) = who.keys_under(&[(path, items)]).next() {
                plan.charges
                    .push(Charge::new(key, limit, StrategyKind::MovingWindow, 1).holding());
                plan.scopes.push(Scope::InFlight);
                plan.holds = true;
            }
        }
    }

    /// A charge per limit of each of a scope's groups with key functions of their own, under
    /// the key the group's function gives (under `parts` and the group's tag); a group that
    /// gives no identity is skipped. Out of line: most limiters have none.
    #[inline(always)]
    fn keyed(
        &self,
        plan: &mut Plan,
        groups: &'a [Keyed],
        parts: ScopeParts<'_>,
        cost: u64,
        scope: Scope,
    ) -> Result<(), Early<'a>> {
        if groups.is_empty() {
            return Ok(());
        }
        self.keyed_groups(plan, groups, parts, cost, scope)
    }

    #[inline(never)]
    fn keyed_groups(
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
