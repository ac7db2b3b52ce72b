//! Multi-tier storage for the `ratekeeper-*` crates: survive the primary store (Redis) dying,
//! hanging and coming back, without failing a request and without waiting on it.
//!
//! [`FallbackStorage`] wraps any [`Storage`](ratekeeper_storage::Storage) as its primary and,
//! while the primary is unavailable, answers from its [`Mode`]:
//!
//! | mode | while the primary is down | Flask-Limiter |
//! |---|---|---|
//! | [`Mode::Fallback`] with no limits | the batch's own limits, counted in memory | `in_memory_fallback_enabled=True` |
//! | [`Mode::Fallback`] with limits | those limits per client, counted in memory | `in_memory_fallback=[...]` |
//! | [`Mode::FailOpen`] | every request allowed (logged) | `swallow_errors=True` |
//! | [`Mode::FailClosed`] | every request an error (503 in the middleware) | neither |
//!
//! The call that meets the failure is answered by the mode at once; later calls skip the
//! primary until a background probe (with [`Backoff`], counted from the failure) finds it up.
//! No call waits for the primary longer than the timeout. Unlike Flask-Limiter, whose recovery
//! timer starts when the limiter is built, the backoff starts at each failure.
//!
//! # Metrics
//!
//! With the `metrics` feature, outages, recoveries and degraded calls are recorded through the
//! [`metrics`](https://docs.rs/metrics) facade, to whatever recorder (Prometheus, StatsD, ...)
//! the application installs: see the [`metrics`](mod@metrics) module for the names.
//!
//! # Example
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use ratekeeper_core::StrategyKind;
//! use ratekeeper_fallback::{FallbackStorage, Mode};
//! use ratekeeper_redis::RedisStorage;
//!
//! let redis = RedisStorage::from_uri("redis://127.0.0.1:6379?socket_timeout=0.2")?;
//! let store = FallbackStorage::builder(Arc::new(redis))
//!     .mode(Mode::Fallback {
//!         limits: vec!["100 per day".parse()?, "25 per hour".parse()?],
//!         strategy: StrategyKind::FixedWindow,
//!     })
//!     .timeout(core::time::Duration::from_millis(200))
//!     .on_transition(|t| eprintln!("primary up: {}", t.primary_up))
//!     .build();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]

mod backoff;
mod health;
pub mod metrics;
mod mode;
mod store;

pub use backoff::Backoff;
pub use health::{FallbackStats, Transition};
pub use mode::Mode;
pub use store::{DEFAULT_TIMEOUT, FallbackStorage, FallbackStorageBuilder};
