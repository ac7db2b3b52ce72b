//! A state of any of the four strategies, chosen at run time: for whoever keeps states of
//! strategies named by configuration (a simulator, a store that keeps them itself).

use super::{
    FixedWindow, Gcra, MovingWindow, Outcome, RetryAfter, SlidingWindow, Stats, Strategy,
    StrategyKind, moving_window::EntryLog,
};
use crate::{limit::Limit, time::Timestamp};

/// One key's state under one limit, of the strategy [`kind`](Self::kind) names; a moving
/// window keeps its log in `L`.
///
/// ```
/// use ratekeeper_core::{AnyStrategy, BoundedMovingWindow, Limit, StrategyKind, Timestamp};
/// use ratekeeper_core::Strategy;
///
/// let limit: Limit = "2 per second".parse()?;
/// let now = Timestamp::from_secs(1_700_000_000);
/// for kind in StrategyKind::ALL {
///     // A moving window's log on the stack, for 8 entries.
///     let mut state = AnyStrategy::<heapless::Deque<_, 8>>::fresh(*kind).unwrap();
///     assert_eq!(state.kind(), *kind);
///     assert!(state.hit(&limit, now, 2).is_allowed());
///     assert!(!state.hit(&limit, now, 1).is_allowed());
/// }
/// # let _: Option<BoundedMovingWindow<8>> = None;
/// # Ok::<(), ratekeeper_core::ParseError>(())
/// ```
#[derive(Clone, Debug)]
pub enum AnyStrategy<L> {
    /// [`StrategyKind::FixedWindow`].
    Fixed(FixedWindow),
    /// [`StrategyKind::MovingWindow`].
    Moving(MovingWindow<L>),
    /// [`StrategyKind::SlidingWindowCounter`].
    Sliding(SlidingWindow),
    /// [`StrategyKind::Gcra`].
    Gcra(Gcra),
}

impl<L: EntryLog + Default> AnyStrategy<L> {
    /// A fresh state of `kind`; `None` for a strategy this version does not know.
    pub fn fresh(kind: StrategyKind) -> Option<Self> {
        Some(match kind {
            StrategyKind::FixedWindow => Self::Fixed(FixedWindow::new()),
            StrategyKind::MovingWindow => Self::Moving(MovingWindow::with_log(L::default())),
            StrategyKind::SlidingWindowCounter => Self::Sliding(SlidingWindow::new()),
            StrategyKind::Gcra => Self::Gcra(Gcra::new()),
            #[allow(unreachable_patterns)] // `StrategyKind` is non-exhaustive
            _ => return None,
        })
    }
}

impl<L: EntryLog> AnyStrategy<L> {
    /// Which strategy it is.
    pub fn kind(&self) -> StrategyKind {
        match self {
            Self::Fixed(_) => StrategyKind::FixedWindow,
            Self::Moving(_) => StrategyKind::MovingWindow,
            Self::Sliding(_) => StrategyKind::SlidingWindowCounter,
            Self::Gcra(_) => StrategyKind::Gcra,
        }
    }

    fn inner(&self) -> &dyn Strategy {
        match self {
            Self::Fixed(s) => s,
            Self::Moving(s) => s,
            Self::Sliding(s) => s,
            Self::Gcra(s) => s,
        }
    }

    fn inner_mut(&mut self) -> &mut dyn Strategy {
        match self {
            Self::Fixed(s) => s,
            Self::Moving(s) => s,
            Self::Sliding(s) => s,
            Self::Gcra(s) => s,
        }
    }
}

impl<L: EntryLog> Strategy for AnyStrategy<L> {
    fn hit(&mut self, limit: &Limit, now: Timestamp, cost: u64) -> Outcome {
        self.inner_mut().hit(limit, now, cost)
    }

    fn test(&self, limit: &Limit, now: Timestamp, cost: u64) -> Outcome {
        self.inner().test(limit, now, cost)
    }

    fn stats(&self, limit: &Limit, now: Timestamp) -> Stats {
        self.inner().stats(limit, now)
    }

    fn refund(&mut self, limit: &Limit, now: Timestamp, cost: u64) {
        self.inner_mut().refund(limit, now, cost);
    }

    fn refund_at(&mut self, limit: &Limit, now: Timestamp, cost: u64, charged_at: Timestamp) {
        self.inner_mut().refund_at(limit, now, cost, charged_at);
    }

    fn retry_after(&self, limit: &Limit, now: Timestamp, cost: u64) -> RetryAfter {
        self.inner().retry_after(limit, now, cost)
    }

    fn idle_at(&self, limit: &Limit) -> Timestamp {
        self.inner().idle_at(limit)
    }
}
