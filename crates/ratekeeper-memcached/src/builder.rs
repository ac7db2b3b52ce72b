//! `memcached://` URIs and the builder they configure.

use core::{fmt, time::Duration};
use std::sync::Arc;

use ratekeeper_core::{Clock, SystemClock};
use ratekeeper_storage::{
    DEFAULT_DENY_CACHE_ENTRIES, DenyCache, StorageError, StorageUri, count_option,
};

use crate::{
    connection::{Address, Server},
    keys,
    store::{Inner, MemcachedStorage},
};

/// The URI scheme this crate serves.
pub const SCHEMES: &[&str] = &["memcached"];
/// The query options a URI may carry.
pub(crate) const OPTIONS: &[&str] = &[
    "prefix",
    "key_prefix",
    "connect_timeout",
    "response_timeout",
    "timeout",
    "ttl_grace",
    "deny_cache",
];
/// The default key prefix.
pub const DEFAULT_PREFIX: &str = "LIMITS";
/// The largest [`MemcachedStorageBuilder::deny_cache`] a URI may ask for.
pub const MAX_DENY_CACHE: usize = 1 << 20;
/// The default port.
pub const DEFAULT_PORT: u16 = 11211;
/// The default time allowed to open a connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// The default time allowed for an answer.
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_millis(500);
/// How long after a counter stops counting it is kept (the client's clock decides what counts,
/// and clients' clocks differ a little).
pub const DEFAULT_TTL_GRACE: Duration = Duration::from_secs(5);

/// Configures a [`MemcachedStorage`].
#[derive(Clone)]
#[must_use = "a builder does nothing until it is used"]
pub struct MemcachedStorageBuilder {
    servers: Vec<Address>,
    prefix: String,
    connect_timeout: Duration,
    response_timeout: Duration,
    ttl_grace: Duration,
    clock: Arc<dyn Clock + Send + Sync>,
    deny_cache: usize,
    faults: Faults,
}

impl fmt::Debug for MemcachedStorageBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemcachedStorageBuilder")
            .field("servers", &self.servers)
            .field("prefix", &self.prefix)
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("ttl_grace", &self.ttl_grace)
            .finish_non_exhaustive()
    }
}

/// What tests can make a store do (nothing unless the `test-hooks` feature's setters are used).
#[derive(Clone)]
pub(crate) struct Faults {
    /// The most conflicting writes a batch retries.
    pub(crate) max_conflicts: usize,
    /// Called before each write.
    pub(crate) before_write: Option<Arc<dyn Fn() + Send + Sync>>,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            max_conflicts: crate::store::MAX_CONFLICTS,
            before_write: None,
        }
    }
}

fn config(detail: impl fmt::Display) -> StorageError {
    StorageError::configuration("memcached", detail.to_string())
}

fn duration(name: &str, text: &str) -> Result<Duration, StorageError> {
    ratekeeper_storage::duration_option(name, text).map_err(config)
}

impl MemcachedStorageBuilder {
    /// A store over `servers` (keys spread over them by rendezvous hashing).
    pub fn new(servers: Vec<Address>) -> Self {
        Self {
            servers,
            prefix: DEFAULT_PREFIX.to_owned(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            response_timeout: DEFAULT_RESPONSE_TIMEOUT,
            ttl_grace: DEFAULT_TTL_GRACE,
            clock: Arc::new(SystemClock),
            deny_cache: DEFAULT_DENY_CACHE_ENTRIES,
            faults: Faults::default(),
        }
    }

    /// Reads a URI as `limits` writes them: `memcached://host:port`, several servers separated
    /// by commas (`memcached://a:11211,b:11211`), or a Unix socket (`memcached:///run/mc.sock`);
    /// options `prefix` (or `key_prefix`), `connect_timeout`, `response_timeout` (or `timeout`)
    /// and `ttl_grace`, in seconds (`0.5`) or with a unit (`500ms`, `2s`).
    ///
    /// ```
    /// use ratekeeper_memcached::MemcachedStorageBuilder;
    ///
    /// let b = MemcachedStorageBuilder::from_uri("memcached://a:11211,b?prefix=app&timeout=0.2")?;
    /// assert!(MemcachedStorageBuilder::from_uri("memcached://a?colour=red").is_err());
    /// # Ok::<(), ratekeeper_storage::StorageError>(())
    /// ```
    pub fn from_uri(original: &str) -> Result<Self, StorageError> {
        let shown = ratekeeper_storage::redact_uri(original);
        let parsed: StorageUri = original
            .parse()
            .map_err(|e| config(ratekeeper_storage::redact_in(&format!("{e}"), original)))?;
        parsed.expect_scheme(SCHEMES).map_err(config)?;
        parsed.expect_options(OPTIONS).map_err(config)?;
        if parsed.username.is_some() || parsed.password.is_some() {
            return Err(config(format!(
                "{shown:?}: memcached's text protocol has no authentication; remove the user name and password"
            )));
        }
        let servers: Vec<Address> = if parsed.hosts.iter().all(|h| h.host.is_empty()) {
            if parsed.path.is_empty() {
                return Err(config(format!("{shown:?} names no server")));
            }
            vec![Address::Unix(format!("/{}", parsed.path))]
        } else {
            if !parsed.path.is_empty() {
                return Err(config(format!(
                    "{shown:?}: a path after the servers means nothing to memcached"
                )));
            }
            parsed
                .hosts
                .iter()
                .map(|h| Address::Tcp(h.host.clone(), h.port.unwrap_or(DEFAULT_PORT)))
                .collect()
        };
        let mut b = Self::new(servers);
        if let Some(p) = parsed.option("prefix").or(parsed.option("key_prefix")) {
            b.prefix = p.to_owned();
        }
        if let Some(t) = parsed.option("connect_timeout") {
            b.connect_timeout = duration("connect_timeout", t)?;
        }
        for name in ["response_timeout", "timeout"] {
            if let Some(t) = parsed.option(name) {
                b.response_timeout = duration(name, t)?;
            }
        }
        if let Some(t) = parsed.option("ttl_grace") {
            b.ttl_grace = duration("ttl_grace", t)?;
        }
        if let Some(n) = parsed.option("deny_cache") {
            b.deny_cache = count_option("deny_cache", n, MAX_DENY_CACHE).map_err(config)?;
        }
        Ok(b)
    }

    /// How many refusals to remember (default [`DEFAULT_DENY_CACHE_ENTRIES`]; 0 for none; URI
    /// option `deny_cache`): a hit of a batch memcached has just refused is refused again
    /// here, with the same statuses counted down and no round trip, until it could first be
    /// admitted (see [`DenyCache`](ratekeeper_storage::DenyCache)). What it cannot see: a
    /// refund or a clear made by another process, which could have admitted the batch
    /// earlier; refunds and clears through this store drop the client's refusals.
    pub fn deny_cache(mut self, entries: usize) -> Self {
        self.deny_cache = entries;
        self
    }

    /// The key prefix (default [`DEFAULT_PREFIX`]); checked by [`build`](Self::build).
    pub fn prefix(mut self, prefix: &str) -> Self {
        self.prefix = prefix.to_owned();
        self
    }

    /// The time allowed to open a connection (default [`DEFAULT_CONNECT_TIMEOUT`]).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The time allowed for each answer (default [`DEFAULT_RESPONSE_TIMEOUT`]).
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// How long a counter is kept after it stops counting (default [`DEFAULT_TTL_GRACE`]):
    /// memcached has no clock the strategies can use, so the client's decides, and clients'
    /// clocks differ a little. Tests on a manual clock that stands still set it long.
    pub fn ttl_grace(mut self, grace: Duration) -> Self {
        self.ttl_grace = grace;
        self
    }

    /// The clock the strategies read (default the system clock).
    pub fn clock(mut self, clock: Arc<dyn Clock + Send + Sync>) -> Self {
        self.clock = clock;
        self
    }

    /// Tests only: the most conflicting writes a batch retries before it fails (default
    /// 10,000), so that contention can be forced.
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub fn max_conflicts(mut self, conflicts: usize) -> Self {
        self.faults.max_conflicts = conflicts;
        self
    }

    /// Tests only: called before each write a batch sends (to break a server, or to change an
    /// item under the batch, between its reads and its writes).
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub fn before_write(mut self, hook: impl Fn() + Send + Sync + 'static) -> Self {
        self.faults.before_write = Some(Arc::new(hook));
        self
    }

    /// The store; fails on a bad prefix or no server. Connects lazily.
    pub fn build(self) -> Result<MemcachedStorage, StorageError> {
        keys::check_prefix(&self.prefix)?;
        if self.servers.is_empty() {
            return Err(config("no server"));
        }
        let names = self.servers.iter().map(ToString::to_string).collect();
        let servers = self
            .servers
            .into_iter()
            .map(|a| Server::new(a, self.connect_timeout, self.response_timeout))
            .collect();
        Ok(MemcachedStorage::from_inner(Inner {
            servers,
            names,
            prefix: self.prefix,
            ttl_grace: self.ttl_grace,
            clock: self.clock,
            deadline: self.connect_timeout + self.response_timeout,
            generations: parking_lot::Mutex::new(std::collections::HashMap::new()),
            deny: (self.deny_cache > 0).then(|| DenyCache::new(self.deny_cache)),
            faults: self.faults,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_read_as_limits_writes_them() {
        let b = MemcachedStorageBuilder::from_uri(
            "memcached://10.0.0.1:11212,cache?prefix=app&response_timeout=250ms&connect_timeout=2",
        )
        .unwrap();
        assert_eq!(
            b.servers,
            [
                Address::Tcp("10.0.0.1".into(), 11212),
                Address::Tcp("cache".into(), DEFAULT_PORT)
            ]
        );
        assert_eq!(b.prefix, "app");
        assert_eq!(b.response_timeout, Duration::from_millis(250));
        assert_eq!(b.connect_timeout, Duration::from_secs(2));
        let unix = MemcachedStorageBuilder::from_uri("memcached:///run/memcached.sock").unwrap();
        assert_eq!(unix.servers, [Address::Unix("/run/memcached.sock".into())]);
        for (bad, says) in [
            ("memcached://", "names no server"),
            ("memcached://a?colour=red", "unknown option"),
            ("memcached://a?timeout=-1", "positive duration"),
            ("memcached://user:s3cret-pw@a", "no authentication"),
            ("redis://a", "memcached"),
        ] {
            let e = MemcachedStorageBuilder::from_uri(bad)
                .unwrap_err()
                .to_string();
            assert!(e.contains(says), "{bad}: {e}");
            assert!(!e.contains("s3cret-pw"), "{e}");
        }
        assert!(
            MemcachedStorageBuilder::from_uri("memcached://a?prefix=has%20space")
                .unwrap()
                .build()
                .is_err()
        );
    }
}
