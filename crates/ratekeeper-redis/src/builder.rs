//! Building a [`RedisStorage`]: from a URI (the forms of Python's `limits`) or by hand.

use core::{fmt, time::Duration};
use std::sync::Arc;

use ratekeeper_core::Clock;
use ratekeeper_storage::{DEFAULT_DENY_CACHE_ENTRIES, StorageError, StorageUri, count_option};
use redis::{
    AsyncConnectionConfig, Client, ConnectionAddr, ConnectionInfo, IntoConnectionInfo,
    RedisConnectionInfo,
    aio::{ConnectionManager, ConnectionManagerConfig},
    cluster::ClusterClientBuilder,
    sentinel::{SentinelClientBuilder, SentinelServerType},
};

use crate::{
    connection::{Connection, Reconnecting},
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
pub const OPTIONS: &[&str] = &[
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

    /// Reads a URI: `redis://[[user]:password@]host[:port][/db]`, `rediss://...` (TLS, with the
    /// `tls` feature), `redis+unix:///path/to.sock[?db=N]`,
    /// `redis+cluster://[[user]:password@]host:port,host:port`,
    /// `redis+sentinel://[[user]:password@]host:port,host:port/service`; options in the query:
    /// `prefix` (or `key_prefix`), `connect_timeout` (or `socket_connect_timeout`),
    /// `response_timeout` (or `socket_timeout`), durations in seconds (`0.5`) or with a unit
    /// (`500ms`); `time=server` (the default: the Redis server's clock) or `time=client`
    /// (this process's clock, see [`clock`](Self::clock)); `db`; `service_name`;
    /// `ssl_ca_certs` (a PEM file of the CAs to trust for `rediss://` instead of the system's).
    /// Unknown options are errors. No error quotes the URI's credentials.
    pub fn from_uri(uri: &str) -> Result<Self, StorageError> {
        Self::read_uri(uri).map_err(|e| match e {
            StorageError::Configuration {
                backend, detail, ..
            } => StorageError::configuration(backend, ratekeeper_storage::redact_in(&detail, uri)),
            other => other,
        })
    }

    fn read_uri(original: &str) -> Result<Self, StorageError> {
        let parsed: StorageUri = original.parse().map_err(config)?;
        // Messages below quote the URI as `uri`: without its credentials.
        let shown = ratekeeper_storage::redact_uri(original);
        let uri = shown.as_str();
        parsed.expect_scheme(SCHEMES).map_err(config)?;
        if let Some((name, _)) = parsed
            .query
            .iter()
            .find(|(k, _)| !OPTIONS.contains(&k.as_str()))
        {
            return Err(config(format!(
                "unknown option {name:?} in the URI; known options: {}",
                OPTIONS.join(", ")
            )));
        }
        let tcp = |hp: &ratekeeper_storage::HostPort, tls: bool| {
            let host = if hp.host.is_empty() {
                "localhost".to_owned()
            } else {
                hp.host.clone()
            };
            let port = hp.port.unwrap_or(if tls { 6380 } else { 6379 });
            if tls {
                ConnectionAddr::TcpTls {
                    host,
                    port,
                    insecure: false,
                    tls_params: None,
                }
            } else {
                ConnectionAddr::Tcp(host, port)
            }
        };
        let all_hosts = |tls: bool| -> Result<Vec<ConnectionAddr>, StorageError> {
            if parsed.hosts.is_empty() {
                return Err(config(format!("{uri:?} names no host")));
            }
            Ok(parsed.hosts.iter().map(|h| tcp(h, tls)).collect())
        };
        let one_host = |tls: bool| -> Result<ConnectionAddr, StorageError> {
            match all_hosts(tls)?.as_slice() {
                [one] => Ok(one.clone()),
                _ => Err(config(format!(
                    "{uri:?} names several hosts; use redis+cluster:// or redis+sentinel://"
                ))),
            }
        };
        let mut db_text = parsed.option("db").map(str::to_owned);
        let scheme = as_redis_scheme(&parsed.scheme);
        let target = match scheme {
            "redis" | "rediss" => {
                let tls = scheme == "rediss";
                if tls && !cfg!(feature = "tls") {
                    return Err(config(
                        "rediss:// needs TLS support: enable the `tls` feature of the `ratekeeper` crate (of ratekeeper-redis if you depend on it directly)",
                    ));
                }
                if !parsed.path.is_empty() {
                    db_text = Some(parsed.path.clone());
                }
                Target::Single(one_host(tls)?)
            }
            "redis+unix" => {
                if parsed.path.is_empty() {
                    return Err(config(format!("{uri:?} names no socket path")));
                }
                Target::Single(ConnectionAddr::Unix(format!("/{}", parsed.path).into()))
            }
            "redis+cluster" => Target::Cluster(all_hosts(false)?),
            _ => {
                let service = parsed
                    .option("service_name")
                    .map(str::to_owned)
                    .or_else(|| (!parsed.path.is_empty()).then(|| parsed.path.clone()))
                    .ok_or_else(|| {
                        config(format!(
                            "{uri:?} names no service: redis+sentinel://host:port/service"
                        ))
                    })?;
                Target::Sentinel {
                    sentinels: all_hosts(false)?,
                    service,
                }
            }
        };
        let mut b = Self::new(target);
        b.username = parsed.username.clone().filter(|u| !u.is_empty());
        b.password = parsed.password.clone();
        if let Some(db) = db_text {
            b.db = db
                .parse::<i64>()
                .ok()
                .filter(|d| *d >= 0)
                .ok_or_else(|| config(format!("database {db:?} is not a number")))?;
        }
        if let Some(p) = parsed.option("prefix").or(parsed.option("key_prefix")) {
            b = b.prefix(p);
        }
        for name in ["connect_timeout", "socket_connect_timeout"] {
            if let Some(t) = parsed.option(name) {
                b.connect_timeout = duration(name, t)?;
            }
        }
        for name in ["response_timeout", "socket_timeout"] {
            if let Some(t) = parsed.option(name) {
                b.response_timeout = duration(name, t)?;
            }
        }
        if let Some(path) = parsed.option("ssl_ca_certs") {
            if scheme != "rediss" {
                return Err(config(
                    "option ssl_ca_certs: only for rediss:// (or valkeys://) URIs",
                ));
            }
            let pem = std::fs::read(path)
                .map_err(|e| config(format!("option ssl_ca_certs: cannot read {path:?}: {e}")))?;
            b.ca_certificate = Some(pem);
        }
        if let Some(n) = parsed.option("deny_cache") {
            b = b.deny_cache(count_option("deny_cache", n, MAX_DENY_CACHE).map_err(config)?);
        }
        if let Some(n) = parsed.option("coalesce") {
            b = b.coalesce(count_option("coalesce", n, MAX_COALESCE).map_err(config)?);
        }
        match parsed.option("time") {
            None | Some("server") => {}
            Some("client") => b.clock = Some(Arc::new(ratekeeper_core::SystemClock)),
            Some(other) => {
                return Err(config(format!(
                    "option time={other:?}: expected server or client"
                )));
            }
        }
        Ok(b)
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
        let bad = |e: redis::RedisError| config(e.to_string());
        let connection = match &self.target {
            Target::Single(addr) => {
                let info = self.connection_info(addr)?;
                let client = match &self.ca_certificate {
                    None => Client::open(info).map_err(bad)?,
                    #[cfg(feature = "tls")]
                    Some(pem) => Client::build_with_tls(
                        info,
                        redis::TlsCertificates {
                            client_tls: None,
                            root_cert: Some(pem.clone()),
                        },
                    )
                    .map_err(bad)?,
                    #[cfg(not(feature = "tls"))]
                    Some(_) => {
                        return Err(config(
                            "a CA certificate needs TLS support: enable the `tls` feature of the `ratekeeper` crate (of ratekeeper-redis if you depend on it directly)",
                        ));
                    }
                };
                let manager = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.connect_timeout))
                    .set_response_timeout(Some(self.response_timeout))
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_secs(2));
                Connection::Single(
                    ConnectionManager::new_lazy_with_config(client, manager).map_err(bad)?,
                )
            }
            Target::Cluster(nodes) => {
                if self.db != 0 {
                    return Err(config("a cluster has only database 0"));
                }
                let infos = nodes
                    .iter()
                    .map(|a| self.connection_info(a))
                    .collect::<Result<Vec<_>, _>>()?;
                let mut builder = ClusterClientBuilder::new(infos)
                    .connection_timeout(self.connect_timeout)
                    .response_timeout(self.response_timeout)
                    .retries(2);
                if let Some(p) = &self.password {
                    builder = builder.password(p);
                }
                if let Some(u) = &self.username {
                    builder = builder.username(u);
                }
                let client = builder.build().map_err(bad)?;
                Connection::Cluster(Reconnecting::new(move || {
                    let client = client.clone();
                    Box::pin(async move { client.get_async_connection().await })
                }))
            }
            Target::Sentinel { sentinels, service } => {
                let mut builder = SentinelClientBuilder::new(
                    sentinels.clone(),
                    service,
                    SentinelServerType::Master,
                )
                .map_err(bad)?
                .set_client_to_redis_db(self.db);
                if let Some(p) = &self.password {
                    builder = builder
                        .set_client_to_redis_password(p)
                        .set_client_to_sentinel_password(p);
                }
                if let Some(u) = &self.username {
                    builder = builder
                        .set_client_to_redis_username(u)
                        .set_client_to_sentinel_username(u);
                }
                let client = Arc::new(futures::lock::Mutex::new(builder.build().map_err(bad)?));
                let cfg = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(self.connect_timeout))
                    .set_response_timeout(Some(self.response_timeout));
                Connection::Sentinel(Reconnecting::new(move || {
                    let (client, cfg) = (Arc::clone(&client), cfg.clone());
                    Box::pin(async move {
                        client
                            .lock()
                            .await
                            .get_async_connection_with_config(&cfg)
                            .await
                    })
                }))
            }
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
