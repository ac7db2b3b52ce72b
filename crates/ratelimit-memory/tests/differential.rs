//! The memory backend, through the `Storage` trait, against the core state machines run by
//! hand: same random operations, same decisions, remaining, reset and retry-after.

mod common;

use common::manual_store;
use proptest::prelude::*;
use ratelimit_core::{
    BoundedMovingWindow, Duration, FixedWindow, Gcra, Limit, RetryAfter, SlidingWindow,
    StrategyKind, Unit,
};
use ratelimit_storage::{Charge, Key, LimitStatus, Op, Storage};

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
        }
    }

    fn get(&mut self) -> &mut dyn ratelimit_core::Strategy {
        match self {
            Self::Fixed(s) => s,
            Self::Moving(s) => s,
            Self::Sliding(s) => s,
            Self::Gcra(s) => s,
        }
    }
}

#[derive(Clone, Debug)]
struct Step {
    advance_ms: u64,
    op: Op,
    keys: Vec<usize>,
    cost: u64,
}

fn step() -> impl Strategy<Value = Step> {
    (
        prop_oneof![3 => Just(0u64), 5 => 1u64..3_000, 1 => 50_000u64..200_000],
        prop_oneof![6 => Just(Op::Hit), 2 => Just(Op::Test), 1 => Just(Op::Refund)],
        prop::collection::vec(0usize..3, 1..=2),
        prop_oneof![8 => 1u64..=3, 1 => 0u64..=14],
    )
        .prop_map(|(advance_ms, op, keys, cost)| Step {
            advance_ms,
            op,
            keys,
            cost,
        })
}

fn expected(
    model: &mut Model,
    limit: &Limit,
    now: ratelimit_core::Timestamp,
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
    LimitStatus {
        allowed,
        remaining: stats.remaining,
        reset: stats.reset,
        retry_after,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn memory_agrees_with_the_core(
        kind in prop::sample::select(StrategyKind::ALL.to_vec()),
        amount in 0u64..=12,
        unit in prop::sample::select(vec![Unit::Second, Unit::Minute]),
        steps in prop::collection::vec(step(), 1..80),
    ) {
        let limit = Limit::per(amount, unit);
        let (store, clock, _) = manual_store(|b| b.shards(3));
        let keys: Vec<Key> = (0..3).map(|i| Key::new("k", &i.to_string())).collect();
        let mut models: Vec<Model> = (0..3).map(|_| Model::new(kind)).collect();
        for s in &steps {
            clock.advance(Duration::from_millis(s.advance_ms));
            let now = ratelimit_core::Clock::now(&*clock);
            let mut ids = s.keys.clone();
            ids.dedup();
            let batch: Vec<Charge> =
                ids.iter().map(|&k| Charge::new(keys[k].clone(), limit, kind, s.cost)).collect();
            let verdict = smol::block_on(store.apply(s.op, &batch)).unwrap();
            // The reference: test every charge, then (for a hit) charge all or none.
            let fits: Vec<bool> =
                ids.iter().map(|&k| models[k].get().test(&limit, now, s.cost).is_allowed()).collect();
            let all = fits.iter().all(|&f| f);
            for (&k, _) in ids.iter().zip(&fits) {
                match s.op {
                    Op::Hit if all => prop_assert!(models[k].get().hit(&limit, now, s.cost).is_allowed()),
                    Op::Refund => models[k].get().refund(&limit, now, s.cost),
                    _ => {}
                }
            }
            let want_all = s.op == Op::Refund || all;
            prop_assert_eq!(verdict.allowed, want_all);
            for (i, &k) in ids.iter().enumerate() {
                let allowed = s.op == Op::Refund || fits[i];
                let want = expected(&mut models[k], &limit, now, s.cost, allowed);
                prop_assert_eq!(verdict.statuses[i], want, "{} {} key {}", kind, limit, k);
            }
        }
    }
}
