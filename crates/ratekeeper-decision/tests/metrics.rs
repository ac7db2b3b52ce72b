//! The `metrics` feature: what a decision, a failing store and an outage record, read back from
//! a test recorder (`metrics-util`'s debugging recorder, installed for this thread only).
#![cfg(feature = "metrics")]

mod common;

use std::sync::Arc;

use common::{Broken, build, check, get};
use metrics_util::{
    CompositeKey,
    debugging::{DebugValue, DebuggingRecorder},
};
use ratekeeper_decision::{Limiter, Outage, RoutePolicy, metrics as names};

/// What a test recorded (a snapshot drains the recorder, so it is taken once).
type Recorded = Vec<(CompositeKey, DebugValue)>;

/// The value recorded under `name` with exactly `labels`.
fn value<'a>(snap: &'a Recorded, name: &str, labels: &[(&str, &str)]) -> Option<&'a DebugValue> {
    snap.iter()
        .find(|(key, ..)| {
            let key = key.key();
            key.name() == name
                && labels.iter().all(|(k, v)| {
                    key.labels()
                        .any(|label| label.key() == *k && label.value() == *v)
                })
                && key.labels().count() == labels.len()
        })
        .map(|(_, value)| value)
}

fn counter(snap: &Recorded, name: &str, labels: &[(&str, &str)]) -> u64 {
    match value(snap, name, labels) {
        Some(DebugValue::Counter(n)) => *n,
        None => 0,
        Some(other) => panic!("{name} {labels:?} is not a counter: {other:?}"),
    }
}

fn decisions(snap: &Recorded, route: &str, scope: &str, outcome: &str) -> u64 {
    counter(
        snap,
        names::DECISIONS,
        &[("route", route), ("scope", scope), ("outcome", outcome)],
    )
}

/// Runs `f` with a fresh recorder for this thread, and returns what it recorded.
fn recorded(f: impl FnOnce()) -> Recorded {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, f);
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| (key, value))
        .collect()
}

#[test]
fn decisions_are_counted_by_route_scope_and_outcome() {
    let mut limiter: Option<Limiter> = None;
    let snap = recorded(|| {
        let (l, _clock) = build(
            Limiter::builder()
                .default_limits("5 per minute")
                .route("/login", RoutePolicy::new().limit("2 per minute"))
                .route("/try", RoutePolicy::new().limit("1 per minute").shadow())
                .route("/health", RoutePolicy::new().exempt()),
        );
        for _ in 0..3 {
            check(&l, &get("/login"));
        }
        for _ in 0..2 {
            check(&l, &get("/try"));
        }
        check(&l, &get("/health"));
        check(&l, &get("/other"));
        limiter = Some(l);
    });
    assert_eq!(decisions(&snap, "/login", "route", "allowed"), 2);
    assert_eq!(decisions(&snap, "/login", "route", "rejected"), 1);
    assert_eq!(decisions(&snap, "/try", "route", "allowed"), 1);
    assert_eq!(decisions(&snap, "/try", "route", "shadow_rejected"), 1);
    assert_eq!(decisions(&snap, "/health", "none", "exempt"), 1);
    assert_eq!(decisions(&snap, "/other", "default", "allowed"), 1);
    assert_eq!(decisions(&snap, "/login", "route", "shadow_rejected"), 0);
    assert_eq!(limiter.unwrap().shadow_rejections(), 1);
    // One store call per decision that charged something (the exempt one made none).
    match value(&snap, names::STORAGE_SECONDS, &[]) {
        Some(DebugValue::Histogram(samples)) => {
            assert_eq!(samples.len(), 6);
            assert!(
                samples.iter().all(|s| s.0 >= 0.0 && s.0 < 10.0),
                "{samples:?}"
            );
        }
        other => panic!("no store timings: {other:?}"),
    }
    assert_eq!(
        counter(&snap, names::STORAGE_ERRORS, &[("kind", "unreachable")]),
        0
    );
}

#[test]
fn a_failing_store_counts_errors_and_error_outcomes() {
    let snap = recorded(|| {
        let (l, _clock) = build(
            Limiter::builder()
                .default_limits("5 per minute")
                .storage(Arc::new(Broken)),
        );
        for _ in 0..2 {
            assert!(smol::block_on(l.check(&get("/api"))).is_err());
        }
    });
    assert_eq!(decisions(&snap, "/api", "none", "error"), 2);
    assert_eq!(
        counter(&snap, names::STORAGE_ERRORS, &[("kind", "unreachable")]),
        2
    );
}

#[test]
fn an_outage_records_its_transition_and_the_degraded_calls() {
    let snap = recorded(|| {
        let (l, _clock) = build(
            Limiter::builder()
                .default_limits("2 per minute")
                .storage(Arc::new(Broken))
                .on_outage(Outage::fallback_to_memory().probe_backoff(
                    core::time::Duration::from_secs(3600),
                    core::time::Duration::from_secs(3600),
                )),
        );
        let kinds: Vec<_> = (0..3).map(|_| check(&l, &get("/api")).kind()).collect();
        assert_eq!(kinds.iter().filter(|k| k.as_str() == "allowed").count(), 2);
    });
    assert_eq!(
        counter(&snap, names::TRANSITIONS, &[("primary", "down")]),
        1
    );
    assert_eq!(counter(&snap, names::TRANSITIONS, &[("primary", "up")]), 0);
    assert_eq!(
        value(&snap, names::PRIMARY_UP, &[]),
        Some(&DebugValue::Gauge(0.0.into()))
    );
    assert_eq!(counter(&snap, names::DEGRADED_CALLS, &[]), 3);
    // The fallback answered: the decisions are the fallback's, not errors.
    assert_eq!(decisions(&snap, "/api", "default", "allowed"), 2);
    assert_eq!(decisions(&snap, "/api", "default", "rejected"), 1);
    assert_eq!(
        counter(&snap, names::STORAGE_ERRORS, &[("kind", "unreachable")]),
        0
    );
}

/// A memory store behind a cache of refusals, as Redis and memcached have.
#[derive(Debug)]
struct CachedMemory {
    memory: ratekeeper_memory::MemoryStorage,
    deny: ratekeeper_storage::DenyCache,
    clock: Arc<ratekeeper_core::ManualClock>,
}

impl ratekeeper_storage::Storage for CachedMemory {
    fn apply<'a>(
        &'a self,
        op: ratekeeper_storage::Op,
        batch: &'a [ratekeeper_storage::Charge],
    ) -> ratekeeper_storage::StorageFuture<'a, ratekeeper_storage::Verdict> {
        use ratekeeper_core::Clock;
        let now = self.clock.now();
        Box::pin(
            self.deny
                .around(op, batch, (now, false), self.memory.apply(op, batch)),
        )
    }
    fn clear<'a>(
        &'a self,
        key: &'a ratekeeper_storage::Key,
    ) -> ratekeeper_storage::StorageFuture<'a, ()> {
        self.memory.clear(key)
    }
    fn reset(&self) -> ratekeeper_storage::StorageFuture<'_, ()> {
        self.memory.reset()
    }
    fn health(&self) -> ratekeeper_storage::StorageFuture<'_, ()> {
        self.memory.health()
    }
}

#[test]
fn refusals_from_a_stores_cache_are_counted() {
    let clock = Arc::new(ratekeeper_core::ManualClock::new(common::T0));
    let store = CachedMemory {
        memory: ratekeeper_memory::MemoryStorage::builder()
            .clock(clock.clone())
            .build(),
        deny: ratekeeper_storage::DenyCache::new(16),
        clock: clock.clone(),
    };
    let snap = recorded(|| {
        let limiter = Limiter::builder()
            .storage(Arc::new(store))
            .clock(clock)
            .default_limits("2 per minute")
            .build()
            .unwrap();
        for _ in 0..10 {
            check(&limiter, &get("/a"));
        }
    });
    assert_eq!(decisions(&snap, "/a", "default", "allowed"), 2);
    assert_eq!(decisions(&snap, "/a", "default", "rejected"), 8);
    // The first refusal came from the store; the other seven from its cache.
    assert_eq!(counter(&snap, names::DENY_CACHE_HITS, &[]), 7);
}
