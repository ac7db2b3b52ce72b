//! [`FallbackStorage`]: a primary store with a way out when it fails.

use core::{
    fmt,
    future::Future,
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    time::Duration,
};
use std::{
    sync::{Arc, Weak},
    time::Instant,
};

use ratekeeper_core::{Clock, Limit, RetryAfter, StrategyKind, SystemClock, Unit};
use ratekeeper_memory::{AsyncIoSleep, MemoryStorage, Sleep};
use ratekeeper_storage::{
    Charge, Key, LimitStatus, Op, Storage, StorageError, StorageFuture, Verdict,
};

use crate::{
    backoff::Backoff,
    health::{FallbackStats, Transition},
    mode::Mode,
};

/// The default time a call may wait for the primary.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(500);

type TransitionHook = Arc<dyn Fn(&Transition) + Send + Sync>;

#[derive(Debug, Default)]
struct Outage {
    since: Option<Instant>,
    /// The outage began with a refusal: the primary answers pings but not writes, so the
    /// probe must be a write.
    refused: bool,
    failed_probes: u64,
    degraded_at_start: u64,
    outages: u64,
}

/// What the builder sets and the store keeps.
struct Config {
    primary: Arc<dyn Storage>,
    mode: Mode,
    timeout: Duration,
    backoff: Backoff,
    sleep: Arc<dyn Sleep>,
    clock: Arc<dyn Clock + Send + Sync>,
    on_transition: Option<TransitionHook>,
}

struct Shared {
    config: Config,
    secondary: MemoryStorage,
    down: AtomicBool,
    outage: parking_lot::Mutex<Outage>,
    degraded_calls: AtomicU64,
    refusals: AtomicU64,
}

/// A [`Storage`] over a primary (typically Redis) that survives it dying, hanging and coming
/// back.
///
/// - A call that meets an unavailable primary (unreachable, timed out, failing) is answered at
///   once by the [`Mode`]: counted in memory, allowed, or rejected; no call fails because of
///   the outage in the fallback and fail-open modes.
/// - No call waits for the primary longer than the timeout ([`DEFAULT_TIMEOUT`]): a hung
///   primary costs the calls in flight at most that, and the next ones nothing.
/// - While the primary is down, calls go straight to the outage mode; a probe (the primary's
///   `health`, a PING on Redis) runs in the background after each [`Backoff`] delay, counted
///   from the failure, and the first one that succeeds sends calls back to the primary.
/// - A primary that answers pings but refuses calls ([`StorageError::Refused`]: Redis out of
///   memory) is down too, counted in [`FallbackStats::refusals`]; its probe is a small write
///   (a one-second counter), so that calls go back only once writes succeed, instead of
///   flapping between a primary that pings and one that refuses. Meanwhile the fallback mode
///   still asks it (a test, which writes nothing) and rejects what it would reject, so that a
///   client over its limit stays limited.
/// - Every change is a `tracing` event and a [`Transition`] for the callback.
///
/// Configuration errors of the primary are not outages: they are passed on.
#[derive(Clone)]
pub struct FallbackStorage {
    shared: Arc<Shared>,
}

impl fmt::Debug for FallbackStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FallbackStorage")
            .field("primary", &self.shared.config.primary)
            .field("mode", &self.shared.config.mode)
            .field("timeout", &self.shared.config.timeout)
            .field("backoff", &self.shared.config.backoff)
            .field("stats", &self.stats())
            .finish()
    }
}

/// Configures a [`FallbackStorage`].
#[must_use = "a builder does nothing until it is used"]
pub struct FallbackStorageBuilder {
    config: Config,
    secondary: Option<MemoryStorage>,
}

impl fmt::Debug for FallbackStorageBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FallbackStorageBuilder")
            .field("primary", &self.config.primary)
            .field("mode", &self.config.mode)
            .field("timeout", &self.config.timeout)
            .field("backoff", &self.config.backoff)
            .finish_non_exhaustive()
    }
}

impl FallbackStorageBuilder {
    /// What to do while the primary is down (default: the batch's own limits, in memory).
    pub fn mode(mut self, mode: Mode) -> Self {
        self.config.mode = mode;
        self
    }

    /// The longest a call waits for the primary (default [`DEFAULT_TIMEOUT`]).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.config.timeout = timeout;
        self
    }

    /// When to probe a primary that is down (default: 0.25 s doubling to 30 s).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.config.backoff = backoff;
        self
    }

    /// The in-memory store of the fallback mode (default: `MemoryStorage::new()`).
    pub fn secondary(mut self, secondary: MemoryStorage) -> Self {
        self.secondary = Some(secondary);
        self
    }

    /// How the prober waits (default: async-io timers). Tests use a manual sleeper.
    pub fn sleep(mut self, sleep: Arc<dyn Sleep>) -> Self {
        self.config.sleep = sleep;
        self
    }

    /// The clock of the reset instants that fail-open answers report (default: the system
    /// clock).
    pub fn clock(mut self, clock: Arc<dyn Clock + Send + Sync>) -> Self {
        self.config.clock = clock;
        self
    }

    /// Called on every change of the primary's health (from the calling task or the prober's
    /// thread; keep it short).
    pub fn on_transition(mut self, hook: impl Fn(&Transition) + Send + Sync + 'static) -> Self {
        self.config.on_transition = Some(Arc::new(hook));
        self
    }

    /// Makes the store.
    pub fn build(self) -> FallbackStorage {
        FallbackStorage {
            shared: Arc::new(Shared {
                config: self.config,
                secondary: self.secondary.unwrap_or_default(),
                down: AtomicBool::new(false),
                outage: parking_lot::Mutex::new(Outage::default()),
                degraded_calls: AtomicU64::new(0),
                refusals: AtomicU64::new(0),
            }),
        }
    }
}

impl FallbackStorage {
    /// A builder over `primary`.
    pub fn builder(primary: Arc<dyn Storage>) -> FallbackStorageBuilder {
        FallbackStorageBuilder {
            config: Config {
                primary,
                mode: Mode::same_limits_in_memory(),
                timeout: DEFAULT_TIMEOUT,
                backoff: Backoff::default(),
                sleep: Arc::new(AsyncIoSleep),
                clock: Arc::new(SystemClock),
                on_transition: None,
            },
            secondary: None,
        }
    }

    /// Whether calls go to the primary now.
    pub fn is_primary_up(&self) -> bool {
        !self.shared.down.load(Ordering::Acquire)
    }

    /// Counts since the store was built.
    pub fn stats(&self) -> FallbackStats {
        FallbackStats {
            primary_up: self.is_primary_up(),
            outages: self.shared.outage.lock().outages,
            degraded_calls: self.shared.degraded_calls.load(Ordering::Relaxed),
            refusals: self.shared.refusals.load(Ordering::Relaxed),
        }
    }

    /// The in-memory store of the fallback mode.
    pub fn secondary(&self) -> &MemoryStorage {
        &self.shared.secondary
    }

    /// The configured mode.
    pub fn mode(&self) -> &Mode {
        &self.shared.config.mode
    }
}

impl Shared {
    async fn bounded<T>(
        &self,
        fut: impl Future<Output = Result<T, StorageError>>,
    ) -> Result<T, StorageError> {
        ratekeeper_storage::within("primary", self.config.timeout, fut).await
    }

    fn emit(&self, t: &Transition) {
        crate::metrics::transition(t.primary_up);
        if t.primary_up {
            tracing::info!(
                target: "ratekeeper::fallback",
                outage_ms = t.outage.as_millis() as u64,
                failed_probes = t.failed_probes,
                degraded_calls = t.degraded_calls,
                outages = t.outages,
                "primary storage is back; calls go to it again"
            );
        } else {
            tracing::warn!(
                target: "ratekeeper::fallback",
                error = t.error.as_deref().unwrap_or(""),
                mode = ?self.config.mode,
                outages = t.outages,
                "primary storage is down; answering from the outage mode"
            );
        }
        if let Some(hook) = &self.config.on_transition {
            hook(t);
        }
    }

    fn mark_down(self: &Arc<Self>, error: &StorageError) {
        let transition = {
            let mut outage = self.outage.lock();
            if outage.since.is_some() {
                return;
            }
            outage.since = Some(Instant::now());
            outage.refused = error.is_refused();
            outage.failed_probes = 0;
            outage.degraded_at_start = self.degraded_calls.load(Ordering::Relaxed);
            outage.outages += 1;
            self.down.store(true, Ordering::Release);
            Transition {
                primary_up: false,
                error: Some(error.to_string()),
                outage: Duration::ZERO,
                failed_probes: 0,
                degraded_calls: 0,
                outages: outage.outages,
            }
        };
        self.emit(&transition);
        self.spawn_prober();
    }

    fn mark_up(&self) {
        let transition = {
            let mut outage = self.outage.lock();
            let Some(since) = outage.since.take() else {
                return;
            };
            self.down.store(false, Ordering::Release);
            Transition {
                primary_up: true,
                error: None,
                outage: since.elapsed(),
                failed_probes: outage.failed_probes,
                degraded_calls: self.degraded_calls.load(Ordering::Relaxed)
                    - outage.degraded_at_start,
                outages: outage.outages,
            }
        };
        self.emit(&transition);
    }

    /// Probes the primary on a thread of its own (any runtime, or none, may be running), after
    /// each backoff delay, until it answers or the store is dropped.
    fn spawn_prober(self: &Arc<Self>) {
        let weak: Weak<Self> = Arc::downgrade(self);
        let (sleep, backoff) = (Arc::clone(&self.config.sleep), self.config.backoff);
        let spawned = std::thread::Builder::new()
            .name("ratelimit-probe".into())
            .spawn(move || {
                async_io::block_on(async move {
                    let mut attempt = 0u32;
                    loop {
                        sleep.sleep(backoff.delay(attempt)).await;
                        let Some(shared) = weak.upgrade() else {
                            return;
                        };
                        match shared.probe().await {
                            Ok(()) => {
                                shared.mark_up();
                                return;
                            }
                            Err(e) => {
                                shared.outage.lock().failed_probes += 1;
                                tracing::debug!(target: "ratekeeper::fallback", error = %e, attempt, "probe failed");
                                attempt = attempt.saturating_add(1);
                            }
                        }
                    }
                });
            });
        if let Err(e) = spawned {
            // Without a prober the primary would never come back: try it on the next call.
            tracing::error!(target: "ratekeeper::fallback", error = %e, "cannot start the probe thread");
            self.mark_up();
        }
    }

    /// Whether the primary serves again: its health, or, when it was refusing calls while
    /// answering pings (out of memory), a small write (a one-second counter of its own).
    async fn probe(&self) -> Result<(), StorageError> {
        if !self.outage.lock().refused {
            return self.bounded(self.config.primary.health()).await;
        }
        let probe = [Charge::new(
            Key::new("ratelimit-probe", "write"),
            Limit::per(u64::MAX >> 11, Unit::Second),
            StrategyKind::FixedWindow,
            1,
        )];
        self.bounded(self.config.primary.apply(Op::Hit, &probe))
            .await
            .map(|_| ())
    }

    /// In the fallback mode, while the primary refuses calls but still answers (out of memory:
    /// reads work, writes do not), a batch it would reject is rejected with its verdict (from a
    /// test, which writes nothing): a client over its limit before the refusals stays limited,
    /// instead of getting a fresh count in memory. `None`: count in memory as usual.
    async fn rejected_by_primary(&self, op: Op, batch: &[Charge]) -> Option<Verdict> {
        if op == Op::Refund
            || !matches!(self.config.mode, Mode::Fallback { .. })
            || !self.outage.lock().refused
        {
            return None;
        }
        match self
            .bounded(self.config.primary.apply(Op::Test, batch))
            .await
        {
            Ok(v) if !v.allowed => Some(v),
            _ => None,
        }
    }

    fn degraded(
        &self,
        op: Op,
        batch: &[Charge],
        error: Option<StorageError>,
    ) -> Result<Verdict, StorageError> {
        self.degraded_calls.fetch_add(1, Ordering::Relaxed);
        crate::metrics::degraded_call();
        match &self.config.mode {
            Mode::FailOpen => {
                tracing::warn!(target: "ratekeeper::fallback", charges = batch.len(), "primary storage down: allowed without counting (fail-open)");
                Ok(self.open_verdict(batch))
            }
            Mode::FailClosed => Err(error.unwrap_or_else(|| {
                StorageError::unreachable(
                    "primary",
                    "down since an earlier call; probing in the background",
                )
            })),
            Mode::Fallback { limits, .. } if limits.is_empty() => {
                self.secondary.apply_sync(op, batch)
            }
            Mode::Fallback { limits, strategy } => self.capped(op, batch, limits, *strategy),
        }
    }

    fn open_status(&self, c: &Charge) -> LimitStatus {
        LimitStatus::new(
            true,
            c.limit.amount().saturating_sub(c.room()),
            self.config.clock.now(),
            RetryAfter::NOW,
        )
    }

    fn open_verdict(&self, batch: &[Charge]) -> Verdict {
        Verdict::new(
            true,
            batch.iter().map(|c| self.open_status(c)).collect(),
            self.config.clock.now(),
        )
    }

    /// The batch's own limits in memory, and the fallback limits as an extra cap: each
    /// [`Charge::fallback_key`] in the batch (the charge's client identity when it has none) is
    /// charged once per fallback limit, with the largest cost it
    /// carries (gates, which charge nothing, only count for their own limits; the release or
    /// renewal of an in-flight slot leaves the caps alone), in the same
    /// atomic step. Each charge reports its own status when that rejected, else its identity's
    /// deciding fallback status when that rejected (the first that did), else whichever of the
    /// two has less remaining.
    fn capped(
        &self,
        op: Op,
        batch: &[Charge],
        limits: &[Limit],
        strategy: StrategyKind,
    ) -> Result<Verdict, StorageError> {
        let mut identities: Vec<(Key, u64)> = Vec::new();
        let mut of_charge: Vec<Option<usize>> = Vec::with_capacity(batch.len());
        for c in batch {
            // Gates charge nothing. A slot taken counts as its request, but its release or
            // renewal gives back or spends no quota of the caps.
            if c.cost == 0 || (c.is_hold() && (op == Op::Refund || c.charged_at.is_some())) {
                of_charge.push(None);
                continue;
            }
            let id = c
                .fallback_key()
                .cloned()
                .unwrap_or_else(|| c.key.identity_key());
            let at = match identities.iter().position(|(k, _)| *k == id) {
                Some(at) => at,
                None => {
                    identities.push((id, 0));
                    identities.len() - 1
                }
            };
            identities[at].1 = identities[at].1.max(c.cost);
            of_charge.push(Some(at));
        }
        let caps = batch.len();
        let mut charges: Vec<Charge> = batch.to_vec();
        charges.extend(identities.iter().flat_map(|(id, cost)| {
            limits
                .iter()
                .map(move |l| Charge::new(id.clone(), *l, strategy, *cost))
        }));
        let verdict = self.secondary.apply_sync(op, &charges)?;
        let deciding = |at: usize| -> LimitStatus {
            let from = caps + at * limits.len();
            let mine = &verdict.statuses[from..from + limits.len()];
            mine.iter()
                .find(|s| !s.allowed)
                .or_else(|| mine.iter().min_by_key(|s| s.remaining))
                .copied()
                .unwrap_or(LimitStatus::new(
                    true,
                    0,
                    self.config.clock.now(),
                    RetryAfter::NOW,
                ))
        };
        Ok(Verdict::new(
            verdict.allowed,
            of_charge
                .iter()
                .zip(&verdict.statuses)
                .map(|(at, own)| match at {
                    Some(at) if own.allowed => {
                        let cap = deciding(*at);
                        if !cap.allowed || cap.remaining < own.remaining {
                            cap
                        } else {
                            *own
                        }
                    }
                    _ => *own,
                })
                .collect(),
            verdict.at,
        ))
    }
}

impl Storage for FallbackStorage {
    /// Both stores must count `limit`: the primary, and memory, which counts while it is down.
    fn check_limit(&self, limit: &Limit, strategy: StrategyKind) -> Result<(), StorageError> {
        self.shared.config.primary.check_limit(limit, strategy)?;
        self.shared.secondary.check_limit(limit, strategy)
    }

    fn apply<'a>(&'a self, op: Op, batch: &'a [Charge]) -> StorageFuture<'a, Verdict> {
        Box::pin(async move {
            let s = &self.shared;
            if !s.down.load(Ordering::Acquire) {
                match s.bounded(s.config.primary.apply(op, batch)).await {
                    Ok(v) => return Ok(v),
                    Err(e) if e.is_unavailable() || e.is_refused() => {
                        if e.is_refused() {
                            s.refusals.fetch_add(1, Ordering::Relaxed);
                        }
                        s.mark_down(&e);
                        if let Some(v) = s.rejected_by_primary(op, batch).await {
                            return Ok(v);
                        }
                        return s.degraded(op, batch, Some(e));
                    }
                    Err(e) => return Err(e),
                }
            }
            if let Some(v) = s.rejected_by_primary(op, batch).await {
                return Ok(v);
            }
            s.degraded(op, batch, None)
        })
    }

    /// Clears `key` in memory, and on the primary when it is up.
    fn clear<'a>(&'a self, key: &'a Key) -> StorageFuture<'a, ()> {
        Box::pin(async move {
            let s = &self.shared;
            s.secondary.clear_sync(key);
            s.secondary.clear_sync(&key.identity_key());
            if self.is_primary_up() {
                s.bounded(s.config.primary.clear(key)).await
            } else {
                Ok(())
            }
        })
    }

    /// Clears the client in memory, and on the primary when it is up.
    fn clear_client<'a>(&'a self, key: &'a Key) -> StorageFuture<'a, ()> {
        Box::pin(async move {
            let s = &self.shared;
            s.secondary.clear_client_sync(key);
            if self.is_primary_up() {
                s.bounded(s.config.primary.clear_client(key)).await
            } else {
                Ok(())
            }
        })
    }

    /// Resets memory, and the primary when it is up.
    fn reset(&self) -> StorageFuture<'_, ()> {
        Box::pin(async move {
            let s = &self.shared;
            s.secondary.reset_sync();
            if self.is_primary_up() {
                s.bounded(s.config.primary.reset()).await
            } else {
                Ok(())
            }
        })
    }

    /// The primary's health (an outage is an error here even though calls are answered).
    fn health(&self) -> StorageFuture<'_, ()> {
        Box::pin(async move {
            let s = &self.shared;
            s.bounded(s.config.primary.health()).await
        })
    }
}
