//! When to probe a primary that went down: exponential delays, counted from the failure.

use core::time::Duration;

/// Probe delays: `initial` after the failure, then doubling after each failed probe, never more
/// than `max` apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Backoff {
    /// The delay before the first probe.
    pub initial: Duration,
    /// The longest delay between two probes.
    pub max: Duration,
}

impl Default for Backoff {
    /// 0.25 s, doubling to 30 s.
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(250),
            max: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// Probes `initial` apart at first, doubling up to `max`.
    pub const fn new(initial: Duration, max: Duration) -> Self {
        Self { initial, max }
    }

    /// The delay before probe number `attempt` (0 for the first).
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
        self.initial
            .checked_mul(factor)
            .unwrap_or(self.max)
            .min(self.max)
            .max(Duration::from_millis(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap() {
        let b = Backoff::default();
        let delays: Vec<u128> = (0..10).map(|i| b.delay(i).as_millis()).collect();
        assert_eq!(
            delays,
            [250, 500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
        );
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(30));
        let zero = Backoff {
            initial: Duration::ZERO,
            max: Duration::ZERO,
        };
        assert_eq!(zero.delay(0), Duration::from_millis(1), "never a busy loop");
    }
}
