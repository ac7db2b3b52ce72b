//! Helpers shared by the integration tests: one state type over the four strategies, with
//! moving windows on either log (`heapless::Deque`, or `VecDeque` for limits that do not fit).

#![allow(dead_code, unreachable_pub, clippy::large_enum_variant)]

use core::ops::{Deref, DerefMut};
#[cfg(feature = "alloc")]
use std::collections::VecDeque;

use heapless::Deque;
use ratekeeper_core::{AnyStrategy, BoundedMovingWindow, Entry, Limit, Strategy, StrategyKind};

/// Capacity of the heapless log used when a limit fits it.
pub const LOG: usize = 256;

/// A state of any strategy (the core's `AnyStrategy`), whose moving window keeps its log on
/// the stack when the limit fits [`LOG`] entries and in a `VecDeque` otherwise. It derefs to
/// the strategy, so the tests call `hit`, `test`... on it directly.
#[derive(Clone, Debug)]
pub enum AnyState {
    Bounded(AnyStrategy<Deque<Entry, LOG>>),
    #[cfg(feature = "alloc")]
    Growing(AnyStrategy<VecDeque<Entry>>),
}

impl AnyState {
    /// A fresh state; moving windows use the heapless log when the limit fits it.
    pub fn new(kind: StrategyKind, limit: &Limit) -> Self {
        let fits = kind != StrategyKind::MovingWindow
            || BoundedMovingWindow::<LOG>::try_new(limit).is_ok();
        let known = "the tests know every strategy of StrategyKind::ALL";
        if fits {
            return Self::Bounded(AnyStrategy::fresh(kind).expect(known));
        }
        #[cfg(feature = "alloc")]
        return Self::Growing(AnyStrategy::fresh(kind).expect(known));
        #[cfg(not(feature = "alloc"))]
        panic!("{limit} does not fit {LOG} entries (a growable log needs the `alloc` feature)")
    }
}

impl Deref for AnyState {
    type Target = dyn Strategy;

    fn deref(&self) -> &Self::Target {
        match self {
            Self::Bounded(s) => s,
            #[cfg(feature = "alloc")]
            Self::Growing(s) => s,
        }
    }
}

impl DerefMut for AnyState {
    fn deref_mut(&mut self) -> &mut Self::Target {
        match self {
            Self::Bounded(s) => s,
            #[cfg(feature = "alloc")]
            Self::Growing(s) => s,
        }
    }
}
