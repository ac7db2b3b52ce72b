//! A 3-master cluster: hostile client keys stay in their slot and bounded; batches that span
//! slots never over-admit; clear, reset and health reach the right nodes.

mod common;

use common::manual_store;
use ratekeeper_core::{Limit, StrategyKind};
use ratekeeper_storage::{Charge, Key, Storage};
use ratekeeper_test_support::redis::RedisCluster;

fn charge(key: &Key, l: &str, strategy: StrategyKind, cost: u64) -> Charge {
    Charge::new(key.clone(), l.parse::<Limit>().unwrap(), strategy, cost)
}

/// Every key under `prefix`, with the port of the node that holds it.
fn keys_by_node(cluster: &RedisCluster, prefix: &str) -> Vec<(u16, String)> {
    cluster
        .nodes()
        .iter()
        .flat_map(|n| {
            n.cli(&["--scan", "--pattern", &format!("{prefix}:*")])
                .lines()
                .filter(|l| !l.is_empty())
                .map(|k| (n.port(), k.to_owned()))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn a_hostile_key_lands_in_its_slot_and_stays_bounded() {
    let cluster = RedisCluster::start(3);
    let (store, _) = manual_store(&cluster.url(), "hostile");
    let text = format!("}}{{evil}}{{{}", "x{y}".repeat(2_560)); // 10 KB with braces
    let key = Key::new("user", &text).under(&["POST /upload"]);
    let batch: Vec<Charge> = StrategyKind::ALL
        .iter()
        .copied()
        .map(|kind| charge(&key, "3 per minute", kind, 1))
        .collect();
    smol::block_on(async {
        for _ in 0..3 {
            assert!(store.hit(&batch).await.unwrap().allowed);
        }
        let v = store.hit(&batch).await.unwrap();
        assert!(!v.allowed);
        assert!(v.statuses.iter().all(|s| s.remaining == 0));
    });
    let found = keys_by_node(&cluster, "hostile");
    assert_eq!(found.len(), 5, "{found:?}"); // four counters, the moving window's total
    let expected_node = cluster.node_of(&format!("{{{}}}", key.identity())).port();
    for (port, name) in &found {
        assert_eq!(*port, expected_node, "{name} is not on the tag's node");
        assert!(name.len() <= 120, "{} bytes: {name}", name.len());
        assert_eq!(name.matches('{').count(), 1, "{name}");
        assert_eq!(name.matches('}').count(), 1, "{name}");
        assert!(name.starts_with(&format!("hostile:{{{}}}", key.identity())));
    }
    smol::block_on(store.clear(&key)).unwrap();
    assert!(keys_by_node(&cluster, "hostile").is_empty());
}

#[test]
fn a_batch_across_slots_never_over_admits() {
    let cluster = RedisCluster::start(3);
    let (store, _) = manual_store(&cluster.url(), "span");
    // Two identities whose tags live on different nodes.
    let a = Key::new("ip", "10.0.0.1");
    let b = (0..100)
        .map(|i| Key::new("user", &format!("u{i}")))
        .find(|b| {
            cluster.node_of(&format!("{{{}}}", b.identity())).port()
                != cluster.node_of(&format!("{{{}}}", a.identity())).port()
        })
        .unwrap();
    let batch = [
        charge(&a, "5 per minute", StrategyKind::FixedWindow, 1),
        charge(&b, "2 per minute", StrategyKind::Gcra, 1),
        charge(&a, "5 per minute", StrategyKind::MovingWindow, 1),
    ];
    smol::block_on(async {
        assert!(store.hit(&batch).await.unwrap().allowed);
        assert!(store.hit(&batch).await.unwrap().allowed);
        let v = store.hit(&batch).await.unwrap();
        assert!(!v.allowed);
        assert_eq!(v.rejected_by(), Some(1));
        // `a` was reserved, then refunded: still 3 left on both of its limits.
        let remaining: Vec<u64> = v.statuses.iter().map(|s| s.remaining).collect();
        assert_eq!(remaining, [3, 0, 3]);
        let t = store.test(&batch).await.unwrap();
        assert_eq!(
            t.statuses.iter().map(|s| s.remaining).collect::<Vec<_>>(),
            [3, 0, 3]
        );
        // `a` alone still admits exactly 3 more.
        let alone = [batch[0].clone(), batch[2].clone()];
        let mut n = 0;
        for _ in 0..5 {
            n += usize::from(store.hit(&alone).await.unwrap().allowed);
        }
        assert_eq!(n, 3);
        store.health().await.unwrap();
        store.reset().await.unwrap();
    });
    assert!(keys_by_node(&cluster, "span").is_empty());
}

/// Two identities whose hash tags live on different nodes.
fn on_two_nodes(cluster: &RedisCluster) -> (Key, Key) {
    let a = Key::new("ip", "10.0.0.1");
    let node = |k: &Key| cluster.node_of(&format!("{{{}}}", k.identity())).port();
    let b = (0..100)
        .map(|i| Key::new("user", &format!("u{i}")))
        .find(|b| node(b) != node(&a))
        .unwrap();
    (a, b)
}

#[test]
fn cross_slot_refunds_restore_sliding_windows_behind_a_closed_gate() {
    let cluster = RedisCluster::start(3);
    let (store, _) = manual_store(&cluster.url(), "gate");
    let (a, b) = on_two_nodes(&cluster);
    let meta = b.under(&["meta"]);
    smol::block_on(async {
        // Close `b`'s gate: its meta counter is spent.
        let spend = [charge(
            &meta,
            "2 per minute",
            StrategyKind::SlidingWindowCounter,
            2,
        )];
        assert!(store.hit(&spend).await.unwrap().allowed);
        let batch = [
            charge(&a, "5 per minute", StrategyKind::SlidingWindowCounter, 2),
            Charge::gate(
                meta.clone(),
                "2 per minute".parse().unwrap(),
                StrategyKind::SlidingWindowCounter,
                1,
            ),
            charge(&a, "3 per minute", StrategyKind::MovingWindow, 1),
        ];
        let v = store.hit(&batch).await.unwrap();
        assert!(!v.allowed);
        assert_eq!(v.rejected_by(), Some(1), "the gate rejects");
        // `a` was reserved first, then given back: its windows are as before.
        let remaining: Vec<u64> = v.statuses.iter().map(|s| s.remaining).collect();
        assert_eq!(remaining, [5, 0, 3]);
        let t = store
            .test(&[batch[0].clone(), batch[2].clone()])
            .await
            .unwrap();
        assert_eq!(
            t.statuses.iter().map(|s| s.remaining).collect::<Vec<_>>(),
            [5, 3]
        );
        // The gate charged nothing: the meta counter still holds exactly the two spent.
        let m = store.test(&spend[..]).await.unwrap();
        assert_eq!(m.statuses[0].remaining, 0);
        assert!(!m.allowed);
    });
}

#[test]
fn a_refund_that_fails_mid_batch_is_reported_not_hidden() {
    let mut cluster = RedisCluster::start(3);
    let store = ratekeeper_redis::RedisStorage::from_uri(&format!(
        "{}?prefix=lost&socket_timeout=1&socket_connect_timeout=0.2",
        cluster.url()
    ))
    .unwrap();
    let (a, b) = on_two_nodes(&cluster);
    let node_index = |k: &Key| {
        let port = cluster.node_of(&format!("{{{}}}", k.identity())).port();
        cluster
            .nodes()
            .iter()
            .position(|n| n.port() == port)
            .unwrap()
    };
    let (ia, ib) = (node_index(&a), node_index(&b));
    let batch = [
        charge(&a, "5 per minute", StrategyKind::FixedWindow, 1),
        charge(&b, "5 per minute", StrategyKind::FixedWindow, 1),
    ];
    // Warm the connections to both nodes (and load the script on each).
    assert!(smol::block_on(store.hit(&batch)).unwrap().allowed);
    assert!(smol::block_on(store.hit(&batch)).unwrap().allowed);
    // `b`'s node hangs: its call times out (1.2 s) after `a` was reserved; meanwhile `a`'s
    // node dies, so the refund that follows cannot reach it.
    let scripts_run = |i: usize| -> u64 {
        cluster.nodes()[i]
            .cli(&["INFO", "commandstats"])
            .lines()
            .filter(|l| {
                ["cmdstat_fcall:", "cmdstat_evalsha:", "cmdstat_eval:"]
                    .iter()
                    .any(|c| l.starts_with(c))
            })
            .filter_map(|l| {
                l.split("calls=")
                    .nth(1)?
                    .split(',')
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
            .sum()
    };
    let before = scripts_run(ia);
    cluster.nodes()[ib].pause();
    let call = std::thread::spawn(move || smol::block_on(store.hit(&batch)));
    // Kill `a`'s node once it has run the reservation (one more batch call than before).
    ratekeeper_test_support::redis::wait_until(
        "the reservation on a's node",
        core::time::Duration::from_secs(10),
        || scripts_run(ia) > before,
    );
    cluster.node_mut(ia).kill();
    let result = call.join().unwrap();
    cluster.nodes()[ib].resume();
    let err = result.expect_err("the batch cannot complete");
    assert!(err.is_unavailable(), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("1 charge(s) reserved on other cluster slots could not be refunded"),
        "{text}"
    );
}
