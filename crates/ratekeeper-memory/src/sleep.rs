//! Waiting, without tying the crate to one async runtime.

use core::time::Duration;

/// How [`KeyedLimiter::until_ready`](crate::KeyedLimiter::until_ready) and the sweeper wait
/// (defined beside `Clock` in `ratekeeper-core`).
pub use ratekeeper_core::{Sleep, SleepFuture};

/// Sleeps on `async-io` timers: the reactor of smol, which also drives async-std, so the same
/// code runs under both.
#[derive(Clone, Copy, Debug, Default)]
pub struct AsyncIoSleep;

impl Sleep for AsyncIoSleep {
    fn sleep(&self, duration: Duration) -> SleepFuture {
        let timer = async_io::Timer::after(duration);
        Box::pin(async move {
            timer.await;
        })
    }
}
