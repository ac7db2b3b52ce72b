//! A [`RedisStorageBuilder`] from a URI, in the forms of Python's `limits`.

use std::sync::Arc;

use ratekeeper_storage::{HostPort, StorageError, StorageUri, count_option};
use redis::ConnectionAddr;

use super::{
    MAX_COALESCE, MAX_DENY_CACHE, OPTIONS, RedisStorageBuilder, SCHEMES, Target, as_redis_scheme,
    config, duration,
};

impl RedisStorageBuilder {
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
        parsed.expect_options(OPTIONS).map_err(config)?;
        let scheme = as_redis_scheme(&parsed.scheme);
        let (target, db_text) = target(&parsed, scheme, uri)?;
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
        b.options(&parsed, scheme)
    }

    /// The URI's query options applied.
    fn options(mut self, parsed: &StorageUri, scheme: &str) -> Result<Self, StorageError> {
        if let Some(p) = parsed.option("prefix").or(parsed.option("key_prefix")) {
            self = self.prefix(p);
        }
        for name in ["connect_timeout", "socket_connect_timeout"] {
            if let Some(t) = parsed.option(name) {
                self.connect_timeout = duration(name, t)?;
            }
        }
        for name in ["response_timeout", "socket_timeout"] {
            if let Some(t) = parsed.option(name) {
                self.response_timeout = duration(name, t)?;
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
            self.ca_certificate = Some(pem);
        }
        if let Some(n) = parsed.option("deny_cache") {
            self = self.deny_cache(count_option("deny_cache", n, MAX_DENY_CACHE).map_err(config)?);
        }
        if let Some(n) = parsed.option("coalesce") {
            self = self.coalesce(count_option("coalesce", n, MAX_COALESCE).map_err(config)?);
        }
        match parsed.option("time") {
            None | Some("server") => {}
            Some("client") => self.clock = Some(Arc::new(ratekeeper_core::SystemClock)),
            Some(other) => {
                return Err(config(format!(
                    "option time={other:?}: expected server or client"
                )));
            }
        }
        Ok(self)
    }
}

/// What the URI connects to (`scheme` is Redis's name for it), and the database its path
/// names, if any (`uri` is the URI as messages quote it).
fn target(
    parsed: &StorageUri,
    scheme: &str,
    uri: &str,
) -> Result<(Target, Option<String>), StorageError> {
    let mut db_text = parsed.option("db").map(str::to_owned);
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
            match all_hosts(parsed, tls, uri)?.as_slice() {
                [one] => Target::Single(one.clone()),
                _ => {
                    return Err(config(format!(
                        "{uri:?} names several hosts; use redis+cluster:// or redis+sentinel://"
                    )));
                }
            }
        }
        "redis+unix" => {
            if parsed.path.is_empty() {
                return Err(config(format!("{uri:?} names no socket path")));
            }
            Target::Single(ConnectionAddr::Unix(format!("/{}", parsed.path).into()))
        }
        "redis+cluster" => Target::Cluster(all_hosts(parsed, false, uri)?),
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
                sentinels: all_hosts(parsed, false, uri)?,
                service,
            }
        }
    };
    Ok((target, db_text))
}

/// Every host the URI names, as TCP (or TLS) addresses; an error when it names none.
fn all_hosts(
    parsed: &StorageUri,
    tls: bool,
    uri: &str,
) -> Result<Vec<ConnectionAddr>, StorageError> {
    if parsed.hosts.is_empty() {
        return Err(config(format!("{uri:?} names no host")));
    }
    Ok(parsed.hosts.iter().map(|h| tcp(h, tls)).collect())
}

/// The address of `hp` (`localhost` and Redis's port, 6380 with TLS, when left out).
fn tcp(hp: &HostPort, tls: bool) -> ConnectionAddr {
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
}
