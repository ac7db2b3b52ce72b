//! `Limiter`: configuration validated once, then one decision per request.

mod keys;
mod outcome;
mod plan;
mod routes;

use core::{
    fmt,
    future::Future,
    net::IpAddr,
    pin::Pin,
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
};
use std::{collections::HashMap, sync::Arc};

use ratekeeper_core::{Clock, Limit, StrategyKind, Timestamp};

use ratekeeper_storage::{Key, Op, Storage};

use self::plan::{Early, Plan};
pub(crate) use self::{
    keys::ScopePaths,
    outcome::retry_secs,
    routes::{Compiled, RouteLimits},
};
use crate::{
    builder::LimiterBuilder,
    client_ip::ProxyConfig,
    decision::StatusPredicate,
    decision::{Decision, Scope},
    error::DecisionError,
    headers::HeaderOptions,
    key::{Addressing, KeyFunction},
    keyed::Keyed,
    metrics,
    network::Network,
    outage::FallbackScope,
    policy::{BreachHook, CostFn, InFlight, LimitSet, RequestPredicate, ResponseHook},
    request::RequestView,
};

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

/// The default, application and meta limits counted by key functions of their own.
pub(crate) struct KeyedScopes {
    pub(crate) application: Vec<Keyed>,
    pub(crate) defaults: Vec<Keyed>,
    pub(crate) meta: Vec<Keyed>,
}

/// A built limiter's configuration, in parts: the limits by scope, the route table, who is
/// asking, and how answers are written.
pub(crate) struct Inner {
    pub(crate) scopes: Scopes,
    pub(crate) routes: Routes,
    pub(crate) clients: Clients,
    pub(crate) answers: Answers,
    pub(crate) strategy: StrategyKind,
    pub(crate) storage: Arc<dyn Storage>,
    pub(crate) clock: Arc<dyn Clock + Send + Sync>,
    /// Every scope's prefix, encoded once.
    pub(crate) paths: ScopePaths,
    /// With in-memory fallback limits, whom they count against (each charge's
    /// `fallback_key`).
    pub(crate) fallback_scope: Option<FallbackScope>,
    /// The kill switch: no request is limited.
    pub(crate) disabled: bool,
    /// Metric handles (nothing without the `metrics` feature).
    pub(crate) metrics: metrics::Recorded,
}

/// The default, application and meta limits, and their options.
pub(crate) struct Scopes {
    pub(crate) defaults: LimitSet,
    pub(crate) application: LimitSet,
    pub(crate) meta: LimitSet,
    pub(crate) keyed: KeyedScopes,
    /// The application and default limits, each scope's keyed groups after its own: what a
    /// route policy compiled later combines with.
    pub(crate) application_all: Vec<Limit>,
    pub(crate) defaults_all: Vec<Limit>,
    /// The default and application limits' own options (Flask-Limiter's `default_limits_*`
    /// and `application_limits_*`).
    pub(crate) options: ScopeOptions,
    /// Requests for which the default limits do not apply.
    pub(crate) defaults_exempt_when: Option<RequestPredicate>,
    /// Requests for which the application limits do not apply.
    pub(crate) application_exempt_when: Option<RequestPredicate>,
    /// The default limits count each method apart on every route.
    pub(crate) defaults_per_method: bool,
    /// The in-flight limits of the application and of the defaults, and their lease.
    pub(crate) in_flight: InFlightScopes,
}

/// In-flight limits set for every route, and the lease of every slot.
#[derive(Clone, Copy, Debug)]
pub(crate) struct InFlightScopes {
    pub(crate) application: InFlight,
    pub(crate) defaults: InFlight,
    /// How long a slot is held without a renewal, in whole seconds (at least 1).
    pub(crate) lease_secs: u64,
    /// Whether the application or the defaults have in-flight limits: a request on a route
    /// without its own then skips their planning at a branch.
    pub(crate) any: bool,
}

/// The default and application limits' own options.
#[derive(Clone, Default)]
pub(crate) struct ScopeOptions {
    pub(crate) defaults_cost: Option<Arc<CostFn>>,
    pub(crate) defaults_deduct_when: Option<Arc<StatusPredicate>>,
    pub(crate) application_per_method: bool,
    pub(crate) application_cost: Option<Arc<CostFn>>,
    pub(crate) application_deduct_when: Option<Arc<StatusPredicate>>,
}

/// The compiled route policies.
pub(crate) struct Routes {
    /// By route id.
    pub(crate) exact: HashMap<String, Compiled>,
    /// Per route, the policies of single methods (uppercase).
    pub(crate) by_method: HashMap<String, Vec<(String, Compiled)>>,
    /// Route groups by prefix, the longest first.
    pub(crate) prefixes: Vec<(String, Compiled)>,
    /// Every other route's.
    pub(crate) fallback: Compiled,
}

/// Who is asking: the key function, the client address behind proxies, and who is never
/// limited.
pub(crate) struct Clients {
    pub(crate) key: KeyFunction,
    pub(crate) proxy: ProxyConfig,
    pub(crate) addressing: Addressing,
    pub(crate) warned_unknown_client: AtomicBool,
    /// Requests that are not limited at all.
    pub(crate) request_filters: Vec<RequestPredicate>,
    /// Client networks that are never limited.
    pub(crate) exempt: Vec<Network>,
}

/// How decisions are answered: headers, breach hooks, shadow mode.
pub(crate) struct Answers {
    pub(crate) headers: HeaderOptions,
    pub(crate) on_breach: Option<BreachHook>,
    pub(crate) on_breach_response: Option<ResponseHook>,
    pub(crate) on_meta_breach: Option<ResponseHook>,
    /// Shadow mode for every route.
    pub(crate) shadow: bool,
    /// Requests shadow mode served that would have been rejected.
    pub(crate) shadow_rejections: AtomicU64,
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
            .field("defaults", &self.inner.scopes.defaults)
            .field("application", &self.inner.scopes.application)
            .field("meta", &self.inner.scopes.meta)
            .field("strategy", &self.inner.strategy)
            .field("storage", &self.inner.storage)
            .field(
                "routes",
                &(self.inner.routes.exact.len()
                    + self
                        .inner
                        .routes
                        .by_method
                        .values()
                        .map(Vec::len)
                        .sum::<usize>()),
            )
            .finish_non_exhaustive()
    }
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
    /// ([`Kind::ShadowRejected`](crate::Kind::ShadowRejected)), since the limiter was built.
    pub fn shadow_rejections(&self) -> u64 {
        self.inner.answers.shadow_rejections.load(Ordering::Relaxed)
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

    /// Every limit that applies to `req` and where it stands, charging nothing (Flask-Limiter's
    /// `current_limits`): the application, route (or default), guard and meta limits, in the
    /// order a decision charges them, on whatever store the limiter uses. Empty when nothing
    /// would be charged (an exempt route, a request filter, an empty key, the kill switch).
    ///
    /// ```
    /// use ratekeeper_decision::{Limiter, RequestView, limits::Scope};
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
}

/// The proxy configuration a limiter uses, for adapters that want the client address too.
impl Limiter {
    /// The client address of `req` under the configured trusted proxies.
    pub fn client_ip(&self, req: &RequestView<'_>) -> Option<IpAddr> {
        self.inner.clients.proxy.client_ip(req)
    }

    /// `req` with its client address resolved ([`RequestView::client_ip`]).
    fn resolved<'a>(&self, req: &RequestView<'a>) -> RequestView<'a> {
        req.with_client(self.inner.clients.proxy.client_ip(req))
    }
}
