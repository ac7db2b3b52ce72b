//! Storage URIs for the `ratekeeper-*` crates: [`Stores`] opens the store a URI names, with the
//! backends this build has (`memory://` always; Redis and Valkey with the `redis` feature,
//! `rediss://` with `tls`, `memcached://` with `memcached`).
//!
//! A limiter given a storage URI asks its [`OpenStorage`] for the store, so that the limiter
//! and the framework adapters name no backend; this crate is the one that does.
//!
//! ```
//! use std::sync::Arc;
//! use ratekeeper_core::SystemClock;
//! use ratekeeper_stores::Stores;
//!
//! let store = Stores::new().open_uri("memory://?max_keys=1000", Arc::new(SystemClock))?;
//! # let _ = store;
//! assert!(ratekeeper_stores::KNOWN_SCHEMES.contains(&"memory"));
//! // A scheme no backend serves is refused, with the ones that are known.
//! let unknown = Stores::new().open_uri("mongodb://h:1", Arc::new(SystemClock)).unwrap_err();
//! assert!(unknown.to_string().contains("memory"), "{unknown}");
//! # Ok::<(), ratekeeper_storage::StorageError>(())
//! ```
//!
//! # Feature flags
//!
//! `redis` (default), `tls` (`rediss://` through rustls), `tokio` (the Redis client driven by
//! tokio when opened from it) and `memcached`.
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]

use std::sync::Arc;

use ratekeeper_core::Clock;
use ratekeeper_memory::MemoryStorage;
/// What this process's Redis connections did (writes, replies per read, coalesced calls).
#[cfg(feature = "redis")]
pub use ratekeeper_redis::{ClientCounts, client_counts};
pub use ratekeeper_storage::OpenStorage;
use ratekeeper_storage::{Storage, StorageError, StorageUri, UriError};

/// The storage URI schemes this build opens.
pub const KNOWN_SCHEMES: &[&str] = &[
    "memory",
    #[cfg(feature = "redis")]
    "redis",
    #[cfg(feature = "tls")]
    "rediss",
    #[cfg(feature = "redis")]
    "redis+unix",
    #[cfg(feature = "redis")]
    "redis+cluster",
    #[cfg(feature = "redis")]
    "redis+sentinel",
    #[cfg(feature = "redis")]
    "valkey",
    #[cfg(feature = "tls")]
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

/// Opens every store this build has a backend for (see [`KNOWN_SCHEMES`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct Stores;

impl Stores {
    /// The stores of this build.
    pub fn new() -> Self {
        Self
    }

    /// Opens the store `uri` names. `clock` is the memory and memcached stores' clock; a Redis
    /// store reads the Redis server's clock unless the URI says `time=client`, and then uses
    /// `clock`. A scheme of a backend this build lacks is refused with the feature to enable.
    pub fn open_uri(
        &self,
        uri: &str,
        clock: Arc<dyn Clock + Send + Sync>,
    ) -> Result<Arc<dyn Storage>, StorageError> {
        let uri_error = StorageError::InvalidUri;
        let parsed: StorageUri = uri.parse().map_err(uri_error)?;
        if let Some(feature) = missing_feature(&parsed.scheme) {
            return Err(uri_error(UriError::MissingFeature {
                scheme: parsed.scheme,
                feature,
            }));
        }
        parsed.expect_scheme(KNOWN_SCHEMES).map_err(uri_error)?;
        match parsed.scheme.as_str() {
            "memory" => {
                let builder = MemoryStorage::builder_from_uri(uri)?.clock(clock);
                Ok(Arc::new(builder.build()))
            }
            #[cfg(feature = "memcached")]
            "memcached" => {
                // memcached has no clock: the strategies read `clock`.
                let builder = ratekeeper_memcached::MemcachedStorage::builder_from_uri(uri)?;
                Ok(Arc::new(builder.clock(clock).build()?))
            }
            #[cfg(feature = "redis")]
            _ => {
                let mut builder = ratekeeper_redis::RedisStorage::builder_from_uri(uri)?;
                if parsed.option("time") == Some("client") {
                    builder = builder.clock(clock);
                }
                Ok(Arc::new(builder.build()?))
            }
            // `expect_scheme` admitted only the schemes above; refused, not a panic, if not.
            #[cfg(not(feature = "redis"))]
            _ => Err(uri_error(UriError::UnknownScheme {
                found: parsed.scheme,
                known: KNOWN_SCHEMES,
            })),
        }
    }
}

impl OpenStorage for Stores {
    fn schemes(&self) -> &'static [&'static str] {
        KNOWN_SCHEMES
    }

    fn open(
        &self,
        uri: &str,
        clock: Arc<dyn Clock + Send + Sync>,
    ) -> Result<Arc<dyn Storage>, StorageError> {
        self.open_uri(uri, clock)
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use ratekeeper_core::SystemClock;

    fn refused(uri: &str) -> String {
        match Stores::new().open_uri(uri, Arc::new(SystemClock)) {
            Ok(_) => panic!("{uri} opened"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_backend_this_build_lacks_is_named_with_its_feature() {
        if !cfg!(feature = "memcached") {
            let e = refused("memcached://127.0.0.1:11211");
            assert!(e.contains("`memcached` feature"), "{e}");
        }
        if !cfg!(feature = "tls") {
            let e = refused("rediss://127.0.0.1:6380");
            assert!(e.contains("`tls` feature"), "{e}");
        }
        let e = refused("mongodb://h:1");
        assert!(e.contains("mongodb") && e.contains("memory"), "{e}");
    }

    #[test]
    fn every_known_scheme_has_a_backend() {
        for scheme in KNOWN_SCHEMES {
            assert_eq!(missing_feature(scheme), None, "{scheme}");
        }
        assert!(KNOWN_SCHEMES.contains(&"memory"));
        assert_eq!(KNOWN_SCHEMES.contains(&"redis"), cfg!(feature = "redis"));
        assert_eq!(KNOWN_SCHEMES.contains(&"rediss"), cfg!(feature = "tls"));
    }
}
