//! The Redis backend called from a tokio runtime beside the same call from smol's executor, in
//! the same run: the redis crate's connection runs on smol's reactor (`smol-comp`), so a call
//! from a tokio worker crosses runtimes. Sequential calls of one charge, p50 and p99.
//!
//!     taskset -c 0 redis-server --port 26998 --save '' --appendonly no --daemonize yes
//!     REDIS_BENCH_PORT=26998 taskset -c 1 cargo bench -p ratekeeper-benches --bench redis_runtimes
//!
//! With `--features redis-tokio` it also measures a store whose connection tokio drives (the
//! Redis backend's `tokio` feature). Without `--bench` it does a short smoke run on a server
//! of its own.

use core::time::Duration;
use std::{sync::Arc, time::Instant};

use ratekeeper_core::{Limit, StrategyKind};
use ratekeeper_redis::RedisStorage;
use ratekeeper_storage::{Charge, Key, Storage};

/// `samples` sequential hits; (p50, p99) in microseconds.
async fn latencies(store: &RedisStorage, samples: usize) -> (f64, f64) {
    let limit: Limit = "1000000000 per minute".parse().unwrap();
    let batch = [Charge::new(
        Key::new("bench", "runtimes"),
        limit,
        StrategyKind::Gcra,
        1,
    )];
    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples {
        let t = Instant::now();
        assert!(store.hit(&batch).await.unwrap().allowed);
        times.push(t.elapsed().as_secs_f64() * 1e6);
    }
    times.sort_by(f64::total_cmp);
    (times[samples / 2], times[samples * 99 / 100])
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (_own, port) = ratekeeper_benches::redis_server();
    let samples = if full { 20_000 } else { 200 };
    let store = Arc::new(
        RedisStorage::from_uri(&format!("redis://127.0.0.1:{port}?prefix=runtimes")).unwrap(),
    );
    // Warm up the connection (and load the function) first.
    smol::block_on(latencies(&store, 100));
    let rounds = if full { 3 } else { 1 };
    println!(
        "Redis hit latency by caller runtime, {samples} sequential calls per figure, {rounds} rounds"
    );
    for round in 1..=rounds {
        let smol_main = smol::block_on(latencies(&store, samples));
        let smol_task = smol::block_on(smol::spawn({
            let store = Arc::clone(&store);
            async move { latencies(&store, samples).await }
        }));
        let current = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(latencies(&store, samples));
        let multi = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let worker = multi
            .block_on(multi.spawn({
                let store = Arc::clone(&store);
                async move { latencies(&store, samples).await }
            }))
            .unwrap();
        // With the backend's `tokio` feature: a store first used inside the tokio runtime, whose
        // connection that runtime drives.
        let native = if cfg!(feature = "redis-tokio") {
            let url = format!("redis://127.0.0.1:{port}?prefix=runtimes");
            Some(
                multi
                    .block_on(multi.spawn(async move {
                        let store = RedisStorage::from_uri(&url).unwrap();
                        latencies(&store, 100).await;
                        latencies(&store, samples).await
                    }))
                    .unwrap(),
            )
        } else {
            None
        };
        multi.shutdown_timeout(Duration::from_secs(1));
        let show = |(p50, p99): (f64, f64)| format!("p50 {p50:>6.1} us, p99 {p99:>6.1} us");
        println!("round {round}: smol block_on      {}", show(smol_main));
        println!("round {round}: smol task          {}", show(smol_task));
        println!("round {round}: tokio current-thread {}", show(current));
        println!("round {round}: tokio worker task  {}", show(worker));
        if let Some(native) = native {
            println!(
                "round {round}: tokio worker, tokio-driven connection {}",
                show(native)
            );
        }
        println!(
            "round {round}: tokio worker minus smol task: p50 {:+.1} us, p99 {:+.1} us",
            worker.0 - smol_task.0,
            worker.1 - smol_task.1
        );
    }
}
