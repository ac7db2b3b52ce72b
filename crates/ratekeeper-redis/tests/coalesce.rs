//! Concurrent decisions share calls (coalescing) and admit exactly what the same decisions
//! admit one after another: 800 batches at once, each across two limits of its own client
//! (every strategy) and one limit all of them share, at one frozen instant, on a single node
//! and on a cluster (where the shared limit lives in another slot than each client's).

mod common;

use std::sync::Arc;

use common::manual_store_with;
use futures::future::join_all;
use ratekeeper_core::{ManualClock, StrategyKind};
use ratekeeper_memory::MemoryStorage;
use ratekeeper_redis::RedisStorage;
use ratekeeper_storage::{Charge, Key, Storage};
use ratekeeper_test_support::redis::{RedisCluster, RedisServer};

const TASKS: usize = 800;

/// Batch `i`: its client's `7 per minute` and `50 per hour` (strategies by `i`), and, when
/// `shared`, the `100 per minute` every batch shares.
fn batch(i: usize, shared: bool) -> Vec<Charge> {
    let kinds = StrategyKind::ALL;
    let client = Key::new("ip", &format!("10.0.0.{}", i % 4));
    let kind = kinds[(i / 4) % kinds.len()];
    let mut charges = vec![
        Charge::new(
            client.scoped("GET /a"),
            "7 per minute".parse().unwrap(),
            kind,
            1,
        ),
        Charge::new(
            client.scoped("app"),
            "50 per hour".parse().unwrap(),
            kinds[(i / 4 + 1) % kinds.len()],
            1,
        ),
    ];
    if shared {
        charges.push(Charge::new(
            Key::new("shared", "all"),
            "100 per minute".parse().unwrap(),
            StrategyKind::FixedWindow,
            1,
        ));
    }
    charges
}

/// What the batches admit one after another, per kind of batch (client and strategy).
fn sequential(shared: bool) -> Vec<u64> {
    let clock = Arc::new(ManualClock::new(common::T0));
    let memory = MemoryStorage::builder().clock(clock).build();
    let mut admitted = vec![0; 16];
    for i in 0..TASKS {
        if smol::block_on(memory.hit(&batch(i, shared)))
            .unwrap()
            .allowed
        {
            admitted[i % 16] += 1;
        }
    }
    admitted
}

/// What the batches admit all at once on `store`, per kind of batch.
fn concurrent(store: &RedisStorage, shared: bool) -> Vec<u64> {
    let batches: Vec<Vec<Charge>> = (0..TASKS).map(|i| batch(i, shared)).collect();
    let verdicts = smol::block_on(join_all(batches.iter().map(|b| store.hit(b))));
    let mut admitted = vec![0; 16];
    for (i, v) in verdicts.into_iter().enumerate() {
        if v.unwrap().allowed {
            admitted[i % 16] += 1;
        }
    }
    admitted
}

fn concurrent_decisions_admit_what_sequential_ones_do(url: &str) {
    // Each kind on its own: 7 each, exactly as one after another.
    let (store, _clock) = manual_store_with(url, "own", |b| b.deny_cache(0).coalesce(64));
    let want = sequential(false);
    assert_eq!(want, vec![7; 16]);
    assert_eq!(concurrent(&store, false), want);
    // With the shared limit, which binds: 100 in all, whatever the order, and no kind past
    // its own 7.
    let (store, _clock) = manual_store_with(url, "co", |b| b.deny_cache(0).coalesce(64));
    assert_eq!(sequential(true).iter().sum::<u64>(), 100);
    let admitted = concurrent(&store, true);
    assert_eq!(admitted.iter().sum::<u64>(), 100, "{admitted:?}");
    assert!(admitted.iter().all(|&n| n <= 7), "{admitted:?}");
    let shared = store.shared_calls().unwrap();
    assert!(
        shared.calls < shared.batches,
        "concurrent batches should share calls: {shared:?}"
    );
    println!("{admitted:?}; {shared:?}");
}

#[test]
fn on_one_node() {
    let server = RedisServer::start();
    concurrent_decisions_admit_what_sequential_ones_do(&server.url());
}

#[test]
fn on_a_cluster() {
    let cluster = RedisCluster::start(3);
    concurrent_decisions_admit_what_sequential_ones_do(&cluster.url());
}

/// One batch failing inside a shared call (its moving window's log is not a list) fails
/// alone: its neighbours in the call are answered.
#[test]
fn one_batch_failing_does_not_fail_its_neighbours() {
    let server = RedisServer::start();
    let (store, _clock) = manual_store_with(&server.url(), "err", |b| b.deny_cache(0).coalesce(64));
    let limit: ratekeeper_core::Limit = "5 per minute".parse().unwrap();
    let charge = |i: usize| {
        Charge::new(
            Key::new("ip", &format!("10.1.0.{i}")),
            limit,
            StrategyKind::MovingWindow,
            1,
        )
    };
    let broken = store.counter_key(&charge(0).key, &limit, StrategyKind::MovingWindow);
    server.cli(&["HSET", &broken, "not", "a list"]);
    let batches: Vec<Vec<Charge>> = (0..200).map(|i| vec![charge(i % 50)]).collect();
    let verdicts = smol::block_on(join_all(batches.iter().map(|b| store.hit(b))));
    for (i, v) in verdicts.iter().enumerate() {
        match (i % 50, v) {
            (0, Err(e)) => assert!(e.to_string().contains("WRONGTYPE"), "{e}"),
            (0, Ok(v)) => panic!("the broken counter answered {v:?}"),
            (_, Ok(v)) => assert!(v.allowed),
            (_, Err(e)) => panic!("batch {i} failed with its neighbour: {e}"),
        }
    }
    let shared = store.shared_calls().unwrap();
    assert!(shared.calls < shared.batches, "{shared:?}");
}
