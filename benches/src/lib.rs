//! Benchmarks live in `benches/`; run them with `cargo bench -p ratekeeper-benches`.

use core::{future::Future, time::Duration};
use std::time::Instant;

use ratekeeper_test_support::redis::RedisServer;

/// The Redis server a Redis benchmark uses: the one on `REDIS_BENCH_PORT` (started pinned by
/// the `scripts/bench-redis*.sh` wrappers), or a fresh one of its own (a smoke run), which
/// lives as long as the returned handle.
pub fn redis_server() -> (Option<RedisServer>, u16) {
    match std::env::var("REDIS_BENCH_PORT") {
        Ok(p) => (None, p.parse().expect("REDIS_BENCH_PORT is a port number")),
        Err(_) => {
            let own = RedisServer::start();
            let port = own.port();
            (Some(own), port)
        }
    }
}

/// Runs `concurrency` loops of `call(loop index)` for `secs` seconds; returns calls per second.
pub async fn throughput<F, Fut>(concurrency: usize, secs: f64, call: F) -> f64
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = ()>,
{
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let start = Instant::now();
    let call = &call;
    let loops = (0..concurrency).map(|task| async move {
        let mut n = 0u64;
        while Instant::now() < deadline {
            call(task).await;
            n += 1;
        }
        n
    });
    let total: u64 = futures::future::join_all(loops).await.into_iter().sum();
    total as f64 / start.elapsed().as_secs_f64()
}

/// `samples` sequential calls; returns (p50, p99) in microseconds.
pub async fn latency<F, Fut>(samples: usize, call: F) -> (f64, f64)
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples {
        let t = Instant::now();
        call().await;
        times.push(t.elapsed().as_secs_f64() * 1e6);
    }
    times.sort_by(f64::total_cmp);
    (times[samples / 2], times[samples * 99 / 100])
}
