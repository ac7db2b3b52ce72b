//! Rate limiting for Rust services that must say "100 per minute" and have it hold: in one
//! process, across many workers sharing Redis, and when Redis goes down. One dependency for
//! the whole `ratelimit-*` family, the way `tokio` and `tracing` gather theirs: the crates stay
//! in step, and features choose what is built.
//!
//! The [Decision API](Limiter) is at the root; each layer below it is a module:
//!
//! | module | crate | what |
//! |---|---|---|
//! | [`core`] | `ratelimit-core` | limit strings, clocks, the four strategies (`no_std`) |
//! | [`storage`] | `ratelimit-storage` | the `Storage` trait, batches, keys, storage URIs |
//! | [`memory`] | `ratelimit-memory` | `memory://`, and the synchronous `KeyedLimiter` |
//! | [`fallback`] | `ratelimit-fallback` | surviving a store that goes down |
//! | `redis` (feature `redis`) | `ratelimit-redis` | Redis and Valkey, node, cluster, sentinel |
//! | `memcached` (feature `memcached`) | `ratelimit-memcached` | memcached |
//! | `tide` (feature `tide`) | `ratelimit-tide` | Tide middleware and listener |
//! | `tower` (features `tower`, `axum`) | `ratelimit-tower` | a tower layer for axum and hyper |
//!
//! ```
//! use ratelimit::{Limiter, RequestView, RoutePolicy};
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
//! # Feature flags
//!
//! - `redis` (default): the `redis` module and `redis://` (and the other Redis and Valkey)
//!   storage URIs.
//! - `tls`: `rediss://` through rustls.
//! - `tokio`: Redis connections opened inside a tokio runtime are driven by it.
//! - `memcached`: the `memcached` module and `memcached://` storage URIs.
//! - `metrics`: decisions, storage errors and fallback transitions through the `metrics`
//!   facade.
//! - `tide`: the `tide` module. `tower`: the `tower` module; `axum`: its axum integration.
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub use ratelimit_decision::*;

/// Limit strings, clocks and the four strategies as pure state machines (`ratelimit-core`).
pub use ratelimit_core as core;
/// The most used of them, at the root.
pub use ratelimit_core::{
    Clock, Limit, ManualClock, ParseError, RetryAfter, StrategyKind, SystemClock, Timestamp, Unit,
    parse_limits,
};
/// Surviving a store that goes down (`ratelimit-fallback`).
pub use ratelimit_fallback as fallback;
/// `memcached://` storage (`ratelimit-memcached`).
#[cfg(feature = "memcached")]
pub use ratelimit_memcached as memcached;
/// `memory://` storage and the synchronous keyed limiter (`ratelimit-memory`).
pub use ratelimit_memory as memory;
/// Redis and Valkey storage (`ratelimit-redis`).
#[cfg(feature = "redis")]
pub use ratelimit_redis as redis;
/// The `Storage` trait, batches, keys and storage URIs (`ratelimit-storage`).
pub use ratelimit_storage as storage;
/// Tide middleware and listener (`ratelimit-tide`).
#[cfg(feature = "tide")]
pub use ratelimit_tide as tide;
/// A tower layer for axum and hyper services (`ratelimit-tower`).
#[cfg(feature = "tower")]
pub use ratelimit_tower as tower;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
