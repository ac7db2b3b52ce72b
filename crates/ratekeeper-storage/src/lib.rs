//! The async storage layer of the `ratekeeper-*` crates: the [`Storage`] trait every backend
//! implements, the batch it evaluates atomically, its errors, the key encoding all backends
//! share, and storage URIs.
//!
//! A limiter configured with a storage URI opens its store through an [`OpenStorage`]
//! (`ratekeeper-stores` knows every backend), so nothing above this crate names a backend.
//!
//! A request's limits travel to the store as one batch of [`Charge`]s (key, limit, strategy,
//! cost). The store charges all of them or none, and answers with a [`Verdict`]: one
//! [`LimitStatus`] per charge (allowed, remaining, reset, retry-after). Backends: in memory
//! (`ratekeeper-memory`), Redis, and a fallback that wraps both.
//!
//! # Example
//!
//! A backend is chosen at run time and shared as `Arc<dyn Storage>`:
//!
//! ```
//! use std::sync::Arc;
//! use ratekeeper_core::{Limit, StrategyKind};
//! use ratekeeper_storage::{Charge, Key, Storage, StorageUri};
//!
//! async fn allow(store: &Arc<dyn Storage>, ip: &str) -> bool {
//!     let key = Key::new("ip", ip).scoped("GET /api/data");
//!     let limits = ["200 per day", "50 per hour"].map(|l| l.parse::<Limit>().unwrap());
//!     let batch: Vec<Charge> = limits
//!         .into_iter()
//!         .map(|limit| Charge::new(key.clone(), limit, StrategyKind::FixedWindow, 1))
//!         .collect();
//!     store.hit(&batch).await.map(|v| v.allowed).unwrap_or(false)
//! }
//!
//! let uri: StorageUri = "redis+cluster://10.0.0.1:7000,10.0.0.2:7000".parse()?;
//! assert_eq!(uri.hosts.len(), 2);
//! # Ok::<(), ratekeeper_storage::UriError>(())
//! ```
//!
//! # Feature flags
//!
//! None: the crate is small and always needs `std`.
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]

mod batch;
mod deadline;
mod deny;
mod error;
mod key;
mod open;
mod storage;
mod uri;

pub use batch::{Charge, LimitStatus, Op, Statuses, StatusesIntoIter, Verdict};
pub use deadline::within;
pub use deny::{DEFAULT_DENY_CACHE_ENTRIES, DenyCache, Lookup, Ticket};
pub use error::{Source, StorageError};
pub use key::{Key, MAX_PART, ScopePath, UnderEach};
pub use open::OpenStorage;
pub use storage::{Storage, StorageFuture};
pub use uri::{HostPort, StorageUri, UriError, count_option, redact_uri};
// For the backends' URI builders, not for applications.
#[doc(hidden)]
pub use uri::{duration_option, redact_in};
