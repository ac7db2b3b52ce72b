//! Framework-agnostic rate-limit decisions: everything a Flask-Limiter `Limiter` configures,
//! expressed once, for any web framework. An adapter (Tide, tower) fills a [`RequestView`],
//! calls [`Limiter::check`], and turns the [`Decision`] into a response.
//!
//! # The seed configuration, section by section
//!
//! ```
//! use std::sync::Arc;
//! use ratekeeper_core::{ManualClock, StrategyKind, Timestamp};
//! use ratekeeper_decision::{proxy::ForwardedHeader, headers::HeaderOptions, KeyFunction, Limiter, RequestView, RoutePolicy, limits::limit_set};
//!
//! # smol::block_on(async {
//! // Tiers, parsed once at start-up.
//! let (free, basic, premium) =
//!     (limit_set("20 per minute")?, limit_set("100 per minute")?, limit_set("500 per minute")?);
//! let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_700_000_000)));
//!
//! let limiter = Limiter::builder()
//!     // Defaults for every route without its own limits, counted per route.
//!     .default_limits("200 per day; 50 per hour")
//!     // Breaches: five per minute, then the client is shut out everywhere.
//!     .meta_limits("5 per minute")
//!     // Storage (memory:// is the default; redis://, memcached:// and the others are opened
//!     // by the stores given with `.stores(...)`, see ratekeeper-stores) and strategy.
//!     .storage_uri("memory://")
//!     .strategy(StrategyKind::FixedWindow)
//!     // Keys: an API key the app knows, else the client address; one trusted proxy.
//!     .key_function(KeyFunction::credential("X-API-Key", "apikey", |key| {
//!         matches!(key, "basic-key" | "premium-key").then(|| key.to_owned())
//!     }))
//!     .trusted_proxies(1, ForwardedHeader::XForwardedFor)
//!     // Both header families.
//!     .headers(HeaderOptions::all())
//!     // Per-route limits replace the defaults.
//!     .route("/auth/login", RoutePolicy::new().limit("5 per minute"))
//!     .route("/health", RoutePolicy::new().exempt())
//!     // Dynamic limits: the tier follows the API key, per request.
//!     .route("/api/generate", RoutePolicy::new().dynamic(move |req| {
//!         match req.header("X-API-Key") {
//!             Some("basic-key") => basic.clone(),
//!             Some("premium-key") => premium.clone(),
//!             _ => free.clone(),
//!         }
//!     }))
//!     // Costs: large uploads cost 5.
//!     .route("/api/upload", RoutePolicy::new().limit("100 per minute").cost(|req| {
//!         if req.content_length().unwrap_or(0) > 10 << 20 { 5 } else { 1 }
//!     }))
//!     // Conditional deduction: only successful responses count.
//!     .route("/api/process", RoutePolicy::new().limit("10 per minute").deduct_when(|s| s == 200))
//!     .clock(clock)
//!     .build()?;
//!
//! let headers = [("X-Forwarded-For", "198.51.100.4"), ("X-API-Key", "premium-key")];
//! let req = RequestView::new("GET", "/api/generate")
//!     .with_peer("10.0.0.2".parse().unwrap())
//!     .with_headers(&headers);
//! let decision = limiter.check(&req).await?;
//! assert!(decision.is_allowed());
//! assert_eq!(decision.remaining(), 499);
//!
//! // Conditional deduction is a second step, once the status is known.
//! let process = RequestView::new("GET", "/api/process").with_peer("10.0.0.2".parse().unwrap());
//! let reserved = limiter.check(&process).await?;
//! assert_eq!(reserved.remaining(), 9);
//! assert!(reserved.complete(400).await?, "a 400 does not count: refunded");
//! assert_eq!(limiter.check(&process).await?.remaining(), 9);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! ## Flask-Limiter's names, and ours
//!
//! Configuration keys (`RATELIMIT_*`) are read by [`LimiterBuilder::from_env`] and
//! [`LimiterBuilder::with_config`] ([`CONFIG_KEYS`](crate::config::CONFIG_KEYS)).
//!
//! | Flask-Limiter | here | where it differs |
//! |---|---|---|
//! | `default_limits`, `RATELIMIT_DEFAULT` | [`LimiterBuilder::default_limits`] | counted per route, as in Flask-Limiter |
//! | `default_limits_per_method`, `RATELIMIT_DEFAULTS_PER_METHOD` | [`LimiterBuilder::default_limits_per_method`] | |
//! | `default_limits_exempt_when` | [`LimiterBuilder::default_limits_exempt_when`] | |
//! | `default_limits_deduct_when` | [`LimiterBuilder::default_limits_deduct_when`] + [`Decision::complete`] | reserve, then refund (below) |
//! | `default_limits_cost` | [`LimiterBuilder::default_limits_cost`] | a route's own cost wins |
//! | `application_limits`, `RATELIMIT_APPLICATION` | [`LimiterBuilder::application_limits`] | one counter per client |
//! | `application_limits_per_method`, `_exempt_when`, `_deduct_when`, `_cost` | [`LimiterBuilder::application_limits_per_method`], [`application_limits_exempt_when`](LimiterBuilder::application_limits_exempt_when), [`application_limits_deduct_when`](LimiterBuilder::application_limits_deduct_when), [`application_limits_cost`](LimiterBuilder::application_limits_cost) | |
//! | `@limiter.limit("5 per minute")` | [`LimiterBuilder::route`] + [`RoutePolicy::limit`]; [`LimiterBuilder::route_method`] for one method | |
//! | `exempt_when=` | [`RoutePolicy::exempt_when`] | also skips the defaults a route without limits counts under |
//! | `@limiter.exempt` | [`RoutePolicy::exempt`], `exempt_from_defaults/application/meta` | |
//! | `@limiter.request_filter` | [`LimiterBuilder::request_filter`] | the decision says [`Kind::Exempt`] |
//! | limits on a Blueprint | [`LimiterBuilder::group_prefix`], [`LimiterBuilder::group`] (Tide: `RateLimit::under` for nested apps) | a route's own policy replaces the group's |
//! | `per_method=True` | [`RoutePolicy::per_method`] | |
//! | `shared_limit(scope=...)` | [`RoutePolicy::shared`] | |
//! | `key_func`, `get_remote_address` | [`KeyFunction`] (namespaced: `ip:`, `apikey:`, yours); [`KeyFunction::credential`] for API keys | see below |
//! | a second limit with `key_func=get_remote_address` | [`RoutePolicy::guard`] | |
//! | `@limiter.limit("100/minute", key_func=...)` beside another limit | [`RoutePolicy::limit_by`]; [`LimiterBuilder::default_limits_by`], [`application_limits_by`](LimiterBuilder::application_limits_by), [`meta_limits_by`](LimiterBuilder::meta_limits_by) for the other scopes | in the same atomic batch; each group keeps its own counters |
//! | `ProxyFix` / `X-Forwarded-For` | [`LimiterBuilder::trusted_proxies`] | never trusted by default |
//! | dynamic limits (callables) | [`RoutePolicy::dynamic`] over sets parsed once with [`limit_set`](crate::limits::limit_set) | |
//! | `cost=` | [`RoutePolicy::cost`] (and [`RoutePolicy::settle`] once the body is read) | |
//! | `deduct_when=` | [`RoutePolicy::deduct_when`] + [`Decision::complete`] | covers every charge of the request |
//! | `meta_limits`, `RATELIMIT_META` | [`LimiterBuilder::meta_limits`] | |
//! | `on_breach` (a body or a `Response`) | [`RoutePolicy::on_breach`], [`LimiterBuilder::on_breach`] (a body); `on_breach_response` on both (a [`BreachResponse`](crate::breach::BreachResponse)) | |
//! | `on_meta_breach` | [`LimiterBuilder::on_meta_breach`] | |
//! | `storage_uri`, `RATELIMIT_STORAGE_URI` | [`LimiterBuilder::storage_uri`] / [`LimiterBuilder::storage`] | |
//! | `strategy`, `RATELIMIT_STRATEGY` | [`LimiterBuilder::strategy`] | `gcra` too |
//! | `key_prefix`, `RATELIMIT_KEY_PREFIX` | [`LimiterBuilder::key_prefix`] | |
//! | `enabled`, `RATELIMIT_ENABLED` | [`LimiterBuilder::enabled`] | the decision says [`Kind::Unlimited`] |
//! | `headers_enabled`, `RATELIMIT_HEADERS_ENABLED` | [`HeaderOptions`](crate::headers::HeaderOptions) | `X-RateLimit-*` on by default (off in Flask-Limiter); IETF fields too; `X-RateLimit-Reset` is `ceil(reset)`, one second earlier than Flask-Limiter's `floor(reset) + 1` when the reset is a whole second |
//! | `header_name_mapping`, `RATELIMIT_HEADER_LIMIT`/`_REMAINING`/`_RESET`/`_RETRY_AFTER` | [`HeaderOptions::rename`](crate::headers::HeaderOptions::rename) | names checked at build |
//! | `retry_after`, `RATELIMIT_HEADER_RETRY_AFTER_VALUE` | [`HeaderOptions::retry_after_http_date`](crate::headers::HeaderOptions::retry_after_http_date), [`RetryAfterFormat`](crate::headers::RetryAfterFormat) | the date is when a retry can succeed |
//! | `swallow_errors`, `RATELIMIT_SWALLOW_ERRORS` | [`LimiterBuilder::on_outage`] with [`Outage::fail_open`] | without it, storage errors come back as [`DecisionError`] |
//! | `in_memory_fallback`, `RATELIMIT_IN_MEMORY_FALLBACK` | [`LimiterBuilder::on_outage`] with [`Outage::in_memory_fallback`] | per client and route, as in Flask-Limiter ([`Outage::scope`]: per client across routes); an extra cap on the request's own limits, never looser than normal operation |
//! | `in_memory_fallback_enabled`, `RATELIMIT_IN_MEMORY_FALLBACK_ENABLED` | [`LimiterBuilder::on_outage`] with [`Outage::fallback_to_memory`] | |
//! | the app's config | [`LimiterBuilder::from_env`], [`LimiterBuilder::with_config`] | whatever is applied last wins |
//! | `limiter.current_limits` | [`Limiter::current_limits`] | every scope's limits, meta included |
//!
//! # Where this differs from Flask-Limiter, on purpose
//!
//! - **One atomic batch.** Application, route (or default) and meta limits of a request are
//!   evaluated together and charged all or nothing: a request the route rejects does not use up
//!   the application limit (Flask-Limiter charges it in an earlier phase).
//! - **Reserve, then refund.** `deduct_when` charges with the decision and refunds after the
//!   response when the status should not count, so concurrent requests can never over-admit
//!   (Flask-Limiter tests first and charges afterwards). A refund names the instant the store
//!   charged at and gives back only what that charge still holds: a request that fails after
//!   its window closed gives nothing to the next window.
//! - **Fail at start-up.** Every limit string is parsed by `build()`, which names the string and
//!   the byte of the error; nothing fails on the first request.
//! - **Forwarded headers are never trusted by default**; with `n` trusted hops the rightmost
//!   address that no trusted proxy vouches for is the client, and only when the peer is in a
//!   trusted proxy network ([`LimiterBuilder::trusted_proxy_networks`], default loopback and
//!   private ranges): a client that reaches the application directly cannot claim to be anyone.
//! - **An address is a client, however it is written or multiplied.** An IPv4-mapped IPv6
//!   address is its IPv4 address; IPv6 clients are counted by /64 ([`LimiterBuilder::ipv6_prefix`]),
//!   since one host holds a whole /64. A request without an address (a Unix socket) counts
//!   against one shared identity unless configured otherwise ([`UnknownClient`](crate::keys::UnknownClient)); Flask-Limiter
//!   leaves it unlimited.
//! - **A client cannot mint identities.** Whatever a client sends in a header is its to choose,
//!   so a key function that counts by a header's value as it comes gives a fresh quota per made-up
//!   value. [`KeyFunction::credential`] counts by a credential only when the application's
//!   validator recognises it, and by the client address otherwise (or answers 401:
//!   [`KeyFunction::rejecting_unknown`]); [`KeyFunction::header_or_ip`] is for headers a
//!   gateway sets, and says so.
//!
//! # Feature flags
//!
//! The crate names no storage backend: it opens `memory://` itself and asks the stores it is
//! given ([`LimiterBuilder::stores`]; `ratekeeper-stores` has every backend) for the rest.
//!
//! - `metrics`: decisions by route, scope and outcome, storage errors, time in the store and
//!   the fallback's transitions, through the [`metrics`](https://docs.rs/metrics) facade to
//!   whatever recorder the application installs ([`metrics`](mod@metrics) lists the names).
//!
//! Events go through `tracing` with its `log` bridge, so a `log` logger (Tide's) shows
//! breaches and storage errors too.
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]

mod admission;
mod builder;
mod client_ip;
pub mod config;
mod decision;
mod error;
mod field;
pub mod headers;
pub mod hooks;
mod key;
mod keyed;
mod limiter;
pub mod metrics;
mod network;
pub mod outage;
mod policy;
mod request;
mod response;
mod route;
mod slots;
mod stores;

// What a user starts from; the rest sits in the modules below.
pub use builder::LimiterBuilder;
pub use decision::{Decision, Kind};
pub use error::{ConfigError, DecisionError};
pub use key::KeyFunction;
pub use limiter::Limiter;
pub use outage::Outage;
pub use policy::RoutePolicy;
pub use request::RequestView;

/// Who a request is counted as: key functions and what to do without a client.
pub mod keys {
    pub use crate::key::{KeyFunction, UnknownClient, UnknownCredential};
}

/// Client addresses behind proxies: which proxies are trusted, and how they forward.
pub mod proxy {
    pub use crate::client_ip::{ForwardedHeader, ProxyConfig};
    pub use crate::network::{DEFAULT_TRUSTED_PROXIES, Network, NetworkError};
}

/// Limits as values: parsed sets, the scopes a decision's limits come from, exemptions.
pub mod limits {
    pub use crate::decision::Scope;
    pub use crate::limiter::CurrentLimit;
    pub use crate::policy::{Exemptions, LimitSet, limit_set};
}

/// Rejections: what a breach hook is told, and the response it can give.
pub mod breach {
    pub use crate::policy::Breach;
    pub use crate::response::BreachResponse;
}

/// For HTTP adapters of other frameworks: the request-to-response flow, the request's
/// headers and extensions, and route policies compiled for one limiter.
pub mod adapter {
    pub use crate::admission::{Admission, Refusal, UNAVAILABLE_BODY};
    pub use crate::request::{Headers, MAX_EXTENSIONS, NoHeaders};
    pub use crate::route::CompiledPolicy;
    pub use crate::slots::Slots;
}
