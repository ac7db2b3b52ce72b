//! Helpers shared by the integration tests: one state type over the four strategies, and a
//! growable moving-window log (the trait's second implementation, beside `heapless::Deque`).

#![allow(dead_code, unreachable_pub, clippy::large_enum_variant)]

use std::collections::VecDeque;

use ratelimit_core::{
    BoundedMovingWindow, Entry, EntryLog, FixedWindow, Gcra, Limit, MovingWindow, Outcome,
    RetryAfter, SlidingWindow, Stats, Strategy, StrategyKind, Timestamp,
};

/// A moving-window log on the heap, without a capacity limit.
#[derive(Clone, Debug, Default)]
pub struct VecLog(pub VecDeque<Entry>);

impl EntryLog for VecLog {
    fn capacity(&self) -> usize {
        usize::MAX
    }
    fn len(&self) -> usize {
        self.0.len()
    }
    fn entries(&self) -> impl Iterator<Item = &Entry> + '_ {
        self.0.iter()
    }
    fn oldest(&self) -> Option<&Entry> {
        self.0.front()
    }
    fn newest(&self) -> Option<&Entry> {
        self.0.back()
    }
    fn newest_mut(&mut self) -> Option<&mut Entry> {
        self.0.back_mut()
    }
    fn push_newest(&mut self, entry: Entry) -> Result<(), Entry> {
        self.0.push_back(entry);
        Ok(())
    }
    fn pop_oldest(&mut self) -> Option<Entry> {
        self.0.pop_front()
    }
    fn pop_newest(&mut self) -> Option<Entry> {
        self.0.pop_back()
    }
}

/// Capacity of the heapless log used when a limit fits it.
pub const LOG: usize = 256;

/// Any of the four strategies, chosen at run time.
#[derive(Clone, Debug)]
pub enum AnyState {
    Fixed(FixedWindow),
    Moving(BoundedMovingWindow<LOG>),
    MovingVec(MovingWindow<VecLog>),
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
                Err(_) => Self::MovingVec(MovingWindow::with_log(VecLog::default())),
            },
            StrategyKind::SlidingWindowCounter => Self::Sliding(SlidingWindow::new()),
            StrategyKind::Gcra => Self::Gcra(Gcra::new()),
        }
    }

    fn inner(&self) -> &dyn Strategy {
        match self {
            Self::Fixed(s) => s,
            Self::Moving(s) => s,
            Self::MovingVec(s) => s,
            Self::Sliding(s) => s,
            Self::Gcra(s) => s,
        }
    }

    fn inner_mut(&mut self) -> &mut dyn Strategy {
        match self {
            Self::Fixed(s) => s,
            Self::Moving(s) => s,
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
    fn retry_after(&self, limit: &Limit, now: Timestamp, cost: u64) -> RetryAfter {
        self.inner().retry_after(limit, now, cost)
    }
    fn idle_at(&self, limit: &Limit) -> Timestamp {
        self.inner().idle_at(limit)
    }
}
