//! Clearing on a real server: only this store's counters go (an application's keys and another
//! store's under a longer prefix stay), on a single node and on a cluster, and clearing one
//! client in a keyspace of a million keys never holds Redis for long.

mod common;

use common::manual_store;
use ratekeeper_core::{Limit, StrategyKind};
use ratekeeper_redis::RedisStorage;
use ratekeeper_storage::{Charge, Key, Storage};
use ratekeeper_test_support::redis::{RedisCluster, RedisServer};

/// One charge of every strategy for `key`.
fn every_strategy(key: &Key) -> Vec<Charge> {
    StrategyKind::ALL
        .iter()
        .map(|&kind| {
            Charge::new(
                key.clone(),
                "5 per minute".parse::<Limit>().unwrap(),
                kind,
                1,
            )
        })
        .collect()
}

/// The neighbours of a store with prefix `rl`: keys that clearing it must leave alone.
const NEIGHBOURS: [&str; 4] = [
    "rl:sessions:user42",
    "rl:{ip:1.2.3.4}",
    "rl:{ip:1.2.3.4}:not-a-counter",
    "other:{ip:1.2.3.4}::f2:5/60",
];

/// Hits every strategy for two clients on `rl` and on `rl:app2`, sets the neighbours, and
/// runs `check` between each clearing and the keys that must then be left.
fn clearing_spares_the_neighbours(url: &str, set: impl Fn(&str), exists: impl Fn(&str) -> bool) {
    let (store, _) = manual_store(url, "rl");
    let (app2, _) = manual_store(url, "rl:app2");
    let alice = Key::new("ip", "1.2.3.4");
    let bob = Key::new("ip", "5.6.7.8");
    for name in NEIGHBOURS {
        set(name);
    }
    smol::block_on(async {
        for key in [&alice, &bob] {
            assert!(store.hit(&every_strategy(key)).await.unwrap().allowed);
            assert!(app2.hit(&every_strategy(key)).await.unwrap().allowed);
        }
        let remaining = |store: &RedisStorage, key: &Key| {
            let batch = every_strategy(key);
            let store = store.clone();
            async move {
                let verdict = store.test(&batch).await.unwrap();
                verdict
                    .statuses
                    .iter()
                    .map(|s| s.remaining)
                    .collect::<Vec<_>>()
            }
        };
        store.clear_client(&alice).await.unwrap();
        assert_eq!(remaining(&store, &alice).await, [5; 4], "alice is cleared");
        assert_eq!(remaining(&store, &bob).await, [4; 4], "bob is not");
        assert_eq!(remaining(&app2, &alice).await, [4; 4], "nor app2's alice");

        store.reset().await.unwrap();
        assert_eq!(remaining(&store, &bob).await, [5; 4], "reset clears bob");
        assert_eq!(
            remaining(&app2, &alice).await,
            [4; 4],
            "app2's counters stay"
        );
        assert_eq!(remaining(&app2, &bob).await, [4; 4]);
    });
    for name in NEIGHBOURS {
        assert!(exists(name), "{name} survived");
    }
}

#[test]
fn clearing_a_single_node_deletes_only_this_stores_counters() {
    let server = RedisServer::start();
    clearing_spares_the_neighbours(
        &server.url(),
        |name| {
            server.cli(&["SET", name, "1"]);
        },
        |name| server.cli(&["EXISTS", name]) == "1",
    );
}

#[test]
fn clearing_a_cluster_deletes_only_this_stores_counters() {
    let cluster = RedisCluster::start(3);
    clearing_spares_the_neighbours(
        &cluster.url(),
        |name| {
            cluster.node_of(name).cli(&["SET", name, "1"]);
        },
        |name| cluster.node_of(name).cli(&["EXISTS", name]) == "1",
    );
}

/// With a million unrelated keys, clearing one client pages through the keyspace: no command
/// runs for 50 ms or more (Redis's slow log, which times each command on the server, stays
/// empty), and the client's counters are gone while the million keys stay.
#[test]
fn clearing_one_client_among_a_million_keys_never_blocks_redis() {
    let server = RedisServer::start();
    let fill = "for i = 1, 1000000 do redis.call('SET', 'junk:' .. i, 1) end return 1";
    assert_eq!(server.cli(&["EVAL", fill, "0"]), "1");
    assert_eq!(server.cli(&["DBSIZE"]), "1000000");
    let store = RedisStorage::from_uri(&format!("{}?prefix=big", server.url())).unwrap();
    let alice = Key::new("ip", "1.2.3.4");
    smol::block_on(async {
        assert!(store.hit(&every_strategy(&alice)).await.unwrap().allowed);
    });
    assert_eq!(server.cli(&["DBSIZE"]), "1000005");
    assert_eq!(
        server.cli(&["CONFIG", "SET", "slowlog-log-slower-than", "50000"]),
        "OK"
    );
    assert_eq!(server.cli(&["SLOWLOG", "RESET"]), "OK");
    smol::block_on(store.clear_client(&alice)).unwrap();
    let slow = server.cli(&["SLOWLOG", "GET", "10"]);
    assert_eq!(
        server.cli(&["SLOWLOG", "LEN"]),
        "0",
        "commands of 50 ms or more while clearing: {slow}"
    );
    assert_eq!(server.cli(&["DBSIZE"]), "1000000", "alice's 5 keys went");
}
