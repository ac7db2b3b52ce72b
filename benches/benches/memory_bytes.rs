//! Bytes per key at 1,000,000 keys, all overhead included (map, shards, fingerprints, states,
//! moving-window logs), counted by a global allocator wrapper; governor's keyed limiter beside.
//! Run with `cargo bench -p ratekeeper-benches --bench memory_bytes`.
//!
//! In test mode (`cargo test --benches`) it runs with 10,000 keys and checks nothing leaks;
//! `BYTES_KEYS=N` sets another count.

// A counting global allocator needs `unsafe impl GlobalAlloc`; nothing else here is unsafe.
#![allow(unsafe_code)]

use core::{
    alloc::{GlobalAlloc, Layout},
    num::NonZeroU32,
    sync::atomic::{AtomicIsize, Ordering},
};
use std::alloc::System;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use ratekeeper_core::{Limit, StrategyKind, Unit};
use ratekeeper_memory::MemoryStorage;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards every call to the system allocator and only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

/// 32-byte keys, as in the goal ("keys of up to 32 bytes").
fn key(i: usize) -> String {
    format!("client-{:025}", i)
}

fn main() {
    let test_mode =
        std::env::args().any(|a| a == "--test") || !std::env::args().any(|a| a == "--bench");
    let n = match std::env::var("BYTES_KEYS") {
        Ok(n) => n.parse().expect("BYTES_KEYS: a number of keys"),
        Err(_) if test_mode => 10_000,
        Err(_) => 1_000_000,
    };
    println!("bytes per key at {n} keys of {} bytes", key(0).len());
    let limit = Limit::per(10, Unit::Hour);
    for &kind in StrategyKind::ALL {
        let before = live();
        let store = MemoryStorage::builder().max_keys(4 * n).build();
        let limiter = store.limiter(limit, kind).unwrap();
        for i in 0..n {
            assert!(limiter.check(key(i).as_bytes(), 1).is_allowed());
        }
        assert_eq!(store.len(), n);
        let bytes = live() - before;
        println!(
            "  {:<24} {:>6.1} bytes/key",
            kind.name(),
            bytes as f64 / n as f64
        );
        drop((limiter, store));
        assert!(
            live() - before < 4096,
            "memory came back: {} bytes left",
            live() - before
        );
    }
    let before = live();
    let governor: DefaultKeyedRateLimiter<String> =
        RateLimiter::keyed(Quota::per_hour(NonZeroU32::new(10).unwrap()));
    for i in 0..n {
        assert!(governor.check_key(&key(i)).is_ok());
    }
    let bytes = live() - before;
    println!(
        "  {:<24} {:>6.1} bytes/key",
        "governor (keyed, String)",
        bytes as f64 / n as f64
    );
}
