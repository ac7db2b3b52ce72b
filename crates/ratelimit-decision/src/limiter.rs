//! `Limiter`: configuration validated once, then one decision per request.

use core::{
    fmt,
    future::Future,
    net::IpAddr,
    pin::Pin,
    sync::atomic::{AtomicBool, Ordering},
};
use std::{borrow::Cow, collections::HashMap, sync::Arc};

use ratelimit_core::{Clock, Duration, Limit, RetryAfter, StrategyKind, SystemClock};
use ratelimit_fallback::{Backoff, FallbackStorage, Mode, Transition};
use ratelimit_memory::MemoryStorage;
use smallvec::SmallVec;

use ratelimit_storage::{
    Charge, Key, Op, ScopePath, Storage, StorageError, StorageUri, UriError, Verdict,
};

use crate::{
    client_ip::{ForwardedHeader, ProxyConfig},
    decision::{Answer, Decision, Kind, Pending, Scope, StatusPredicate},
    error::{ConfigError, DecisionError},
    field::RateLimitHeaders,
    headers::{HeaderFacts, HeaderOptions, Policy, policy_field, render_into},
    key::{Addressing, Identity, KeyFunction, UnknownClient, Who},
    network::Network,
    policy::{
        Breach, BreachHook, CostFn, LimitSet, LimitSource, RequestPredicate, ResponseHook,
        RoutePolicy, parse_set,
    },
    request::RequestView,
    response::BreachResponse,
};

/// The storage URI schemes the limiter can build a backend for.
#[cfg(feature = "redis")]
pub const KNOWN_SCHEMES: &[&str] = &[
    "memory",
    "redis",
    "rediss",
    "redis+unix",
    "redis+cluster",
    "redis+sentinel",
];
/// The storage URI schemes the limiter can build a backend for.
#[cfg(not(feature = "redis"))]
pub const KNOWN_SCHEMES: &[&str] = &["memory"];

/// Builds the store named by `uri`. `clock` is the memory store's clock; a Redis store reads
/// the Redis server's clock unless the URI says `time=client`, and then uses `clock`.
pub fn storage_from_uri(
    uri: &str,
    clock: Arc<dyn Clock + Send + Sync>,
) -> Result<Arc<dyn Storage>, ConfigError> {
    let uri_error = |e: UriError| ConfigError::Storage(StorageError::Configuration(e.to_string()));
    let parsed: StorageUri = uri.parse().map_err(uri_error)?;
    parsed.expect_scheme(KNOWN_SCHEMES).map_err(uri_error)?;
    #[cfg(feature = "redis")]
    if parsed.scheme != "memory" {
        let mut builder =
            ratelimit_redis::RedisStorage::builder_from_uri(uri).map_err(ConfigError::Storage)?;
        if parsed.option("time") == Some("client") {
            builder = builder.clock(clock);
        }
        return Ok(Arc::new(builder.build().map_err(ConfigError::Storage)?));
    }
    let builder = MemoryStorage::builder_from_uri(uri)
        .map_err(ConfigError::Storage)?
        .clock(clock);
    Ok(Arc::new(builder.build()))
}

#[derive(Clone)]
enum RouteLimits {
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

/// How a route group finds its routes.
enum Members {
    /// Every route whose id starts with this.
    Prefix(String),
    /// These routes.
    Routes(Vec<String>),
}

/// The default and application limits' own options.
#[derive(Clone, Default)]
struct ScopeOptions {
    defaults_cost: Option<Arc<CostFn>>,
    defaults_deduct_when: Option<Arc<StatusPredicate>>,
    application_per_method: bool,
    application_cost: Option<Arc<CostFn>>,
    application_deduct_when: Option<Arc<StatusPredicate>>,
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
struct Compiled {
    limits: Option<RouteLimits>,
    guard: LimitSet,
    policy: RoutePolicy,
    /// The `RateLimit-Policy` field of the limits the route charges, rendered at build (and
    /// those limits): `None` when they vary by request (dynamic limits).
    policy_field: Option<(Vec<Limit>, Arc<str>)>,
}

impl Compiled {
    fn new(
        limits: Option<RouteLimits>,
        guard: LimitSet,
        policy: RoutePolicy,
        application: &[Limit],
        defaults: &[Limit],
    ) -> Self {
        let mut compiled = Self {
            limits,
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
        if (route.is_none() || policy.combine) && !policy.exempt.defaults {
            out.extend_from_slice(defaults);
        }
        out.extend_from_slice(&self.guard);
        Some(out)
    }
}

struct Inner {
    defaults: LimitSet,
    application: LimitSet,
    meta: LimitSet,
    strategy: StrategyKind,
    storage: Arc<dyn Storage>,
    /// Every scope's prefix, encoded once.
    paths: ScopePaths,
    key: KeyFunction,
    proxy: ProxyConfig,
    addressing: Addressing,
    warned_unknown_client: AtomicBool,
    headers: HeaderOptions,
    clock: Arc<dyn Clock + Send + Sync>,
    routes: HashMap<String, Compiled>,
    /// Per route, the policies of single methods (uppercase).
    method_routes: HashMap<String, Vec<(String, Compiled)>>,
    /// Route groups by prefix, the longest first.
    prefix_groups: Vec<(String, Compiled)>,
    fallback: Compiled,
    on_breach: Option<BreachHook>,
    on_breach_response: Option<ResponseHook>,
    on_meta_breach: Option<ResponseHook>,
    /// The default and application limits' own options (Flask-Limiter's `default_limits_*`
    /// and `application_limits_*`).
    scope_options: ScopeOptions,
    /// Requests for which the default limits do not apply.
    defaults_exempt_when: Option<RequestPredicate>,
    /// Requests for which the application limits do not apply.
    application_exempt_when: Option<RequestPredicate>,
    /// Requests that are not limited at all.
    request_filters: Vec<RequestPredicate>,
    /// The kill switch: no request is limited.
    disabled: bool,
    /// The default limits count each method apart on every route.
    defaults_per_method: bool,
}

/// The rate limiter: cheap to clone, `Send + Sync`, one [`Limiter::check`] per request.
///
/// ```
/// use std::sync::Arc;
/// use ratelimit_core::{ManualClock, Timestamp};
/// use ratelimit_decision::{Limiter, RequestView, RoutePolicy};
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
/// let login = RequestView::new("POST", "/auth/login").peer(peer);
/// for _ in 0..5 {
///     assert!(limiter.check(&login).await?.is_allowed());
/// }
/// let sixth = limiter.check(&login).await?;
/// assert!(!sixth.is_allowed());
/// assert_eq!(sixth.retry_after(), Some(60));
/// assert!(limiter.check(&RequestView::new("GET", "/health").peer(peer)).await?.is_allowed());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct Limiter {
    inner: Arc<Inner>,
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

/// Configures a [`Limiter`]; [`LimiterBuilder::build`] validates everything.
#[derive(Default)]
pub struct LimiterBuilder {
    defaults: Option<String>,
    application: Option<String>,
    meta: Option<String>,
    strategy: Option<StrategyKind>,
    storage: Option<Arc<dyn Storage>>,
    storage_uri: Option<String>,
    prefix: Option<String>,
    key: Option<KeyFunction>,
    proxy: ProxyConfig,
    trusted_networks: Option<String>,
    ipv6_prefix: Option<u8>,
    unknown_client: UnknownClient,
    headers: Option<HeaderOptions>,
    clock: Option<Arc<dyn Clock + Send + Sync>>,
    routes: Vec<(Option<String>, String, RoutePolicy)>,
    groups: Vec<(Members, RoutePolicy)>,
    on_breach: Option<BreachHook>,
    outage: Option<Outage>,
    storage_timeout: Option<core::time::Duration>,
    probe_backoff: Option<Backoff>,
    on_storage_transition: Option<TransitionHook>,
    on_breach_response: Option<ResponseHook>,
    on_meta_breach: Option<ResponseHook>,
    scope_options: ScopeOptions,
    defaults_exempt_when: Option<RequestPredicate>,
    application_exempt_when: Option<RequestPredicate>,
    request_filters: Vec<RequestPredicate>,
    disabled: bool,
    defaults_per_method: bool,
}

type TransitionHook = Arc<dyn Fn(&Transition) + Send + Sync>;

/// What the limiter does while its storage is down (see [`ratelimit_fallback::Mode`]).
#[derive(Clone, Debug)]
enum Outage {
    Fallback(Option<String>),
    FailOpen,
    FailClosed,
}

impl fmt::Debug for LimiterBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LimiterBuilder")
            .field("defaults", &self.defaults)
            .field("application", &self.application)
            .field("meta", &self.meta)
            .field("routes", &self.routes.len())
            .finish_non_exhaustive()
    }
}

impl LimiterBuilder {
    /// Limits for every route without its own (counted per route): `"200 per day; 50 per hour"`.
    pub fn default_limits(mut self, limits: &str) -> Self {
        self.defaults = Some(limits.to_owned());
        self
    }

    /// The kill switch (default on): `false` makes every decision [`Kind::Unlimited`] without a
    /// storage call (Flask-Limiter's `RATELIMIT_ENABLED`).
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.disabled = !enabled;
        self
    }

    /// The default limits count each HTTP method apart, on every route (Flask-Limiter's
    /// `default_limits_per_method`; a route's own limits do with
    /// [`RoutePolicy::per_method`]).
    pub fn default_limits_per_method(mut self, per_method: bool) -> Self {
        self.defaults_per_method = per_method;
        self
    }

    /// What a request costs under the default limits, when its route sets no cost of its own
    /// (Flask-Limiter's `default_limits_cost`; default 1).
    pub fn default_limits_cost(
        mut self,
        cost: impl Fn(&RequestView<'_>) -> u64 + Send + Sync + 'static,
    ) -> Self {
        self.scope_options.defaults_cost = Some(Arc::new(cost));
        self
    }

    /// Conditional deduction for the default limits (Flask-Limiter's
    /// `default_limits_deduct_when`): their charge is refunded when `counts(status)` is false
    /// ([`Decision::complete`]). A route's own [`RoutePolicy::deduct_when`] covers all its
    /// charges and wins.
    pub fn default_limits_deduct_when(
        mut self,
        counts: impl Fn(u16) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.scope_options.defaults_deduct_when = Some(Arc::new(counts));
        self
    }

    /// The application limits count each HTTP method apart (Flask-Limiter's
    /// `application_limits_per_method`).
    pub fn application_limits_per_method(mut self, per_method: bool) -> Self {
        self.scope_options.application_per_method = per_method;
        self
    }

    /// What a request costs under the application limits (Flask-Limiter's
    /// `application_limits_cost`; default 1, whatever the route's cost).
    pub fn application_limits_cost(
        mut self,
        cost: impl Fn(&RequestView<'_>) -> u64 + Send + Sync + 'static,
    ) -> Self {
        self.scope_options.application_cost = Some(Arc::new(cost));
        self
    }

    /// Conditional deduction for the application limits (Flask-Limiter's
    /// `application_limits_deduct_when`); a route's own [`RoutePolicy::deduct_when`] wins.
    pub fn application_limits_deduct_when(
        mut self,
        counts: impl Fn(u16) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.scope_options.application_deduct_when = Some(Arc::new(counts));
        self
    }

    /// The header options being configured (the defaults until set).
    pub(crate) fn headers_mut(&mut self) -> &mut HeaderOptions {
        self.headers.get_or_insert_with(HeaderOptions::default)
    }

    /// Skip the default limits for the requests `when` holds for (Flask-Limiter's
    /// `default_limits_exempt_when`).
    pub fn default_limits_exempt_when(
        mut self,
        when: impl Fn(&RequestView<'_>) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.defaults_exempt_when = Some(Arc::new(when));
        self
    }

    /// Skip the application limits for the requests `when` holds for (Flask-Limiter's
    /// `application_limits_exempt_when`).
    pub fn application_limits_exempt_when(
        mut self,
        when: impl Fn(&RequestView<'_>) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.application_exempt_when = Some(Arc::new(when));
        self
    }

    /// A request `filter` holds for is not limited at all: no limit is checked or counted, no
    /// storage call is made, and the decision is [`Kind::Exempt`] (Flask-Limiter's
    /// `request_filter`). Several filters: any one exempts.
    ///
    /// ```
    /// use ratelimit_decision::{Kind, Limiter, RequestView};
    ///
    /// # smol::block_on(async {
    /// let limiter = Limiter::builder()
    ///     .default_limits("1 per hour")
    ///     .request_filter(|req| req.header("X-Load-Test") == Some("yes"))
    ///     .build()?;
    /// let headers = [("X-Load-Test", "yes")];
    /// let req = RequestView::new("GET", "/").peer("10.0.0.1".parse()?).headers(&headers);
    /// for _ in 0..3 {
    ///     assert_eq!(limiter.check(&req).await?.kind(), Kind::Exempt);
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn request_filter(
        mut self,
        filter: impl Fn(&RequestView<'_>) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.request_filters.push(Arc::new(filter));
        self
    }

    /// Limits shared by every route (one counter per client across the application).
    pub fn application_limits(mut self, limits: &str) -> Self {
        self.application = Some(limits.to_owned());
        self
    }

    /// Meta limits: how many breaches a client may make; while one is exhausted, every
    /// non-exempt request of that client is rejected.
    pub fn meta_limits(mut self, limits: &str) -> Self {
        self.meta = Some(limits.to_owned());
        self
    }

    /// The strategy for every limit (default fixed window).
    pub fn strategy(mut self, strategy: StrategyKind) -> Self {
        self.strategy = Some(strategy);
        self
    }

    /// The store (default: a `memory://` store on the limiter's clock).
    pub fn storage(mut self, storage: Arc<dyn Storage>) -> Self {
        self.storage = Some(storage);
        self
    }

    /// The store, by URI (`memory://`; unknown schemes fail `build()` with the known ones).
    pub fn storage_uri(mut self, uri: &str) -> Self {
        self.storage_uri = Some(uri.to_owned());
        self
    }

    /// The prefix of every storage key (default `LIMITER`).
    pub fn key_prefix(mut self, prefix: &str) -> Self {
        self.prefix = Some(prefix.to_owned());
        self
    }

    /// Who requests count against (default: the client address).
    pub fn key_function(mut self, key: KeyFunction) -> Self {
        self.key = Some(key);
        self
    }

    /// How many proxies in front of the application to trust (default 0: forwarded headers are
    /// ignored), and which header they set.
    ///
    /// Forwarded headers count only from a peer in the trusted proxy networks (default
    /// [`DEFAULT_TRUSTED_PROXIES`](crate::DEFAULT_TRUSTED_PROXIES): loopback and private
    /// ranges; see [`LimiterBuilder::trusted_proxy_networks`]).
    pub fn trusted_proxies(mut self, hops: usize, header: ForwardedHeader) -> Self {
        self.proxy.trusted_hops = hops;
        self.proxy.header = header;
        self
    }

    /// The networks whose peers are trusted proxies, comma-separated CIDRs
    /// (`"10.0.0.0/8, 2001:db8::/32"`, a bare address for one host), replacing the default;
    /// `build()` refuses one that does not parse.
    pub fn trusted_proxy_networks(mut self, networks: &str) -> Self {
        self.trusted_networks = Some(networks.to_owned());
        self
    }

    /// IPv6 clients are counted by the first `bits` of their address (default 64: a host
    /// usually holds a whole /64, and would otherwise have unlimited identities); 128 counts
    /// every address apart. `build()` refuses more than 128.
    pub fn ipv6_prefix(mut self, bits: u8) -> Self {
        self.ipv6_prefix = Some(bits);
        self
    }

    /// What to do with requests whose client address is unknown (default
    /// [`UnknownClient::Shared`]: one identity for all of them; the first is logged as a
    /// warning).
    pub fn unknown_client(mut self, policy: UnknownClient) -> Self {
        self.unknown_client = policy;
        self
    }

    /// Which headers decisions carry, and their names.
    pub fn headers(mut self, headers: HeaderOptions) -> Self {
        self.headers = Some(headers);
        self
    }

    /// The clock (default: the system clock).
    pub fn clock(mut self, clock: Arc<dyn Clock + Send + Sync>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// The policy of `route` (every method).
    pub fn route(mut self, route: &str, policy: RoutePolicy) -> Self {
        self.routes.push((None, route.to_owned(), policy));
        self
    }

    /// A route group (Flask's Blueprint): `policy` for every route whose id starts with
    /// `prefix` (`"/admin/"`), unless the route has a policy of its own ([`Self::route`]),
    /// which replaces the group's as a decorator's limits replace a Blueprint's. Each route
    /// counts apart under the group's limits, or all of them together with
    /// [`RoutePolicy::shared`]. Where prefixes overlap, the longest wins.
    ///
    /// ```
    /// use ratelimit_decision::{Limiter, RequestView, RoutePolicy};
    ///
    /// # smol::block_on(async {
    /// let limiter = Limiter::builder()
    ///     .default_limits("100 per minute")
    ///     .group_prefix("/admin/", RoutePolicy::new().limit("2 per minute").shared("admin"))
    ///     .route("/admin/login", RoutePolicy::new().limit("5 per minute"))
    ///     .build()?;
    /// let peer = "10.0.0.1".parse()?;
    /// let users = RequestView::new("GET", "/admin/users").peer(peer);
    /// let audit = RequestView::new("GET", "/admin/audit").peer(peer);
    /// assert!(limiter.check(&users).await?.is_allowed());
    /// assert!(limiter.check(&audit).await?.is_allowed());
    /// assert!(!limiter.check(&users).await?.is_allowed(), "two for the whole group");
    /// let login = RequestView::new("POST", "/admin/login").peer(peer);
    /// assert!(limiter.check(&login).await?.is_allowed(), "its own policy");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn group_prefix(mut self, prefix: &str, policy: RoutePolicy) -> Self {
        self.groups
            .push((Members::Prefix(prefix.to_owned()), policy));
        self
    }

    /// A route group by explicit membership: `policy` for each of `routes` that has no policy
    /// of its own (see [`Self::group_prefix`]). A route in two such groups takes the first's.
    pub fn group(mut self, routes: &[&str], policy: RoutePolicy) -> Self {
        let members = routes.iter().map(|r| (*r).to_owned()).collect();
        self.groups.push((Members::Routes(members), policy));
        self
    }

    /// The policy of `route` for one `method` only (it takes precedence over [`Self::route`]).
    pub fn route_method(mut self, method: &str, route: &str, policy: RoutePolicy) -> Self {
        self.routes
            .push((Some(method.to_ascii_uppercase()), route.to_owned(), policy));
        self
    }

    /// When the storage is unavailable (or refuses calls: Redis out of memory), count in memory:
    /// every request's own limits, and these limits on top, per client across all routes
    /// (Flask-Limiter's `in_memory_fallback`, e.g. `"100 per day; 25 per hour"`); go back to the
    /// storage once a background probe finds it serving. No request fails and none waits on a
    /// dead or hung storage longer than [`storage_timeout`](Self::storage_timeout).
    ///
    /// Unlike Flask-Limiter, where these limits replace the route's, a fallback is never looser
    /// than normal operation: a login limited to 5 per minute stays at 5 under a fallback of
    /// 100. (Counts start afresh in memory when the outage begins.)
    pub fn in_memory_fallback(mut self, limits: &str) -> Self {
        self.outage = Some(Outage::Fallback(Some(limits.to_owned())));
        self
    }

    /// When the storage is unavailable, count in memory with the configured limits
    /// (Flask-Limiter's `in_memory_fallback_enabled`).
    pub fn fallback_to_memory(mut self) -> Self {
        self.outage = Some(Outage::Fallback(None));
        self
    }

    /// When the storage is unavailable, allow every request, logging each (Flask-Limiter's
    /// `swallow_errors`).
    pub fn fail_open(mut self) -> Self {
        self.outage = Some(Outage::FailOpen);
        self
    }

    /// When the storage is unavailable, answer every request with
    /// [`DecisionError::Storage`] (503 in the Tide middleware) without waiting on the storage
    /// while it is down. Without any of these four settings storage errors also reach the
    /// application, but each call waits for the storage.
    pub fn fail_closed(mut self) -> Self {
        self.outage = Some(Outage::FailClosed);
        self
    }

    /// The longest a request waits for the storage when an outage mode is set (default
    /// [`ratelimit_fallback::DEFAULT_TIMEOUT`]).
    pub fn storage_timeout(mut self, timeout: core::time::Duration) -> Self {
        self.storage_timeout = Some(timeout);
        self
    }

    /// How often a storage that went down is probed (with an outage mode set): after
    /// `initial`, then doubling, at most `max` apart (default 0.25 s doubling to 30 s).
    pub fn storage_probe_backoff(
        mut self,
        initial: core::time::Duration,
        max: core::time::Duration,
    ) -> Self {
        self.probe_backoff = Some(Backoff { initial, max });
        self
    }

    /// Called when the storage goes down or comes back (with an outage mode set).
    pub fn on_storage_transition(
        mut self,
        hook: impl Fn(&Transition) + Send + Sync + 'static,
    ) -> Self {
        self.on_storage_transition = Some(Arc::new(hook));
        self
    }

    /// The response body of every rejection whose route has no hook of its own.
    pub fn on_breach(
        mut self,
        body: impl Fn(&Breach<'_>) -> String + Send + Sync + 'static,
    ) -> Self {
        self.on_breach = Some(Arc::new(body));
        self
    }

    /// The whole response of every rejection whose route has no hook of its own (status,
    /// content type, headers, body: Flask-Limiter's `on_breach` returning a response); it wins
    /// over [`on_breach`](Self::on_breach).
    ///
    /// ```
    /// use ratelimit_decision::{BreachResponse, Limiter, RequestView};
    ///
    /// # smol::block_on(async {
    /// let limiter = Limiter::builder()
    ///     .default_limits("1 per minute")
    ///     .on_breach_response(|b| {
    ///         BreachResponse::new(format!("over {}", b.limit))
    ///             .status(503)
    ///             .content_type("text/plain")
    ///     })
    ///     .build()?;
    /// let req = RequestView::new("GET", "/").peer("10.0.0.1".parse()?);
    /// limiter.check(&req).await?;
    /// let rejected = limiter.check(&req).await?;
    /// assert_eq!(rejected.status(), 503);
    /// assert_eq!(rejected.content_type(), "text/plain");
    /// assert_eq!(rejected.body(), Some("over 1 per 1 minute"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn on_breach_response(
        mut self,
        response: impl Fn(&Breach<'_>) -> BreachResponse + Send + Sync + 'static,
    ) -> Self {
        self.on_breach_response = Some(Arc::new(response));
        self
    }

    /// The response when a meta limit rejects a request (too many breaches), instead of the
    /// route's or the limiter's breach hooks.
    pub fn on_meta_breach(
        mut self,
        response: impl Fn(&Breach<'_>) -> BreachResponse + Send + Sync + 'static,
    ) -> Self {
        self.on_meta_breach = Some(Arc::new(response));
        self
    }

    /// Validates the configuration: every limit string parses (errors name the string and the
    /// byte), the storage can be built, names make sense.
    pub fn build(self) -> Result<Limiter, ConfigError> {
        let set = |context: &str, s: &Option<String>| -> Result<LimitSet, ConfigError> {
            match s {
                None => Ok(Vec::new().into()),
                Some(text) => parse_set(context, text),
            }
        };
        let defaults = set("default limits", &self.defaults)?;
        let application = set("application limits", &self.application)?;
        let meta = set("meta limits", &self.meta)?;
        let clock = self.clock.unwrap_or_else(|| Arc::new(SystemClock));
        let storage = match (self.storage, self.storage_uri) {
            (Some(storage), _) => storage,
            (None, Some(uri)) => storage_from_uri(&uri, Arc::clone(&clock))?,
            (None, None) => storage_from_uri("memory://", Arc::clone(&clock))?,
        };
        let strategy = self.strategy.unwrap_or(StrategyKind::FixedWindow);
        let storage: Arc<dyn Storage> = match self.outage {
            None => storage,
            Some(outage) => {
                let mode = match outage {
                    Outage::FailOpen => Mode::FailOpen,
                    Outage::FailClosed => Mode::FailClosed,
                    Outage::Fallback(None) => Mode::same_limits_in_memory(),
                    Outage::Fallback(Some(text)) => Mode::Fallback {
                        limits: parse_set("in-memory fallback", &text)?.to_vec(),
                        strategy,
                    },
                };
                let mut b = FallbackStorage::builder(storage)
                    .mode(mode)
                    .clock(Arc::clone(&clock))
                    .secondary(MemoryStorage::builder().clock(Arc::clone(&clock)).build());
                if let Some(t) = self.storage_timeout {
                    b = b.timeout(t);
                }
                if let Some(backoff) = self.probe_backoff {
                    b = b.backoff(backoff);
                }
                if let Some(hook) = self.on_storage_transition {
                    b = b.on_transition(move |t| hook(t));
                }
                Arc::new(b.build())
            }
        };
        let mut proxy = self.proxy;
        if let Some(list) = &self.trusted_networks {
            proxy.trusted_networks = Network::parse_list(list)
                .map_err(|e| ConfigError::Invalid(format!("trusted proxy networks: {e}")))?;
        }
        let ipv6_prefix = self.ipv6_prefix.unwrap_or(64);
        if ipv6_prefix > 128 {
            return Err(ConfigError::Invalid(format!(
                "ipv6 prefix {ipv6_prefix}: at most 128 bits"
            )));
        }
        let addressing = Addressing {
            ipv6_prefix,
            unknown: self.unknown_client,
        };
        let headers = self.headers.unwrap_or_default();
        headers.names.check().map_err(ConfigError::Invalid)?;
        let key = self.key.unwrap_or_default();
        for k in core::iter::once(&key)
            .chain(self.routes.iter().filter_map(|(_, _, p)| p.key.as_ref()))
            .chain(self.groups.iter().filter_map(|(_, p)| p.key.as_ref()))
        {
            if k.namespace().is_some_and(|ns| ns.is_empty() || ns == "ip") {
                return Err(ConfigError::Invalid(format!(
                    "key function {k:?}: the namespace must be non-empty and not \"ip\" (reserved for client addresses)"
                )));
            }
        }
        let compile = |context: &str, policy: RoutePolicy| -> Result<Compiled, ConfigError> {
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
            let guard = match &policy.guard {
                None => Vec::new().into(),
                Some(text) => parse_set(&format!("{context} guard"), text)?,
            };
            Ok(Compiled::new(
                limits,
                guard,
                policy,
                &application,
                &defaults,
            ))
        };
        let mut routes = HashMap::new();
        let mut method_routes = HashMap::new();
        for (method, route, policy) in self.routes {
            if route.is_empty() {
                return Err(ConfigError::Invalid(
                    "a route policy needs a route id".into(),
                ));
            }
            let context = match &method {
                Some(m) => format!("route {m} {route}"),
                None => format!("route {route}"),
            };
            let compiled = compile(&context, policy)?;
            match method {
                Some(m) => {
                    let methods: &mut Vec<(String, Compiled)> =
                        method_routes.entry(route).or_default();
                    methods.retain(|(other, _)| *other != m);
                    methods.push((m, compiled));
                }
                None => {
                    routes.insert(route, compiled);
                }
            }
        }
        // Groups: a member with a policy of its own keeps it; among prefixes the longest wins.
        let mut prefix_groups = Vec::new();
        for (members, policy) in self.groups {
            match members {
                Members::Prefix(prefix) => {
                    if prefix.is_empty() {
                        return Err(ConfigError::Invalid(
                            "a route group needs a non-empty prefix".into(),
                        ));
                    }
                    let compiled = compile(&format!("group {prefix}*"), policy)?;
                    prefix_groups.push((prefix, compiled));
                }
                Members::Routes(members) => {
                    let compiled = compile(&format!("group {members:?}"), policy)?;
                    for route in members {
                        routes.entry(route).or_insert_with(|| compiled.clone());
                    }
                }
            }
        }
        prefix_groups
            .sort_by_key(|(prefix, _): &(String, Compiled)| core::cmp::Reverse(prefix.len()));
        let fallback = Compiled::new(
            None,
            Vec::new().into(),
            RoutePolicy::new(),
            &application,
            &defaults,
        );
        Ok(Limiter {
            inner: Arc::new(Inner {
                defaults,
                application,
                meta,
                strategy,
                storage,
                paths: ScopePaths::new(self.prefix.as_deref().unwrap_or("LIMITER")),
                key,
                proxy,
                addressing,
                warned_unknown_client: AtomicBool::new(false),
                headers,
                clock,
                routes,
                method_routes,
                prefix_groups,
                fallback,
                on_breach: self.on_breach,
                on_breach_response: self.on_breach_response,
                on_meta_breach: self.on_meta_breach,
                scope_options: self.scope_options,
                defaults_exempt_when: self.defaults_exempt_when,
                application_exempt_when: self.application_exempt_when,
                request_filters: self.request_filters,
                disabled: self.disabled,
                defaults_per_method: self.defaults_per_method,
            }),
        })
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

fn retry_secs(r: RetryAfter) -> Option<u64> {
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

    fn policy(&self, method: &str, route: &str) -> &Compiled {
        let inner = &self.inner;
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
        // Bound before the await, so that only the boxed future lives across it: an
        // in-process store's decisions stay small and on the stack.
        let later = match self.check_now(req) {
            Checked::Done(decision) => return decision,
            Checked::Waiting(later) => later,
        };
        later.await
    }

    /// Every stage up to the store's verdict, and the rest when the store answers at once.
    fn check_now<'a>(&'a self, req: &'a RequestView<'a>) -> Checked<'a> {
        if self.inner.disabled {
            return Checked::Done(Ok(Decision::free(Kind::Unlimited)));
        }
        let compiled = self.policy(req.method(), req.route());
        if compiled.policy.exempt.all || self.inner.request_filters.iter().any(|f| f(req)) {
            return Checked::Done(Ok(Decision::free(Kind::Exempt)));
        }
        let ip = self.inner.proxy.client_ip(req);
        let key = compiled.policy.key.as_ref().unwrap_or(&self.inner.key);
        if ip.is_none()
            && !self
                .inner
                .warned_unknown_client
                .swap(true, Ordering::Relaxed)
        {
            tracing::warn!(target: "ratelimit", route = req.route(), policy = ?self.inner.addressing.unknown,
                "a request without a client address (no peer address, e.g. a Unix socket); further ones are not logged");
        }
        let identity = match key.identify(req, ip, &self.inner.addressing) {
            Identity::Key(identity) => identity,
            Identity::Unlimited => {
                tracing::debug!(target: "ratelimit", route = req.route(), "empty key: request not limited");
                return Checked::Done(Ok(Decision::free(Kind::Unlimited)));
            }
            Identity::Unauthorized(header) => {
                return Checked::Done(Ok(Decision::unauthorized(header)));
            }
            Identity::UnknownClient => return Checked::Done(Ok(Decision::unknown_client())),
        };
        let mut plan = Plan::default();
        self.plan(&mut plan, compiled, req, &identity, ip);
        if plan.scopes.iter().all(|s| *s == Scope::Meta) {
            return Checked::Done(Ok(Decision::free(Kind::Unlimited)));
        }
        // An in-process store answers at once, without the boxed future of an async call.
        match self.inner.storage.apply_now(Op::Hit, &plan.charges) {
            Some(verdict) => Checked::Done(self.interpret(compiled, &plan, verdict, req)),
            // The store answers asynchronously (over the network): the plan waits in a future
            // of its own.
            None => Checked::Waiting(Box::pin(self.check_later(compiled, plan, req))),
        }
    }

    /// The stages after a store that answers asynchronously.
    async fn check_later(
        &self,
        compiled: &Compiled,
        plan: Plan,
        req: &RequestView<'_>,
    ) -> Result<Decision, DecisionError> {
        let verdict = self.inner.storage.apply(Op::Hit, &plan.charges).await;
        self.interpret(compiled, &plan, verdict, req)
    }

    /// What to charge: the application limits, the route's (or a shared scope's, or the
    /// defaults), the route's guard limits by client address, and a gate per meta limit, each
    /// under its storage key.
    fn plan(
        &self,
        plan: &mut Plan,
        compiled: &Compiled,
        req: &RequestView<'_>,
        identity: &Who<'_>,
        ip: Option<IpAddr>,
    ) {
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
        let application = !policy.exempt.application
            && !inner.application.is_empty()
            && !holds(&inner.application_exempt_when);
        let route = route_limits
            .as_ref()
            .filter(|l| !route_exempt && !l.is_empty())
            .map(|l| match &policy.shared {
                Some(name) => (parts.of(&inner.paths.shared, Some(name)), l, Scope::Shared),
                None => (
                    parts.of_route(&inner.paths.route, req.route()),
                    l,
                    Scope::Route,
                ),
            });
        let defaults = (route_limits.is_none() || policy.combine)
            && !policy.exempt.defaults
            && !inner.defaults.is_empty()
            && !route_exempt
            && !holds(&inner.defaults_exempt_when);
        let meta = !policy.exempt.meta && !inner.meta.is_empty();
        // Every key of the identity, built in one allocation.
        let paths = &inner.paths;
        let mut lists: SmallVec<[ScopeParts<'_>; 4]> = SmallVec::new();
        if application {
            let method = options.application_per_method.then_some(&*method);
            lists.push(parts.of(&paths.app, method));
        }
        if let Some((route_parts, _, _)) = &route {
            lists.push(*route_parts);
        }
        if defaults {
            lists.push(default_parts.of_route(&paths.default, req.route()));
        }
        if meta {
            lists.push(parts.of(&paths.meta, None));
        }
        let lists: SmallVec<[(&ScopePath, &[&str]); 4]> =
            lists.iter().map(ScopeParts::as_list).collect();
        let mut keys = identity.keys_under(&lists);
        plan.cost = cost;
        plan.defaults_at_route_cost = policy.cost.is_some() || options.defaults_cost.is_none();
        let strategy = inner.strategy;
        if application && let Some(key) = keys.next() {
            plan.push(
                key,
                &inner.application,
                strategy,
                application_cost,
                Scope::Application,
            );
        }
        if let Some((_, limits, scope)) = route
            && let Some(key) = keys.next()
        {
            plan.push(key, limits, strategy, cost, scope);
        }
        if defaults && let Some(key) = keys.next() {
            plan.push(
                key,
                &inner.defaults,
                strategy,
                defaults_cost,
                Scope::Default,
            );
        }
        if !compiled.guard.is_empty()
            && let Identity::Key(address) = inner.addressing.identity(ip)
            && let Some(key) = address
                .keys_under(&[parts.of_route(&paths.guard, req.route()).as_list()])
                .next()
        {
            plan.push(key, &compiled.guard, strategy, cost, Scope::Guard);
        }
        if meta && let Some(key) = keys.next() {
            // A gate per meta limit: the request needs room under each; when it is rejected
            // all the same (by its own limits), the gate counts the breach, in this call.
            let gate = |key: Key, l: Limit| Charge::gate(key, l, strategy, 1).charging_on_reject(1);
            if let Some((&last, rest)) = inner.meta.split_last() {
                for &l in rest {
                    plan.charges.push(gate(key.clone(), l));
                    plan.scopes.push(Scope::Meta);
                }
                plan.charges.push(gate(key, last));
                plan.scopes.push(Scope::Meta);
            }
        }
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
            tracing::error!(target: "ratelimit", route = req.route(), error = %e, "rate-limit storage failed");
            DecisionError::Storage(e)
        };
        let verdict = verdict.map_err(failed)?;
        if verdict.statuses.len() != plan.charges.len() {
            return Err(failed(StorageError::Protocol {
                backend: "storage",
                detail: format!(
                    "{} statuses for a batch of {} charges",
                    verdict.statuses.len(),
                    plan.charges.len()
                ),
            }));
        }
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
        let retry_after = if rejected {
            retry_secs(verdict.retry_after())
        } else {
            None
        };
        let mut decision = Decision {
            kind: if rejected {
                Kind::Rejected
            } else {
                Kind::Allowed
            },
            limit: Some((limit, scope)),
            remaining: status.remaining,
            reset: status.reset,
            retry_after,
            headers: RateLimitHeaders::default(),
            answer: Answer::None,
            pending: None,
        };
        self.headers_for(
            compiled,
            plan,
            verdict,
            i,
            retry_after,
            &mut decision.headers,
        );
        if rejected {
            let meta = scope == Scope::Meta;
            tracing::info!(target: "ratelimit", route = req.route(), identity = plan.charges[i].key.identity(),
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
struct ScopePaths {
    app: ScopePath,
    route: ScopePath,
    shared: ScopePath,
    default: ScopePath,
    guard: ScopePath,
    meta: ScopePath,
}

impl ScopePaths {
    fn new(prefix: &str) -> Self {
        let path = |scope: &str| ScopePath::new(&[prefix, scope]);
        Self {
            app: path("app"),
            route: path("route"),
            shared: path("shared"),
            default: path("default"),
            guard: path("guard"),
            meta: path("meta"),
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
            items: ["", ""],
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

/// The scopes of one key: an encoded path, then up to two scopes to encode.
#[derive(Clone, Copy)]
struct ScopeParts<'a> {
    path: &'a ScopePath,
    items: [&'a str; 2],
    len: usize,
}

impl<'a> ScopeParts<'a> {
    fn as_list(&self) -> (&'a ScopePath, &[&'a str]) {
        (self.path, &self.items[..self.len])
    }
}
