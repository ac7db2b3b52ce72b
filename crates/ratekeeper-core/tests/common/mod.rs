//! Helpers shared by the integration tests: one state type over the four strategies, with
//! moving windows on either log (`heapless::Deque`, or `VecDeque` for limits that do not fit).

#![allow(dead_code, unreachable_pub, clippy::large_enum_variant)]

#[cfg(feature = "alloc")]
use std::collections::VecDeque;

#[cfg(feature = "alloc")]
use ratekeeper_core::{Entry, MovingWindow};

use ratekeeper_core::{
    BoundedMovingWindow, FixedWindow, Gcra, Limit, Outcome, RetryAfter, SlidingWindow, Stats,
    Strategy, StrategyKind, Timestamp,
};

/// Capacity of the heapless log used when a limit fits it.
pub const LOG: usize = 256;

/// Any of the four strategies, chosen at run time.
#[derive(Clone, Debug)]
pub enum AnyState {
    Fixed(FixedWindow),
    Moving(BoundedMovingWindow<LOG>),
    #[cfg(feature = "alloc")]
    MovingVec(MovingWindow<VecDeque<Entry>>),
    Sliding(SlidingWindow),
    Gcra(Gcra),
}

impl AnyState {
    /// A fresh state; moving windows use the heapless log when the limit fits it.
    pub fn new(kind: StrategyKind, limit: &Limit) -> Self {
        match kind {
            StrategyKind::FixedWindow => Self::Fixed(FixedWindow::new()),
            StrategyKind::MovingWindow => match BoundedMovingWindow::<LOG>::try_new(limit) {
                Ok(s) => Self::Moving(s),
                #[cfg(feature = "alloc")]
                Err(_) => Self::MovingVec(MovingWindow::with_log(VecDeque::new())),
                #[cfg(not(feature = "alloc"))]
                Err(e) => panic!("{e} (a growable log needs the `alloc` feature)"),
            },
            StrategyKind::SlidingWindowCounter => Self::Sliding(SlidingWindow::new()),
            StrategyKind::Gcra => Self::Gcra(Gcra::new()),
            _ => unreachable!("the tests know every strategy of StrategyKind::ALL"),
        }
    }

    fn inner(&self) -> &dyn Strategy {
        match self {
            Self::Fixed(s) => s,
            Self::Moving(s) => s,
            #[cfg(feature = "alloc")]
            Self::MovingVec(s) => s,
            Self::Sliding(s) => s,
            Self::Gcra(s) => s,
        }
    }

    fn inner_mut(&mut self) -> &mut dyn Strategy {
        match self {
            Self::Fixed(s) => s,
            Self::Moving(s) => s,
            #[cfg(feature = "alloc")]
            Self::MovingVec(s) => s,
            Self::Sliding(s) => s,
            Self::Gcra(s) => s,
        }
    }
}

impl Strategy for AnyState {
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
        self.inner_mut().refund(limit, now, cost)
    }
    fn refund_at(&mut self, limit: &Limit, now: Timestamp, cost: u64, charged_at: Timestamp) {
        self.inner_mut().refund_at(limit, now, cost, charged_at)
    }
    fn retry_after(&self, limit: &Limit, now: Timestamp, cost: u64) -> RetryAfter {
        self.inner().retry_after(limit, now, cost)
    }
    fn idle_at(&self, limit: &Limit) -> Timestamp {
        self.inner().idle_at(limit)
    }
}
