//! Rate-limit response headers: `X-RateLimit-*`, `Retry-After`, and the IETF draft fields.

use core::fmt::Write as _;
use std::sync::Arc;

use ratekeeper_core::Limit;

pub use crate::field::{FieldValue, Header, RateLimitHeaders};

/// The header names, each remappable (Flask-Limiter's `header_name_mapping`). Shared, not
/// copied, into every decision.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HeaderNames {
    /// Default `X-RateLimit-Limit`.
    pub limit: Arc<str>,
    /// Default `X-RateLimit-Remaining`.
    pub remaining: Arc<str>,
    /// Default `X-RateLimit-Reset`.
    pub reset: Arc<str>,
    /// Default `Retry-After`.
    pub retry_after: Arc<str>,
    /// Default `RateLimit-Policy`.
    pub policy: Arc<str>,
    /// Default `RateLimit`.
    pub ratelimit: Arc<str>,
}

impl Default for HeaderNames {
    fn default() -> Self {
        Self {
            limit: "X-RateLimit-Limit".into(),
            remaining: "X-RateLimit-Remaining".into(),
            reset: "X-RateLimit-Reset".into(),
            retry_after: "Retry-After".into(),
            policy: "RateLimit-Policy".into(),
            ratelimit: "RateLimit".into(),
        }
    }
}

/// Which headers a decision carries.
///
/// - `X-RateLimit-Limit` (the deciding limit's amount), `X-RateLimit-Remaining`,
///   `X-RateLimit-Reset` (epoch seconds, rounded up: the exact instant the window ends, since
///   windows are half-open, never early; Flask-Limiter sends `floor(reset) + 1`, one second
///   later whenever the reset falls on a whole second): on by default;
/// - `Retry-After` (whole seconds, rounded up, never 0) on rejections: on by default;
/// - `RateLimit-Policy` and `RateLimit` of draft-ietf-httpapi-ratelimit-headers-10: off by
///   default. Policies are named by their limit: `"50 per 1 hour";q=50;w=3600`, and
///   `RateLimit` reports the deciding one: `"50 per 1 hour";r=0;t=1800`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
#[must_use = "a builder does nothing until it is used"]
pub struct HeaderOptions {
    /// The `X-RateLimit-*` family.
    pub x_ratelimit: bool,
    /// `Retry-After` on rejections.
    pub retry_after: bool,
    /// How `Retry-After` is written: seconds (the default) or an HTTP date.
    pub retry_after_format: RetryAfterFormat,
    /// The IETF `RateLimit-Policy` / `RateLimit` fields.
    pub ietf: bool,
    /// Header names.
    pub names: HeaderNames,
}

impl Default for HeaderOptions {
    fn default() -> Self {
        Self {
            x_ratelimit: true,
            retry_after: true,
            retry_after_format: RetryAfterFormat::DeltaSeconds,
            ietf: false,
            names: HeaderNames::default(),
        }
    }
}

/// How `Retry-After` is written (Flask-Limiter's `RATELIMIT_HEADER_RETRY_AFTER_VALUE`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetryAfterFormat {
    /// Whole seconds until a retry can succeed, rounded up and never 0 (`delta-seconds`).
    #[default]
    DeltaSeconds,
    /// The instant a retry can succeed, rounded up to a whole second, as an RFC 9110
    /// IMF-fixdate (`http-date`): `Tue, 14 Nov 2023 22:13:20 GMT`.
    HttpDate,
}

impl HeaderOptions {
    /// No headers at all.
    pub fn none() -> Self {
        Self {
            x_ratelimit: false,
            retry_after: false,
            retry_after_format: RetryAfterFormat::DeltaSeconds,
            ietf: false,
            names: HeaderNames::default(),
        }
    }

    /// Every family on.
    pub fn all() -> Self {
        Self {
            ietf: true,
            ..Self::default()
        }
    }

    /// These options with the `X-RateLimit-*` headers on or off.
    pub fn with_x_ratelimit(mut self, on: bool) -> Self {
        self.x_ratelimit = on;
        self
    }

    /// These options with `Retry-After` on rejections on or off.
    pub fn with_retry_after(mut self, on: bool) -> Self {
        self.retry_after = on;
        self
    }

    /// These options with the IETF `RateLimit` and `RateLimit-Policy` fields on or off.
    pub fn with_ietf(mut self, on: bool) -> Self {
        self.ietf = on;
        self
    }

    /// `Retry-After` as an HTTP date (`RetryAfterFormat::HttpDate`) instead of seconds.
    pub fn retry_after_http_date(mut self) -> Self {
        self.retry_after_format = RetryAfterFormat::HttpDate;
        self
    }

    /// Renames the header called `from` (its default name, case-insensitive) to `to`.
    /// `LimiterBuilder::build` refuses a name that is not a valid HTTP field name (RFC 9110
    /// `token`: letters, digits and ``!#$%&'*+-.^_`|~``), so that no response can fail on it.
    pub fn rename(mut self, from: &str, to: &str) -> Self {
        let n = &mut self.names;
        for name in [
            &mut n.limit,
            &mut n.remaining,
            &mut n.reset,
            &mut n.retry_after,
            &mut n.policy,
            &mut n.ratelimit,
        ] {
            if name.eq_ignore_ascii_case(from) {
                *name = to.into();
            }
        }
        self
    }
}

impl HeaderNames {
    /// Checks every name: a valid HTTP field name, and no two the same (case-insensitive).
    pub(crate) fn check(&self) -> Result<(), String> {
        let names = [
            &self.limit,
            &self.remaining,
            &self.reset,
            &self.retry_after,
            &self.policy,
            &self.ratelimit,
        ];
        for (i, name) in names.iter().enumerate() {
            if !is_field_name(name) {
                return Err(format!(
                    "header name {name:?}: not a valid HTTP field name (use letters, digits and !#$%&'*+-.^_`|~)"
                ));
            }
            if names[..i]
                .iter()
                .any(|other| other.eq_ignore_ascii_case(name))
            {
                return Err(format!("header name {name:?}: given to two headers"));
            }
        }
        Ok(())
    }
}

/// An RFC 9110 `token`: one or more of the visible ASCII characters that are not delimiters.
pub(crate) fn is_field_name(name: &str) -> bool {
    !name.is_empty()
        && name.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        })
}

/// What the headers describe.
pub(crate) struct HeaderFacts<'a> {
    pub(crate) limit: &'a Limit,
    pub(crate) remaining: u64,
    pub(crate) reset_epoch_secs: u64,
    pub(crate) reset_in_secs: u64,
    pub(crate) retry_after_secs: Option<u64>,
    /// When a retry can succeed, in whole epoch seconds (rounded up).
    pub(crate) retry_at_epoch_secs: Option<u64>,
    pub(crate) rejected: bool,
    /// Whether the limit is an in-flight one: no reset and no wait can be promised for it.
    pub(crate) in_flight: bool,
    /// The `RateLimit-Policy` value.
    pub(crate) policy: Policy<'a>,
}

/// The `RateLimit-Policy` value: rendered once for a route whose limits are fixed, else
/// the limits to render.
pub(crate) enum Policy<'a> {
    Rendered(&'a Arc<str>),
    Limits(&'a [Limit]),
}

/// The `RateLimit-Policy` field listing `limits`.
pub(crate) fn policy_field(limits: &[Limit]) -> Arc<str> {
    // A limit's canonical form (`10 per 2 minute`: digits, letters, spaces) has no `"` or
    // `\\`, so quoting it makes an sf-string (RFC 8941) with nothing to escape.
    let mut policy = String::with_capacity(48 * limits.len());
    for (i, l) in limits.iter().enumerate() {
        let sep = if i > 0 { ", " } else { "" };
        let _ = write!(
            policy,
            "{sep}\"{l}\";q={};w={}",
            l.amount(),
            l.window().as_secs()
        );
    }
    policy.into()
}

/// `epoch_secs` as an RFC 9110 IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), by `httpdate`.
/// It refuses years past 9999 with a panic, so later instants are written as the last second
/// of 9999 (a [`Timestamp`](ratekeeper_core::Timestamp) ends in 2554, so none is).
fn http_date(w: &mut dyn core::fmt::Write, epoch_secs: u64) -> core::fmt::Result {
    const LAST: u64 = 253_402_300_799; // 9999-12-31T23:59:59Z
    let at = std::time::UNIX_EPOCH + core::time::Duration::from_secs(epoch_secs.min(LAST));
    write!(w, "{}", httpdate::HttpDate::from(at))
}

#[cfg(test)]
fn render(options: &HeaderOptions, f: &HeaderFacts<'_>) -> RateLimitHeaders {
    let mut out = RateLimitHeaders::default();
    render_into(options, f, &mut out);
    out
}

/// Appends the headers `options` asks for to `out`.
pub(crate) fn render_into(
    options: &HeaderOptions,
    f: &HeaderFacts<'_>,
    out: &mut RateLimitHeaders,
) {
    let names = &options.names;
    if options.x_ratelimit {
        out.push(&names.limit, FieldValue::number(f.limit.amount()));
        out.push(&names.remaining, FieldValue::number(f.remaining));
        if !f.in_flight {
            out.push(&names.reset, FieldValue::number(f.reset_epoch_secs));
        }
    }
    if let (true, true, false, Some(secs), Some(at)) = (
        options.retry_after,
        f.rejected,
        f.in_flight,
        f.retry_after_secs,
        f.retry_at_epoch_secs,
    ) {
        let value = match options.retry_after_format {
            RetryAfterFormat::DeltaSeconds => FieldValue::number(secs),
            RetryAfterFormat::HttpDate => FieldValue::write(|w| http_date(w, at)),
        };
        out.push(&names.retry_after, value);
    }
    if options.ietf {
        let policy = match f.policy {
            Policy::Rendered(p) => Arc::clone(p),
            Policy::Limits(limits) => policy_field(limits),
        };
        out.push(&names.policy, policy.into());
        let current = FieldValue::write(|w| {
            if f.in_flight {
                write!(w, "\"{} in flight\";r=", f.limit.amount())?;
                return w.write_str(itoa::Buffer::new().format(f.remaining));
            }
            write!(w, "\"{}\";r=", f.limit)?;
            w.write_str(itoa::Buffer::new().format(f.remaining))?;
            w.write_str(";t=")?;
            w.write_str(itoa::Buffer::new().format(f.reset_in_secs))
        });
        out.push(&names.ratelimit, current);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_and_names() {
        let hour: Limit = "50 per hour".parse().unwrap();
        let day: Limit = "200 per day".parse().unwrap();
        let facts = HeaderFacts {
            limit: &hour,
            remaining: 0,
            reset_epoch_secs: 1_700_003_600,
            reset_in_secs: 1_800,
            retry_after_secs: Some(1_800),
            retry_at_epoch_secs: Some(1_700_003_600),
            rejected: true,
            in_flight: false,
            policy: Policy::Limits(&[day, hour]),
        };
        let all = render(&HeaderOptions::all(), &facts);
        let get = |h: &[(Arc<str>, FieldValue)], n: &str| {
            h.iter()
                .find(|(k, _)| &**k == n)
                .map(|(_, v)| v.to_string())
        };
        assert_eq!(get(&all, "X-RateLimit-Limit").as_deref(), Some("50"));
        assert_eq!(get(&all, "Retry-After").as_deref(), Some("1800"));
        assert_eq!(
            get(&all, "RateLimit-Policy").as_deref(),
            Some("\"200 per 1 day\";q=200;w=86400, \"50 per 1 hour\";q=50;w=3600")
        );
        assert_eq!(
            get(&all, "RateLimit").as_deref(),
            Some("\"50 per 1 hour\";r=0;t=1800")
        );
        let renamed = render(
            &HeaderOptions::default().rename("x-ratelimit-limit", "X-Quota"),
            &facts,
        );
        assert_eq!(get(&renamed, "X-Quota").as_deref(), Some("50"));
        assert_eq!(get(&renamed, "RateLimit"), None);
        assert!(render(&HeaderOptions::none(), &facts).is_empty());
        let dated = render(&HeaderOptions::default().retry_after_http_date(), &facts);
        assert_eq!(
            get(&dated, "Retry-After").as_deref(),
            Some("Tue, 14 Nov 2023 23:13:20 GMT")
        );
    }

    #[test]
    fn http_dates() {
        let date = |secs| {
            let mut out = String::new();
            http_date(&mut out, secs).unwrap();
            out
        };
        assert_eq!(date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT"); // RFC 9110's example
        assert_eq!(date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(date(4_133_980_799), "Fri, 31 Dec 2100 23:59:59 GMT");
        assert_eq!(date(4_107_542_399), "Sun, 28 Feb 2100 23:59:59 GMT"); // 2100 is no leap year
        assert_eq!(date(1_700_003_600), "Tue, 14 Nov 2023 23:13:20 GMT");
        assert_eq!(date(u64::MAX), "Fri, 31 Dec 9999 23:59:59 GMT");
    }
}
