//! The stores a storage URI names: which backends this build has, and building one.

use std::sync::Arc;

use ratekeeper_core::Clock;
use ratekeeper_memory::MemoryStorage;
use ratekeeper_storage::{Storage, StorageError, StorageUri, UriError};

use crate::error::ConfigError;

/// The storage URI schemes the limiter can build a backend for (with the `redis` and
/// `memcached` features, theirs).
pub const KNOWN_SCHEMES: &[&str] = &[
    "memory",
    #[cfg(feature = "redis")]
    "redis",
    #[cfg(feature = "redis")]
    "rediss",
    #[cfg(feature = "redis")]
    "redis+unix",
    #[cfg(feature = "redis")]
    "redis+cluster",
    #[cfg(feature = "redis")]
    "redis+sentinel",
    #[cfg(feature = "redis")]
    "valkey",
    #[cfg(feature = "redis")]
    "valkeys",
    #[cfg(feature = "redis")]
    "valkey+unix",
    #[cfg(feature = "redis")]
    "valkey+cluster",
    #[cfg(feature = "redis")]
    "valkey+sentinel",
    #[cfg(feature = "memcached")]
    "memcached",
];

/// The feature a known backend's `scheme` needs, when this build lacks it: the error then
/// names the feature to enable rather than listing the schemes the build does know.
fn missing_feature(scheme: &str) -> Option<&'static str> {
    let (family, _) = scheme.split_once('+').unwrap_or((scheme, ""));
    match family {
        // `tls` brings `redis` with it.
        "rediss" | "valkeys" if !cfg!(feature = "tls") => Some("tls"),
        "redis" | "valkey" if !cfg!(feature = "redis") => Some("redis"),
        "memcached" if !cfg!(feature = "memcached") => Some("memcached"),
        _ => None,
    }
}

/// Builds the store named by `uri`. `clock` is the memory store's clock; a Redis store reads
/// the Redis server's clock unless the URI says `time=client`, and then uses `clock`.
pub fn storage_from_uri(
    uri: &str,
    clock: Arc<dyn Clock + Send + Sync>,
) -> Result<Arc<dyn Storage>, ConfigError> {
    let uri_error = |e: UriError| ConfigError::Storage(StorageError::InvalidUri(e));
    let parsed: StorageUri = uri.parse().map_err(uri_error)?;
    if let Some(feature) = missing_feature(&parsed.scheme) {
        return Err(ConfigError::Invalid(format!(
            "storage URI {}://: this build has no {feature} support; enable the `{feature}` feature of the `ratekeeper` crate (or of the ratekeeper-* crate you depend on)",
            parsed.scheme
        )));
    }
    parsed.expect_scheme(KNOWN_SCHEMES).map_err(uri_error)?;
    #[cfg(feature = "memcached")]
    if parsed.scheme == "memcached" {
        // memcached has no clock: the strategies read `clock`.
        let builder = ratekeeper_memcached::MemcachedStorage::builder_from_uri(uri)
            .map_err(ConfigError::Storage)?
            .clock(clock);
        return Ok(Arc::new(builder.build().map_err(ConfigError::Storage)?));
    }
    #[cfg(feature = "redis")]
    if parsed.scheme != "memory" {
        let mut builder =
            ratekeeper_redis::RedisStorage::builder_from_uri(uri).map_err(ConfigError::Storage)?;
        if parsed.option("time") == Some("client") {
            builder = builder.clock(clock);
        }
        return Ok(Arc::new(builder.build().map_err(ConfigError::Storage)?));
    }
    let builder = MemoryStorage::builder_from_uri(uri)
        .map_err(ConfigError::Storage)?
        .clock(clock);
    Ok(Arc::new(builder.build()))
}
