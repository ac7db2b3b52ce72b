//! Rate limiting for Rust services that must say "100 per minute" and have it hold: in one
//! process, across many workers sharing Redis, and when Redis goes down. One dependency for
//! the whole `ratekeeper-*` family, the way `tokio` and `tracing` gather theirs: the crates stay
//! in step, and features choose what is built.
//!
//! The [Decision API](Limiter) is at the root; each layer below it is a module:
//!
//! | module | crate | what |
//! |---|---|---|
//! | [`primitives`] | `ratekeeper-core` | limit strings, clocks, the four strategies (`no_std`) |
//! | [`storage`] | `ratekeeper-storage` | the `Storage` trait, batches, keys, storage URIs |
//! | [`memory`] | `ratekeeper-memory` | `memory://`, and the synchronous `KeyedLimiter` |
//! | [`fallback`] | `ratekeeper-fallback` | surviving a store that goes down |
//! | [`stores`] | `ratekeeper-stores` | storage URIs: [`Stores`] opens what a URI names |
//! | `redis` (feature `redis`) | `ratekeeper-redis` | Redis and Valkey, node, cluster, sentinel |
//! | `memcached` (feature `memcached`) | `ratekeeper-memcached` | memcached |
//! | `integrations::tide` (feature `tide`) | `ratekeeper-tide` | Tide middleware, and `ratekeeper-listener`'s listener |
//! | `integrations::tower` (features `tower`, `axum`) | `ratekeeper-tower` | a tower layer for axum and hyper |
//!
//! ```
//! use ratekeeper::{Limiter, RequestView, RoutePolicy};
//!
//! # smol::block_on(async {
//! let limiter = Limiter::builder()
//!     .default_limits("200 per day; 50 per hour")
//!     .route("/auth/login", RoutePolicy::new().limit("5 per minute"))
//!     .build()?;
//! let req = RequestView::new("POST", "/auth/login").with_peer("203.0.113.7".parse()?);
//! assert!(limiter.check(&req).await?.is_allowed());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! A limiter opens `memory://` itself; for a Redis or memcached URI it is given [`Stores`],
//! which knows every backend this build has:
//!
//! ```
//! use ratekeeper::{Limiter, Stores};
//!
//! let limiter = Limiter::builder()
//!     .default_limits("200 per day")
//!     .stores(Stores::new())
//!     .storage_uri("redis://127.0.0.1:6379?prefix=myapp")
//!     .build()?;
//! # let _ = limiter;
//! # Ok::<(), ratekeeper::ConfigError>(())
//! ```
//!
//! # Feature flags
//!
//! - `redis` (default): the `redis` module and `redis://` (and the other Redis and Valkey)
//!   storage URIs.
//! - `tls`: `rediss://` through rustls.
//! - `tokio`: Redis connections opened inside a tokio runtime are driven by it.
//! - `memcached`: the `memcached` module and `memcached://` storage URIs.
//! - `metrics`: decisions, storage errors and fallback transitions through the `metrics`
//!   facade.
//! - `tide`: the `integrations::tide` module. `tower`: the `integrations::tower` module;
//!   `axum`: its axum integration.
//!
//! The adapters sit under `integrations` and the core under `primitives`, so that
//! `use ratekeeper::*` does not shadow `core`, `tide` or `tower`.
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub use ratekeeper_decision::*;

/// Limit strings, clocks and the four strategies as pure state machines (`ratekeeper-core`).
pub use ratekeeper_core as primitives;
/// The most used of them, at the root.
pub use ratekeeper_core::{
    Clock, Limit, ManualClock, ParseError, RetryAfter, StrategyKind, SystemClock, Timestamp, Unit,
    parse_limits,
};
/// Surviving a store that goes down (`ratekeeper-fallback`).
pub use ratekeeper_fallback as fallback;
/// `memcached://` storage (`ratekeeper-memcached`).
#[cfg(feature = "memcached")]
pub use ratekeeper_memcached as memcached;
/// `memory://` storage and the synchronous keyed limiter (`ratekeeper-memory`).
pub use ratekeeper_memory as memory;
/// Redis and Valkey storage (`ratekeeper-redis`).
#[cfg(feature = "redis")]
pub use ratekeeper_redis as redis;
/// The `Storage` trait, batches, keys and storage URIs (`ratekeeper-storage`).
pub use ratekeeper_storage as storage;
/// Storage URIs: what opens the store a URI names (`ratekeeper-stores`).
pub use ratekeeper_stores as stores;
/// Opens every store this build has a backend for.
pub use ratekeeper_stores::Stores;
/// The web frameworks' adapters, each behind its feature.
pub mod integrations {
    /// Tide middleware and listener (`ratekeeper-tide`).
    #[cfg(feature = "tide")]
    pub use ratekeeper_tide as tide;
    /// A tower layer for axum and hyper services (`ratekeeper-tower`).
    #[cfg(feature = "tower")]
    pub use ratekeeper_tower as tower;
}

/// The README's examples, compiled and run as doctests (the package's copy of the family's
/// README, which CI keeps equal to it).
// The README's programs need the adapters: with the features (as the workspace's test run
// and `cargo test --all-features` build this crate) they run; without, they are left out.
#[cfg(all(doctest, feature = "tide", feature = "axum", feature = "memcached"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
