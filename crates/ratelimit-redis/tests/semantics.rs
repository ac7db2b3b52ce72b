//! The Redis script against the reference: the shared vectors, and long random sequences of
//! batches compared decision by decision with the memory backend (itself tested against the
//! core state machines), on explicit times.

mod common;

use std::path::Path;

use common::{Rng, T0, manual_store};
use ratelimit_core::{Clock, Duration, Limit, StrategyKind, Timestamp, Unit};
use ratelimit_memory::MemoryStorage;
use ratelimit_redis::test_server::RedisServer;
use ratelimit_storage::{Charge, Key, Op, Storage};
use serde_json::Value;

#[test]
fn shared_vectors_pass_on_redis() {
    let server = RedisServer::start();
    let dir = std::env::var_os("RATELIMIT_VECTORS_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors"),
        Into::into,
    );
    let text = std::fs::read_to_string(dir.join("strategies.jsonl")).expect("strategy vectors");
    let (mut sequences, mut events) = (0, 0);
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let case: Value = serde_json::from_str(line).unwrap();
        let kind: StrategyKind = case["strategy"].as_str().unwrap().parse().unwrap();
        let limit: Limit = case["limit"].as_str().unwrap().parse().unwrap();
        let (store, clock) = manual_store(&server.url(), &format!("v{sequences}"));
        let key = Key::new("test", "vector");
        let tolerance = if kind == StrategyKind::SlidingWindowCounter {
            1_000
        } else {
            1
        };
        for (i, e) in case["events"].as_array().unwrap().iter().enumerate() {
            clock.set(Timestamp::from_micros(e["t_us"].as_u64().unwrap()));
            let cost = e["cost"].as_u64().unwrap_or(0);
            let batch = [Charge::new(key.clone(), limit, kind, cost)];
            let at = format!("{} event {i}", case["name"]);
            match e["op"].as_str().unwrap() {
                op @ ("hit" | "test") => {
                    let op = if op == "hit" { Op::Hit } else { Op::Test };
                    let v = smol::block_on(store.apply(op, &batch)).unwrap();
                    assert_eq!(v.allowed, e["allowed"].as_bool().unwrap(), "{at}");
                }
                "stats" => {
                    let v = smol::block_on(store.apply(Op::Test, &batch)).unwrap();
                    assert_eq!(
                        v.statuses[0].remaining,
                        e["remaining"].as_u64().unwrap(),
                        "{at}"
                    );
                    let reset_us = v.statuses[0].reset.as_micros();
                    let want = e["reset_us"].as_u64().unwrap();
                    assert!(
                        reset_us.abs_diff(want) <= tolerance,
                        "{at}: {reset_us} vs {want}"
                    );
                }
                other => panic!("{at}: unknown op {other}"),
            }
            events += 1;
        }
        sequences += 1;
    }
    assert!(sequences > 0, "no vector found in {}", dir.display());
    println!("redis backend: {sequences} sequences, {events} events");
}

/// A random limit of `kind`: small amounts, windows of a second to a day.
fn random_limit(rng: &mut Rng) -> Limit {
    let unit = [Unit::Second, Unit::Minute, Unit::Hour, Unit::Day][rng.below(4) as usize];
    let amount = if rng.percent(10) {
        rng.below(1_000_000)
    } else {
        rng.below(13)
    };
    Limit::new(amount, 1 + rng.below(3), unit).unwrap()
}

/// Runs `runs` random sequences of `steps` batches on Redis and on the memory backend, both on
/// the same explicit clock, and compares every verdict. Returns the number of operations.
fn compare(server: &RedisServer, kinds: &[StrategyKind], seed: u64, runs: u64, steps: u64) -> u64 {
    let mut ops = 0;
    for run in 0..runs {
        let mut rng = Rng::new(seed * 1_000 + run);
        let (redis, clock) = manual_store(&server.url(), &format!("d{seed}-{run}"));
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
        // Start anywhere within a second of a realistic time, to nanosecond precision.
        clock.set(T0.saturating_add(Duration::from_nanos(rng.below(1_000_000_000))));
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
            let batch: Vec<Charge> = (0..1 + rng.below(3))
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
                    c
                })
                .collect();
            let want = memory.apply_at(op, &batch, now).unwrap();
            let got = smol::block_on(redis.apply(op, &batch)).unwrap();
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
fn redis_agrees_with_the_core_for_each_strategy() {
    let server = RedisServer::start();
    for (i, kind) in StrategyKind::ALL.into_iter().enumerate() {
        let ops = compare(&server, &[kind], i as u64, 50, 200);
        assert!(ops >= 10_000);
        println!("{kind}: {ops} operations agree");
    }
}

#[test]
fn redis_agrees_with_the_core_on_mixed_batches() {
    let server = RedisServer::start();
    let ops = compare(&server, &StrategyKind::ALL, 99, 25, 200);
    println!("mixed strategies: {ops} operations agree");
}
