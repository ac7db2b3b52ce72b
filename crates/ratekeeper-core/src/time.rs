//! Timestamps and durations as whole nanoseconds in a `u64`.
//!
//! Wall-clock time is used throughout (counters are shared between machines and headers carry
//! epoch seconds), so a [`Timestamp`] counts nanoseconds since the UNIX epoch. A `u64` of
//! nanoseconds reaches the year 2554. Arithmetic never wraps: every operation is either
//! `checked_*` (returns `None` on overflow) or `saturating_*`.

use core::fmt;

const NANOS_PER_MICRO: u64 = 1_000;
const NANOS_PER_MILLI: u64 = 1_000_000;
const NANOS_PER_SEC: u64 = 1_000_000_000;

/// A length of time in whole nanoseconds, as `u64`: the strategies' arithmetic type (8 bytes,
/// checked and saturating operations, no allocation). Configuration APIs of the `ratekeeper-*`
/// crates take `core::time::Duration`; the two convert both ways with `From` (a
/// `core::time::Duration` beyond 584 years saturates).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(u64);

impl Duration {
    /// No time at all.
    pub const ZERO: Self = Self(0);
    /// The longest representable duration (about 584 years).
    pub const MAX: Self = Self(u64::MAX);

    /// A duration of `nanos` nanoseconds.
    pub const fn from_nanos(nanos: u64) -> Self {
        Self(nanos)
    }

    /// A duration of `micros` microseconds, saturating at [`Duration::MAX`].
    pub const fn from_micros(micros: u64) -> Self {
        Self(micros.saturating_mul(NANOS_PER_MICRO))
    }

    /// A duration of `millis` milliseconds, saturating at [`Duration::MAX`].
    pub const fn from_millis(millis: u64) -> Self {
        Self(millis.saturating_mul(NANOS_PER_MILLI))
    }

    /// A duration of `secs` seconds, or `None` when it does not fit in `u64` nanoseconds.
    pub const fn checked_from_secs(secs: u64) -> Option<Self> {
        match secs.checked_mul(NANOS_PER_SEC) {
            Some(n) => Some(Self(n)),
            None => None,
        }
    }

    /// A duration of `secs` seconds, saturating at [`Duration::MAX`].
    pub const fn from_secs(secs: u64) -> Self {
        Self(secs.saturating_mul(NANOS_PER_SEC))
    }

    /// The duration in nanoseconds.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// The duration in whole microseconds, rounded down.
    pub const fn as_micros(self) -> u64 {
        self.0 / NANOS_PER_MICRO
    }

    /// The duration in whole seconds, rounded down.
    pub const fn as_secs(self) -> u64 {
        self.0 / NANOS_PER_SEC
    }

    /// The duration in whole seconds, rounded up (what a `Retry-After` header wants).
    pub const fn as_secs_ceil(self) -> u64 {
        self.0.div_ceil(NANOS_PER_SEC)
    }

    /// `self + rhs`, or `None` on overflow.
    pub const fn checked_add(self, rhs: Self) -> Option<Self> {
        match self.0.checked_add(rhs.0) {
            Some(n) => Some(Self(n)),
            None => None,
        }
    }

    /// `self - rhs`, or `None` when `rhs` is longer.
    pub const fn checked_sub(self, rhs: Self) -> Option<Self> {
        match self.0.checked_sub(rhs.0) {
            Some(n) => Some(Self(n)),
            None => None,
        }
    }

    /// `self * rhs`, or `None` on overflow.
    pub const fn checked_mul(self, rhs: u64) -> Option<Self> {
        match self.0.checked_mul(rhs) {
            Some(n) => Some(Self(n)),
            None => None,
        }
    }

    /// `self + rhs`, saturating at [`Duration::MAX`].
    pub const fn saturating_add(self, rhs: Self) -> Self {
        Self(self.0.saturating_add(rhs.0))
    }

    /// `self - rhs`, saturating at [`Duration::ZERO`].
    pub const fn saturating_sub(self, rhs: Self) -> Self {
        Self(self.0.saturating_sub(rhs.0))
    }

    /// `self * rhs`, saturating at [`Duration::MAX`].
    pub const fn saturating_mul(self, rhs: u64) -> Self {
        Self(self.0.saturating_mul(rhs))
    }
}

impl From<Duration> for core::time::Duration {
    fn from(d: Duration) -> Self {
        Self::from_nanos(d.0)
    }
}

impl From<core::time::Duration> for Duration {
    /// Converts, saturating at [`Duration::MAX`] for durations over about 584 years.
    fn from(d: core::time::Duration) -> Self {
        Self(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0 / NANOS_PER_SEC;
        let nanos = self.0 % NANOS_PER_SEC;
        if nanos == 0 {
            write!(f, "{secs}s")
        } else {
            write!(f, "{secs}.{nanos:09}s")
        }
    }
}

/// An instant: nanoseconds since the UNIX epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The UNIX epoch.
    pub const EPOCH: Self = Self(0);
    /// The last representable instant (in the year 2554).
    pub const MAX: Self = Self(u64::MAX);

    /// The instant `nanos` nanoseconds after the epoch.
    pub const fn from_nanos(nanos: u64) -> Self {
        Self(nanos)
    }

    /// The instant `micros` microseconds after the epoch, saturating at [`Timestamp::MAX`].
    pub const fn from_micros(micros: u64) -> Self {
        Self(micros.saturating_mul(NANOS_PER_MICRO))
    }

    /// The instant `millis` milliseconds after the epoch, saturating at [`Timestamp::MAX`].
    pub const fn from_millis(millis: u64) -> Self {
        Self(millis.saturating_mul(NANOS_PER_MILLI))
    }

    /// The instant `secs` seconds after the epoch, saturating at [`Timestamp::MAX`].
    pub const fn from_secs(secs: u64) -> Self {
        Self(secs.saturating_mul(NANOS_PER_SEC))
    }

    /// Nanoseconds since the epoch.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// Whole microseconds since the epoch, rounded down.
    pub const fn as_micros(self) -> u64 {
        self.0 / NANOS_PER_MICRO
    }

    /// Whole seconds since the epoch, rounded down.
    pub const fn as_secs(self) -> u64 {
        self.0 / NANOS_PER_SEC
    }

    /// Whole seconds since the epoch, rounded up (an `X-RateLimit-Reset` value that is never early).
    pub const fn as_secs_ceil(self) -> u64 {
        self.0.div_ceil(NANOS_PER_SEC)
    }

    /// `self + d`, or `None` past [`Timestamp::MAX`].
    pub const fn checked_add(self, d: Duration) -> Option<Self> {
        match self.0.checked_add(d.0) {
            Some(n) => Some(Self(n)),
            None => None,
        }
    }

    /// `self - d`, or `None` before the epoch.
    pub const fn checked_sub(self, d: Duration) -> Option<Self> {
        match self.0.checked_sub(d.0) {
            Some(n) => Some(Self(n)),
            None => None,
        }
    }

    /// `self + d`, saturating at [`Timestamp::MAX`].
    pub const fn saturating_add(self, d: Duration) -> Self {
        Self(self.0.saturating_add(d.0))
    }

    /// `self - d`, saturating at the epoch.
    pub const fn saturating_sub(self, d: Duration) -> Self {
        Self(self.0.saturating_sub(d.0))
    }

    /// The time from `earlier` to `self`, or `None` when `earlier` is later.
    pub const fn checked_duration_since(self, earlier: Self) -> Option<Duration> {
        match self.0.checked_sub(earlier.0) {
            Some(n) => Some(Duration(n)),
            None => None,
        }
    }

    /// The time from `earlier` to `self`, or zero when `earlier` is later.
    pub const fn saturating_duration_since(self, earlier: Self) -> Duration {
        Duration(self.0.saturating_sub(earlier.0))
    }
}

impl fmt::Display for Timestamp {
    /// Seconds since the epoch with nanosecond precision, e.g. `1700000000.250000000`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:09}",
            self.0 / NANOS_PER_SEC,
            self.0 % NANOS_PER_SEC
        )
    }
}

#[cfg(test)]
mod tests {
    use std::string::ToString;

    use super::*;

    #[test]
    fn conversions_round_as_documented() {
        let d = Duration::from_nanos(1_500_000_001);
        assert_eq!(d.as_secs(), 1);
        assert_eq!(d.as_secs_ceil(), 2);
        assert_eq!(d.as_micros(), 1_500_000);
        assert_eq!(Duration::from_secs(2).as_secs_ceil(), 2);
        assert_eq!(Timestamp::from_micros(7).as_nanos(), 7_000);
        assert_eq!(Timestamp::from_nanos(1).as_secs_ceil(), 1);
        assert_eq!(Timestamp::from_millis(1500).to_string(), "1.500000000");
        assert_eq!(Duration::from_millis(250).to_string(), "0.250000000s");
        assert_eq!(Duration::from_secs(3).to_string(), "3s");
    }

    #[test]
    fn arithmetic_never_wraps() {
        assert_eq!(Duration::checked_from_secs(u64::MAX), None);
        assert_eq!(Duration::from_secs(u64::MAX), Duration::MAX);
        assert_eq!(Timestamp::MAX.checked_add(Duration::from_nanos(1)), None);
        assert_eq!(Timestamp::MAX.saturating_add(Duration::MAX), Timestamp::MAX);
        assert_eq!(Timestamp::EPOCH.checked_sub(Duration::from_nanos(1)), None);
        assert_eq!(
            Timestamp::EPOCH.saturating_sub(Duration::MAX),
            Timestamp::EPOCH
        );
        let (a, b) = (Timestamp::from_secs(1), Timestamp::from_secs(2));
        assert_eq!(a.checked_duration_since(b), None);
        assert_eq!(a.saturating_duration_since(b), Duration::ZERO);
        assert_eq!(b.saturating_duration_since(a), Duration::from_secs(1));
        assert_eq!(Duration::MAX.checked_mul(2), None);
        assert_eq!(
            Duration::from_nanos(3).saturating_sub(Duration::from_nanos(5)),
            Duration::ZERO
        );
    }

    #[test]
    fn core_duration_round_trip() {
        let d = Duration::from_millis(1234);
        let c: core::time::Duration = d.into();
        assert_eq!(Duration::from(c), d);
        assert_eq!(Duration::from(core::time::Duration::MAX), Duration::MAX);
    }
}
