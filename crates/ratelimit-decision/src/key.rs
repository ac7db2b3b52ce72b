//! Key functions: who a request counts against.

use core::{fmt, net::IpAddr};
use std::sync::Arc;

use ratelimit_storage::Key;

use crate::request::RequestView;

type KeyFn = dyn Fn(&RequestView<'_>, Option<IpAddr>) -> String + Send + Sync;

/// Who a request counts against. Identities are namespaced (`ip:`, `apikey:`, your own), so
/// that an API key that looks like an address, or contains `:` or `/`, never shares a counter
/// with anything else. An empty identity means "not limited" (and is logged).
#[derive(Clone, Default)]
pub enum KeyFunction {
    /// The client address (`ip:203.0.113.7`), proxies resolved per the limiter's
    /// [`ProxyConfig`](crate::ProxyConfig). The default.
    #[default]
    ClientIp,
    /// The value of a header, such as `X-API-Key`, under `namespace`; the client address when
    /// the header is absent or empty.
    HeaderOrIp {
        /// Header name.
        header: String,
        /// Namespace of the header's identities, e.g. `apikey`.
        namespace: String,
    },
    /// Any function of the request and the client address, under `namespace`.
    Custom {
        /// Namespace of the identities, e.g. `user`.
        namespace: String,
        /// The identity; an empty string means "not limited".
        identify: Arc<KeyFn>,
    },
}

impl fmt::Debug for KeyFunction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ClientIp => f.write_str("ClientIp"),
            Self::HeaderOrIp { header, namespace } => {
                write!(f, "HeaderOrIp({header:?} as {namespace:?})")
            }
            Self::Custom { namespace, .. } => write!(f, "Custom({namespace:?})"),
        }
    }
}

impl KeyFunction {
    /// `header`'s value under `namespace`, else the client address.
    pub fn header_or_ip(header: &str, namespace: &str) -> Self {
        Self::HeaderOrIp {
            header: header.to_owned(),
            namespace: namespace.to_owned(),
        }
    }

    /// A closure's identity under `namespace`.
    pub fn custom(
        namespace: &str,
        identify: impl Fn(&RequestView<'_>, Option<IpAddr>) -> String + Send + Sync + 'static,
    ) -> Self {
        Self::Custom {
            namespace: namespace.to_owned(),
            identify: Arc::new(identify),
        }
    }

    /// The namespace this function writes, for configuration checks.
    pub(crate) fn namespace(&self) -> Option<&str> {
        match self {
            Self::ClientIp => None,
            Self::HeaderOrIp { namespace, .. } | Self::Custom { namespace, .. } => Some(namespace),
        }
    }

    /// The identity key of `req`, or `None` for "not limited".
    pub(crate) fn identify(&self, req: &RequestView<'_>, ip: Option<IpAddr>) -> Option<Key> {
        let by_ip = || ip.map(|ip| Key::new("ip", &ip.to_string()));
        match self {
            Self::ClientIp => by_ip(),
            Self::HeaderOrIp { header, namespace } => match req.header(header).map(str::trim) {
                Some(value) if !value.is_empty() => Some(Key::new(namespace, value)),
                _ => by_ip(),
            },
            Self::Custom {
                namespace,
                identify,
            } => {
                let id = identify(req, ip);
                (!id.is_empty()).then(|| Key::new(namespace, &id))
            }
        }
    }
}
