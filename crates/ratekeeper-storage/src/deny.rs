//! [`DenyCache`]: refusals a networked store remembers, so that a flood of requests it has just
//! refused is refused again here, without a call, until the refusal could end.

use core::{
    future::Future,
    hash::{Hash, Hasher},
};
use std::{
    collections::{HashMap, VecDeque, hash_map::DefaultHasher},
    sync::{Mutex, MutexGuard, OnceLock},
    time::Instant,
};

use ratekeeper_core::{Duration, Limit, RetryAfter, StrategyKind, Timestamp};

use crate::{
    batch::{Charge, Op, Statuses, Verdict},
    error::StorageError,
    key::Key,
};

/// The default number of refusals a store remembers.
pub const DEFAULT_DENY_CACHE_ENTRIES: usize = 4096;

/// A bounded table of batches a store refused, each until the first instant the store could
/// admit it: a hit of the same batch (the same keys, limits and strategies, with the same or
/// higher costs) before then is refused from the table with the store's own statuses, their
/// wait counted down, and no call to the store.
///
/// Exact, never admitting more: only other clients' charges move on a refused counter, and they
/// can only push that instant later. What the table cannot see is a refund or a clear made
/// elsewhere (another process), which could admit the batch earlier: until the instant, it
/// refuses such a batch. Refunds and clears made through the store that holds the table drop
/// the client's entries ([`DenyCache::forget`]).
///
/// A refusal is remembered only when it counts nothing more in the store: when no charge of
/// the batch asks to be charged on a rejection ([`Charge::on_reject`], a meta limit counting
/// breaches) or every such charge is itself refused (the meta limit is exhausted) for at least
/// that amount, and then only until the first of them could count again. So a request refused
/// here is one the store would have refused without counting it, and meta limits trip after the
/// same number of refusals with the table as without it.
///
/// Memory: at most `capacity` entries, oldest out; each holds its batch's keys, limits and
/// statuses: about 600 bytes for a batch of three charges, plus the keys' text (about 3 MB
/// at the default of 4,096 entries).
#[derive(Debug)]
pub struct DenyCache {
    table: Mutex<Table>,
    capacity: usize,
}

#[derive(Debug, Default)]
struct Table {
    entries: HashMap<u64, Entry>,
    /// Fingerprints by age, with the sequence number each was recorded under (an entry
    /// recorded again is younger than its first place here says).
    order: VecDeque<(u64, u64)>,
    seq: u64,
    /// Bumped by every refund or clear seen: a refusal whose call left before one is stale.
    epoch: u64,
}

/// What a hit does with a [`DenyCache`]: refused from the table, or sent to the store.
#[derive(Debug)]
pub enum Lookup {
    /// A remembered refusal covers it: this is the answer.
    Refused(Verdict),
    /// Send it, and hand this to [`DenyCache::record`] with the store's answer.
    Miss(Ticket),
}

/// When a missed hit's call left, on which clock, and what the table had seen by then.
#[derive(Clone, Copy, Debug)]
pub struct Ticket {
    sent: Timestamp,
    other_clock: bool,
    epoch: u64,
}

#[derive(Debug)]
struct Entry {
    seq: u64,
    charges: Box<[Shape]>,
    statuses: Statuses,
    /// The store's instant for the refusal ([`Verdict::at`]) and ours for its call.
    at: Timestamp,
    sent: Timestamp,
    /// Ours, for the end of the refusal.
    until: Timestamp,
}

/// A refused charge: what makes a charge the same (all but its amounts) and the room it needed.
#[derive(Debug)]
struct Shape {
    key: Key,
    limit: Limit,
    strategy: StrategyKind,
    on_reject: u64,
    room: u64,
}

impl Shape {
    fn of(c: &Charge) -> Self {
        Self {
            key: c.key.clone(),
            limit: c.limit,
            strategy: c.strategy,
            on_reject: c.on_reject(),
            room: c.room(),
        }
    }

    /// Whether `c` is this charge, needing at least as much room.
    fn covers(&self, c: &Charge) -> bool {
        self.key == c.key
            && self.limit == c.limit
            && self.strategy == c.strategy
            && self.on_reject == c.on_reject()
            && c.room() >= self.room
    }
}

fn fingerprint(batch: &[Charge]) -> u64 {
    let mut h = DefaultHasher::new();
    for c in batch {
        c.key.hash(&mut h);
        c.limit.hash(&mut h);
        c.strategy.hash(&mut h);
        c.on_reject().hash(&mut h);
    }
    h.finish()
}

/// How long a refusal of `batch` stands after its call, if it may be remembered at all: the
/// batch's wait, cut short where a charge on rejection could count again.
fn standing(batch: &[Charge], verdict: &Verdict) -> Option<Duration> {
    if verdict.allowed || batch.len() != verdict.statuses.len() {
        return None;
    }
    let mut wait = Duration::ZERO;
    let mut counts_again: Option<Duration> = None;
    for (c, s) in batch.iter().zip(verdict.statuses.iter()) {
        let d = match s.retry_after {
            RetryAfter::After(d) => d,
            // A batch that can never fit is not worth a table entry.
            RetryAfter::Never => return None,
        };
        if !s.allowed {
            wait = wait.max(d);
        }
        if c.on_reject() > 0 {
            // The store counted (or would count) this rejection here: only when this charge
            // has no room for it, until it has, is a refusal free of counting.
            if s.allowed || c.on_reject() < c.room() {
                return None;
            }
            counts_again = Some(counts_again.map_or(d, |e| e.min(d)));
        }
    }
    let d = counts_again.map_or(wait, |e| e.min(wait));
    (d > Duration::ZERO).then_some(d)
}

impl DenyCache {
    /// A table of at most `capacity` refusals (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            table: Mutex::new(Table::default()),
            capacity: capacity.max(1),
        }
    }

    /// How many refusals it holds at most.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many it holds now (expired ones included until they are next looked up or pushed
    /// out).
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Looks up a hit of `batch` at `now`. [`Lookup::Refused`] when a remembered refusal still
    /// stands and every charge of `batch` needs at least the room it needed then: the
    /// refusal's statuses with their waits counted down ([`Verdict::from_cache`] set). Else
    /// [`Lookup::Miss`], with what [`DenyCache::record`] needs once the store has answered.
    ///
    /// `now` is on the store's clock when the store is given the time (a client clock), and
    /// then `other_clock` is false; else it is on a monotonic clock of this process
    /// ([`DenyCache::monotonic_now`]) and `other_clock` is true, so that a refusal is
    /// remembered for a thousandth less, and a millisecond less, than it stands: room for the
    /// two clocks' rates to differ.
    pub fn lookup(&self, batch: &[Charge], now: Timestamp, other_clock: bool) -> Lookup {
        let mut table = self.lock();
        let ticket = Ticket {
            sent: now,
            other_clock,
            epoch: table.epoch,
        };
        match table.refusal(batch, now) {
            Some(verdict) => Lookup::Refused(verdict),
            None => Lookup::Miss(ticket),
        }
    }

    /// Remembers the store's answer to a hit of `batch` that missed with `ticket`, if it is a
    /// refusal that may be remembered (see the type's docs) and no refund or clear was made
    /// through this table since the call left.
    pub fn record(&self, ticket: Ticket, batch: &[Charge], verdict: &Verdict) {
        let Some(mut d) = standing(batch, verdict) else {
            return;
        };
        if ticket.other_clock {
            let cut =
                Duration::from_nanos(d.as_nanos() / 1000).saturating_add(Duration::from_millis(1));
            d = d.saturating_sub(cut);
            if d == Duration::ZERO {
                return;
            }
        }
        let entry = Entry {
            seq: 0,
            charges: batch.iter().map(Shape::of).collect(),
            statuses: verdict.statuses.clone(),
            at: verdict.at,
            sent: ticket.sent,
            until: ticket.sent.saturating_add(d),
        };
        let fp = fingerprint(batch);
        let mut table = self.lock();
        if table.epoch == ticket.epoch {
            table.insert(fp, entry, self.capacity);
        }
    }

    /// Now on a monotonic clock of this process (nanoseconds since its first reading), for a
    /// store that reads the time on its server.
    pub fn monotonic_now() -> Timestamp {
        static START: OnceLock<Instant> = OnceLock::new();
        let start = *START.get_or_init(Instant::now);
        Timestamp::from_nanos(u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }

    /// `op` on `batch` by `call` (the store's own work), through the table: a hit is looked up
    /// first (at `now`, see [`DenyCache::lookup`]) and its refusal recorded after; a refund
    /// drops its clients' refusals first. Other operations go straight to `call`.
    pub async fn around(
        &self,
        op: Op,
        batch: &[Charge],
        (now, other_clock): (Timestamp, bool),
        call: impl Future<Output = Result<Verdict, StorageError>>,
    ) -> Result<Verdict, StorageError> {
        let renews = op == Op::Hit && batch.iter().any(|c| c.charged_at.is_some());
        match op {
            // A renewal gives room back before it charges: the store must see it, and it frees
            // its client's refusals as a refund does.
            Op::Hit if renews => {
                for c in batch {
                    self.forget(&c.key);
                }
                call.await
            }
            Op::Hit => match self.lookup(batch, now, other_clock) {
                Lookup::Refused(verdict) => Ok(verdict),
                Lookup::Miss(ticket) => {
                    let verdict = call.await?;
                    self.record(ticket, batch, &verdict);
                    Ok(verdict)
                }
            },
            Op::Refund => {
                for c in batch {
                    self.forget(&c.key);
                }
                call.await
            }
            Op::Test => call.await,
        }
    }

    /// Drops every refusal of a batch with a charge of `key`'s client ([`Key::identity`]): the
    /// client a refund or a clear has just given room to.
    pub fn forget(&self, key: &Key) {
        let identity = key.identity();
        let mut table = self.lock();
        table.epoch += 1;
        table
            .entries
            .retain(|_, e| !e.charges.iter().any(|s| s.key.identity() == identity));
    }

    /// Drops every refusal.
    pub fn clear(&self) {
        let mut table = self.lock();
        table.epoch += 1;
        table.entries.clear();
        table.order.clear();
    }

    /// The table; a panic elsewhere while it was held left it whole (no update spans a panic
    /// point), so a poisoned lock is taken as it is.
    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Table {
    /// The remembered refusal that covers a hit of `batch` at `now`, counted down.
    fn refusal(&mut self, batch: &[Charge], now: Timestamp) -> Option<Verdict> {
        if batch.is_empty() || self.entries.is_empty() {
            return None;
        }
        let fp = fingerprint(batch);
        let entry = self.entries.get(&fp)?;
        if now >= entry.until || now < entry.sent {
            self.entries.remove(&fp);
            return None;
        }
        let covered = entry.charges.len() == batch.len()
            && entry.charges.iter().zip(batch).all(|(s, c)| s.covers(c));
        if !covered {
            return None;
        }
        let elapsed = now.saturating_duration_since(entry.sent);
        let statuses = entry
            .statuses
            .iter()
            .zip(batch)
            .map(|(s, c)| {
                let mut s = *s;
                s.retry_after = match s.retry_after {
                    // A charge needing more than its limit's amount never fits.
                    _ if c.room() > c.limit.amount() => RetryAfter::Never,
                    RetryAfter::After(d) => RetryAfter::After(d.saturating_sub(elapsed)),
                    RetryAfter::Never => RetryAfter::Never,
                };
                s
            })
            .collect();
        let mut verdict = Verdict::new(false, statuses, entry.at.saturating_add(elapsed));
        verdict.from_cache = true;
        Some(verdict)
    }

    fn insert(&mut self, fp: u64, mut entry: Entry, capacity: usize) {
        self.seq += 1;
        entry.seq = self.seq;
        self.entries.insert(fp, entry);
        self.order.push_back((fp, self.seq));
        while self.entries.len() > capacity {
            let Some((old, seq)) = self.order.pop_front() else {
                break;
            };
            if self.entries.get(&old).is_some_and(|e| e.seq == seq) {
                self.entries.remove(&old);
            }
        }
        // Places left by entries recorded again or dropped: never more than the entries.
        if self.order.len() > 2 * capacity {
            let entries = &self.entries;
            self.order
                .retain(|(fp, seq)| entries.get(fp).is_some_and(|e| e.seq == *seq));
        }
    }
}

#[cfg(test)]
mod tests {
    use ratekeeper_core::{Duration, RetryAfter, StrategyKind, Timestamp};

    use super::*;
    use crate::batch::LimitStatus;

    const T0: Timestamp = Timestamp::from_secs(1_000);

    /// A hit at `sent` that missed, answered by the store with `verdict`.
    fn rec(cache: &DenyCache, batch: &[Charge], verdict: &Verdict, sent: Timestamp, other: bool) {
        match cache.lookup(batch, sent, other) {
            Lookup::Miss(ticket) => cache.record(ticket, batch, verdict),
            Lookup::Refused(v) => panic!("expected a miss, got {v:?}"),
        }
    }

    /// The table's answer to a hit at `now`.
    fn hit(cache: &DenyCache, batch: &[Charge], now: Timestamp) -> Option<Verdict> {
        match cache.lookup(batch, now, false) {
            Lookup::Refused(v) => Some(v),
            Lookup::Miss(_) => None,
        }
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn charge(who: &str, limit: &str, cost: u64) -> Charge {
        Charge::new(
            Key::new("ip", who),
            limit.parse().unwrap(),
            StrategyKind::FixedWindow,
            cost,
        )
    }

    fn meta_gate(who: &str) -> Charge {
        Charge::gate(
            Key::new("ip", who).scoped("meta"),
            "3 per hour".parse().unwrap(),
            StrategyKind::FixedWindow,
            1,
        )
        .charging_on_reject(1)
    }

    fn status(allowed: bool, wait: u64) -> LimitStatus {
        LimitStatus::new(
            allowed,
            0,
            T0.saturating_add(secs(wait)),
            RetryAfter::After(secs(wait)),
        )
    }

    fn refused(statuses: impl IntoIterator<Item = LimitStatus>) -> Verdict {
        Verdict::new(false, statuses.into_iter().collect(), T0)
    }

    #[test]
    fn a_refusal_stands_until_its_wait_is_over_and_counts_it_down() {
        let cache = DenyCache::new(8);
        let batch = [
            charge("a", "5 per minute", 1),
            charge("a", "50 per hour", 1),
        ];
        rec(
            &cache,
            &batch,
            &refused([status(false, 40), status(true, 0)]),
            T0,
            false,
        );
        let v = hit(&cache, &batch, T0.saturating_add(secs(10))).unwrap();
        assert!(!v.allowed && v.from_cache);
        assert_eq!(v.retry_after(), RetryAfter::After(secs(30)));
        assert_eq!(v.at, T0.saturating_add(secs(10)));
        assert_eq!(v.statuses[0].reset, T0.saturating_add(secs(40)));
        // At the instant the store could admit it, the table no longer answers.
        assert!(hit(&cache, &batch, T0.saturating_add(secs(40))).is_none());
        assert!(cache.is_empty());
    }

    #[test]
    fn a_batch_needing_less_room_or_another_batch_is_not_covered() {
        let cache = DenyCache::new(8);
        let batch = [charge("a", "5 per minute", 2)];
        rec(&cache, &batch, &refused([status(false, 40)]), T0, false);
        let at = T0.saturating_add(secs(1));
        assert!(hit(&cache, &[charge("a", "5 per minute", 3)], at).is_some());
        assert!(hit(&cache, &[charge("a", "5 per minute", 1)], at).is_none());
        assert!(hit(&cache, &[charge("b", "5 per minute", 2)], at).is_none());
        assert!(hit(&cache, &[charge("a", "6 per minute", 2)], at).is_none());
        assert!(
            hit(
                &cache,
                &[charge("a", "5 per minute", 2), charge("a", "9 per hour", 1)],
                at
            )
            .is_none()
        );
    }

    #[test]
    fn a_refusal_that_still_counts_a_breach_is_not_remembered() {
        let cache = DenyCache::new(8);
        let batch = [charge("a", "5 per minute", 1), meta_gate("a")];
        // The meta gate had room: the store counted this breach, and would count the next.
        rec(
            &cache,
            &batch,
            &refused([status(false, 40), status(true, 0)]),
            T0,
            false,
        );
        assert!(cache.is_empty());
        // The meta limit is exhausted until 25 s from now: remembered until then only.
        rec(
            &cache,
            &batch,
            &refused([status(false, 40), status(false, 25)]),
            T0,
            false,
        );
        assert!(hit(&cache, &batch, T0.saturating_add(secs(24))).is_some());
        assert!(hit(&cache, &batch, T0.saturating_add(secs(25))).is_none());
    }

    #[test]
    fn allowed_answers_and_refusals_that_never_end_are_not_remembered() {
        let cache = DenyCache::new(8);
        let batch = [charge("a", "5 per minute", 9)];
        rec(
            &cache,
            &batch,
            &Verdict::new(true, [status(true, 0)].into(), T0),
            T0,
            false,
        );
        let never = LimitStatus::new(false, 0, T0, RetryAfter::Never);
        rec(&cache, &batch, &refused([never]), T0, false);
        assert!(cache.is_empty());
    }

    #[test]
    fn another_clock_shortens_the_refusal_by_a_margin() {
        let cache = DenyCache::new(8);
        let batch = [charge("a", "5 per minute", 1)];
        rec(&cache, &batch, &refused([status(false, 10)]), T0, true);
        // 10 s less a thousandth (10 ms) and a millisecond.
        let edge = T0.saturating_add(Duration::from_millis(10_000 - 11));
        assert!(hit(&cache, &batch, edge.saturating_sub(Duration::from_nanos(1))).is_some());
        assert!(hit(&cache, &batch, edge).is_none());
    }

    #[test]
    fn a_refusal_whose_call_left_before_a_refund_is_not_remembered() {
        let cache = DenyCache::new(8);
        let batch = [charge("a", "5 per minute", 1)];
        let Lookup::Miss(ticket) = cache.lookup(&batch, T0, false) else {
            panic!("empty table")
        };
        cache.forget(&Key::new("ip", "z"));
        cache.record(ticket, &batch, &refused([status(false, 40)]));
        assert!(cache.is_empty());
    }

    #[test]
    fn the_oldest_goes_out_and_a_client_can_be_forgotten() {
        let cache = DenyCache::new(3);
        let at = T0.saturating_add(secs(1));
        for who in ["a", "b", "c", "d"] {
            rec(
                &cache,
                &[charge(who, "5 per minute", 1)],
                &refused([status(false, 40)]),
                T0,
                false,
            );
        }
        assert_eq!(cache.len(), 3);
        assert!(hit(&cache, &[charge("a", "5 per minute", 1)], at).is_none());
        assert!(hit(&cache, &[charge("b", "5 per minute", 1)], at).is_some());
        cache.forget(&Key::new("ip", "b").scoped("GET /x"));
        assert!(hit(&cache, &[charge("b", "5 per minute", 1)], at).is_none());
        assert!(hit(&cache, &[charge("c", "5 per minute", 1)], at).is_some());
        // Recording one batch again and again keeps the table within its bound.
        for i in 1..=100 {
            let sent = T0.saturating_add(secs(41 * i));
            rec(
                &cache,
                &[charge("c", "5 per minute", 1)],
                &refused([status(false, 40)]),
                sent,
                false,
            );
        }
        assert_eq!(cache.len(), 2);
        assert!(cache.lock().order.len() <= 6);
        cache.clear();
        assert!(cache.is_empty());
    }
}
