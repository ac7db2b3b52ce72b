//! Test helpers: stores on a manual clock against a real server.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use ratekeeper_core::ManualClock;
use ratekeeper_redis::{RedisStorage, RedisStorageBuilder};

/// The instant the tests start at (the conformance suites' own).
pub const T0: ratekeeper_core::Timestamp = ratekeeper_core::Timestamp::from_secs(1_700_000_040);

/// A store on `url` with a manual clock at `T0` and its own prefix.
pub fn manual_store(url: &str, prefix: &str) -> (RedisStorage, Arc<ManualClock>) {
    manual_store_with(url, prefix, |b| b)
}

/// [`manual_store`], its builder adjusted by `tune` first.
pub fn manual_store_with(
    url: &str,
    prefix: &str,
    tune: impl FnOnce(RedisStorageBuilder) -> RedisStorageBuilder,
) -> (RedisStorage, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(T0));
    let builder = RedisStorage::builder_from_uri(url)
        .unwrap()
        .prefix(prefix)
        .clock(clock.clone())
        // The manual clock stands still while real time passes: keys must not time out.
        .ttl_grace(core::time::Duration::from_secs(3600));
    (tune(builder).build().unwrap(), clock)
}

/// A server without functions, as before Redis 7 (`FUNCTION` and `FCALL` renamed away): the
/// store must run its batch as a script there.
pub fn server_without_functions() -> ratekeeper_test_support::redis::RedisServer {
    ratekeeper_test_support::redis::RedisServer::start_with(&[
        "--rename-command",
        "FCALL",
        "",
        "--rename-command",
        "FUNCTION",
        "",
    ])
}
