//! What the `metrics` feature costs a decision: the seed's full decision (both header
//! families, memory store) with no recorder installed, then with the Prometheus exporter's
//! recorder installed (as `seed_tour` runs it). The same decision without the feature is
//! `--bench decision`'s `full_check_with_headers`; run both in one session:
//!
//! ```text
//! taskset -c 1 cargo bench -p ratekeeper-benches --bench decision -- full_check_with_headers
//! taskset -c 1 cargo bench -p ratekeeper-benches --features metrics --bench metrics
//! ```

use core::time::Duration;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures::FutureExt;
use ratekeeper_decision::{Limiter, RequestView, headers::HeaderOptions};
use ratekeeper_memory::MemoryStorage;

fn seed_limiter() -> Limiter {
    Limiter::builder()
        .default_limits("4000000000 per day; 4000000000 per hour")
        .meta_limits("5 per minute")
        .headers(HeaderOptions::all())
        .storage(Arc::new(MemoryStorage::new()))
        .build()
        .unwrap()
}

fn metrics(c: &mut Criterion) {
    let mut group = c.benchmark_group("metrics");
    group.throughput(Throughput::Elements(1));
    let headers = [("User-Agent", "bench"), ("Accept", "*/*")];
    let req = RequestView::new("GET", "/api/data")
        .with_peer("203.0.113.7".parse().unwrap())
        .with_headers(&headers);

    let limiter = seed_limiter();
    group.bench_function("full_check_no_recorder", |b| {
        b.iter(|| {
            let d = limiter.check(&req).now_or_never().unwrap().unwrap();
            assert!(d.is_allowed());
            d
        })
    });

    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .unwrap();
    // Built after the recorder is installed, as the docs ask.
    let limiter = seed_limiter();
    group.bench_function("full_check_prometheus", |b| {
        b.iter(|| {
            let d = limiter.check(&req).now_or_never().unwrap().unwrap();
            assert!(d.is_allowed());
            d
        })
    });
    group.finish();
    handle.run_upkeep();
    assert!(
        handle.render().contains(
            "ratelimit_decisions_total{route=\"/api/data\",scope=\"default\",outcome=\"allowed\"}"
        ),
        "the decisions were recorded"
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = metrics
}
criterion_main!(benches);
