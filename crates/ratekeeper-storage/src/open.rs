//! Opening a store from its URI, for whoever knows the backends: the limiter asks an
//! [`OpenStorage`] for every scheme but `memory://`, and never names a backend itself.

use std::sync::Arc;

use ratekeeper_core::Clock;

use crate::{Storage, StorageError};

/// Opens the stores some storage URI schemes name (`redis://...`, `memcached://...`).
///
/// `ratekeeper-stores` implements it for every backend of the family; an application can
/// implement it to open a store of its own from a URI (in a configuration, say).
///
/// ```
/// use std::sync::Arc;
/// use ratekeeper_core::Clock;
/// use ratekeeper_storage::{OpenStorage, Storage, StorageError};
///
/// /// Opens nothing: no scheme is its own.
/// struct Nothing;
///
/// impl OpenStorage for Nothing {
///     fn schemes(&self) -> &'static [&'static str] {
///         &[]
///     }
///     fn open(
///         &self,
///         uri: &str,
///         _clock: Arc<dyn Clock + Send + Sync>,
///     ) -> Result<Arc<dyn Storage>, StorageError> {
///         unreachable!("asked only for its own schemes, not {uri}")
///     }
/// }
/// assert!(Nothing.schemes().is_empty());
/// ```
pub trait OpenStorage: Send + Sync {
    /// The schemes it opens, as written before `://`.
    fn schemes(&self) -> &'static [&'static str];

    /// Opens the store `uri` names; its scheme is one of [`schemes`](Self::schemes). `clock`
    /// is the limiter's, for stores that keep time on the client.
    fn open(
        &self,
        uri: &str,
        clock: Arc<dyn Clock + Send + Sync>,
    ) -> Result<Arc<dyn Storage>, StorageError>;
}
