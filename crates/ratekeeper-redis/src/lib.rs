//! Redis storage for the `ratekeeper-*` crates: the counters many workers and machines share.
//!
//! [`RedisStorage`] implements the async [`Storage`](ratekeeper_storage::Storage) trait with one
//! Lua program that evaluates every charge of a batch (every limit of a request, any mix of
//! the four strategies, and a rejected request's breach count) atomically and in one round
//! trip, with exactly the semantics of the `ratekeeper-core` state machines (the test suite
//! compares the two with explicit times). On Redis 7 and later it runs as a function
//! (`FUNCTION LOAD` once per server, `FCALL` per call, so its definitions are not rebuilt on
//! every call); on older servers as the same code in a script, with `EVALSHA`.
//!
//! - **Time**: by default the script reads the Redis server's clock (`TIME`), so app servers
//!   with skewed clocks agree; [`RedisStorageBuilder::clock`] sends this process's time instead.
//! - **Keys**: `<prefix>:{<identity>}:<scopes>:<strategy><format>:<amount>/<window>`, e.g.
//!   `ratelimit:{ip:203.0.113.7}::f2:100/60`. The client's identity is the cluster hash tag,
//!   so one client's counters share a slot; client text is escaped or hashed by
//!   [`Key`](ratekeeper_storage::Key), so it can never move the tag, and names stay bounded.
//!   Every key carries a TTL that ends when its state is idle.
//! - **Values** are small binary records (little-endian doubles, whole numbers below 2^53),
//!   which the script reads and writes far more cheaply than decimal text; `<format>` in the
//!   key's name is their version, so that versions of this crate with different formats never
//!   read each other's values.
//! - **Deployments**: one node (`redis://`, `rediss://` with the `tls` feature,
//!   `redis+unix://`), a cluster (`redis+cluster://`) or a master behind sentinels
//!   (`redis+sentinel://`), on multiplexed connections that reconnect by themselves; Valkey
//!   under the same schemes spelled `valkey` (`valkey://`, `valkeys://`, `valkey+unix://`,
//!   `valkey+cluster://`, `valkey+sentinel://`), which configure exactly what their Redis
//!   twins do; the
//!   function is loaded on every master the first time and again whenever a server lacks it
//!   (a restart, a failover, a new node, `FUNCTION FLUSH`), the script again after `NOSCRIPT`.
//!   The function's name carries a digest of its source: two versions of this crate that
//!   share a server each call their own.
//! - **Limits**: no call waits longer than [`RedisStorage::deadline`] (connect plus response
//!   timeout); failures are [`StorageError`](ratekeeper_storage::StorageError)s, never panics.
//! - **Memory**: bound it with `maxmemory` and `maxmemory-policy volatile-ttl` (or
//!   `volatile-lru`): every key this crate writes has a TTL, so a full Redis evicts counters
//!   nearest their end instead of refusing, and a flood of new clients costs no errors. Under
//!   `noeviction` a full Redis refuses writes (`OOM`), which this crate reports as
//!   [`StorageError::Refused`](ratekeeper_storage::StorageError::Refused): not an outage a ping
//!   would see. The fallback store treats it as one all the same (probing with a write), and
//!   keeps rejecting what Redis, which still answers reads, would reject: tests run on a
//!   `no-writes` function that Redis serves when full.
//!
//! Two things keep Redis off requests:
//!
//! - **Concurrent decisions share one call** ([`RedisStorageBuilder::coalesce`], URI option
//!   `coalesce=64` for up to 64 batches per call; off by default, see the builder for when it
//!   pays). A batch that finds no call of this store on the wire to its node (its slot, on a
//!   cluster) goes out at once: no timer, no added latency at low load. One that finds a
//!   call there waits for it,
//!   then goes out with every batch that arrived meanwhile as one `FCALL` that runs them one
//!   after another, exactly as separate calls in that order would, and answers each (one
//!   batch's error, a counter of the wrong type say, is its own). The cost: a queued batch
//!   waits up to one round trip of the call before its own (bounded by the response
//!   timeout, within [`RedisStorage::deadline`]). Tests (no writes) always go alone.
//! - **A refused batch is refused again here** ([`RedisStorageBuilder::deny_cache`], URI
//!   option `deny_cache`, on by default with 4096 entries, `0` for off): until the instant Redis said it
//!   could first be admitted, a hit of the same batch gets Redis's statuses counted down and
//!   no call, so a flood of refused requests costs Redis one call per client and retry
//!   instant. Exact: only other requests' charges move a refused counter, and they can only
//!   push that instant later, so the cache never admits; a refusal that would still count a
//!   breach toward a meta limit is not cached, so meta limits trip after the same refusals.
//!   On the server's clock, a refusal is kept a thousandth (and a millisecond) shorter than
//!   it stands. What it cannot see: a refund or a clear made by another process (those made
//!   through this store drop the client's refusals), and a Redis that went down (a refusal
//!   stands through an outage). Memory: at most the set number of entries, each about 600
//!   bytes for a batch of three charges plus its keys' text (about 3 MB at the default).
//!
//! A batch whose charges belong to different identities (limits keyed by different key
//! functions) spans cluster slots, which no single call may touch. On a cluster it is then
//! run as one call per identity, in batch order: a hit reserves identity by identity and,
//! when one rejects, refunds those already charged. That never admits more than the limits
//! allow; the price is one round trip per identity and a moment in which a reservation that
//! ends up refunded is held (a concurrent request may be rejected by it). On a single node or
//! behind sentinels every batch is one call, whatever its keys.
//!
//! # Example
//!
//! ```no_run
//! use ratekeeper_core::StrategyKind;
//! use ratekeeper_redis::RedisStorage;
//! use ratekeeper_storage::{Charge, Key, Storage};
//!
//! # smol::block_on(async {
//! let store = RedisStorage::from_uri("redis://127.0.0.1:6379?prefix=myapp&socket_timeout=0.2")?;
//! let key = Key::new("ip", "203.0.113.7");
//! let batch = [
//!     Charge::new(key.clone(), "100 per minute".parse()?, StrategyKind::SlidingWindowCounter, 1),
//!     Charge::new(key, "5 per second".parse()?, StrategyKind::Gcra, 1),
//! ];
//! let verdict = store.hit(&batch).await?;
//! println!("allowed: {}, remaining: {}", verdict.allowed, verdict.statuses[0].remaining);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! # Feature flags
//!
//! - `tls`: `rediss://` through rustls.
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]

mod builder;
mod clear;
mod coalesce;
mod connection;
mod counts;
mod error;
mod keys;
mod pipe;
mod script;
mod store;

pub use builder::{
    DEFAULT_CLIENT_TTL_GRACE, DEFAULT_COALESCE, DEFAULT_CONNECT_TIMEOUT, DEFAULT_PREFIX,
    DEFAULT_RESPONSE_TIMEOUT, MAX_COALESCE, MAX_DENY_CACHE, RedisStorageBuilder, SCHEMES,
};
pub use counts::{ClientCounts, client_counts};
pub use keys::MAX_PREFIX;
#[doc(hidden)]
pub use script::BATCH_LUA;
pub use store::{RedisStorage, SharedCalls};
