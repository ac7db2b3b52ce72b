//! Key functions: who a request counts against.

use core::{
    fmt::{self, Write as _},
    net::IpAddr,
};
use std::sync::Arc;

use ratekeeper_storage::{Key, ScopePath, UnderEach};

use crate::{network::mask, request::RequestView};

type KeyFn = dyn Fn(&RequestView<'_>, Option<IpAddr>) -> String + Send + Sync;
type ValidateFn = dyn Fn(&str) -> Option<String> + Send + Sync;

/// What to do with a request whose client address is unknown (Tide's Unix-socket listener gives
/// none, for one), wherever a key function would count by address.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UnknownClient {
    /// Every such request counts against one shared identity, `ip:unknown`. The default: limited,
    /// never unlimited by accident.
    #[default]
    Shared,
    /// Not limited at all.
    Unlimited,
    /// Refused ([`Kind::UnknownClient`](crate::Kind::UnknownClient), 403 from the Tide
    /// middleware).
    Reject,
}

/// How addresses become identities.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Addressing {
    /// IPv6 clients are counted by this prefix of their address (64: a /64 is one client).
    pub(crate) ipv6_prefix: u8,
    pub(crate) unknown: UnknownClient,
}

impl Addressing {
    /// Who a request from `ip` is, when counted by address.
    pub(crate) fn identity(&self, ip: Option<IpAddr>) -> Identity<'static> {
        match (ip, self.unknown) {
            (Some(ip), _) => Identity::Key(self.who(ip)),
            (None, UnknownClient::Shared) => Identity::Key(Who {
                namespace: "ip",
                value: Value::Borrowed("unknown"),
            }),
            (None, UnknownClient::Unlimited) => Identity::Unlimited,
            (None, UnknownClient::Reject) => Identity::UnknownClient,
        }
    }

    /// The key of a client address: an IPv4 address as it is, an IPv6 address by its network
    /// (`ip:2001:db8:1:2::/64`), since one host commonly holds a whole /64.
    pub(crate) fn who(&self, ip: IpAddr) -> Who<'static> {
        // Written on the stack: the longest form, an IPv6 address and a prefix, is 49 bytes.
        let mut text = heapless::String::<64>::new();
        let _ = match ip.to_canonical() {
            IpAddr::V4(v4) => {
                // Written by hand: `core::fmt` costs several times more.
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        let _ = text.push('.');
                    }
                    let _ = text.push_str(itoa::Buffer::new().format(octet));
                }
                Ok(())
            }
            v6 if self.ipv6_prefix >= 128 => write!(text, "{v6}"),
            v6 => write!(text, "{}/{}", mask(v6, self.ipv6_prefix), self.ipv6_prefix),
        };
        Who {
            namespace: "ip",
            value: Value::Address(text),
        }
    }
}

/// What a [`KeyFunction::credential`] does with a request whose credential is missing, empty
/// or unknown to the validator.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UnknownCredential {
    /// Count it by client address, as if it carried no credential. The default.
    #[default]
    ByAddress,
    /// Answer `401 Unauthorized` ([`Kind::Unauthorized`](crate::Kind::Unauthorized)) before
    /// any limit is checked.
    Reject,
}

/// Who a request counts against. Identities are namespaced (`ip:`, `apikey:`, your own), so
/// that an API key that looks like an address, or contains `:` or `/`, never shares a counter
/// with anything else. An empty identity means "not limited" (and is logged).
///
/// A client can put anything in a header. A key function that takes a header's value as the
/// identity as it comes ([`KeyFunction::header_or_ip`]) lets a client mint a fresh identity,
/// and so fresh quota, per request; count by a credential only once the application has
/// recognised it ([`KeyFunction::credential`]).
#[derive(Clone, Default)]
pub struct KeyFunction(Repr);

/// What a [`KeyFunction`] counts by.
#[derive(Clone, Default)]
enum Repr {
    /// The client address (`ip:203.0.113.7`), proxies resolved per the limiter's
    /// [`ProxyConfig`](crate::proxy::ProxyConfig). The default.
    #[default]
    ClientIp,
    /// The value of a header under `namespace`, whatever it is; the client address when the
    /// header is absent or empty.
    HeaderOrIp { header: String, namespace: String },
    /// A credential in a header, counted under the identity the application's validator gives
    /// it.
    Credential {
        header: String,
        namespace: String,
        validate: Arc<ValidateFn>,
        unknown: UnknownCredential,
    },
    /// Any function of the request and the client address, under `namespace`.
    Custom {
        namespace: String,
        identify: Arc<KeyFn>,
    },
}

impl fmt::Debug for KeyFunction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::ClientIp => f.write_str("ClientIp"),
            Repr::HeaderOrIp { header, namespace } => {
                write!(f, "HeaderOrIp({header:?} as {namespace:?})")
            }
            Repr::Credential {
                header,
                namespace,
                unknown,
                ..
            } => write!(f, "Credential({header:?} as {namespace:?}, {unknown:?})"),
            Repr::Custom { namespace, .. } => write!(f, "Custom({namespace:?})"),
        }
    }
}

impl KeyFunction {
    /// The client address (`ip:203.0.113.7`), proxies resolved per the limiter's
    /// [`ProxyConfig`](crate::proxy::ProxyConfig): the default.
    pub fn client_ip() -> Self {
        Self(Repr::ClientIp)
    }

    /// `header`'s value under `namespace`, else the client address.
    ///
    /// This trusts the client: any value is an identity with its own counters, so a client that
    /// sends a new value per request is never limited (and fills the store with counters). Use
    /// it only where the header was set by something the client cannot control (a gateway that
    /// authenticated it); otherwise use [`KeyFunction::credential`].
    pub fn header_or_ip(header: &str, namespace: &str) -> Self {
        Self(Repr::HeaderOrIp {
            header: header.to_owned(),
            namespace: namespace.to_owned(),
        })
    }

    /// A credential in `header`, counted under `namespace` with the identity `validate` gives
    /// it: `validate` returns `Some(identity)` for a credential the application knows (the
    /// account it belongs to, say, so that two keys of one account share their quota) and
    /// `None` for anything else. A request whose header is missing, empty or unknown is counted
    /// by its client address ([`UnknownCredential::ByAddress`](crate::keys::UnknownCredential::ByAddress)); see
    /// [`KeyFunction::rejecting_unknown`] to answer it with 401 instead.
    ///
    /// ```
    /// use ratekeeper_decision::KeyFunction;
    ///
    /// let keys = KeyFunction::credential("X-API-Key", "apikey", |value| match value {
    ///     "basic-key" | "premium-key" => Some(value.to_owned()),
    ///     _ => None,
    /// });
    /// # let _ = keys;
    /// ```
    pub fn credential(
        header: &str,
        namespace: &str,
        validate: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        Self(Repr::Credential {
            header: header.to_owned(),
            namespace: namespace.to_owned(),
            validate: Arc::new(validate),
            unknown: UnknownCredential::ByAddress,
        })
    }

    /// For a [`KeyFunction::credential`]: answer a request without a known credential with
    /// `401 Unauthorized` instead of counting it by address. (No effect on other key
    /// functions.) A rejected request is not counted anywhere, so an application that answers
    /// 401 here and cares about credential guessing should also limit by address upstream.
    pub fn rejecting_unknown(mut self) -> Self {
        if let Repr::Credential { unknown, .. } = &mut self.0 {
            *unknown = UnknownCredential::Reject;
        }
        self
    }

    /// A closure's identity under `namespace`.
    pub fn custom(
        namespace: &str,
        identify: impl Fn(&RequestView<'_>, Option<IpAddr>) -> String + Send + Sync + 'static,
    ) -> Self {
        Self(Repr::Custom {
            namespace: namespace.to_owned(),
            identify: Arc::new(identify),
        })
    }

    /// The namespace this function writes, for configuration checks.
    pub(crate) fn namespace(&self) -> Option<&str> {
        match &self.0 {
            Repr::ClientIp => None,
            Repr::HeaderOrIp { namespace, .. }
            | Repr::Credential { namespace, .. }
            | Repr::Custom { namespace, .. } => Some(namespace),
        }
    }

    /// Who `req` counts against.
    pub(crate) fn identify<'a>(
        &'a self,
        req: &RequestView<'a>,
        ip: Option<IpAddr>,
        addressing: &Addressing,
    ) -> Identity<'a> {
        let by_ip = || addressing.identity(ip);
        match &self.0 {
            Repr::ClientIp => by_ip(),
            Repr::HeaderOrIp { header, namespace } => match req.header(header).map(str::trim) {
                Some(value) if !value.is_empty() => Identity::Key(Who {
                    namespace,
                    value: Value::Borrowed(value),
                }),
                _ => by_ip(),
            },
            Repr::Credential {
                header,
                namespace,
                validate,
                unknown,
            } => {
                let known = req
                    .header(header)
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .and_then(|v| validate(v))
                    .filter(|id| !id.is_empty());
                match (known, unknown) {
                    (Some(id), _) => Identity::Key(Who {
                        namespace,
                        value: Value::Owned(id),
                    }),
                    (None, UnknownCredential::ByAddress) => by_ip(),
                    (None, UnknownCredential::Reject) => Identity::Unauthorized(header),
                }
            }
            Repr::Custom {
                namespace,
                identify,
            } => {
                let id = identify(req, ip);
                if id.is_empty() {
                    Identity::Unlimited
                } else {
                    Identity::Key(Who {
                        namespace,
                        value: Value::Owned(id),
                    })
                }
            }
        }
    }
}

/// A client identity, before it becomes storage keys: a namespace and a value.
pub(crate) struct Who<'a> {
    pub(crate) namespace: &'a str,
    pub(crate) value: Value<'a>,
}

/// The value of an identity, wherever it was found.
pub(crate) enum Value<'a> {
    /// A client address (or network), written on the stack.
    Address(heapless::String<64>),
    /// From a function of the application.
    Owned(String),
    /// From the request.
    Borrowed(&'a str),
}

impl Who<'_> {
    /// The identity's keys under each list of scopes, in one allocation.
    pub(crate) fn keys_under(&self, lists: &[(&ScopePath, &[&str])]) -> UnderEach {
        let value = match &self.value {
            Value::Address(text) => text.as_str(),
            Value::Owned(text) => text,
            Value::Borrowed(text) => text,
        };
        Key::each(self.namespace, value, lists)
    }
}

/// Who a request counts against, as a key function sees it.
pub(crate) enum Identity<'a> {
    /// These counters.
    Key(Who<'a>),
    /// Nobody: not limited (no address, or an empty custom identity).
    Unlimited,
    /// A credential was required in this header and is missing or unknown.
    Unauthorized(&'a str),
    /// The client address is unknown and such requests are refused.
    UnknownClient,
}
