//! Configuration and decision errors.

use core::fmt;

use ratekeeper_core::ParseError;
use ratekeeper_storage::StorageError;

use crate::network::NetworkError;

/// A configuration the builder refused; `build()` reports it before any request is served.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum ConfigError {
    /// A limit string did not parse.
    Limit {
        /// Where it was configured (`default limits`, `route GET /login`...).
        context: String,
        /// The string.
        input: String,
        /// What is wrong, and at which byte.
        error: ParseError,
    },
    /// The storage could not be set up (an unknown URI scheme, a bad option).
    Storage(StorageError),
    /// A storage URI other than `memory://`, and no stores to open it
    /// ([`LimiterBuilder::stores`](crate::LimiterBuilder::stores)).
    NoStores {
        /// The URI's scheme.
        scheme: String,
    },
    /// A list of networks that did not parse.
    Network {
        /// Which list (`trusted proxy networks`, `exempt clients`).
        context: &'static str,
        /// The entry at fault, and why.
        error: NetworkError,
    },
    /// A `RATELIMIT_*` setting whose value does not read
    /// ([`LimiterBuilder::with_config`](crate::LimiterBuilder::with_config)).
    Setting {
        /// The setting.
        key: String,
        /// Its value.
        value: String,
        /// What it takes.
        expected: &'static str,
    },
    /// A route option given to the default or application limits, where it does not apply.
    UnsupportedOption {
        /// Which limits (`default limits`, `application limits`).
        context: String,
        /// The option (`shared`, `key`...).
        option: &'static str,
    },
    /// Anything else that cannot work (an empty namespace, a policy for no route).
    Invalid(String),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Limit {
                context,
                input,
                error,
            } => {
                write!(f, "{context}: invalid limit {input:?}: {error}")
            }
            Self::Storage(e) => e.fmt(f),
            Self::NoStores { scheme } => write!(
                f,
                "storage URI {scheme}://: the limiter opens memory:// itself and has no stores for other schemes; give it them (`.stores(ratekeeper::Stores::new())`, from ratekeeper-stores) or the store itself (`.storage(...)`)"
            ),
            Self::Network { context, error } => write!(f, "{context}: {error}"),
            Self::Setting {
                key,
                value,
                expected,
            } => write!(f, "{key}={value:?}: expected {expected}"),
            Self::UnsupportedOption { context, option } => write!(
                f,
                "{context}: the route option `{option}` does not apply to them (limit, limit_set, limit_by, cost, deduct_when, exempt_when and per_method do)"
            ),
            Self::Invalid(why) => f.write_str(why),
        }
    }
}

/// The message includes its cause's, so `source()` continues below it (each cause is
/// printed once in an error report); the cause itself is the variant's field.
impl core::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::Limit { error, .. } => error.source(),
            Self::Storage(e) => e.source(),
            Self::NoStores { .. }
            | Self::Network { .. }
            | Self::Setting { .. }
            | Self::UnsupportedOption { .. }
            | Self::Invalid(_) => None,
        }
    }
}

/// A decision that could not be made.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum DecisionError {
    /// The storage failed; nothing was charged.
    Storage(StorageError),
}

impl fmt::Display for DecisionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Storage(e) => write!(f, "rate-limit storage failed: {e}"),
        }
    }
}

/// As for [`ConfigError`]: the message includes the storage error's, `source()` continues
/// below it.
impl core::error::Error for DecisionError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::Storage(e) => e.source(),
        }
    }
}

impl From<StorageError> for DecisionError {
    fn from(e: StorageError) -> Self {
        Self::Storage(e)
    }
}
