//! GCRA, the generic cell rate algorithm: one timestamp of state, no boundary bursts.
//!
//! Its Lua twin, for Redis, is `ratekeeper-redis/src/lua/gcra.lua`; the differential tests in
//! `ratekeeper-redis/tests/semantics.rs` run both on the same random operations and explicit
//! times and require the same answers.

use super::{Outcome, RetryAfter, Stats, Strategy, mul_div};
use crate::{limit::Limit, time::Timestamp};

/// GCRA state: the theoretical arrival time (`tat`) of the next hit.
///
/// With the emission interval `T = ceil(window / amount)` (rounded up: never faster than the
/// limit) and a burst of `amount`, a hit of `cost` at `now` is allowed iff
/// `max(tat, now) + cost * T <= now + amount * T`, and then moves `tat` to the left side.
/// A fresh state allows a burst of `amount`; after that, one unit every `T`.
///
/// ```
/// use ratekeeper_core::{Duration, Gcra, Limit, Outcome, RetryAfter, Strategy, Timestamp, Unit};
///
/// let limit = Limit::per(4, Unit::Second); // T = 250 ms
/// let mut state = Gcra::new();
/// let t0 = Timestamp::from_secs(100);
/// assert_eq!(state.hit(&limit, t0, 4), Outcome::Allowed);
/// assert_eq!(state.hit(&limit, t0, 1), Outcome::Rejected);
/// assert_eq!(state.retry_after(&limit, t0, 1), RetryAfter::After(Duration::from_millis(250)));
/// assert_eq!(state.stats(&limit, t0).reset, Timestamp::from_secs(101));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Gcra {
    tat: Timestamp,
}

impl Gcra {
    /// A fresh state: the full burst is available.
    pub const fn new() -> Self {
        Self {
            tat: Timestamp::EPOCH,
        }
    }

    /// The state from its theoretical arrival time, as [`Gcra::tat`] gave it (for a store that
    /// keeps states outside the process). Any instant is a valid state.
    pub const fn from_tat(tat: Timestamp) -> Self {
        Self { tat }
    }

    /// The theoretical arrival time: when the bucket is empty again.
    pub const fn tat(&self) -> Timestamp {
        self.tat
    }

    /// `max(tat, now) + cost * T` if the hit is allowed, in nanoseconds.
    #[inline]
    fn admit(&self, limit: &Limit, now: Timestamp, cost: u64) -> Option<u64> {
        let t = u128::from(limit.emission_interval().as_nanos());
        let now = u128::from(now.as_nanos());
        let base = u128::from(self.tat.as_nanos()).max(now);
        let new_tat = base + u128::from(cost) * t;
        let allowed = cost <= limit.amount() && new_tat <= now + u128::from(limit.amount()) * t;
        if allowed {
            u64::try_from(new_tat).ok()
        } else {
            None
        }
    }
}

impl Strategy for Gcra {
    #[inline]
    fn hit(&mut self, limit: &Limit, now: Timestamp, cost: u64) -> Outcome {
        if cost == 0 {
            return Outcome::Allowed;
        }
        match self.admit(limit, now, cost) {
            Some(tat) => {
                self.tat = Timestamp::from_nanos(tat);
                Outcome::Allowed
            }
            None => Outcome::Rejected,
        }
    }

    fn test(&self, limit: &Limit, now: Timestamp, cost: u64) -> Outcome {
        Outcome::from_bool(cost == 0 || self.admit(limit, now, cost).is_some())
    }

    /// `remaining = floor((now + amount * T - max(tat, now)) / T)`; `reset = max(tat, now)`, when
    /// the full burst is available again.
    fn stats(&self, limit: &Limit, now: Timestamp) -> Stats {
        let t = limit.emission_interval().as_nanos();
        let base = self.tat.max(now);
        let debt = base.saturating_duration_since(now).as_nanos();
        let remaining = if t == 0 {
            0
        } else {
            // (amount * T - debt) / T without overflow: amount - ceil(debt / T).
            limit.amount().saturating_sub(debt.div_ceil(t))
        };
        Stats {
            remaining,
            reset: base,
        }
    }

    fn refund(&mut self, limit: &Limit, _now: Timestamp, cost: u64) {
        let t = limit.emission_interval().as_nanos();
        let back = mul_div(cost, t, 1);
        self.tat = Timestamp::from_nanos(self.tat.as_nanos().saturating_sub(back));
    }

    /// The charge's emission interval began no earlier than `charged_at`, so at `now` it holds
    /// at least `charged_at + cost * T - now` of it: that much comes back (no more than
    /// `cost * T`, nothing once it has passed). Never more than the charge still holds.
    fn refund_at(&mut self, limit: &Limit, now: Timestamp, cost: u64, charged_at: Timestamp) {
        let t = limit.emission_interval().as_nanos();
        let full = mul_div(cost, t, 1);
        let ahead = charged_at
            .as_nanos()
            .saturating_add(full)
            .saturating_sub(now.as_nanos());
        let back = full.min(ahead);
        self.tat = Timestamp::from_nanos(self.tat.as_nanos().saturating_sub(back));
    }

    fn retry_after(&self, limit: &Limit, now: Timestamp, cost: u64) -> RetryAfter {
        if cost > limit.amount() {
            return RetryAfter::Never;
        }
        let t = u128::from(limit.emission_interval().as_nanos());
        // Allowed from the instant `tat + cost * T - amount * T` on (that is before `tat`).
        let from = (u128::from(self.tat.as_nanos()) + u128::from(cost) * t)
            .saturating_sub(u128::from(limit.amount()) * t);
        let wait = from.saturating_sub(u128::from(now.as_nanos()));
        RetryAfter::After(crate::time::Duration::from_nanos(
            u64::try_from(wait).unwrap_or(u64::MAX),
        ))
    }

    fn idle_at(&self, _limit: &Limit) -> Timestamp {
        self.tat
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{limit::Unit, time::Duration};

    const T0: Timestamp = Timestamp::from_secs(1_000);

    fn at(ms: u64) -> Timestamp {
        T0.saturating_add(Duration::from_millis(ms))
    }

    #[test]
    fn emits_one_unit_per_interval_after_the_burst() {
        let limit = Limit::per(2, Unit::Second); // T = 500 ms
        let mut s = Gcra::new();
        assert_eq!(s.hit(&limit, at(0), 2), Outcome::Allowed);
        assert_eq!(
            s.stats(&limit, at(0)),
            Stats {
                remaining: 0,
                reset: at(1000)
            }
        );
        assert_eq!(s.hit(&limit, at(499), 1), Outcome::Rejected);
        assert_eq!(
            s.retry_after(&limit, at(499), 1),
            RetryAfter::After(Duration::from_millis(1))
        );
        assert_eq!(s.hit(&limit, at(500), 1), Outcome::Allowed);
        assert_eq!(
            s.retry_after(&limit, at(500), 2),
            RetryAfter::After(Duration::from_millis(1000))
        );
        assert_eq!(s.retry_after(&limit, at(500), 3), RetryAfter::Never);
        assert_eq!(
            s.stats(&limit, at(1250)),
            Stats {
                remaining: 1,
                reset: at(1500)
            }
        );
    }

    #[test]
    fn interval_rounds_up_and_refund_restores() {
        let limit = Limit::per(3, Unit::Second); // T = 333_333_334 ns
        let mut s = Gcra::new();
        assert_eq!(s.hit(&limit, at(0), 3), Outcome::Allowed);
        // Exactly one window later, the burst is back only 2 ns after the window: never early.
        assert_eq!(s.stats(&limit, at(1000)).remaining, 2);
        s.refund(&limit, at(0), 1);
        assert_eq!(s.stats(&limit, at(0)).remaining, 1);
        s.refund(&limit, at(0), u64::MAX);
        assert_eq!(
            s.stats(&limit, at(0)),
            Stats {
                remaining: 3,
                reset: at(0)
            }
        );
    }

    #[test]
    fn zero_amount_and_huge_costs() {
        let mut s = Gcra::new();
        let zero = Limit::per(0, Unit::Minute);
        assert_eq!(s.hit(&zero, at(0), 1), Outcome::Rejected);
        assert_eq!(s.stats(&zero, at(0)).remaining, 0);
        let big = Limit::per(u64::MAX, Unit::Second);
        assert_eq!(s.hit(&big, Timestamp::MAX, u64::MAX), Outcome::Rejected);
        // A new `tat` past `Timestamp::MAX` cannot be stored: rejected, not wrapped.
        assert_eq!(s.hit(&big, at(0), u64::MAX), Outcome::Rejected);
        assert_eq!(s.hit(&big, at(0), 1_000), Outcome::Allowed);
        assert_eq!(s.idle_at(&big), s.stats(&big, at(0)).reset);
    }
}
