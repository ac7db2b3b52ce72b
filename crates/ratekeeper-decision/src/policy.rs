//! Per-route policies: which limits, what a request costs, what is exempt, how to count.

use crate::hooks::{RequestCondition, RequestCost, StatusCondition, breach_hook_setters};
use core::fmt;
use std::sync::Arc;

use ratekeeper_core::{Limit, parse_limits};

use crate::{error::ConfigError, key::KeyFunction, request::RequestView, response::BreachResponse};

/// A parsed list of limits, cheap to clone: what dynamic limit functions return.
pub type LimitSet = Arc<[Limit]>;

/// Parses a limit string (`"200 per day; 50 per hour"`) into a [`LimitSet`](crate::limits::LimitSet), once, at start-up.
pub fn limit_set(input: &str) -> Result<LimitSet, ConfigError> {
    parse_set("limit set", input)
}

pub(crate) fn parse_set(context: &str, input: &str) -> Result<LimitSet, ConfigError> {
    parse_limits(input)
        .collect::<Result<Vec<_>, _>>()
        .map(Into::into)
        .map_err(|error| ConfigError::Limit {
            context: context.to_owned(),
            input: input.to_owned(),
            error,
        })
}

type DynamicLimits = dyn Fn(&RequestView<'_>) -> LimitSet + Send + Sync;
pub(crate) type CostFn = dyn Fn(&RequestView<'_>) -> u64 + Send + Sync;
pub(crate) type SettleFn = dyn Fn(u64) -> u64 + Send + Sync;
type StatusPredicate = dyn Fn(u16) -> bool + Send + Sync;
/// A predicate on a request: exemptions and request filters.
pub(crate) type RequestPredicate = Arc<dyn Fn(&RequestView<'_>) -> bool + Send + Sync>;
pub(crate) type BreachHook = Arc<dyn Fn(&Breach<'_>) -> String + Send + Sync>;
pub(crate) type ResponseHook = Arc<dyn Fn(&Breach<'_>) -> BreachResponse + Send + Sync>;

#[derive(Clone)]
pub(crate) enum LimitSource {
    Text(String),
    Set(LimitSet),
    Dynamic(Arc<DynamicLimits>),
}

/// What a rejected request was rejected by, for breach hooks that write the response body.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct Breach<'a> {
    /// The limit that rejected it.
    pub limit: &'a Limit,
    /// Whole seconds until a retry can succeed (`None`: never, the cost exceeds the limit).
    pub retry_after: Option<u64>,
    /// The route id.
    pub route: &'a str,
    /// Whether a meta limit (too many breaches) rejected it.
    pub meta: bool,
    /// Whether an in-flight limit rejected it ([`RoutePolicy::concurrent`]): `limit`'s
    /// amount is then the slots, and its window the lease.
    pub in_flight: bool,
}

/// Which limits a route skips.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Exemptions {
    /// Everything: never limited, never counted (meta limits included).
    pub all: bool,
    /// The default limits.
    pub defaults: bool,
    /// The application (shared by every route) limits.
    pub application: bool,
    /// Meta limits: neither gated by them nor counted toward them.
    pub meta: bool,
}

/// How one route is limited. Limits given as strings are parsed by the limiter's `build()`.
///
/// ```
/// use ratekeeper_decision::RoutePolicy;
///
/// let login = RoutePolicy::new().limit("5 per minute");
/// let upload = RoutePolicy::new()
///     .limit("100 per minute")
///     .cost(|req| if req.content_length().unwrap_or(0) > 10 << 20 { 5 } else { 1 });
/// let health = RoutePolicy::new().exempt();
/// # let _ = (login, upload, health);
/// ```
#[derive(Clone, Default)]
#[must_use = "a builder does nothing until it is used"]
pub struct RoutePolicy {
    pub(crate) limits: Option<LimitSource>,
    pub(crate) cost: Option<Arc<CostFn>>,
    pub(crate) exempt: Exemptions,
    pub(crate) per_method: bool,
    pub(crate) shared: Option<String>,
    pub(crate) combine: bool,
    pub(crate) deduct_when: Option<Arc<StatusPredicate>>,
    pub(crate) on_breach: Option<BreachHook>,
    pub(crate) key: Option<KeyFunction>,
    pub(crate) keyed: Vec<(String, KeyFunction)>,
    pub(crate) guard: Option<String>,
    pub(crate) settle: Option<Arc<SettleFn>>,
    pub(crate) exempt_when: Option<RequestPredicate>,
    pub(crate) on_breach_response: Option<ResponseHook>,
    pub(crate) shadow: bool,
    pub(crate) in_flight: InFlight,
}

/// In-flight limits: how many requests may hold a slot at once, per client and in all.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct InFlight {
    /// Per client (by the policy's key function).
    pub(crate) per_client: Option<u64>,
    /// Across every client.
    pub(crate) total: Option<u64>,
}

impl InFlight {
    pub(crate) fn is_empty(self) -> bool {
        self.per_client.is_none() && self.total.is_none()
    }
}

impl fmt::Debug for RoutePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let limits = match &self.limits {
            None => "defaults".to_owned(),
            Some(LimitSource::Text(t)) => t.clone(),
            Some(LimitSource::Set(s)) => format!("{s:?}"),
            Some(LimitSource::Dynamic(_)) => "dynamic".to_owned(),
        };
        f.debug_struct("RoutePolicy")
            .field("limits", &limits)
            .field("exempt", &self.exempt)
            .field("per_method", &self.per_method)
            .field("shared", &self.shared)
            .field("combine", &self.combine)
            .field("cost", &self.cost.is_some())
            .field("deduct_when", &self.deduct_when.is_some())
            .field("guard", &self.guard)
            .field("limits_by", &self.keyed)
            .field("settle", &self.settle.is_some())
            .field("exempt_when", &self.exempt_when.is_some())
            .field("in_flight", &self.in_flight)
            .finish_non_exhaustive()
    }
}

/// A policy with these limits and nothing else: `"5 per minute".into()`.
impl From<&str> for RoutePolicy {
    fn from(limits: &str) -> Self {
        Self::new().limit(limits)
    }
}

impl RoutePolicy {
    /// A policy that uses the default limits.
    pub fn new() -> Self {
        Self::default()
    }

    /// This route's limits, replacing the defaults (unless [`RoutePolicy::combine_with_defaults`]).
    pub fn limit(mut self, limits: &str) -> Self {
        self.limits = Some(LimitSource::Text(limits.to_owned()));
        self
    }

    /// This route's limits, already parsed.
    pub fn limit_set(mut self, limits: LimitSet) -> Self {
        self.limits = Some(LimitSource::Set(limits));
        self
    }

    /// Limits chosen per request (tiers from the authenticated user), from sets parsed at
    /// start-up with [`limit_set`](crate::limits::limit_set).
    pub fn dynamic(
        mut self,
        f: impl Fn(&RequestView<'_>) -> LimitSet + Send + Sync + 'static,
    ) -> Self {
        self.limits = Some(LimitSource::Dynamic(Arc::new(f)));
        self
    }

    /// What a request costs (default 1), per request.
    pub fn cost(mut self, f: impl RequestCost) -> Self {
        self.cost = Some(Arc::new(f));
        self
    }

    /// The cost once the request body's size is known (`body_bytes`: what the handler read),
    /// when [`cost`](Self::cost) had to assume the worst (a chunked body has no
    /// `Content-Length`). The decision reserves the cost up front; after the response,
    /// [`Decision::finish`](crate::Decision::finish) refunds the difference when the settled
    /// cost is lower. A settled cost is never charged above what was reserved: a request gets
    /// no second chance to over-admit.
    ///
    /// ```
    /// use ratekeeper_decision::RoutePolicy;
    ///
    /// const LARGE: u64 = 10 << 20;
    /// let upload = RoutePolicy::new()
    ///     .limit("100 per minute")
    ///     // Unknown length: assume a large body.
    ///     .cost(|req| match req.content_length() {
    ///         Some(n) if n <= LARGE => 1,
    ///         _ => 5,
    ///     })
    ///     .settle(|body_bytes| if body_bytes > LARGE { 5 } else { 1 });
    /// # let _ = upload;
    /// ```
    pub fn settle(mut self, cost: impl Fn(u64) -> u64 + Send + Sync + 'static) -> Self {
        self.settle = Some(Arc::new(cost));
        self
    }

    /// Exempt from everything: never limited, never counted, not even by meta limits.
    pub fn exempt(mut self) -> Self {
        self.exempt.all = true;
        self
    }

    /// Skip this route's limits for the requests `when` holds for (Flask-Limiter's
    /// `exempt_when`): its own limits, or the default limits when it counts under those (both,
    /// with [`combine_with_defaults`](Self::combine_with_defaults)). Application, guard and
    /// meta limits still apply; see
    /// [`LimiterBuilder::request_filter`](crate::LimiterBuilder::request_filter) to exempt a
    /// request from everything.
    ///
    /// ```
    /// use ratekeeper_decision::RoutePolicy;
    ///
    /// // Internal health checkers are not limited on this route.
    /// let status = RoutePolicy::new()
    ///     .limit("10 per minute")
    ///     .exempt_when(|req| req.header("X-Internal-Check") == Some("1"));
    /// # let _ = status;
    /// ```
    pub fn exempt_when(mut self, when: impl RequestCondition) -> Self {
        self.exempt_when = Some(Arc::new(when));
        self
    }

    /// Shadow mode for this route: its requests are decided and counted as usual, but one that
    /// would have been rejected is served
    /// ([`Kind::ShadowRejected`](crate::Kind::ShadowRejected); see
    /// [`LimiterBuilder::shadow`](crate::LimiterBuilder::shadow)).
    pub fn shadow(mut self) -> Self {
        self.shadow = true;
        self
    }

    /// Skip the default limits.
    pub fn exempt_from_defaults(mut self) -> Self {
        self.exempt.defaults = true;
        self
    }

    /// Skip the application limits.
    pub fn exempt_from_application(mut self) -> Self {
        self.exempt.application = true;
        self
    }

    /// Skip meta limits (neither gated nor counted).
    pub fn exempt_from_meta(mut self) -> Self {
        self.exempt.meta = true;
        self
    }

    /// Separate counters per HTTP method (GET and POST of this route apart).
    pub fn per_method(mut self) -> Self {
        self.per_method = true;
        self
    }

    /// Count this route's limits in a scope shared with every route that names it.
    pub fn shared(mut self, scope: &str) -> Self {
        self.shared = Some(scope.to_owned());
        self
    }

    /// An in-flight limit: at most `n` of this route's requests per client (by the route's key
    /// function) hold a slot at once. The slot is taken with the request's rate limits, all
    /// or nothing, and given back when the response is finished (its body sent, the client
    /// gone, the handler panicked or the request dropped); a holder that never gives it back
    /// (its process was killed) loses it when its lease ends
    /// ([`LimiterBuilder::in_flight_lease`](crate::LimiterBuilder::in_flight_lease)). A
    /// request refused for want of a slot gets 429 with the in-flight limit's headers (limit
    /// and remaining; no reset or `Retry-After`: a slot frees when a response ends, which
    /// nobody can promise). On a route with [`shared`](Self::shared), the slots are the shared
    /// scope's.
    ///
    /// ```
    /// use ratekeeper_decision::RoutePolicy;
    ///
    /// // 30 reports a minute, at most 2 running per client and 20 in all.
    /// let report = RoutePolicy::new()
    ///     .limit("30 per minute")
    ///     .concurrent(2)
    ///     .concurrent_shared(20);
    /// # let _ = report;
    /// ```
    pub fn concurrent(mut self, n: u64) -> Self {
        self.in_flight.per_client = Some(n);
        self
    }

    /// An in-flight limit across every client: at most `n` of this route's requests (or its
    /// shared scope's) hold a slot at once, whoever sends them. See
    /// [`concurrent`](Self::concurrent).
    pub fn concurrent_shared(mut self, n: u64) -> Self {
        self.in_flight.total = Some(n);
        self
    }

    /// Apply the default limits as well as this route's.
    pub fn combine_with_defaults(mut self) -> Self {
        self.combine = true;
        self
    }

    /// Conditional deduction: the cost is reserved with the decision and refunded by
    /// [`Decision::complete`](crate::Decision::complete) when `counts(status)` is false.
    pub fn deduct_when(mut self, counts: impl StatusCondition) -> Self {
        self.deduct_when = Some(Arc::new(counts));
        self
    }

    breach_hook_setters! {
        /// The response body when this route rejects a request.
        body;
        /// The whole response when this route rejects a request (status, content type, headers,
        /// body); it wins over [`on_breach`](Self::on_breach) and over the limiter's hooks.
        response;
    }

    /// A key function for this route only.
    pub fn key(mut self, key: KeyFunction) -> Self {
        self.key = Some(key);
        self
    }

    /// More limits for this route, counted by `key` instead of the route's key function, in
    /// the same atomic batch as its other limits (Flask-Limiter's
    /// `@limiter.limit("100/minute", key_func=...)` stacked on another `@limiter.limit`).
    /// Call it again for more groups; each keeps counters of its own, even where its key
    /// function gives the same identity as another's. Like [`limit`](Self::limit), it makes
    /// the route skip the default limits unless
    /// [`combine_with_defaults`](Self::combine_with_defaults). A group whose key function
    /// gives an empty identity is skipped for that request.
    ///
    /// ```
    /// use ratekeeper_decision::{KeyFunction, Limiter, RequestView, RoutePolicy};
    ///
    /// # smol::block_on(async {
    /// // 2 per minute per address, and 3 per minute for all clients together.
    /// let everyone = KeyFunction::custom("all", |_, _| "everyone".to_owned());
    /// let limiter = Limiter::builder()
    ///     .route(
    ///         "/search",
    ///         RoutePolicy::new().limit("2 per minute").limit_by("3 per minute", everyone),
    ///     )
    ///     .build()?;
    /// let from = |ip: &str| RequestView::new("GET", "/search").with_peer(ip.parse().unwrap());
    /// assert!(limiter.check(&from("10.0.0.1")).await?.is_allowed());
    /// assert!(limiter.check(&from("10.0.0.1")).await?.is_allowed());
    /// assert!(!limiter.check(&from("10.0.0.1")).await?.is_allowed(), "its address's 2");
    /// assert!(limiter.check(&from("10.0.0.2")).await?.is_allowed());
    /// assert!(!limiter.check(&from("10.0.0.3")).await?.is_allowed(), "everyone's 3");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn limit_by(mut self, limits: &str, key: KeyFunction) -> Self {
        self.keyed.push((limits.to_owned(), key));
        self
    }

    /// Guard limits: counted by the client's address whatever the key function says, in the
    /// same atomic batch as the route's own limits and at the same cost (Flask-Limiter writes
    /// this as a second limit with `key_func=get_remote_address`). With limits counted per
    /// credential, a guard caps what one address gets however many credentials it presents.
    /// A request without a client address is counted as
    /// [`LimiterBuilder::unknown_client`](crate::LimiterBuilder::unknown_client) says.
    ///
    /// ```
    /// use ratekeeper_decision::RoutePolicy;
    ///
    /// // 100 per minute per API key, and no address more than 300 whatever keys it uses.
    /// let api = RoutePolicy::new().limit("100 per minute").guard("300 per minute");
    /// # let _ = api;
    /// ```
    pub fn guard(mut self, limits: &str) -> Self {
        self.guard = Some(limits.to_owned());
        self
    }
}
