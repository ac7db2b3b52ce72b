//! Replays the committed cargo-fuzz corpora (`fuzz/corpus/<target>/`) through the same checks
//! the fuzz targets run, on stable Rust, as ordinary tests.

#[path = "../../../fuzz/checks/mod.rs"]
mod checks;

use std::path::Path;

use ratekeeper_core::StrategyKind;

/// Runs `check` (which returns how many cases or steps an input exercised) on every file of one
/// target's corpus; fails when the corpus is empty or when fewer than 90 % of its files
/// exercise anything: a check that decodes nothing would pass every input silently.
fn replay(target: &str, check: impl Fn(&[u8]) -> usize) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let (mut exercised, mut steps) = (0, 0);
    for file in &files {
        let data = std::fs::read(file).unwrap();
        let n = check(&data);
        exercised += usize::from(n > 0);
        steps += n;
    }
    assert!(!files.is_empty(), "empty corpus for {target}");
    println!(
        "{target}: replayed {} inputs, {exercised} exercised the checks ({steps} cases or steps)",
        files.len()
    );
    assert!(
        exercised * 10 >= files.len() * 9,
        "{target}: only {exercised} of {} inputs exercised the checks",
        files.len()
    );
}

#[test]
fn parse_corpus() {
    replay("parse", checks::parse);
}

#[test]
fn fixed_window_corpus() {
    replay("fixed_window", |d| {
        checks::strategy(StrategyKind::FixedWindow, d)
    });
}

#[test]
fn moving_window_corpus() {
    replay("moving_window", |d| {
        checks::strategy(StrategyKind::MovingWindow, d)
    });
}

#[test]
fn sliding_window_corpus() {
    replay("sliding_window", |d| {
        checks::strategy(StrategyKind::SlidingWindowCounter, d)
    });
}

#[test]
fn gcra_corpus() {
    replay("gcra", |d| checks::strategy(StrategyKind::Gcra, d));
}
