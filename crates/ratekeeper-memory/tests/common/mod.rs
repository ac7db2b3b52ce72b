//! Test helpers: a manual clock and sleeper, and running one async scenario on both runtimes.

#![allow(dead_code, unreachable_pub)]

use std::sync::{Arc, Mutex};

use ratekeeper_core::{Duration, ManualClock, Timestamp};
use ratekeeper_memory::{MemoryStorage, Sleep, SleepFuture};

/// Minute-aligned, so sliding-window buckets line up with round numbers.
pub const T0: Timestamp = Timestamp::from_secs(1_700_000_040);

/// A sleeper that does not sleep: it moves the manual clock by the wait and records it.
#[derive(Debug)]
pub struct ManualSleep {
    pub clock: Arc<ManualClock>,
    pub waits: Mutex<Vec<Duration>>,
}

impl Sleep for ManualSleep {
    fn sleep(&self, duration: core::time::Duration) -> SleepFuture {
        let duration = Duration::from(duration);
        self.clock.advance(duration);
        self.waits.lock().unwrap().push(duration);
        Box::pin(async {})
    }
}

/// A store on a manual clock (and manual sleeper), with the given builder tweaks.
pub fn manual_store(
    tweak: impl FnOnce(
        ratekeeper_memory::MemoryStorageBuilder,
    ) -> ratekeeper_memory::MemoryStorageBuilder,
) -> (MemoryStorage, Arc<ManualClock>, Arc<ManualSleep>) {
    let clock = Arc::new(ManualClock::new(T0));
    let sleep = Arc::new(ManualSleep {
        clock: Arc::clone(&clock),
        waits: Mutex::new(Vec::new()),
    });
    let store = tweak(
        MemoryStorage::builder()
            .clock(clock.clone())
            .sleep(sleep.clone()),
    )
    .build();
    (store, clock, sleep)
}
