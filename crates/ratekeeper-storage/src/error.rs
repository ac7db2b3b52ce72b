//! What can go wrong talking to a store. Being rate limited is not among it.

use core::{fmt, time::Duration};
use std::sync::Arc;

use crate::uri::UriError;

/// The underlying error of a [`StorageError`] (the transport's, or the client library's),
/// shared so that the error stays cheap to clone.
pub type Source = Arc<dyn core::error::Error + Send + Sync + 'static>;

/// A storage operation that failed. Nothing was charged when a batch returns an error.
///
/// Build one with its constructor ([`StorageError::unreachable`], ...) and attach what caused
/// it with [`StorageError::with_source`]; match on its variants with `..`, since each may gain
/// fields. [`source`](core::error::Error::source) gives the cause where there is one.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum StorageError {
    /// The store could not be reached (connection refused, reset, name not resolved).
    #[non_exhaustive]
    Unreachable {
        /// Which backend, e.g. `redis`.
        backend: &'static str,
        /// What the transport said.
        detail: String,
        /// The transport's error.
        source: Option<Source>,
    },
    /// The store did not answer in time.
    #[non_exhaustive]
    Timeout {
        /// Which backend.
        backend: &'static str,
        /// How long it was given.
        after: Duration,
    },
    /// The store answered something this client does not understand.
    #[non_exhaustive]
    Protocol {
        /// Which backend.
        backend: &'static str,
        /// What was wrong with the answer.
        detail: String,
        /// The client library's error.
        source: Option<Source>,
    },
    /// The store is up but refused the operation: Redis out of memory under `maxmemory` with
    /// `noeviction` (`OOM`), or unable to persist (`MISCONF`). A ping still succeeds, so it is
    /// not [unavailable](StorageError::is_unavailable), and it is not a bad request either:
    /// the same call may succeed once the store has room.
    #[non_exhaustive]
    Refused {
        /// Which backend.
        backend: &'static str,
        /// What the store said.
        detail: String,
        /// The client library's error.
        source: Option<Source>,
    },
    /// A storage URI that does not parse, or names a scheme no backend here serves.
    InvalidUri(UriError),
    /// The store cannot be used as configured: an option it does not know or a value it
    /// cannot take, a limit it cannot hold. `detail` says what to change.
    #[non_exhaustive]
    Configuration {
        /// Which backend.
        backend: &'static str,
        /// What is wrong, and what would work.
        detail: String,
    },
    /// The store cannot do this (clearing one client's counters, for a store that cannot
    /// find them).
    #[non_exhaustive]
    Unsupported {
        /// Which backend.
        backend: &'static str,
        /// What it cannot do.
        what: &'static str,
    },
}

impl StorageError {
    /// [`StorageError::Unreachable`].
    pub fn unreachable(backend: &'static str, detail: impl Into<String>) -> Self {
        Self::Unreachable {
            backend,
            detail: detail.into(),
            source: None,
        }
    }

    /// [`StorageError::Timeout`].
    pub fn timeout(backend: &'static str, after: Duration) -> Self {
        Self::Timeout { backend, after }
    }

    /// [`StorageError::Protocol`].
    pub fn protocol(backend: &'static str, detail: impl Into<String>) -> Self {
        Self::Protocol {
            backend,
            detail: detail.into(),
            source: None,
        }
    }

    /// [`StorageError::Refused`].
    pub fn refused(backend: &'static str, detail: impl Into<String>) -> Self {
        Self::Refused {
            backend,
            detail: detail.into(),
            source: None,
        }
    }

    /// [`StorageError::Configuration`].
    pub fn configuration(backend: &'static str, detail: impl Into<String>) -> Self {
        Self::Configuration {
            backend,
            detail: detail.into(),
        }
    }

    /// [`StorageError::Unsupported`].
    pub fn unsupported(backend: &'static str, what: &'static str) -> Self {
        Self::Unsupported { backend, what }
    }

    /// This error, caused by `source` (kept for the variants that carry one: unreachable,
    /// protocol and refused; the others are returned as they are).
    #[must_use]
    pub fn with_source(mut self, cause: impl core::error::Error + Send + Sync + 'static) -> Self {
        if let Self::Unreachable { source, .. }
        | Self::Protocol { source, .. }
        | Self::Refused { source, .. } = &mut self
        {
            *source = Some(Arc::new(cause));
        }
        self
    }

    /// The backend the error comes from (`None` for a URI that named none).
    pub fn backend(&self) -> Option<&'static str> {
        match self {
            Self::Unreachable { backend, .. }
            | Self::Timeout { backend, .. }
            | Self::Protocol { backend, .. }
            | Self::Refused { backend, .. }
            | Self::Configuration { backend, .. }
            | Self::Unsupported { backend, .. } => Some(backend),
            Self::InvalidUri(_) => None,
        }
    }

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

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unreachable {
                backend, detail, ..
            } => write!(f, "{backend} is unreachable: {detail}"),
            Self::Timeout { backend, after } => {
                write!(
                    f,
                    "{backend} did not answer within {} ms",
                    after.as_millis()
                )
            }
            Self::Protocol {
                backend, detail, ..
            } => write!(f, "unexpected answer from {backend}: {detail}"),
            Self::Refused {
                backend, detail, ..
            } => write!(f, "{backend} refused the operation: {detail}"),
            Self::InvalidUri(e) => e.fmt(f),
            Self::Configuration { backend, detail } => {
                write!(f, "{backend} storage configuration: {detail}")
            }
            Self::Unsupported { backend, what } => write!(f, "{backend} does not support {what}"),
        }
    }
}

/// The message already says what the cause said (`detail` is its text, an `InvalidUri` is
/// shown as is), so `source()` continues the chain below the cause: an error report prints
/// each cause once. The client library's error itself is the variant's `source` field.
impl core::error::Error for StorageError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::Unreachable { source, .. }
            | Self::Protocol { source, .. }
            | Self::Refused { source, .. } => source.as_deref().and_then(|e| e.source()),
            Self::InvalidUri(e) => e.source(),
            _ => None,
        }
    }
}

impl From<UriError> for StorageError {
    fn from(e: UriError) -> Self {
        Self::InvalidUri(e)
    }
}

#[cfg(test)]
mod tests {
    use core::error::Error as _;

    use super::*;

    /// A client library's error whose own cause is the transport's.
    #[derive(Debug)]
    struct Library(std::io::Error);

    impl fmt::Display for Library {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("connection refused")
        }
    }

    impl core::error::Error for Library {
        fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    /// Every message of an error's chain, outermost first.
    fn chain(e: &dyn core::error::Error) -> Vec<String> {
        let mut messages = vec![e.to_string()];
        let mut next = e.source();
        while let Some(cause) = next {
            messages.push(cause.to_string());
            next = cause.source();
        }
        messages
    }

    #[test]
    fn errors_keep_their_cause_and_a_report_prints_it_once() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "os error 111");
        let library = Library(io);
        let e = StorageError::unreachable("redis", library.to_string()).with_source(library);
        // The message carries the library's text; the chain goes on below it, once each.
        assert_eq!(
            chain(&e),
            ["redis is unreachable: connection refused", "os error 111"]
        );
        let StorageError::Unreachable { source, .. } = &e else {
            panic!("{e:?}")
        };
        let kept = source.as_deref().map(ToString::to_string);
        assert_eq!(
            kept.as_deref(),
            Some("connection refused"),
            "the cause is kept"
        );
        assert!(e.is_unavailable());
        assert_eq!(e.backend(), Some("redis"));
        let clone = e.clone();
        assert_eq!(chain(&clone), chain(&e), "a clone keeps the cause");
        // A timeout has no cause to keep.
        let t = StorageError::timeout("redis", Duration::from_millis(5))
            .with_source(std::io::Error::other("late"));
        assert!(t.source().is_none());
        let uri = StorageError::from("nope".parse::<crate::StorageUri>().unwrap_err());
        assert!(matches!(
            uri,
            StorageError::InvalidUri(UriError::MissingScheme)
        ));
        assert_eq!(chain(&uri).len(), 1, "the URI error is the message");
        assert_eq!(uri.backend(), None);
        assert_eq!(
            StorageError::configuration("memcached", "ttl_grace must be whole seconds").to_string(),
            "memcached storage configuration: ttl_grace must be whole seconds"
        );
    }
}
