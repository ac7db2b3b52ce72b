//! Building a [`RedisStorage`]: from a URI (the forms of Python's `limits`) or by hand.

use core::{fmt, time::Duration};
use std::sync::Arc;

use ratekeeper_core::Clock;
use ratekeeper_storage::{DEFAULT_DENY_CACHE_ENTRIES, StorageError};
use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisConnectionInfo};

mod connect;
mod uri;

use crate::{
    error::BACKEND,
    keys,
    store::{RedisStorage, Sharing},
};

/// The URI schemes this crate serves: Redis's, and the same for Valkey (which speaks the Redis
/// protocol and runs the same scripts), as `limits` 5 accepts them.
pub const SCHEMES: &[&str] = &[
    "redis",
    "rediss",
    "redis+unix",
    "redis+cluster",
    "redis+sentinel",
    "valkey",
    "valkeys",
    "valkey+unix",
    "valkey+cluster",
    "valkey+sentinel",
];

/// The Redis scheme a Valkey scheme stands for (a Redis scheme stands for itself).
fn as_redis_scheme(scheme: &str) -> &str {
    match scheme {
        "valkey" => "redis",
        "valkeys" => "rediss",
        "valkey+unix" => "redis+unix",
        "valkey+cluster" => "redis+cluster",
        "valkey+sentinel" => "redis+sentinel",
        other => other,
    }
}

/// The query options a URI may carry.
pub(crate) const OPTIONS: &[&str] = &[
    "prefix",
    "key_prefix",
    "connect_timeout",
    "socket_connect_timeout",
    "response_timeout",
    "socket_timeout",
    "time",
    "db",
    "service_name",
    "ssl_ca_certs",
    "deny_cache",
    "coalesce",
];

/// The default key prefix.
pub const DEFAULT_PREFIX: &str = "ratelimit";
/// The default time allowed to open a connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// The default time allowed for an answer.
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_millis(500);
/// The default of [`RedisStorageBuilder::coalesce`]: off (every batch in a call of its own).
pub const DEFAULT_COALESCE: usize = 0;
/// The largest [`RedisStorageBuilder::coalesce`] a URI may ask for.
pub const MAX_COALESCE: usize = 1024;
/// The largest [`RedisStorageBuilder::deny_cache`] a URI may ask for.
pub const MAX_DENY_CACHE: usize = 1 << 20;
/// The default TTL grace when the time comes from a client clock (see
/// [`RedisStorageBuilder::ttl_grace`]).
pub const DEFAULT_CLIENT_TTL_GRACE: Duration = Duration::from_secs(5);

#[derive(Clone, Debug)]
enum Target {
    Single(ConnectionAddr),
    Cluster(Vec<ConnectionAddr>),
    Sentinel {
        sentinels: Vec<ConnectionAddr>,
        service: String,
    },
}

/// Configures a [`RedisStorage`]. Connections are made on first use, so building never waits
/// and never fails because Redis is down; [`RedisStorage::health`](ratekeeper_storage::Storage::health)
/// tells whether it is up.
#[derive(Clone)]
#[must_use = "a builder does nothing until it is used"]
pub struct RedisStorageBuilder {
    target: Target,
    username: Option<String>,
    password: Option<String>,
    db: i64,
    prefix: String,
    connect_timeout: Duration,
    response_timeout: Duration,
    clock: Option<Arc<dyn Clock + Send + Sync>>,
    ttl_grace: Option<Duration>,
    ca_certificate: Option<Vec<u8>>,
    sharing: Sharing,
}

impl fmt::Debug for RedisStorageBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStorageBuilder")
            .field("target", &self.target)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("db", &self.db)
            .field("prefix", &self.prefix)
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("clock", &self.clock.as_ref().map(|_| "client"))
            .field("ttl_grace", &self.ttl_grace)
            .field("sharing", &self.sharing)
            .field(
                "ca_certificate",
                &self.ca_certificate.as_ref().map(|_| "set"),
            )
            .finish()
    }
}

fn config(detail: impl fmt::Display) -> StorageError {
    StorageError::configuration(BACKEND, detail.to_string())
}

/// Reads `"0.25"` (seconds, as `limits` takes them), `"250ms"` or `"2s"`.
fn duration(name: &str, text: &str) -> Result<Duration, StorageError> {
    ratekeeper_storage::duration_option(name, text).map_err(config)
}

impl RedisStorageBuilder {
    fn new(target: Target) -> Self {
        Self {
            target,
            username: None,
            password: None,
            db: 0,
            prefix: DEFAULT_PREFIX.to_owned(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            response_timeout: DEFAULT_RESPONSE_TIMEOUT,
            clock: None,
            ttl_grace: None,
            ca_certificate: None,
            sharing: Sharing {
                deny_cache: DEFAULT_DENY_CACHE_ENTRIES,
                coalesce: DEFAULT_COALESCE,
            },
        }
    }

    /// One node over TCP.
    pub fn single(host: impl Into<String>, port: u16) -> Self {
        Self::new(Target::Single(ConnectionAddr::Tcp(host.into(), port)))
    }

    /// A cluster, discovered from any of `nodes` (`(host, port)`).
    pub fn cluster(nodes: impl IntoIterator<Item = (String, u16)>) -> Self {
        Self::new(Target::Cluster(
            nodes
                .into_iter()
                .map(|(h, p)| ConnectionAddr::Tcp(h, p))
                .collect(),
        ))
    }

    /// The master of `service`, as `sentinels` (`(host, port)`) name it.
    pub fn sentinel(
        sentinels: impl IntoIterator<Item = (String, u16)>,
        service: impl Into<String>,
    ) -> Self {
        Self::new(Target::Sentinel {
            sentinels: sentinels
                .into_iter()
                .map(|(h, p)| ConnectionAddr::Tcp(h, p))
                .collect(),
            service: service.into(),
        })
    }

    /// How many refusals to remember (default [`DEFAULT_DENY_CACHE_ENTRIES`]; 0 for none;
    /// URI option `deny_cache`): a hit of a batch Redis has just refused is refused again
    /// here, with Redis's statuses counted down and no call, until Redis could first admit it
    /// (see [`DenyCache`](ratekeeper_storage::DenyCache)). A flood of refused requests then costs Redis one call per client
    /// and retry instant. What it cannot see: a refund or a clear made by another process,
    /// which could have admitted the batch earlier; refunds and clears through this store
    /// drop the client's refusals.
    pub fn deny_cache(mut self, entries: usize) -> Self {
        self.sharing.deny_cache = entries;
        self
    }

    /// At most how many concurrent batches share one call (default [`DEFAULT_COALESCE`], off:
    /// every batch in a call of its own; URI option `coalesce`; 64 is a good cap). A batch that
    /// finds no call of this store on the wire to its node (its slot, on a cluster) goes out
    /// at once; one that finds a call there waits for it to return, then goes out with every
    /// batch that arrived meanwhile, in one call that runs them one after another, exactly as
    /// separate calls in that order would, and answers each (one batch's error is its own).
    /// The worst added wait of a batch is the round trip of the call before its own.
    ///
    /// It saves Redis the cost of each call (about a sixth of its CPU per decision for the
    /// seed tour's requests), but one call at a time per node caps one process's decisions
    /// per second, and splitting the shared answers costs this process CPU: with the server
    /// not the bottleneck, 64 concurrent decisions of one process went from about 70,000 to
    /// 45,000 per second (BENCHMARKS.md). Turn it on when Redis's CPU is what runs out.
    pub fn coalesce(mut self, max_batches: usize) -> Self {
        self.sharing.coalesce = max_batches;
        self
    }

    /// The key prefix (default [`DEFAULT_PREFIX`]); checked by [`build`](Self::build).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The time allowed to open a connection (default [`DEFAULT_CONNECT_TIMEOUT`]).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The time allowed for an answer (default [`DEFAULT_RESPONSE_TIMEOUT`]).
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// The credentials, for servers with ACLs or `requirepass` (sentinels get the same).
    pub fn credentials(mut self, username: Option<String>, password: impl Into<String>) -> Self {
        self.username = username;
        self.password = Some(password.into());
        self
    }

    /// The database number (single node and sentinel; a cluster has only 0).
    pub fn db(mut self, db: i64) -> Self {
        self.db = db;
        self
    }

    /// Computes with this clock's time, sent with every call, instead of the Redis server's
    /// `TIME`. Tests use a manual clock; production is better served by the server clock,
    /// which every app server agrees on whatever their own clocks say.
    pub fn clock(mut self, clock: Arc<dyn Clock + Send + Sync>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Extra time every key lives past the instant its state becomes idle (an idle state and a
    /// missing key mean the same). Default: none with the server's clock, which also times
    /// the keys out; [`DEFAULT_CLIENT_TTL_GRACE`] with a client clock, whose skew against
    /// the server would otherwise let a key vanish while still counting. Tests on a manual clock
    /// that stands still while real time passes set it long.
    pub fn ttl_grace(mut self, grace: Duration) -> Self {
        self.ttl_grace = Some(grace);
        self
    }

    /// Trusts these CA certificates (PEM) for `rediss://` instead of the system's roots.
    pub fn ca_certificate(mut self, pem: Vec<u8>) -> Self {
        self.ca_certificate = Some(pem);
        self
    }

    fn redis_info(&self) -> RedisConnectionInfo {
        let mut info = RedisConnectionInfo::default().set_db(self.db);
        if let Some(u) = &self.username {
            info = info.set_username(u);
        }
        if let Some(p) = &self.password {
            info = info.set_password(p);
        }
        info
    }

    fn connection_info(&self, addr: &ConnectionAddr) -> Result<ConnectionInfo, StorageError> {
        Ok(addr
            .clone()
            .into_connection_info()
            .map_err(|e| config(e.to_string()))?
            .set_redis_settings(self.redis_info()))
    }

    /// Checks the settings and makes the store. No connection is opened yet.
    pub fn build(self) -> Result<RedisStorage, StorageError> {
        keys::check_prefix(&self.prefix)?;
        let connection = match &self.target {
            Target::Single(addr) => self.connect_single(addr)?,
            Target::Cluster(nodes) => self.connect_cluster(nodes)?,
            Target::Sentinel { sentinels, service } => self.connect_sentinel(sentinels, service)?,
        };
        let ttl_grace = self.ttl_grace.unwrap_or(if self.clock.is_some() {
            DEFAULT_CLIENT_TTL_GRACE
        } else {
            Duration::ZERO
        });
        tracing::debug!(target: "ratekeeper::redis", backend = BACKEND, prefix = %self.prefix, "redis storage configured");
        Ok(RedisStorage::new(
            connection,
            self.prefix,
            self.clock,
            self.connect_timeout,
            (self.response_timeout, ttl_grace),
            self.sharing,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valkey_uris_configure_what_their_redis_twins_do() {
        for (valkey, redis) in [
            (
                "valkey://user:pw@cache.internal:6390/2?prefix=app&socket_timeout=0.2",
                "redis://user:pw@cache.internal:6390/2?prefix=app&socket_timeout=0.2",
            ),
            (
                "valkey+unix:///run/valkey.sock?db=1",
                "redis+unix:///run/valkey.sock?db=1",
            ),
            (
                "valkey+cluster://a:7000,b:7001?connect_timeout=1",
                "redis+cluster://a:7000,b:7001?connect_timeout=1",
            ),
            (
                "valkey+sentinel://s1:26379,s2:26379/primary?time=client",
                "redis+sentinel://s1:26379,s2:26379/primary?time=client",
            ),
        ] {
            let (v, r) = (
                RedisStorageBuilder::from_uri(valkey).unwrap(),
                RedisStorageBuilder::from_uri(redis).unwrap(),
            );
            assert_eq!(format!("{v:?}"), format!("{r:?}"), "{valkey}");
            assert_eq!(v.password, r.password);
        }
        if cfg!(feature = "tls") {
            let v = RedisStorageBuilder::from_uri("valkeys://cache:6380").unwrap();
            let r = RedisStorageBuilder::from_uri("rediss://cache:6380").unwrap();
            assert_eq!(format!("{v:?}"), format!("{r:?}"));
        } else {
            let e = RedisStorageBuilder::from_uri("valkeys://cache:6380").unwrap_err();
            assert!(e.to_string().contains("tls"), "{e}");
        }
        let e = RedisStorageBuilder::from_uri("valkey+memcached://x").unwrap_err();
        assert!(e.to_string().contains("valkey+cluster"), "{e}");
    }
}
