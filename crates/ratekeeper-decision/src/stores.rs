//! The store a storage URI names: `memory://` is opened here; any other scheme by the stores
//! the builder was given ([`OpenStorage`]), since the limiter names no backend.

use std::sync::Arc;

use ratekeeper_core::Clock;
use ratekeeper_memory::MemoryStorage;
use ratekeeper_storage::{OpenStorage, Storage, StorageError, StorageUri};

use crate::error::ConfigError;

/// Opens the store `uri` names: `memory://` on `clock`, any other scheme through `stores`.
pub(crate) fn open(
    uri: &str,
    stores: Option<&dyn OpenStorage>,
    clock: Arc<dyn Clock + Send + Sync>,
) -> Result<Arc<dyn Storage>, ConfigError> {
    let parsed: StorageUri = uri
        .parse()
        .map_err(|e| ConfigError::Storage(StorageError::InvalidUri(e)))?;
    if parsed.scheme == "memory" {
        let builder = MemoryStorage::builder_from_uri(uri).map_err(ConfigError::Storage)?;
        return Ok(Arc::new(builder.clock(clock).build()));
    }
    match stores {
        Some(stores) => stores.open(uri, clock).map_err(ConfigError::Storage),
        None => Err(ConfigError::NoStores {
            scheme: parsed.scheme,
        }),
    }
}
