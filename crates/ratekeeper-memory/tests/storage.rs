//! The memory backend through the async `Storage` trait, on async-std and on smol: reference
//! vectors, atomic batches, refund, clear, reset, expiry, waiting until ready, URIs.

mod common;

use common::{T0, manual_store};
use ratekeeper_core::{Clock, Duration, Limit, RetryAfter, StrategyKind};
use ratekeeper_memory::MemoryStorage;
use ratekeeper_storage::{Charge, Key, Storage, StorageError};

fn limit(s: &str) -> Limit {
    s.parse().unwrap()
}

fn charge(key: &Key, l: &str, strategy: StrategyKind, cost: u64) -> Charge {
    Charge::new(key.clone(), limit(l), strategy, cost)
}

/// Every strategy sequence of the shared vectors, through `Storage::apply`.
async fn vectors_through_the_trait() {
    let seen = ratekeeper_conformance::strategy_vectors(|_| {
        let (store, clock, _) = manual_store(|b| b);
        (store, clock)
    })
    .await;
    println!(
        "memory backend: {} sequences, {} events",
        seen.sequences, seen.events
    );
}

/// One limit of three rejects: nothing is charged, and each status says which.
async fn batches_are_all_or_nothing() {
    let (store, _, _) = manual_store(|b| b);
    let key = Key::new("ip", "10.0.0.1");
    let batch = [
        charge(&key, "10 per minute", StrategyKind::FixedWindow, 1),
        charge(&key, "1 per second", StrategyKind::Gcra, 1),
        charge(&key, "5 per hour", StrategyKind::MovingWindow, 1),
    ];
    assert!(store.hit(&batch).await.unwrap().allowed);
    let rejected = store.hit(&batch).await.unwrap();
    assert!(!rejected.allowed);
    assert_eq!(rejected.rejected_by(), Some(1));
    assert_eq!(
        rejected.retry_after(),
        RetryAfter::After(Duration::from_secs(1))
    );
    let remaining: Vec<u64> = rejected.statuses.iter().map(|s| s.remaining).collect();
    assert_eq!(
        remaining,
        [9, 0, 4],
        "the other two limits were not charged"
    );
    assert_eq!(
        rejected
            .statuses
            .iter()
            .map(|s| s.allowed)
            .collect::<Vec<_>>(),
        [true, false, true]
    );
    // The same counter twice in one batch: the costs add up.
    let twice = [
        charge(&key, "10 per minute", StrategyKind::FixedWindow, 5),
        charge(&key, "10 per minute", StrategyKind::FixedWindow, 5),
    ];
    assert!(
        !store.hit(&twice).await.unwrap().allowed,
        "9 left, 10 asked"
    );
    let test = store.test(&batch[..1]).await.unwrap();
    assert_eq!(test.statuses[0].remaining, 9);
    // An empty batch is allowed and changes nothing.
    assert!(store.hit(&[]).await.unwrap().allowed);

    // A gate needs room and charges nothing: the batch passes only while the gate has room.
    let meta = Key::new("ip", "10.0.0.1").scoped("meta");
    let gate = Charge::gate(
        meta.clone(),
        limit("2 per minute"),
        StrategyKind::FixedWindow,
        1,
    );
    let gated = [
        gate.clone(),
        charge(&key, "100 per minute", StrategyKind::Gcra, 1),
    ];
    for _ in 0..3 {
        assert!(
            store.hit(&gated).await.unwrap().allowed,
            "the gate charges nothing"
        );
    }
    assert!(
        store
            .hit(core::slice::from_ref(&gate))
            .await
            .unwrap()
            .allowed
    );
    let breaches = [charge(&meta, "2 per minute", StrategyKind::FixedWindow, 2)];
    assert!(store.hit(&breaches).await.unwrap().allowed);
    let shut = store.hit(&gated).await.unwrap();
    assert!(!shut.allowed);
    assert_eq!(shut.rejected_by(), Some(0));
    assert_eq!(
        shut.statuses[1].remaining, 97,
        "the gated charge was not made"
    );
    assert!(!store.hit(&[gate]).await.unwrap().allowed, "alone too");
}

async fn refund_clear_and_reset() {
    let (store, _, _) = manual_store(|b| b);
    let (a, b) = (Key::new("ip", "a"), Key::new("ip", "b"));
    for &kind in StrategyKind::ALL {
        let batch = [
            charge(&a, "3 per minute", kind, 2),
            charge(&b, "3 per minute", kind, 3),
        ];
        assert!(store.hit(&batch).await.unwrap().allowed, "{kind}");
        let refunded = store.refund(&batch[..1]).await.unwrap();
        assert_eq!(refunded.statuses[0].remaining, 3, "{kind}: refund restores");
    }
    assert_eq!(store.len(), 8, "two keys under four limits");
    store.clear(&b).await.unwrap();
    assert_eq!(store.len(), 4);
    let v = store
        .test(&[charge(&b, "3 per minute", StrategyKind::Gcra, 3)])
        .await
        .unwrap();
    assert!(v.allowed, "cleared");
    store.reset().await.unwrap();
    assert!(store.is_empty());
    store.health().await.unwrap();
}

/// Idle keys are swept and their memory given back; assertions on the map size, not on time.
async fn expiry_reclaims_memory() {
    let (store, clock, _) = manual_store(|b| b.sweep_every(core::time::Duration::from_secs(10)));
    let limiter = store
        .limiter(limit("5 per minute"), StrategyKind::FixedWindow)
        .unwrap();
    for i in 0..10_000u32 {
        assert!(limiter.check(&i.to_le_bytes(), 1).is_allowed());
    }
    assert_eq!(store.len(), 10_000);
    clock.advance(Duration::from_secs(59));
    store.sweep();
    assert_eq!(
        store.len(),
        10_000,
        "nothing is idle before its window ends"
    );
    clock.advance(Duration::from_secs(1));
    store.sweep();
    assert_eq!(store.len(), 0);
    // The lazy sweep: a shard in use sweeps itself once `sweep_every` has passed.
    for i in 0..1_000u32 {
        assert!(limiter.check(&i.to_le_bytes(), 1).is_allowed());
    }
    clock.advance(Duration::from_secs(61));
    for i in 0..1_000u32 {
        let _ = limiter.test(&i.to_le_bytes(), 1);
    }
    assert_eq!(store.len(), 0, "each shard swept on its next use");
}

/// `until_ready` waits exactly `retry_after`, then charges.
async fn until_ready_waits_exactly() {
    let (store, clock, sleep) = manual_store(|b| b);
    let limiter = store
        .limiter(limit("2 per second"), StrategyKind::Gcra)
        .unwrap();
    for _ in 0..2 {
        limiter.until_ready(b"k", 1).await.unwrap();
    }
    assert!(sleep.waits.lock().unwrap().is_empty());
    limiter.until_ready(b"k", 1).await.unwrap();
    limiter.until_ready(b"k", 2).await.unwrap();
    let waits = sleep.waits.lock().unwrap().clone();
    assert_eq!(
        waits,
        [Duration::from_millis(500), Duration::from_millis(1000)]
    );
    assert_eq!(clock.now(), T0.saturating_add(Duration::from_millis(1500)));
    let never = limiter.until_ready(b"k", 3).await.unwrap_err();
    assert_eq!(never.cost, 3);
}

/// The background sweeper waits its interval and ends once the store is gone (what it does
/// each round is `MemoryStorage::sweep`, tested above).
async fn sweeper_ends_with_the_store() {
    let (store, _, sleep) = manual_store(|b| b);
    let sweeper = store.sweeper(core::time::Duration::from_secs(2));
    drop(store);
    sweeper.await;
    assert_eq!(*sleep.waits.lock().unwrap(), [Duration::from_secs(2)]);
}

async fn uris_and_configuration_errors() {
    let store = MemoryStorage::from_uri("memory://?max_keys=10&shards=2").unwrap();
    let limiter = store
        .limiter(limit("1 per hour"), StrategyKind::FixedWindow)
        .unwrap();
    for i in 0..100u32 {
        assert!(limiter.check(&i.to_le_bytes(), 1).is_allowed());
    }
    assert!(store.len() <= 10);
    let err = MemoryStorage::from_uri("redis://localhost:6379").unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown storage scheme \"redis\"; known schemes: memory://"
    );
    assert!(MemoryStorage::from_uri("memory://?max_keys=lots").is_err());
    assert!(MemoryStorage::from_uri("memory://?colour=blue").is_err());
    assert!(MemoryStorage::from_uri("memory://host").is_err());
    let huge = [Charge::new(
        Key::new("ip", "x"),
        limit("2000000 per day"),
        StrategyKind::MovingWindow,
        1,
    )];
    assert!(matches!(
        store.hit(&huge).await,
        Err(StorageError::Configuration { .. })
    ));
}

ratekeeper_conformance::on_both_runtimes!(
    vectors_through_the_trait,
    batches_are_all_or_nothing,
    refund_clear_and_reset,
    expiry_reclaims_memory,
    until_ready_waits_exactly,
    sweeper_ends_with_the_store,
    uris_and_configuration_errors,
);
