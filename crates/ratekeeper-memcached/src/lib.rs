//! `memcached://` storage for the `ratekeeper-*` crates: the four strategies of
//! `ratekeeper-core`, each counter one memcached item updated by compare-and-swap, spread over
//! one or more servers.
//!
//! ```no_run
//! use ratekeeper_core::{Limit, StrategyKind, Unit};
//! use ratekeeper_memcached::MemcachedStorage;
//! use ratekeeper_storage::{Charge, Key, Storage};
//!
//! # smol::block_on(async {
//! let store = MemcachedStorage::from_uri("memcached://127.0.0.1:11211,127.0.0.1:11212")?;
//! let charge = Charge::new(Key::new("ip", "203.0.113.7"), Limit::per(10, Unit::Minute), StrategyKind::Gcra, 1);
//! assert!(store.hit(&[charge]).await?.allowed);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! # What memcached cannot promise
//!
//! memcached is a cache: it may drop any item, and a dropped counter is a client with fresh
//! quota. Two things drop items:
//!
//! - **Eviction.** A full server evicts the least recently used items to store new ones. A flood
//!   of requests from minted identities (a new key each) fills a small server and pushes out the
//!   counters of real clients. Give memcached memory for every key your limits can hold at once
//!   (`-m`, in MiB; an item here is about 100-200 bytes, a moving window 16 bytes per entry more),
//!   and watch `evictions` in `stats`: it must stay 0. `-M` makes a full server refuse new items
//!   instead of evicting; this store then answers an error (so a 503, or the fallback store)
//!   rather than forgetting a count.
//! - **Restarts.** memcached keeps nothing across a restart: every counter starts over. Run it
//!   under a supervisor that does not restart it needlessly, or use Redis with persistence where
//!   a restart must not hand out quota again.
//!
//! Items expire once their window is idle (plus [`DEFAULT_TTL_GRACE`]); one whose window ends
//! after 2038-01-19, the last expiry memcached can express, is kept until evicted.
//!
//! The client is our own, over memcached's text protocol (`gets`, `cas`, `add`, `incr`,
//! `version`) on `async-io`, so that it runs under async-std and smol alike: the
//! async memcached crates either run on tokio only or have no compare-and-swap.
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]

mod bounds;
mod builder;
mod connection;
mod hit;
mod keys;
mod protocol;
mod state;
mod store;

pub use bounds::MAX_MOVING_WINDOW;
pub use builder::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_PORT, DEFAULT_PREFIX, DEFAULT_RESPONSE_TIMEOUT,
    DEFAULT_TTL_GRACE, MAX_DENY_CACHE, MemcachedStorageBuilder, SCHEMES,
};
pub use connection::Address;
pub use keys::MAX_PREFIX;
pub use store::MemcachedStorage;

/// The reply parser's check, for the fuzz target (`cargo +nightly fuzz run memcached_reply`).
#[cfg(fuzzing)]
#[doc(hidden)]
pub fn fuzz_reply(data: &[u8]) {
    protocol::check_reply(data);
}
