//! What can go wrong talking to a store. Being rate limited is not among it.

use core::{fmt, time::Duration};

/// A storage operation that failed. Nothing was charged when a batch returns an error.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StorageError {
    /// The store could not be reached (connection refused, reset, name not resolved).
    Unreachable {
        /// Which backend, e.g. `redis`.
        backend: &'static str,
        /// What the transport said.
        detail: String,
    },
    /// The store did not answer in time.
    Timeout {
        /// Which backend.
        backend: &'static str,
        /// How long it was given.
        after: Duration,
    },
    /// The store answered something this client does not understand.
    Protocol {
        /// Which backend.
        backend: &'static str,
        /// What was wrong with the answer.
        detail: String,
    },
    /// The store is up but refused the operation: Redis out of memory under `maxmemory` with
    /// `noeviction` (`OOM`), or unable to persist (`MISCONF`). A ping still succeeds, so it is
    /// not [unavailable](StorageError::is_unavailable), and it is not a bad request either:
    /// the same call may succeed once the store has room.
    Refused {
        /// Which backend.
        backend: &'static str,
        /// What the store said.
        detail: String,
    },
    /// The request cannot be served as configured (a limit a backend cannot hold, a bad URI).
    Configuration(String),
    /// The store cannot do this (clearing one client's counters, for a store that cannot
    /// find them).
    Unsupported {
        /// Which backend.
        backend: &'static str,
        /// What it cannot do.
        what: &'static str,
    },
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unreachable { backend, detail } => {
                write!(f, "{backend} is unreachable: {detail}")
            }
            Self::Timeout { backend, after } => {
                write!(
                    f,
                    "{backend} did not answer within {} ms",
                    after.as_millis()
                )
            }
            Self::Protocol { backend, detail } => {
                write!(f, "unexpected answer from {backend}: {detail}")
            }
            Self::Refused { backend, detail } => {
                write!(f, "{backend} refused the operation: {detail}")
            }
            Self::Configuration(detail) => write!(f, "storage configuration: {detail}"),
            Self::Unsupported { backend, what } => write!(f, "{backend} does not support {what}"),
        }
    }
}

impl core::error::Error for StorageError {}

impl StorageError {
    /// Whether the error says the store is down or slow (worth a fallback), as opposed to a
    /// request it will never accept.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            Self::Unreachable { .. } | Self::Timeout { .. } | Self::Protocol { .. }
        )
    }

    /// Whether the store is up but refused the operation ([`StorageError::Refused`]).
    pub fn is_refused(&self) -> bool {
        matches!(self, Self::Refused { .. })
    }
}
