//! What the fallback store says of the primary's health: each change, and the counts so far.

use core::time::Duration;

/// A change of the primary's health, as logged (`tracing`, target `ratekeeper::fallback`) and
/// passed to [`FallbackStorageBuilder::on_transition`](crate::FallbackStorageBuilder::on_transition).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Transition {
    /// The primary's state after the change.
    pub primary_up: bool,
    /// For a change to down: the error that revealed it.
    pub error: Option<String>,
    /// For a change to up: how long the primary was down.
    pub outage: Duration,
    /// For a change to up: how many probes failed during the outage.
    pub failed_probes: u64,
    /// For a change to up: how many calls the outage mode answered.
    pub degraded_calls: u64,
    /// How many outages began since the store was built (this one included).
    pub outages: u64,
}

/// Counts since the store was built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FallbackStats {
    /// Whether calls go to the primary now.
    pub primary_up: bool,
    /// Outages so far.
    pub outages: u64,
    /// Calls answered by the outage mode so far.
    pub degraded_calls: u64,
    /// Calls the primary refused (out of memory, say) so far: each began an outage.
    pub refusals: u64,
}
