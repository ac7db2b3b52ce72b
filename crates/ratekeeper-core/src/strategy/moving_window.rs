//! Moving window: an exact log of the hits inside the last window length.
//!
//! Its Lua twin, for Redis, is `ratekeeper-redis/src/lua/moving_window.lua`; the differential tests in
//! `ratekeeper-redis/tests/semantics.rs` run both on the same random operations and explicit
//! times and require the same answers.

use heapless::Deque;

use super::{Outcome, RetryAfter, Stats, Strategy};
use crate::{error::CapacityError, limit::Limit, time::Timestamp};

/// One log entry: hits of total `cost` at instant `at`. Hits at the same instant share an entry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Entry {
    /// When the hits happened.
    pub at: Timestamp,
    /// Their total cost (at least 1).
    pub cost: u64,
}

/// The buffer behind a [`MovingWindow`]: a double-ended queue of entries, oldest first.
///
/// Implemented here for [`heapless::Deque`]; an allocating store can implement it for its own
/// growable queue and run the same algorithm.
pub trait EntryLog {
    /// The most entries the log can hold.
    fn capacity(&self) -> usize;
    /// The entries held.
    fn len(&self) -> usize;
    /// `true` when no entry is held.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The entries, oldest first.
    fn entries(&self) -> impl Iterator<Item = &Entry> + '_;
    /// The oldest entry.
    fn oldest(&self) -> Option<&Entry>;
    /// The newest entry.
    fn newest(&self) -> Option<&Entry>;
    /// The newest entry, to add to it.
    fn newest_mut(&mut self) -> Option<&mut Entry>;
    /// The entries, oldest first, to take from one.
    fn entries_mut(&mut self) -> impl Iterator<Item = &mut Entry> + '_;
    /// Appends a newest entry, or hands it back when the log is full.
    fn push_newest(&mut self, entry: Entry) -> Result<(), Entry>;
    /// Removes the oldest entry.
    fn pop_oldest(&mut self) -> Option<Entry>;
    /// Removes the newest entry.
    fn pop_newest(&mut self) -> Option<Entry>;
}

/// The methods both double-ended queues share, verbatim.
macro_rules! deque_methods {
    () => {
        fn len(&self) -> usize {
            Self::len(self)
        }
        fn entries(&self) -> impl Iterator<Item = &Entry> + '_ {
            self.iter()
        }
        fn oldest(&self) -> Option<&Entry> {
            self.front()
        }
        fn newest(&self) -> Option<&Entry> {
            self.back()
        }
        fn newest_mut(&mut self) -> Option<&mut Entry> {
            self.back_mut()
        }
        fn entries_mut(&mut self) -> impl Iterator<Item = &mut Entry> + '_ {
            self.iter_mut()
        }
        fn pop_newest(&mut self) -> Option<Entry> {
            self.pop_back()
        }
    };
}

impl<const N: usize> EntryLog for Deque<Entry, N> {
    fn capacity(&self) -> usize {
        N
    }
    deque_methods!();
    fn push_newest(&mut self, entry: Entry) -> Result<(), Entry> {
        self.push_back(entry)
    }
    fn pop_oldest(&mut self) -> Option<Entry> {
        self.pop_front()
    }
}

/// A log on the heap: it grows with the hits it holds, and gives memory back as they expire.
#[cfg(feature = "alloc")]
#[cfg_attr(docsrs, doc(cfg(feature = "alloc")))]
impl EntryLog for alloc::collections::VecDeque<Entry> {
    fn capacity(&self) -> usize {
        usize::MAX
    }
    deque_methods!();
    fn push_newest(&mut self, entry: Entry) -> Result<(), Entry> {
        self.push_back(entry);
        Ok(())
    }
    fn pop_oldest(&mut self) -> Option<Entry> {
        let entry = self.pop_front();
        if Self::capacity(self) > 64 && Self::len(self) < Self::capacity(self) / 4 {
            self.shrink_to(Self::len(self) * 2);
        }
        entry
    }
}

/// Moving-window state: the exact log of the hits that still count.
///
/// Exact (never more than `amount` in any half-open window of the limit's length) and O(1)
/// amortised per hit: expired entries are dropped from the old end and a running total is kept.
/// It needs one entry per distinct instant, so a log of `N` entries serves amounts up to `N`;
/// check that with [`MovingWindow::check`] when configuring. A limit that does not fit is never
/// approximated: once the log is full, hits are rejected until an entry expires.
///
/// ```
/// use ratekeeper_core::{BoundedMovingWindow, Duration, Limit, Outcome, RetryAfter, Strategy, Timestamp, Unit};
///
/// let limit = Limit::per(2, Unit::Second);
/// let mut state = BoundedMovingWindow::<4>::try_new(&limit)?;
/// let t0 = Timestamp::from_secs(100);
/// assert_eq!(state.hit(&limit, t0, 1), Outcome::Allowed);
/// let t1 = t0.saturating_add(Duration::from_millis(600));
/// assert_eq!(state.hit(&limit, t1, 1), Outcome::Allowed);
/// assert_eq!(state.hit(&limit, t1, 1), Outcome::Rejected);
/// // The first hit stops counting one second after it was made: 400 ms from t1.
/// assert_eq!(state.retry_after(&limit, t1, 1), RetryAfter::After(Duration::from_millis(400)));
/// # Ok::<(), ratekeeper_core::CapacityError>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct MovingWindow<L> {
    log: L,
    /// Sum of the costs of every entry in `log`, expired or not.
    total: u64,
}

/// A [`MovingWindow`] over a `heapless` log of `N` entries: no allocation.
pub type BoundedMovingWindow<const N: usize> = MovingWindow<Deque<Entry, N>>;

impl<const N: usize> MovingWindow<Deque<Entry, N>> {
    /// An empty log of `N` entries.
    pub const fn new() -> Self {
        Self {
            log: Deque::new(),
            total: 0,
        }
    }

    /// An empty log of `N` entries, if it can serve `limit`.
    pub fn try_new(limit: &Limit) -> Result<Self, CapacityError> {
        let state = Self::new();
        state.check(limit)?;
        Ok(state)
    }
}

impl<L: EntryLog> MovingWindow<L> {
    /// A state over a log of any kind (entries oldest first, each of cost 1 or more).
    pub fn with_log(log: L) -> Self {
        let total = log.entries().fold(0u64, |t, e| t.saturating_add(e.cost));
        Self { log, total }
    }

    /// The log, oldest entry first (for a store that keeps states outside the process: the
    /// state comes back with [`MovingWindow::with_log`]).
    pub fn log(&self) -> &L {
        &self.log
    }

    /// Whether this log can serve `limit`: one entry per unit of its amount.
    pub fn check(&self, limit: &Limit) -> Result<(), CapacityError> {
        let capacity = self.log.capacity();
        if usize::try_from(limit.amount()).is_ok_and(|amount| amount <= capacity) {
            Ok(())
        } else {
            Err(CapacityError {
                amount: limit.amount(),
                capacity,
            })
        }
    }

    /// Whether `entry` no longer counts at `now`: expired, or emptied by a refund.
    fn expired(limit: &Limit, now: Timestamp, entry: &Entry) -> bool {
        entry.cost == 0 || now.saturating_duration_since(entry.at) >= limit.window()
    }

    /// The number and total cost of the entries that no longer count at `now`.
    fn expired_prefix(&self, limit: &Limit, now: Timestamp) -> (usize, u64) {
        self.log
            .entries()
            .take_while(|e| Self::expired(limit, now, e))
            .fold((0, 0u64), |(n, sum), e| (n + 1, sum.saturating_add(e.cost)))
    }

    fn prune(&mut self, limit: &Limit, now: Timestamp) {
        while self
            .log
            .oldest()
            .is_some_and(|e| Self::expired(limit, now, e))
        {
            if let Some(e) = self.log.pop_oldest() {
                self.total = self.total.saturating_sub(e.cost);
            }
        }
    }

    /// Whether `cost` fits at `now`, given `expired` = [`Self::expired_prefix`].
    fn fits(&self, limit: &Limit, now: Timestamp, cost: u64, expired: (usize, u64)) -> bool {
        let used = self.total.saturating_sub(expired.1);
        // A hit at the newest entry's instant (or earlier) merges into it: no new entry needed.
        let merges = self.log.newest().is_some_and(|e| e.at >= now);
        let room = self.log.len() - expired.0 < self.log.capacity() || merges;
        room && used.checked_add(cost).is_some_and(|t| t <= limit.amount())
    }
}

impl<L: EntryLog> Strategy for MovingWindow<L> {
    fn hit(&mut self, limit: &Limit, now: Timestamp, cost: u64) -> Outcome {
        if cost == 0 {
            return Outcome::Allowed;
        }
        self.prune(limit, now);
        if !self.fits(limit, now, cost, (0, 0)) {
            return Outcome::Rejected;
        }
        match self.log.newest_mut() {
            // Same instant (or a clock that stepped back): add to the newest entry, which keeps
            // the log ordered and as short as possible.
            Some(newest) if newest.at >= now => newest.cost += cost,
            _ => {
                if self.log.push_newest(Entry { at: now, cost }).is_err() {
                    return Outcome::Rejected;
                }
            }
        }
        self.total += cost;
        Outcome::Allowed
    }

    fn test(&self, limit: &Limit, now: Timestamp, cost: u64) -> Outcome {
        if cost == 0 {
            return Outcome::Allowed;
        }
        Outcome::from_bool(self.fits(limit, now, cost, self.expired_prefix(limit, now)))
    }

    /// `reset` is when the oldest counted hit stops counting, or `now + window` when the log is
    /// empty (a fresh window starting now).
    fn stats(&self, limit: &Limit, now: Timestamp) -> Stats {
        let (n, sum) = self.expired_prefix(limit, now);
        let oldest_live = self.log.entries().nth(n);
        Stats {
            remaining: limit
                .amount()
                .saturating_sub(self.total.saturating_sub(sum)),
            reset: oldest_live
                .map_or(now, |e| e.at)
                .saturating_add(limit.window()),
        }
    }

    fn refund(&mut self, limit: &Limit, now: Timestamp, mut cost: u64) {
        while cost > 0 {
            let Some(newest) = self.log.newest_mut() else {
                return;
            };
            if newest.cost == 0 {
                // Emptied by an earlier refund of its own charge: it holds nothing.
                self.log.pop_newest();
                continue;
            }
            if Self::expired(limit, now, newest) {
                return;
            }
            let take = newest.cost.min(cost);
            newest.cost -= take;
            let emptied = newest.cost == 0;
            cost -= take;
            self.total = self.total.saturating_sub(take);
            if emptied {
                self.log.pop_newest();
            }
        }
    }

    /// From the entry of the instant the charge was made, while it still counts; nothing once
    /// its window has passed. A charge made while the clock stood behind the newest entry was
    /// merged into that one: when no entry has its instant, the first newer entry that still
    /// counts gives it back (two requests that read the clock in one order and reach the log
    /// in the other do this; their counts, not their instants, are what a refund must undo).
    fn refund_at(&mut self, limit: &Limit, now: Timestamp, cost: u64, charged_at: Timestamp) {
        if now.saturating_duration_since(charged_at) >= limit.window() {
            return;
        }
        let len = self.log.len();
        let exact = self.log.entries().any(|e| e.at == charged_at);
        let Some((index, entry)) = self.log.entries_mut().enumerate().find(|(_, e)| {
            if exact {
                e.at == charged_at
            } else {
                e.at > charged_at && e.cost > 0
            }
        }) else {
            return;
        };
        if Self::expired(limit, now, entry) {
            return;
        }
        let take = entry.cost.min(cost);
        entry.cost -= take;
        let emptied = entry.cost == 0;
        self.total = self.total.saturating_sub(take);
        // An emptied entry counts for nothing; at either end it goes now, inside the log it
        // goes when it reaches the front.
        if emptied && index + 1 == len {
            self.log.pop_newest();
        } else if emptied && index == 0 {
            self.log.pop_oldest();
        }
    }

    /// Exact while the log has room; once a log is full (a limit larger than it was checked
    /// for) the wait also covers the entry that must expire to make room.
    fn retry_after(&self, limit: &Limit, now: Timestamp, cost: u64) -> RetryAfter {
        if cost > limit.amount() {
            return RetryAfter::Never;
        }
        if cost == 0 || self.test(limit, now, cost).is_allowed() {
            return RetryAfter::NOW;
        }
        let (n, sum) = self.expired_prefix(limit, now);
        let mut used = self.total.saturating_sub(sum);
        let mut live = self.log.len() - n;
        let mut last = now;
        for e in self.log.entries().skip(n) {
            used = used.saturating_sub(e.cost);
            live -= 1;
            last = e.at.saturating_add(limit.window());
            if used.saturating_add(cost) <= limit.amount() && live < self.log.capacity() {
                break;
            }
        }
        RetryAfter::After(last.saturating_duration_since(now))
    }

    fn idle_at(&self, limit: &Limit) -> Timestamp {
        self.log
            .newest()
            .map_or(Timestamp::EPOCH, |e| e.at.saturating_add(limit.window()))
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
    fn counts_exactly_inside_a_half_open_window() {
        let limit = Limit::per(3, Unit::Second);
        let mut s = BoundedMovingWindow::<8>::new();
        assert_eq!(s.hit(&limit, at(0), 1), Outcome::Allowed);
        assert_eq!(s.hit(&limit, at(300), 2), Outcome::Allowed);
        assert_eq!(s.hit(&limit, at(999), 1), Outcome::Rejected);
        assert_eq!(
            s.stats(&limit, at(999)),
            Stats {
                remaining: 0,
                reset: at(1000)
            }
        );
        assert_eq!(
            s.retry_after(&limit, at(999), 1),
            RetryAfter::After(Duration::from_millis(1))
        );
        assert_eq!(
            s.retry_after(&limit, at(999), 2),
            RetryAfter::After(Duration::from_millis(301))
        );
        assert_eq!(s.hit(&limit, at(1000), 1), Outcome::Allowed);
        assert_eq!(s.hit(&limit, at(1299), 1), Outcome::Rejected);
        assert_eq!(s.hit(&limit, at(1300), 2), Outcome::Allowed);
        assert_eq!(s.stats(&limit, at(1300)).remaining, 0);
    }

    #[test]
    fn same_instant_hits_share_an_entry() {
        let limit = Limit::per(100, Unit::Second);
        let mut s = BoundedMovingWindow::<2>::new();
        assert!(s.check(&limit).is_err());
        for _ in 0..100 {
            assert_eq!(s.hit(&limit, at(0), 1), Outcome::Allowed);
        }
        assert_eq!(s.log.len(), 1);
        assert_eq!(s.hit(&limit, at(0), 1), Outcome::Rejected);
    }

    #[test]
    fn a_full_log_rejects_rather_than_approximates() {
        let limit = Limit::per(5, Unit::Second);
        let mut s = BoundedMovingWindow::<2>::new();
        assert_eq!(
            s.check(&limit),
            Err(CapacityError {
                amount: 5,
                capacity: 2
            })
        );
        assert_eq!(s.hit(&limit, at(0), 1), Outcome::Allowed);
        assert_eq!(s.hit(&limit, at(1), 1), Outcome::Allowed);
        assert_eq!(s.test(&limit, at(2), 1), Outcome::Rejected);
        assert_eq!(s.hit(&limit, at(2), 1), Outcome::Rejected);
        assert_eq!(
            s.retry_after(&limit, at(2), 1),
            RetryAfter::After(Duration::from_millis(998))
        );
        assert_eq!(s.hit(&limit, at(1000), 1), Outcome::Allowed);
    }

    #[test]
    fn refund_takes_back_the_newest_charges() {
        let limit = Limit::per(4, Unit::Second);
        let mut s = BoundedMovingWindow::<8>::new();
        assert_eq!(s.hit(&limit, at(0), 2), Outcome::Allowed);
        assert_eq!(s.hit(&limit, at(500), 2), Outcome::Allowed);
        s.refund(&limit, at(500), 3);
        assert_eq!(
            s.stats(&limit, at(500)),
            Stats {
                remaining: 3,
                reset: at(1000)
            }
        );
        // Only charges that still count can be refunded.
        s.refund(&limit, at(1000), 10);
        assert_eq!(
            s.stats(&limit, at(1000)),
            Stats {
                remaining: 4,
                reset: at(2000)
            }
        );
        assert_eq!(s.idle_at(&limit), at(1000));
    }

    #[test]
    fn clock_stepping_back_keeps_order() {
        let limit = Limit::per(2, Unit::Second);
        let mut s = BoundedMovingWindow::<4>::new();
        assert_eq!(s.hit(&limit, at(500), 1), Outcome::Allowed);
        assert_eq!(s.hit(&limit, at(100), 1), Outcome::Allowed);
        assert_eq!(s.hit(&limit, at(200), 1), Outcome::Rejected);
        assert_eq!(s.idle_at(&limit), at(1500));
    }
}
