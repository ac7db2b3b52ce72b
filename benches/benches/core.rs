//! One decision of each core state machine, beside governor's GCRA step in the same run.
//!
//! Time is handed in (no clock read): our machines take `now` as an argument, and governor runs
//! on its `FakeRelativeClock`, which is one atomic load. Run with
//! `cargo bench -p ratekeeper-benches --bench core`.

use core::{hint::black_box, num::NonZeroU32, time::Duration as StdDuration};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use governor::{Quota, RateLimiter, clock::FakeRelativeClock};
use ratekeeper_core::{
    BoundedMovingWindow, Duration, FixedWindow, Gcra, Limit, SlidingWindow, Strategy, Timestamp,
    Unit,
};

const T0: Timestamp = Timestamp::from_secs(1_700_000_000);

/// Steps that are always allowed: `u32::MAX` per hour, a burst that does not run out during the
/// run, with time standing still. The same quota for governor.
fn step(c: &mut Criterion) {
    let mut group = c.benchmark_group("step");
    group.throughput(Throughput::Elements(1));

    let quota = Quota::per_hour(NonZeroU32::MAX);
    let governor = RateLimiter::direct_with_clock(quota, FakeRelativeClock::default());
    group.bench_function("governor_gcra", |b| {
        b.iter(|| black_box(governor.check().is_ok()))
    });

    let huge = Limit::per(u64::from(u32::MAX), Unit::Hour);
    let mut gcra = Gcra::new();
    group.bench_function("gcra", |b| {
        b.iter(|| black_box(gcra.hit(black_box(&huge), black_box(T0), 1)))
    });
    let mut fixed = FixedWindow::new();
    group.bench_function("fixed_window", |b| {
        b.iter(|| black_box(fixed.hit(black_box(&huge), black_box(T0), 1)))
    });
    let mut sliding = SlidingWindow::new();
    group.bench_function("sliding_window", |b| {
        b.iter(|| black_box(sliding.hit(black_box(&huge), black_box(T0), 1)))
    });
    let mut moving = BoundedMovingWindow::<16>::new();
    let mut now = T0;
    let limit = Limit::per(16, Unit::Second);
    let tick = Duration::from_nanos(limit.window().as_nanos() / 16);
    group.bench_function("moving_window", |b| {
        b.iter(|| {
            now = now.saturating_add(tick);
            black_box(moving.hit(black_box(&limit), now, 1))
        })
    });
    group.finish();
}

/// Steps that are always rejected: one per hour, already used, time standing still. A rejection
/// changes nothing, so this is the cost of the decision alone.
fn reject(c: &mut Criterion) {
    let mut group = c.benchmark_group("reject");
    group.throughput(Throughput::Elements(1));

    let governor = RateLimiter::direct_with_clock(
        Quota::per_hour(NonZeroU32::MIN),
        FakeRelativeClock::default(),
    );
    assert!(governor.check().is_ok());
    group.bench_function("governor_gcra", |b| {
        b.iter(|| black_box(governor.check().is_err()))
    });

    let limit = Limit::per(1, Unit::Hour);
    fn spent<S: Strategy>(mut state: S, limit: &Limit) -> S {
        assert!(state.hit(limit, T0, 1).is_allowed());
        state
    }
    let mut gcra = spent(Gcra::new(), &limit);
    group.bench_function("gcra", |b| {
        b.iter(|| black_box(gcra.hit(black_box(&limit), black_box(T0), 1)))
    });
    let mut fixed = spent(FixedWindow::new(), &limit);
    group.bench_function("fixed_window", |b| {
        b.iter(|| black_box(fixed.hit(black_box(&limit), black_box(T0), 1)))
    });
    let mut sliding = spent(SlidingWindow::new(), &limit);
    group.bench_function("sliding_window", |b| {
        b.iter(|| black_box(sliding.hit(black_box(&limit), black_box(T0), 1)))
    });
    let mut moving = spent(BoundedMovingWindow::<16>::new(), &limit);
    group.bench_function("moving_window", |b| {
        b.iter(|| black_box(moving.hit(black_box(&limit), black_box(T0), 1)))
    });
    group.finish();
}

/// The moving window at its steady state (every hit expires one entry and appends one) for
/// logs of growing size: the time per hit stays flat, O(1) amortised.
fn moving_window_scaling(c: &mut Criterion) {
    let mut group = c.benchmark_group("moving_window_steady");
    group.throughput(Throughput::Elements(1));
    fn run<const N: usize>(
        group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    ) {
        let limit = Limit::per(N as u64, Unit::Second);
        let tick = Duration::from_nanos(limit.window().as_nanos() / N as u64);
        let mut state = Box::new(BoundedMovingWindow::<N>::new());
        let mut now = T0;
        // Fill the log once so that the loop runs at the full, steady state.
        for _ in 0..N {
            now = now.saturating_add(tick);
            let _ = state.hit(&limit, now, 1);
        }
        group.bench_with_input(BenchmarkId::from_parameter(N), &N, |b, _| {
            b.iter(|| {
                now = now.saturating_add(tick);
                black_box(state.hit(&limit, now, 1))
            })
        });
    }
    run::<16>(&mut group);
    run::<1024>(&mut group);
    run::<65536>(&mut group);
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(StdDuration::from_secs(1))
        .measurement_time(StdDuration::from_secs(3));
    targets = step, reject, moving_window_scaling
}
criterion_main!(benches);
