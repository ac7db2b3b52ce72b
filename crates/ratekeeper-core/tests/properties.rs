//! Property tests of the strategy contract and each strategy's admission bound.

mod common;

use common::AnyState;
use proptest::prelude::*;
use ratekeeper_core::{Duration, Limit, RetryAfter, StrategyKind, Timestamp, Unit};

/// A small limit over a short or long window.
fn limit() -> impl Strategy<Value = Limit> {
    (
        0u64..=12,
        1u64..=3,
        prop::sample::select(vec![Unit::Second, Unit::Minute]),
    )
        .prop_map(|(amount, multiples, unit)| Limit::new(amount, multiples, unit).unwrap())
}

fn kind() -> impl Strategy<Value = StrategyKind> {
    prop::sample::select(StrategyKind::ALL.to_vec())
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Hit,
    Test,
    Refund,
    Stats,
}

/// One step: how far time moves (as a fraction of the window, in 1/1024ths, or a few ns), the
/// operation and its cost.
#[derive(Clone, Copy, Debug)]
struct Step {
    advance: Advance,
    op: Op,
    cost: u64,
}

#[derive(Clone, Copy, Debug)]
enum Advance {
    None,
    Nanos(u64),
    Fraction(u64),
    /// One window length minus a few nanoseconds: lands on window edges.
    WindowMinus(u64),
    /// A few emission intervals minus a nanosecond or none: lands on GCRA edges.
    Intervals(u64, u64),
}

fn step() -> impl Strategy<Value = Step> {
    let advance = prop_oneof![
        2 => Just(Advance::None),
        1 => (1u64..4).prop_map(Advance::Nanos),
        6 => (1u64..=2048).prop_map(Advance::Fraction),
        2 => (0u64..3).prop_map(Advance::WindowMinus),
        2 => (1u64..4, 0u64..2).prop_map(|(k, n)| Advance::Intervals(k, n)),
    ];
    let op = prop_oneof![6 => Just(Op::Hit), 2 => Just(Op::Test), 1 => Just(Op::Refund), 1 => Just(Op::Stats)];
    (advance, op, prop_oneof![8 => 1u64..=3, 1 => 0u64..=15]).prop_map(|(advance, op, cost)| Step {
        advance,
        op,
        cost,
    })
}

fn advance(now: Timestamp, limit: &Limit, a: Advance) -> Timestamp {
    let w = limit.window().as_nanos();
    match a {
        Advance::None => now,
        Advance::Nanos(n) => now.saturating_add(Duration::from_nanos(n)),
        Advance::Fraction(f) => now.saturating_add(Duration::from_nanos(w / 1024 * f)),
        Advance::WindowMinus(n) => now.saturating_add(Duration::from_nanos(w - n)),
        Advance::Intervals(k, n) => {
            let t = limit.emission_interval().as_nanos();
            now.saturating_add(Duration::from_nanos((t * k).saturating_sub(n)))
        }
    }
}

/// Start times: around the epoch, a bucket boundary, or anywhere.
fn start() -> impl Strategy<Value = Timestamp> {
    prop_oneof![
        Just(Timestamp::from_secs(1_700_000_040)),
        (0u64..1 << 62).prop_map(Timestamp::from_nanos),
        Just(Timestamp::EPOCH),
    ]
}

/// Runs hits only and returns the admitted (time, cost) pairs.
fn admitted(kind: StrategyKind, limit: &Limit, t0: Timestamp, steps: &[Step]) -> Vec<(u64, u64)> {
    let mut state = AnyState::new(kind, limit);
    let mut now = t0;
    let mut out = Vec::new();
    for s in steps {
        now = advance(now, limit, s.advance);
        if s.cost > 0 && state.hit(limit, now, s.cost).is_allowed() {
            out.push((now.as_nanos(), s.cost));
        }
    }
    out
}

/// The largest total cost admitted in any half-open window `[t, t + len)`.
fn max_in_any_window(hits: &[(u64, u64)], len: u64) -> u64 {
    hits.iter()
        .map(|&(start, _)| {
            hits.iter()
                .filter(|&&(t, _)| t >= start && t - start < len)
                .map(|&(_, c)| c)
                .sum()
        })
        .max()
        .unwrap_or(0)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn moving_window_never_exceeds_amount_in_any_window(
        limit in limit(), t0 in start(), steps in prop::collection::vec(step(), 1..120)
    ) {
        let hits = admitted(StrategyKind::MovingWindow, &limit, t0, &steps);
        prop_assert!(max_in_any_window(&hits, limit.window().as_nanos()) <= limit.amount());
    }

    #[test]
    fn fixed_window_never_exceeds_amount_per_window(
        limit in limit(), t0 in start(), steps in prop::collection::vec(step(), 1..120)
    ) {
        let hits = admitted(StrategyKind::FixedWindow, &limit, t0, &steps);
        let w = limit.window().as_nanos();
        // A window opens at the first admitted hit at or after the previous window's end.
        let mut window: Option<(u64, u64)> = None;
        for &(t, c) in &hits {
            window = match window {
                Some((start, sum)) if t - start < w => Some((start, sum + c)),
                _ => Some((t, c)),
            };
            prop_assert!(window.unwrap().1 <= limit.amount());
        }
        prop_assert!(max_in_any_window(&hits, w) <= 2 * limit.amount());
    }

    #[test]
    fn sliding_window_bounds(
        limit in limit(), t0 in start(), steps in prop::collection::vec(step(), 1..120)
    ) {
        let hits = admitted(StrategyKind::SlidingWindowCounter, &limit, t0, &steps);
        let w = limit.window().as_nanos();
        let mut per_bucket = std::collections::BTreeMap::<u64, u64>::new();
        for &(t, c) in &hits {
            *per_bucket.entry(t / w).or_default() += c;
        }
        prop_assert!(per_bucket.values().all(|&n| n <= limit.amount()));
        prop_assert!(max_in_any_window(&hits, w) <= 2 * limit.amount());
    }

    #[test]
    fn gcra_never_exceeds_burst_plus_emission(
        limit in limit(), t0 in start(), steps in prop::collection::vec(step(), 1..120)
    ) {
        let hits = admitted(StrategyKind::Gcra, &limit, t0, &steps);
        let t = limit.emission_interval().as_nanos().max(1);
        for (i, &(start, _)) in hits.iter().enumerate() {
            let mut sum = 0;
            for &(end, c) in &hits[i..] {
                sum += c;
                prop_assert!(sum <= limit.amount() + (end - start) / t,
                    "{sum} admitted in {} ns", end - start);
            }
        }
    }

    /// `test` agrees with `hit`, a rejected hit changes nothing, a same-instant refund restores
    /// the stats (remaining and reset), `remaining` is exactly what fits (it can be spent, one
    /// more cannot), and `retry_after` is exact - for every strategy, on random histories.
    #[test]
    fn contract_holds(
        kind in kind(), limit in limit(), t0 in start(),
        steps in prop::collection::vec(step(), 1..100), probe_cost in 0u64..=14
    ) {
        let mut state = AnyState::new(kind, &limit);
        let mut now = t0;
        for s in &steps {
            now = advance(now, &limit, s.advance);
            check_retry_after(&state, &limit, now, probe_cost)?;
            let before = state.stats(&limit, now);
            let predicted = state.test(&limit, now, s.cost);
            match s.op {
                Op::Hit => {
                    let got = state.hit(&limit, now, s.cost);
                    prop_assert_eq!(got, predicted, "test disagrees with hit");
                    if got.is_allowed() {
                        let mut undone = state.clone();
                        undone.refund(&limit, now, s.cost);
                        prop_assert_eq!(undone.stats(&limit, now), before,
                            "a same-instant refund did not restore the stats");
                        let mut undone = state.clone();
                        undone.refund_at(&limit, now, s.cost, now);
                        prop_assert_eq!(undone.stats(&limit, now), before,
                            "a same-instant refund_at did not restore the stats");
                    } else {
                        prop_assert_eq!(state.stats(&limit, now), before, "rejected hit changed state");
                    }
                }
                Op::Refund => state.refund(&limit, now, s.cost),
                Op::Test | Op::Stats => {
                    prop_assert_eq!(state.stats(&limit, now), before);
                }
            }
            let stats = state.stats(&limit, now);
            prop_assert!(stats.reset >= now && stats.remaining <= limit.amount());
            prop_assert_eq!(
                state.test(&limit, now, stats.remaining).is_allowed() || stats.remaining == 0, true,
                "remaining {} is not admissible", stats.remaining
            );
            prop_assert!(
                !state.test(&limit, now, stats.remaining + 1).is_allowed(),
                "remaining {} understates: one more is admitted too", stats.remaining
            );
        }
    }
}

/// A hit of `cost` at `now + wait` is allowed, and one nanosecond earlier is not.
fn check_retry_after(
    state: &AnyState,
    limit: &Limit,
    now: Timestamp,
    cost: u64,
) -> Result<(), TestCaseError> {
    match state.retry_after(limit, now, cost) {
        RetryAfter::Never => prop_assert!(cost > limit.amount(), "never for cost {cost}"),
        RetryAfter::After(wait) => {
            prop_assert!(cost <= limit.amount());
            let at = now.saturating_add(wait);
            prop_assert!(
                state.test(limit, at, cost).is_allowed(),
                "not allowed after {wait}"
            );
            if wait > Duration::ZERO {
                let before = at.saturating_sub(Duration::from_nanos(1));
                prop_assert!(
                    !state.test(limit, before, cost).is_allowed(),
                    "allowed before {wait}"
                );
            }
        }
    }
    Ok(())
}
