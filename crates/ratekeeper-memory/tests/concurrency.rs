//! Many threads and tasks on one key: a limit of N admits exactly N, every time. And a flood of
//! unique keys stays within the key cap.

mod common;

use core::sync::atomic::{AtomicU64, Ordering};
use std::{
    sync::{Arc, Barrier},
    thread,
};

use common::manual_store;
use ratekeeper_core::{Limit, StrategyKind};
use ratekeeper_memory::MemoryStorage;
use ratekeeper_storage::{Charge, Key, Storage};

const REPETITIONS: usize = 200;
const THREADS: usize = 8;
const TASKS: usize = 64;

fn hundred_per_minute() -> Limit {
    "100 per minute".parse().unwrap()
}

/// One repetition: 8 threads on the synchronous path and 64 async tasks through the trait, all
/// at once on one key; returns how many were admitted.
fn hammer(
    store: &MemoryStorage,
    kind: StrategyKind,
    spawn: &dyn Fn(Vec<Charge>, Arc<AtomicU64>, MemoryStorage) -> Box<dyn FnOnce() + Send>,
) -> u64 {
    let admitted = Arc::new(AtomicU64::new(0));
    let limiter = store.limiter(hundred_per_minute(), kind).unwrap();
    let key = Key::new("ip", "203.0.113.7");
    let batch = vec![Charge::new(key.clone(), hundred_per_minute(), kind, 1)];
    let start = Arc::new(Barrier::new(THREADS + 1));
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let (limiter, admitted, start) = (limiter.clone(), admitted.clone(), start.clone());
            let key = key.clone();
            thread::spawn(move || {
                start.wait();
                for _ in 0..30 {
                    if limiter.check(key.as_str().as_bytes(), 1).is_allowed() {
                        admitted.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    let join_tasks = spawn(batch, admitted.clone(), store.clone());
    start.wait();
    join_tasks();
    for t in threads {
        t.join().unwrap();
    }
    admitted.load(Ordering::Relaxed)
}

fn run(spawn: &dyn Fn(Vec<Charge>, Arc<AtomicU64>, MemoryStorage) -> Box<dyn FnOnce() + Send>) {
    for &kind in StrategyKind::ALL {
        for rep in 0..REPETITIONS {
            let (store, _, _) = manual_store(|b| b);
            let n = hammer(&store, kind, spawn);
            assert_eq!(n, 100, "{kind}, repetition {rep}: {n} admitted");
        }
    }
}

#[test]
fn exactly_n_on_async_std() {
    run(&|batch, admitted, store| {
        let tasks: Vec<_> = (0..TASKS)
            .map(|_| {
                let (batch, admitted, store) = (batch.clone(), admitted.clone(), store.clone());
                async_std::task::spawn(async move {
                    for _ in 0..5 {
                        if store.hit(&batch).await.unwrap().allowed {
                            admitted.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        Box::new(move || async_std::task::block_on(futures::future::join_all(tasks)).truncate(0))
    });
}

#[test]
fn exactly_n_on_smol() {
    run(&|batch, admitted, store| {
        let tasks: Vec<_> = (0..TASKS)
            .map(|_| {
                let (batch, admitted, store) = (batch.clone(), admitted.clone(), store.clone());
                smol::spawn(async move {
                    for _ in 0..5 {
                        if store.hit(&batch).await.unwrap().allowed {
                            admitted.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        Box::new(move || smol::block_on(futures::future::join_all(tasks)).truncate(0))
    });
}

/// Multi-limit batches from many threads: the tighter limit admits exactly its amount and the
/// looser one is charged exactly as often (all or nothing under contention).
#[test]
fn batches_stay_atomic_under_contention() {
    for rep in 0..50 {
        let (store, _, _) = manual_store(|b| b.shards(4));
        let key = Key::new("ip", "x");
        let batch = vec![
            Charge::new(
                key.clone(),
                "1000 per minute".parse().unwrap(),
                StrategyKind::FixedWindow,
                1,
            ),
            Charge::new(
                key.clone(),
                "37 per minute".parse().unwrap(),
                StrategyKind::SlidingWindowCounter,
                1,
            ),
            Charge::new(
                Key::new("ip", "y"),
                "500 per minute".parse().unwrap(),
                StrategyKind::Gcra,
                1,
            ),
        ];
        let admitted = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..THREADS)
            .map(|_| {
                let (store, batch, admitted) = (store.clone(), batch.clone(), admitted.clone());
                thread::spawn(move || {
                    for _ in 0..20 {
                        if store
                            .apply_sync(ratekeeper_storage::Op::Hit, &batch)
                            .unwrap()
                            .allowed
                        {
                            admitted.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(admitted.load(Ordering::Relaxed), 37, "repetition {rep}");
        let after = store
            .apply_sync(ratekeeper_storage::Op::Test, &batch)
            .unwrap();
        let remaining: Vec<u64> = after.statuses.iter().map(|s| s.remaining).collect();
        assert_eq!(remaining, [1000 - 37, 0, 500 - 37], "repetition {rep}");
    }
}

/// A million unique clients: the store never holds more than its cap, and every new client is
/// admitted (forgetting an idle client never makes anyone's limit stricter).
#[test]
fn key_cap_holds_under_a_flood_of_unique_keys() {
    let (store, _, _) = manual_store(|b| b.max_keys(10_000));
    let limiter = store
        .limiter("10 per hour".parse().unwrap(), StrategyKind::FixedWindow)
        .unwrap();
    let mut high_water = 0;
    for i in 0..1_000_000u64 {
        assert!(
            limiter.check(&i.to_le_bytes(), 1).is_allowed(),
            "client {i}"
        );
        if i % 50_000 == 0 {
            high_water = high_water.max(store.len());
        }
    }
    let held = store.len();
    assert!(
        held <= 10_000 && high_water <= 10_000,
        "held {held}, high water {high_water}"
    );
    assert!(held >= 9_000, "the cap is used, not emptied: {held}");
}
