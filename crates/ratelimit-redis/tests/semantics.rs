//! The Redis script against the reference: the shared vectors, and long random sequences of
//! batches compared decision by decision with the memory backend (itself tested against the
//! core state machines), on explicit times.

mod common;

use common::{Rng, T0, manual_store};
use ratelimit_core::{Clock, Duration, Limit, RetryAfter, StrategyKind, Timestamp, Unit};
use ratelimit_memory::MemoryStorage;
use ratelimit_redis::test_server::{RedisCluster, RedisServer};
use ratelimit_storage::{Charge, Key, Op, Storage};

#[test]
fn shared_vectors_pass_on_redis() {
    let server = RedisServer::start();
    let seen = smol::block_on(ratelimit_conformance::strategy_vectors(|n| {
        manual_store(&server.url(), &format!("v{n}"))
    }));
    println!(
        "redis backend: {} sequences, {} events",
        seen.sequences, seen.events
    );
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
fn compare(url: &str, kinds: &[StrategyKind], seed: u64, runs: u64, steps: u64) -> u64 {
    let mut ops = 0;
    for run in 0..runs {
        let mut rng = Rng::new(seed * 1_000 + run);
        let (redis, clock) = manual_store(url, &format!("d{seed}-{run}"));
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
        // Admitted hits, with the instant the store gave them: refunds name them.
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
                // The refund of an earlier hit, naming its instant (some or all of its cost).
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
            let got = smol::block_on(redis.apply(op, &batch)).unwrap();
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
fn redis_agrees_with_the_core_for_each_strategy() {
    let server = RedisServer::start();
    for (i, kind) in StrategyKind::ALL.into_iter().enumerate() {
        let ops = compare(&server.url(), &[kind], i as u64, 50, 200);
        assert!(ops >= 10_000);
        println!("{kind}: {ops} operations agree");
    }
}

#[test]
fn redis_agrees_with_the_core_on_mixed_batches() {
    let server = RedisServer::start();
    let ops = compare(&server.url(), &StrategyKind::ALL, 99, 25, 200);
    println!("mixed strategies: {ops} operations agree");
}

/// Servers without functions (before Redis 7; here renamed away) run the same batch as a
/// script: the vectors and the differential run must agree there too.
#[test]
fn the_script_agrees_on_servers_without_functions() {
    let server = common::server_without_functions();
    let seen = smol::block_on(ratelimit_conformance::strategy_vectors(|n| {
        manual_store(&server.url(), &format!("v{n}"))
    }));
    let ops = compare(&server.url(), &StrategyKind::ALL, 77, 10, 200);
    println!(
        "script path: {} sequences, {} events, {ops} operations agree",
        seen.sequences, seen.events
    );
    assert!(
        server
            .cli(&["INFO", "commandstats"])
            .contains("cmdstat_evalsha")
    );
}

/// On a cluster the three keys of a run sit in different slots, so most batches span slots:
/// reserved slot by slot and refunded on a rejection. The verdicts must still be the memory
/// store's, field for field.
#[test]
fn a_cluster_agrees_with_the_core_across_slots() {
    let cluster = RedisCluster::start(3);
    let url = cluster.url();
    for (i, kind) in StrategyKind::ALL.into_iter().enumerate() {
        let ops = compare(&url, &[kind], 200 + i as u64, 6, 200);
        println!("cluster, {kind}: {ops} operations agree");
    }
    let ops = compare(&url, &StrategyKind::ALL, 299, 6, 200);
    println!("cluster, mixed strategies: {ops} operations agree");
}

/// Windows longer than 2^52 ns (a year is 360 days here) are computed with Lua's double
/// precision: the decisions still agree with the core, and resets within a few nanoseconds.
#[test]
fn long_windows_agree_to_a_few_nanoseconds() {
    let server = RedisServer::start();
    let (redis, clock) = manual_store(&server.url(), "long");
    let memory = MemoryStorage::builder().clock(clock.clone()).build();
    let mut worst = 0;
    for kind in StrategyKind::ALL {
        // The three long limits in one batch, so every status of a verdict is compared.
        let batch: Vec<Charge> = ["2 per year", "7 per 3 years", "1000 per 2 months"]
            .into_iter()
            .map(|l| {
                Charge::new(
                    Key::new("k", &format!("{kind}")),
                    l.parse::<Limit>().unwrap(),
                    kind,
                    1,
                )
            })
            .collect();
        for i in 0..40u64 {
            clock.advance(Duration::from_nanos(i * 7_777_777_777_777 + 123));
            let now = clock.now();
            let want = memory.apply_at(Op::Hit, &batch, now).unwrap();
            let got = smol::block_on(redis.apply(Op::Hit, &batch)).unwrap();
            assert_eq!(got.allowed, want.allowed, "{kind} step {i}");
            assert_eq!(got.statuses.len(), batch.len());
            for (j, (g, w)) in got.statuses.iter().zip(&want.statuses).enumerate() {
                let at = format!("{kind} {} step {i}", batch[j].limit);
                assert_eq!(g.remaining, w.remaining, "{at}");
                let off = g.reset.as_nanos().abs_diff(w.reset.as_nanos());
                assert!(off <= 100, "{at}: reset off by {off} ns");
                worst = worst.max(off);
                let off = match (g.retry_after, w.retry_after) {
                    (RetryAfter::After(a), RetryAfter::After(b)) => {
                        a.as_nanos().abs_diff(b.as_nanos())
                    }
                    (a, b) => {
                        assert_eq!(a, b, "{at}: retry after");
                        0
                    }
                };
                assert!(off <= 100, "{at}: retry after off by {off} ns");
                worst = worst.max(off);
            }
        }
    }
    println!("long windows: decisions agree, resets and retry-afters within {worst} ns");
}
