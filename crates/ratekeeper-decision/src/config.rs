//! Configuration under Flask-Limiter's names (`RATELIMIT_*`), from the environment or any
//! key/value source.

use ratekeeper_core::parse_duration;

use crate::{
    builder::LimiterBuilder, error::ConfigError, headers::RetryAfterFormat, outage::Outage,
    policy::parse_set,
};

/// The variables [`LimiterBuilder::with_config`] reads, as Flask-Limiter names them.
pub const CONFIG_KEYS: &[&str] = &[
    "RATELIMIT_ENABLED",
    "RATELIMIT_DEFAULT",
    "RATELIMIT_DEFAULTS_PER_METHOD",
    "RATELIMIT_APPLICATION",
    "RATELIMIT_META",
    "RATELIMIT_STORAGE_URI",
    "RATELIMIT_STRATEGY",
    "RATELIMIT_KEY_PREFIX",
    "RATELIMIT_HEADERS_ENABLED",
    "RATELIMIT_HEADER_LIMIT",
    "RATELIMIT_HEADER_REMAINING",
    "RATELIMIT_HEADER_RESET",
    "RATELIMIT_HEADER_RETRY_AFTER",
    "RATELIMIT_HEADER_RETRY_AFTER_VALUE",
    "RATELIMIT_SWALLOW_ERRORS",
    "RATELIMIT_IN_MEMORY_FALLBACK",
    "RATELIMIT_IN_MEMORY_FALLBACK_ENABLED",
    "RATELIMIT_IN_FLIGHT_LEASE",
];

impl LimiterBuilder {
    /// A builder configured from the process environment's `RATELIMIT_*` variables (see
    /// [`LimiterBuilder::with_config`]).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::default().with_config(std::env::vars())
    }

    /// Applies Flask-Limiter's configuration keys found in `vars` (any key/value source: the
    /// environment, a parsed file, a test's list); other keys are ignored, and an unknown
    /// `RATELIMIT_*` key is logged as a warning. An empty value counts as unset.
    ///
    /// | key | effect |
    /// |---|---|
    /// | `RATELIMIT_ENABLED` | `false`: every request [`Kind::Unlimited`](crate::Kind), no storage call |
    /// | `RATELIMIT_DEFAULT` | [`default_limits`](Self::default_limits) |
    /// | `RATELIMIT_DEFAULTS_PER_METHOD` | [`default_limits_per_method`](Self::default_limits_per_method) |
    /// | `RATELIMIT_APPLICATION` | [`application_limits`](Self::application_limits) |
    /// | `RATELIMIT_META` | [`meta_limits`](Self::meta_limits) |
    /// | `RATELIMIT_STORAGE_URI` | [`storage_uri`](Self::storage_uri) |
    /// | `RATELIMIT_STRATEGY` | [`strategy`](Self::strategy): `fixed-window`, `moving-window`, `sliding-window-counter`, `gcra` |
    /// | `RATELIMIT_KEY_PREFIX` | [`key_prefix`](Self::key_prefix) |
    /// | `RATELIMIT_HEADERS_ENABLED` | `false`: no rate-limit headers; `true`: `X-RateLimit-*` and `Retry-After` |
    /// | `RATELIMIT_HEADER_LIMIT`, `_REMAINING`, `_RESET`, `_RETRY_AFTER` | the header's name ([`HeaderOptions::rename`](crate::headers::HeaderOptions::rename)) |
    /// | `RATELIMIT_HEADER_RETRY_AFTER_VALUE` | `delta-seconds` or `http-date` ([`RetryAfterFormat`](crate::headers::RetryAfterFormat)) |
    /// | `RATELIMIT_SWALLOW_ERRORS` | `true`: [`on_outage`](Self::on_outage)`(`[`Outage::fail_open`]`())` |
    /// | `RATELIMIT_IN_MEMORY_FALLBACK` | [`on_outage`](Self::on_outage)`(`[`Outage::in_memory_fallback`]`(..))` |
    /// | `RATELIMIT_IN_MEMORY_FALLBACK_ENABLED` | `true`: [`on_outage`](Self::on_outage)`(`[`Outage::fallback_to_memory`]`())` |
    /// | `RATELIMIT_IN_FLIGHT_LEASE` | [`in_flight_lease`](Self::in_flight_lease): seconds, or a duration such as `90s` or `2m` (ours; Flask-Limiter has no in-flight limits) |
    ///
    /// Booleans are `true`/`false`, `1`/`0`, `yes`/`no` or `on`/`off`, in any case. A malformed
    /// value is an error naming the key, its value and what was expected (limit strings are
    /// parsed here, with the parser's message).
    ///
    /// **Precedence: whatever is applied last wins.** `LimiterBuilder::from_env()?` followed by
    /// builder calls lets code override the environment (as Flask-Limiter's constructor
    /// arguments override its configuration); `builder.with_config(vars)?` at the end lets the
    /// environment override code.
    ///
    /// ```
    /// use ratekeeper_decision::{Limiter, LimiterBuilder, RequestView};
    ///
    /// let vars = [("RATELIMIT_DEFAULT", "2 per minute"), ("RATELIMIT_HEADERS_ENABLED", "false")];
    /// let limiter = LimiterBuilder::default().with_config(vars)?.build()?;
    /// # smol::block_on(async {
    /// let req = RequestView::new("GET", "/").with_peer("10.0.0.1".parse()?);
    /// let d = limiter.check(&req).await?;
    /// assert_eq!(d.limit().map(|l| l.to_string()).as_deref(), Some("2 per 1 minute"));
    /// assert!(d.headers().next().is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    ///
    /// let bad = LimiterBuilder::default().with_config([("RATELIMIT_ENABLED", "maybe")]);
    /// assert!(bad.unwrap_err().to_string().contains("RATELIMIT_ENABLED"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_config<K, V>(
        mut self,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self, ConfigError>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        for (key, value) in vars {
            let (key, value) = (key.as_ref(), value.as_ref().trim());
            if !key.starts_with("RATELIMIT_") || value.is_empty() {
                continue;
            }
            let flag = || parse_bool(key, value);
            // Limit strings are parsed here, so that an error names the key.
            let limits = || parse_set(key, value).map(|_| value);
            let renamed = match key {
                "RATELIMIT_HEADER_LIMIT" => Some("X-RateLimit-Limit"),
                "RATELIMIT_HEADER_REMAINING" => Some("X-RateLimit-Remaining"),
                "RATELIMIT_HEADER_RESET" => Some("X-RateLimit-Reset"),
                "RATELIMIT_HEADER_RETRY_AFTER" => Some("Retry-After"),
                _ => None,
            };
            if let Some(from) = renamed {
                let headers = self.headers_mut();
                *headers = headers.clone().rename(from, value);
                continue;
            }
            self = match key {
                "RATELIMIT_ENABLED" => self.enabled(flag()?),
                "RATELIMIT_DEFAULT" => self.default_limits(limits()?),
                "RATELIMIT_DEFAULTS_PER_METHOD" => self.default_limits_per_method(flag()?),
                "RATELIMIT_APPLICATION" => self.application_limits(limits()?),
                "RATELIMIT_META" => self.meta_limits(limits()?),
                "RATELIMIT_STORAGE_URI" => self.storage_uri(value),
                "RATELIMIT_STRATEGY" => self.strategy(value.parse().map_err(|_| {
                    invalid(
                        key,
                        value,
                        "fixed-window, moving-window, sliding-window-counter or gcra",
                    )
                })?),
                "RATELIMIT_KEY_PREFIX" => self.key_prefix(value),
                "RATELIMIT_HEADERS_ENABLED" => {
                    let on = flag()?;
                    let headers = self.headers_mut();
                    // Flask-Limiter's headers: the `X-RateLimit-*` family and `Retry-After`.
                    headers.x_ratelimit = on;
                    headers.retry_after = on;
                    headers.ietf &= on;
                    self
                }
                "RATELIMIT_HEADER_RETRY_AFTER_VALUE" => {
                    self.headers_mut().retry_after_format =
                        match value.to_ascii_lowercase().as_str() {
                            "delta-seconds" => RetryAfterFormat::DeltaSeconds,
                            "http-date" => RetryAfterFormat::HttpDate,
                            _ => return Err(invalid(key, value, "delta-seconds or http-date")),
                        };
                    self
                }
                "RATELIMIT_SWALLOW_ERRORS" if flag()? => self.on_outage(Outage::fail_open()),
                "RATELIMIT_IN_MEMORY_FALLBACK" => {
                    self.on_outage(Outage::in_memory_fallback(limits()?))
                }
                "RATELIMIT_IN_MEMORY_FALLBACK_ENABLED" if flag()? => {
                    self.on_outage(Outage::fallback_to_memory())
                }
                "RATELIMIT_SWALLOW_ERRORS" | "RATELIMIT_IN_MEMORY_FALLBACK_ENABLED" => self,
                "RATELIMIT_IN_FLIGHT_LEASE" => self.in_flight_lease(lease(key, value)?),
                other => {
                    tracing::warn!(target: "ratekeeper", key = other,
                        "unknown RATELIMIT_* configuration key, ignored (known: ratekeeper_decision::config::CONFIG_KEYS)");
                    self
                }
            };
        }
        Ok(self)
    }
}

fn invalid(key: &str, value: &str, expected: &'static str) -> ConfigError {
    ConfigError::Setting {
        key: key.to_owned(),
        value: value.to_owned(),
        expected,
    }
}

/// A lease: seconds, or a duration (`90s`, `2m`); not zero.
fn lease(key: &str, value: &str) -> Result<core::time::Duration, ConfigError> {
    match parse_duration(value).map(core::time::Duration::from) {
        Some(lease) if !lease.is_zero() => Ok(lease),
        _ => Err(invalid(key, value, "a duration: 60, 90s or 2m")),
    }
}

fn parse_bool(key: &str, value: &str) -> Result<bool, ConfigError> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(invalid(
            key,
            value,
            "true or false (or 1/0, yes/no, on/off)",
        )),
    }
}
