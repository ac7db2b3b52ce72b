//! Runs the reference vectors (`crates/ratekeeper-conformance/vectors/`, which that crate
//! publishes, or the folder in
//! `RATELIMIT_VECTORS_DIR`) against the parser and the four state machines.
//!
//! Every `*.jsonl` file of the folder is read; each line is a parse case (it has `input`) or a
//! strategy sequence (it has `strategy`). The run prints one summary line,
//! `vectors: P parse cases, S sequences, E events, F failed`, and fails on any mismatch, on a
//! folder without cases, and on a field or value it does not know.

mod common;

use core::fmt::Write as _;
use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use common::AnyState;
use ratekeeper_core::{Limit, Limits, StrategyKind, Timestamp, Unit};
use serde_json::{Map, Value};

#[derive(Default)]
struct Tally {
    parse_cases: usize,
    sequences: usize,
    events: usize,
    failed: usize,
    /// Messages of the first failures.
    report: String,
}

impl Tally {
    fn fail(&mut self, at: &str, msg: &str) {
        self.failed += 1;
        if self.failed <= 20 {
            let _ = writeln!(self.report, "  {at}: {msg}");
        }
    }
}

fn vectors_dir() -> PathBuf {
    match std::env::var_os("RATELIMIT_VECTORS_DIR") {
        Some(dir) => PathBuf::from(dir),
        // crates/ratekeeper-core -> crates/ratekeeper-conformance/vectors.
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../ratekeeper-conformance/vectors"),
    }
}

/// Reads the object's fields, refusing any key outside `known`.
fn fields<'a>(
    obj: &'a Map<String, Value>,
    known: &[&str],
) -> Result<&'a Map<String, Value>, String> {
    match obj.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(format!("unknown field {k:?}")),
        None => Ok(obj),
    }
}

fn get<'a>(obj: &'a Map<String, Value>, key: &str) -> Result<&'a Value, String> {
    obj.get(key).ok_or_else(|| format!("missing field {key:?}"))
}

fn get_u64(obj: &Map<String, Value>, key: &str) -> Result<u64, String> {
    get(obj, key)?
        .as_u64()
        .ok_or_else(|| format!("field {key:?} is not a u64"))
}

fn get_bool(obj: &Map<String, Value>, key: &str) -> Result<bool, String> {
    get(obj, key)?
        .as_bool()
        .ok_or_else(|| format!("field {key:?} is not a boolean"))
}

fn get_str<'a>(obj: &'a Map<String, Value>, key: &str) -> Result<&'a str, String> {
    get(obj, key)?
        .as_str()
        .ok_or_else(|| format!("field {key:?} is not a string"))
}

fn unit_named(name: &str) -> Result<Unit, String> {
    Unit::ALL
        .into_iter()
        .find(|u| u.name() == name)
        .ok_or_else(|| format!("unknown unit {name:?}"))
}

/// A parse case: `Ok(Err(msg))` is a mismatch, `Err(msg)` a malformed case.
fn run_parse_case(obj: &Map<String, Value>) -> Result<Result<(), String>, String> {
    let obj = fields(obj, &["input", "ok", "limits"])?;
    let input = get_str(obj, "input")?;
    let ok = get_bool(obj, "ok")?;
    let mut expected = Vec::new();
    if ok {
        let list = get(obj, "limits")?
            .as_array()
            .ok_or("field \"limits\" is not an array")?;
        for item in list {
            let l = item.as_object().ok_or("a limit is not an object")?;
            let l = fields(l, &["amount", "multiples", "unit", "seconds"])?;
            let unit = unit_named(get_str(l, "unit")?)?;
            let limit = Limit::new(get_u64(l, "amount")?, get_u64(l, "multiples")?, unit)
                .map_err(|e| format!("expected limit is invalid: {e}"))?;
            let seconds = get_u64(l, "seconds")?;
            if limit.window().as_secs() != seconds {
                return Err(format!("seconds {seconds} disagrees with {limit}"));
            }
            expected.push(limit);
        }
    } else if obj.contains_key("limits") {
        return Err("a failing case has limits".into());
    }
    let parsed: Result<Vec<Limit>, _> = ratekeeper_core::parse_limits(input).collect();
    // The fixed-capacity list must agree with the iterator.
    let fixed = input.parse::<Limits<64>>().map(|l| l.to_vec());
    if parsed != fixed {
        return Ok(Err(format!(
            "Limits<64> gives {fixed:?}, the iterator {parsed:?}"
        )));
    }
    Ok(match (parsed, ok) {
        (Ok(got), true) if got == expected => Ok(()),
        (Ok(got), true) => Err(format!("{input:?}: parsed {got:?}, expected {expected:?}")),
        (Ok(got), false) => Err(format!("{input:?}: parsed {got:?}, expected an error")),
        (Err(e), true) => Err(format!("{input:?}: error {e}, expected {expected:?}")),
        (Err(_), false) => Ok(()),
    })
}

/// A strategy sequence: `Ok(Err(msg))` is a mismatch, `Err(msg)` a malformed case.
fn run_sequence(
    obj: &Map<String, Value>,
    events: &mut usize,
) -> Result<Result<(), String>, String> {
    let obj = fields(obj, &["name", "strategy", "limit", "events"])?;
    let kind: StrategyKind = get_str(obj, "strategy")?
        .parse()
        .map_err(|_| format!("unknown strategy {:?}", obj["strategy"]))?;
    let limit: Limit = get_str(obj, "limit")?
        .parse()
        .map_err(|e| format!("limit: {e}"))?;
    // Reset times match within 1 us, or 1 ms for the sliding window (float rounding in `limits`).
    let tolerance_us = if kind == StrategyKind::SlidingWindowCounter {
        1_000
    } else {
        1
    };
    let list = get(obj, "events")?
        .as_array()
        .ok_or("field \"events\" is not an array")?;
    let mut state = AnyState::new(kind, &limit);
    let mut mismatch = None;
    let mut last_t = 0;
    for (i, event) in list.iter().enumerate() {
        let e = event.as_object().ok_or("an event is not an object")?;
        let t_us = get_u64(e, "t_us")?;
        if t_us < last_t {
            return Err(format!("event {i}: time goes backwards"));
        }
        last_t = t_us;
        let now = Timestamp::from_micros(t_us);
        *events += 1;
        let got = match get_str(e, "op")? {
            "hit" | "test" => {
                let e = fields(e, &["t_us", "op", "cost", "allowed"])?;
                let cost = get_u64(e, "cost")?;
                let want = get_bool(e, "allowed")?;
                let before = state.test(&limit, now, cost).is_allowed();
                let got = if e["op"] == "hit" {
                    state.hit(&limit, now, cost).is_allowed()
                } else {
                    before
                };
                if got != before {
                    Some(format!("test said {before}, hit said {got}"))
                } else if got != want {
                    Some(format!("allowed {got}, expected {want}"))
                } else {
                    None
                }
            }
            "stats" => {
                let e = fields(e, &["t_us", "op", "remaining", "reset_us"])?;
                let stats = state.stats(&limit, now);
                let (remaining, reset_us) = (get_u64(e, "remaining")?, get_u64(e, "reset_us")?);
                if stats.remaining != remaining {
                    Some(format!(
                        "remaining {}, expected {remaining}",
                        stats.remaining
                    ))
                } else if stats.reset.as_micros().abs_diff(reset_us) > tolerance_us {
                    Some(format!(
                        "reset_us {}, expected {reset_us}",
                        stats.reset.as_micros()
                    ))
                } else {
                    None
                }
            }
            other => return Err(format!("event {i}: unknown op {other:?}")),
        };
        if let (Some(msg), None) = (got, &mismatch) {
            mismatch = Some(format!("event {i} ({} at t_us {t_us}): {msg}", e["op"]));
        }
    }
    Ok(mismatch.map_or(Ok(()), Err))
}

fn main() -> ExitCode {
    let dir = vectors_dir();
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
            .collect(),
        Err(e) => {
            eprintln!("vectors: cannot read {}: {e}", dir.display());
            return ExitCode::FAILURE;
        }
    };
    files.sort();
    let mut tally = Tally::default();
    let mut malformed = Vec::new();
    for file in &files {
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) => {
                malformed.push(format!("{}: {e}", file.display()));
                continue;
            }
        };
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for (n, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let at = format!("{name}:{}", n + 1);
            let obj = match serde_json::from_str::<Value>(line) {
                Ok(Value::Object(obj)) => obj,
                Ok(_) => {
                    malformed.push(format!("{at}: not a JSON object"));
                    continue;
                }
                Err(e) => {
                    malformed.push(format!("{at}: {e}"));
                    continue;
                }
            };
            let result = if obj.contains_key("input") {
                tally.parse_cases += 1;
                run_parse_case(&obj)
            } else if obj.contains_key("strategy") {
                tally.sequences += 1;
                run_sequence(&obj, &mut tally.events)
            } else {
                Err("neither a parse case (input) nor a sequence (strategy)".into())
            };
            match result {
                Ok(Ok(())) => {}
                Ok(Err(msg)) => tally.fail(&at, &msg),
                Err(msg) => malformed.push(format!("{at}: {msg}")),
            }
        }
    }
    println!(
        "vectors: {} parse cases, {} sequences, {} events, {} failed",
        tally.parse_cases, tally.sequences, tally.events, tally.failed
    );
    print!("{}", tally.report);
    for m in &malformed {
        println!("  malformed: {m}");
    }
    if tally.parse_cases + tally.sequences == 0 {
        println!("  no vector found in {}", dir.display());
        return ExitCode::FAILURE;
    }
    if tally.failed > 0 || !malformed.is_empty() {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
