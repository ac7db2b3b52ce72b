//! Test helpers: stores on a manual clock against real servers, and a small seeded generator.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use ratelimit_core::{ManualClock, Timestamp};
use ratelimit_memcached::MemcachedStorage;

/// Minute-aligned and realistic (2023), so that nanosecond arithmetic runs on full-size times.
pub const T0: Timestamp = Timestamp::from_secs(1_700_000_040);

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

/// xorshift64*: deterministic, seedable, good enough to draw test operations.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// True with probability `p` percent.
    pub fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }
}
