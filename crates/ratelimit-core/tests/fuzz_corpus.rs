//! Replays the committed cargo-fuzz corpora (`fuzz/corpus/<target>/`) through the same checks
//! the fuzz targets run, on stable Rust, as ordinary tests.

#[path = "../../../fuzz/checks/mod.rs"]
mod checks;

use std::path::Path;

use ratelimit_core::StrategyKind;

/// Runs `check` on every file of one target's corpus and returns how many there were.
fn replay(target: &str, check: impl Fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for file in &files {
        let data = std::fs::read(file).unwrap();
        check(&data);
    }
    assert!(!files.is_empty(), "empty corpus for {target}");
    println!("{target}: replayed {} inputs", files.len());
    files.len()
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
