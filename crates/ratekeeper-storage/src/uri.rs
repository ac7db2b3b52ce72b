//! Storage URIs, in the forms of Python `limits`:
//!
//! ```text
//! memory://
//! redis://[[user]:password@]host[:port][/db][?option=value&...]
//! rediss://...                                 (TLS)
//! redis+unix:///path/to/redis.sock[?db=1]
//! redis+cluster://[[user]:password@]host:port,host:port[?...]
//! redis+sentinel://[[user]:password@]host:port,host:port/service[?...]
//! ```
//!
//! The parser only splits and decodes; which schemes exist is for whoever maps them to
//! backends, and it reports an unknown one with [`UriError::UnknownScheme`].

use core::{fmt, str::FromStr};

/// One `host[:port]` of a URI. IPv6 hosts are written in brackets and kept without them.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HostPort {
    /// Host name or address.
    pub host: String,
    /// Port, when given.
    pub port: Option<u16>,
}

/// A parsed storage URI.
///
/// ```
/// use ratekeeper_storage::StorageUri;
///
/// let uri: StorageUri = "redis+sentinel://:s3cret@10.0.0.1:26379,10.0.0.2/mymaster?timeout=0.5".parse()?;
/// assert_eq!(uri.scheme, "redis+sentinel");
/// assert_eq!(uri.password.as_deref(), Some("s3cret"));
/// assert_eq!(uri.hosts.len(), 2);
/// assert_eq!(uri.hosts[1].port, None);
/// assert_eq!(uri.path, "mymaster");
/// assert_eq!(uri.option("timeout"), Some("0.5"));
/// # Ok::<(), ratekeeper_storage::UriError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct StorageUri {
    /// The scheme, lowercased: `memory`, `redis`, `redis+cluster`...
    pub scheme: String,
    /// User name, percent-decoded.
    pub username: Option<String>,
    /// Password, percent-decoded.
    pub password: Option<String>,
    /// The comma-separated hosts; empty for `memory://` and `redis+unix:///...`.
    pub hosts: Vec<HostPort>,
    /// Everything after the first `/` following the hosts, percent-decoded (a database number,
    /// a sentinel service name, a socket path without its leading `/`).
    pub path: String,
    /// Query options, percent-decoded, in order.
    pub query: Vec<(String, String)>,
}

impl StorageUri {
    /// The value of query option `name` (the last one if repeated).
    pub fn option(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Fails, naming the first option that is not one of `known` and listing those, unless
    /// every query option is known: a misspelt option is an error, not a default.
    ///
    /// ```
    /// use ratekeeper_storage::StorageUri;
    ///
    /// let uri: StorageUri = "redis://h?prefix=a&colour=red".parse()?;
    /// assert!(uri.expect_options(&["prefix"]).is_err());
    /// assert_eq!(
    ///     uri.expect_options(&["prefix", "db"]).unwrap_err(),
    ///     "unknown option \"colour\" in the URI; known options: prefix, db"
    /// );
    /// # Ok::<(), ratekeeper_storage::UriError>(())
    /// ```
    pub fn expect_options(&self, known: &[&str]) -> Result<(), String> {
        match self
            .query
            .iter()
            .find(|(k, _)| !known.contains(&k.as_str()))
        {
            Some((name, _)) => Err(format!(
                "unknown option {name:?} in the URI; known options: {}",
                known.join(", ")
            )),
            None => Ok(()),
        }
    }

    /// Fails with [`UriError::UnknownScheme`] unless the scheme is one of `known`.
    pub fn expect_scheme(&self, known: &'static [&'static str]) -> Result<(), UriError> {
        if known.contains(&self.scheme.as_str()) {
            Ok(())
        } else {
            Err(UriError::UnknownScheme {
                found: self.scheme.clone(),
                known,
            })
        }
    }
}

impl fmt::Debug for StorageUri {
    /// Like the derived form, with the password hidden.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StorageUri")
            .field("scheme", &self.scheme)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("hosts", &self.hosts)
            .field("path", &self.path)
            .field("query", &self.query)
            .finish()
    }
}

/// A malformed storage URI.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UriError {
    /// No `scheme://` at the start.
    MissingScheme,
    /// The scheme has characters a scheme cannot have.
    InvalidScheme(String),
    /// A `%` not followed by two hex digits, or an encoding that is not UTF-8.
    BadEncoding(String),
    /// A host entry without a host (`redis://:6379`, `h1,,h2`).
    EmptyHost,
    /// A port that is not a number from 1 to 65535.
    BadPort(String),
    /// An unclosed `[` in an IPv6 host.
    BadHost(String),
    /// A scheme that no backend here serves.
    UnknownScheme {
        /// The scheme found.
        found: String,
        /// The schemes that would have been accepted.
        known: &'static [&'static str],
    },
    /// The scheme of a backend this build was compiled without.
    MissingFeature {
        /// The scheme found.
        scheme: String,
        /// The cargo feature that brings its backend.
        feature: &'static str,
    },
}

impl fmt::Display for UriError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingScheme => f.write_str(
                "storage URI has no scheme: expected e.g. memory:// or redis://host:6379",
            ),
            Self::InvalidScheme(s) => write!(f, "invalid scheme {s:?} in storage URI"),
            Self::BadEncoding(s) => write!(f, "bad percent-encoding in storage URI: {s:?}"),
            Self::EmptyHost => f.write_str("empty host in storage URI"),
            Self::BadPort(p) => write!(f, "bad port {p:?} in storage URI: expected 1 to 65535"),
            Self::BadHost(h) => write!(f, "bad host {h:?} in storage URI"),
            Self::UnknownScheme { found, known } => {
                write!(f, "unknown storage scheme {found:?}; known schemes: ")?;
                for (i, k) in known.iter().enumerate() {
                    write!(f, "{}{k}://", if i > 0 { ", " } else { "" })?;
                }
                Ok(())
            }
            Self::MissingFeature { scheme, feature } => write!(
                f,
                "storage URI {scheme}://: this build has no {feature} support; enable the `{feature}` feature of the `ratekeeper` crate (or of ratekeeper-stores if you depend on it directly)"
            ),
        }
    }
}

impl core::error::Error for UriError {}

/// Percent-decodes `s`. `percent-encoding` passes a `%` without two hex digits through as it
/// is; a URI here is refused for it instead, so that a typo in a password cannot connect as
/// someone else.
fn decode(s: &str) -> Result<String, UriError> {
    let bad = || UriError::BadEncoding(s.to_owned());
    let escapes_ok = s.match_indices('%').all(|(at, _)| {
        s.get(at + 1..at + 3)
            .is_some_and(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()))
    });
    if !escapes_ok {
        return Err(bad());
    }
    let decoded = percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map_err(|_| bad())?;
    Ok(decoded.into_owned())
}

fn host_port(entry: &str) -> Result<HostPort, UriError> {
    let (host, port) = if let Some(rest) = entry.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| UriError::BadHost(entry.to_owned()))?;
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return Err(UriError::BadHost(entry.to_owned())),
            },
        }
    } else {
        match entry.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (entry, None),
        }
    };
    if host.is_empty() {
        return Err(UriError::EmptyHost);
    }
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => Some(n),
            _ => return Err(UriError::BadPort(p.to_owned())),
        },
    };
    Ok(HostPort {
        host: decode(host)?,
        port,
    })
}

/// The part of `uri` that may hold credentials: from `://` to the last `@` before any `?`.
/// Taken generously (a password with an unencoded `/` or `@` still falls inside), since it is
/// only ever used to hide text.
fn userinfo(uri: &str) -> Option<&str> {
    let (_, rest) = uri.split_once("://")?;
    let before_query = rest.split('?').next().unwrap_or(rest);
    let (info, _) = before_query.rsplit_once('@')?;
    (!info.is_empty()).then_some(info)
}

/// `uri` with its credentials (user name and password) shown as `***`, for errors and logs.
///
/// ```
/// use ratekeeper_storage::redact_uri;
///
/// assert_eq!(redact_uri("redis://app:hunter2@cache:6379/0"), "redis://***@cache:6379/0");
/// assert_eq!(redact_uri("redis://cache:6379"), "redis://cache:6379");
/// ```
pub fn redact_uri(uri: &str) -> String {
    match userinfo(uri) {
        Some(info) => uri.replacen(info, "***", 1),
        None => uri.to_owned(),
    }
}

/// A URI option's length of time, read as [`ratekeeper_core::parse_duration`] reads one:
/// seconds (`0.5`, as `limits` writes them), or with a unit (`500ms`, `2s`, `1m`); more than
/// nothing and at most an hour. The error says which option and
/// what is expected.
///
/// ```
/// use core::time::Duration;
/// use ratekeeper_storage::duration_option;
///
/// assert_eq!(duration_option("timeout", "250ms"), Ok(Duration::from_millis(250)));
/// assert_eq!(duration_option("timeout", "0.5"), Ok(Duration::from_millis(500)));
/// assert!(duration_option("timeout", "-1").unwrap_err().contains("timeout"));
/// ```
pub fn duration_option(name: &str, text: &str) -> Result<core::time::Duration, String> {
    ratekeeper_core::parse_duration(text)
        .map(core::time::Duration::from)
        .filter(|d| !d.is_zero() && d.as_secs_f64() <= 3600.0)
        .ok_or_else(|| {
            format!(
                "option {name}={text:?}: expected a positive duration such as 0.5, 500ms or 2s (at most an hour)"
            )
        })
}

/// Reads a count option of a storage URI (a table's entries, a batch's size): a whole number
/// from 0 (off) to `max`; the error names the option.
///
/// ```
/// use ratekeeper_storage::count_option;
///
/// assert_eq!(count_option("deny_cache", "0", 100), Ok(0));
/// assert_eq!(count_option("deny_cache", "64", 100), Ok(64));
/// assert!(count_option("deny_cache", "101", 100).unwrap_err().contains("deny_cache"));
/// assert!(count_option("deny_cache", "-1", 100).is_err());
/// ```
pub fn count_option(name: &str, text: &str, max: usize) -> Result<usize, String> {
    text.parse::<usize>()
        .ok()
        .filter(|n| *n <= max)
        .ok_or_else(|| {
            format!("option {name}={text:?}: expected a whole number from 0 (off) to {max}")
        })
}

/// `text` (a message about `uri`) with everything of `uri`'s credentials in it replaced by
/// `***`: the whole user-info part, and each of its pieces (split at `:`, `/` and `@`, raw and
/// percent-decoded) of four bytes or more; a `text` that is a piece of the user-info part in
/// its entirety is replaced whole.
pub fn redact_in(text: &str, uri: &str) -> String {
    let Some(info) = userinfo(uri) else {
        return text.to_owned();
    };
    if !text.is_empty() && info.contains(text) {
        return "***".to_owned();
    }
    let mut secrets: Vec<String> = vec![info.to_owned()];
    for piece in info.split([':', '/', '@']) {
        secrets.push(piece.to_owned());
        if let Ok(decoded) = decode(piece) {
            secrets.push(decoded);
        }
    }
    if let Some((_, password)) = info.split_once(':') {
        secrets.push(password.to_owned());
        if let Ok(decoded) = decode(password) {
            secrets.push(decoded);
        }
    }
    secrets.retain(|s| s.len() >= 4);
    secrets.sort_by_key(|s| core::cmp::Reverse(s.len()));
    let mut out = text.to_owned();
    for secret in &secrets {
        out = out.replace(secret.as_str(), "***");
    }
    out
}

impl UriError {
    /// This error with any text taken from `uri`'s credentials hidden.
    fn redacted(self, uri: &str) -> Self {
        let hide = |s: String| redact_in(&s, uri);
        match self {
            Self::InvalidScheme(s) => Self::InvalidScheme(hide(s)),
            Self::BadEncoding(s) => Self::BadEncoding(hide(s)),
            Self::BadPort(s) => Self::BadPort(hide(s)),
            Self::BadHost(s) => Self::BadHost(hide(s)),
            other => other,
        }
    }
}

impl FromStr for StorageUri {
    type Err = UriError;

    /// Parses `s`; an error never quotes the credentials (see [`redact_in`]).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s.trim()).map_err(|e| e.redacted(s.trim()))
    }
}

impl StorageUri {
    fn parse(s: &str) -> Result<Self, UriError> {
        let (scheme, rest) = s.split_once("://").ok_or(UriError::MissingScheme)?;
        let valid = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if !valid {
            return Err(UriError::InvalidScheme(scheme.to_owned()));
        }
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, q),
            None => (rest, ""),
        };
        let (authority, path) = match rest.split_once('/') {
            Some((a, p)) => (a, p),
            None => (rest, ""),
        };
        let (userinfo, hosts) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (username, password) = match userinfo {
            None => (None, None),
            Some(u) => match u.split_once(':') {
                Some((user, pass)) => (
                    Some(decode(user)?).filter(|u| !u.is_empty()),
                    Some(decode(pass)?),
                ),
                None => (Some(decode(u)?).filter(|u| !u.is_empty()), None),
            },
        };
        let hosts = if hosts.is_empty() {
            Vec::new()
        } else {
            hosts.split(',').map(host_port).collect::<Result<_, _>>()?
        };
        let query = query
            .split('&')
            .filter(|kv| !kv.is_empty())
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                Ok((decode(k)?, decode(v)?))
            })
            .collect::<Result<_, UriError>>()?;
        Ok(Self {
            scheme: scheme.to_ascii_lowercase(),
            username,
            password,
            hosts,
            path: decode(path)?,
            query,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(s: &str) -> StorageUri {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn the_forms_of_python_limits() {
        let m = uri("memory://");
        assert_eq!(
            (m.scheme.as_str(), m.hosts.len(), m.path.as_str()),
            ("memory", 0, "")
        );

        let r = uri("redis://user:p%40ss@localhost:6379/2?socket_connect_timeout=1");
        assert_eq!(r.username.as_deref(), Some("user"));
        assert_eq!(r.password.as_deref(), Some("p@ss"));
        assert_eq!(
            r.hosts,
            vec![HostPort {
                host: "localhost".into(),
                port: Some(6379)
            }]
        );
        assert_eq!(r.path, "2");
        assert_eq!(r.option("socket_connect_timeout"), Some("1"));
        assert!(!format!("{r:?}").contains("p@ss"));

        let u = uri("redis+unix:///var/run/redis.sock?db=1");
        assert!(u.hosts.is_empty());
        assert_eq!(u.path, "var/run/redis.sock");
        assert_eq!(u.option("db"), Some("1"));

        let c = uri("redis+cluster://127.0.0.1:7000,127.0.0.1:7001,[::1]:7002");
        assert_eq!(c.hosts.len(), 3);
        assert_eq!(
            c.hosts[2],
            HostPort {
                host: "::1".into(),
                port: Some(7002)
            }
        );

        let s = uri("REDIS+SENTINEL://:pw@h1:26379,h2:26380/mymaster");
        assert_eq!(s.scheme, "redis+sentinel");
        assert_eq!((s.username, s.password.as_deref()), (None, Some("pw")));
        assert_eq!(s.path, "mymaster");
    }

    #[test]
    fn malformed_uris_say_why() {
        assert_eq!(
            "localhost:6379".parse::<StorageUri>(),
            Err(UriError::MissingScheme)
        );
        assert!(matches!(
            "9x://h".parse::<StorageUri>(),
            Err(UriError::InvalidScheme(_))
        ));
        assert_eq!(
            "redis://h:0".parse::<StorageUri>(),
            Err(UriError::BadPort("0".into()))
        );
        assert_eq!(
            "redis://h:99999".parse::<StorageUri>(),
            Err(UriError::BadPort("99999".into()))
        );
        assert_eq!(
            "redis://:6379".parse::<StorageUri>(),
            Err(UriError::EmptyHost)
        );
        assert_eq!(
            "redis+cluster://a:1,,b:2".parse::<StorageUri>(),
            Err(UriError::EmptyHost)
        );
        assert!(matches!(
            "redis://[::1:6379".parse::<StorageUri>(),
            Err(UriError::BadHost(_))
        ));
        assert!(matches!(
            "redis://u:%zz@h".parse::<StorageUri>(),
            Err(UriError::BadEncoding(_))
        ));
        let unknown = uri("mongodb://h")
            .expect_scheme(&["memory", "redis"])
            .unwrap_err();
        assert_eq!(
            unknown.to_string(),
            "unknown storage scheme \"mongodb\"; known schemes: memory://, redis://"
        );
    }
}
