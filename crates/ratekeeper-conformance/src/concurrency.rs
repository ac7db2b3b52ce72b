//! No over-admission across processes: 4 processes x 64 tasks hammer one key of
//! `100 per minute` and exactly 100 get through, for every strategy.
//!
//! A backend's test binary holds two tests: an ignored one named `worker` that calls
//! [`worker`] with a way to build the store, and one that starts the server and calls
//! [`hammer`], which runs the binary four times as workers and adds up what they admitted.

use std::{
    process::{Command, Stdio},
    sync::Arc,
};

use ratekeeper_core::{ManualClock, StrategyKind, Timestamp};
use ratekeeper_storage::{Charge, Key, Storage};

/// Worker processes.
pub const PROCESSES: usize = 4;
/// Tasks per worker.
pub const TASKS: usize = 64;
/// Hits per task.
pub const HITS_PER_TASK: usize = 6;

/// Each scenario: a strategy, and whether time is the store's own (`true`) or frozen at one
/// instant: GCRA and the sliding window refill as real time passes, so "exactly 100" holds
/// for them at one instant.
pub fn scenarios() -> Vec<(StrategyKind, bool)> {
    vec![
        (StrategyKind::FixedWindow, true),
        (StrategyKind::MovingWindow, true),
        (StrategyKind::FixedWindow, false),
        (StrategyKind::MovingWindow, false),
        (StrategyKind::SlidingWindowCounter, false),
        (StrategyKind::Gcra, false),
    ]
}

/// The body of a worker process: for each scenario, a store from `build(url, prefix, clock)`
/// (`clock`: the frozen clock to use, or `None` for the store's own time), `TASKS` tasks of
/// `HITS_PER_TASK` hits on one key, and a line `admitted <scenario> <n>` on stdout.
///
/// # Panics
/// When not started by [`hammer`] (its variables are missing), or when a hit fails.
pub fn worker(build: impl Fn(&str, &str, Option<Arc<ManualClock>>) -> Arc<dyn Storage>) {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!("a worker process: started by the concurrency tests, which set {name}")
        })
    };
    let (url, prefix) = (var("RATELIMIT_WORKER_URL"), var("RATELIMIT_WORKER_PREFIX"));
    let frozen = Timestamp::from_nanos(var("RATELIMIT_WORKER_T0").parse().unwrap_or(0));
    for (i, (kind, own_time)) in scenarios().into_iter().enumerate() {
        let clock = (!own_time).then(|| Arc::new(ManualClock::new(frozen)));
        let store = build(&url, &prefix, clock);
        let charge = Charge::new(
            Key::new("user", &format!("shared-{i}")),
            "100 per minute"
                .parse()
                .unwrap_or(ratekeeper_core::Limit::per(
                    100,
                    ratekeeper_core::Unit::Minute,
                )),
            kind,
            1,
        );
        let admitted: usize = smol::block_on(async {
            let tasks: Vec<_> = (0..TASKS)
                .map(|_| {
                    let (store, batch) = (Arc::clone(&store), [charge.clone()]);
                    smol::spawn(async move {
                        let mut n = 0;
                        for _ in 0..HITS_PER_TASK {
                            let v = store.hit(&batch).await.unwrap_or_else(|e| panic!("{e}"));
                            n += usize::from(v.allowed);
                        }
                        n
                    })
                })
                .collect();
            futures::future::join_all(tasks).await.into_iter().sum()
        });
        println!("admitted {i} {admitted}");
    }
}

/// Runs this test binary's `worker` test in [`PROCESSES`] processes against `url` (keys under
/// `prefix`) and asserts that exactly 100 were admitted in each scenario.
///
/// # Panics
/// When a worker fails or any scenario admitted other than 100.
pub fn hammer(url: &str, prefix: &str) {
    let exe = std::env::current_exe().expect("the test binary");
    let t0 = Timestamp::from_secs(1_700_000_040).as_nanos().to_string();
    let children: Vec<_> = (0..PROCESSES)
        .map(|_| {
            Command::new(&exe)
                .args([
                    "worker",
                    "--exact",
                    "--ignored",
                    "--nocapture",
                    "--test-threads",
                    "1",
                ])
                .env("RATELIMIT_WORKER_URL", url)
                .env("RATELIMIT_WORKER_PREFIX", prefix)
                .env("RATELIMIT_WORKER_T0", &t0)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start a worker")
        })
        .collect();
    let mut totals = vec![0usize; scenarios().len()];
    for child in children {
        let out = child.wait_with_output().expect("a worker's output");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "worker failed: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut seen = 0;
        for line in stdout.lines().filter_map(|l| l.split("admitted ").nth(1)) {
            let mut parts = line
                .split_whitespace()
                .map(|p| p.parse::<usize>().unwrap_or(usize::MAX));
            let (i, n) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
            totals[i] += n;
            seen += 1;
        }
        assert_eq!(seen, scenarios().len(), "worker output: {stdout}");
    }
    for ((kind, own_time), total) in scenarios().into_iter().zip(totals) {
        let time = if own_time {
            "the store's time"
        } else {
            "frozen time"
        };
        println!(
            "{kind} ({time}): {total} of {} hits admitted",
            PROCESSES * TASKS * HITS_PER_TASK
        );
        assert_eq!(total, 100, "{kind} with {time}");
    }
}
