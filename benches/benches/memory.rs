//! One keyed check, clock read included, on the memory store beside governor's keyed limiter
//! (`DefaultKeyedRateLimiter`: DashMap + quanta clock), at 1 to 1,000,000 keys, on 1 and 2
//! threads. Run with `cargo bench -p ratekeeper-benches --bench memory`.
//!
//! Both sides use `u32::MAX per hour` (a burst that does not run out during the run), so every
//! check is an allowed hit on a key that already exists: the steady state of a busy server.
//! Keys are strings of up to 32 bytes, visited in a scrambled order.

use core::{hint::black_box, num::NonZeroU32, time::Duration};
use std::{sync::Barrier, thread, time::Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use ratekeeper_core::{Limit, StrategyKind, Unit};
use ratekeeper_memory::{KeyedLimiter, MemoryStorage};

/// Key counts; `cargo test --benches` (no `--bench` argument) runs the small ones only.
fn sizes() -> &'static [usize] {
    if std::env::args().any(|a| a == "--bench") {
        &[1, 1_000, 100_000, 1_000_000]
    } else {
        &[1, 1_000]
    }
}

fn keys(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            format!(
                "client-{:016x}",
                (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            )
        })
        .collect()
}

/// Visits the keys in a fixed pseudo-random order (a stride coprime with the key count).
fn order(n: usize) -> Vec<u32> {
    let stride = if n > 1 { 7_919 % n } else { 0 };
    let stride = if stride == 0 || gcd(stride, n) != 1 {
        1
    } else {
        stride
    };
    (0..n).map(|i| ((i * stride) % n) as u32).collect()
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Runs `iters` checks split over `threads` threads and returns the wall time.
fn run<F: Fn(usize) -> bool + Sync>(threads: usize, iters: u64, n: usize, f: &F) -> Duration {
    let visit = order(n);
    let per_thread = iters / threads as u64 + 1;
    let barrier = Barrier::new(threads);
    let start_end = std::sync::Mutex::new((None::<Instant>, None::<Instant>));
    thread::scope(|s| {
        for t in 0..threads {
            let (visit, barrier, start_end) = (&visit, &barrier, &start_end);
            s.spawn(move || {
                barrier.wait();
                let started = Instant::now();
                let mut i = t * n / threads;
                for _ in 0..per_thread {
                    black_box(f(visit[i] as usize));
                    i += 1;
                    if i == n {
                        i = 0;
                    }
                }
                let ended = Instant::now();
                let mut se = start_end.lock().unwrap();
                se.0 = Some(se.0.map_or(started, |s: Instant| s.min(started)));
                se.1 = Some(se.1.map_or(ended, |e: Instant| e.max(ended)));
            });
        }
    });
    let (start, end) = *start_end.lock().unwrap();
    // Wall time for `threads * per_thread` checks, scaled to the `iters` criterion asked for.
    let wall = end.unwrap() - start.unwrap();
    wall.mul_f64(iters as f64 / (per_thread * threads as u64) as f64)
}

fn keyed(c: &mut Criterion) {
    let quota = Quota::per_hour(NonZeroU32::MAX);
    let limit = Limit::per(u64::from(u32::MAX), Unit::Hour);
    for threads in [1, 2] {
        let mut group = c.benchmark_group(format!("keyed_check_{threads}_thread"));
        group.throughput(Throughput::Elements(1));
        for &n in sizes() {
            let names = keys(n);
            let governor: DefaultKeyedRateLimiter<String> = RateLimiter::keyed(quota);
            for k in &names {
                assert!(governor.check_key(k).is_ok());
            }
            group.bench_with_input(BenchmarkId::new("governor", n), &n, |b, &n| {
                b.iter_custom(|iters| {
                    run(threads, iters, n, &|i| {
                        governor.check_key(&names[i]).is_ok()
                    })
                })
            });
            drop(governor);
            for kind in [StrategyKind::Gcra, StrategyKind::FixedWindow] {
                let store = MemoryStorage::builder().max_keys(4_000_000).build();
                let ours: KeyedLimiter = store.limiter(limit, kind).unwrap();
                for k in &names {
                    assert!(ours.check(k.as_bytes(), 1).is_allowed());
                }
                group.bench_with_input(BenchmarkId::new(kind.name(), n), &n, |b, &n| {
                    b.iter_custom(|iters| {
                        run(threads, iters, n, &|i| {
                            ours.check(names[i].as_bytes(), 1).is_allowed()
                        })
                    })
                });
            }
        }
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30);
    targets = keyed
}
criterion_main!(benches);
