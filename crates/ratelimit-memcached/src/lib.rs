//! `memcached://` storage for the `ratelimit-*` crates: the four strategies of
//! `ratelimit-core`, each counter one memcached item updated by compare-and-swap, spread over
//! one or more servers.
//!
//! ```no_run
//! use ratelimit_core::{Limit, StrategyKind, Unit};
//! use ratelimit_memcached::MemcachedStorage;
//! use ratelimit_storage::{Charge, Key, Storage};
//!
//! # smol::block_on(async {
//! let store = MemcachedStorage::from_uri("memcached://127.0.0.1:11211,127.0.0.1:11212")?;
//! let charge = Charge::new(Key::new("ip", "203.0.113.7"), Limit::per(10, Unit::Minute), StrategyKind::Gcra, 1);
//! assert!(store.hit(&[charge]).await?.allowed);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! The client is our own, over memcached's text protocol (`gets`, `cas`, `add`, `incr`,
//! `version`) on `async-io`, so that it runs under async-std and smol alike: the
//! async memcached crates either run on tokio only or have no compare-and-swap.
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]

mod builder;
mod connection;
mod keys;
mod protocol;
mod state;
mod store;
#[cfg(feature = "test-server")]
pub mod test_server;

pub use builder::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_PORT, DEFAULT_PREFIX, DEFAULT_RESPONSE_TIMEOUT,
    DEFAULT_TTL_GRACE, MemcachedStorageBuilder, OPTIONS, SCHEMES,
};
pub use connection::Address;
pub use keys::MAX_PREFIX;
pub use store::{MAX_MOVING_WINDOW, MemcachedStorage};
