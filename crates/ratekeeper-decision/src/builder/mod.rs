//! `LimiterBuilder`: every setting of a [`Limiter`], validated by `build()`.

mod build;

use crate::hooks::{
    BreachResponder, RequestCondition, RequestCost, StatusCondition, breach_hook_setters,
};
use core::fmt;
use std::sync::Arc;

use ratekeeper_core::{Clock, StrategyKind};
use ratekeeper_storage::{OpenStorage, Storage};

use crate::{
    client_ip::{ForwardedHeader, ProxyConfig},
    headers::HeaderOptions,
    key::{KeyFunction, UnknownClient},
    outage::Outage,
    policy::{BreachHook, RequestPredicate, ResponseHook, RoutePolicy},
};

/// How a route group finds its routes.
enum Members {
    /// Every route whose id starts with this.
    Prefix(String),
    /// These routes.
    Routes(Vec<String>),
}

/// Configures a [`Limiter`](crate::Limiter); [`LimiterBuilder::build`] validates everything.
#[derive(Default)]
#[must_use = "a builder does nothing until it is used"]
pub struct LimiterBuilder {
    /// The default and application limits with their options, each as a policy.
    defaults: RoutePolicy,
    application: RoutePolicy,
    meta: Option<String>,
    /// Default, application and meta limits counted by key functions of their own.
    meta_by: Vec<(String, KeyFunction)>,
    strategy: Option<StrategyKind>,
    storage: Option<Arc<dyn Storage>>,
    storage_uri: Option<String>,
    stores: Option<Arc<dyn OpenStorage>>,
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
    on_breach_response: Option<ResponseHook>,
    on_meta_breach: Option<ResponseHook>,
    request_filters: Vec<RequestPredicate>,
    exempt_clients: Vec<String>,
    disabled: bool,
    shadow: bool,
    in_flight_lease: Option<core::time::Duration>,
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
    /// The default limits and their options as one policy, as a route's are written: its
    /// `limit` (or `limit_set`), `limit_by`, `cost`, `deduct_when`, `exempt_when` and
    /// `per_method` apply to the defaults wherever they count (per route); `build()` refuses
    /// any other option. The `default_limits*` setters are shortcuts for parts of it.
    ///
    /// ```
    /// use ratekeeper_decision::{Limiter, RoutePolicy};
    ///
    /// let limiter = Limiter::builder()
    ///     .defaults(
    ///         RoutePolicy::new()
    ///             .limit("200 per day; 50 per hour")
    ///             .deduct_when(|status| status < 500)
    ///             .per_method(),
    ///     )
    ///     .build()?;
    /// # Ok::<(), ratekeeper_decision::ConfigError>(())
    /// ```
    pub fn defaults(mut self, policy: RoutePolicy) -> Self {
        self.defaults = policy;
        self
    }

    /// The application limits (one counter per client across every route) and their options
    /// as one policy; the same options apply as to [`defaults`](Self::defaults), and the
    /// `application_limits*` setters are shortcuts for parts of it.
    pub fn application(mut self, policy: RoutePolicy) -> Self {
        self.application = policy;
        self
    }

    /// How long an in-flight slot ([`RoutePolicy::concurrent`]) is held without a renewal
    /// (default 60 s; whole seconds, rounded up). A holder that dies without giving its slot
    /// back (a killed process) loses it when the lease ends; a request that runs longer keeps
    /// its slot by renewing it
    /// ([`Slots::keep_alive`](crate::adapter::Slots::keep_alive), which both adapters run).
    pub fn in_flight_lease(mut self, lease: core::time::Duration) -> Self {
        self.in_flight_lease = Some(lease);
        self
    }

    /// Limits for every route without its own (counted per route): `"200 per day; 50 per hour"`.
    pub fn default_limits(mut self, limits: &str) -> Self {
        self.defaults = self.defaults.limit(limits);
        self
    }

    /// More default limits, counted by `key` instead of the limiter's key function, in the
    /// same atomic batch as the others (see [`RoutePolicy::limit_by`]); they apply wherever the
    /// default limits do, per route.
    pub fn default_limits_by(mut self, limits: &str, key: KeyFunction) -> Self {
        self.defaults = self.defaults.limit_by(limits, key);
        self
    }

    /// More application limits, counted by `key` instead of the limiter's key function: one
    /// counter per identity `key` gives, across every route (for instance a tenant's quota
    /// beside each address's).
    ///
    /// ```
    /// use ratekeeper_decision::{KeyFunction, Limiter, RequestView};
    ///
    /// # smol::block_on(async {
    /// let tenant = KeyFunction::custom("tenant", |req, _| {
    ///     req.header("X-Tenant").unwrap_or("none").to_owned()
    /// });
    /// let limiter = Limiter::builder()
    ///     .application_limits("10 per minute")
    ///     .application_limits_by("2 per minute", tenant)
    ///     .build()?;
    /// let acme = [("X-Tenant", "acme")];
    /// let from = |ip: &str| RequestView::new("GET", "/").with_peer(ip.parse().unwrap()).with_headers(&acme);
    /// assert!(limiter.check(&from("10.0.0.1")).await?.is_allowed());
    /// assert!(limiter.check(&from("10.0.0.2")).await?.is_allowed());
    /// assert!(!limiter.check(&from("10.0.0.3")).await?.is_allowed(), "acme's 2 are spent");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn application_limits_by(mut self, limits: &str, key: KeyFunction) -> Self {
        self.application = self.application.limit_by(limits, key);
        self
    }

    /// More meta limits, counting breaches by `key` instead of the limiter's key function:
    /// while one is exhausted, every request `key` gives that identity to is rejected.
    pub fn meta_limits_by(mut self, limits: &str, key: KeyFunction) -> Self {
        self.meta_by.push((limits.to_owned(), key));
        self
    }

    /// The kill switch (default on): `false` makes every decision [`Kind::Unlimited`](crate::Kind::Unlimited) without a
    /// storage call (Flask-Limiter's `RATELIMIT_ENABLED`).
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.disabled = !enabled;
        self
    }

    /// Shadow mode for every route: requests are decided and counted as usual and carry their
    /// rate-limit headers, and a breach is logged and counted
    /// ([`Limiter::shadow_rejections`](crate::Limiter::shadow_rejections)), but no request is rejected: one that would have been is
    /// served as [`Kind::ShadowRejected`](crate::Kind::ShadowRejected). For trying new limits
    /// in production; [`RoutePolicy::shadow`] does it for one route.
    pub fn shadow(mut self, shadow: bool) -> Self {
        self.shadow = shadow;
        self
    }

    /// The default limits count each HTTP method apart, on every route (Flask-Limiter's
    /// `default_limits_per_method`; a route's own limits do with
    /// [`RoutePolicy::per_method`]).
    pub fn default_limits_per_method(mut self, per_method: bool) -> Self {
        self.defaults.per_method = per_method;
        self
    }

    /// What a request costs under the default limits, when its route sets no cost of its own
    /// (Flask-Limiter's `default_limits_cost`; default 1).
    pub fn default_limits_cost(mut self, cost: impl RequestCost) -> Self {
        self.defaults = self.defaults.cost(cost);
        self
    }

    /// Conditional deduction for the default limits (Flask-Limiter's
    /// `default_limits_deduct_when`): their charge is refunded when `counts(status)` is false
    /// ([`Decision::complete`](crate::Decision::complete)). A route's own [`RoutePolicy::deduct_when`] covers all its
    /// charges and wins.
    pub fn default_limits_deduct_when(mut self, counts: impl StatusCondition) -> Self {
        self.defaults = self.defaults.deduct_when(counts);
        self
    }

    /// The application limits count each HTTP method apart (Flask-Limiter's
    /// `application_limits_per_method`).
    pub fn application_limits_per_method(mut self, per_method: bool) -> Self {
        self.application.per_method = per_method;
        self
    }

    /// What a request costs under the application limits (Flask-Limiter's
    /// `application_limits_cost`; default 1, whatever the route's cost).
    pub fn application_limits_cost(mut self, cost: impl RequestCost) -> Self {
        self.application = self.application.cost(cost);
        self
    }

    /// Conditional deduction for the application limits (Flask-Limiter's
    /// `application_limits_deduct_when`); a route's own [`RoutePolicy::deduct_when`] wins.
    pub fn application_limits_deduct_when(mut self, counts: impl StatusCondition) -> Self {
        self.application = self.application.deduct_when(counts);
        self
    }

    /// The header options being configured (the defaults until set).
    pub(crate) fn headers_mut(&mut self) -> &mut HeaderOptions {
        self.headers.get_or_insert_with(HeaderOptions::default)
    }

    /// Skip the default limits for the requests `when` holds for (Flask-Limiter's
    /// `default_limits_exempt_when`).
    pub fn default_limits_exempt_when(mut self, when: impl RequestCondition) -> Self {
        self.defaults = self.defaults.exempt_when(when);
        self
    }

    /// Skip the application limits for the requests `when` holds for (Flask-Limiter's
    /// `application_limits_exempt_when`).
    pub fn application_limits_exempt_when(mut self, when: impl RequestCondition) -> Self {
        self.application = self.application.exempt_when(when);
        self
    }

    /// A request `filter` holds for is not limited at all: no limit is checked or counted, no
    /// storage call is made, and the decision is [`Kind::Exempt`](crate::Kind::Exempt) (Flask-Limiter's
    /// `request_filter`). Several filters: any one exempts.
    ///
    /// ```
    /// use ratekeeper_decision::{Kind, Limiter, RequestView};
    ///
    /// # smol::block_on(async {
    /// let limiter = Limiter::builder()
    ///     .default_limits("1 per hour")
    ///     .request_filter(|req| req.header("X-Load-Test") == Some("yes"))
    ///     .build()?;
    /// let headers = [("X-Load-Test", "yes")];
    /// let req = RequestView::new("GET", "/").with_peer("10.0.0.1".parse()?).with_headers(&headers);
    /// for _ in 0..3 {
    ///     assert_eq!(limiter.check(&req).await?.kind(), Kind::Exempt);
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn request_filter(mut self, filter: impl RequestCondition) -> Self {
        self.request_filters.push(Arc::new(filter));
        self
    }

    /// Clients in these networks (`"10.0.0.0/8, 192.0.2.7"`: addresses and CIDR networks,
    /// comma-separated) are not limited at all, as a request filter would exempt them: an
    /// allow-list (Flask-Limiter's whitelist filter). The address is the client's as resolved
    /// behind trusted proxies ([`RequestView::client_ip`](crate::RequestView::client_ip)). A list that does not parse fails
    /// [`build`](Self::build). Several calls add up.
    ///
    /// ```
    /// use ratekeeper_decision::{Kind, Limiter, RequestView};
    ///
    /// # smol::block_on(async {
    /// let limiter = Limiter::builder()
    ///     .default_limits("1 per hour")
    ///     .exempt_clients("10.0.0.0/8, 2001:db8::/32")
    ///     .build()?;
    /// let office = RequestView::new("GET", "/").with_peer("10.1.2.3".parse()?);
    /// let stranger = RequestView::new("GET", "/").with_peer("203.0.113.7".parse()?);
    /// for _ in 0..3 {
    ///     assert_eq!(limiter.check(&office).await?.kind(), Kind::Exempt);
    /// }
    /// assert!(limiter.check(&stranger).await?.is_allowed());
    /// assert!(!limiter.check(&stranger).await?.is_allowed());
    /// assert!(Limiter::builder().exempt_clients("10.0.0.0/33").build().is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn exempt_clients(mut self, networks: &str) -> Self {
        self.exempt_clients.push(networks.to_owned());
        self
    }

    /// Limits shared by every route (one counter per client across the application).
    pub fn application_limits(mut self, limits: &str) -> Self {
        self.application = self.application.limit(limits);
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

    /// The store, by URI, with its options in the query
    /// (`redis://h:6379?prefix=app&socket_timeout=0.2`). The limiter opens `memory://` itself
    /// and asks its [`stores`](Self::stores) for any other scheme; without them such a URI
    /// fails `build()` with [`ConfigError::NoStores`](crate::ConfigError::NoStores).
    ///
    /// ```
    /// use ratekeeper_decision::{ConfigError, Limiter};
    ///
    /// let limiter = Limiter::builder().storage_uri("memory://?max_keys=10000").build()?;
    /// # let _ = limiter;
    /// let no_stores = Limiter::builder().storage_uri("redis://127.0.0.1:6379").build();
    /// assert!(matches!(no_stores, Err(ConfigError::NoStores { scheme }) if scheme == "redis"));
    /// # Ok::<(), ConfigError>(())
    /// ```
    pub fn storage_uri(mut self, uri: &str) -> Self {
        self.storage_uri = Some(uri.to_owned());
        self
    }

    /// What opens the stores of [`storage_uri`](Self::storage_uri)s other than `memory://`:
    /// `ratekeeper::Stores` (of `ratekeeper-stores`) knows every backend of the family, with
    /// the features that bring them; an application may give an opener of its own.
    pub fn stores(mut self, stores: impl OpenStorage + 'static) -> Self {
        self.stores = Some(Arc::new(stores));
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
    /// [`DEFAULT_TRUSTED_PROXIES`](crate::proxy::DEFAULT_TRUSTED_PROXIES): loopback and private
    /// ranges; see [`LimiterBuilder::trusted_proxy_networks`]), and every hop walked before
    /// the client must be in them too; [`ProxyConfig::client_ip`](crate::proxy::ProxyConfig::client_ip)
    /// says how the list is read, malformed entries included.
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
    /// [`UnknownClient::Shared`](crate::keys::UnknownClient::Shared): one identity for all of them; the first is logged as a
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
    /// use ratekeeper_decision::{Limiter, RequestView, RoutePolicy};
    ///
    /// # smol::block_on(async {
    /// let limiter = Limiter::builder()
    ///     .default_limits("100 per minute")
    ///     .group_prefix("/admin/", RoutePolicy::new().limit("2 per minute").shared("admin"))
    ///     .route("/admin/login", RoutePolicy::new().limit("5 per minute"))
    ///     .build()?;
    /// let peer = "10.0.0.1".parse()?;
    /// let users = RequestView::new("GET", "/admin/users").with_peer(peer);
    /// let audit = RequestView::new("GET", "/admin/audit").with_peer(peer);
    /// assert!(limiter.check(&users).await?.is_allowed());
    /// assert!(limiter.check(&audit).await?.is_allowed());
    /// assert!(!limiter.check(&users).await?.is_allowed(), "two for the whole group");
    /// let login = RequestView::new("POST", "/admin/login").with_peer(peer);
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

    /// What the limiter does while its storage is unavailable, and how long it waits for it
    /// (see [`Outage`]; none by default: storage errors reach the application).
    pub fn on_outage(mut self, outage: Outage) -> Self {
        self.outage = Some(outage);
        self
    }

    breach_hook_setters! {
        /// The response body of every rejection whose route has no hook of its own.
        body;
        /// The whole response of every rejection whose route has no hook of its own (status,
        /// content type, headers, body: Flask-Limiter's `on_breach` returning a response); it wins
        /// over [`on_breach`](Self::on_breach).
        ///
        /// ```
        /// use ratekeeper_decision::{breach::BreachResponse, Limiter, RequestView};
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
        /// let req = RequestView::new("GET", "/").with_peer("10.0.0.1".parse()?);
        /// limiter.check(&req).await?;
        /// let rejected = limiter.check(&req).await?;
        /// assert_eq!(rejected.status(), 503);
        /// assert_eq!(rejected.content_type(), "text/plain");
        /// assert_eq!(rejected.body(), Some("over 1 per 1 minute"));
        /// # Ok::<(), Box<dyn std::error::Error>>(())
        /// # }).unwrap();
        /// ```
        response;
    }

    /// The response when a meta limit rejects a request (too many breaches), instead of the
    /// route's or the limiter's breach hooks.
    pub fn on_meta_breach(mut self, response: impl BreachResponder) -> Self {
        self.on_meta_breach = Some(Arc::new(response));
        self
    }
}
