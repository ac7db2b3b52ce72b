//! The counters of one (strategy, limit) pair: a sharded map from key fingerprints to states.

use core::hash::{BuildHasher, Hash, Hasher};
use std::{
    collections::{HashMap, VecDeque},
    hash::RandomState,
};

use parking_lot::{Mutex, MutexGuard};
use ratekeeper_core::{
    Duration, Entry, FixedWindow, Gcra, Limit, MovingWindow, Outcome, RetryAfter, SlidingWindow,
    Strategy, Timestamp,
};
use ratekeeper_storage::{Key, LimitStatus, Op};
use siphasher::sip::SipHasher13;

/// A key's 128-bit keyed fingerprint: a 64-bit keyed hash of the whole key and one of its
/// identity (the part after the last `/`: `ip:203.0.113.7`). The map stores it instead of the
/// key: 16 bytes whatever the key's length. With random SipHash keys per process, two clients
/// share a counter only if both halves collide (as likely as guessing a 128-bit secret); two
/// counters of one client, only if the first does (one in 2^64). The second half lets a
/// client's counters be found without the keys ([`AnyTable::remove_identity`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Fp(u64, u64);

impl Hash for Fp {
    fn hash<H: Hasher>(&self, h: &mut H) {
        h.write_u64(self.0);
    }
}

/// Passes the fingerprint through: it is already a keyed hash.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct FpBuild;

#[derive(Debug, Default)]
pub(crate) struct FpHasher(u64);

impl Hasher for FpHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

impl BuildHasher for FpBuild {
    type Hasher = FpHasher;
    fn build_hasher(&self) -> FpHasher {
        FpHasher(0)
    }
}

/// Computes fingerprints with SipHash-1-3 (128-bit output) under random per-process keys.
#[derive(Clone, Debug)]
pub(crate) struct Fingerprinter(u64, u64);

impl Fingerprinter {
    pub(crate) fn new() -> Self {
        let random = RandomState::new();
        Self(random.hash_one(0x5eed_u64), random.hash_one(0xfeed_u64))
    }

    /// The fingerprint of a key given as text (its identity after the last `/`).
    #[inline]
    pub(crate) fn fp(&self, key: &[u8]) -> Fp {
        let identity = match key.iter().rposition(|&b| b == b'/') {
            Some(at) => &key[at + 1..],
            None => key,
        };
        Fp(self.hash(key), self.identity(identity))
    }

    /// The fingerprint of `key` (the same as [`Fingerprinter::fp`] of its text), reusing the
    /// identity's hash from the key before when it has the same identity (a request's keys
    /// do): `last` remembers it.
    #[inline]
    pub(crate) fn fp_of<'k>(&self, key: &'k Key, last: &mut Option<(&'k str, u64)>) -> Fp {
        let identity = key.identity();
        let hash = match last {
            Some((seen, hash)) if *seen == identity => *hash,
            _ => {
                let hash = self.identity(identity.as_bytes());
                *last = Some((identity, hash));
                hash
            }
        };
        Fp(self.hash(key.as_str().as_bytes()), hash)
    }

    /// The second half of the fingerprint of every key of `identity`.
    pub(crate) fn identity(&self, identity: &[u8]) -> u64 {
        self.hash(identity) ^ 0x9e37_79b9_7f4a_7c15
    }

    fn hash(&self, bytes: &[u8]) -> u64 {
        let mut h = SipHasher13::new_with_keys(self.0, self.1);
        h.write(bytes);
        h.finish()
    }
}

/// A strategy state the memory store can keep.
pub(crate) trait State:
    Strategy + Default + Clone + Send + core::fmt::Debug + 'static
{
}
impl<S: Strategy + Default + Clone + Send + core::fmt::Debug + 'static> State for S {}

/// How many entries an eviction looks at to pick the one closest to going idle.
const EVICTION_SAMPLE: usize = 8;

#[derive(Debug)]
pub(crate) struct Shard<S> {
    map: HashMap<Fp, S, FpBuild>,
    next_sweep: Timestamp,
}

/// One (strategy, limit) pair's counters.
pub(crate) struct Table<S> {
    limit: Limit,
    shards: Box<[Mutex<Shard<S>>]>,
    /// Keys per shard.
    cap: usize,
    sweep_every: Duration,
}

impl<S> core::fmt::Debug for Table<S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Table")
            .field("limit", &self.limit)
            .field("shards", &self.shards.len())
            .field("cap_per_shard", &self.cap)
            .finish_non_exhaustive()
    }
}

impl<S: State> Table<S> {
    pub(crate) fn new(limit: Limit, shards: usize, max_keys: usize, sweep_every: Duration) -> Self {
        let count = shards.clamp(1, max_keys.max(1));
        let shards = (0..count)
            .map(|_| {
                Mutex::new(Shard {
                    map: HashMap::with_hasher(FpBuild),
                    next_sweep: Timestamp::EPOCH,
                })
            })
            .collect();
        Self {
            limit,
            shards,
            cap: (max_keys / count).max(1),
            sweep_every,
        }
    }

    fn shard_index(&self, fp: Fp) -> usize {
        ((u128::from(fp.1) * self.shards.len() as u128) >> 64) as usize
    }

    fn lock_index(&self, index: usize) -> MutexGuard<'_, Shard<S>> {
        self.shards[index].lock()
    }
}

impl<S: State> Shard<S> {
    fn sweep(&mut self, limit: &Limit, now: Timestamp) {
        self.map.retain(|_, s| s.idle_at(limit) > now);
        // Give memory back when most of the table is empty.
        if self.map.capacity() > 64 && self.map.len() < self.map.capacity() / 4 {
            self.map.shrink_to(self.map.len() * 2);
        }
    }

    fn maybe_sweep(&mut self, limit: &Limit, now: Timestamp, every: Duration) {
        if now >= self.next_sweep {
            self.sweep(limit, now);
            self.next_sweep = now.saturating_add(every);
        }
    }

    fn test(&self, limit: &Limit, fp: Fp, now: Timestamp, cost: u64) -> bool {
        match self.map.get(&fp) {
            Some(s) => s.test(limit, now, cost).is_allowed(),
            None => S::default().test(limit, now, cost).is_allowed(),
        }
    }

    /// Charges `cost`, making room for a new key when the shard is full.
    fn hit(&mut self, limit: &Limit, fp: Fp, now: Timestamp, cost: u64, cap: usize) -> bool {
        if let Some(s) = self.map.get_mut(&fp) {
            return s.hit(limit, now, cost).is_allowed();
        }
        let mut fresh = S::default();
        if !fresh.hit(limit, now, cost).is_allowed() {
            return false;
        }
        if cost == 0 {
            return true;
        }
        // Idle keys go on the shard's sweep schedule; a full shard does not sweep on every new
        // key (a flood of new keys would make each insert scan the shard), it evicts one.
        if self.map.len() >= cap {
            self.evict(limit);
        }
        self.map.insert(fp, fresh);
        true
    }

    /// Forgets the sampled key that would go idle first (an idle one if the sample has one): it
    /// loses the least, and forgetting a client only ever gives it back quota, never takes any.
    fn evict(&mut self, limit: &Limit) {
        let victim = self
            .map
            .iter()
            .take(EVICTION_SAMPLE)
            .min_by_key(|(_, s)| s.idle_at(limit))
            .map(|(fp, _)| *fp);
        if let Some(fp) = victim {
            self.map.remove(&fp);
        }
    }

    fn refund(
        &mut self,
        limit: &Limit,
        fp: Fp,
        now: Timestamp,
        cost: u64,
        charged_at: Option<Timestamp>,
    ) {
        if let Some(s) = self.map.get_mut(&fp) {
            match charged_at {
                Some(at) => s.refund_at(limit, now, cost, at),
                None => s.refund(limit, now, cost),
            }
        }
    }

    fn status(
        &self,
        limit: &Limit,
        fp: Fp,
        now: Timestamp,
        cost: u64,
        allowed: bool,
    ) -> LimitStatus {
        let fresh;
        let state = match self.map.get(&fp) {
            Some(s) => s,
            None => {
                fresh = S::default();
                &fresh
            }
        };
        let stats = state.stats(limit, now);
        let retry_after = if allowed {
            RetryAfter::NOW
        } else {
            state.retry_after(limit, now, cost)
        };
        LimitStatus::new(allowed, stats.remaining, stats.reset, retry_after)
    }
}

/// A locked shard of any strategy: what an atomic batch holds while it decides.
pub(crate) trait LockedShard {
    fn test(&self, fp: Fp, now: Timestamp, cost: u64) -> bool;
    fn hit(&mut self, fp: Fp, now: Timestamp, cost: u64) -> bool;
    fn refund(&mut self, fp: Fp, now: Timestamp, cost: u64, charged_at: Option<Timestamp>);
    fn status(&self, fp: Fp, now: Timestamp, cost: u64, allowed: bool) -> LimitStatus;
}

pub(crate) struct Locked<'a, S> {
    guard: MutexGuard<'a, Shard<S>>,
    table: &'a Table<S>,
}

/// A locked shard of one of the strategies the store keeps, held inline (a batch holds several
/// at once, of different strategies; boxing each cost an allocation per lock).
pub(crate) enum AnyLocked<'a> {
    Fixed(Locked<'a, FixedWindow>),
    Moving(Locked<'a, MovingWindow<VecDeque<Entry>>>),
    Sliding(Locked<'a, SlidingWindow>),
    Gcra(Locked<'a, Gcra>),
}

/// The same call on whichever strategy `$locked` holds.
macro_rules! on_any {
    ($locked:expr, $l:ident => $call:expr) => {
        match $locked {
            AnyLocked::Fixed($l) => $call,
            AnyLocked::Moving($l) => $call,
            AnyLocked::Sliding($l) => $call,
            AnyLocked::Gcra($l) => $call,
        }
    };
}

impl LockedShard for AnyLocked<'_> {
    fn test(&self, fp: Fp, now: Timestamp, cost: u64) -> bool {
        on_any!(self, l => l.test(fp, now, cost))
    }
    fn hit(&mut self, fp: Fp, now: Timestamp, cost: u64) -> bool {
        on_any!(self, l => l.hit(fp, now, cost))
    }
    fn refund(&mut self, fp: Fp, now: Timestamp, cost: u64, charged_at: Option<Timestamp>) {
        on_any!(self, l => l.refund(fp, now, cost, charged_at));
    }
    fn status(&self, fp: Fp, now: Timestamp, cost: u64, allowed: bool) -> LimitStatus {
        on_any!(self, l => l.status(fp, now, cost, allowed))
    }
}

/// A state the store keeps in a table: it knows its [`AnyLocked`] variant.
pub(crate) trait Lockable: State + Sized {
    fn any(locked: Locked<'_, Self>) -> AnyLocked<'_>;
}

impl Lockable for FixedWindow {
    fn any(locked: Locked<'_, Self>) -> AnyLocked<'_> {
        AnyLocked::Fixed(locked)
    }
}

impl Lockable for MovingWindow<VecDeque<Entry>> {
    fn any(locked: Locked<'_, Self>) -> AnyLocked<'_> {
        AnyLocked::Moving(locked)
    }
}

impl Lockable for SlidingWindow {
    fn any(locked: Locked<'_, Self>) -> AnyLocked<'_> {
        AnyLocked::Sliding(locked)
    }
}

impl Lockable for Gcra {
    fn any(locked: Locked<'_, Self>) -> AnyLocked<'_> {
        AnyLocked::Gcra(locked)
    }
}

impl<S: State> LockedShard for Locked<'_, S> {
    fn test(&self, fp: Fp, now: Timestamp, cost: u64) -> bool {
        self.guard.test(&self.table.limit, fp, now, cost)
    }
    fn hit(&mut self, fp: Fp, now: Timestamp, cost: u64) -> bool {
        self.guard
            .hit(&self.table.limit, fp, now, cost, self.table.cap)
    }
    fn refund(&mut self, fp: Fp, now: Timestamp, cost: u64, charged_at: Option<Timestamp>) {
        self.guard
            .refund(&self.table.limit, fp, now, cost, charged_at)
    }
    fn status(&self, fp: Fp, now: Timestamp, cost: u64, allowed: bool) -> LimitStatus {
        self.guard.status(&self.table.limit, fp, now, cost, allowed)
    }
}

/// A table of any strategy, as the store holds it.
pub(crate) trait AnyTable: Send + Sync + core::fmt::Debug {
    /// Which shard holds `fp`.
    fn shard_of(&self, fp: Fp) -> usize;
    /// Locks one shard (sweeping it first when due).
    fn lock(&self, shard: usize, now: Timestamp) -> AnyLocked<'_>;
    /// One operation on one key: the single-charge fast path, no allocation. The charge needs
    /// room for `need` (at least `cost`) and charges `cost`.
    fn apply_one(
        &self,
        op: Op,
        fp: Fp,
        now: Timestamp,
        cost: u64,
        need: u64,
        charged_at: Option<Timestamp>,
    ) -> LimitStatus;
    /// The decision alone, for the synchronous fast path.
    fn check(&self, fp: Fp, now: Timestamp, cost: u64) -> Outcome;
    fn remove(&self, fp: Fp);
    /// Forgets every key whose identity half is `identity`.
    fn remove_identity(&self, identity: u64);
    fn clear_all(&self);
    fn sweep(&self, now: Timestamp);
    fn len(&self) -> usize;
}

impl<S: Lockable> AnyTable for Table<S> {
    fn shard_of(&self, fp: Fp) -> usize {
        self.shard_index(fp)
    }

    fn lock(&self, shard: usize, now: Timestamp) -> AnyLocked<'_> {
        let mut guard = self.lock_index(shard);
        guard.maybe_sweep(&self.limit, now, self.sweep_every);
        S::any(Locked { guard, table: self })
    }

    fn apply_one(
        &self,
        op: Op,
        fp: Fp,
        now: Timestamp,
        cost: u64,
        need: u64,
        charged_at: Option<Timestamp>,
    ) -> LimitStatus {
        let need = need.max(cost);
        let mut shard = self.lock_index(self.shard_index(fp));
        shard.maybe_sweep(&self.limit, now, self.sweep_every);
        let allowed = match op {
            Op::Hit if need > cost => {
                shard.test(&self.limit, fp, now, need)
                    && shard.hit(&self.limit, fp, now, cost, self.cap)
            }
            Op::Hit => shard.hit(&self.limit, fp, now, cost, self.cap),
            Op::Test => shard.test(&self.limit, fp, now, need),
            Op::Refund => {
                shard.refund(&self.limit, fp, now, cost, charged_at);
                true
            }
        };
        shard.status(&self.limit, fp, now, need, allowed)
    }

    #[inline]
    fn check(&self, fp: Fp, now: Timestamp, cost: u64) -> Outcome {
        let mut shard = self.lock_index(self.shard_index(fp));
        shard.maybe_sweep(&self.limit, now, self.sweep_every);
        if shard.hit(&self.limit, fp, now, cost, self.cap) {
            Outcome::Allowed
        } else {
            Outcome::Rejected
        }
    }

    fn remove(&self, fp: Fp) {
        self.lock_index(self.shard_index(fp)).map.remove(&fp);
    }

    fn remove_identity(&self, identity: u64) {
        // Every key of one identity is in one shard: the shard index comes from that half.
        let shard = self.shard_index(Fp(0, identity));
        self.lock_index(shard).map.retain(|fp, _| fp.1 != identity);
    }

    fn clear_all(&self) {
        for i in 0..self.shards.len() {
            let mut shard = self.lock_index(i);
            shard.map = HashMap::with_hasher(FpBuild);
        }
    }

    fn sweep(&self, now: Timestamp) {
        for i in 0..self.shards.len() {
            let mut shard = self.lock_index(i);
            shard.sweep(&self.limit, now);
            shard.next_sweep = now.saturating_add(self.sweep_every);
        }
    }

    fn len(&self) -> usize {
        (0..self.shards.len())
            .map(|i| self.lock_index(i).map.len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_keys_fingerprint_is_the_same_from_its_text_and_its_identity_half_is_shared() {
        let f = Fingerprinter::new();
        let ip = Key::new("ip", "203.0.113.7");
        let keys = [
            ip.clone(),
            ip.under(&["LIMITER", "route", "GET /a"]),
            ip.under(&["LIMITER", "meta"]),
        ];
        let mut last = None;
        for key in &keys {
            let fp = f.fp_of(key, &mut last);
            assert_eq!(fp, f.fp(key.as_str().as_bytes()), "{key}");
            assert_eq!(fp.1, f.identity(b"ip:203.0.113.7"));
        }
        assert_ne!(f.fp_of(&keys[1], &mut None), f.fp_of(&keys[2], &mut None));
        let other = Key::new("ip", "203.0.113.70").under(&["LIMITER", "meta"]);
        assert_ne!(f.fp_of(&other, &mut last).1, f.identity(b"ip:203.0.113.7"));
    }
}
