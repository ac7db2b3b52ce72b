//! The four rate-limiting strategies, each a pure state machine.
//!
//! A state is the memory of one key under one limit. Every operation is handed the limit and
//! `now`; none reads a clock, allocates or panics. All four share one contract ([`Strategy`]):
//!
//! - `hit(limit, now, cost)` consumes `cost` if the whole of it fits, else nothing;
//! - `test` says what `hit` would say, and changes nothing;
//! - `stats` gives the remaining quota and when the window resets;
//! - `refund` gives back a charge (conditional deduction);
//! - `retry_after` is the exact wait until a hit of `cost` would be allowed.
//!
//! Windows are half-open: a hit exactly one window old no longer counts. A hit of cost 0 is
//! always allowed and changes nothing; a cost larger than the limit's amount is never allowed.

mod any;
mod fixed_window;
mod gcra;
mod moving_window;
mod sliding_window;

use core::{fmt, str::FromStr};

pub use any::AnyStrategy;
pub use fixed_window::FixedWindow;
pub use gcra::Gcra;
pub use moving_window::{BoundedMovingWindow, Entry, EntryLog, MovingWindow};
pub use sliding_window::SlidingWindow;

use crate::{
    error::UnknownStrategy,
    limit::Limit,
    time::{Duration, Timestamp},
};

/// The answer to a hit or a test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[must_use]
pub enum Outcome {
    /// The cost fits: it was (for a hit) or would be (for a test) consumed.
    Allowed,
    /// The cost does not fit; nothing was consumed.
    Rejected,
}

impl Outcome {
    /// `true` for [`Outcome::Allowed`].
    pub const fn is_allowed(self) -> bool {
        matches!(self, Self::Allowed)
    }

    const fn from_bool(allowed: bool) -> Self {
        if allowed {
            Self::Allowed
        } else {
            Self::Rejected
        }
    }
}

/// The quota left and when it resets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Stats {
    /// The largest cost a hit could have now and be allowed.
    pub remaining: u64,
    /// When the window resets: see each strategy for its exact meaning. Never before `now`.
    pub reset: Timestamp,
}

impl Stats {
    /// The quota left and when it resets (for a [`Strategy`] of your own).
    pub const fn new(remaining: u64, reset: Timestamp) -> Self {
        Self { remaining, reset }
    }
}

/// How long until a hit would be allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RetryAfter {
    /// After this long (zero: now).
    After(Duration),
    /// Never: the cost is larger than the limit's amount.
    Never,
}

impl RetryAfter {
    /// Allowed now.
    pub const NOW: Self = Self::After(Duration::ZERO);

    /// The wait, or `None` for [`RetryAfter::Never`].
    pub const fn duration(self) -> Option<Duration> {
        match self {
            Self::After(d) => Some(d),
            Self::Never => None,
        }
    }
}

impl fmt::Display for RetryAfter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::After(d) => write!(f, "after {d}"),
            Self::Never => f.write_str("never"),
        }
    }
}

/// The state machine of one strategy, for one key under one limit.
///
/// The limit is passed to every call rather than stored, so that a state is as small as the
/// algorithm allows (8 bytes for [`Gcra`], 16 for [`FixedWindow`]). Use one limit per state: a
/// state fed different limits stays memory-safe and never panics, but its answers are only
/// meaningful for the limit it was built up with.
pub trait Strategy {
    /// Consumes `cost` and answers [`Outcome::Allowed`] if all of it fits; else changes nothing.
    fn hit(&mut self, limit: &Limit, now: Timestamp, cost: u64) -> Outcome;

    /// What [`Strategy::hit`] would answer now, without changing anything.
    fn test(&self, limit: &Limit, now: Timestamp, cost: u64) -> Outcome;

    /// The remaining quota and the reset time.
    fn stats(&self, limit: &Limit, now: Timestamp) -> Stats;

    /// Gives back up to `cost` of earlier charges that still count (the newest first).
    fn refund(&mut self, limit: &Limit, now: Timestamp, cost: u64);

    /// Gives back up to `cost` of the charge made at `charged_at`, only what that charge still
    /// holds at `now`: nothing once its window has passed (a fixed window or a sliding-window
    /// bucket that has closed, a moving-window entry that has expired), and for GCRA no more
    /// than the part of its emission interval still ahead. A refund after a window boundary so
    /// never hands out quota of the new window: a request that fails slowly cannot admit twice
    /// the limit.
    fn refund_at(&mut self, limit: &Limit, now: Timestamp, cost: u64, charged_at: Timestamp);

    /// The exact wait until a hit of `cost` is allowed: a hit at `now + wait` is allowed and one
    /// a nanosecond earlier is not. [`RetryAfter::Never`] when `cost > limit.amount()`.
    ///
    /// Two cases cannot be exact: an instant past [`Timestamp::MAX`] (the year 2554) cannot be
    /// represented, so the wait stops there; and a moving-window log that is full because its
    /// limit was never [checked](MovingWindow::check) also waits for an entry to make room.
    fn retry_after(&self, limit: &Limit, now: Timestamp, cost: u64) -> RetryAfter;

    /// The instant from which this state is equivalent to a fresh one: a store may forget it
    /// then (and a Redis key may expire).
    fn idle_at(&self, limit: &Limit) -> Timestamp;
}

/// The name of a strategy, chosen at run time (configuration, URIs, the Redis scripts).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum StrategyKind {
    /// [`FixedWindow`]: `fixed-window`.
    FixedWindow,
    /// [`MovingWindow`]: `moving-window`.
    MovingWindow,
    /// [`SlidingWindow`]: `sliding-window-counter`.
    SlidingWindowCounter,
    /// [`Gcra`]: `gcra`.
    Gcra,
}

impl StrategyKind {
    /// Every strategy, in the order above (a slice: strategies may be added).
    pub const ALL: &'static [Self] = &[
        Self::FixedWindow,
        Self::MovingWindow,
        Self::SlidingWindowCounter,
        Self::Gcra,
    ];

    /// The name used in configuration (the Python `limits` names, plus `gcra`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::FixedWindow => "fixed-window",
            Self::MovingWindow => "moving-window",
            Self::SlidingWindowCounter => "sliding-window-counter",
            Self::Gcra => "gcra",
        }
    }
}

impl fmt::Display for StrategyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for StrategyKind {
    type Err = UnknownStrategy;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .iter()
            .copied()
            .find(|k| k.name().eq_ignore_ascii_case(s.trim()))
            .ok_or(UnknownStrategy)
    }
}

/// `a * b / c` rounded down, exactly, for `c > 0`; saturates at `u64::MAX`.
fn mul_div(a: u64, b: u64, c: u64) -> u64 {
    let q = u128::from(a) * u128::from(b) / u128::from(c.max(1));
    u64::try_from(q).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategy_names_round_trip() {
        for &kind in StrategyKind::ALL {
            assert_eq!(kind.name().parse::<StrategyKind>(), Ok(kind));
        }
        assert_eq!(
            "Sliding-Window-Counter".parse(),
            Ok(StrategyKind::SlidingWindowCounter)
        );
        assert_eq!("token-bucket".parse::<StrategyKind>(), Err(UnknownStrategy));
    }

    #[test]
    fn states_are_as_small_as_documented() {
        use core::mem::size_of;
        assert_eq!(size_of::<Gcra>(), 8);
        assert_eq!(size_of::<FixedWindow>(), 16);
        assert_eq!(size_of::<SlidingWindow>(), 24);
        assert_eq!(size_of::<Entry>(), 16);
    }

    #[test]
    fn mul_div_is_exact_and_saturates() {
        assert_eq!(mul_div(u64::MAX, u64::MAX, u64::MAX), u64::MAX);
        assert_eq!(mul_div(7, 3, 2), 10);
        assert_eq!(mul_div(u64::MAX, 2, 1), u64::MAX);
        assert_eq!(mul_div(5, 5, 0), 25);
    }
}
