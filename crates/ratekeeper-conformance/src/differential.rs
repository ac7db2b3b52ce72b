//! Long random sequences of batches on a backend and on the memory backend (itself tested
//! against the core state machines), on the same explicit clock, compared verdict by verdict.

use std::sync::Arc;

use ratekeeper_core::{
    Clock, Duration, Limit, ManualClock, RetryAfter, StrategyKind, Timestamp, Unit,
};
use ratekeeper_memory::MemoryStorage;
use ratekeeper_storage::{Charge, Key, Op, Storage, Verdict};

/// Minute-aligned and realistic (2023), so that nanosecond arithmetic runs on full-size times.
pub const T0: Timestamp = Timestamp::from_secs(1_700_000_040);

/// A deterministic generator (`fastrand`'s, seeded) to draw test operations: the same seed
/// replays the same run.
#[derive(Clone, Debug)]
pub struct Rng(fastrand::Rng);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Self(fastrand::Rng::with_seed(seed))
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0.u64(..)
    }

    /// Uniform in `0..n` (`0` when `n` is `0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.0.u64(..n.max(1))
    }

    /// True with probability `p` percent.
    pub fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }
}

/// A random limit: small amounts mostly, now and then one below `large`; windows of one to
/// three seconds, minutes, hours or days.
pub fn random_limit(rng: &mut Rng, large: u64) -> Limit {
    let unit = [Unit::Second, Unit::Minute, Unit::Hour, Unit::Day][rng.below(4) as usize];
    let amount = if rng.percent(10) {
        rng.below(large)
    } else {
        rng.below(13)
    };
    Limit::new(amount, 1 + rng.below(3), unit).unwrap_or(Limit::per(1, Unit::Second))
}

/// What [`against_memory`] draws from.
#[derive(Clone, Copy, Debug)]
pub struct Sequences<'a> {
    /// The strategies the limits use.
    pub kinds: &'a [StrategyKind],
    /// The first seed (each run adds its number).
    pub seed: u64,
    /// How many sequences, each on a fresh store.
    pub runs: u64,
    /// Batches per sequence.
    pub steps: u64,
    /// The bound of the occasional large amount (a backend may hold fewer moving-window
    /// entries than the memory one).
    pub large: u64,
}

/// What [`against_memory`] compared.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Compared {
    /// Operations compared.
    pub ops: u64,
    /// Of which the store answered from a cache of refusals ([`Verdict::from_cache`]).
    pub from_cache: u64,
}

/// Runs random sequences of hits, tests and refunds (costs, gates, charges on rejection,
/// refunds naming their hit's instant) on a fresh store from `fresh(prefix)` and on the memory
/// backend, on one explicit clock, and panics at the first verdict that differs, naming the
/// seed, run and step.
///
/// A verdict the store answers from a cache of refusals ([`Verdict::from_cache`], such as a
/// `DenyCache`) must be a refusal the memory backend gives too (a cache may only refuse what
/// the store would), with no status's wait longer than the memory backend's (a cached wait is
/// counted down from the store's, and other charges can only lengthen the real one); its
/// counts may be a moment old.
pub async fn against_memory<S: Storage>(
    mut fresh: impl FnMut(&str) -> (S, Arc<ManualClock>),
    s: Sequences<'_>,
) -> Compared {
    let mut ops = 0;
    let mut from_cache = 0;
    for run in 0..s.runs {
        let mut rng = Rng::new(s.seed * 1_000 + run);
        let (store, clock) = fresh(&format!("d{}-{run}", s.seed));
        let memory = MemoryStorage::builder().clock(clock.clone()).build();
        let limits: Vec<(Limit, StrategyKind)> = (0..3)
            .map(|_| {
                (
                    random_limit(&mut rng, s.large),
                    s.kinds[rng.below(s.kinds.len() as u64) as usize],
                )
            })
            .collect();
        let keys: Vec<Key> = (0..3).map(|i| Key::new("k", &i.to_string())).collect();
        // Start anywhere within a second of a realistic time, to nanosecond precision.
        clock.set(T0.saturating_add(Duration::from_nanos(rng.below(1_000_000_000))));
        // Admitted hits, with the instant the store gave them: refunds name them.
        let mut admitted: Vec<(Vec<Charge>, Timestamp)> = Vec::new();
        for step in 0..s.steps {
            clock.advance(Duration::from_nanos(random_advance(&mut rng)));
            let now = clock.now();
            let op = match rng.below(9) {
                0..=5 => Op::Hit,
                6 | 7 => Op::Test,
                _ => Op::Refund,
            };
            let batch = random_batch(&mut rng, op, (&keys, &limits), &admitted);
            let want = memory
                .apply_at(op, &batch, now)
                .unwrap_or_else(|e| panic!("the memory backend failed: {e}"));
            let got = store
                .apply(op, &batch)
                .await
                .unwrap_or_else(|e| panic!("seed {} run {run} step {step}: {e}", s.seed));
            if op == Op::Hit && want.allowed {
                admitted.push((batch.clone(), want.at));
            }
            if got.from_cache {
                from_cache += 1;
                assert!(
                    !want.allowed && cached_waits_are_no_longer(&got, &want),
                    "seed {} run {run} step {step} at {now:?}: cached {got:?}, store {want:?}: {batch:#?}",
                    s.seed
                );
            } else {
                assert_eq!(
                    got, want,
                    "seed {} run {run} step {step} at {now:?}: {op:?} {batch:#?}",
                    s.seed
                );
            }
            ops += 1;
        }
    }
    Compared { ops, from_cache }
}

/// How far the clock moves before a step: often not at all or by milliseconds, sometimes by
/// seconds, minutes or hours.
fn random_advance(rng: &mut Rng) -> u64 {
    match rng.below(10) {
        0..=2 => 0,
        3..=6 => rng.below(3_000) * 1_000_000,
        7 => rng.below(1_000_000_000),
        8 => rng.below(120) * 1_000_000_000 + rng.below(1_000),
        _ => rng.below(3) * 3_600_000_000_000 + rng.below(86_400) * 1_000_000_000,
    }
}

/// A step's batch: one to three random charges on the run's keys and limits, some with a
/// need above their cost or a cost on rejection; for most refunds, (part of) an earlier
/// admitted hit, naming its instant; for some hits, the renewal of an earlier admitted hit.
fn random_batch(
    rng: &mut Rng,
    op: Op,
    (keys, limits): (&[Key], &[(Limit, StrategyKind)]),
    admitted: &[(Vec<Charge>, Timestamp)],
) -> Vec<Charge> {
    let batch: Vec<Charge> = (0..1 + rng.below(3))
        .map(|_| {
            let key = keys[rng.below(3) as usize].clone();
            let (limit, kind) = limits[rng.below(3) as usize];
            let cost = if rng.percent(85) {
                rng.below(4)
            } else {
                rng.below(15)
            };
            let mut c = Charge::new(key, limit, kind, cost);
            if rng.percent(15) {
                c = c.needing(cost + rng.below(5));
            }
            if rng.percent(15) {
                c = c.charging_on_reject(1 + rng.below(3));
            }
            c
        })
        .collect();
    // A renewal: an earlier admitted hit again, naming its instant.
    if op == Op::Hit && !admitted.is_empty() && rng.percent(15) {
        let (charges, at) = &admitted[rng.below(admitted.len() as u64) as usize];
        return charges.iter().map(|c| c.clone().charged_at(*at)).collect();
    }
    if op == Op::Refund && !admitted.is_empty() && rng.percent(70) {
        let (charges, at) = &admitted[rng.below(admitted.len() as u64) as usize];
        return charges
            .iter()
            .map(|c| {
                let mut c = c.clone().charged_at(*at);
                c.cost = rng.below(c.cost + 1);
                c
            })
            .collect();
    }
    batch
}

/// Whether no status of `cached` waits longer than its twin in `want`.
fn cached_waits_are_no_longer(cached: &Verdict, want: &Verdict) -> bool {
    cached.statuses.len() == want.statuses.len()
        && cached
            .statuses
            .iter()
            .zip(want.statuses.iter())
            .all(|(c, w)| match (c.retry_after, w.retry_after) {
                (_, RetryAfter::Never) => true,
                (RetryAfter::Never, _) => false,
                (RetryAfter::After(c), RetryAfter::After(w)) => c <= w,
            })
}
