//! The memcached store against real servers: batches over two servers, forgetting (reset,
//! clear_client, clear) through generations, keys memcached would refuse, and a server that
//! is dead or hung.

mod common;

use std::time::Instant;

use common::manual_store;
use ratekeeper_core::{Limit, StrategyKind};
use ratekeeper_memcached::MemcachedStorage;
use ratekeeper_storage::{Charge, Key, Storage, StorageError};
use ratekeeper_test_support::memcached::MemcachedServer;

fn charge(key: &Key, limit: &str, kind: StrategyKind) -> Charge {
    Charge::new(key.clone(), limit.parse::<Limit>().unwrap(), kind, 1)
}

/// Every key the server holds.
fn keys_on(server: &MemcachedServer) -> Vec<String> {
    common::names_on(server.port())
}

/// Batches over two servers, under contention: each reserves its roomy item and its tight
/// one; when the tight one fills between reading and writing, the roomy reservation is
/// refunded. Afterwards the roomy item holds exactly the admitted batches: nothing leaked.
#[test]
fn a_batch_rejected_on_one_server_leaves_the_other_as_it_was() {
    let (a, b) = (MemcachedServer::start(), MemcachedServer::start());
    let url = format!("memcached://{},{}", a.host_port(), b.host_port());
    let (store, _clock) = manual_store(&url, "span");
    smol::block_on(async {
        for j in 0..8 {
            for &kind in StrategyKind::ALL {
                let roomy = charge(&Key::new("roomy", &j.to_string()), "1000 per minute", kind);
                let tight = charge(&Key::new("tight", &j.to_string()), "10 per minute", kind);
                let tasks: Vec<_> = (0..32)
                    .map(|t| {
                        let store = store.clone();
                        // Both orders: the roomy item is first or second in the batch.
                        let batch = if t % 2 == 0 {
                            [roomy.clone(), tight.clone()]
                        } else {
                            [tight.clone(), roomy.clone()]
                        };
                        smol::spawn(async move {
                            let mut n = 0;
                            for _ in 0..4 {
                                n += usize::from(store.hit(&batch).await.unwrap().allowed);
                            }
                            n
                        })
                    })
                    .collect();
                let admitted: usize = futures::future::join_all(tasks).await.into_iter().sum();
                assert_eq!(admitted, 10, "{kind}");
                let left = store
                    .test(core::slice::from_ref(&roomy))
                    .await
                    .unwrap()
                    .statuses[0]
                    .remaining;
                assert_eq!(
                    left, 990,
                    "{kind}: the roomy item holds the admitted batches, no more"
                );
                // And one that is rejected outright leaves it as it was.
                assert!(
                    !store
                        .hit(&[roomy.clone(), tight.clone()])
                        .await
                        .unwrap()
                        .allowed
                );
                assert_eq!(
                    store.test(&[roomy]).await.unwrap().statuses[0].remaining,
                    990
                );
            }
        }
    });
    // The pairs did span the servers: some roomy item lives on one server and its tight
    // partner on the other.
    let (on_a, on_b) = (keys_on(&a), keys_on(&b));
    let spanning = (0..8)
        .filter(|j| {
            let on = |keys: &[String], what: &str| {
                keys.iter().any(|k| k.contains(&format!(":{what}:{j}:")))
            };
            (on(&on_a, "roomy") && on(&on_b, "tight")) || (on(&on_b, "roomy") && on(&on_a, "tight"))
        })
        .count();
    assert!(
        spanning >= 2,
        "only {spanning} of 8 pairs spanned the two servers"
    );
}

#[test]
fn forgetting_moves_generations_on() {
    let server = MemcachedServer::start();
    let (store, _clock) = manual_store(&server.url(), "forget");
    let alice = Key::new("ip", "10.0.0.1");
    let (login, search) = (alice.under(&["login"]), alice.under(&["search"]));
    let bob = Key::new("ip", "10.0.0.2").under(&["login"]);
    let limit = "5 per minute";
    smol::block_on(async {
        let remaining = |key: Key| {
            let store = store.clone();
            async move {
                store
                    .test(&[charge(&key, limit, StrategyKind::FixedWindow)])
                    .await
                    .unwrap()
                    .statuses[0]
                    .remaining
            }
        };
        for key in [&login, &search, &bob] {
            for _ in 0..2 {
                assert!(
                    store
                        .hit(&[charge(key, limit, StrategyKind::FixedWindow)])
                        .await
                        .unwrap()
                        .allowed
                );
            }
        }
        assert_eq!(remaining(login.clone()).await, 3);
        store.clear(&login).await.unwrap();
        assert_eq!(remaining(login.clone()).await, 5, "clear forgets the key");
        assert_eq!(
            remaining(search.clone()).await,
            3,
            "and nothing else of its client"
        );
        store.clear_client(&search).await.unwrap();
        assert_eq!(
            remaining(search.clone()).await,
            5,
            "clear_client forgets the client"
        );
        assert_eq!(remaining(bob.clone()).await, 3, "and no other client");
        store.reset().await.unwrap();
        assert_eq!(remaining(bob.clone()).await, 5, "reset forgets everything");
        // Counting starts again after each.
        assert!(
            store
                .hit(&[charge(&bob, limit, StrategyKind::FixedWindow)])
                .await
                .unwrap()
                .allowed
        );
        assert_eq!(remaining(bob.clone()).await, 4);
    });
    // Another store with another prefix on the same server is untouched by this one's reset.
    let (other, _c) = manual_store(&server.url(), "other");
    let (mine, _c2) = manual_store(&server.url(), "mine");
    smol::block_on(async {
        let k = Key::new("ip", "1");
        assert!(
            other
                .hit(&[charge(&k, limit, StrategyKind::Gcra)])
                .await
                .unwrap()
                .allowed
        );
        mine.reset().await.unwrap();
        let left = other
            .test(&[charge(&k, limit, StrategyKind::Gcra)])
            .await
            .unwrap();
        assert_eq!(left.statuses[0].remaining, 4);
    });
}

#[test]
fn any_client_text_makes_a_valid_item_name() {
    let server = MemcachedServer::start();
    let (store, _clock) = manual_store(&server.url(), "names");
    let nasty =
        Key::new("user", &format!("a b\r\nc\u{0}{}", "é".repeat(5_000))).under(&["GET /x y"]);
    smol::block_on(async {
        for &kind in StrategyKind::ALL {
            let c = charge(&nasty, "2 per minute", kind);
            assert!(store.hit(core::slice::from_ref(&c)).await.unwrap().allowed);
            assert!(store.hit(core::slice::from_ref(&c)).await.unwrap().allowed);
            assert!(
                !store.hit(&[c]).await.unwrap().allowed,
                "{kind}: counted on one item"
            );
        }
    });
    assert!(keys_on(&server).iter().all(|k| k.len() <= 250));
}

#[test]
fn a_dead_or_hung_server_is_an_error_within_the_deadline() {
    let mut server = MemcachedServer::start();
    let store =
        MemcachedStorage::from_uri(&format!("{}?timeout=0.2&connect_timeout=0.2", server.url()))
            .unwrap();
    let c = [charge(
        &Key::new("ip", "1"),
        "10 per minute",
        StrategyKind::FixedWindow,
    )];
    smol::block_on(async {
        assert!(store.hit(&c).await.unwrap().allowed);
        store.health().await.unwrap();
        server.pause();
        let t = Instant::now();
        let e = store.hit(&c).await.unwrap_err();
        assert!(matches!(e, StorageError::Timeout { .. }), "{e}");
        assert!(
            t.elapsed() < core::time::Duration::from_secs(2),
            "{:?}",
            t.elapsed()
        );
        server.resume();
        server.kill();
        let e = store.hit(&c).await.unwrap_err();
        assert!(e.is_unavailable(), "{e}");
        server.restart();
        // A fresh, empty server: counting starts again.
        let mut ok = false;
        for _ in 0..3 {
            if let Ok(v) = store.hit(&c).await {
                ok = v.allowed && v.statuses[0].remaining == 9;
                break;
            }
        }
        assert!(ok, "the restarted server counts from zero");
    });
}

#[test]
fn moving_windows_larger_than_an_item_are_a_configuration_error() {
    let server = MemcachedServer::start();
    let (store, _clock) = manual_store(&server.url(), "big");
    let c = charge(
        &Key::new("ip", "1"),
        "100000 per hour",
        StrategyKind::MovingWindow,
    );
    let e = smol::block_on(store.hit(&[c])).unwrap_err();
    assert!(matches!(e, StorageError::Configuration { .. }), "{e}");
    assert!(e.to_string().contains("60000"), "{e}");
}

/// A window that ends after 2038-01-19 (the last Unix time memcached takes as an expiry) counts
/// like any other: its items are kept, not stored already expired.
#[test]
fn windows_ending_after_2038_count() {
    let server = MemcachedServer::start();
    let (store, _clock) = manual_store(&server.url(), "far");
    smol::block_on(async {
        for &kind in StrategyKind::ALL {
            let key = Key::new("far", &kind.to_string());
            let far = charge(&key, "2 per 15 years", kind);
            let batch = core::slice::from_ref(&far);
            let first = store.hit(batch).await.unwrap();
            assert!(first.allowed, "{kind}");
            assert_eq!(first.statuses[0].remaining, 1, "{kind}: the hit was kept");
            assert!(store.hit(batch).await.unwrap().allowed, "{kind}");
            let third = store.hit(batch).await.unwrap();
            assert!(!third.allowed, "{kind}: the third of 2 per 15 years");
            assert_eq!(third.statuses[0].remaining, 0, "{kind}");
        }
    });
}
