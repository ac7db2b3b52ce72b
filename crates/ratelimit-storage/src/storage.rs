//! The `Storage` trait: the seam every backend plugs into.

use core::fmt;

use async_trait::async_trait;

use crate::{
    batch::{Charge, Op, Verdict},
    error::StorageError,
    key::Key,
};

/// A store of rate-limit counters, shared by every request (and, for a networked store, every
/// process).
///
/// Object-safe: choose a backend at run time and hold it as `Arc<dyn Storage>`. One method does
/// the work, on a whole batch at once, so that a request's limits are evaluated atomically and,
/// for a networked store, in one round trip.
#[async_trait]
pub trait Storage: Send + Sync + fmt::Debug {
    /// Applies `op` to every charge of `batch` atomically: for [`Op::Hit`], all costs are
    /// charged or none is. A charge fits when its [`room`](Charge::room) fits (and charges on
    /// the same counter fit together). An empty batch is allowed and changes nothing.
    async fn apply(&self, op: Op, batch: &[Charge]) -> Result<Verdict, StorageError>;

    /// [`Storage::apply`] for a store that answers without waiting (one in this process): the
    /// answer now, sparing the caller the boxed future of an async call. `None`, the default,
    /// means "call `apply`"; a store that returns `Some` must answer exactly as `apply` would.
    fn apply_now(&self, op: Op, batch: &[Charge]) -> Option<Result<Verdict, StorageError>> {
        let _ = (op, batch);
        None
    }

    /// Forgets every counter of `key` (under every limit and strategy). Scoped keys are keys
    /// of their own: clear each scope that should be forgotten.
    async fn clear(&self, key: &Key) -> Result<(), StorageError>;

    /// Forgets every counter of one client, `key.identity()`, under every scope (every route,
    /// shared scope, application and meta limit), and nothing else. A store that cannot find
    /// a client's counters answers [`StorageError::Configuration`] (the default).
    async fn clear_client(&self, key: &Key) -> Result<(), StorageError> {
        Err(StorageError::Configuration(format!(
            "{self:?} cannot clear one client's counters ({})",
            key.identity()
        )))
    }

    /// Forgets every counter.
    async fn reset(&self) -> Result<(), StorageError>;

    /// Whether the store answers.
    async fn health(&self) -> Result<(), StorageError>;

    /// [`Op::Hit`]: charge all or nothing.
    async fn hit(&self, batch: &[Charge]) -> Result<Verdict, StorageError> {
        self.apply(Op::Hit, batch).await
    }

    /// [`Op::Test`]: would the batch be allowed now?
    async fn test(&self, batch: &[Charge]) -> Result<Verdict, StorageError> {
        self.apply(Op::Test, batch).await
    }

    /// [`Op::Refund`]: give back earlier charges.
    async fn refund(&self, batch: &[Charge]) -> Result<Verdict, StorageError> {
        self.apply(Op::Refund, batch).await
    }
}
