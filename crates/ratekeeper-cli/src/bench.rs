//! `bench`: decisions per second and latency against a live store, so that an operator can
//! size a deployment: `concurrency` tasks, each deciding for a client in turn, on a smol
//! executor with a thread per core.

use core::{
    net::{IpAddr, Ipv4Addr},
    sync::atomic::{AtomicBool, Ordering},
};
use std::{sync::Arc, time::Instant};

use ratekeeper_core::{Clock, StrategyKind, SystemClock};
use ratekeeper_decision::{Limiter, RequestView};

use crate::{error::CliError, live::reachable};

/// What to benchmark.
#[derive(Clone, Debug)]
pub struct Bench {
    /// The store's URI.
    pub storage: String,
    /// The strategy.
    pub strategy: StrategyKind,
    /// Concurrent tasks.
    pub concurrency: usize,
    /// How long to run.
    pub duration: core::time::Duration,
    /// The limits each decision checks (large by default, so that every request is allowed
    /// and the figure is the store's).
    pub limits: String,
    /// Distinct clients, taken in turn.
    pub clients: u32,
}

/// What a benchmark measured.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchReport {
    /// Decisions made.
    pub decisions: u64,
    /// Of which allowed.
    pub allowed: u64,
    /// Of which rejected.
    pub rejected: u64,
    /// Decisions that failed (the store did).
    pub errors: u64,
    /// Wall time of the run.
    pub elapsed: core::time::Duration,
    /// Latency of one decision, median.
    pub p50: core::time::Duration,
    /// 99th percentile.
    pub p99: core::time::Duration,
    /// The slowest.
    pub max: core::time::Duration,
    /// This process's CPU time (user and system) per decision, where the platform tells it.
    pub cpu_per_decision: Option<core::time::Duration>,
    /// How the Redis client shared the wire during the run (all zero for other stores).
    pub wire: ratekeeper_stores::ClientCounts,
}

impl BenchReport {
    /// Decisions per second.
    pub fn per_second(&self) -> f64 {
        self.decisions as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

#[derive(Default)]
struct TaskTally {
    allowed: u64,
    rejected: u64,
    errors: u64,
    /// Nanoseconds per decision.
    latencies: Vec<u64>,
}

/// Runs the benchmark; `tick` is called about ten times a second with the time run so far.
pub fn run(
    args: &Bench,
    tick: impl Fn(core::time::Duration) + Sync,
) -> Result<BenchReport, CliError> {
    if args.concurrency == 0 || args.concurrency > 10_000 {
        return Err(CliError::usage("--concurrency must be from 1 to 10000"));
    }
    let limiter = limiter(args)?;
    let clients = args.clients.max(1);
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(args.concurrency);
    let executor = smol::Executor::new();
    let (cpu_before, wire_before) = (cpu_time(), ratekeeper_stores::client_counts());
    let started = Instant::now();
    let deadline = started + args.duration;
    let tasks: Vec<_> = (0..args.concurrency)
        .map(|task| {
            executor.spawn(decide_until(
                limiter.clone(),
                task as u32 % clients,
                clients,
                deadline,
            ))
        })
        .collect();
    let tallies = on_threads(&executor, threads, async {
        let ticker = async {
            loop {
                smol::Timer::after(core::time::Duration::from_millis(100)).await;
                tick(started.elapsed().min(args.duration));
            }
        };
        let all = futures::future::join_all(tasks);
        futures::pin_mut!(all);
        futures::pin_mut!(ticker);
        match futures::future::select(all, ticker).await {
            futures::future::Either::Left((tallies, _)) => tallies,
            futures::future::Either::Right(((), _)) => unreachable!("the ticker never ends"),
        }
    });
    let mut report = report(tallies, started.elapsed());
    report.wire = ratekeeper_stores::client_counts().since(&wire_before);
    report.cpu_per_decision = cpu_before
        .zip(cpu_time())
        .map(|(before, after)| after.saturating_sub(before) / report.decisions.max(1) as u32);
    Ok(report)
}

/// This process's CPU time so far, user and system (Linux: `/proc/self/stat`, in the kernel's
/// clock ticks of 10 ms, which a run of seconds averages out).
fn cpu_time() -> Option<core::time::Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The fields after the command name (which may hold spaces, and ends at the last ')').
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(core::time::Duration::from_millis((utime + stime) * 10))
}

/// A ratio for people, or "-" without a denominator.
fn per(n: u64, d: u64) -> String {
    if d == 0 {
        "-".into()
    } else {
        format!("{:.2}", n as f64 / d as f64)
    }
}

/// The limiter under test: the store `--storage` names (checked reachable), the limits and
/// strategy asked for, under a key prefix of its own.
fn limiter(args: &Bench) -> Result<Limiter, CliError> {
    crate::error::parse_limit_string(&args.limits)?;
    let clock: Arc<dyn Clock + Send + Sync> = Arc::new(SystemClock);
    let storage = ratekeeper_stores::Stores::new()
        .open_uri(&args.storage, clock)
        .map_err(|e| CliError::Storage(e.to_string()))?;
    smol::block_on(reachable(&storage))?;
    Limiter::builder()
        .storage(storage)
        .strategy(args.strategy)
        .default_limits(&args.limits)
        .key_prefix("RATELIMIT-BENCH")
        .build()
        .map_err(|e| CliError::Storage(e.to_string()))
}

/// One task's decisions until `deadline`, for clients `client`, `client + 1`, ... in turn
/// (modulo `clients`), each by its address 10.x.y.z.
async fn decide_until(
    limiter: Limiter,
    mut client: u32,
    clients: u32,
    deadline: Instant,
) -> TaskTally {
    let mut tally = TaskTally::default();
    while Instant::now() < deadline {
        let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | client));
        let req = RequestView::new("GET", "/bench").with_peer(ip);
        let t = Instant::now();
        let decision = limiter.check(&req).await;
        tally.latencies.push(t.elapsed().as_nanos() as u64);
        match decision {
            Ok(d) if d.is_allowed() => tally.allowed += 1,
            Ok(_) => tally.rejected += 1,
            Err(_) => tally.errors += 1,
        }
        client = (client + 1) % clients;
        // An in-process store never yields: let the other tasks in.
        smol::future::yield_now().await;
    }
    tally
}

/// Runs `main` on `executor` with `threads` threads driving it (this one included).
fn on_threads<T>(
    executor: &smol::Executor<'_>,
    threads: usize,
    main: impl Future<Output = T>,
) -> T {
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        for _ in 1..threads {
            scope.spawn(|| {
                smol::block_on(executor.run(async {
                    while !stop.load(Ordering::Relaxed) {
                        smol::Timer::after(core::time::Duration::from_millis(20)).await;
                    }
                }))
            });
        }
        let out = smol::block_on(executor.run(main));
        stop.store(true, Ordering::Relaxed);
        out
    })
}

/// The tasks' tallies summed, with the latency quantiles.
fn report(tallies: Vec<TaskTally>, elapsed: core::time::Duration) -> BenchReport {
    let mut latencies: Vec<u64> = Vec::new();
    let (mut allowed, mut rejected, mut errors) = (0, 0, 0);
    for t in tallies {
        allowed += t.allowed;
        rejected += t.rejected;
        errors += t.errors;
        latencies.extend(t.latencies);
    }
    latencies.sort_unstable();
    let at = |q: f64| {
        let i = ((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len().max(1)) - 1;
        core::time::Duration::from_nanos(latencies.get(i).copied().unwrap_or(0))
    };
    BenchReport {
        decisions: allowed + rejected + errors,
        allowed,
        rejected,
        errors,
        elapsed,
        p50: at(0.50),
        p99: at(0.99),
        max: core::time::Duration::from_nanos(latencies.last().copied().unwrap_or(0)),
        cpu_per_decision: None,
        wire: ratekeeper_stores::ClientCounts::default(),
    }
}

/// A latency for people.
fn us(d: core::time::Duration) -> String {
    let micros = d.as_secs_f64() * 1e6;
    if micros >= 1_000.0 {
        format!("{:.1} ms", micros / 1e3)
    } else {
        format!("{micros:.1} µs")
    }
}

/// The report for people.
pub fn render(args: &Bench, r: &BenchReport) -> String {
    format!(
        "{} tasks for {:.1} s, {}, limits {:?}, {} clients\n\
         decisions  {} ({:.0}/s)\n\
         allowed    {}\n\
         rejected   {}\n\
         errors     {}\n\
         latency    p50 {}, p99 {}, max {}\n\
         client CPU {} per decision\n\
         Redis      {} commands per write, {} replies per read, {} decisions per call\n",
        args.concurrency,
        r.elapsed.as_secs_f64(),
        args.strategy.name(),
        args.limits,
        args.clients,
        r.decisions,
        r.per_second(),
        r.allowed,
        r.rejected,
        r.errors,
        us(r.p50),
        us(r.p99),
        us(r.max),
        r.cpu_per_decision.map_or_else(|| "-".into(), us),
        per(r.wire.commands, r.wire.writes),
        per(r.wire.replies, r.wire.reads),
        per(r.wire.shared_batches, r.wire.shared_calls),
    )
}

/// The report as JSON.
pub fn to_json(args: &Bench, r: &BenchReport) -> serde_json::Value {
    serde_json::json!({
        "strategy": args.strategy.name(),
        "concurrency": args.concurrency,
        "limits": args.limits,
        "clients": args.clients,
        "elapsed_secs": r.elapsed.as_secs_f64(),
        "decisions": r.decisions,
        "decisions_per_sec": r.per_second(),
        "allowed": r.allowed,
        "rejected": r.rejected,
        "errors": r.errors,
        "p50_us": r.p50.as_secs_f64() * 1e6,
        "p99_us": r.p99.as_secs_f64() * 1e6,
        "max_us": r.max.as_secs_f64() * 1e6,
        "client_cpu_us_per_decision": r.cpu_per_decision.map(|d| d.as_secs_f64() * 1e6),
        "redis_writes": r.wire.writes,
        "redis_commands": r.wire.commands,
        "redis_reads": r.wire.reads,
        "redis_replies": r.wire.replies,
        "redis_shared_calls": r.wire.shared_calls,
        "redis_shared_batches": r.wire.shared_batches,
    })
}
