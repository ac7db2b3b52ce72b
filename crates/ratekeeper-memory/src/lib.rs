//! In-process storage for the `ratekeeper-*` crates: the zero-dependency default, sharded and
//! concurrent, bounded, and fast.
//!
//! [`MemoryStorage`] runs the state machines of `ratekeeper-core` directly, one table per
//! (strategy, limit) pair, and implements the async [`Storage`](ratekeeper_storage::Storage)
//! trait on top of a synchronous core ([`MemoryStorage::apply_sync`], [`KeyedLimiter`]).
//! Nothing in it depends on an async runtime: waiting ([`KeyedLimiter::until_ready`], the
//! optional [`MemoryStorage::sweeper`]) goes through the [`Sleep`] trait, by default on
//! `async-io` timers, which serve smol and async-std alike.
//!
//! # Example
//!
//! ```
//! use ratekeeper_core::{Limit, StrategyKind};
//! use ratekeeper_memory::MemoryStorage;
//! use ratekeeper_storage::{Charge, Key, Storage};
//!
//! # smol::block_on(async {
//! let store = MemoryStorage::from_uri("memory://?max_keys=100000")?;
//! let key = Key::new("ip", "203.0.113.7");
//! let batch = [
//!     Charge::new(key.clone(), "10 per minute".parse()?, StrategyKind::SlidingWindowCounter, 1),
//!     Charge::new(key, "2 per second".parse()?, StrategyKind::Gcra, 1),
//! ];
//! // All or nothing: the second limit runs out first, and then nothing is charged.
//! let verdicts: Vec<bool> = {
//!     let mut v = Vec::new();
//!     for _ in 0..3 {
//!         v.push(store.hit(&batch).await?.allowed);
//!     }
//!     v
//! };
//! assert_eq!(verdicts, [true, true, false]);
//! let after = store.test(&batch).await?;
//! assert_eq!(after.statuses[0].remaining, 8);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! # Feature flags
//!
//! None.
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]

mod clock;
mod limiter;
mod sleep;
mod store;
mod table;

pub use clock::FastClock;
pub use limiter::{KeyedLimiter, NeverAllowed};
pub use sleep::{AsyncIoSleep, Sleep, SleepFuture};
pub use store::{MemoryStorage, MemoryStorageBuilder, SCHEMES};
