//! The outage modes, transitions and probe schedule, over a primary that fails on command (no
//! server, no waiting: the prober's sleeps are recorded, not slept).

use core::{
    sync::atomic::{AtomicU8, AtomicU32, Ordering},
    time::Duration,
};
use std::sync::{Arc, Mutex, mpsc};

use ratekeeper_core::{Limit, StrategyKind};
use ratekeeper_fallback::{Backoff, FallbackStorage, Mode, Transition};
use ratekeeper_memory::{MemoryStorage, Sleep, SleepFuture};
use ratekeeper_storage::{Charge, Key, Op, Storage, StorageError, StorageFuture, Verdict};

const UP: u8 = 0;
const DOWN: u8 = 1;
const MISCONFIGURED: u8 = 2;
/// Answers pings, refuses every call (Redis out of memory).
const REFUSING: u8 = 3;

/// A primary that is up, down or misconfigured on command; its health fails `failing_probes`
/// times before it reports the current state.
#[derive(Debug, Default)]
struct Switchable {
    state: AtomicU8,
    failing_probes: AtomicU32,
    calls: AtomicU32,
    store: MemoryStorage,
}

fn unreachable() -> StorageError {
    StorageError::unreachable("test", "switched off")
}

impl Storage for Switchable {
    fn apply<'a>(&'a self, op: Op, batch: &'a [Charge]) -> StorageFuture<'a, Verdict> {
        Box::pin(async move {
            self.calls.fetch_add(1, Ordering::SeqCst);
            match self.state.load(Ordering::SeqCst) {
                UP => self.store.apply_sync(op, batch),
                DOWN => Err(unreachable()),
                REFUSING => Err(StorageError::refused("test", "OOM command not allowed")),
                _ => Err(StorageError::configuration("test", "bad limit")),
            }
        })
    }
    fn clear<'a>(&'a self, key: &'a Key) -> StorageFuture<'a, ()> {
        Box::pin(async move {
            self.store.clear_sync(key);
            Ok(())
        })
    }
    fn reset(&self) -> StorageFuture<'_, ()> {
        Box::pin(async move { Ok(()) })
    }
    fn health(&self) -> StorageFuture<'_, ()> {
        Box::pin(async move {
            let left = self.failing_probes.load(Ordering::SeqCst);
            if left > 0 {
                self.failing_probes.store(left - 1, Ordering::SeqCst);
                return Err(unreachable());
            }
            match self.state.load(Ordering::SeqCst) {
                DOWN => Err(unreachable()),
                _ => Ok(()),
            }
        })
    }
}

/// Records the waits; each returns when the test sends a tick (the prober runs on its own
/// thread, so blocking there holds nobody else). Every rig is gated: a prober whose waits
/// returned at once would spin a core for as long as its probes fail.
#[derive(Debug, Default)]
struct RecordedSleep {
    waits: Mutex<Vec<Duration>>,
    gate: Mutex<Option<mpsc::Receiver<()>>>,
}

impl Sleep for RecordedSleep {
    fn sleep(&self, duration: Duration) -> SleepFuture {
        self.waits.lock().unwrap().push(duration);
        if let Some(gate) = &*self.gate.lock().unwrap() {
            let _ = gate.recv_timeout(Duration::from_secs(10));
        }
        Box::pin(async {})
    }
}

fn charge(key: &str, limit: &str, cost: u64) -> Charge {
    Charge::new(
        Key::new("ip", key).under(&["GET /x"]),
        limit.parse::<Limit>().unwrap(),
        StrategyKind::FixedWindow,
        cost,
    )
}

struct Rig {
    primary: Arc<Switchable>,
    store: FallbackStorage,
    sleeps: Arc<RecordedSleep>,
    /// Lets one prober wait end.
    tick: mpsc::Sender<()>,
    transitions: mpsc::Receiver<Transition>,
}

fn rig(mode: Mode) -> Rig {
    let primary = Arc::new(Switchable::default());
    let sleeps = Arc::new(RecordedSleep::default());
    let (tick, ticks) = mpsc::channel();
    *sleeps.gate.lock().unwrap() = Some(ticks);
    let (tx, transitions) = mpsc::channel();
    let tx = Mutex::new(tx);
    let store = FallbackStorage::builder(primary.clone())
        .mode(mode)
        .sleep(sleeps.clone())
        .on_transition(move |t| {
            let _ = tx.lock().unwrap().send(t.clone());
        })
        .build();
    Rig {
        primary,
        store,
        sleeps,
        tick,
        transitions,
    }
}

fn next(rx: &mpsc::Receiver<Transition>) -> Transition {
    rx.recv_timeout(Duration::from_secs(10))
        .expect("a transition")
}

#[test]
fn the_failing_call_is_answered_and_probes_back_off_from_the_failure() {
    let r = rig(Mode::same_limits_in_memory());
    let tick = &r.tick;
    let batch = [charge("1", "3 per minute", 1)];
    smol::block_on(async {
        assert!(r.store.hit(&batch).await.unwrap().allowed);
        // Down: the call that sees it is not lost.
        r.primary.state.store(DOWN, Ordering::SeqCst);
        let v = r.store.hit(&batch).await.unwrap();
        assert!(v.allowed);
        let down = next(&r.transitions);
        assert!(!down.primary_up);
        assert_eq!(down.outages, 1);
        assert!(down.error.unwrap().contains("switched off"));
        // While down, calls skip the primary entirely: the memory store counts (fresh there).
        let calls_before = r.primary.calls.load(Ordering::SeqCst);
        for _ in 0..2 {
            assert!(r.store.hit(&batch).await.unwrap().allowed);
        }
        assert_eq!(r.primary.calls.load(Ordering::SeqCst), calls_before);
        // The primary comes back; four probes still fail, the fifth succeeds.
        r.primary.failing_probes.store(4, Ordering::SeqCst);
        r.primary.state.store(UP, Ordering::SeqCst);
        for _ in 0..5 {
            tick.send(()).unwrap();
        }
        let up = next(&r.transitions);
        assert!(up.primary_up);
        assert_eq!(up.failed_probes, 4);
        assert!(up.degraded_calls >= 3, "{up:?}");
        let waits: Vec<u128> = r
            .sleeps
            .waits
            .lock()
            .unwrap()
            .iter()
            .map(Duration::as_millis)
            .collect();
        assert_eq!(waits, [250, 500, 1000, 2000, 4000]);
        assert!(r.store.is_primary_up());
        // Back on the primary: its count went on from before the outage (1 hit there).
        let v = r.store.hit(&batch).await.unwrap();
        assert_eq!(v.statuses[0].remaining, 1);
        let stats = r.store.stats();
        assert_eq!((stats.primary_up, stats.outages), (true, 1));
    });
}

/// A primary that answers pings but refuses calls (Redis out of memory) is down until a call
/// succeeds again: probing it with a ping would bring it back at once, and the next call would
/// fail again (flapping).
#[test]
fn a_refusing_primary_is_down_until_a_write_succeeds() {
    let r = rig(Mode::same_limits_in_memory());
    let batch = [charge("1", "3 per minute", 1)];
    smol::block_on(async {
        r.primary.state.store(REFUSING, Ordering::SeqCst);
        assert!(
            r.store.hit(&batch).await.unwrap().allowed,
            "answered in memory"
        );
        let down = next(&r.transitions);
        assert!(!down.primary_up);
        assert!(down.error.unwrap().contains("refused"));
        // Pings succeed, writes do not: four probes, still down, no transition.
        let calls = r.primary.calls.load(Ordering::SeqCst);
        for _ in 0..4 {
            r.tick.send(()).unwrap();
        }
        let probed = || r.primary.calls.load(Ordering::SeqCst) - calls;
        for _ in 0..1000 {
            if probed() >= 4 {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(probed(), 4, "each probe was a call, not a ping");
        assert!(r.transitions.try_recv().is_err(), "no flapping");
        assert!(!r.store.is_primary_up());
        // Room again: the next probe's write succeeds.
        r.primary.state.store(UP, Ordering::SeqCst);
        r.tick.send(()).unwrap();
        let up = next(&r.transitions);
        assert!(up.primary_up);
        assert_eq!(up.failed_probes, 4);
        let stats = r.store.stats();
        assert_eq!((stats.outages, stats.refusals), (1, 1));
    });
}

#[test]
fn fallback_limits_cap_each_client_on_top_of_the_batch() {
    let r = rig(Mode::Fallback {
        limits: vec![
            "2 per minute".parse().unwrap(),
            "10 per hour".parse().unwrap(),
        ],
        strategy: StrategyKind::FixedWindow,
    });
    r.primary.state.store(DOWN, Ordering::SeqCst);
    r.primary.failing_probes.store(u32::MAX, Ordering::SeqCst);
    smol::block_on(async {
        // Two routes, one client: the fallback counts the client once per request.
        let route_a = [
            charge("7", "100 per minute", 1),
            charge("7", "1000 per day", 1),
        ];
        let gate = charge("7", "5 per minute", 0).needing(1);
        let route_b = [charge("7", "50 per minute", 1), gate];
        let a = r.store.hit(&route_a).await.unwrap();
        assert!(a.allowed);
        assert_eq!(
            a.statuses[0].remaining, 1,
            "the 2 per minute fallback decides"
        );
        let b = r.store.hit(&route_b).await.unwrap();
        assert!(b.allowed);
        assert_eq!(b.statuses.len(), 2);
        let third = r.store.hit(&route_a).await.unwrap();
        assert!(!third.allowed);
        assert_eq!(third.rejected_by(), Some(0));
        assert_ne!(third.retry_after(), ratekeeper_core::RetryAfter::NOW);
        // Another client is counted apart.
        assert!(
            r.store
                .hit(&[charge("8", "100 per minute", 1)])
                .await
                .unwrap()
                .allowed
        );
        // A refund goes back to the same fallback counter.
        r.store.refund(&route_a).await.unwrap();
        assert!(r.store.hit(&route_a).await.unwrap().allowed);
        // The batch's own limits still count: never looser than the primary would be.
        let tight = [charge("9", "1 per minute", 1)];
        assert!(r.store.hit(&tight).await.unwrap().allowed);
        let second = r.store.hit(&tight).await.unwrap();
        assert!(
            !second.allowed,
            "the route's own 1 per minute, under a cap of 2"
        );
        assert_eq!(second.statuses[0].remaining, 0);
    });
}

#[test]
fn fail_open_allows_and_fail_closed_rejects_without_calling_the_primary() {
    let open = rig(Mode::FailOpen);
    let closed = rig(Mode::FailClosed);
    for r in [&open, &closed] {
        r.primary.state.store(DOWN, Ordering::SeqCst);
        r.primary.failing_probes.store(u32::MAX, Ordering::SeqCst);
    }
    let batch = [charge("1", "1 per minute", 1)];
    smol::block_on(async {
        for _ in 0..5 {
            let v = open.store.hit(&batch).await.unwrap();
            assert!(v.allowed);
            assert_eq!(v.statuses[0].remaining, 0);
        }
        assert_eq!(open.store.stats().degraded_calls, 5);
        let first = closed.store.hit(&batch).await.unwrap_err();
        assert!(first.to_string().contains("switched off"), "{first}");
        let later = closed.store.hit(&batch).await.unwrap_err();
        assert!(later.is_unavailable(), "{later}");
        assert_eq!(closed.primary.calls.load(Ordering::SeqCst), 1);
    });
}

#[test]
fn configuration_errors_are_not_outages() {
    let r = rig(Mode::FailOpen);
    r.primary.state.store(MISCONFIGURED, Ordering::SeqCst);
    let err = smol::block_on(r.store.hit(&[charge("1", "1 per minute", 1)])).unwrap_err();
    assert!(matches!(err, StorageError::Configuration { .. }));
    assert!(r.store.is_primary_up());
    assert!(r.transitions.try_recv().is_err());
}

#[test]
fn the_default_backoff_is_a_quarter_second_doubling_to_thirty() {
    assert_eq!(
        Backoff::default(),
        Backoff::new(Duration::from_millis(250), Duration::from_secs(30))
    );
}
