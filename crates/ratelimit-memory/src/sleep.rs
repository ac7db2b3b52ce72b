//! Waiting, without tying the crate to one async runtime.

use core::{future::Future, pin::Pin};

use ratelimit_core::Duration;

/// A future that completes after a wait.
pub type SleepFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// How [`KeyedLimiter::until_ready`](crate::KeyedLimiter::until_ready) waits.
pub trait Sleep: Send + Sync {
    /// Completes after `duration`.
    fn sleep(&self, duration: Duration) -> SleepFuture;
}

/// Sleeps on `async-io` timers: the reactor of smol, which also drives async-std, so the same
/// code runs under both.
#[derive(Clone, Copy, Debug, Default)]
pub struct AsyncIoSleep;

impl Sleep for AsyncIoSleep {
    fn sleep(&self, duration: Duration) -> SleepFuture {
        let timer = async_io::Timer::after(duration.into());
        Box::pin(async move {
            timer.await;
        })
    }
}
