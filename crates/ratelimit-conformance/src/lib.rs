//! Checks that every storage backend of the `ratelimit-*` crates must pass, written once and
//! run by each backend's tests (and [`on_both_runtimes!`], which runs a scenario on async-std
//! and on smol): the shared reference vectors (`strategies.jsonl`, produced by
//! Python `limits` with this project's documented deviations) through the
//! [`Storage`] trait.
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use ratelimit_core::{Limit, ManualClock, StrategyKind, Timestamp};
use ratelimit_storage::{Charge, Key, Op, Storage};
use serde_json::Value;

/// The vectors folder: `RATELIMIT_VECTORS_DIR` when set, else the repository's own copy,
/// `testdata/vectors`.
pub fn vectors_dir() -> PathBuf {
    std::env::var_os("RATELIMIT_VECTORS_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/vectors"),
        Into::into,
    )
}

/// What a run covered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Coverage {
    /// Sequences run.
    pub sequences: usize,
    /// Events checked.
    pub events: usize,
}

/// Runs every sequence of `strategies.jsonl` on a fresh store from `fresh(n)` (n: the
/// sequence's number, for a distinct prefix), whose clock the sequence drives. Panics, naming
/// the sequence and event, on the first mismatch, on an unknown op, or when no sequence is
/// found.
pub async fn strategy_vectors<S: Storage>(
    mut fresh: impl FnMut(usize) -> (S, Arc<ManualClock>),
) -> Coverage {
    let dir = vectors_dir();
    let text = std::fs::read_to_string(dir.join("strategies.jsonl"))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.join("strategies.jsonl").display()));
    let mut seen = Coverage {
        sequences: 0,
        events: 0,
    };
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let case: Value = serde_json::from_str(line).expect("a JSON line");
        let kind: StrategyKind = case["strategy"].as_str().unwrap().parse().unwrap();
        let limit: Limit = case["limit"].as_str().unwrap().parse().unwrap();
        let (store, clock) = fresh(seen.sequences);
        let key = Key::new("test", "vector");
        // The vectors' sliding-window resets are rounded by `limits`: 1 ms; others 1 us.
        let tolerance = if kind == StrategyKind::SlidingWindowCounter {
            1_000
        } else {
            1
        };
        for (i, e) in case["events"].as_array().unwrap().iter().enumerate() {
            clock.set(Timestamp::from_micros(e["t_us"].as_u64().unwrap()));
            let cost = e["cost"].as_u64().unwrap_or(0);
            let batch = [Charge::new(key.clone(), limit, kind, cost)];
            let at = format!("{} event {i}", case["name"]);
            match e["op"].as_str().unwrap() {
                op @ ("hit" | "test") => {
                    let op = if op == "hit" { Op::Hit } else { Op::Test };
                    let v = store.apply(op, &batch).await.unwrap();
                    assert_eq!(v.allowed, e["allowed"].as_bool().unwrap(), "{at}");
                }
                "stats" => {
                    let v = store.apply(Op::Test, &batch).await.unwrap();
                    let status = v.statuses[0];
                    assert_eq!(status.remaining, e["remaining"].as_u64().unwrap(), "{at}");
                    let reset_us = status.reset.as_micros();
                    let want = e["reset_us"].as_u64().unwrap();
                    assert!(
                        reset_us.abs_diff(want) <= tolerance,
                        "{at}: reset {reset_us} us, expected {want}"
                    );
                }
                other => panic!("{at}: unknown op {other}"),
            }
            seen.events += 1;
        }
        seen.sequences += 1;
    }
    assert!(seen.sequences > 0, "no vector found in {}", dir.display());
    seen
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
