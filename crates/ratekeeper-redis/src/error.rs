//! From the redis crate's errors to [`StorageError`].

use core::time::Duration;

use ratekeeper_storage::StorageError;
use redis::RedisError;

/// The backend name in [`StorageError`]s.
pub(crate) const BACKEND: &str = "redis";

/// Server error codes that mean "this node cannot serve you now" rather than "bad request":
/// a demoted master, a loading or partitioned node, a cluster in flux.
const UNAVAILABLE_CODES: &[&str] = &[
    "READONLY",
    "LOADING",
    "MASTERDOWN",
    "CLUSTERDOWN",
    "TRYAGAIN",
    "BUSY",
];

/// Server error codes that mean "up, but refusing this now": out of memory under `maxmemory`
/// with `noeviction`, or writes stopped because the last save failed.
const REFUSED_CODES: &[&str] = &["OOM", "MISCONF"];

/// Maps a redis error, kept as the source; `timeout` is the response timeout that applied.
pub(crate) fn from_redis(e: &RedisError, timeout: Duration) -> StorageError {
    let error = if e.code().is_some_and(|c| REFUSED_CODES.contains(&c)) {
        StorageError::refused(BACKEND, e.to_string())
    } else if e.is_timeout() {
        return StorageError::timeout(BACKEND, timeout);
    } else if e.is_io_error()
        || e.is_connection_refusal()
        || e.is_connection_dropped()
        || e.is_cluster_error()
        || e.code().is_some_and(|c| UNAVAILABLE_CODES.contains(&c))
    {
        StorageError::unreachable(BACKEND, e.to_string())
    } else {
        StorageError::protocol(BACKEND, e.to_string())
    };
    error.with_source(e.clone())
}

/// Whether a connection that gave `e` should be dropped and made anew (for sentinel: asking
/// the sentinels again which node is the master).
pub(crate) fn needs_reconnect(e: &RedisError) -> bool {
    e.is_timeout()
        || e.is_io_error()
        || e.is_connection_refusal()
        || e.is_connection_dropped()
        || e.is_unrecoverable_error()
        || e.code().is_some_and(|c| UNAVAILABLE_CODES.contains(&c))
}

/// Whether the server lacks the function called (an empty or restarted server, a failover to
/// a node that never had it): the library must be loaded.
pub(crate) fn function_missing(e: &RedisError) -> bool {
    e.to_string().contains("Function not found")
}

/// Whether the server will not run functions for this client: it does not know `FCALL` or
/// `FUNCTION` (before Redis 7) or this user may not call them (`NOPERM`, an ACL).
pub(crate) fn functions_refused(e: &RedisError) -> bool {
    e.code() == Some("NOPERM")
        || e.to_string()
            .to_ascii_lowercase()
            .contains("unknown command")
}
