//! `MemoryStorage`: the tables of every (strategy, limit) pair, atomic batches across them,
//! and the `Storage` trait on top.

use core::future::Future;
use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, PoisonError, RwLock, Weak},
};

use ratekeeper_core::{
    Clock, Duration, Entry, FixedWindow, Gcra, Limit, MovingWindow, SlidingWindow, StrategyKind,
    Timestamp,
};
use ratekeeper_storage::{
    Charge, Key, Op, Statuses, Storage, StorageError, StorageFuture, StorageUri, Verdict,
};
use smallvec::SmallVec;

use crate::{
    clock::FastClock,
    limiter::KeyedLimiter,
    sleep::{AsyncIoSleep, Sleep},
    table::{AnyLocked, AnyTable, Fingerprinter, Fp, LockedShard, Table},
};

/// Charges per batch whose scratch stays off the heap.
const INLINE: usize = 4;

/// The tables by (strategy, limit). These pairs come from configuration, not from clients,
/// and each charge looks its table up, so the map hashes with `foldhash` (a few multiplies per
/// key) rather than SipHash.
type Registry = HashMap<(StrategyKind, Limit), Arc<dyn AnyTable>, foldhash::fast::RandomState>;

/// What a batch knows of one of its charges.
struct Slot<'r> {
    table: &'r dyn AnyTable,
    fp: Fp,
    shard: usize,
    /// Which of the batch's locks holds its shard.
    lock: usize,
    /// Whether it fits (refunds always do).
    allowed: bool,
}

/// The slots of a batch, inline for the batches requests make.
type Slots<'r> = SmallVec<[Slot<'r>; INLINE]>;

pub(crate) struct Inner {
    pub(crate) clock: Arc<dyn Clock + Send + Sync>,
    pub(crate) fingerprinter: Fingerprinter,
    pub(crate) sleep: Arc<dyn Sleep>,
    shards: usize,
    max_keys: usize,
    max_log_entries: u64,
    sweep_every: Duration,
    tables: RwLock<Registry>,
}

impl core::fmt::Debug for Inner {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MemoryStorage")
            .field("shards", &self.shards)
            .field("max_keys", &self.max_keys)
            .field("max_log_entries", &self.max_log_entries)
            .field("sweep_every", &self.sweep_every)
            .field("tables", &self.tables.read().map(|t| t.len()).unwrap_or(0))
            .finish_non_exhaustive()
    }
}

/// In-process rate-limit storage: sharded, concurrent, bounded.
///
/// - **Concurrent.** Each (strategy, limit) pair has its own table of `shards` mutex-protected
///   maps; a decision locks one shard. A batch locks the shards it touches in one global order,
///   so batches are atomic and cannot deadlock.
/// - **Small.** A key is stored as a 128-bit keyed fingerprint, whatever its length.
/// - **Expiring.** A key whose state is back to fresh ([`Strategy::idle_at`]) is swept when its
///   shard is next used after `sweep_every`, or by [`MemoryStorage::sweep`] or the optional
///   [`MemoryStorage::sweeper`] task; emptied tables give their memory back.
/// - **Bounded.** At most `max_keys` keys per limit (split evenly over the shards). A new key in
///   a full shard evicts one: of a sample of 8 keys, the one that goes idle soonest (an idle
///   one if any). Forgetting a client can only give it quota back, never take any: eviction
///   never makes a limit stricter than configured.
///
/// [`Strategy::idle_at`]: ratekeeper_core::Strategy::idle_at
///
/// ```
/// use ratekeeper_core::{Limit, ManualClock, StrategyKind, Timestamp};
/// use ratekeeper_memory::MemoryStorage;
/// use ratekeeper_storage::{Charge, Key, Op};
/// use std::sync::Arc;
///
/// let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_700_000_000)));
/// let store = MemoryStorage::builder().clock(clock).build();
/// let limit: Limit = "2 per minute".parse()?;
/// let batch = [Charge::new(Key::new("ip", "10.0.0.1"), limit, StrategyKind::FixedWindow, 1)];
/// assert!(store.apply_sync(Op::Hit, &batch)?.allowed);
/// assert!(store.apply_sync(Op::Hit, &batch)?.allowed);
/// let third = store.apply_sync(Op::Hit, &batch)?;
/// assert!(!third.allowed);
/// assert_eq!(third.retry_after().duration().map(|d| d.as_secs()), Some(60));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct MemoryStorage {
    inner: Arc<Inner>,
}

/// Configures a [`MemoryStorage`].
#[derive(Clone)]
#[must_use = "a builder does nothing until it is used"]
pub struct MemoryStorageBuilder {
    clock: Arc<dyn Clock + Send + Sync>,
    sleep: Arc<dyn Sleep>,
    shards: usize,
    max_keys: usize,
    max_log_entries: u64,
    sweep_every: Duration,
}

impl core::fmt::Debug for MemoryStorageBuilder {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MemoryStorageBuilder")
            .field("shards", &self.shards)
            .field("max_keys", &self.max_keys)
            .field("max_log_entries", &self.max_log_entries)
            .field("sweep_every", &self.sweep_every)
            .finish_non_exhaustive()
    }
}

impl Default for MemoryStorageBuilder {
    fn default() -> Self {
        Self {
            clock: Arc::new(FastClock::new()),
            sleep: Arc::new(AsyncIoSleep),
            shards: 64,
            max_keys: 1_000_000,
            max_log_entries: 1_000_000,
            sweep_every: Duration::from_secs(1),
        }
    }
}

impl MemoryStorageBuilder {
    /// The clock (default: [`FastClock`]).
    pub fn clock(mut self, clock: Arc<dyn Clock + Send + Sync>) -> Self {
        self.clock = clock;
        self
    }

    /// How waiting is done by [`KeyedLimiter::until_ready`] and the sweeper (default:
    /// `async-io` timers, which serve smol and async-std alike).
    pub fn sleep(mut self, sleep: Arc<dyn Sleep>) -> Self {
        self.sleep = sleep;
        self
    }

    /// Shards per limit (default 64); more shards, less contention between threads.
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = shards.max(1);
        self
    }

    /// Keys kept per limit (default 1,000,000), split evenly over the shards.
    pub fn max_keys(mut self, max_keys: usize) -> Self {
        self.max_keys = max_keys.max(1);
        self
    }

    /// The largest amount a moving-window limit may have (default 1,000,000): its log holds
    /// one entry per distinct instant, up to the amount, for every key.
    pub fn max_log_entries(mut self, max: u64) -> Self {
        self.max_log_entries = max;
        self
    }

    /// How often a shard in use sweeps its idle keys (default 1 s).
    pub fn sweep_every(mut self, every: core::time::Duration) -> Self {
        self.sweep_every = every.into();
        self
    }

    /// The store.
    pub fn build(self) -> MemoryStorage {
        MemoryStorage {
            inner: Arc::new(Inner {
                clock: self.clock,
                fingerprinter: Fingerprinter::new(),
                sleep: self.sleep,
                shards: self.shards,
                max_keys: self.max_keys,
                max_log_entries: self.max_log_entries,
                sweep_every: self.sweep_every,
                tables: RwLock::new(Registry::default()),
            }),
        }
    }
}

impl Default for MemoryStorage {
    fn default() -> Self {
        Self::new()
    }
}

/// The URI schemes this backend accepts.
pub const SCHEMES: &[&str] = &["memory"];

impl MemoryStorage {
    /// A store with the default configuration.
    pub fn new() -> Self {
        MemoryStorageBuilder::default().build()
    }

    /// Configure a store.
    pub fn builder() -> MemoryStorageBuilder {
        MemoryStorageBuilder::default()
    }

    /// A store from a `memory://` URI. Query options: `max_keys`, `shards`.
    pub fn from_uri(uri: &str) -> Result<Self, StorageError> {
        Ok(Self::builder_from_uri(uri)?.build())
    }

    /// A builder configured from a `memory://` URI, to adjust further (the clock, say).
    pub fn builder_from_uri(uri: &str) -> Result<MemoryStorageBuilder, StorageError> {
        let uri: StorageUri = uri.parse()?;
        uri.expect_scheme(SCHEMES)?;
        if !uri.hosts.is_empty() || !uri.path.is_empty() {
            return Err(StorageError::configuration(
                "memory",
                "memory:// takes no host or path, only ?max_keys=N&shards=N",
            ));
        }
        let mut builder = Self::builder();
        for (name, value) in &uri.query {
            let n: usize = value.parse().map_err(|_| {
                StorageError::configuration(
                    "memory",
                    format!("memory:// option {name}={value:?} is not a number"),
                )
            })?;
            builder = match name.as_str() {
                "max_keys" => builder.max_keys(n),
                "shards" => builder.shards(n),
                other => {
                    return Err(StorageError::configuration(
                        "memory",
                        format!("unknown memory:// option {other:?}; known: max_keys, shards"),
                    ));
                }
            };
        }
        Ok(builder)
    }

    /// The table of one (strategy, limit) pair, created on first use.
    pub(crate) fn table(
        &self,
        strategy: StrategyKind,
        limit: &Limit,
    ) -> Result<Arc<dyn AnyTable>, StorageError> {
        let tables = &self.inner.tables;
        if let Some(t) = tables
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(strategy, *limit))
        {
            return Ok(Arc::clone(t));
        }
        self.check_limit(limit, strategy)?;
        let mut tables = tables.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(table) = tables.get(&(strategy, *limit)) {
            return Ok(Arc::clone(table));
        }
        let inner = &self.inner;
        let (shards, keys, every) = (inner.shards, inner.max_keys, inner.sweep_every);
        let table: Arc<dyn AnyTable> = match strategy {
            StrategyKind::FixedWindow => {
                Arc::new(Table::<FixedWindow>::new(*limit, shards, keys, every))
            }
            StrategyKind::MovingWindow => Arc::new(Table::<MovingWindow<VecDeque<Entry>>>::new(
                *limit, shards, keys, every,
            )),
            StrategyKind::SlidingWindowCounter => {
                Arc::new(Table::<SlidingWindow>::new(*limit, shards, keys, every))
            }
            StrategyKind::Gcra => Arc::new(Table::<Gcra>::new(*limit, shards, keys, every)),
            _ => return Err(StorageError::unsupported("memory", "this strategy")),
        };
        tables.insert((strategy, *limit), Arc::clone(&table));
        Ok(table)
    }

    /// A handle on the counters of one limit: the synchronous fast path for a single key.
    pub fn limiter(
        &self,
        limit: Limit,
        strategy: StrategyKind,
    ) -> Result<KeyedLimiter, StorageError> {
        Ok(KeyedLimiter::new(
            Arc::clone(&self.inner),
            self.table(strategy, &limit)?,
        ))
    }

    /// [`Storage::apply`], synchronously.
    pub fn apply_sync(&self, op: Op, batch: &[Charge]) -> Result<Verdict, StorageError> {
        let now = self.inner.clock.now();
        self.apply_at(op, batch, now)
    }

    /// [`Storage::apply`] at an explicit instant (simulations, differential tests).
    pub fn apply_at(
        &self,
        op: Op,
        batch: &[Charge],
        now: Timestamp,
    ) -> Result<Verdict, StorageError> {
        // The batch runs under one read lock of the table registry, which only the creation of
        // a table waits on: a batch that needs a new one creates it first, then runs.
        loop {
            {
                let registry = self
                    .inner
                    .tables
                    .read()
                    .unwrap_or_else(PoisonError::into_inner);
                if let [charge] = batch
                    && charge.on_reject() == 0
                    && (op != Op::Hit || charge.charged_at.is_none())
                    && let Some(table) = registry.get(&(charge.strategy, charge.limit))
                {
                    let fp = self.inner.fingerprinter.fp_of(&charge.key, &mut None);
                    let (cost, need) = (charge.cost, charge.need());
                    let status = table.apply_one(op, fp, now, cost, need, charge.charged_at);
                    return Ok(Verdict::new(status.allowed, [status].into(), now));
                }
                let mut slots = Slots::new();
                if self.slots(&registry, batch, &mut slots) {
                    return Ok(Self::apply_slots(op, batch, slots, now));
                }
            }
            for c in batch {
                self.table(c.strategy, &c.limit)?;
            }
        }
    }

    /// Per charge, into `slots`: its table, its key's fingerprint and its shard; `false` if a
    /// table is missing. Inline for the batches requests make (a few charges).
    fn slots<'r>(&self, registry: &'r Registry, batch: &[Charge], slots: &mut Slots<'r>) -> bool {
        let mut identity = None;
        for c in batch {
            let Some(table) = registry.get(&(c.strategy, c.limit)) else {
                return false;
            };
            let table = &**table;
            let fp = self.inner.fingerprinter.fp_of(&c.key, &mut identity);
            slots.push(Slot {
                table,
                fp,
                shard: table.shard_of(fp),
                lock: 0,
                allowed: true,
            });
        }
        true
    }

    /// A batch whose tables are all found.
    fn apply_slots(op: Op, batch: &[Charge], mut slots: Slots<'_>, now: Timestamp) -> Verdict {
        // Lock every shard involved once, in one global order (table address, shard index).
        let place = |s: &Slot<'_>| (core::ptr::from_ref(s.table).cast::<()>() as usize, s.shard);
        let mut order: SmallVec<[usize; INLINE]> = (0..slots.len()).collect();
        order.sort_unstable_by_key(|&i| place(&slots[i]));
        let mut locks: SmallVec<[AnyLocked<'_>; INLINE]> = SmallVec::new();
        let mut last = None;
        for &i in &order {
            let slot = &mut slots[i];
            if last != Some(place(slot)) {
                last = Some(place(slot));
                locks.push(slot.table.lock(slot.shard, now));
            }
            slot.lock = locks.len() - 1;
        }
        if op == Op::Hit {
            // Renewals give their earlier charge back first, under the same locks.
            for (slot, c) in slots.iter().zip(batch) {
                if c.charged_at.is_some() {
                    locks[slot.lock].refund(slot.fp, now, c.cost, c.charged_at);
                }
            }
        }
        if op != Op::Refund {
            for (i, c) in batch.iter().enumerate() {
                let Slot { fp, lock, .. } = slots[i];
                // Charges on the same counter are tested together: their costs add up (a
                // strategy that has room for an amount has room for less).
                let together = (0..batch.len())
                    .filter(|&j| slots[j].lock == lock && slots[j].fp == fp)
                    .map(|j| batch[j].cost)
                    .fold(0, u64::saturating_add);
                slots[i].allowed = locks[lock].test(fp, now, c.room())
                    && (together <= c.room() || locks[lock].test(fp, now, together));
            }
        }
        let all = slots.iter().all(|s| s.allowed);
        for (slot, c) in slots.iter().zip(batch) {
            let (fp, lock) = (slot.fp, slot.lock);
            match op {
                Op::Hit if all => {
                    let _charged = locks[lock].hit(fp, now, c.cost);
                    debug_assert!(_charged, "a tested charge must fit");
                }
                // A rejected hit charges only what its charges ask for on a rejection, each
                // where it has room (a full meta limit counts no more breaches).
                Op::Hit if c.on_reject() > 0 => {
                    let _ = locks[lock].hit(fp, now, c.on_reject());
                }
                Op::Refund => locks[lock].refund(fp, now, c.cost, c.charged_at),
                Op::Hit | Op::Test => {}
            }
        }
        let mut statuses = Statuses::with_capacity(batch.len());
        for (slot, c) in slots.iter().zip(batch) {
            statuses.push(locks[slot.lock].status(slot.fp, now, c.room(), slot.allowed));
        }
        drop(locks);
        Verdict::new(all, statuses, now)
    }

    /// Forgets every counter of `key`, under every limit.
    pub fn clear_sync(&self, key: &Key) {
        let fp: Fp = self.inner.fingerprinter.fp(key.as_str().as_bytes());
        for table in self.tables() {
            table.remove(fp);
        }
    }

    /// Forgets every counter of the client `key.identity()`, under every scope and limit.
    pub fn clear_client_sync(&self, key: &Key) {
        let identity = self.inner.fingerprinter.identity(key.identity().as_bytes());
        for table in self.tables() {
            table.remove_identity(identity);
        }
    }

    /// Forgets every counter.
    pub fn reset_sync(&self) {
        for table in self.tables() {
            table.clear_all();
        }
    }

    /// Sweeps every idle key now.
    pub fn sweep(&self) {
        let now = self.inner.clock.now();
        for table in self.tables() {
            table.sweep(now);
        }
    }

    /// How many keys are held, over all limits.
    pub fn len(&self) -> usize {
        self.tables().iter().map(|t| t.len()).sum()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn tables(&self) -> Vec<Arc<dyn AnyTable>> {
        self.inner
            .tables
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    /// A task that sweeps idle keys every `every`, for stores whose shards may go quiet (the
    /// lazy sweep only runs on a shard in use). It ends when the store is dropped. Spawn it on
    /// any runtime: `smol::spawn(store.sweeper(d)).detach()` or `async_std::task::spawn(...)`.
    pub fn sweeper(
        &self,
        every: core::time::Duration,
    ) -> impl Future<Output = ()> + Send + 'static {
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let sleep = Arc::clone(&self.inner.sleep);
        async move {
            loop {
                sleep.sleep(every).await;
                match weak.upgrade() {
                    Some(inner) => Self { inner }.sweep(),
                    None => return,
                }
            }
        }
    }
}

impl Storage for MemoryStorage {
    fn check_limit(&self, limit: &Limit, strategy: StrategyKind) -> Result<(), StorageError> {
        if strategy == StrategyKind::MovingWindow && limit.amount() > self.inner.max_log_entries {
            return Err(StorageError::configuration(
                "memory",
                format!(
                    "moving window of {limit}: the amount is above max_log_entries ({})",
                    self.inner.max_log_entries
                ),
            ));
        }
        Ok(())
    }

    fn apply<'a>(&'a self, op: Op, batch: &'a [Charge]) -> StorageFuture<'a, Verdict> {
        Box::pin(async move { self.apply_sync(op, batch) })
    }

    fn apply_now(&self, op: Op, batch: &[Charge]) -> Option<Result<Verdict, StorageError>> {
        Some(self.apply_sync(op, batch))
    }

    fn clear<'a>(&'a self, key: &'a Key) -> StorageFuture<'a, ()> {
        Box::pin(async move {
            self.clear_sync(key);
            Ok(())
        })
    }

    fn clear_client<'a>(&'a self, key: &'a Key) -> StorageFuture<'a, ()> {
        Box::pin(async move {
            self.clear_client_sync(key);
            Ok(())
        })
    }

    fn reset(&self) -> StorageFuture<'_, ()> {
        Box::pin(async move {
            self.reset_sync();
            Ok(())
        })
    }

    fn health(&self) -> StorageFuture<'_, ()> {
        Box::pin(async move { Ok(()) })
    }
}
