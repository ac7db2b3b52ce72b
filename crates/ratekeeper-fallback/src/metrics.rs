//! The fallback's metrics, through the [`metrics`](https://docs.rs/metrics) facade when the
//! `metrics` feature is on (nothing is recorded, and nothing is compiled in, without it).
//!
//! | name | kind | labels | what |
//! |---|---|---|---|
//! | [`TRANSITIONS`] | counter | `primary` = `down` or `up` | changes of the primary's health |
//! | [`PRIMARY_UP`] | gauge | | 1 while calls go to the primary, 0 during an outage |
//! | [`DEGRADED_CALLS`] | counter | | calls the outage mode answered |

/// Counter: changes of the primary's health, labelled `primary="down"` or `primary="up"`.
pub const TRANSITIONS: &str = "ratelimit_fallback_transitions_total";
/// Gauge: 1 while calls go to the primary, 0 while the outage mode answers them.
pub const PRIMARY_UP: &str = "ratelimit_fallback_primary_up";
/// Counter: calls answered by the outage mode (fallback, fail-open or fail-closed).
pub const DEGRADED_CALLS: &str = "ratelimit_fallback_degraded_calls_total";

/// Registers the help text of this crate's metrics with the installed recorder (the
/// Prometheus exporter prints it as `# HELP`). Call it once, after installing the recorder.
#[cfg(feature = "metrics")]
pub fn describe() {
    metrics::describe_counter!(
        TRANSITIONS,
        "Changes of the primary store's health (primary=down: an outage began; up: it ended)"
    );
    metrics::describe_gauge!(
        PRIMARY_UP,
        "1 while calls go to the primary store, 0 while the outage mode answers them"
    );
    metrics::describe_counter!(
        DEGRADED_CALLS,
        "Calls answered by the outage mode while the primary store was down"
    );
}

#[inline]
pub(crate) fn transition(primary_up: bool) {
    #[cfg(feature = "metrics")]
    {
        let state = if primary_up { "up" } else { "down" };
        metrics::counter!(TRANSITIONS, "primary" => state).increment(1);
        metrics::gauge!(PRIMARY_UP).set(if primary_up { 1.0 } else { 0.0 });
    }
    #[cfg(not(feature = "metrics"))]
    let _ = primary_up;
}

#[inline]
pub(crate) fn degraded_call() {
    #[cfg(feature = "metrics")]
    metrics::counter!(DEGRADED_CALLS).increment(1);
}
