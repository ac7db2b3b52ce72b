//! memcached against the reference: the shared vectors, and long random sequences of batches
//! compared decision by decision with the memory backend (itself tested against the core state
//! machines), on explicit times, on one server and spread over two.

mod common;

use common::{Rng, T0, manual_store};
use ratelimit_core::{Clock, Duration, Limit, StrategyKind, Timestamp, Unit};
use ratelimit_memcached::test_server::MemcachedServer;
use ratelimit_memory::MemoryStorage;
use ratelimit_storage::{Charge, Key, Op, Storage};

#[test]
fn shared_vectors_pass_on_memcached() {
    let server = MemcachedServer::start();
    let seen = smol::block_on(ratelimit_conformance::strategy_vectors(|n| {
        manual_store(&server.url(), &format!("v{n}"))
    }));
    println!(
        "memcached backend: {} sequences, {} events",
        seen.sequences, seen.events
    );
}

/// A random limit: small amounts, windows of a second to a day.
fn random_limit(rng: &mut Rng) -> Limit {
    let unit = [Unit::Second, Unit::Minute, Unit::Hour, Unit::Day][rng.below(4) as usize];
    let amount = if rng.percent(10) {
        rng.below(50_000)
    } else {
        rng.below(13)
    };
    Limit::new(amount, 1 + rng.below(3), unit).unwrap()
}

/// Runs `runs` random sequences of `steps` batches on memcached and on the memory backend,
/// both on the same explicit clock, and compares every verdict. Returns the operations run.
fn compare(url: &str, kinds: &[StrategyKind], seed: u64, runs: u64, steps: u64) -> u64 {
    let mut ops = 0;
    for run in 0..runs {
        let mut rng = Rng::new(seed * 1_000 + run);
        let (store, clock) = manual_store(url, &format!("d{seed}-{run}"));
        let memory = MemoryStorage::builder().clock(clock.clone()).build();
        let limits: Vec<(Limit, StrategyKind)> = (0..3)
            .map(|_| {
                (
                    random_limit(&mut rng),
                    kinds[rng.below(kinds.len() as u64) as usize],
                )
            })
            .collect();
        let keys: Vec<Key> = (0..3).map(|i| Key::new("k", &i.to_string())).collect();
        clock.set(T0.saturating_add(Duration::from_nanos(rng.below(1_000_000_000))));
        let mut admitted: Vec<(Vec<Charge>, Timestamp)> = Vec::new();
        for step in 0..steps {
            let advance = match rng.below(10) {
                0..=2 => 0,
                3..=6 => rng.below(3_000) * 1_000_000,
                7 => rng.below(1_000_000_000),
                8 => rng.below(120) * 1_000_000_000 + rng.below(1_000),
                _ => rng.below(3) * 3_600_000_000_000 + rng.below(86_400) * 1_000_000_000,
            };
            clock.advance(Duration::from_nanos(advance));
            let now = clock.now();
            let op = match rng.below(9) {
                0..=5 => Op::Hit,
                6 | 7 => Op::Test,
                _ => Op::Refund,
            };
            let mut batch: Vec<Charge> = (0..1 + rng.below(3))
                .map(|_| {
                    let key = keys[rng.below(3) as usize].clone();
                    let (limit, kind) = limits[rng.below(3) as usize];
                    let cost = if rng.percent(85) {
                        rng.below(4)
                    } else {
                        rng.below(15)
                    };
                    let mut c = Charge::new(key, limit, kind, cost);
                    if rng.percent(15) {
                        c.need = cost + rng.below(5);
                    }
                    if rng.percent(15) {
                        c.on_reject = 1 + rng.below(3);
                    }
                    c
                })
                .collect();
            if op == Op::Refund && !admitted.is_empty() && rng.percent(70) {
                let (charges, at) = &admitted[rng.below(admitted.len() as u64) as usize];
                batch = charges
                    .iter()
                    .map(|c| {
                        let mut c = c.clone().charged_at(*at);
                        c.cost = rng.below(c.cost + 1);
                        c
                    })
                    .collect();
            }
            let want = memory.apply_at(op, &batch, now).unwrap();
            let got = smol::block_on(store.apply(op, &batch)).unwrap();
            if op == Op::Hit && want.allowed {
                admitted.push((batch.clone(), want.at));
            }
            assert_eq!(
                got, want,
                "seed {seed} run {run} step {step} at {now:?}: {op:?} {batch:#?}"
            );
            ops += 1;
        }
    }
    ops
}

#[test]
fn memcached_agrees_with_the_core_for_each_strategy() {
    let server = MemcachedServer::start();
    for (i, kind) in StrategyKind::ALL.into_iter().enumerate() {
        let ops = compare(&server.url(), &[kind], i as u64, 30, 200);
        assert!(ops >= 6_000);
        println!("{kind}: {ops} operations agree");
    }
}

#[test]
fn two_servers_agree_with_the_core_on_mixed_batches() {
    let (a, b) = (MemcachedServer::start(), MemcachedServer::start());
    let url = format!("memcached://{},{}", a.host_port(), b.host_port());
    let ops = compare(&url, &StrategyKind::ALL, 99, 20, 200);
    println!("mixed strategies over two servers: {ops} operations agree");
}
