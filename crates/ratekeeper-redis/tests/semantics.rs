//! The Redis script against the reference: the shared vectors, and long random sequences of
//! batches compared decision by decision with the memory backend (itself tested against the
//! core state machines), on explicit times.

mod common;

use common::{manual_store, manual_store_with};
use ratekeeper_conformance::differential::{Compared, Sequences, against_memory};
use ratekeeper_core::{Clock, Duration, Limit, RetryAfter, StrategyKind};
use ratekeeper_memory::MemoryStorage;
use ratekeeper_redis::RedisStorageBuilder;
use ratekeeper_storage::{Charge, Key, Op, Storage};
use ratekeeper_test_support::redis::{RedisCluster, RedisServer};

#[test]
fn shared_vectors_pass_on_redis() {
    let server = RedisServer::start();
    let seen = smol::block_on(ratekeeper_conformance::strategy_vectors(|n| {
        manual_store(&server.url(), &format!("v{n}"))
    }));
    println!(
        "redis backend: {} sequences, {} events",
        seen.sequences, seen.events
    );
}

/// Random sequences on `url` against the memory backend (see `ratekeeper_conformance`), with
/// the store's cache of refusals on (its default).
fn compare(url: &str, kinds: &[StrategyKind], seed: u64, runs: u64, steps: u64) -> Compared {
    compare_with(url, kinds, (seed, runs, steps), "", |b| b)
}

/// [`compare`] with the store's builder adjusted by `tune`, its keys under prefixes ending
/// with `tag` (the same sequences run again on one server need keys of their own).
fn compare_with(
    url: &str,
    kinds: &[StrategyKind],
    (seed, runs, steps): (u64, u64, u64),
    tag: &str,
    tune: impl Fn(RedisStorageBuilder) -> RedisStorageBuilder,
) -> Compared {
    smol::block_on(against_memory(
        |prefix| manual_store_with(url, &format!("{prefix}{tag}"), &tune),
        Sequences {
            kinds,
            seed,
            runs,
            steps,
            large: 1_000_000,
        },
    ))
}

#[test]
fn redis_agrees_with_the_core_for_each_strategy() {
    let server = RedisServer::start();
    for (i, &kind) in StrategyKind::ALL.iter().enumerate() {
        let cached = compare(&server.url(), &[kind], i as u64, 50, 200);
        assert!(cached.ops >= 10_000);
        // The same traffic with the cache of refusals off: every field agrees.
        let plain = compare_with(&server.url(), &[kind], (i as u64, 50, 200), "p", |b| {
            b.deny_cache(0)
        });
        assert_eq!((plain.ops, plain.from_cache), (cached.ops, 0));
        println!(
            "{kind}: {} operations agree, {} refused from the cache",
            cached.ops, cached.from_cache
        );
    }
}

/// The cache of refusals answers for real in these sequences (or the comparisons above would
/// prove nothing about it), and shared calls (coalescing) change nothing.
#[test]
fn refusals_come_from_the_cache_and_shared_calls_agree() {
    let server = RedisServer::start();
    // Seed 2's 40 sequences (fixed: the clock is manual) meet at least five cached refusals.
    let cached = compare(&server.url(), StrategyKind::ALL, 2, 40, 200);
    assert!(cached.from_cache >= 5, "{cached:?}");
    let shared = compare_with(&server.url(), StrategyKind::ALL, (2, 40, 200), "a", |b| {
        b.coalesce(64)
    });
    assert_eq!(shared, cached);
}

#[test]
fn redis_agrees_with_the_core_on_mixed_batches() {
    let server = RedisServer::start();
    let ops = compare(&server.url(), StrategyKind::ALL, 99, 25, 200);
    println!("mixed strategies: {ops:?} operations agree");
}

/// Servers without functions (before Redis 7; here renamed away) run the same batch as a
/// script: the vectors and the differential run must agree there too.
#[test]
fn the_script_agrees_on_servers_without_functions() {
    let server = common::server_without_functions();
    let seen = smol::block_on(ratekeeper_conformance::strategy_vectors(|n| {
        manual_store(&server.url(), &format!("v{n}"))
    }));
    let ops = compare(&server.url(), StrategyKind::ALL, 77, 10, 200);
    println!(
        "script path: {} sequences, {} events, {ops:?} operations agree",
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
    for (i, &kind) in StrategyKind::ALL.iter().enumerate() {
        let ops = compare(&url, &[kind], 200 + i as u64, 6, 200);
        println!("cluster, {kind}: {ops:?} operations agree");
    }
    let ops = compare(&url, StrategyKind::ALL, 299, 6, 200);
    println!("cluster, mixed strategies: {ops:?} operations agree");
}

/// Windows longer than 2^52 ns (a year is 360 days here) are computed with Lua's double
/// precision: the decisions still agree with the core, and resets within a few nanoseconds.
#[test]
fn long_windows_agree_to_a_few_nanoseconds() {
    let server = RedisServer::start();
    // The script's statuses, field by field: without the cache of refusals, whose counts may
    // be a moment old.
    let (redis, clock) = manual_store_with(&server.url(), "long", |b| b.deny_cache(0));
    let memory = MemoryStorage::builder().clock(clock.clone()).build();
    let mut worst = 0;
    for &kind in StrategyKind::ALL {
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

/// A charge made while the clock stood behind the newest entry is merged into it; refunded (or
/// renewed) at its own instant, it comes back from that entry, as in the memory store.
#[test]
fn a_charge_merged_into_a_newer_entry_is_given_back_as_in_memory() {
    use ratekeeper_core::Unit;
    let server = RedisServer::start();
    let (redis, clock) = manual_store(&server.url(), "merged");
    let memory = MemoryStorage::builder().clock(clock.clone()).build();
    let limit = Limit::per(2, Unit::Minute);
    let slot = || Charge::new(Key::new("ip", "1"), limit, StrategyKind::MovingWindow, 1);
    let t0 = clock.now();
    let both = |op: Op, charge: Charge| {
        let want = memory
            .apply_sync(op, core::slice::from_ref(&charge))
            .unwrap();
        let got = smol::block_on(redis.apply(op, &[charge])).unwrap();
        assert_eq!(got, want, "{op:?} at {:?}", clock.now());
        got
    };
    clock.set(t0.saturating_add(Duration::from_millis(200)));
    assert!(both(Op::Hit, slot()).allowed);
    clock.set(t0.saturating_add(Duration::from_millis(100)));
    let merged = both(Op::Hit, slot());
    assert!(merged.allowed);
    clock.set(t0.saturating_add(Duration::from_millis(300)));
    assert!(!both(Op::Test, slot()).allowed);
    let renewed = both(Op::Hit, slot().charged_at(merged.at));
    assert!(renewed.allowed);
    let back = both(Op::Refund, slot().charged_at(renewed.at));
    assert_eq!(back.statuses[0].remaining, 1);
}
