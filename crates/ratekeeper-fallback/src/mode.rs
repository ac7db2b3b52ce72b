//! What to do while the primary is down.

use ratekeeper_core::{Limit, StrategyKind};

/// What a [`FallbackStorage`](crate::FallbackStorage) does while its primary is unavailable.
///
/// Flask-Limiter's settings map onto these: `swallow_errors=True` is [`Mode::FailOpen`] (errors
/// logged, requests allowed); `in_memory_fallback_enabled=True` is [`Mode::Fallback`] with the
/// configured limits, and `in_memory_fallback=[...]` is [`Mode::Fallback`] with those limits;
/// neither is [`Mode::FailClosed`] (the error reaches the application, which answers 503).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Mode {
    /// Allow every request (each one logged at `warn`, counted).
    FailOpen,
    /// Reject every request with a [`StorageError`](ratekeeper_storage::StorageError): the
    /// Decision API reports it, the Tide middleware answers 503.
    FailClosed,
    /// Count in memory the limits the batch asks for, and, when `limits` is not empty, those
    /// too as an extra cap (typically tighter than the normal limits) per
    /// [`Charge::fallback_key`](ratekeeper_storage::Charge::fallback_key): per client across
    /// everything when the charges name none, per client and route as the Decision API names
    /// them by default. A fallback is never looser than normal operation: Flask-Limiter's
    /// `in_memory_fallback` replaces the route's limits with these, so a route limited to 5 per
    /// minute got the fallback's 100; here it keeps its 5.
    Fallback {
        /// The fallback limits; empty to keep each batch's own limits.
        limits: Vec<Limit>,
        /// The strategy of the fallback limits.
        strategy: StrategyKind,
    },
}

impl Mode {
    /// [`Mode::Fallback`] with the batch's own limits, counted in memory.
    pub const fn same_limits_in_memory() -> Self {
        Self::Fallback {
            limits: Vec::new(),
            strategy: StrategyKind::FixedWindow,
        }
    }
}
