//! The decisions' metrics, through the [`metrics`](https://docs.rs/metrics) facade when the
//! `metrics` feature is on; without it nothing is recorded and nothing is compiled in.
//!
//! The application installs a recorder (Prometheus, StatsD, OpenTelemetry, ...) before the
//! first request, and may call `describe()` once for the help texts.
//!
//! | name | kind | labels | what |
//! |---|---|---|---|
//! | [`DECISIONS`] | counter | `route`, `scope`, `outcome` | every decision |
//! | [`STORAGE_ERRORS`] | counter | `kind` | decisions that failed because the store did |
//! | [`STORAGE_SECONDS`] | histogram | | time a decision waited for its store |
//! | [`DENY_CACHE_HITS`] | counter | | refusals a store repeated from its cache of refusals, without a call |
//! | [`IN_FLIGHT`] | gauge | `route` | requests of the route holding in-flight slots ([`RoutePolicy::concurrent`](crate::RoutePolicy::concurrent)) in this process |
//! | [`TRANSITIONS`], [`PRIMARY_UP`], [`DEGRADED_CALLS`] | | | the fallback's, with [`LimiterBuilder::on_outage`](crate::LimiterBuilder::on_outage) |
//!
//! The labels of [`DECISIONS`]:
//! - `route`: the route as the request names it ([`RequestView::new`](crate::RequestView::new)):
//!   a pattern such as `/users/:id` from a framework's router, so that the number of series
//!   stays bounded. (An adapter that passed raw paths would make one series per path.)
//! - `scope`: where the deciding limit came from ([`Scope::as_str`](crate::limits::Scope::as_str)), or
//!   `none` when no limit decided (exempt, unlimited, unauthorized, unknown client, error).
//!   A refusal's scope is its reason: `in_flight` for want of a slot, any other for a rate
//!   limit (`meta` for too many breaches).
//! - `outcome`: the decision's [`Kind::as_str`](crate::Kind::as_str) (`allowed`, `rejected`,
//!   `shadow_rejected`, `exempt`, `unlimited`, `unauthorized`, `unknown_client`), or `error`
//!   when the store failed and the decision is an error.
//!
//! [`STORAGE_ERRORS`]' `kind` is `unreachable`, `timeout`, `protocol`, `refused`,
//! `configuration` or `other`.

pub use ratekeeper_fallback::metrics::{DEGRADED_CALLS, PRIMARY_UP, TRANSITIONS};

/// Counter: decisions, labelled `route`, `scope` and `outcome`.
pub const DECISIONS: &str = "ratelimit_decisions_total";
/// Counter: decisions that failed because the store did, labelled `kind`.
pub const STORAGE_ERRORS: &str = "ratelimit_storage_errors_total";
/// Counter: decisions refused from a store's cache of refusals (Redis's and memcached's
/// `deny_cache`), without a call to the store.
pub const DENY_CACHE_HITS: &str = "ratelimit_deny_cache_hits_total";
/// Gauge: requests holding in-flight slots in this process, labelled `route`.
pub const IN_FLIGHT: &str = "ratelimit_in_flight";
/// Histogram: seconds a decision spent in its store (the batch's round trip, or the in-process
/// store's work).
pub const STORAGE_SECONDS: &str = "ratelimit_storage_duration_seconds";
/// Bucket bounds, in seconds, that suit [`STORAGE_SECONDS`]: from an in-process store's
/// microsecond to a store timing out after a second.
pub const STORAGE_SECONDS_BUCKETS: &[f64] = &[
    0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005,
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

/// Registers the help texts of every metric of the family (the fallback's too) with the
/// installed recorder; the Prometheus exporter prints them as `# HELP`. Call it once, after
/// installing the recorder.
#[cfg(feature = "metrics")]
pub fn describe() {
    metrics::describe_counter!(
        DECISIONS,
        "Rate-limit decisions by route, scope of the deciding limit, and outcome"
    );
    metrics::describe_counter!(
        STORAGE_ERRORS,
        "Rate-limit decisions that failed because the store did, by kind of error"
    );
    metrics::describe_counter!(
        DENY_CACHE_HITS,
        "Rate-limit decisions refused from a store's cache of refusals, without a call"
    );
    metrics::describe_gauge!(
        IN_FLIGHT,
        "Requests holding in-flight slots in this process, by route"
    );
    metrics::describe_histogram!(
        STORAGE_SECONDS,
        metrics::Unit::Seconds,
        "Time a rate-limit decision spent in its store"
    );
    ratekeeper_fallback::metrics::describe();
}

#[cfg(feature = "metrics")]
mod record {
    use std::{
        collections::HashMap,
        sync::{OnceLock, RwLock},
    };

    // A TSC read where the CPU has a stable one: a third of `std::time::Instant::now`'s cost,
    // and a decision takes two.
    use quanta::Instant;

    use metrics::{Counter, Gauge, Histogram};
    use ratekeeper_storage::{StorageError, Verdict};

    use super::{DECISIONS, DENY_CACHE_HITS, IN_FLIGHT, STORAGE_ERRORS, STORAGE_SECONDS};
    use crate::{Decision, DecisionError, Kind, limits::Scope};

    /// Label values, in the order of the slots below.
    const SCOPES: [&str; 8] = [
        "none",
        "default",
        "route",
        "shared",
        "application",
        "meta",
        "guard",
        "in_flight",
    ];
    const OUTCOMES: [&str; 8] = [
        "error",
        "allowed",
        "rejected",
        "shadow_rejected",
        "exempt",
        "unlimited",
        "unauthorized",
        "unknown_client",
    ];
    const SLOTS: usize = SCOPES.len() * OUTCOMES.len();
    /// Routes whose handles are kept; past this (an adapter passing raw paths, say), decisions
    /// are still recorded, through the facade's own lookup.
    const MAX_ROUTES: usize = 4096;

    type Slots = Box<[OnceLock<Counter>; SLOTS]>;

    /// The limiter's metric handles, registered on first use: a decision then costs a map
    /// lookup and an atomic add, and allocates nothing (the facade's macros build each key,
    /// labels and all, on every call).
    ///
    /// Handles belong to the recorder installed when they are registered, so the recorder must
    /// be installed before the first request (as the facade asks of every handle).
    #[derive(Default)]
    pub(crate) struct Recorded {
        decisions: RwLock<HashMap<Box<str>, Slots>>,
        store_seconds: OnceLock<Histogram>,
        deny_cache_hits: OnceLock<Counter>,
    }

    impl core::fmt::Debug for Recorded {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            f.debug_struct("Recorded").finish_non_exhaustive()
        }
    }

    /// When a call to the store began.
    #[derive(Clone, Copy)]
    pub(crate) struct Started(Instant);

    impl Recorded {
        #[inline]
        pub(crate) fn store_call(&self) -> Started {
            Started(Instant::now())
        }

        #[inline]
        pub(crate) fn store_answered(
            &self,
            started: Started,
            answer: &Result<Verdict, StorageError>,
        ) {
            self.store_seconds
                .get_or_init(|| metrics::histogram!(STORAGE_SECONDS))
                .record(started.0.elapsed().as_secs_f64());
            if answer.as_ref().is_ok_and(|v| v.from_cache) {
                self.deny_cache_hits
                    .get_or_init(|| metrics::counter!(DENY_CACHE_HITS))
                    .increment(1);
            }
        }

        pub(crate) fn decided(&self, route: &str, decision: &Result<Decision, DecisionError>) {
            let (scope, outcome) = match decision {
                Ok(d) => (d.scope().map_or(0, scope_slot), kind_slot(d.kind())),
                Err(_) => (0, 0),
            };
            let slot = scope * OUTCOMES.len() + outcome;
            let register = || metrics::counter!(DECISIONS, "route" => route.to_owned(), "scope" => SCOPES[scope], "outcome" => OUTCOMES[outcome]);
            // A poisoned lock only means a panic elsewhere while it was held; the map is
            // still whole (every write is one insert).
            {
                let routes = self.decisions.read().unwrap_or_else(|e| e.into_inner());
                if let Some(slots) = routes.get(route) {
                    slots[slot].get_or_init(register).increment(1);
                    return;
                }
            }
            let mut routes = self.decisions.write().unwrap_or_else(|e| e.into_inner());
            if routes.len() >= MAX_ROUTES && !routes.contains_key(route) {
                drop(routes);
                register().increment(1);
                return;
            }
            routes
                .entry(route.into())
                .or_insert_with(|| Box::new(core::array::from_fn(|_| OnceLock::new())))[slot]
                .get_or_init(register)
                .increment(1);
        }
    }

    const fn scope_slot(scope: Scope) -> usize {
        match scope {
            Scope::Default => 1,
            Scope::Route => 2,
            Scope::Shared => 3,
            Scope::Application => 4,
            Scope::Meta => 5,
            Scope::Guard => 6,
            Scope::InFlight => 7,
        }
    }

    const fn kind_slot(kind: Kind) -> usize {
        match kind {
            Kind::Allowed => 1,
            Kind::Rejected => 2,
            Kind::ShadowRejected => 3,
            Kind::Exempt => 4,
            Kind::Unlimited => 5,
            Kind::Unauthorized => 6,
            Kind::UnknownClient => 7,
        }
    }

    /// The in-flight gauge of one route.
    pub(crate) struct InFlightGauge(Gauge);

    impl InFlightGauge {
        pub(crate) fn of(route: &str) -> Self {
            Self(metrics::gauge!(IN_FLIGHT, "route" => route.to_owned()))
        }

        pub(crate) fn taken(&self) {
            self.0.increment(1.0);
        }

        pub(crate) fn released(&self) {
            self.0.decrement(1.0);
        }
    }

    pub(crate) fn storage_failed(error: &StorageError) {
        let kind = match error {
            StorageError::Unreachable { .. } => "unreachable",
            StorageError::Timeout { .. } => "timeout",
            StorageError::Protocol { .. } => "protocol",
            StorageError::Refused { .. } => "refused",
            StorageError::Configuration { .. } | StorageError::InvalidUri(_) => "configuration",
            _ => "other",
        };
        metrics::counter!(STORAGE_ERRORS, "kind" => kind).increment(1);
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn slots_name_the_labels_as_the_types_do() {
            for scope in [
                Scope::Default,
                Scope::Route,
                Scope::Shared,
                Scope::Application,
                Scope::Meta,
                Scope::Guard,
                Scope::InFlight,
            ] {
                assert_eq!(SCOPES[scope_slot(scope)], scope.as_str());
            }
            for kind in [
                Kind::Allowed,
                Kind::Rejected,
                Kind::ShadowRejected,
                Kind::Exempt,
                Kind::Unlimited,
                Kind::Unauthorized,
                Kind::UnknownClient,
            ] {
                assert_eq!(OUTCOMES[kind_slot(kind)], kind.as_str());
            }
        }
    }
}

#[cfg(not(feature = "metrics"))]
mod record {
    use ratekeeper_storage::{StorageError, Verdict};

    use crate::{Decision, DecisionError};

    /// Nothing: the `metrics` feature is off.
    #[derive(Debug, Default)]
    pub(crate) struct Recorded;

    #[derive(Clone, Copy)]
    pub(crate) struct Started;

    impl Recorded {
        #[inline(always)]
        pub(crate) fn store_call(&self) -> Started {
            Started
        }

        #[inline(always)]
        pub(crate) fn store_answered(&self, _: Started, _: &Result<Verdict, StorageError>) {}

        #[inline(always)]
        pub(crate) fn decided(&self, _: &str, _: &Result<Decision, DecisionError>) {}
    }

    #[inline(always)]
    pub(crate) fn storage_failed(_: &StorageError) {}

    /// Nothing: the `metrics` feature is off.
    pub(crate) struct InFlightGauge;

    impl InFlightGauge {
        pub(crate) fn of(_: &str) -> Self {
            Self
        }

        pub(crate) fn taken(&self) {}

        pub(crate) fn released(&self) {}
    }
}

pub(crate) use record::{InFlightGauge, Recorded, storage_failed};
