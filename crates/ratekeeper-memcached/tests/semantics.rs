//! memcached against the reference: the shared vectors, and long random sequences of batches
//! compared decision by decision with the memory backend (itself tested against the core state
//! machines), on explicit times, on one server and spread over two.

mod common;

use common::manual_store;
use ratekeeper_conformance::differential::{Compared, Sequences, against_memory};
use ratekeeper_core::StrategyKind;
use ratekeeper_test_support::memcached::MemcachedServer;

#[test]
fn shared_vectors_pass_on_memcached() {
    let server = MemcachedServer::start();
    let seen = smol::block_on(ratekeeper_conformance::strategy_vectors(|n| {
        manual_store(&server.url(), &format!("v{n}"))
    }));
    println!(
        "memcached backend: {} sequences, {} events",
        seen.sequences, seen.events
    );
}

/// Random sequences on `url` against the memory backend (see `ratekeeper_conformance`), with
/// the store's cache of refusals on (its default).
fn compare(url: &str, kinds: &[StrategyKind], seed: u64, runs: u64, steps: u64) -> Compared {
    smol::block_on(against_memory(
        |prefix| manual_store(url, prefix),
        Sequences {
            kinds,
            seed,
            runs,
            steps,
            large: 50_000,
        },
    ))
}

#[test]
fn memcached_agrees_with_the_core_for_each_strategy() {
    let server = MemcachedServer::start();
    let mut from_cache = 0;
    for (i, &kind) in StrategyKind::ALL.iter().enumerate() {
        let compared = compare(&server.url(), &[kind], i as u64, 30, 200);
        assert!(compared.ops >= 6_000);
        from_cache += compared.from_cache;
        println!("{kind}: {compared:?}");
    }
    // The cache of refusals answered for real, and only with refusals the memory store gave.
    assert!(from_cache >= 5, "{from_cache}");
}

#[test]
fn two_servers_agree_with_the_core_on_mixed_batches() {
    let (a, b) = (MemcachedServer::start(), MemcachedServer::start());
    let url = format!("memcached://{},{}", a.host_port(), b.host_port());
    let ops = compare(&url, StrategyKind::ALL, 99, 20, 200);
    println!("mixed strategies over two servers: {ops:?}");
}
