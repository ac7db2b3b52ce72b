//! Checks that every storage backend of the `ratekeeper-*` crates must pass, written once and
//! run by each backend's tests (and [`on_both_runtimes!`], which runs a scenario on async-std
//! and on smol): the reference vectors (every strategy sequence in `vectors/*.jsonl`, embedded,
//! produced by Python `limits` with this project's documented deviations) through the
//! [`Storage`] trait, long random sequences compared verdict by verdict with the memory
//! backend ([`differential`]), no over-admission across processes ([`concurrency`]), and
//! faults under load behind the fallback store ([`faults`]).
//!
//! A backend of your own proves itself the same way: give each check a fresh store on a
//! [`ManualClock`] the check drives. Here the memory store stands in for yours:
//!
//! ```
//! use std::sync::Arc;
//! use ratekeeper_conformance::{differential, strategy_vectors};
//! use ratekeeper_core::{ManualClock, StrategyKind, Timestamp};
//! use ratekeeper_memory::MemoryStorage;
//!
//! let fresh = |_: usize| {
//!     let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_700_000_000)));
//!     let store = MemoryStorage::builder().clock(clock.clone()).build(); // yours here
//!     (store, clock)
//! };
//! let covered = smol::block_on(strategy_vectors(fresh));
//! assert!(covered.sequences > 0 && covered.events > 0);
//!
//! // Random batches compared verdict by verdict with the memory store.
//! let compared = smol::block_on(differential::against_memory(
//!     |_prefix: &str| {
//!         let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_700_000_000)));
//!         (MemoryStorage::builder().clock(clock.clone()).build(), clock)
//!     },
//!     differential::Sequences {
//!         kinds: StrategyKind::ALL,
//!         seed: 7,
//!         runs: 2,
//!         steps: 50,
//!         large: 1_000,
//!     },
//! ));
//! assert!(compared.ops > 0);
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]

pub mod concurrency;
pub mod differential;
pub mod faults;

use std::{path::PathBuf, sync::Arc};

use ratekeeper_core::{Limit, ManualClock, StrategyKind, Timestamp};
use ratekeeper_storage::{Charge, Key, Op, Storage};
use serde_json::Value;

/// The reference vectors' strategy sequences (`vectors/strategies.jsonl`, JSON lines; the
/// format is described in `vectors/README.md`), embedded so that a backend outside this
/// repository runs the same ones.
pub const STRATEGY_VECTORS: &str = include_str!("../vectors/strategies.jsonl");

/// The reference vectors' parse cases (`vectors/parse.jsonl`), for a parser's own tests.
pub const PARSE_VECTORS: &str = include_str!("../vectors/parse.jsonl");

/// The vectors to run: each `*.jsonl` file of the folder `RATELIMIT_VECTORS_DIR` names when it
/// is set (name and text, sorted by name), else the embedded [`STRATEGY_VECTORS`] and
/// [`PARSE_VECTORS`].
pub fn vector_files() -> Vec<(String, String)> {
    let Some(dir) = std::env::var_os("RATELIMIT_VECTORS_DIR").map(PathBuf::from) else {
        return vec![
            ("parse.jsonl".to_owned(), PARSE_VECTORS.to_owned()),
            ("strategies.jsonl".to_owned(), STRATEGY_VECTORS.to_owned()),
        ];
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|file| {
            let text = std::fs::read_to_string(&file)
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            (file.display().to_string(), text)
        })
        .collect()
}

/// What a run covered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Coverage {
    /// Sequences run.
    pub sequences: usize,
    /// Events checked.
    pub events: usize,
}

/// Runs every strategy sequence of [`vector_files`] (lines with
/// `strategy`; parse cases, with `input`, are the core's business) on a fresh store from
/// `fresh(n)` (n: the sequence's number, for a distinct prefix), whose clock the sequence
/// drives. Panics, naming the file, sequence and event, on the first mismatch, on a line that is
/// neither kind, on an unknown op or a missing field, or when no sequence is found.
pub async fn strategy_vectors<S: Storage>(
    mut fresh: impl FnMut(usize) -> (S, Arc<ManualClock>),
) -> Coverage {
    let mut seen = Coverage {
        sequences: 0,
        events: 0,
    };
    for (file, text) in vector_files() {
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let at = format!("{file} line {}", n + 1);
            let case: Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{at}: not JSON: {e}"));
            if case.get("input").is_some() {
                continue;
            }
            assert!(
                case.get("strategy").is_some(),
                "{at}: neither a parse case nor a strategy sequence"
            );
            let (store, clock) = fresh(seen.sequences);
            seen.events += sequence(&store, &clock, &case, &at).await;
            seen.sequences += 1;
        }
    }
    assert!(seen.sequences > 0, "no strategy sequence among the vectors");
    seen
}

/// Runs one sequence; returns its number of events.
async fn sequence<S: Storage>(store: &S, clock: &ManualClock, case: &Value, at: &str) -> usize {
    let field = |v: &Value, name: &str, what: &str| -> Value {
        v.get(name)
            .cloned()
            .unwrap_or_else(|| panic!("{what}: missing field {name:?}"))
    };
    let u64_field = |v: &Value, name: &str, what: &str| -> u64 {
        field(v, name, what)
            .as_u64()
            .unwrap_or_else(|| panic!("{what}: {name:?} is not a whole number"))
    };
    let kind: StrategyKind = field(case, "strategy", at)
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{at}: unknown strategy"));
    let limit: Limit = field(case, "limit", at)
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{at}: bad limit"));
    let key = Key::new("test", "vector");
    // The vectors' sliding-window resets are rounded by `limits`: 1 ms; others 1 us.
    let tolerance = if kind == StrategyKind::SlidingWindowCounter {
        1_000
    } else {
        1
    };
    let events = field(case, "events", at);
    let events = events
        .as_array()
        .unwrap_or_else(|| panic!("{at}: events is not a list"));
    for (i, e) in events.iter().enumerate() {
        let at = format!("{at} ({}) event {i}", case["name"]);
        clock.set(Timestamp::from_micros(u64_field(e, "t_us", &at)));
        match field(e, "op", &at).as_str() {
            Some(op @ ("hit" | "test")) => {
                let cost = u64_field(e, "cost", &at);
                let batch = [Charge::new(key.clone(), limit, kind, cost)];
                let op = if op == "hit" { Op::Hit } else { Op::Test };
                let v = store.apply(op, &batch).await.unwrap();
                let allowed = field(e, "allowed", &at).as_bool();
                assert_eq!(Some(v.allowed), allowed, "{at}");
            }
            Some("stats") => {
                let batch = [Charge::new(key.clone(), limit, kind, 0)];
                let v = store.apply(Op::Test, &batch).await.unwrap();
                let status = v.statuses[0];
                assert_eq!(status.remaining, u64_field(e, "remaining", &at), "{at}");
                let reset_us = status.reset.as_micros();
                let want = u64_field(e, "reset_us", &at);
                assert!(
                    reset_us.abs_diff(want) <= tolerance,
                    "{at}: reset {reset_us} us, expected {want}"
                );
            }
            other => panic!("{at}: unknown op {other:?}"),
        }
    }
    events.len()
}

/// Runs each named async scenario (an `async fn()` in the calling module) as two tests: one on
/// async-std, one on smol. The calling crate needs both as (dev-)dependencies.
#[macro_export]
macro_rules! on_both_runtimes {
    ($($name:ident),* $(,)?) => {
        mod async_std_runtime {
            $(#[test] fn $name() { async_std::task::block_on(super::$name()) })*
        }
        mod smol_runtime {
            $(#[test] fn $name() { smol::block_on(super::$name()) })*
        }
    };
}
