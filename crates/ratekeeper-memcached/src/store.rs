//! The store: each counter one memcached item, updated with compare-and-swap.

use core::{fmt, time::Duration};
use std::{collections::HashMap, sync::Arc};

use futures::future::join_all;
use ratekeeper_core::{Clock, Limit, RetryAfter, StrategyKind, Timestamp};
use ratekeeper_storage::{
    Charge, DenyCache, Key, LimitStatus, Op, Statuses, Storage, StorageError, StorageFuture,
    Verdict,
};

use crate::{
    bounds::{check_limit, exptime},
    builder::{Faults, MemcachedStorageBuilder},
    connection::{BACKEND, Server},
    keys,
    protocol::{self, Reply, Value},
    state::State,
};

/// The most conflicting writes a batch retries before it gives up. Every conflict is another
/// request's write that succeeded, and a full counter is not written to, so a batch meets at
/// most about a limit's amount of them.
pub(crate) const MAX_CONFLICTS: usize = 10_000;
/// Generations remembered before the memory starts over (they are read back on first use).
const MAX_GENERATIONS_SEEN: usize = 100_000;

pub(crate) struct Inner {
    pub(crate) servers: Vec<Server>,
    /// The servers' names, for hashing.
    pub(crate) names: Vec<String>,
    pub(crate) prefix: String,
    pub(crate) ttl_grace: Duration,
    pub(crate) clock: Arc<dyn Clock + Send + Sync>,
    pub(crate) deadline: Duration,
    /// The generations last read that are not 0, by item name: a batch names its counters
    /// after them and reads them with the counters, in one round trip.
    pub(crate) generations: parking_lot::Mutex<HashMap<String, u64>>,
    /// Refusals remembered, when on.
    pub(crate) deny: Option<DenyCache>,
    pub(crate) faults: Faults,
}

/// `memcached://` storage: every counter is one item holding the strategy's state, updated by
/// compare-and-swap (`gets`, then `cas` or `add`) and retried on conflict.
///
/// - **Time** is the client's: memcached has no clock the strategies can use. Every item
///   expires once its state is idle, plus a grace for clock differences
///   ([`MemcachedStorageBuilder::ttl_grace`]).
/// - **Batches** are not isolated: each charge is reserved on its own item, and when one does
///   not fit, the reserved ones are refunded. The batch never over-admits, but another request
///   can see a reservation that is later refunded (and be rejected by it), as on a Redis
///   cluster across slots.
/// - **Several servers**: items are spread by rendezvous hashing over the servers' names; the
///   reads and writes of a batch go to each server in one round trip, in parallel.
/// - **Forgetting** (`reset`, `clear_client`, `clear`) bumps a generation that every counter's
///   name carries: memcached cannot list keys, so old counters are left to expire.
/// - **Moving windows** up to [`MAX_MOVING_WINDOW`](crate::MAX_MOVING_WINDOW) (one item holds the whole log).
///
/// ```no_run
/// use ratekeeper_memcached::MemcachedStorage;
///
/// let store = MemcachedStorage::from_uri("memcached://127.0.0.1:11211?timeout=0.2")?;
/// # Ok::<(), ratekeeper_storage::StorageError>(())
/// ```
#[derive(Clone)]
pub struct MemcachedStorage {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for MemcachedStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemcachedStorage")
            .field("servers", &self.inner.names)
            .field("prefix", &self.inner.prefix)
            .finish_non_exhaustive()
    }
}

/// What a batch knows of an item's version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Token {
    /// Not in memcached when read: created with `add`.
    Absent,
    /// Read with this CAS token.
    Cas(u64),
    /// Written by this batch since it was read: read again before the next write.
    Stale,
}

/// One counter a batch touches, and the charges on it.
pub(crate) struct Item {
    pub(crate) name: String,
    pub(crate) server: usize,
    pub(crate) strategy: StrategyKind,
    pub(crate) limit: Limit,
    pub(crate) charges: Vec<usize>,
    pub(crate) state: State,
    pub(crate) token: Token,
}

/// A fresh state of `kind`, or the error for a strategy this backend does not know.
fn fresh(kind: StrategyKind) -> Result<State, StorageError> {
    State::fresh(kind).ok_or_else(|| StorageError::unsupported(BACKEND, "this strategy"))
}

impl Item {
    /// The item as read: its value (`None`: absent).
    fn take_value(&mut self, value: Option<Value>) -> Result<(), StorageError> {
        match value {
            Some(v) => {
                self.state = State::decode(self.strategy, &v.data)
                    .map_err(|e| protocol_error(format!("item {}: {e}", self.name)))?;
                self.token = Token::Cas(v.cas);
            }
            None => {
                self.state = fresh(self.strategy)?;
                self.token = Token::Absent;
            }
        }
        Ok(())
    }
}

fn protocol_error(detail: impl fmt::Display) -> StorageError {
    StorageError::protocol(BACKEND, detail.to_string())
}

impl MemcachedStorage {
    /// Forgets the refusals of `key`'s client (every refusal for `None`), which a clear is
    /// about to give room to.
    fn forget(&self, key: Option<&Key>) {
        match (&self.inner.deny, key) {
            (Some(deny), Some(key)) => deny.forget(key),
            (Some(deny), None) => deny.clear(),
            (None, _) => {}
        }
    }

    /// Configure a store from a URI (see [`MemcachedStorageBuilder::from_uri`]).
    pub fn builder_from_uri(uri: &str) -> Result<MemcachedStorageBuilder, StorageError> {
        MemcachedStorageBuilder::from_uri(uri)
    }

    /// A store from a URI, with the defaults.
    pub fn from_uri(uri: &str) -> Result<Self, StorageError> {
        MemcachedStorageBuilder::from_uri(uri)?.build()
    }

    pub(crate) fn from_inner(inner: Inner) -> Self {
        Self {
            inner: Arc::new(inner),
        }
    }

    /// The longest one call to a server may take (connect plus response timeout).
    pub fn deadline(&self) -> Duration {
        self.inner.deadline
    }

    fn server_of(&self, name: &str) -> usize {
        keys::server_for(name, &self.inner.names)
    }

    /// The values of `names` (those that exist), from every server involved in parallel.
    async fn read(&self, names: &[&str]) -> Result<HashMap<String, Value>, StorageError> {
        let mut by_server: Vec<Vec<&str>> = vec![Vec::new(); self.inner.servers.len()];
        for &n in names {
            let s = self.server_of(n);
            if !by_server[s].contains(&n) {
                by_server[s].push(n);
            }
        }
        let calls = by_server
            .iter()
            .enumerate()
            .filter(|(_, ns)| !ns.is_empty())
            .map(|(s, ns)| async move {
                let mut request = Vec::new();
                protocol::gets(ns, &mut request);
                self.inner.servers[s].call_asking(&request, 1, ns).await
            });
        let mut out = HashMap::new();
        for replies in join_all(calls).await {
            match replies?.pop() {
                Some(Reply::Values(values)) => {
                    out.extend(values.into_iter().map(|v| (v.key.clone(), v)));
                }
                other => return Err(protocol_error(format!("gets answered {other:?}"))),
            }
        }
        Ok(out)
    }

    /// The batch's items, named after the current generations, read.
    async fn items(&self, batch: &[Charge]) -> Result<Vec<Item>, StorageError> {
        let prefix = &self.inner.prefix;
        let store_gen = keys::store_generation(prefix);
        let mut gen_names = vec![store_gen.clone()];
        for c in batch {
            gen_names.push(keys::client_generation(prefix, &c.key));
            gen_names.push(keys::key_generation(prefix, &c.key));
        }
        // One round trip in the usual case: the generations and the counters they name are
        // read together, the counters under the generations last seen. When a generation has
        // moved on (a reset, a clear), the counters are read again under the new names.
        let guessed: Vec<u64> = {
            let seen = self.inner.generations.lock();
            gen_names
                .iter()
                .map(|n| seen.get(n).copied().unwrap_or(0))
                .collect()
        };
        let mut items = self.name_items(batch, &guessed)?;
        let mut names: Vec<&str> = gen_names.iter().map(String::as_str).collect();
        names.extend(items.iter().map(|it| it.name.as_str()));
        let mut values = self.read(&names).await?;
        let actual = gen_names
            .iter()
            .map(|name| match values.get(name) {
                None => Ok(0),
                Some(v) => core::str::from_utf8(&v.data)
                    .ok()
                    .and_then(|t| t.trim().parse().ok())
                    .ok_or_else(|| protocol_error(format!("generation {name} is not a number"))),
            })
            .collect::<Result<Vec<u64>, _>>()?;
        {
            let mut seen = self.inner.generations.lock();
            if seen.len() > MAX_GENERATIONS_SEEN {
                seen.clear();
            }
            for (name, &g) in gen_names.iter().zip(&actual) {
                if g != 0 || seen.contains_key(name) {
                    seen.insert(name.clone(), g);
                }
            }
        }
        if actual == guessed {
            for it in &mut items {
                it.take_value(values.remove(&it.name))?;
            }
        } else {
            items = self.name_items(batch, &actual)?;
            let mut all: Vec<&mut Item> = items.iter_mut().collect();
            self.load(&mut all).await?;
        }
        Ok(items)
    }

    /// The batch's items under `generations` (the store's, then each charge's client's and
    /// key's), unread, in a fixed order (so that concurrent batches write shared items in the
    /// same order).
    fn name_items(&self, batch: &[Charge], generations: &[u64]) -> Result<Vec<Item>, StorageError> {
        let prefix = &self.inner.prefix;
        let mut items: Vec<Item> = Vec::new();
        for (i, c) in batch.iter().enumerate() {
            let g = [
                generations[0],
                generations[1 + 2 * i],
                generations[2 + 2 * i],
            ];
            let name = keys::counter(prefix, g, &c.key, &c.limit, c.strategy);
            match items.iter_mut().find(|it| it.name == name) {
                Some(it) => it.charges.push(i),
                None => items.push(Item {
                    server: self.server_of(&name),
                    name,
                    strategy: c.strategy,
                    limit: c.limit,
                    charges: vec![i],
                    state: fresh(c.strategy)?,
                    token: Token::Absent,
                }),
            }
        }
        items.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(items)
    }

    /// Reads `items` again.
    pub(crate) async fn load(&self, items: &mut [&mut Item]) -> Result<(), StorageError> {
        let names: Vec<&str> = items.iter().map(|it| it.name.as_str()).collect();
        let mut values = self.read(&names).await?;
        for it in items.iter_mut() {
            it.take_value(values.remove(&it.name))?;
        }
        Ok(())
    }

    /// The expiry of an item holding `state`: once it is idle, plus the grace.
    fn expiry(&self, state: &State, limit: &Limit, now: Timestamp) -> u32 {
        let idle = state.idle_at(limit).saturating_duration_since(now);
        let secs =
            (idle.as_nanos().div_ceil(1_000_000_000) + self.inner.ttl_grace.as_secs()).max(1);
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        exptime(secs, unix)
    }

    /// Writes each `(item, new state)` if the item is as it was read; returns, per write,
    /// whether it was stored, and the first error of a server that failed (its writes count
    /// as not stored; those stored on the other servers stand, and the caller must know them
    /// to give them back). Writes to one server go in one round trip.
    pub(crate) async fn write(&self, writes: &[(&Item, &State)], now: Timestamp) -> Written {
        if let Some(hook) = &self.inner.faults.before_write {
            hook();
        }
        let mut by_server: Vec<Vec<usize>> = vec![Vec::new(); self.inner.servers.len()];
        for (w, (item, _)) in writes.iter().enumerate() {
            by_server[item.server].push(w);
        }
        let calls = by_server
            .iter()
            .enumerate()
            .filter(|(_, ws)| !ws.is_empty())
            .map(|(s, ws)| async move {
                let mut request = Vec::new();
                for &w in ws {
                    let (item, state) = writes[w];
                    let data = state.encode();
                    let exptime = self.expiry(state, &item.limit, now);
                    match item.token {
                        Token::Absent => protocol::add(&item.name, exptime, &data, &mut request),
                        Token::Cas(t) => protocol::cas(&item.name, exptime, &data, t, &mut request),
                        Token::Stale => unreachable!("a stale item is read before it is written"),
                    }
                }
                let replies = self.inner.servers[s].call(&request, ws.len()).await?;
                Ok::<_, StorageError>(ws.iter().copied().zip(replies).collect::<Vec<_>>())
            });
        let mut stored = vec![false; writes.len()];
        let mut failed = None;
        for result in join_all(calls).await {
            let replies = match result {
                Ok(replies) => replies,
                Err(e) => {
                    failed.get_or_insert(e);
                    continue;
                }
            };
            for (w, reply) in replies {
                match reply {
                    Reply::Stored => stored[w] = true,
                    Reply::NotStored | Reply::Exists | Reply::NotFound => {}
                    other => {
                        failed.get_or_insert(protocol_error(format!("a write answered {other:?}")));
                    }
                }
            }
        }
        Written { stored, failed }
    }

    /// Changes `item` by `change` until the change is stored (reading it again after each
    /// conflict). `change` returns `false` when there is nothing to write.
    pub(crate) async fn update(
        &self,
        item: &mut Item,
        now: Timestamp,
        mut change: impl FnMut(&mut State) -> bool,
    ) -> Result<(), StorageError> {
        for _ in 0..self.inner.faults.max_conflicts.max(1) {
            if item.token == Token::Stale {
                self.load(&mut [&mut *item]).await?;
            }
            let mut next = item.state.clone();
            if !change(&mut next) {
                return Ok(());
            }
            let written = self.write(&[(&*item, &next)], now).await;
            if let Some(e) = written.failed {
                return Err(e);
            }
            if written.stored[0] {
                item.state = next;
                item.token = Token::Stale;
                return Ok(());
            }
            item.token = Token::Stale;
        }
        Err(contention())
    }

    async fn apply_batch(&self, op: Op, batch: &[Charge]) -> Result<Verdict, StorageError> {
        let now = self.inner.clock.now();
        for c in batch {
            check_limit(&c.limit, c.strategy)?;
        }
        let mut items = self.items(batch).await?;
        let mut allowed = vec![true; batch.len()];
        let all = match op {
            Op::Test => {
                for item in &items {
                    Self::fits(item, batch, now, &mut allowed);
                }
                allowed.iter().all(|a| *a)
            }
            Op::Refund => {
                for item in &mut items {
                    let charges: Vec<&Charge> = item.charges.iter().map(|&i| &batch[i]).collect();
                    let limit = item.limit;
                    self.update(item, now, |s| {
                        for c in &charges {
                            s.refund(&limit, now, c.cost, c.charged_at);
                        }
                        true
                    })
                    .await?;
                }
                true
            }
            Op::Hit => self.hit(&mut items, batch, now, &mut allowed).await?,
        };
        let mut statuses: Vec<Option<LimitStatus>> = vec![None; batch.len()];
        for item in &items {
            for &i in &item.charges {
                let stats = item.state.stats(&item.limit, now);
                statuses[i] = Some(LimitStatus::new(
                    allowed[i],
                    stats.remaining,
                    stats.reset,
                    if allowed[i] {
                        RetryAfter::NOW
                    } else {
                        item.state.retry_after(&item.limit, now, batch[i].room())
                    },
                ));
            }
        }
        Ok(Verdict::new(
            all,
            statuses
                .into_iter()
                .map(|s| s.ok_or_else(|| protocol_error("a charge without an item")))
                .collect::<Result<Statuses, _>>()?,
            now,
        ))
    }

    /// Bumps the generation `name` (creating it at 1).
    async fn bump(&self, name: &str) -> Result<(), StorageError> {
        let server = &self.inner.servers[self.server_of(name)];
        for _ in 0..16 {
            let mut request = Vec::new();
            protocol::incr(name, 1, &mut request);
            match server.call(&request, 1).await?.pop() {
                Some(Reply::Number(_)) => return Ok(()),
                Some(Reply::NotFound) => {
                    let mut request = Vec::new();
                    protocol::add(name, 0, b"1", &mut request);
                    match server.call(&request, 1).await?.pop() {
                        Some(Reply::Stored) => return Ok(()),
                        // Created meanwhile: increment it.
                        Some(Reply::NotStored) => {}
                        other => return Err(protocol_error(format!("add answered {other:?}"))),
                    }
                }
                other => return Err(protocol_error(format!("incr answered {other:?}"))),
            }
        }
        Err(contention())
    }
}

/// What a write came to: per write, whether it was stored, and the first failure.
pub(crate) struct Written {
    pub(crate) stored: Vec<bool>,
    pub(crate) failed: Option<StorageError>,
}

pub(crate) fn contention() -> StorageError {
    StorageError::protocol(BACKEND, "gave up after too many conflicting writes")
}

impl Storage for MemcachedStorage {
    fn check_limit(&self, limit: &Limit, strategy: StrategyKind) -> Result<(), StorageError> {
        check_limit(limit, strategy)
    }

    fn apply<'a>(&'a self, op: Op, batch: &'a [Charge]) -> StorageFuture<'a, Verdict> {
        Box::pin(async move {
            let now = self.inner.clock.now();
            if batch.is_empty() {
                return Ok(Verdict::new(true, Statuses::new(), now));
            }
            match &self.inner.deny {
                // The store's own clock: a refusal stands exactly as long as it says.
                Some(deny) => {
                    let call = self.apply_batch(op, batch);
                    deny.around(op, batch, (now, false), call).await
                }
                None => self.apply_batch(op, batch).await,
            }
        })
    }

    /// Forgets every counter of `key`: its generation moves on.
    fn clear<'a>(&'a self, key: &'a Key) -> StorageFuture<'a, ()> {
        self.forget(Some(key));
        Box::pin(async move {
            self.bump(&keys::key_generation(&self.inner.prefix, key))
                .await
        })
    }

    /// Forgets every counter of the client `key.identity()`: its generation moves on.
    fn clear_client<'a>(&'a self, key: &'a Key) -> StorageFuture<'a, ()> {
        self.forget(Some(key));
        Box::pin(async move {
            self.bump(&keys::client_generation(&self.inner.prefix, key))
                .await
        })
    }

    /// Forgets every counter under this store's prefix: its generation moves on.
    fn reset(&self) -> StorageFuture<'_, ()> {
        self.forget(None);
        Box::pin(async move { self.bump(&keys::store_generation(&self.inner.prefix)).await })
    }

    /// `version` on every server.
    fn health(&self) -> StorageFuture<'_, ()> {
        Box::pin(async move {
            let calls = self.inner.servers.iter().map(|s| async move {
                let mut request = Vec::new();
                protocol::version(&mut request);
                match s.call(&request, 1).await?.pop() {
                    Some(Reply::Version(_)) => Ok(()),
                    other => Err(protocol_error(format!("version answered {other:?}"))),
                }
            });
            for r in join_all(calls).await {
                if let Err(e) = r {
                    for s in &self.inner.servers {
                        s.drop_idle();
                    }
                    return Err(e);
                }
            }
            Ok(())
        })
    }
}
