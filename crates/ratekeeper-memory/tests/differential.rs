//! The memory backend, through the `Storage` trait, against the core state machines run by
//! hand: same random batches (up to four charges, each drawn on its own: key, limit, strategy,
//! cost, gate, charge on rejection; the same counter may come twice), same decisions,
//! remaining, reset and retry-after for every charge.

use std::collections::HashMap;

mod common;

use common::manual_store;
use proptest::prelude::*;
use ratekeeper_core::{
    BoundedMovingWindow, Duration, FixedWindow, Gcra, Limit, RetryAfter, SlidingWindow,
    StrategyKind, Unit,
};
use ratekeeper_storage::{Charge, Key, LimitStatus, Op, Storage};

/// The core state of one key, as the reference.
#[derive(Clone, Debug)]
#[allow(clippy::large_enum_variant)]
enum Model {
    Fixed(FixedWindow),
    Moving(BoundedMovingWindow<64>),
    Sliding(SlidingWindow),
    Gcra(Gcra),
}

impl Model {
    fn new(kind: StrategyKind) -> Self {
        match kind {
            StrategyKind::FixedWindow => Self::Fixed(FixedWindow::new()),
            StrategyKind::MovingWindow => Self::Moving(BoundedMovingWindow::new()),
            StrategyKind::SlidingWindowCounter => Self::Sliding(SlidingWindow::new()),
            StrategyKind::Gcra => Self::Gcra(Gcra::new()),
            _ => unreachable!("the model knows every strategy of StrategyKind::ALL"),
        }
    }

    fn get(&mut self) -> &mut dyn ratekeeper_core::Strategy {
        match self {
            Self::Fixed(s) => s,
            Self::Moving(s) => s,
            Self::Sliding(s) => s,
            Self::Gcra(s) => s,
        }
    }
}

/// One charge of a batch: which key, limit and strategy (so which counter), its cost, and,
/// for a gate, the room it needs.
#[derive(Clone, Debug)]
struct Draw {
    key: usize,
    limit: usize,
    strategy: StrategyKind,
    cost: u64,
    gate: Option<u64>,
    on_reject: u64,
}

#[derive(Clone, Debug)]
struct Step {
    advance_ms: u64,
    op: Op,
    charges: Vec<Draw>,
}

fn draw() -> impl Strategy<Value = Draw> {
    (
        0usize..2,
        0usize..3,
        prop::sample::select(StrategyKind::ALL.to_vec()),
        prop_oneof![8 => 1u64..=3, 1 => 0u64..=14],
        prop_oneof![4 => Just(None), 1 => (1u64..=4).prop_map(Some)],
        prop_oneof![4 => Just(0u64), 1 => 1u64..=3],
    )
        .prop_map(|(key, limit, strategy, cost, gate, on_reject)| Draw {
            key,
            limit,
            strategy,
            cost,
            gate,
            on_reject,
        })
}

fn step() -> impl Strategy<Value = Step> {
    (
        prop_oneof![3 => Just(0u64), 5 => 1u64..3_000, 1 => 50_000u64..200_000],
        prop_oneof![6 => Just(Op::Hit), 2 => Just(Op::Test), 1 => Just(Op::Refund)],
        // Up to four charges, drawn independently: the same counter may come twice.
        prop::collection::vec(draw(), 1..=4),
    )
        .prop_map(|(advance_ms, op, charges)| Step {
            advance_ms,
            op,
            charges,
        })
}

fn expected(
    model: &mut Model,
    limit: &Limit,
    now: ratekeeper_core::Timestamp,
    cost: u64,
    allowed: bool,
) -> LimitStatus {
    let s = model.get();
    let stats = s.stats(limit, now);
    let retry_after = if allowed {
        RetryAfter::NOW
    } else {
        s.retry_after(limit, now, cost)
    };
    LimitStatus::new(allowed, stats.remaining, stats.reset, retry_after)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn memory_agrees_with_the_core(
        limits in prop::collection::vec(
            (0u64..=12, prop::sample::select(vec![Unit::Second, Unit::Minute]))
                .prop_map(|(amount, unit)| Limit::per(amount, unit)),
            3,
        ),
        steps in prop::collection::vec(step(), 1..80),
    ) {
        let (store, clock, _) = manual_store(|b| b.shards(3));
        let keys: Vec<Key> = (0..2).map(|i| Key::new("k", &i.to_string())).collect();
        // The reference: one core state per counter (key, limit, strategy); equal limits drawn
        // twice are one counter, as in the store.
        let mut models: HashMap<(usize, String, StrategyKind), Model> = HashMap::new();
        for s in &steps {
            clock.advance(Duration::from_millis(s.advance_ms));
            let now = ratekeeper_core::Clock::now(&*clock);
            let batch: Vec<Charge> = s
                .charges
                .iter()
                .map(|d| {
                    let (key, limit) = (keys[d.key].clone(), limits[d.limit]);
                    match d.gate {
                        Some(need) => Charge::gate(key, limit, d.strategy, need),
                        None => Charge::new(key, limit, d.strategy, d.cost),
                    }
                    .charging_on_reject(d.on_reject)
                })
                .collect();
            let counter = |i: usize| {
                let d = &s.charges[i];
                (d.key, limits[d.limit].to_string(), d.strategy)
            };
            for i in 0..batch.len() {
                models.entry(counter(i)).or_insert_with(|| Model::new(s.charges[i].strategy));
            }
            let verdict = smol::block_on(store.apply(s.op, &batch)).unwrap();
            // Each charge needs its own room, and the charges on one counter fit together.
            let fits: Vec<bool> = (0..batch.len())
                .map(|i| {
                    let together: u64 = (0..batch.len())
                        .filter(|&j| counter(j) == counter(i))
                        .map(|j| batch[j].cost)
                        .sum();
                    let m = models.get_mut(&counter(i)).unwrap().get();
                    let limit = &batch[i].limit;
                    m.test(limit, now, batch[i].room()).is_allowed()
                        && m.test(limit, now, together).is_allowed()
                })
                .collect();
            let all = fits.iter().all(|&f| f);
            for (i, c) in batch.iter().enumerate() {
                let m = models.get_mut(&counter(i)).unwrap().get();
                match s.op {
                    Op::Hit if all => prop_assert!(m.hit(&c.limit, now, c.cost).is_allowed()),
                    // A rejected hit charges `on_reject` where it fits (all or nothing each).
                    Op::Hit if c.on_reject() > 0 => {
                        let _ = m.hit(&c.limit, now, c.on_reject());
                    }
                    Op::Refund => m.refund(&c.limit, now, c.cost),
                    _ => {}
                }
            }
            prop_assert_eq!(verdict.allowed, s.op == Op::Refund || all);
            prop_assert_eq!(verdict.statuses.len(), batch.len());
            for (i, c) in batch.iter().enumerate() {
                let allowed = s.op == Op::Refund || fits[i];
                let m = models.get_mut(&counter(i)).unwrap();
                let want = expected(m, &c.limit, now, c.room(), allowed);
                prop_assert_eq!(verdict.statuses[i], want, "{} {} charge {}", c.strategy, c.limit, i);
            }
        }
    }
}
