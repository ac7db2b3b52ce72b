//! `Limiter`: configuration validated once, then one decision per request.

use core::{
    fmt,
    future::Future,
    net::IpAddr,
    pin::Pin,
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
};
use std::{borrow::Cow, collections::HashMap, sync::Arc};

use ratekeeper_core::{Clock, Duration, Limit, RetryAfter, StrategyKind, Timestamp};
use smallvec::SmallVec;

use ratekeeper_storage::{Charge, Key, Op, ScopePath, Storage, StorageError, Verdict};

use crate::{
    builder::{LimiterBuilder, ScopeOptions},
    client_ip::ProxyConfig,
    decision::{Answer, Decision, Kind, Pending, Scope, StatusPredicate},
    error::DecisionError,
    field::RateLimitHeaders,
    headers::{HeaderFacts, HeaderOptions, Policy, policy_field, render_into},
    key::{Addressing, Identity, KeyFunction, Who},
    keyed::{Keyed, limits_of},
    metrics,
    network::Network,
    outage::FallbackScope,
    policy::{Breach, BreachHook, LimitSet, RequestPredicate, ResponseHook, RoutePolicy},
    request::RequestView,
};

#[derive(Clone)]
pub(crate) enum RouteLimits {
    Set(LimitSet),
    Dynamic(Arc<dyn Fn(&RequestView<'_>) -> LimitSet + Send + Sync>),
}

/// Charges per request held inline (no heap allocation).
const INLINE_CHARGES: usize = 8;

/// The charges of one request, and the scope each belongs to.
#[derive(Default)]
struct Plan {
    charges: SmallVec<[Charge; INLINE_CHARGES]>,
    scopes: SmallVec<[Scope; INLINE_CHARGES]>,
    /// What the request costs on its route (application limits and gates aside).
    cost: u64,
    /// Whether the default limits were charged at that cost (not at the defaults' own).
    defaults_at_route_cost: bool,
}

impl Plan {
    /// `verdict`, if it has one status per charge (a store that answers otherwise is an
    /// error, not a panic).
    fn answered_by(&self, verdict: Verdict) -> Result<Verdict, StorageError> {
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
    /// A charge per limit of each group under the key its key function gives `req` (under
    /// `parts` and the group's tag); a group that gives no identity is skipped.
    #[inline(never)]
    #[expect(clippy::too_many_arguments, reason = "the plan's context, passed once")]
    fn keyed<'a>(
        &mut self,
        groups: &'a [Keyed],
        addressing: &Addressing,
        req: &'a RequestView<'a>,
        ip: Option<IpAddr>,
        parts: ScopeParts<'_>,
        cost: u64,
        scope: Scope,
        strategy: StrategyKind,
    ) -> Result<(), Early<'a>> {
        for group in groups {
            let who = match group.key.identify(req, ip, addressing) {
                Identity::Key(who) => who,
                Identity::Unlimited => continue,
                Identity::Unauthorized(header) => return Err(Early::Unauthorized(header)),
                Identity::UnknownClient => return Err(Early::UnknownClient),
            };
            let tagged = parts.tagged(&group.tag);
            if let Some(key) = who.keys_under(&[tagged.as_list()]).next() {
                match scope {
                    Scope::Meta => self.gates(key, &group.limits, strategy),
                    _ => self.push(key, &group.limits, strategy, cost, scope),
                }
            }
        }
        Ok(())
    }

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
enum Early<'a> {
    /// Exempt or unlimited.
    Free(Kind),
    /// A credential is required in this header.
    Unauthorized(&'a str),
    /// The client address is unknown and such requests are refused.
    UnknownClient,
}

/// One limit that applies to a request, and where it stands ([`Limiter::current_limits`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CurrentLimit {
    /// Where the limit comes from.
    pub scope: Scope,
    /// The limit.
    pub limit: Limit,
    /// What is left of it for this client (for a meta limit: breaches left).
    pub remaining: u64,
    /// When it resets.
    pub reset: Timestamp,
}

/// Where [`Limiter::check`] stands after the stages that need no waiting.
#[expect(
    clippy::large_enum_variant,
    reason = "returned once per decision, and boxing the decision would allocate"
)]
enum Checked<'a> {
    Done(Result<Decision, DecisionError>),
    /// The rest, waiting for a store that answers asynchronously.
    Waiting(Pin<Box<dyn Future<Output = Result<Decision, DecisionError>> + Send + 'a>>),
}

/// A route policy with its limit strings parsed.
#[derive(Clone)]
pub(crate) struct Compiled {
    limits: Option<RouteLimits>,
    /// The route's limits counted by key functions of their own.
    keyed: Vec<Keyed>,
    guard: LimitSet,
    policy: RoutePolicy,
    /// The `RateLimit-Policy` field of the limits the route charges, rendered at build (and
    /// those limits): `None` when they vary by request (dynamic limits).
    policy_field: Option<(Vec<Limit>, Arc<str>)>,
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

/// The default, application and meta limits counted by key functions of their own.
pub(crate) struct KeyedScopes {
    pub(crate) application: Vec<Keyed>,
    pub(crate) defaults: Vec<Keyed>,
    pub(crate) meta: Vec<Keyed>,
}

pub(crate) struct Inner {
    pub(crate) defaults: LimitSet,
    pub(crate) application: LimitSet,
    pub(crate) meta: LimitSet,
    pub(crate) keyed: KeyedScopes,
    pub(crate) strategy: StrategyKind,
    pub(crate) storage: Arc<dyn Storage>,
    /// Every scope's prefix, encoded once.
    pub(crate) paths: ScopePaths,
    /// With in-memory fallback limits, whom they count against (each charge's
    /// `fallback_key`).
    pub(crate) fallback_scope: Option<FallbackScope>,
    pub(crate) key: KeyFunction,
    pub(crate) proxy: ProxyConfig,
    pub(crate) addressing: Addressing,
    pub(crate) warned_unknown_client: AtomicBool,
    pub(crate) headers: HeaderOptions,
    pub(crate) clock: Arc<dyn Clock + Send + Sync>,
    pub(crate) routes: HashMap<String, Compiled>,
    /// Per route, the policies of single methods (uppercase).
    pub(crate) method_routes: HashMap<String, Vec<(String, Compiled)>>,
    /// Route groups by prefix, the longest first.
    pub(crate) prefix_groups: Vec<(String, Compiled)>,
    pub(crate) fallback: Compiled,
    /// The application and default limits, each scope's keyed groups after its own: what a
    /// route policy compiled later combines with.
    pub(crate) application_all: Vec<Limit>,
    pub(crate) defaults_all: Vec<Limit>,
    pub(crate) on_breach: Option<BreachHook>,
    pub(crate) on_breach_response: Option<ResponseHook>,
    pub(crate) on_meta_breach: Option<ResponseHook>,
    /// The default and application limits' own options (Flask-Limiter's `default_limits_*`
    /// and `application_limits_*`).
    pub(crate) scope_options: ScopeOptions,
    /// Requests for which the default limits do not apply.
    pub(crate) defaults_exempt_when: Option<RequestPredicate>,
    /// Requests for which the application limits do not apply.
    pub(crate) application_exempt_when: Option<RequestPredicate>,
    /// Requests that are not limited at all.
    pub(crate) request_filters: Vec<RequestPredicate>,
    /// Client networks that are never limited.
    pub(crate) exempt_clients: Vec<Network>,
    /// The kill switch: no request is limited.
    pub(crate) disabled: bool,
    /// The default limits count each method apart on every route.
    pub(crate) defaults_per_method: bool,
    /// Shadow mode for every route.
    pub(crate) shadow: bool,
    /// Requests shadow mode served that would have been rejected.
    pub(crate) shadow_rejections: AtomicU64,
    /// Metric handles (nothing without the `metrics` feature).
    pub(crate) metrics: metrics::Recorded,
}

/// The rate limiter: cheap to clone, `Send + Sync`, one [`Limiter::check`] per request.
///
/// ```
/// use std::sync::Arc;
/// use ratekeeper_core::{ManualClock, Timestamp};
/// use ratekeeper_decision::{Limiter, RequestView, RoutePolicy};
///
/// # smol::block_on(async {
/// let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_700_000_000)));
/// let limiter = Limiter::builder()
///     .default_limits("200 per day; 50 per hour")
///     .route("/auth/login", RoutePolicy::new().limit("5 per minute"))
///     .route("/health", RoutePolicy::new().exempt())
///     .clock(clock)
///     .build()?;
///
/// let peer = "203.0.113.7".parse().unwrap();
/// let login = RequestView::new("POST", "/auth/login").with_peer(peer);
/// for _ in 0..5 {
///     assert!(limiter.check(&login).await?.is_allowed());
/// }
/// let sixth = limiter.check(&login).await?;
/// assert!(!sixth.is_allowed());
/// assert_eq!(sixth.retry_after_secs(), Some(60));
/// assert!(limiter.check(&RequestView::new("GET", "/health").with_peer(peer)).await?.is_allowed());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct Limiter {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for Limiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Limiter")
            .field("defaults", &self.inner.defaults)
            .field("application", &self.inner.application)
            .field("meta", &self.inner.meta)
            .field("strategy", &self.inner.strategy)
            .field("storage", &self.inner.storage)
            .field(
                "routes",
                &(self.inner.routes.len()
                    + self
                        .inner
                        .method_routes
                        .values()
                        .map(Vec::len)
                        .sum::<usize>()),
            )
            .finish_non_exhaustive()
    }
}

/// The default JSON body of a rejection.
fn default_body(breach: &Breach<'_>) -> String {
    let retry = breach
        .retry_after
        .map_or_else(|| "null".to_owned(), |s| s.to_string());
    format!(
        "{{\"error\": \"rate limit exceeded\", \"limit\": \"{}\", \"retry_after\": {retry}}}",
        breach.limit
    )
}

/// Whole seconds until `r`, rounded up and never 0, as `Retry-After` says it.
pub(crate) fn retry_secs(r: RetryAfter) -> Option<u64> {
    r.duration().map(|d| d.as_secs_ceil().max(1))
}

impl Limiter {
    /// Configure a limiter.
    pub fn builder() -> LimiterBuilder {
        LimiterBuilder::default()
    }

    /// The store.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.inner.storage
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock + Send + Sync> {
        &self.inner.clock
    }

    /// Forgets every counter of one client, in every scope and route (Flask-Limiter's `flask
    /// limiter clear`): the identity `namespace:value` a key function gives it (`"ip"` and the
    /// address for a client counted by address, as [`Limiter::current_limits`] shows in a key).
    /// Nothing else is touched.
    pub async fn clear_client(&self, namespace: &str, value: &str) -> Result<(), DecisionError> {
        let key = Key::new(namespace, value);
        self.inner
            .storage
            .clear_client(&key)
            .await
            .map_err(DecisionError::Storage)
    }

    /// How many requests shadow mode has served that would have been rejected
    /// ([`Kind::ShadowRejected`]), since the limiter was built.
    pub fn shadow_rejections(&self) -> u64 {
        self.inner.shadow_rejections.load(Ordering::Relaxed)
    }

    fn policy<'a>(&'a self, req: &RequestView<'a>) -> &'a Compiled {
        let inner = &self.inner;
        if let Some(p) = req.policy().and_then(|p| p.for_limiter(inner)) {
            return p;
        }
        let (method, route) = (req.method(), req.route());
        if let Some(methods) = inner.method_routes.get(route)
            && let Some((_, p)) = methods.iter().find(|(m, _)| m.eq_ignore_ascii_case(method))
        {
            return p;
        }
        if let Some(p) = inner.routes.get(route) {
            return p;
        }
        inner
            .prefix_groups
            .iter()
            .find(|(prefix, _)| route.starts_with(prefix.as_str()))
            .map_or(&inner.fallback, |(_, p)| p)
    }

    /// Decides one request: every applicable limit (application, route or defaults, meta gates)
    /// goes to the store as one atomic batch, so it is charged all or nothing in one round
    /// trip; a rejection counts its breach toward the meta limits in the same call.
    // Read top to bottom, the stages are: who is asking (`policy`, the key function), what to
    // charge (`plan`), the store's verdict (`apply`), and what it means (`deciding`,
    // `headers_for`, `outcome`).
    pub async fn check(&self, req: &RequestView<'_>) -> Result<Decision, DecisionError> {
        let req = &self.resolved(req);
        // Bound before the await, so that only the boxed future lives across it: an
        // in-process store's decisions stay small and on the stack.
        let later = match self.check_now(req) {
            Checked::Done(decision) => {
                self.inner.metrics.decided(req.route(), &decision);
                return decision;
            }
            Checked::Waiting(later) => later,
        };
        let decision = later.await;
        self.inner.metrics.decided(req.route(), &decision);
        decision
    }

    /// Every stage up to the store's verdict, and the rest when the store answers at once.
    fn check_now<'a>(&'a self, req: &'a RequestView<'a>) -> Checked<'a> {
        let mut plan = Plan::default();
        let compiled = match self.prepare(req, &mut plan) {
            Ok(compiled) => compiled,
            Err(early) => {
                return Checked::Done(Ok(match early {
                    Early::Free(kind) => Decision::free(kind),
                    Early::Unauthorized(header) => Decision::unauthorized(header),
                    Early::UnknownClient => Decision::unknown_client(),
                }));
            }
        };
        // An in-process store answers at once, without the boxed future of an async call.
        let started = self.inner.metrics.store_call();
        match self.inner.storage.apply_now(Op::Hit, &plan.charges) {
            Some(verdict) => {
                self.inner.metrics.store_answered(started, &verdict);
                Checked::Done(self.interpret(compiled, &plan, verdict, req))
            }
            // The store answers asynchronously (over the network): the plan waits in a future
            // of its own.
            None => Checked::Waiting(Box::pin(self.check_later(compiled, plan, req))),
        }
    }

    /// Who is asking and what it would cost: the route's policy, the identity, the plan of
    /// charges (into `plan`); or why nothing is charged.
    fn prepare<'a>(
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
        if ip.is_some_and(|ip| self.inner.exempt_clients.iter().any(|n| n.contains(ip)))
            || self.inner.request_filters.iter().any(|f| f(req))
        {
            return Err(Early::Free(Kind::Exempt));
        }
        let key = compiled.policy.key.as_ref().unwrap_or(&self.inner.key);
        if ip.is_none()
            && !self
                .inner
                .warned_unknown_client
                .swap(true, Ordering::Relaxed)
        {
            tracing::warn!(target: "ratekeeper", route = req.route(), policy = ?self.inner.addressing.unknown,
                "a request without a client address (no peer address, e.g. a Unix socket); further ones are not logged");
        }
        let identity = match key.identify(req, ip, &self.inner.addressing) {
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

    /// Every limit that applies to `req` and where it stands, charging nothing (Flask-Limiter's
    /// `current_limits`): the application, route (or default), guard and meta limits, in the
    /// order a decision charges them, on whatever store the limiter uses. Empty when nothing
    /// would be charged (an exempt route, a request filter, an empty key, the kill switch).
    ///
    /// ```
    /// use ratekeeper_decision::{Limiter, RequestView, Scope};
    ///
    /// # smol::block_on(async {
    /// let limiter = Limiter::builder().default_limits("10 per minute; 100 per day").build()?;
    /// let req = RequestView::new("GET", "/api").with_peer("10.0.0.1".parse()?);
    /// limiter.check(&req).await?;
    /// let now = limiter.current_limits(&req).await?;
    /// assert_eq!(now.len(), 2);
    /// assert_eq!((now[0].scope, now[0].remaining), (Scope::Default, 9));
    /// // Looking charged nothing.
    /// assert_eq!(limiter.current_limits(&req).await?[0].remaining, 9);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn current_limits(
        &self,
        req: &RequestView<'_>,
    ) -> Result<Vec<CurrentLimit>, DecisionError> {
        let mut plan = Plan::default();
        let req = &self.resolved(req);
        if self.prepare(req, &mut plan).is_err() {
            return Ok(Vec::new());
        }
        let storage = &self.inner.storage;
        let verdict = match storage.apply_now(Op::Test, &plan.charges) {
            Some(verdict) => verdict,
            None => storage.apply(Op::Test, &plan.charges).await,
        }
        .and_then(|verdict| plan.answered_by(verdict))
        .map_err(DecisionError::Storage)?;
        Ok(plan
            .charges
            .iter()
            .zip(&plan.scopes)
            .zip(verdict.statuses.iter())
            .map(|((charge, &scope), status)| CurrentLimit {
                scope,
                limit: charge.limit,
                remaining: status.remaining,
                reset: status.reset,
            })
            .collect())
    }

    /// The stages after a store that answers asynchronously.
    async fn check_later(
        &self,
        compiled: &Compiled,
        plan: Plan,
        req: &RequestView<'_>,
    ) -> Result<Decision, DecisionError> {
        let started = self.inner.metrics.store_call();
        let verdict = self.inner.storage.apply(Op::Hit, &plan.charges).await;
        self.inner.metrics.store_answered(started, &verdict);
        self.interpret(compiled, &plan, verdict, req)
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
        let inner = &self.inner;
        let policy = &compiled.policy;
        let defaults_per_method = policy.per_method || inner.defaults_per_method;
        let options = &inner.scope_options;
        let method = if defaults_per_method || options.application_per_method {
            uppercase(req.method())
        } else {
            Cow::Borrowed("")
        };
        let parts = KeyParts {
            method: policy.per_method.then_some(&*method),
        };
        let default_parts = KeyParts {
            method: defaults_per_method.then_some(&*method),
        };
        let cost = policy.cost.as_ref().map_or(1, |f| f(req));
        // The defaults at the route's cost, else at their own; the application limits at
        // theirs (1 unless configured).
        let defaults_cost = match (&policy.cost, &options.defaults_cost) {
            (None, Some(f)) => f(req),
            _ => cost,
        };
        let application_cost = options.application_cost.as_ref().map_or(1, |f| f(req));
        let route_limits = compiled.limits.as_ref().map(|l| match l {
            RouteLimits::Set(s) => s.clone(),
            RouteLimits::Dynamic(f) => f(req),
        });
        // The groups of charges that share a key, in the order they are charged; a group a
        // predicate exempts this request from is left out.
        let holds = |p: &Option<RequestPredicate>| p.as_ref().is_some_and(|f| f(req));
        let route_exempt = holds(&policy.exempt_when);
        let any = |limits: &[Limit], groups: &[Keyed]| !limits.is_empty() || !groups.is_empty();
        let application = !policy.exempt.application
            && any(&inner.application, &inner.keyed.application)
            && !holds(&inner.application_exempt_when);
        let route_scope = match &policy.shared {
            Some(name) => (parts.of(&inner.paths.shared, Some(name)), Scope::Shared),
            None => (
                parts.of_route(&inner.paths.route, req.route()),
                Scope::Route,
            ),
        };
        let route = route_limits
            .as_ref()
            .filter(|l| !route_exempt && !l.is_empty());
        let defaults = ((route_limits.is_none() && compiled.keyed.is_empty()) || policy.combine)
            && !policy.exempt.defaults
            && any(&inner.defaults, &inner.keyed.defaults)
            && !route_exempt
            && !holds(&inner.defaults_exempt_when);
        let meta = !policy.exempt.meta && any(&inner.meta, &inner.keyed.meta);
        // Every key of the identity, built in one allocation.
        let paths = &inner.paths;
        let application_scope = parts.of(
            &paths.app,
            options.application_per_method.then_some(&*method),
        );
        let default_scope = default_parts.of_route(&paths.default, req.route());
        let meta_scope = parts.of(&paths.meta, None);
        let mut lists: SmallVec<[ScopeParts<'_>; 4]> = SmallVec::new();
        if application {
            lists.push(application_scope);
        }
        if route.is_some() {
            lists.push(route_scope.0);
        }
        if defaults {
            lists.push(default_scope);
        }
        if meta {
            lists.push(meta_scope);
        }
        // Whom in-memory fallback limits count this request against, should the store be down.
        let fallback = inner.fallback_scope.map(|scope| match scope {
            FallbackScope::Route => parts.of(&paths.fallback, Some(req.route())),
            FallbackScope::Client => parts.of(&paths.fallback, None),
        });
        lists.extend(fallback);
        let lists: SmallVec<[(&ScopePath, &[&str]); 4]> =
            lists.iter().map(ScopeParts::as_list).collect();
        let mut keys = identity.keys_under(&lists);
        plan.cost = cost;
        plan.defaults_at_route_cost = policy.cost.is_some() || options.defaults_cost.is_none();
        let strategy = inner.strategy;
        // A scope's groups with key functions of their own, each under its own key.
        // A scope's groups with key functions of their own, each under its own key (out of
        // line: most limiters have none).
        let keyed = |plan: &mut Plan,
                     groups: &'a [Keyed],
                     scope_parts: ScopeParts<'_>,
                     cost: u64,
                     scope: Scope|
         -> Result<(), Early<'a>> {
            if groups.is_empty() {
                return Ok(());
            }
            plan.keyed(
                groups,
                &inner.addressing,
                req,
                ip,
                scope_parts,
                cost,
                scope,
                strategy,
            )
        };
        if application {
            if let Some(key) = keys.next() {
                plan.push(
                    key,
                    &inner.application,
                    strategy,
                    application_cost,
                    Scope::Application,
                );
            }
            keyed(
                plan,
                &inner.keyed.application,
                application_scope,
                application_cost,
                Scope::Application,
            )?;
        }
        if let Some(limits) = route
            && let Some(key) = keys.next()
        {
            plan.push(key, limits, strategy, cost, route_scope.1);
        }
        if !route_exempt {
            keyed(plan, &compiled.keyed, route_scope.0, cost, route_scope.1)?;
        }
        if defaults {
            if let Some(key) = keys.next() {
                plan.push(
                    key,
                    &inner.defaults,
                    strategy,
                    defaults_cost,
                    Scope::Default,
                );
            }
            keyed(
                plan,
                &inner.keyed.defaults,
                default_scope,
                defaults_cost,
                Scope::Default,
            )?;
        }
        if !compiled.guard.is_empty()
            && let Identity::Key(address) = inner.addressing.identity(ip)
            && let Some(key) = address
                .keys_under(&[parts.of_route(&paths.guard, req.route()).as_list()])
                .next()
        {
            plan.push(key, &compiled.guard, strategy, cost, Scope::Guard);
        }
        if meta {
            if let Some(key) = keys.next() {
                // A gate per meta limit: the request needs room under each; when it is
                // rejected all the same (by its own limits), the gate counts the breach, in
                // this call.
                plan.gates(key, &inner.meta, strategy);
            }
            keyed(plan, &inner.keyed.meta, meta_scope, 1, Scope::Meta)?;
        }
        if fallback.is_some()
            && let Some(key) = keys.next()
        {
            for charge in plan.charges.iter_mut().filter(|c| c.cost > 0) {
                charge.fallback_key = Some(key.clone());
            }
        }
        Ok(())
    }

    /// What the store's answer means: its verdict checked (one status per charge; a store
    /// that answers otherwise is an error, not a panic), the deciding limit, the decision.
    fn interpret(
        &self,
        compiled: &Compiled,
        plan: &Plan,
        verdict: Result<Verdict, StorageError>,
        req: &RequestView<'_>,
    ) -> Result<Decision, DecisionError> {
        let failed = |e: StorageError| {
            metrics::storage_failed(&e);
            tracing::error!(target: "ratekeeper", route = req.route(), error = %e, "rate-limit storage failed");
            DecisionError::Storage(e)
        };
        let verdict = verdict
            .and_then(|verdict| plan.answered_by(verdict))
            .map_err(failed)?;
        let Some(i) = Self::deciding(plan, &verdict) else {
            return Ok(Decision::free(Kind::Unlimited));
        };
        Ok(self.outcome(plan, &verdict, i, compiled, req))
    }

    /// The limit that decided: when allowed, the one closest to exhaustion (meta gates aside);
    /// when rejected, the rejecting limit with the longest wait (the batch fits only when all
    /// do).
    fn deciding(plan: &Plan, verdict: &Verdict) -> Option<usize> {
        let statuses = &verdict.statuses;
        if verdict.allowed {
            (0..plan.charges.len())
                .filter(|&i| plan.scopes[i] != Scope::Meta)
                .min_by_key(|&i| (statuses[i].remaining, plan.charges[i].limit.window()))
        } else {
            (0..plan.charges.len())
                .filter(|&i| !statuses[i].allowed)
                .max_by_key(|&i| statuses[i].retry_after.duration().unwrap_or(Duration::MAX))
        }
    }

    /// The rate-limit headers for the deciding charge `i`.
    fn headers_for(
        &self,
        compiled: &Compiled,
        plan: &Plan,
        verdict: &Verdict,
        i: usize,
        retry_after: Option<u64>,
        out: &mut RateLimitHeaders,
    ) {
        let (limit, status) = (&plan.charges[i].limit, &verdict.statuses[i]);
        let inner = &self.inner;
        // Only the IETF `RateLimit-Policy` field lists every limit: rendered at build when the
        // route's limits are fixed, else here.
        let charged = || {
            (0..plan.charges.len())
                .filter(|&j| plan.scopes[j] != Scope::Meta)
                .map(|j| plan.charges[j].limit)
        };
        let listed: SmallVec<[Limit; INLINE_CHARGES]>;
        let policy = match &compiled.policy_field {
            _ if !inner.headers.ietf => Policy::Limits(&[]),
            Some((limits, field)) if charged().eq(limits.iter().copied()) => {
                Policy::Rendered(field)
            }
            _ => {
                listed = charged().collect();
                Policy::Limits(&listed)
            }
        };
        render_into(
            &inner.headers,
            &HeaderFacts {
                limit,
                remaining: status.remaining,
                reset_epoch_secs: status.reset.as_secs_ceil(),
                // Counted from the instant the store applied the batch, on the store's clock
                // (the one `reset` is on): no clock to read here.
                reset_in_secs: status
                    .reset
                    .saturating_duration_since(verdict.at)
                    .as_secs_ceil(),
                retry_after_secs: retry_after,
                // Only a rejection carries `Retry-After`.
                retry_at_epoch_secs: retry_after
                    .and_then(|_| verdict.retry_after().duration())
                    .map(|d| verdict.at.saturating_add(d).as_secs_ceil()),
                rejected: !verdict.allowed,
                policy,
            },
            out,
        );
    }

    /// The decision from the verdict and its deciding charge `i`: on a rejection the breach
    /// body (and event); on an allowed request under conditional deduction, the charges to
    /// refund if the response says so.
    fn outcome(
        &self,
        plan: &Plan,
        verdict: &Verdict,
        i: usize,
        compiled: &Compiled,
        req: &RequestView<'_>,
    ) -> Decision {
        let inner = &self.inner;
        let policy = &compiled.policy;
        let (limit, scope, status) = (plan.charges[i].limit, plan.scopes[i], verdict.statuses[i]);
        let rejected = !verdict.allowed;
        // Shadow mode: decided and counted as usual, served all the same.
        let shadow = rejected && (policy.shadow || inner.shadow);
        let exact_retry = if rejected {
            verdict.retry_after()
        } else {
            RetryAfter::NOW
        };
        let retry_after = if rejected {
            retry_secs(exact_retry)
        } else {
            None
        };
        let mut decision = Decision {
            kind: match (rejected, shadow) {
                (false, _) => Kind::Allowed,
                (true, false) => Kind::Rejected,
                (true, true) => Kind::ShadowRejected,
            },
            limit: Some((limit, scope)),
            remaining: status.remaining,
            reset: status.reset,
            retry_after: exact_retry,
            headers: RateLimitHeaders::default(),
            answer: Answer::None,
            pending: None,
        };
        // A request served in shadow mode gets no `Retry-After`.
        let header_retry = retry_after.filter(|_| !shadow);
        self.headers_for(
            compiled,
            plan,
            verdict,
            i,
            header_retry,
            &mut decision.headers,
        );
        if shadow {
            inner.shadow_rejections.fetch_add(1, Ordering::Relaxed);
            tracing::info!(target: "ratekeeper", route = req.route(), identity = plan.charges[i].key.identity(),
                limit = %limit, meta = scope == Scope::Meta, "rate limit exceeded (shadow mode: served)");
        } else if rejected {
            let meta = scope == Scope::Meta;
            tracing::info!(target: "ratekeeper", route = req.route(), identity = plan.charges[i].key.identity(),
                limit = %limit, meta, "rate limit exceeded");
            let breach = Breach {
                limit: &limit,
                retry_after,
                route: req.route(),
                meta,
            };
            // The most specific hook writes the response: a meta breach's own, then the
            // route's (a whole response before a body), then the limiter's, then the default.
            let response = if meta && inner.on_meta_breach.is_some() {
                inner.on_meta_breach.as_ref()
            } else if policy.on_breach_response.is_some() || policy.on_breach.is_some() {
                policy.on_breach_response.as_ref()
            } else {
                inner.on_breach_response.as_ref()
            };
            match response {
                Some(hook) => decision.answer = Answer::Response(Box::new(hook(&breach))),
                None => {
                    let hook = policy.on_breach.as_ref().or(inner.on_breach.as_ref());
                    decision.answer =
                        Answer::Body(hook.map_or_else(|| default_body(&breach), |h| h(&breach)));
                }
            }
        } else {
            decision.pending = self.pending(plan, verdict, policy).map(Box::new);
        }
        decision
    }

    /// What is left to do once the response is known, if anything: the charges each
    /// conditional deduction may refund (the route's covers every charge; otherwise the
    /// default and application limits' own), and a settled cost.
    fn pending(&self, plan: &Plan, verdict: &Verdict, policy: &RoutePolicy) -> Option<Pending> {
        let options = &self.inner.scope_options;
        if policy.deduct_when.is_none()
            && policy.settle.is_none()
            && options.defaults_deduct_when.is_none()
            && options.application_deduct_when.is_none()
        {
            return None;
        }
        let counts_for = |scope: Scope| match scope {
            Scope::Meta => None,
            _ if policy.deduct_when.is_some() => policy.deduct_when.as_ref(),
            Scope::Default => options.defaults_deduct_when.as_ref(),
            Scope::Application => options.application_deduct_when.as_ref(),
            Scope::Route | Scope::Shared | Scope::Guard => None,
        };
        let charged = || plan.charges.iter().zip(plan.scopes.iter().copied());
        if policy.settle.is_none() && charged().all(|(_, s)| counts_for(s).is_none()) {
            return None;
        }
        // A refund names the instant the store charged at: it gives back only what these
        // charges still hold (nothing to a window that opened since).
        let at = verdict.at;
        let mut deductions: Vec<(Arc<StatusPredicate>, Vec<Charge>)> = Vec::new();
        for (charge, scope) in charged() {
            let Some(counts) = counts_for(scope) else {
                continue;
            };
            let charge = charge.clone().charged_at(at);
            match deductions.iter_mut().find(|(c, _)| Arc::ptr_eq(c, counts)) {
                Some((_, group)) => group.push(charge),
                None => deductions.push((Arc::clone(counts), vec![charge])),
            }
        }
        // A settled cost returns part of what was charged at the route's cost.
        let settle = policy.settle.clone().map(|f| {
            let settled = charged()
                .filter(|(_, s)| match s {
                    Scope::Meta | Scope::Application => false,
                    Scope::Default => plan.defaults_at_route_cost,
                    Scope::Route | Scope::Shared | Scope::Guard => true,
                })
                .map(|(c, _)| c.clone().charged_at(at))
                .collect();
            (plan.cost, f, settled)
        });
        Some(Pending {
            storage: Arc::clone(&self.inner.storage),
            deductions,
            settle,
        })
    }
}

/// The proxy configuration a limiter uses, for adapters that want the client address too.
impl Limiter {
    /// The client address of `req` under the configured trusted proxies.
    pub fn client_ip(&self, req: &RequestView<'_>) -> Option<IpAddr> {
        self.inner.proxy.client_ip(req)
    }

    /// `req` with its client address resolved ([`RequestView::client_ip`]).
    fn resolved<'a>(&self, req: &RequestView<'a>) -> RequestView<'a> {
        req.with_client(self.inner.proxy.client_ip(req))
    }
}

/// `method` in upper case, borrowed when it already is (it usually is).
fn uppercase(method: &str) -> Cow<'_, str> {
    if method.bytes().any(|b| b.is_ascii_lowercase()) {
        Cow::Owned(method.to_ascii_uppercase())
    } else {
        Cow::Borrowed(method)
    }
}

/// The encoded prefix of each scope's keys: the limiter's prefix and the scope's name.
pub(crate) struct ScopePaths {
    app: ScopePath,
    route: ScopePath,
    shared: ScopePath,
    default: ScopePath,
    guard: ScopePath,
    meta: ScopePath,
    fallback: ScopePath,
}

impl ScopePaths {
    pub(crate) fn new(prefix: &str) -> Self {
        let path = |scope: &str| ScopePath::new(&[prefix, scope]);
        Self {
            app: path("app"),
            route: path("route"),
            shared: path("shared"),
            default: path("default"),
            guard: path("guard"),
            meta: path("meta"),
            fallback: path("fallback"),
        }
    }
}

/// What the storage keys of a request are built from besides the identity and the scopes'
/// paths: the method, for a route that counts methods apart.
#[derive(Clone, Copy)]
struct KeyParts<'a> {
    method: Option<&'a str>,
}

impl<'a> KeyParts<'a> {
    /// The scopes of a key under `path` (one of `paths`), then `name` (a shared scope's).
    fn of(self, path: &'a ScopePath, name: Option<&'a str>) -> ScopeParts<'a> {
        let mut parts = ScopeParts {
            path,
            items: ["", "", ""],
            len: 0,
        };
        if let Some(name) = name {
            parts.items[0] = name;
            parts.len = 1;
        }
        parts
    }

    /// The scopes of a key counted per route (the route, default and guard scopes): `path`,
    /// the route, and the method when methods count apart.
    fn of_route(self, path: &'a ScopePath, route: &'a str) -> ScopeParts<'a> {
        let mut parts = self.of(path, Some(route));
        if let Some(method) = self.method {
            parts.items[1] = method;
            parts.len = 2;
        }
        parts
    }
}

/// The scopes of one key: an encoded path, then up to three scopes to encode.
#[derive(Clone, Copy)]
struct ScopeParts<'a> {
    path: &'a ScopePath,
    items: [&'a str; 3],
    len: usize,
}

impl<'a> ScopeParts<'a> {
    /// These scopes, then `tag` (a keyed group's). There is always room: a key has at most
    /// two scopes of its own (a route and a method, or a shared scope's name).
    fn tagged(mut self, tag: &'a str) -> Self {
        if let Some(slot) = self.items.get_mut(self.len) {
            *slot = tag;
            self.len += 1;
        }
        self
    }

    fn as_list(&self) -> (&'a ScopePath, &[&'a str]) {
        (self.path, &self.items[..self.len])
    }
}
