//! The fuzz checks, shared by the cargo-fuzz targets (nightly) and by the corpus replay test of
//! `ratekeeper-core` (stable), so that both run exactly the same code on the same bytes.
//!
//! Each strategy is run against a deliberately simple reference model: a plain list of hits,
//! a map of buckets, a `u128` GCRA. The models are slow and obvious; the state machines must
//! agree with them on every decision, on `remaining`, and on where `retry_after` points.

#![allow(dead_code, unreachable_pub, clippy::large_enum_variant)]

use std::collections::BTreeMap;

use arbitrary::{Arbitrary, Unstructured};
use ratekeeper_core::{
    BoundedMovingWindow, FixedWindow, Gcra, Limit, Limits, RetryAfter, SlidingWindow, Strategy,
    StrategyKind, Timestamp, Unit,
};

/// The parser never panics, its errors point inside the input, and every limit it accepts
/// prints in a canonical form that parses back to the same limit.
/// Checks the parser on one fuzzed input; returns how many inputs were checked (0 when the
/// bytes are not UTF-8, 1 otherwise), so that a replay can tell a corpus that checks nothing.
pub fn parse(data: &[u8]) -> usize {
    let Ok(input) = core::str::from_utf8(data) else {
        return 0;
    };
    let all: Result<Vec<Limit>, _> = ratekeeper_core::parse_limits(input).collect();
    match &all {
        Ok(limits) => {
            for limit in limits {
                let shown = limit.to_string();
                assert_eq!(shown.parse::<Limit>().as_ref(), Ok(limit), "{shown}");
            }
            let fixed = input.parse::<Limits<4>>();
            match fixed {
                Ok(l) => assert_eq!(&l[..], &limits[..]),
                Err(e) => assert!(limits.len() > 4, "{e}"),
            }
        }
        Err(e) => {
            assert!(
                e.offset().is_none_or(|o| o <= input.len()),
                "{e:?} for {input:?}"
            );
            assert!(!e.to_string().is_empty());
            assert!(input.parse::<Limits<4>>().is_err());
        }
    }
    if let Ok(one) = input.parse::<Limit>() {
        assert_eq!(all.as_deref(), Ok(&[one][..]));
    }
    1
}

/// One fuzzed operation.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Op {
    Hit,
    Test,
    Refund,
    Stats,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Advance {
    None,
    Nanos(u8),
    /// 1/256ths of the window.
    Fraction(u16),
    WindowMinus(u8),
    Intervals(u8, bool),
}

#[derive(Arbitrary, Debug)]
struct Step {
    advance: Advance,
    op: Op,
    cost: u8,
    probe: u8,
}

#[derive(Arbitrary, Debug)]
struct Scenario {
    amount: u8,
    multiples: u8,
    unit: u8,
    start: u64,
    steps: Vec<Step>,
}

/// The log capacity of the heapless moving window under test; amounts are kept below it.
const LOG: usize = 64;

/// Runs one fuzzed scenario of `kind` against its reference model; returns how many steps it
/// checked (0 when the bytes decode to no usable scenario).
pub fn strategy(kind: StrategyKind, data: &[u8]) -> usize {
    let Ok(scenario) = Scenario::arbitrary_take_rest(Unstructured::new(data)) else {
        return 0;
    };
    let units = [Unit::Second, Unit::Minute, Unit::Hour, Unit::Day];
    let amount = u64::from(scenario.amount) % (LOG as u64 + 1);
    let multiples = u64::from(scenario.multiples % 8) + 1;
    let unit = units[usize::from(scenario.unit) % units.len()];
    let Ok(limit) = Limit::new(amount, multiples, unit) else {
        return 0;
    };
    let w = limit.window().as_nanos();
    // Keep time far from u64::MAX: the machines saturate there, the models do not. A scenario
    // whose clock would pass `END` ends there (a wrapped clock would go back in time, which
    // the machines handle on purpose and the models do not).
    const END: u64 = 1 << 63;
    let mut now = scenario.start % (1 << 62);
    let mut machine = Machine::new(kind);
    let mut model = Model::new(kind, limit);
    let mut checked = 0;
    for step in scenario.steps.iter().take(256) {
        let advance = match step.advance {
            Advance::None => 0,
            Advance::Nanos(n) => u64::from(n),
            Advance::Fraction(f) => w / 256 * u64::from(f),
            Advance::WindowMinus(n) => w - u64::from(n),
            Advance::Intervals(k, minus_one) => (limit.emission_interval().as_nanos()
                * u64::from(k))
            .saturating_sub(u64::from(minus_one)),
        };
        match now.checked_add(advance).filter(|t| *t < END) {
            Some(next) => now = next,
            None => break,
        }
        let at = Timestamp::from_nanos(now);
        let cost = u64::from(step.cost % 16);
        let m = machine.get();
        // retry_after points exactly where the model starts allowing.
        let probe = u64::from(step.probe % 16);
        match m.retry_after(&limit, at, probe) {
            RetryAfter::Never => assert!(probe > amount, "never for {probe} of {limit}"),
            RetryAfter::After(wait) => {
                let when = now
                    .checked_add(wait.as_nanos())
                    .unwrap_or_else(|| panic!("{kind} {limit}: absurd wait {wait}"));
                assert!(
                    model.allows(when, probe),
                    "{kind} {limit}: not allowed after {wait}"
                );
                if wait.as_nanos() > 0 {
                    assert!(
                        !model.allows(when - 1, probe),
                        "{kind} {limit}: allowed before {wait}"
                    );
                }
            }
        }
        let expected = model.allows(now, cost);
        assert_eq!(
            m.test(&limit, at, cost).is_allowed(),
            expected,
            "{kind} {limit}: test at {now}"
        );
        match step.op {
            Op::Hit => {
                let got = machine.get_mut().hit(&limit, at, cost).is_allowed();
                assert_eq!(got, expected, "{kind} {limit}: hit of {cost} at {now}");
                if got {
                    model.hit(now, cost);
                }
            }
            Op::Refund => {
                machine.get_mut().refund(&limit, at, cost);
                model.refund(now, cost);
            }
            Op::Test | Op::Stats => {}
        }
        let stats = machine.get().stats(&limit, at);
        assert_eq!(
            stats.remaining,
            model.remaining(now),
            "{kind} {limit}: remaining at {now}"
        );
        assert_eq!(
            stats.reset.as_nanos(),
            model.reset(now),
            "{kind} {limit}: reset at {now}"
        );
        checked += 1;
    }
    checked
}

enum Machine {
    Fixed(FixedWindow),
    Moving(BoundedMovingWindow<LOG>),
    Sliding(SlidingWindow),
    Gcra(Gcra),
}

impl Machine {
    fn new(kind: StrategyKind) -> Self {
        match kind {
            StrategyKind::FixedWindow => Self::Fixed(FixedWindow::new()),
            StrategyKind::MovingWindow => Self::Moving(BoundedMovingWindow::new()),
            StrategyKind::SlidingWindowCounter => Self::Sliding(SlidingWindow::new()),
            StrategyKind::Gcra => Self::Gcra(Gcra::new()),
            _ => unreachable!("the model knows every strategy of StrategyKind::ALL"),
        }
    }

    fn get(&self) -> &dyn Strategy {
        match self {
            Self::Fixed(s) => s,
            Self::Moving(s) => s,
            Self::Sliding(s) => s,
            Self::Gcra(s) => s,
        }
    }

    fn get_mut(&mut self) -> &mut dyn Strategy {
        match self {
            Self::Fixed(s) => s,
            Self::Moving(s) => s,
            Self::Sliding(s) => s,
            Self::Gcra(s) => s,
        }
    }
}

/// The reference models: the obvious definitions, with no care for speed or memory.
struct Model {
    kind: StrategyKind,
    amount: u64,
    window: u64,
    interval: u64,
    /// Fixed window: (start, count) of the window opened by the first hit.
    fixed: Option<(u64, u64)>,
    /// Moving window: every admitted unit of cost, by time.
    log: Vec<(u64, u64)>,
    /// Sliding window: count per epoch-aligned bucket.
    buckets: BTreeMap<u64, u64>,
    /// GCRA: theoretical arrival time.
    tat: u128,
}

impl Model {
    fn new(kind: StrategyKind, limit: Limit) -> Self {
        Self {
            kind,
            amount: limit.amount(),
            window: limit.window().as_nanos(),
            interval: limit.emission_interval().as_nanos(),
            fixed: None,
            log: Vec::new(),
            buckets: BTreeMap::new(),
            tat: 0,
        }
    }

    fn fixed_used(&self, now: u64) -> u64 {
        match self.fixed {
            Some((start, count)) if now - start < self.window => count,
            _ => 0,
        }
    }

    fn moving_used(&self, now: u64) -> u64 {
        self.log
            .iter()
            .filter(|&&(t, _)| now - t < self.window)
            .map(|&(_, c)| c)
            .sum()
    }

    /// The sliding window at `now`: (previous bucket's count, current bucket's count, time
    /// left in the current bucket).
    fn sliding_view(&self, now: u64) -> (u64, u64, u64) {
        let b = now / self.window;
        let prev = b
            .checked_sub(1)
            .and_then(|p| self.buckets.get(&p))
            .copied()
            .unwrap_or(0);
        let cur = self.buckets.get(&b).copied().unwrap_or(0);
        (prev, cur, (b + 1) * self.window - now)
    }

    /// floor(prev * left / window) + current.
    fn sliding_weighted(&self, now: u64) -> u64 {
        let (prev, cur, left) = self.sliding_view(now);
        (u128::from(prev) * u128::from(left) / u128::from(self.window)) as u64 + cur
    }

    fn allows(&self, now: u64, cost: u64) -> bool {
        if cost == 0 {
            return true;
        }
        let used = match self.kind {
            StrategyKind::FixedWindow => self.fixed_used(now),
            StrategyKind::MovingWindow => self.moving_used(now),
            StrategyKind::SlidingWindowCounter => self.sliding_weighted(now),
            StrategyKind::Gcra => {
                let (t, now) = (u128::from(self.interval), u128::from(now));
                let new_tat = self.tat.max(now) + u128::from(cost) * t;
                return cost <= self.amount && new_tat <= now + u128::from(self.amount) * t;
            }
            _ => unreachable!("the model knows every strategy of StrategyKind::ALL"),
        };
        used + cost <= self.amount
    }

    fn hit(&mut self, now: u64, cost: u64) {
        if cost == 0 {
            return;
        }
        match self.kind {
            StrategyKind::FixedWindow => {
                let used = self.fixed_used(now);
                let start = if used == 0 {
                    now
                } else {
                    self.fixed.map_or(now, |f| f.0)
                };
                self.fixed = Some((start, used + cost));
            }
            StrategyKind::MovingWindow => self.log.push((now, cost)),
            StrategyKind::SlidingWindowCounter => {
                *self.buckets.entry(now / self.window).or_default() += cost
            }
            StrategyKind::Gcra => {
                self.tat =
                    self.tat.max(u128::from(now)) + u128::from(cost) * u128::from(self.interval)
            }
            _ => unreachable!("the model knows every strategy of StrategyKind::ALL"),
        }
    }

    fn refund(&mut self, now: u64, mut cost: u64) {
        match self.kind {
            StrategyKind::FixedWindow => {
                if let Some((start, count)) = self.fixed.filter(|_| self.fixed_used(now) > 0) {
                    let left = count.saturating_sub(cost);
                    self.fixed = (left > 0).then_some((start, left));
                }
            }
            StrategyKind::MovingWindow => {
                while cost > 0 {
                    let Some(last) = self.log.last_mut().filter(|e| now - e.0 < self.window) else {
                        break;
                    };
                    let take = last.1.min(cost);
                    last.1 -= take;
                    cost -= take;
                    if last.1 == 0 {
                        self.log.pop();
                    }
                }
            }
            StrategyKind::SlidingWindowCounter => {
                let b = now / self.window;
                for bucket in [Some(b), b.checked_sub(1)].into_iter().flatten() {
                    let c = self.buckets.entry(bucket).or_default();
                    let take = (*c).min(cost);
                    *c -= take;
                    cost -= take;
                }
            }
            StrategyKind::Gcra => {
                self.tat = self
                    .tat
                    .saturating_sub(u128::from(cost) * u128::from(self.interval))
            }
            _ => unreachable!("the model knows every strategy of StrategyKind::ALL"),
        }
    }

    fn remaining(&self, now: u64) -> u64 {
        match self.kind {
            StrategyKind::FixedWindow => self.amount - self.fixed_used(now),
            StrategyKind::MovingWindow => self.amount - self.moving_used(now),
            StrategyKind::SlidingWindowCounter => {
                self.amount.saturating_sub(self.sliding_weighted(now))
            }
            StrategyKind::Gcra => {
                if self.interval == 0 {
                    return 0;
                }
                // Count down the units while each still fits.
                (0..=self.amount)
                    .rev()
                    .find(|&n| self.allows(now, n))
                    .unwrap_or(0)
            }
            _ => unreachable!("the model knows every strategy of StrategyKind::ALL"),
        }
    }

    /// The reset instant, as the vectors' README defines it for each strategy.
    fn reset(&self, now: u64) -> u64 {
        match self.kind {
            StrategyKind::FixedWindow => match self.fixed {
                Some((start, _)) if self.fixed_used(now) > 0 => start + self.window,
                _ => now,
            },
            StrategyKind::MovingWindow => {
                self.log
                    .iter()
                    .filter(|&&(t, _)| now - t < self.window)
                    .map(|&(t, _)| t)
                    .min()
                    .unwrap_or(now)
                    + self.window
            }
            StrategyKind::SlidingWindowCounter => {
                // now + min(left mod (window / prev), left): the first term (when prev > 0) is
                // when the previous bucket's weight next loses a whole unit, the second (when
                // current > 0) the end of the bucket; now when both are empty.
                let (prev, cur, left) = self.sliding_view(now);
                let mut reset_in = None;
                if prev > 0 {
                    // left mod (window / prev) = left - floor(left * prev / window) * window / prev
                    let (l, p, w) = (u128::from(left), u128::from(prev), u128::from(self.window));
                    let whole = l * p / w;
                    reset_in = Some(((l * p - whole * w) / p) as u64);
                }
                if cur > 0 {
                    reset_in = Some(reset_in.map_or(left, |r| r.min(left)));
                }
                now + reset_in.unwrap_or(0)
            }
            StrategyKind::Gcra => self.tat.max(u128::from(now)) as u64,
            _ => unreachable!("the model knows every strategy of StrategyKind::ALL"),
        }
    }
}
