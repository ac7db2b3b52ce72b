//! [`RedisStorage`]: the `Storage` trait on Redis.

use core::{
    fmt,
    future::Future,
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};
use std::sync::{Arc, Weak};

use futures::FutureExt;
use ratekeeper_core::{Clock, Limit, StrategyKind, Timestamp};
use ratekeeper_storage::{
    Charge, DenyCache, Key, LimitStatus, Op, Statuses, Storage, StorageError, StorageFuture,
    Verdict,
};
use redis::{ErrorKind, RedisError, RedisResult, Value, cmd};

use crate::{
    builder::RedisStorageBuilder,
    clear,
    coalesce::{self, Coalescer},
    connection::Connection,
    error::{self, BACKEND, from_redis},
    keys,
    script::{self, Call, Encoded, Scripts},
};

/// Rate-limit counters in Redis: every charge of a batch evaluated by one Lua call (a function
/// on Redis 7, a script before), in one round trip, atomically (all charged or none), with the
/// exact semantics of the `ratekeeper-core` state machines.
///
/// Cheap to clone: clones share the connection.
#[derive(Clone)]
pub struct RedisStorage {
    inner: Arc<Inner>,
}

struct Inner {
    connection: Connection,
    scripts: Scripts,
    /// Whether to call the function library (until a server says it has no functions).
    functions: AtomicBool,
    prefix: String,
    clock: Option<Arc<dyn Clock + Send + Sync>>,
    response_timeout: Duration,
    deadline: Duration,
    ttl_grace_ms: u64,
    /// Refusals remembered, when on.
    deny: Option<DenyCache>,
    /// Concurrent batches sharing calls, when on.
    coalescer: Option<Coalescer>,
    /// How the coalescer sends a call: through this store (held weakly: the store owns it).
    send: coalesce::Sender,
}

/// Calls sent and the batches they carried ([`RedisStorage::shared_calls`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SharedCalls {
    /// Calls sent (for hits and refunds).
    pub calls: u64,
    /// Batches they carried.
    pub batches: u64,
}

/// What a store does besides its calls: remember refusals ([`DenyCache`], this many entries,
/// 0 for none) and let concurrent batches share calls (at most this many per call, 0 for
/// every batch in a call of its own).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sharing {
    pub(crate) deny_cache: usize,
    pub(crate) coalesce: usize,
}

type Stored<T> = Result<T, StorageError>;

impl fmt::Debug for RedisStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStorage")
            .field("connection", &self.inner.connection)
            .field("prefix", &self.inner.prefix)
            .field(
                "time",
                &if self.inner.clock.is_some() {
                    "client"
                } else {
                    "server"
                },
            )
            .field("deadline", &self.inner.deadline)
            .field(
                "deny_cache",
                &self.inner.deny.as_ref().map(DenyCache::capacity),
            )
            .field("coalesce", &self.inner.coalescer)
            .finish()
    }
}

impl RedisStorage {
    pub(crate) fn new(
        connection: Connection,
        prefix: String,
        clock: Option<Arc<dyn Clock + Send + Sync>>,
        connect_timeout: Duration,
        (response_timeout, ttl_grace): (Duration, Duration),
        sharing: Sharing,
    ) -> Self {
        let inner = Arc::new_cyclic(|me: &Weak<Inner>| Inner {
            connection,
            scripts: Scripts::new(),
            functions: AtomicBool::new(true),
            prefix,
            clock,
            response_timeout,
            deadline: connect_timeout + response_timeout,
            ttl_grace_ms: u64::try_from(ttl_grace.as_millis()).unwrap_or(u64::MAX),
            deny: (sharing.deny_cache > 0).then(|| DenyCache::new(sharing.deny_cache)),
            coalescer: (sharing.coalesce > 0).then(|| Coalescer::new(sharing.coalesce)),
            send: sender(me.clone()),
        });
        Self { inner }
    }

    /// A builder from a URI; see [`RedisStorageBuilder::from_uri`].
    pub fn builder_from_uri(uri: &str) -> Result<RedisStorageBuilder, StorageError> {
        RedisStorageBuilder::from_uri(uri)
    }

    /// A store from a URI with default settings.
    pub fn from_uri(uri: &str) -> Result<Self, StorageError> {
        RedisStorageBuilder::from_uri(uri)?.build()
    }

    /// Calls this store has sent for hits and refunds, and the batches they carried, since it
    /// was made: with coalescing on ([`RedisStorageBuilder::coalesce`]), concurrent batches
    /// share calls, and batches / calls is the mean number a call carried. `None` with
    /// coalescing off.
    pub fn shared_calls(&self) -> Option<SharedCalls> {
        self.inner.coalescer.as_ref().map(|c| {
            let (calls, batches) = c.tally();
            SharedCalls { calls, batches }
        })
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// The longest a call waits: the connect timeout plus the response timeout. No call waits
    /// longer, whatever the server does (a batch that spans cluster slots makes one call per
    /// slot, each within this, and refunds what it reserved when one fails).
    pub fn deadline(&self) -> Duration {
        self.inner.deadline
    }

    /// The Redis name of the counter of `key` under `limit` and `strategy` (for a moving window,
    /// its log; the log's total is this name followed by `#`).
    #[doc(hidden)] // for tests and benchmarks that read Redis directly
    pub fn counter_key(&self, key: &Key, limit: &Limit, strategy: StrategyKind) -> String {
        keys::counter(&self.inner.prefix, key, limit, strategy)
    }

    /// Runs `fut` within the deadline (kept by the connection itself, or by a timer).
    async fn bounded<T>(&self, fut: impl Future<Output = Stored<T>>) -> Stored<T> {
        if self.inner.connection.keeps_deadline() {
            return fut.await;
        }
        ratekeeper_storage::within(BACKEND, self.inner.deadline, fut).await
    }

    fn redis_error(&self, e: &RedisError) -> StorageError {
        let error = from_redis(e, self.inner.response_timeout);
        tracing::debug!(target: "ratekeeper::redis", error = %error, "redis call failed");
        error
    }

    /// One call: `batch` (all in one slot on a cluster) as one atomic step, sharing its call
    /// with concurrent batches of the same node (or slot) when coalescing is on. Tests go
    /// alone: they run as the `no-writes` function.
    async fn run(
        &self,
        call: Call,
        now: Option<Timestamp>,
        batch: &[Charge],
    ) -> Result<Verdict, StorageError> {
        let inner = &self.inner;
        let encoded = script::encode(&inner.prefix, call, now, inner.ttl_grace_ms, batch);
        let reply = match &inner.coalescer {
            Some(coalescer) if call != Call::Op(Op::Test) => {
                let lane = match (inner.connection.is_cluster(), encoded.keys.first()) {
                    (true, Some(first)) => keys::slot(first),
                    _ => 0,
                };
                coalescer.call(lane, encoded, inner.send.clone()).await
            }
            _ => inner.send(encoded, call == Call::Op(Op::Test)).await,
        }
        .map_err(|e| self.redis_error(&e))?;
        script::decode(&reply, batch.len())
    }

    /// The batch's calls: one, or one per slot when its keys span cluster slots.
    async fn call(
        &self,
        op: Op,
        now: Option<Timestamp>,
        batch: &[Charge],
    ) -> Result<Verdict, StorageError> {
        let spans = self.inner.connection.is_cluster()
            && batch
                .iter()
                .any(|c| c.key.identity() != batch[0].key.identity());
        if spans {
            // Bounded call by call inside: a failed reservation must still be refunded.
            self.run_spanning(op, now, batch).await
        } else {
            self.bounded(self.run(Call::Op(op), now, batch)).await
        }
    }

    /// A batch whose keys span cluster slots (different identities): one script call per
    /// identity, each within the deadline. A hit reserves identity by identity and, when one
    /// rejects or fails, refunds the ones already charged: never more admitted than the limits
    /// allow, at the price of a moment in which the refunded reservation is held (a concurrent
    /// request may see it and be rejected). Tests and refunds need no ordering. A refund that
    /// fails is not hidden: the reservation it leaves (until its window passes) is logged and
    /// named in the error.
    async fn run_spanning(
        &self,
        op: Op,
        now: Option<Timestamp>,
        batch: &[Charge],
    ) -> Result<Verdict, StorageError> {
        let groups = by_identity(batch);
        let mut statuses: Vec<Option<LimitStatus>> = vec![None; batch.len()];
        let mut allowed = true;
        // The instant of the first slot's call stands for the batch (each node reads its own
        // clock; a refund naming it on a node whose clock differs gives back less, never more).
        let mut at = None;
        // The groups charged so far, with the instant each was charged at.
        let mut charged: Vec<(usize, Timestamp)> = Vec::new();
        for (g, (_, members)) in groups.iter().enumerate() {
            // Once a slot has rejected the hit, the rest only test, and charge what they ask
            // for on a rejection (as a rejected hit does).
            let group_op = if op == Op::Hit && !allowed {
                Call::RejectedElsewhere
            } else {
                Call::Op(op)
            };
            let verdict = match self
                .bounded(self.run(group_op, now, &pick(batch, members)))
                .await
            {
                Ok(v) => v,
                Err(e) => {
                    let (_, unrefunded) = self.refund_groups(&groups, &charged, now, batch).await;
                    return Err(match unrefunded {
                        Some((held, refund)) => still_reserved(e, held, &refund),
                        None => e,
                    });
                }
            };
            allowed &= verdict.allowed;
            at.get_or_insert(verdict.at);
            if group_op == Call::Op(Op::Hit) && verdict.allowed {
                charged.push((g, verdict.at));
            }
            for (&i, s) in members.iter().zip(verdict.statuses) {
                statuses[i] = Some(s);
            }
        }
        if op == Op::Hit && !allowed {
            self.undo_reserved(&groups, &charged, now, batch, &mut statuses)
                .await?;
        }
        Ok(Verdict::new(
            allowed,
            statuses
                .into_iter()
                .map(|s| s.expect("every charge belongs to a group"))
                .collect(),
            at.unwrap_or(Timestamp::EPOCH),
        ))
    }

    /// After another slot rejected a hit: refunds the groups this batch `charged` (their
    /// statuses stay allowed, with the counts after the refund), then charges what their
    /// charges ask for on a rejection. An error when a refund failed (the reservation held).
    async fn undo_reserved(
        &self,
        groups: &[(&str, Vec<usize>)],
        charged: &[(usize, Timestamp)],
        now: Option<Timestamp>,
        batch: &[Charge],
        statuses: &mut [Option<LimitStatus>],
    ) -> Result<(), StorageError> {
        let (refunded, unrefunded) = self.refund_groups(groups, charged, now, batch).await;
        if let Some((held, refund)) = unrefunded {
            let rejected = StorageError::unreachable(
                BACKEND,
                "the batch was rejected on one cluster slot".to_owned(),
            );
            return Err(still_reserved(rejected, held, &refund));
        }
        for (i, s) in refunded {
            // The refunded charges did fit: they keep `allowed`, with the counts after the
            // refund.
            statuses[i] = Some(LimitStatus::new(true, s.remaining, s.reset, s.retry_after));
        }
        // The refunded slots were reserved before another slot rejected: what their
        // charges ask for on a rejection is charged now.
        for &(g, _) in charged {
            let members = &groups[g].1;
            if members.iter().all(|&i| batch[i].on_reject() == 0) {
                continue;
            }
            // Renewals were made and refunded: nothing of theirs is given back again.
            let part = pick_at(batch, members, None);
            match self
                .bounded(self.run(Call::RejectedElsewhere, now, &part))
                .await
            {
                Ok(v) => {
                    for (&i, s) in members.iter().zip(v.statuses) {
                        statuses[i] = Some(s);
                    }
                }
                Err(e) => {
                    tracing::debug!(target: "ratekeeper::redis", error = %e, "charging on rejection failed");
                }
            }
        }
        Ok(())
    }

    /// Refunds every charged group (each call within the deadline; one failure does not stop
    /// the others). Returns the new statuses, and how many charges stay reserved with the
    /// first refund error, if any failed.
    async fn refund_groups(
        &self,
        groups: &[(&str, Vec<usize>)],
        charged: &[(usize, Timestamp)],
        now: Option<Timestamp>,
        batch: &[Charge],
    ) -> (Vec<(usize, LimitStatus)>, Option<(usize, StorageError)>) {
        let mut out = Vec::new();
        let mut failed: Option<(usize, StorageError)> = None;
        for &(g, at) in charged {
            let members = &groups[g].1;
            // A renewal's charge is given back where it now stands: at the group's instant.
            let refund = pick_at(batch, members, Some(at));
            match self
                .bounded(self.run(Call::Op(Op::Refund), now, &refund))
                .await
            {
                Ok(verdict) => out.extend(members.iter().copied().zip(verdict.statuses)),
                Err(e) => {
                    tracing::warn!(target: "ratekeeper::redis", identity = groups[g].0,
                        charges = members.len(), error = %e,
                        "a cross-slot reservation could not be refunded: it holds quota until its window passes");
                    let held = failed.as_ref().map_or(0, |(n, _)| *n) + members.len();
                    failed = Some((held, failed.map_or(e, |(_, first)| first)));
                }
            }
        }
        (out, failed)
    }
}

/// The coalescer's way to send a call: through the store, while it exists.
fn sender(store: Weak<Inner>) -> coalesce::Sender {
    Arc::new(move |encoded| {
        let store = store.clone();
        async move {
            match store.upgrade() {
                Some(inner) => inner.send(encoded, false).await,
                None => Err(RedisError::from((
                    ErrorKind::Client,
                    "the store was dropped",
                ))),
            }
        }
        .boxed()
    })
}

impl Inner {
    /// Sends one call: through the function library (`FCALL`) where the server has functions
    /// (Redis 7 and later), loaded on first use and again whenever a server lacks it (a
    /// restart, a failover, a new cluster node); as a script (`EVALSHA`) on older servers.
    async fn send(&self, encoded: Encoded, test: bool) -> RedisResult<Value> {
        if self.functions.load(Ordering::Relaxed)
            && let Some(reply) = self.fcall(&encoded, test).await
        {
            return reply;
        }
        self.connection
            .invoke(&encoded.invocation(&self.scripts.batch))
            .await
    }

    /// `FCALL` of the batch function (its `no-writes` twin for a test, which a server that
    /// refuses writes still runs), loading the library when the server lacks it. `None` when
    /// the server has no functions (this store then uses scripts from now on).
    async fn fcall(&self, encoded: &Encoded, test: bool) -> Option<RedisResult<Value>> {
        let scripts = &self.scripts;
        let function = if test {
            &scripts.test_function
        } else {
            &scripts.function
        };
        let cmd = encoded.fcall(function);
        match self.connection.query(&cmd).await {
            Err(e) if error::function_missing(&e) => {}
            Err(e) if error::functions_refused(&e) => return self.use_scripts(&e),
            other => return Some(other),
        }
        let mut load = redis::cmd("FUNCTION");
        load.arg("LOAD").arg("REPLACE").arg(&scripts.library);
        // A cluster answers for all its masters at once, with a node's error inside the value.
        let loaded = match self.connection.on_every_master(load).await {
            Ok(Value::ServerError(e)) => Err(e.into()),
            other => other,
        };
        match loaded {
            Ok(_) => Some(self.connection.query(&cmd).await),
            Err(e) if error::functions_refused(&e) => self.use_scripts(&e),
            Err(e) => Some(Err(e)),
        }
    }

    /// The server has no functions or this user may not use them: scripts from now on.
    fn use_scripts(&self, why: &RedisError) -> Option<RedisResult<Value>> {
        if self.functions.swap(false, Ordering::Relaxed) {
            tracing::info!(target: "ratekeeper::redis", reason = %why, "Redis functions unavailable: running the batch as a script (EVALSHA)");
        }
        None
    }
}

impl RedisStorage {
    /// Deletes the counters of `key`'s client under exactly `scopes` (every one of the
    /// client's for `None`), on the node that holds the client's slot.
    async fn clear_under(&self, key: &Key, scopes: Option<&str>) -> Result<(), StorageError> {
        let tagged = keys::tagged(&self.inner.prefix, key);
        let pattern = match scopes {
            Some(scopes) => format!("{tagged}{scopes}:*"),
            None => format!("{tagged}*"),
        };
        let (conn, prefix) = (&self.inner.connection, &self.inner.prefix);
        self.delete(clear::on_node_of(conn, prefix, &tagged, &pattern))
            .await
    }

    /// Forgets the refusals of `key`'s client, which a clear is about to give room to.
    fn forget(&self, key: &Key) {
        if let Some(deny) = &self.inner.deny {
            deny.forget(key);
        }
    }

    /// Runs a deletion, its errors as storage errors. Not under the store's deadline: it pages
    /// through a node's keyspace, each call bounded by the connection's own response timeout.
    async fn delete(
        &self,
        deletion: impl Future<Output = RedisResult<u64>>,
    ) -> Result<(), StorageError> {
        deletion.await.map(|_| ()).map_err(|e| self.redis_error(&e))
    }
}

/// The charges of `batch` at `members`.
fn pick(batch: &[Charge], members: &[usize]) -> Vec<Charge> {
    members.iter().map(|&i| batch[i].clone()).collect()
}

/// [`pick`], each renewal naming `at` instead of the charge it renewed (`None`: none).
fn pick_at(batch: &[Charge], members: &[usize], at: Option<Timestamp>) -> Vec<Charge> {
    let mut part = pick(batch, members);
    for c in part.iter_mut().filter(|c| c.charged_at.is_some()) {
        c.charged_at = at;
    }
    part
}

/// `error`, which ended a cross-slot batch, with the news that `held` charges it had reserved on
/// other slots could not be refunded (`refund` says why): they hold quota until their window
/// passes. A timeout becomes `Unreachable`, which can carry the detail (both are outages).
fn still_reserved(mut error: StorageError, held: usize, refund: &StorageError) -> StorageError {
    let note = format!(
        "; {held} charge(s) reserved on other cluster slots could not be refunded ({refund}) and hold quota until their window passes"
    );
    match &mut error {
        StorageError::Unreachable { detail, .. }
        | StorageError::Protocol { detail, .. }
        | StorageError::Refused { detail, .. } => detail.push_str(&note),
        StorageError::Timeout { backend, after, .. } => {
            return StorageError::unreachable(
                backend,
                format!("no answer within {} ms{note}", after.as_millis()),
            );
        }
        _ => {}
    }
    error
}

impl Storage for RedisStorage {
    fn apply<'a>(&'a self, op: Op, batch: &'a [Charge]) -> StorageFuture<'a, Verdict> {
        Box::pin(async move {
            if batch.is_empty() {
                return Ok(Verdict::new(
                    true,
                    Statuses::new(),
                    self.inner
                        .clock
                        .as_ref()
                        .map_or(Timestamp::EPOCH, |c| c.now()),
                ));
            }
            for c in batch {
                script::check(c)?;
            }
            let now = self.inner.clock.as_ref().map(|c| c.now());
            match &self.inner.deny {
                // On the store's clock when it is given the time, else on ours.
                Some(deny) => {
                    let at = now.unwrap_or_else(DenyCache::monotonic_now);
                    let call = self.call(op, now, batch);
                    deny.around(op, batch, (at, now.is_none()), call).await
                }
                None => self.call(op, now, batch).await,
            }
        })
    }

    fn check_limit(&self, limit: &Limit, strategy: StrategyKind) -> Result<(), StorageError> {
        script::check_limit(limit, strategy)
    }

    /// Deletes every counter of `key` (under every limit and strategy): the node that holds
    /// the key's slot is paged through with `SCAN`, so the time it takes grows with that
    /// node's key count, but no command holds Redis for longer than one page.
    fn clear<'a>(&'a self, key: &'a Key) -> StorageFuture<'a, ()> {
        self.forget(key);
        Box::pin(self.clear_under(key, Some(keys::scopes(key))))
    }

    /// Deletes every counter of the client `key.identity()` (they share its slot).
    fn clear_client<'a>(&'a self, key: &'a Key) -> StorageFuture<'a, ()> {
        self.forget(key);
        Box::pin(self.clear_under(key, None))
    }

    /// Deletes every counter of this store, on every master; other keys under the prefix (an
    /// application's own, another store's under a longer prefix) stay.
    fn reset(&self) -> StorageFuture<'_, ()> {
        if let Some(deny) = &self.inner.deny {
            deny.clear();
        }
        Box::pin(async move {
            self.delete(clear::everywhere(
                &self.inner.connection,
                &self.inner.prefix,
            ))
            .await
        })
    }

    /// PING (on a cluster, every master).
    fn health(&self) -> StorageFuture<'_, ()> {
        Box::pin(async move {
            self.bounded(async {
                self.inner
                    .connection
                    .on_every_master(cmd("PING"))
                    .await
                    .map(|_| ())
                    .map_err(|e| self.redis_error(&e))
            })
            .await
        })
    }
}

/// The batch's charges grouped by identity (one cluster slot each), in order of first
/// appearance.
fn by_identity(batch: &[Charge]) -> Vec<(&str, Vec<usize>)> {
    let mut groups: Vec<(&str, Vec<usize>)> = Vec::new();
    for (i, c) in batch.iter().enumerate() {
        match groups.iter_mut().find(|(id, _)| *id == c.key.identity()) {
            Some((_, members)) => members.push(i),
            None => groups.push((c.key.identity(), vec![i])),
        }
    }
    groups
}
