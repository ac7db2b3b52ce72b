//! Heap allocations per call, counted by a global allocator (deterministic, unlike time): the
//! memory store's `apply` of the seed's three-charge batch (and of four charges), and a full
//! allowed decision with every header family through the Decision API. The figures the
//! decision hot-path issue sets goals for. It prints them, and fails when one grows past what
//! has been reached: none inside the memory store for up to 4 charges (`Storage::apply_now`;
//! the async `Storage::apply` adds the boxed future its signature returns), 1 for a decision
//! (the text its storage keys share).
//!
//! `cargo bench -p ratekeeper-benches --bench allocations` (or, as the test command runs it,
//! once in test mode).

use core::sync::atomic::{AtomicU64, Ordering};
use std::{alloc::System, sync::Arc};

use ratekeeper_core::{Limit, ManualClock, StrategyKind, Timestamp};
use ratekeeper_decision::{Limiter, RequestView, headers::HeaderOptions};
use ratekeeper_memory::MemoryStorage;
use ratekeeper_storage::{Charge, Key, Op, Storage};

/// Counts every allocation (and reallocation) made through it.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is passed on to the system allocator unchanged; only a counter is added.
#[allow(unsafe_code)]
unsafe impl core::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: core::alloc::Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { core::alloc::GlobalAlloc::alloc(&System, layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: core::alloc::Layout) {
        // SAFETY: as above.
        unsafe { core::alloc::GlobalAlloc::dealloc(&System, ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: core::alloc::Layout, size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { core::alloc::GlobalAlloc::realloc(&System, ptr, layout, size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations per call of `f`, over `n` calls after one warm-up call.
fn per_call(n: u64, mut f: impl FnMut()) -> f64 {
    f();
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for _ in 0..n {
        f();
    }
    (ALLOCATIONS.load(Ordering::Relaxed) - before) as f64 / n as f64
}

fn main() {
    let n = if std::env::args().any(|a| a == "--bench") {
        10_000
    } else {
        100
    };
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_700_000_000)));
    let store = MemoryStorage::builder().clock(clock.clone()).build();
    let limit = |s: &str| s.parse::<Limit>().unwrap();
    let key = Key::new("ip", "203.0.113.7");
    let batch = [
        Charge::new(
            key.under(&["default", "/api/status"]),
            limit("4000000000 per day"),
            StrategyKind::FixedWindow,
            1,
        ),
        Charge::new(
            key.under(&["default", "/api/status"]),
            limit("4000000000 per hour"),
            StrategyKind::FixedWindow,
            1,
        ),
        Charge::gate(
            key.under(&["meta"]),
            limit("5 per minute"),
            StrategyKind::FixedWindow,
            1,
        ),
    ];
    let apply = per_call(n, || {
        let v = smol::block_on(store.apply(Op::Hit, &batch)).unwrap();
        assert!(v.allowed);
    });
    println!(
        "memory Storage::apply (async), the seed's 3-charge batch: {apply:.1} allocations per call"
    );
    let apply_now = per_call(n, || {
        let v = store.apply_now(Op::Hit, &batch).unwrap().unwrap();
        assert!(v.allowed);
    });
    println!(
        "memory Storage::apply_now, the seed's 3-charge batch: {apply_now:.1} allocations per call"
    );
    let four = [
        batch[0].clone(),
        batch[1].clone(),
        Charge::new(
            key.under(&["app"]),
            limit("4000000000 per minute"),
            StrategyKind::Gcra,
            1,
        ),
        batch[2].clone(),
    ];
    let apply_four = per_call(n, || {
        let v = store.apply_now(Op::Hit, &four).unwrap().unwrap();
        assert!(v.allowed);
    });
    println!("memory Storage::apply_now, 4 charges: {apply_four:.1} allocations per call");

    let limiter = Limiter::builder()
        .default_limits("4000000000 per day; 4000000000 per hour")
        .meta_limits("5 per minute")
        .headers(HeaderOptions::all())
        .clock(clock)
        .build()
        .unwrap();
    let req = RequestView::new("GET", "/api/status").with_peer("203.0.113.7".parse().unwrap());
    let decide = per_call(n, || {
        let d = smol::block_on(limiter.check(&req)).unwrap();
        assert!(d.is_allowed());
    });
    println!(
        "full decision with X-RateLimit-* and IETF headers, memory store: {decide:.1} allocations per call"
    );
    // Averages: now and then a call also grows a table or sweeps one, so the bounds are half an
    // allocation above what has been reached, below one more per call.
    assert!(apply < 1.5, "apply allocates more than it did: {apply}");
    assert!(
        apply_now < 0.5 && apply_four < 0.5,
        "the memory store allocates inside apply: {apply_now}, {apply_four}"
    );
    assert!(
        decide < 2.5,
        "a decision allocates more than it did: {decide}"
    );
}
