//! `inspect` and `clear`: live counters in a shared store (Redis), read and forgotten the way
//! a `Limiter` with the same configuration would.

use core::net::IpAddr;
use std::sync::Arc;

use ratekeeper_core::{Clock, StrategyKind, SystemClock};
use ratekeeper_decision::{
    KeyFunction, Limiter, RequestView, RoutePolicy,
    limits::{CurrentLimit, Scope},
};
use ratekeeper_storage::{Key, Storage};

use crate::error::{CliError, parse_limit_string};

/// Which of a limiter's scopes the limits are configured in (their counters are named
/// after it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ScopeArg {
    /// `default_limits`: counted per route.
    Default,
    /// A route's own limits (`RoutePolicy::limit`).
    Route,
    /// `application_limits`: counted across routes.
    Application,
}

impl core::str::FromStr for ScopeArg {
    type Err = CliError;

    fn from_str(s: &str) -> Result<Self, CliError> {
        match s {
            "default" => Ok(Self::Default),
            "route" => Ok(Self::Route),
            "application" => Ok(Self::Application),
            _ => Err(CliError::usage(format!(
                "scope {s:?}: use default, route or application"
            ))),
        }
    }
}

/// What `inspect` looks at.
#[derive(Clone, Debug)]
pub struct Inspect {
    /// The store's URI (a shared one: Redis).
    pub storage: String,
    /// The limit string, as the limiter is configured.
    pub limits: String,
    /// The client: `namespace:value` as the limiter's key function writes it (`ip:ADDR` for a
    /// client counted by address).
    pub key: String,
    /// The scope the limits are configured in.
    pub scope: ScopeArg,
    /// The route (for default and route limits).
    pub route: String,
    /// The request method.
    pub method: String,
    /// The strategy the limiter uses.
    pub strategy: StrategyKind,
    /// The limiter's key prefix (`LIMITER` when unset).
    pub prefix: Option<String>,
    /// The in-flight limit per client configured in the scope, if any.
    pub concurrent: Option<u64>,
    /// The in-flight limit across clients configured in the scope, if any.
    pub concurrent_shared: Option<u64>,
}

/// Refuses the memory store: it lives and dies with one process, so there is nothing to
/// inspect or clear from another.
fn shared(uri: &str) -> Result<(), CliError> {
    if uri.trim_start().to_ascii_lowercase().starts_with("memory:") {
        return Err(CliError::usage(
            "memory:// lives inside one process: inspect and clear need a shared store (redis://, redis+cluster://, ...)",
        ));
    }
    Ok(())
}

/// `namespace:value`, both non-empty.
pub fn parse_key(key: &str) -> Result<(&str, &str), CliError> {
    match key.split_once(':') {
        Some((ns, value)) if !ns.is_empty() && !value.is_empty() => Ok((ns, value)),
        _ => Err(CliError::usage(format!(
            "key {key:?}: expected namespace:value as the limiter writes it, e.g. ip:203.0.113.7 or apikey:abc"
        ))),
    }
}

/// Every limit of `args` for its client, charging nothing, with the instant it was read at
/// (seconds since the epoch).
pub async fn inspect(args: &Inspect) -> Result<(Vec<CurrentLimit>, u64), CliError> {
    shared(&args.storage)?;
    parse_limit_string(&args.limits)?;
    let (namespace, value) = parse_key(&args.key)?;
    let peer: Option<IpAddr> = if namespace == "ip" {
        Some(value.parse().map_err(|_| {
            CliError::usage(format!(
                "key {:?}: {value:?} is not an IP address",
                args.key
            ))
        })?)
    } else {
        None
    };
    let mut builder = Limiter::builder()
        .stores(ratekeeper_stores::Stores::new())
        .storage_uri(&args.storage)
        .strategy(args.strategy);
    if let Some(prefix) = &args.prefix {
        builder = builder.key_prefix(prefix);
    }
    if peer.is_none() {
        let value = value.to_owned();
        builder = builder.key_function(KeyFunction::custom(namespace, move |_, _| value.clone()));
    }
    let mut policy = RoutePolicy::new().limit(&args.limits);
    if let Some(n) = args.concurrent {
        policy = policy.concurrent(n);
    }
    if let Some(n) = args.concurrent_shared {
        policy = policy.concurrent_shared(n);
    }
    builder = match args.scope {
        ScopeArg::Default => builder.defaults(policy),
        ScopeArg::Route => builder.route(&args.route, policy),
        ScopeArg::Application => builder.application(policy),
    };
    let limiter = builder
        .build()
        .map_err(|e| CliError::Storage(e.to_string()))?;
    let mut req = RequestView::new(&args.method, &args.route);
    if let Some(ip) = peer {
        req = req.with_peer(ip);
    }
    let now = limiter.clock().now().as_secs();
    let limits = limiter
        .current_limits(&req)
        .await
        .map_err(|e| CliError::Storage(e.to_string()))?;
    Ok((limits, now))
}

/// What `clear` forgets.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClearTarget {
    /// Every counter of one client (`namespace:value`), in every scope and route.
    Key(String),
    /// Every counter under the store's prefix.
    All,
}

/// Forgets `target`'s counters in the store at `uri`.
pub async fn clear(uri: &str, target: &ClearTarget) -> Result<(), CliError> {
    shared(uri)?;
    let clock: Arc<dyn Clock + Send + Sync> = Arc::new(SystemClock);
    let storage = ratekeeper_stores::Stores::new()
        .open_uri(uri, clock)
        .map_err(|e| CliError::Storage(e.to_string()))?;
    let done = match target {
        ClearTarget::Key(key) => {
            let (namespace, value) = parse_key(key)?;
            storage.clear_client(&Key::new(namespace, value)).await
        }
        ClearTarget::All => storage.reset().await,
    };
    done.map_err(|e| CliError::Storage(e.to_string()))
}

/// The table `inspect` prints.
pub fn render(limits: &[CurrentLimit], now: u64) -> String {
    let mut out = format!(
        "{:<12} {:<24} {:>10} {:>10}\n",
        "scope", "limit", "remaining", "resets in"
    );
    for l in limits {
        let (limit, reset_in) = match l.scope {
            // Slots promise no reset: the count of holders says where they stand.
            Scope::InFlight => (
                format!("{} in flight", l.limit.amount()),
                format!("{} held", l.limit.amount().saturating_sub(l.remaining)),
            ),
            _ => (
                l.limit.to_string(),
                format!("{}s", l.reset.as_secs_ceil().saturating_sub(now)),
            ),
        };
        out.push_str(&format!(
            "{:<12} {:<24} {:>10} {:>10}\n",
            l.scope.as_str(),
            limit,
            l.remaining,
            reset_in
        ));
    }
    out
}

/// The limits as JSON.
pub fn to_json(limits: &[CurrentLimit], now: u64) -> serde_json::Value {
    serde_json::Value::Array(
        limits
            .iter()
            .map(|l| {
                if l.scope == Scope::InFlight {
                    return serde_json::json!({
                        "scope": l.scope.as_str(),
                        "in_flight": l.limit.amount(),
                        "remaining": l.remaining,
                        "held": l.limit.amount().saturating_sub(l.remaining),
                        "lease_secs": l.limit.window().as_nanos() / 1_000_000_000,
                    });
                }
                serde_json::json!({
                    "scope": l.scope.as_str(),
                    "limit": l.limit.to_string(),
                    "amount": l.limit.amount(),
                    "remaining": l.remaining,
                    "reset_epoch_secs": l.reset.as_secs_ceil(),
                    "reset_in_secs": l.reset.as_secs_ceil().saturating_sub(now),
                })
            })
            .collect(),
    )
}

/// The store's health, for a command that is about to use it.
pub(crate) async fn reachable(storage: &Arc<dyn Storage>) -> Result<(), CliError> {
    storage
        .health()
        .await
        .map_err(|e| CliError::Storage(e.to_string()))
}
