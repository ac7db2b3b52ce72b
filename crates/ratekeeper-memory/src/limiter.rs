//! `KeyedLimiter`: the synchronous fast path for one limit, and waiting until ready.

use core::fmt;
use std::sync::Arc;

use ratekeeper_core::{Outcome, RetryAfter, Timestamp};
use ratekeeper_storage::{LimitStatus, Op};

use crate::{store::Inner, table::AnyTable};

/// The counters of one limit in a [`MemoryStorage`](crate::MemoryStorage), for callers that
/// are not async (custom servers, worker threads) or want the fastest path: no batch, no
/// allocation, one shard lock. Cheap to clone; any byte string is a key.
///
/// ```
/// use ratekeeper_core::{Limit, StrategyKind};
/// use ratekeeper_memory::MemoryStorage;
///
/// let store = MemoryStorage::new();
/// let per_ip = store.limiter("3 per second".parse()?, StrategyKind::Gcra)?;
/// let admitted = (0..10).filter(|_| per_ip.check(b"10.0.0.1", 1).is_allowed()).count();
/// assert_eq!(admitted, 3);
/// assert!(per_ip.check(b"10.0.0.2", 1).is_allowed());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct KeyedLimiter {
    inner: Arc<Inner>,
    table: Arc<dyn AnyTable>,
}

impl fmt::Debug for KeyedLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedLimiter")
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

/// A wait that can never end: the cost is larger than the limit's amount.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeverAllowed {
    /// The cost asked for.
    pub cost: u64,
}

impl fmt::Display for NeverAllowed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a cost of {} is larger than the limit allows, ever",
            self.cost
        )
    }
}

impl core::error::Error for NeverAllowed {}

impl KeyedLimiter {
    pub(crate) fn new(inner: Arc<Inner>, table: Arc<dyn AnyTable>) -> Self {
        Self { inner, table }
    }

    /// Charges `cost` to `key` now, if it fits: the decision alone.
    #[inline]
    pub fn check(&self, key: &[u8], cost: u64) -> Outcome {
        self.check_at(key, self.inner.clock.now(), cost)
    }

    /// [`KeyedLimiter::check`] at an explicit instant.
    #[inline]
    pub fn check_at(&self, key: &[u8], now: Timestamp, cost: u64) -> Outcome {
        self.table
            .check(self.inner.fingerprinter.fp(key), now, cost)
    }

    /// Charges `cost` to `key` if it fits, and says what is left.
    pub fn hit(&self, key: &[u8], cost: u64) -> LimitStatus {
        self.apply(Op::Hit, key, cost)
    }

    /// Whether `cost` would fit now, and what is left; changes nothing.
    pub fn test(&self, key: &[u8], cost: u64) -> LimitStatus {
        self.apply(Op::Test, key, cost)
    }

    /// Gives back up to `cost` of earlier charges that still count.
    pub fn refund(&self, key: &[u8], cost: u64) -> LimitStatus {
        self.apply(Op::Refund, key, cost)
    }

    fn apply(&self, op: Op, key: &[u8], cost: u64) -> LimitStatus {
        let now = self.inner.clock.now();
        self.table
            .apply_one(op, self.inner.fingerprinter.fp(key), now, cost, cost, None)
    }

    /// Waits until `cost` fits for `key`, then charges it. Each wait is exactly the
    /// [`retry_after`](ratekeeper_core::Strategy::retry_after) of the moment, so the charge lands
    /// on the first instant it is allowed (another caller may take the quota first; then it
    /// waits again). Runs on any runtime (see [`Sleep`](crate::Sleep)).
    pub async fn until_ready(&self, key: &[u8], cost: u64) -> Result<LimitStatus, NeverAllowed> {
        loop {
            let status = self.hit(key, cost);
            if status.allowed {
                return Ok(status);
            }
            match status.retry_after {
                RetryAfter::Never => return Err(NeverAllowed { cost }),
                RetryAfter::After(wait) => self.inner.sleep.sleep(wait.into()).await,
            }
        }
    }
}
