//! Fixed window: one counter per window; a window opens at the first hit after the last one
//! closed (not aligned to the epoch) and lasts exactly one window length.
//!
//! Its Lua twin, for Redis, is `ratekeeper-redis/src/lua/fixed_window.lua`; the differential tests in
//! `ratekeeper-redis/tests/semantics.rs` run both on the same random operations and explicit
//! times and require the same answers.

use super::{Outcome, RetryAfter, Stats, Strategy};
use crate::{limit::Limit, time::Timestamp};

/// Fixed-window state: when the open window started and what it has counted.
///
/// Cheapest of the four (16 bytes, no division), at the price of bursts at window edges: up to
/// `2 x amount` can pass within one window length straddling a boundary.
///
/// ```
/// use ratekeeper_core::{FixedWindow, Limit, Outcome, RetryAfter, Strategy, Duration, Timestamp, Unit};
///
/// let limit = Limit::per(2, Unit::Second);
/// let mut state = FixedWindow::new();
/// let t0 = Timestamp::from_secs(100);
/// assert_eq!(state.hit(&limit, t0, 1), Outcome::Allowed);
/// assert_eq!(state.hit(&limit, t0, 1), Outcome::Allowed);
/// assert_eq!(state.hit(&limit, t0, 1), Outcome::Rejected);
/// assert_eq!(state.retry_after(&limit, t0, 1), RetryAfter::After(Duration::from_secs(1)));
/// assert_eq!(state.hit(&limit, Timestamp::from_secs(101), 1), Outcome::Allowed);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FixedWindow {
    start: Timestamp,
    /// Zero means "no window open".
    count: u64,
}

impl FixedWindow {
    /// A fresh state: no window open.
    pub const fn new() -> Self {
        Self {
            start: Timestamp::EPOCH,
            count: 0,
        }
    }

    /// The state from its parts, as [`FixedWindow::parts`] gave them (for a store that keeps
    /// states outside the process). Any parts are a valid state.
    pub const fn from_parts(start: Timestamp, count: u64) -> Self {
        Self { start, count }
    }

    /// When the open window started, and what it has counted (0: no window open).
    pub const fn parts(&self) -> (Timestamp, u64) {
        (self.start, self.count)
    }

    /// The end of the open window (exclusive).
    fn end(&self, limit: &Limit) -> Timestamp {
        self.start.saturating_add(limit.window())
    }

    /// What the window open at `now` has counted (0 when none is open).
    fn used(&self, limit: &Limit, now: Timestamp) -> u64 {
        // Elapsed time rather than `now < end`: exact even where `end` would pass
        // `Timestamp::MAX`, and a clock that went backwards keeps the window open.
        let open = self.count > 0 && now.saturating_duration_since(self.start) < limit.window();
        if open { self.count } else { 0 }
    }

    fn fits(&self, limit: &Limit, now: Timestamp, cost: u64) -> bool {
        self.used(limit, now)
            .checked_add(cost)
            .is_some_and(|total| total <= limit.amount())
    }
}

impl Strategy for FixedWindow {
    #[inline]
    fn hit(&mut self, limit: &Limit, now: Timestamp, cost: u64) -> Outcome {
        if cost == 0 {
            return Outcome::Allowed;
        }
        let used = self.used(limit, now);
        match used.checked_add(cost) {
            Some(total) if total <= limit.amount() => {
                if used == 0 {
                    self.start = now;
                }
                self.count = total;
                Outcome::Allowed
            }
            _ => Outcome::Rejected,
        }
    }

    fn test(&self, limit: &Limit, now: Timestamp, cost: u64) -> Outcome {
        Outcome::from_bool(cost == 0 || self.fits(limit, now, cost))
    }

    /// `reset` is the end of the open window, or `now` when none is open.
    fn stats(&self, limit: &Limit, now: Timestamp) -> Stats {
        let used = self.used(limit, now);
        Stats {
            remaining: limit.amount().saturating_sub(used),
            reset: if used > 0 { self.end(limit) } else { now },
        }
    }

    fn refund(&mut self, limit: &Limit, now: Timestamp, cost: u64) {
        if self.used(limit, now) > 0 {
            self.count = self.count.saturating_sub(cost);
        }
    }

    /// Only into the window the charge went to, while it is still open.
    fn refund_at(&mut self, limit: &Limit, now: Timestamp, cost: u64, charged_at: Timestamp) {
        let in_window = charged_at >= self.start
            && charged_at.saturating_duration_since(self.start) < limit.window();
        if in_window && self.used(limit, now) > 0 {
            self.count = self.count.saturating_sub(cost);
        }
    }

    fn retry_after(&self, limit: &Limit, now: Timestamp, cost: u64) -> RetryAfter {
        if cost > limit.amount() {
            RetryAfter::Never
        } else if cost == 0 || self.fits(limit, now, cost) {
            RetryAfter::NOW
        } else {
            RetryAfter::After(self.end(limit).saturating_duration_since(now))
        }
    }

    fn idle_at(&self, limit: &Limit) -> Timestamp {
        if self.count == 0 {
            Timestamp::EPOCH
        } else {
            self.end(limit)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{limit::Unit, time::Duration};

    const T0: Timestamp = Timestamp::from_secs(1_000);

    #[test]
    fn window_opens_at_first_hit_and_is_half_open() {
        let limit = Limit::per(3, Unit::Minute);
        let mut s = FixedWindow::new();
        let start = T0.saturating_add(Duration::from_millis(1_234));
        assert_eq!(s.hit(&limit, start, 3), Outcome::Allowed);
        let last_ns = start.saturating_add(Duration::from_nanos(59_999_999_999));
        assert_eq!(s.hit(&limit, last_ns, 1), Outcome::Rejected);
        assert_eq!(
            s.retry_after(&limit, last_ns, 1),
            RetryAfter::After(Duration::from_nanos(1))
        );
        let end = start.saturating_add(Duration::from_secs(60));
        assert_eq!(
            s.stats(&limit, last_ns),
            Stats {
                remaining: 0,
                reset: end
            }
        );
        assert_eq!(s.hit(&limit, end, 1), Outcome::Allowed);
        assert_eq!(
            s.stats(&limit, end).reset,
            end.saturating_add(Duration::from_secs(60))
        );
    }

    #[test]
    fn rejected_hits_and_refunds() {
        let limit = Limit::per(5, Unit::Second);
        let mut s = FixedWindow::new();
        assert_eq!(s.hit(&limit, T0, 4), Outcome::Allowed);
        let before = s;
        assert_eq!(s.hit(&limit, T0, 2), Outcome::Rejected);
        assert_eq!(s, before);
        s.refund(&limit, T0, 3);
        assert_eq!(s.stats(&limit, T0).remaining, 4);
        s.refund(&limit, T0, 100);
        assert_eq!(
            s.stats(&limit, T0),
            Stats {
                remaining: 5,
                reset: T0
            }
        );
        assert_eq!(s.retry_after(&limit, T0, 6), RetryAfter::Never);
        assert_eq!(s.hit(&limit, T0, 6), Outcome::Rejected);
        assert_eq!(s.hit(&limit, T0, u64::MAX), Outcome::Rejected);
    }

    #[test]
    fn zero_amount_rejects_everything_but_cost_zero() {
        let limit = Limit::per(0, Unit::Second);
        let mut s = FixedWindow::new();
        assert_eq!(s.hit(&limit, T0, 1), Outcome::Rejected);
        assert_eq!(s.hit(&limit, T0, 0), Outcome::Allowed);
        assert_eq!(s.retry_after(&limit, T0, 1), RetryAfter::Never);
        assert_eq!(
            s.stats(&limit, T0),
            Stats {
                remaining: 0,
                reset: T0
            }
        );
    }

    #[test]
    fn extreme_times_do_not_panic() {
        let limit = Limit::new(u64::MAX, 500, Unit::Year).unwrap();
        let mut s = FixedWindow::new();
        assert_eq!(s.hit(&limit, Timestamp::MAX, u64::MAX), Outcome::Allowed);
        assert_eq!(s.hit(&limit, Timestamp::MAX, 1), Outcome::Rejected);
        assert_eq!(s.idle_at(&limit), Timestamp::MAX);
        assert_eq!(s.hit(&limit, Timestamp::EPOCH, 1), Outcome::Rejected);
    }
}
