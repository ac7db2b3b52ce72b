//! Fault injection under continuous load (16 tasks), for any primary behind
//! [`FallbackStorage`]: SIGKILL and restart, SIGSTOP and SIGCONT, a restart that empties the
//! server, and the fail-open and fail-closed modes. Every request must be answered (allowed or
//! rejected, never an error, in the fallback and fail-open modes), none may wait much longer
//! than the timeout, and the store must go back to the primary once it answers.
//!
//! A backend's test wraps its test server in a type that implements [`Server`] and calls each
//! scenario with a way to build its store, whose own deadline must be far above [`TIMEOUT`]
//! (5 s), so that only the fallback's timeout can keep a request short.

use core::{
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};
use std::{
    sync::{Arc, Mutex},
    time::Instant,
};

use ratekeeper_core::{Limit, StrategyKind};
use ratekeeper_fallback::{Backoff, FallbackStorage, Mode, Transition};
use ratekeeper_storage::{Charge, Key, Storage};

/// A server the scenarios can break.
pub trait Server {
    /// SIGKILL.
    fn kill(&mut self);
    /// Start again on the same port, empty.
    fn restart(&mut self);
    /// SIGSTOP.
    fn pause(&self);
    /// SIGCONT.
    fn resume(&self);
}

/// Builds the primary store on the server (a fresh one per call).
pub type Primary<'a> = &'a dyn Fn() -> Arc<dyn Storage>;

/// The fallback's bound on a primary call: the promise under test.
pub const TIMEOUT: Duration = Duration::from_millis(200);

/// The probe backoff's ceiling: after a restart, the next probe comes within it.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// What a loaded 2-core machine may add to a wall-clock promise here (scheduling, a parallel
/// build on the other core). Every bound is the design's promise plus this; each fault the
/// bound guards against would exceed it by more.
const MARGIN: Duration = Duration::from_millis(1_500);

/// One scenario at a time: each loads both cores, and latency bounds are asserted.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
const TASKS: usize = 16;

#[derive(Clone, Debug)]
struct Sample {
    at: Instant,
    latency: Duration,
    outcome: Result<bool, String>,
}

struct Rig {
    store: FallbackStorage,
    transitions: Arc<Mutex<Vec<(Instant, Transition)>>>,
}

fn rig(primary: Primary<'_>, mode: Mode) -> Rig {
    let transitions = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&transitions);
    let store = FallbackStorage::builder(primary())
        .mode(mode)
        .timeout(TIMEOUT)
        .backoff(Backoff::new(Duration::from_millis(100), MAX_BACKOFF))
        .on_transition(move |t| log.lock().unwrap().push((Instant::now(), t.clone())))
        .build();
    Rig { store, transitions }
}

fn fallback_mode() -> Mode {
    Mode::Fallback {
        limits: vec!["30 per minute".parse().unwrap()],
        strategy: StrategyKind::FixedWindow,
    }
}

/// Four clients; on the primary their limit is never reached.
fn batch(task: usize, limit: &str) -> [Charge; 1] {
    [Charge::new(
        Key::new("ip", &format!("10.0.0.{}", task % 4)),
        limit.parse::<Limit>().unwrap(),
        StrategyKind::FixedWindow,
        1,
    )]
}

/// Runs `scenario` while `TASKS` tasks send requests (one every 2 ms each); returns every
/// sample.
fn under_load(store: &FallbackStorage, limit: &str, scenario: impl FnOnce()) -> Vec<Sample> {
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..TASKS)
        .map(|i| {
            let (store, stop, batch) = (store.clone(), Arc::clone(&stop), batch(i, limit));
            smol::spawn(async move {
                let mut samples = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let at = Instant::now();
                    let outcome = store
                        .hit(&batch)
                        .await
                        .map(|v| v.allowed)
                        .map_err(|e| e.to_string());
                    samples.push(Sample {
                        at,
                        latency: at.elapsed(),
                        outcome,
                    });
                    async_io::Timer::after(Duration::from_millis(2)).await;
                }
                samples
            })
        })
        .collect();
    scenario();
    stop.store(true, Ordering::Relaxed);
    smol::block_on(futures::future::join_all(tasks))
        .into_iter()
        .flatten()
        .collect()
}

fn wait(what: &str, limit: Duration, check: impl Fn() -> bool) -> Duration {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < limit,
            "waited {:?} for {what}, the bound",
            start.elapsed()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    start.elapsed()
}

fn errors(samples: &[Sample]) -> Vec<&Sample> {
    samples.iter().filter(|s| s.outcome.is_err()).collect()
}

/// The spells the store spent off the primary: when each began and, unless it was still on,
/// when it ended.
fn down_spells(transitions: &[(Instant, Transition)]) -> Vec<(Instant, Option<Instant>)> {
    let mut spells: Vec<(Instant, Option<Instant>)> = Vec::new();
    for (at, t) in transitions {
        match (t.primary_up, spells.last_mut()) {
            (false, _) => spells.push((*at, None)),
            (true, Some((_, end @ None))) => *end = Some(*at),
            (true, _) => {}
        }
    }
    spells
}

/// The slowest of `samples`, said for a failure message: when it was sent, relative to the
/// last of `events` (a name and an instant) before it, how long it waited and what it got.
fn slowest(samples: &[Sample], events: &[(&str, Instant)]) -> (Duration, String) {
    let Some(s) = samples.iter().max_by_key(|s| s.latency) else {
        return (Duration::ZERO, "no request was sent".into());
    };
    let since = events
        .iter()
        .filter(|(_, at)| *at <= s.at)
        .max_by_key(|(_, at)| *at)
        .map_or_else(
            || match events.first() {
                Some((name, at)) => format!("{:?} before {name}", *at - s.at),
                None => "with no fault".to_owned(),
            },
            |(name, at)| format!("{:?} after {name}", s.at - *at),
        );
    let told = format!(
        "the slowest of {} requests, sent {since}, waited {:?} and got {:?}",
        samples.len(),
        s.latency,
        s.outcome
    );
    (s.latency, told)
}

/// SIGKILL under load: the fallback answers every request, the restarted server takes the
/// calls back within the backoff's ceiling.
///
/// # Panics
/// When a promise breaks.
pub fn sigkill_then_restart(server: &mut dyn Server, primary: Primary<'_>) {
    let _one = serial();
    let r = rig(primary, fallback_mode());
    let (samples, [killed, restarted, back]) = kill_and_restart(&r, server);
    assert!(
        errors(&samples).is_empty(),
        "failed requests: {:?}",
        errors(&samples)
    );
    // On a loaded machine a call to the healthy primary can outlast the timeout: the store
    // then falls back for a while, as designed, and the fallback's tighter limit may reject.
    // Those spells are said, with the request that waited longest before the first; the
    // promises below are about the requests the primary decided.
    let downs = down_spells(&r.transitions.lock().unwrap());
    let on_primary = |s: &&Sample| {
        let end = s.at + s.latency;
        !downs
            .iter()
            .any(|&(down, up)| end >= down && up.is_none_or(|up| s.at <= up))
    };
    say_spurious(&samples, &downs, killed);
    let before: Vec<_> = samples
        .iter()
        .filter(|s| s.at < killed)
        .filter(on_primary)
        .collect();
    let during: Vec<_> = samples
        .iter()
        .filter(|s| s.at > killed && s.at < restarted)
        .collect();
    let after: Vec<_> = samples
        .iter()
        .filter(|s| s.at > back + Duration::from_millis(50))
        .filter(on_primary)
        .collect();
    let rejected = |v: &[&Sample]| v.iter().filter(|s| s.outcome == Ok(false)).count();
    println!(
        "{} requests: {} before the kill (rejected {}), {} during the outage (rejected {}), {} after (rejected {})",
        samples.len(),
        before.len(),
        rejected(&before),
        during.len(),
        rejected(&during),
        after.len(),
        rejected(&after)
    );
    assert!(
        !before.is_empty() && !during.is_empty() && !after.is_empty(),
        "requests before the kill, during the outage, after the return: {}, {}, {}",
        before.len(),
        during.len(),
        after.len()
    );
    assert_eq!(rejected(&before), 0, "the primary rejected below its limit");
    // The fallback limits decided: 4 clients x 30 admitted at most during the outage.
    let admitted_during = during.iter().filter(|s| s.outcome == Ok(true)).count();
    assert!(admitted_during <= 4 * 30, "{admitted_during}");
    assert!(
        rejected(&during) > 0,
        "none of the {} requests of the outage was rejected: the fallback limit never bit",
        during.len()
    );
    assert_eq!(
        rejected(&after),
        0,
        "back on the primary, whose limit is far away"
    );
    // The first two transitions are the outage and the return; a call that times out later on
    // a loaded machine may legitimately start another.
    let t = r.transitions.lock().unwrap();
    assert_eq!(
        t.iter()
            .take(2)
            .map(|(_, t)| t.primary_up)
            .collect::<Vec<_>>(),
        [false, true]
    );
    assert!(t[1].1.degraded_calls > 0);
}

/// The SIGKILL scenario's load: the kill, the switch to the fallback, the restart and the
/// return to the primary (checked within the backoff's ceiling). Returns the samples and the
/// instants of the kill, the restart and the return.
fn kill_and_restart(r: &Rig, server: &mut dyn Server) -> (Vec<Sample>, [Instant; 3]) {
    let (mut killed, mut restarted, mut back) = (None, None, None);
    let samples = under_load(&r.store, "1000000 per minute", || {
        std::thread::sleep(Duration::from_millis(300));
        server.kill();
        killed = Some(Instant::now());
        wait("the switch to the fallback", Duration::from_secs(5), || {
            !r.store.is_primary_up()
        });
        // Long enough for the fallback limit (30 per minute per client) to bite.
        std::thread::sleep(Duration::from_millis(800));
        server.restart();
        restarted = Some(Instant::now());
        let took = wait("the return to the primary", Duration::from_secs(10), || {
            r.store.is_primary_up()
        });
        back = Some(Instant::now());
        println!("back on the primary {took:?} after the restart");
        // Designed: within the probe backoff's ceiling plus one probe (itself bounded by the
        // timeout); a backoff stuck at its 30 s default would miss by far.
        assert!(
            took <= MAX_BACKOFF + TIMEOUT + MARGIN,
            "back on the primary {took:?} after the restart: over the backoff's ceiling \
             ({MAX_BACKOFF:?}), one probe ({TIMEOUT:?}) and the margin ({MARGIN:?})"
        );
        std::thread::sleep(Duration::from_millis(300));
    });
    (
        samples,
        [killed.unwrap(), restarted.unwrap(), back.unwrap()],
    )
}

/// Says how often the store left the healthy primary before the kill (a call over the
/// timeout on a loaded machine), with the slowest request before the first time.
fn say_spurious(samples: &[Sample], downs: &[(Instant, Option<Instant>)], killed: Instant) {
    let spurious: Vec<Instant> = downs
        .iter()
        .map(|&(down, _)| down)
        .filter(|&down| down < killed)
        .collect();
    if let Some(&first) = spurious.first() {
        let early: Vec<Sample> = samples.iter().filter(|s| s.at < first).cloned().collect();
        let (_, told) = slowest(&early, &[]);
        println!(
            "the healthy primary was left {} time(s) before the kill (a call over the {TIMEOUT:?} timeout); before the first, {told}",
            spurious.len()
        );
    }
}

/// SIGSTOP under load: no request waits on the hung server longer than the timeout.
///
/// # Panics
/// When a promise breaks.
pub fn sigstop_then_resume(server: &mut dyn Server, primary: Primary<'_>) {
    let _one = serial();
    let r = rig(primary, fallback_mode());
    let (mut paused_at, mut resumed_at) = (None, None);
    let samples = under_load(&r.store, "1000000 per minute", || {
        std::thread::sleep(Duration::from_millis(300));
        server.pause();
        paused_at = Some(Instant::now());
        wait("the switch to the fallback", Duration::from_secs(5), || {
            !r.store.is_primary_up()
        });
        std::thread::sleep(Duration::from_millis(500));
        server.resume();
        resumed_at = Some(Instant::now());
        let took = wait("the return to the primary", Duration::from_secs(10), || {
            r.store.is_primary_up()
        });
        println!("back on the primary {took:?} after SIGCONT");
        assert!(
            took <= MAX_BACKOFF + TIMEOUT + MARGIN,
            "back on the primary {took:?} after SIGCONT: over the backoff's ceiling \
             ({MAX_BACKOFF:?}), one probe ({TIMEOUT:?}) and the margin ({MARGIN:?})"
        );
        std::thread::sleep(Duration::from_millis(200));
    });
    assert!(
        errors(&samples).is_empty(),
        "failed requests: {:?}",
        errors(&samples)
    );
    let events = [
        ("SIGSTOP", paused_at.unwrap()),
        ("SIGCONT", resumed_at.unwrap()),
    ];
    let (worst, told) = slowest(&samples, &events);
    println!("{told} (timeout {TIMEOUT:?})");
    // The promise: no request waits on the hung server longer than the timeout. Without it a
    // request would wait for the store's own 5 s deadline.
    assert!(
        worst <= TIMEOUT + MARGIN,
        "{told}: over the timeout ({TIMEOUT:?}) and the margin for a loaded machine ({MARGIN:?})"
    );
    assert!(TIMEOUT + MARGIN < Duration::from_secs(5));
    let t = r.transitions.lock().unwrap();
    assert_eq!(
        t.iter()
            .take(2)
            .map(|(_, t)| t.primary_up)
            .collect::<Vec<_>>(),
        [false, true]
    );
}

/// A restart that empties the server: counting resumes from zero, exactly.
///
/// # Panics
/// When a promise breaks.
pub fn restart_that_empties(server: &mut dyn Server, primary: Primary<'_>) {
    let _one = serial();
    let r = rig(primary, Mode::same_limits_in_memory());
    let b = batch(0, "5 per minute");
    smol::block_on(async {
        for _ in 0..3 {
            assert!(r.store.hit(&b).await.unwrap().allowed);
        }
    });
    server.restart();
    // The old connection is dead: the next call falls back, then the probe finds the new
    // server, which knows nothing of the 3 hits.
    smol::block_on(async {
        assert!(r.store.hit(&b).await.unwrap().allowed);
    });
    wait("the return to the primary", Duration::from_secs(10), || {
        r.store.is_primary_up()
    });
    smol::block_on(async {
        let mut admitted = 0;
        for _ in 0..8 {
            admitted += usize::from(r.store.hit(&b).await.unwrap().allowed);
        }
        assert_eq!(admitted, 5, "a fresh server counts from zero, exactly");
    });
}

/// Fail-open allows everything while the server is dead; fail-closed refuses at once, without
/// calling a hung primary on every request.
///
/// # Panics
/// When a promise breaks.
pub fn fail_open_and_fail_closed(server: &mut dyn Server, primary: Primary<'_>) {
    let _one = serial();
    let open = rig(primary, Mode::FailOpen);
    let mut killed = None;
    let open_samples = under_load(&open.store, "1 per minute", || {
        std::thread::sleep(Duration::from_millis(100));
        server.kill();
        killed = Some(Instant::now());
        std::thread::sleep(Duration::from_millis(400));
    });
    assert!(
        errors(&open_samples).is_empty(),
        "{:?}",
        errors(&open_samples)
    );
    let after_kill = open_samples
        .iter()
        .filter(|s| s.at > killed.unwrap() && s.outcome == Ok(true))
        .count();
    println!(
        "fail-open: {after_kill} requests allowed after the kill (limit: 1 per minute per client)"
    );
    assert!(after_kill > 4, "{after_kill}");

    // Fail-closed against a hung (SIGSTOPped) primary: once a call has timed out, requests are
    // refused at once, and the primary sees the probes only, not every request (each of which
    // would then wait out the timeout).
    server.restart();
    let calls = Arc::new(core::sync::atomic::AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let counting = move || -> Arc<dyn Storage> {
        Arc::new(Counting {
            inner: primary(),
            calls: Arc::clone(&counted),
        })
    };
    let closed = rig(&counting, Mode::FailClosed);
    let (mut paused, mut down) = (None, None);
    let closed_samples = under_load(&closed.store, "1000000 per minute", || {
        std::thread::sleep(Duration::from_millis(100));
        server.pause();
        paused = Some(Instant::now());
        wait("the switch to fail-closed", Duration::from_secs(5), || {
            !closed.store.is_primary_up()
        });
        down = Some((Instant::now(), calls.load(Ordering::Relaxed)));
        std::thread::sleep(Duration::from_millis(500));
    });
    let calls_while_down = calls.load(Ordering::Relaxed) - down.unwrap().1;
    server.resume();
    let refused: Vec<Sample> = closed_samples
        .iter()
        .filter(|s| s.at > down.unwrap().0)
        .cloned()
        .collect();
    assert!(
        refused.iter().all(|s| s.outcome.is_err()),
        "fail-closed admitted a request while the primary was down"
    );
    println!(
        "fail-closed: {} requests refused while down; the primary saw {calls_while_down} calls then",
        refused.len()
    );
    // Probes back off from 100 ms: a handful in half a second, against hundreds of requests.
    assert!(
        refused.len() > 50 && calls_while_down <= 10,
        "fail-closed called the hung primary {calls_while_down} times for {} requests",
        refused.len()
    );
    let events = [
        ("SIGSTOP", paused.unwrap()),
        ("the switch", down.unwrap().0),
    ];
    let (worst, told) = slowest(&refused, &events);
    assert!(
        worst <= TIMEOUT + MARGIN,
        "fail-closed: {told}: over the timeout ({TIMEOUT:?}) and the margin ({MARGIN:?})"
    );
    println!("fail-closed, all errors: {told}");
}

/// A primary that counts the calls made to it.
#[derive(Debug)]
struct Counting {
    inner: Arc<dyn Storage>,
    calls: Arc<core::sync::atomic::AtomicUsize>,
}

impl Storage for Counting {
    fn apply<'a>(
        &'a self,
        op: ratekeeper_storage::Op,
        batch: &'a [Charge],
    ) -> ratekeeper_storage::StorageFuture<'a, ratekeeper_storage::Verdict> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.inner.apply(op, batch)
    }
    fn clear<'a>(&'a self, key: &'a Key) -> ratekeeper_storage::StorageFuture<'a, ()> {
        self.inner.clear(key)
    }
    fn reset(&self) -> ratekeeper_storage::StorageFuture<'_, ()> {
        self.inner.reset()
    }
    fn health(&self) -> ratekeeper_storage::StorageFuture<'_, ()> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.inner.health()
    }
}
