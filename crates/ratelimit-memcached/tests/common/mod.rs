//! Test helpers: stores on a manual clock against real servers.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use ratelimit_core::ManualClock;
use ratelimit_memcached::MemcachedStorage;

pub use ratelimit_conformance::differential::T0;

/// A store on `url` with a manual clock at `T0` and its own prefix.
pub fn manual_store(url: &str, prefix: &str) -> (MemcachedStorage, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(T0));
    let store = MemcachedStorage::builder_from_uri(url)
        .unwrap()
        .prefix(prefix)
        .clock(clock.clone())
        // The manual clock stands still while real time passes: items must not expire.
        .ttl_grace(core::time::Duration::from_secs(3600))
        .build()
        .unwrap();
    (store, clock)
}
