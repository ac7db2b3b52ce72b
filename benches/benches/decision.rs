//! One full decision (request view -> `Decision` with both header families) on the memory
//! store, beside the storage call it makes, in the same run: the difference is what the
//! Decision API adds. Run with `cargo bench -p ratekeeper-benches --bench decision`.
//!
//! Configuration as in the seed: two default limits, one meta limit (a gate in the batch),
//! `X-RateLimit-*` and IETF headers. The limits are large enough that every request is
//! allowed during the run.

use core::time::Duration;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures::FutureExt;
use ratekeeper_core::{Limit, StrategyKind, Unit};
use ratekeeper_decision::{Limiter, RequestView, headers::HeaderOptions};
use ratekeeper_memory::MemoryStorage;
use ratekeeper_storage::{Charge, Key, Op, Storage};

fn decision(c: &mut Criterion) {
    let mut group = c.benchmark_group("decision");
    group.throughput(Throughput::Elements(1));
    let store = Arc::new(MemoryStorage::new());
    let limiter = Limiter::builder()
        .default_limits("4000000000 per day; 4000000000 per hour")
        .meta_limits("5 per minute")
        .headers(HeaderOptions::all())
        .storage(store.clone())
        .build()
        .unwrap();
    let headers = [("User-Agent", "bench"), ("Accept", "*/*")];
    let req = RequestView::new("GET", "/api/data")
        .with_peer("203.0.113.7".parse().unwrap())
        .with_headers(&headers);
    group.bench_function("full_check_with_headers", |b| {
        b.iter(|| {
            let d = limiter.check(&req).now_or_never().unwrap().unwrap();
            assert!(d.is_allowed());
            d
        })
    });

    let plain = Limiter::builder()
        .default_limits("4000000000 per day; 4000000000 per hour")
        .meta_limits("5 per minute")
        .headers(HeaderOptions::none())
        .storage(Arc::new(MemoryStorage::new()))
        .build()
        .unwrap();
    group.bench_function("full_check_no_headers", |b| {
        b.iter(|| {
            let d = plain.check(&req).now_or_never().unwrap().unwrap();
            assert!(d.is_allowed());
            d
        })
    });

    // The same batch the limiter sends, built once: the storage call alone.
    let identity = Key::new("ip", "203.0.113.7");
    let scoped = |s: &str| identity.under(&["LIMITER", s, "/api/data"]);
    let day = Limit::new(4_000_000_000, 1, Unit::Day).unwrap();
    let hour = Limit::new(4_000_000_000, 1, Unit::Hour).unwrap();
    let batch = [
        Charge::new(scoped("default"), day, StrategyKind::FixedWindow, 1),
        Charge::new(scoped("default"), hour, StrategyKind::FixedWindow, 1),
        Charge::gate(
            scoped("meta"),
            Limit::per(5, Unit::Minute),
            StrategyKind::FixedWindow,
            1,
        ),
    ];
    group.bench_function("storage_call_only", |b| {
        b.iter(|| {
            let v = store.hit(&batch).now_or_never().unwrap().unwrap();
            assert!(v.allowed);
            v
        })
    });
    // The call the limiter makes on an in-process store: no future at all.
    group.bench_function("storage_apply_now", |b| {
        b.iter(|| {
            let v = store.apply_now(Op::Hit, &batch).unwrap().unwrap();
            assert!(v.allowed);
            v
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = decision
}
criterion_main!(benches);
