//! Where "now" comes from.
//!
//! The strategies never read a clock: they are handed `now`. Callers read it from a [`Clock`]:
//! [`SystemClock`] in production (with the `std` feature), [`ManualClock`] in tests, or their
//! own (an RTC on an embedded board, a time source shared with other machines).

use core::sync::atomic::{AtomicU64, Ordering};

use crate::time::{Duration, Timestamp};

/// A future that completes after a wait, as [`Sleep`] returns it.
#[cfg(feature = "alloc")]
#[cfg_attr(docsrs, doc(cfg(feature = "alloc")))]
pub type SleepFuture = core::pin::Pin<alloc::boxed::Box<dyn Future<Output = ()> + Send>>;

/// How to wait, without tying a crate to one async runtime: the companion of [`Clock`] for
/// code that waits until a limit has room (`ratekeeper-memory`'s `AsyncIoSleep` waits on
/// `async-io` timers; a test can complete at once and advance a [`ManualClock`]).
#[cfg(feature = "alloc")]
#[cfg_attr(docsrs, doc(cfg(feature = "alloc")))]
pub trait Sleep: Send + Sync {
    /// Completes after `duration`.
    fn sleep(&self, duration: core::time::Duration) -> SleepFuture;
}

/// A source of wall-clock time.
pub trait Clock {
    /// The current time.
    fn now(&self) -> Timestamp;
}

impl<C: Clock + ?Sized> Clock for &C {
    fn now(&self) -> Timestamp {
        (**self).now()
    }
}

/// The operating system's wall clock (`std::time::SystemTime`).
///
/// A system clock set before the epoch reads as the epoch; past the year 2554 it reads as
/// [`Timestamp::MAX`].
#[cfg(feature = "std")]
#[cfg_attr(docsrs, doc(cfg(feature = "std")))]
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

#[cfg(feature = "std")]
impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp::from_nanos(u64::try_from(since_epoch.as_nanos()).unwrap_or(u64::MAX))
    }
}

/// A clock that only moves when told to: for tests and simulations.
///
/// It is shared by reference (`&ManualClock` is a [`Clock`] too) and safe to use from several
/// threads; time never goes backwards unless [`ManualClock::set`] is asked to.
///
/// ```
/// use ratekeeper_core::{Clock, Duration, ManualClock, Timestamp};
///
/// let clock = ManualClock::new(Timestamp::from_secs(100));
/// clock.advance(Duration::from_millis(1500));
/// assert_eq!(clock.now(), Timestamp::from_millis(101_500));
/// ```
#[derive(Debug, Default)]
pub struct ManualClock {
    nanos: AtomicU64,
}

impl ManualClock {
    /// A clock that reads `start` until moved.
    pub const fn new(start: Timestamp) -> Self {
        Self {
            nanos: AtomicU64::new(start.as_nanos()),
        }
    }

    /// Moves the clock forward by `by` (a `core::time::Duration` or the strategies'
    /// nanosecond [`Duration`]), saturating at [`Timestamp::MAX`].
    pub fn advance(&self, by: impl Into<Duration>) {
        let by: Duration = by.into();
        // `fetch_update` cannot fail here: the closure always returns `Some`.
        let _ = self
            .nanos
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                Some(n.saturating_add(by.as_nanos()))
            });
    }

    /// Sets the clock to `to` (which may be earlier: tests of clocks going backwards).
    pub fn set(&self, to: Timestamp) {
        self.nanos.store(to.as_nanos(), Ordering::Release);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_nanos(self.nanos.load(Ordering::Acquire))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(Timestamp::from_secs(10));
        assert_eq!(clock.now(), Timestamp::from_secs(10));
        clock.advance(Duration::from_nanos(1));
        assert_eq!(clock.now().as_nanos(), 10_000_000_001);
        clock.advance(Duration::MAX);
        assert_eq!(clock.now(), Timestamp::MAX);
        clock.set(Timestamp::from_secs(5));
        let by_ref: &dyn Clock = &&clock;
        assert_eq!(by_ref.now(), Timestamp::from_secs(5));
    }

    #[cfg(feature = "std")]
    #[test]
    fn system_clock_reads_after_2020() {
        // 2020-01-01T00:00:00Z; a machine clock earlier than that is broken, not merely skewed.
        assert!(SystemClock.now() > Timestamp::from_secs(1_577_836_800));
    }
}
