//! No over-admission across processes: 4 processes x 64 tasks hammer one key of
//! `100 per minute` through memcached (one server, then two) and exactly 100 get through, for
//! every strategy.
//!
//! The parent test starts the servers and runs this test binary four times as workers (the
//! ignored test `worker`, selected by name), which report what they admitted on stdout.

use std::{
    process::{Command, Stdio},
    sync::Arc,
};

use ratelimit_core::{ManualClock, StrategyKind, Timestamp};
use ratelimit_memcached::{MemcachedStorage, test_server::MemcachedServer};
use ratelimit_storage::{Charge, Key, Storage};

const PROCESSES: usize = 4;
const TASKS: usize = 64;
const HITS_PER_TASK: usize = 6;

/// Each scenario: a strategy, and whether time is the system's (`true`) or frozen at one
/// instant: GCRA and the sliding window refill as real time passes, so "exactly 100" holds for
/// them at one instant.
fn scenarios() -> Vec<(StrategyKind, bool)> {
    vec![
        (StrategyKind::FixedWindow, true),
        (StrategyKind::MovingWindow, true),
        (StrategyKind::FixedWindow, false),
        (StrategyKind::MovingWindow, false),
        (StrategyKind::SlidingWindowCounter, false),
        (StrategyKind::Gcra, false),
    ]
}

#[test]
#[ignore = "a worker process, started by the tests below"]
fn worker() {
    let url = std::env::var("RATELIMIT_WORKER_URL").expect(
        "a worker process: started by the concurrency tests, which set RATELIMIT_WORKER_URL",
    );
    let prefix = std::env::var("RATELIMIT_WORKER_PREFIX").unwrap();
    let frozen = Timestamp::from_nanos(
        std::env::var("RATELIMIT_WORKER_T0")
            .unwrap()
            .parse()
            .unwrap(),
    );
    for (i, (kind, system_time)) in scenarios().into_iter().enumerate() {
        let mut builder = MemcachedStorage::builder_from_uri(&url)
            .unwrap()
            .prefix(&prefix)
            // 256 tasks share one item: give the slowest answer room.
            .response_timeout(core::time::Duration::from_secs(5));
        if !system_time {
            builder = builder
                .clock(Arc::new(ManualClock::new(frozen)))
                .ttl_grace(core::time::Duration::from_secs(3600));
        }
        let store = builder.build().unwrap();
        let charge = Charge::new(
            Key::new("user", &format!("shared-{i}")),
            "100 per minute".parse().unwrap(),
            kind,
            1,
        );
        let admitted: usize = smol::block_on(async {
            let tasks: Vec<_> = (0..TASKS)
                .map(|_| {
                    let (store, batch) = (store.clone(), [charge.clone()]);
                    smol::spawn(async move {
                        let mut n = 0;
                        for _ in 0..HITS_PER_TASK {
                            n += usize::from(store.hit(&batch).await.unwrap().allowed);
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

fn hammer(url: &str, prefix: &str) {
    let exe = std::env::current_exe().unwrap();
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
                .unwrap()
        })
        .collect();
    let mut totals = vec![0usize; scenarios().len()];
    for child in children {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "worker failed: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut seen = 0;
        for line in stdout.lines().filter_map(|l| l.split("admitted ").nth(1)) {
            let mut parts = line.split_whitespace().map(|p| p.parse::<usize>().unwrap());
            let (i, n) = (parts.next().unwrap(), parts.next().unwrap());
            totals[i] += n;
            seen += 1;
        }
        assert_eq!(seen, scenarios().len(), "worker output: {stdout}");
    }
    for ((kind, system_time), total) in scenarios().into_iter().zip(totals) {
        let time = if system_time {
            "system time"
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

#[test]
fn four_processes_admit_exactly_the_limit_on_one_server() {
    let server = MemcachedServer::start();
    hammer(&server.url(), "single");
}

#[test]
fn four_processes_admit_exactly_the_limit_over_two_servers() {
    let (a, b) = (MemcachedServer::start(), MemcachedServer::start());
    hammer(
        &format!("memcached://{},{}", a.host_port(), b.host_port()),
        "two",
    );
}
