//! Sliding window counter: two epoch-aligned buckets, the previous one weighted by how much of
//! it the sliding window still covers.
//!
//! Its Lua twin, for Redis, is `ratekeeper-redis/src/lua/sliding_window.lua`; the differential tests in
//! `ratekeeper-redis/tests/semantics.rs` run both on the same random operations and explicit
//! times and require the same answers.

use super::{Outcome, RetryAfter, Stats, Strategy, mul_div};
use crate::{
    limit::Limit,
    time::{Duration, Timestamp},
};

/// Sliding-window-counter state: the counts of the current bucket and the one before.
///
/// Buckets are one window long and aligned to the epoch, so every process and every backend
/// agrees on them. At `now`, with `left` the time to the end of the current bucket, the weighted
/// count is `prev * left / window + current`, and a hit of `cost` is admitted while
/// `floor(weighted) + cost <= amount` (the rule of Python `limits`, computed exactly in integers).
///
/// It approximates a moving window in 24 bytes: never more than `amount` in any bucket, never
/// more than `2 x amount` in any window length.
///
/// ```
/// use ratekeeper_core::{Duration, Limit, Outcome, SlidingWindow, Strategy, Timestamp, Unit};
///
/// let limit = Limit::per(10, Unit::Minute);
/// let mut state = SlidingWindow::new();
/// let bucket = Timestamp::from_secs(60 * 1_000);
/// assert_eq!(state.hit(&limit, bucket, 10), Outcome::Allowed);
/// // 45 s into the next bucket, the previous one still weighs 10 x 15/60 = 2.5, counted as 2:
/// // 8 fit, 9 do not.
/// let later = bucket.saturating_add(Duration::from_secs(105));
/// assert_eq!(state.test(&limit, later, 9), Outcome::Rejected);
/// assert_eq!(state.hit(&limit, later, 8), Outcome::Allowed);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SlidingWindow {
    /// Index of the current bucket: its start divided by the window length.
    bucket: u64,
    prev: u64,
    cur: u64,
}

/// The state as seen at one instant, buckets rolled forward.
struct View {
    bucket: u64,
    prev: u64,
    cur: u64,
    /// The instant the rule is evaluated at: `now`, or the start of the stored bucket when the
    /// clock stepped back before it (the previous bucket then weighs fully: never too lenient).
    at: u128,
    /// Nanoseconds to the end of the current bucket, in `1..=window`.
    left: u64,
}

impl View {
    fn end(&self, window: u64) -> u128 {
        (u128::from(self.bucket) + 1) * u128::from(window)
    }

    fn weighted(&self, window: u64) -> u64 {
        let prev = match self.prev.checked_mul(self.left) {
            _ if self.prev == 0 => 0,
            Some(product) => product / window,
            None => mul_div(self.prev, self.left, window),
        };
        prev.saturating_add(self.cur)
    }
}

fn timestamp(nanos: u128) -> Timestamp {
    Timestamp::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

impl SlidingWindow {
    /// A fresh state: both buckets empty.
    pub const fn new() -> Self {
        Self {
            bucket: 0,
            prev: 0,
            cur: 0,
        }
    }

    /// The state from its parts, as [`SlidingWindow::parts`] gave them (for a store that keeps
    /// states outside the process). Any parts are a valid state.
    pub const fn from_parts(bucket: u64, prev: u64, cur: u64) -> Self {
        Self { bucket, prev, cur }
    }

    /// The current bucket's index (its start over the window length), the previous bucket's
    /// count and the current one's.
    pub const fn parts(&self) -> (u64, u64, u64) {
        (self.bucket, self.prev, self.cur)
    }

    fn view(&self, limit: &Limit, now: Timestamp) -> View {
        let window = limit.window().as_nanos().max(1);
        let mut at = u128::from(now.as_nanos());
        // Most calls fall in the stored bucket: a multiplication tells, no division needed.
        let stored_start = self.bucket.checked_mul(window);
        let mut bucket = match stored_start {
            Some(start) if now.as_nanos() >= start && now.as_nanos() - start < window => {
                self.bucket
            }
            _ => now.as_nanos() / window,
        };
        let (prev, cur) = if bucket <= self.bucket {
            if bucket < self.bucket {
                bucket = self.bucket;
                at = u128::from(bucket) * u128::from(window);
            }
            (self.prev, self.cur)
        } else if bucket == self.bucket + 1 {
            (self.cur, 0)
        } else {
            (0, 0)
        };
        let end = (u128::from(bucket) + 1) * u128::from(window);
        let left = u64::try_from(end - at).unwrap_or(window);
        View {
            bucket,
            prev,
            cur,
            at,
            left,
        }
    }

    fn store(&mut self, view: &View) {
        *self = Self {
            bucket: view.bucket,
            prev: view.prev,
            cur: view.cur,
        };
    }

    fn fits(view: &View, limit: &Limit, cost: u64) -> bool {
        let window = limit.window().as_nanos().max(1);
        view.weighted(window)
            .checked_add(cost)
            .is_some_and(|t| t <= limit.amount())
    }
}

impl Strategy for SlidingWindow {
    fn hit(&mut self, limit: &Limit, now: Timestamp, cost: u64) -> Outcome {
        if cost == 0 {
            return Outcome::Allowed;
        }
        let mut view = self.view(limit, now);
        if !Self::fits(&view, limit, cost) {
            return Outcome::Rejected;
        }
        view.cur += cost;
        self.store(&view);
        Outcome::Allowed
    }

    fn test(&self, limit: &Limit, now: Timestamp, cost: u64) -> Outcome {
        Outcome::from_bool(cost == 0 || Self::fits(&self.view(limit, now), limit, cost))
    }

    /// `remaining` is `amount - floor(weighted)`. `reset` follows Python `limits`: when the
    /// weighted count next drops by one, i.e. `now + (left mod (window / prev))` while the
    /// previous bucket counts, else the end of the current bucket while it counts, else `now`.
    fn stats(&self, limit: &Limit, now: Timestamp) -> Stats {
        let window = limit.window().as_nanos().max(1);
        let view = self.view(limit, now);
        let remaining = limit.amount().saturating_sub(view.weighted(window));
        let mut reset_in: Option<u64> = None;
        if view.prev > 0 {
            // left mod (window / prev) == ((left * prev) mod window) / prev, exactly.
            let scaled = u128::from(view.left) * u128::from(view.prev) % u128::from(window);
            reset_in = u64::try_from(scaled / u128::from(view.prev)).ok();
        }
        if view.cur > 0 {
            reset_in = Some(reset_in.map_or(view.left, |r| r.min(view.left)));
        }
        let reset = now.saturating_add(Duration::from_nanos(reset_in.unwrap_or(0)));
        Stats { remaining, reset }
    }

    /// Takes back from the current bucket first, then from the previous one.
    fn refund(&mut self, limit: &Limit, now: Timestamp, cost: u64) {
        let mut view = self.view(limit, now);
        let from_cur = view.cur.min(cost);
        view.cur -= from_cur;
        view.prev = view.prev.saturating_sub(cost - from_cur);
        self.store(&view);
    }

    /// Only into the bucket the charge went to: the current one, or the previous one (where it
    /// still weighs); nothing once that bucket has passed.
    fn refund_at(&mut self, limit: &Limit, now: Timestamp, cost: u64, charged_at: Timestamp) {
        let window = limit.window().as_nanos().max(1);
        let charged = charged_at.as_nanos() / window;
        let mut view = self.view(limit, now);
        if charged == view.bucket {
            view.cur = view.cur.saturating_sub(cost);
        } else if charged.checked_add(1) == Some(view.bucket) {
            view.prev = view.prev.saturating_sub(cost);
        } else {
            return;
        }
        self.store(&view);
    }

    fn retry_after(&self, limit: &Limit, now: Timestamp, cost: u64) -> RetryAfter {
        let amount = limit.amount();
        if cost > amount {
            return RetryAfter::Never;
        }
        let window = limit.window().as_nanos().max(1);
        let w = u128::from(window);
        let view = self.view(limit, now);
        let end = view.end(window);
        // The earliest instant at which floor(p * left / window) <= k, with `left` in 1..=window
        // measured to `bucket_end`: left <= ((k + 1) * window - 1) / p.
        let earliest = |p: u64, k: u64, bucket_end: u128| -> Option<u128> {
            if p == 0 {
                return Some(bucket_end - w);
            }
            let max_left = ((u128::from(k) + 1) * w - 1) / u128::from(p);
            (max_left >= 1).then(|| bucket_end - max_left.min(w))
        };
        let in_this_bucket = view
            .cur
            .checked_add(cost)
            .filter(|&t| t <= amount)
            .and_then(|t| earliest(view.prev, amount - t, end));
        let at = in_this_bucket.unwrap_or_else(|| {
            // The next bucket: the current count becomes the previous one. If even that is too
            // heavy all bucket long, the bucket after it is empty.
            earliest(view.cur, amount - cost, end + w).unwrap_or(end + w)
        });
        if at <= view.at {
            RetryAfter::NOW
        } else {
            RetryAfter::After(timestamp(at).saturating_duration_since(now))
        }
    }

    fn idle_at(&self, limit: &Limit) -> Timestamp {
        let w = u128::from(limit.window().as_nanos());
        let buckets = match (self.prev, self.cur) {
            (0, 0) => return Timestamp::EPOCH,
            (_, 0) => 1,
            _ => 2,
        };
        timestamp((u128::from(self.bucket) + buckets) * w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limit::Unit;

    // Bucket-aligned for windows of 1 s and 1 min.
    const B: Timestamp = Timestamp::from_secs(60_000);

    fn at(ms: u64) -> Timestamp {
        B.saturating_add(Duration::from_millis(ms))
    }

    #[test]
    fn weighting_follows_the_previous_bucket() {
        let limit = Limit::per(4, Unit::Second);
        let mut s = SlidingWindow::new();
        assert_eq!(s.hit(&limit, at(900), 4), Outcome::Allowed);
        assert_eq!(s.hit(&limit, at(950), 1), Outcome::Rejected);
        assert_eq!(
            s.stats(&limit, at(950)),
            Stats {
                remaining: 0,
                reset: at(1000)
            }
        );
        // At 1.25 s the previous bucket weighs 4 x 0.75 = 3: one more fits, two only a
        // nanosecond later, when the weight drops below 3.
        assert_eq!(s.test(&limit, at(1250), 2), Outcome::Rejected);
        assert_eq!(
            s.retry_after(&limit, at(1250), 2),
            RetryAfter::After(Duration::from_nanos(1))
        );
        assert_eq!(
            s.retry_after(&limit, at(1000), 1),
            RetryAfter::After(Duration::from_nanos(1))
        );
        assert_eq!(s.hit(&limit, at(1250), 1), Outcome::Allowed);
        // reset: left (750 ms) mod (1 s / 4) = 0 -> min with left of the current bucket is 0.
        assert_eq!(
            s.stats(&limit, at(1250)),
            Stats {
                remaining: 0,
                reset: at(1250)
            }
        );
        assert_eq!(s.stats(&limit, at(1300)).reset, at(1500));
        assert_eq!(s.idle_at(&limit), at(3000));
        // Two buckets later, nothing counts.
        assert_eq!(
            s.stats(&limit, at(3000)),
            Stats {
                remaining: 4,
                reset: at(3000)
            }
        );
    }

    #[test]
    fn retry_after_can_skip_to_the_next_bucket() {
        let limit = Limit::per(3, Unit::Second);
        let mut s = SlidingWindow::new();
        assert_eq!(s.hit(&limit, at(100), 3), Outcome::Allowed);
        // cur = 3 fills this bucket; in the next one, prev = 3 must weigh < 1: left < 1/3 s.
        let wait = s.retry_after(&limit, at(100), 3);
        let expected_at = at(2000).saturating_sub(Duration::from_nanos(333_333_333));
        assert_eq!(
            wait,
            RetryAfter::After(expected_at.saturating_duration_since(at(100)))
        );
        assert_eq!(s.test(&limit, expected_at, 3), Outcome::Allowed);
        let just_before = expected_at.saturating_sub(Duration::from_nanos(1));
        assert_eq!(s.test(&limit, just_before, 3), Outcome::Rejected);
    }

    #[test]
    fn refund_and_clock_stepping_back() {
        let limit = Limit::per(5, Unit::Second);
        let mut s = SlidingWindow::new();
        assert_eq!(s.hit(&limit, at(1500), 5), Outcome::Allowed);
        s.refund(&limit, at(1500), 2);
        assert_eq!(s.stats(&limit, at(1500)).remaining, 2);
        // Stepping back into an earlier bucket sees the stored bucket, never an emptier past.
        assert_eq!(s.test(&limit, at(200), 3), Outcome::Rejected);
        assert_eq!(s.hit(&limit, at(200), 2), Outcome::Allowed);
        assert_eq!(s.stats(&limit, at(1999)).remaining, 0);
    }
}
