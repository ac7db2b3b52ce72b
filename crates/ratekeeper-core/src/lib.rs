//! The `no_std` core of the `ratekeeper-*` crate family: limit strings, clocks, and the four
//! rate-limiting strategies as pure state machines.
//!
//! Nothing here allocates, performs I/O, reads a clock by itself or panics on any input. The
//! storage backends (memory, Redis) run these state machines, and the Redis scripts are tested
//! against them.
//!
//! # Example
//!
//! ```
//! use ratekeeper_core::{
//!     Clock, Duration, Gcra, Limits, ManualClock, Outcome, RetryAfter, Strategy, Timestamp,
//! };
//!
//! // "200 per day; 50 per hour": every limit must admit a hit.
//! let limits: Limits<4> = "200 per day; 50 per hour".parse()?;
//! let clock = ManualClock::new(Timestamp::from_secs(1_700_000_000));
//! let mut states = [Gcra::new(), Gcra::new()];
//!
//! let mut admitted = 0;
//! for _ in 0..60 {
//!     let now = clock.now();
//!     // All or nothing: test every limit first, then charge them all.
//!     if limits.iter().zip(&states).all(|(l, s)| s.test(l, now, 1).is_allowed()) {
//!         for (l, s) in limits.iter().zip(&mut states) {
//!             assert_eq!(s.hit(l, now, 1), Outcome::Allowed);
//!         }
//!         admitted += 1;
//!     }
//! }
//! assert_eq!(admitted, 50);
//!
//! // The hourly limit emits one request every 72 s after its burst.
//! let wait = states[1].retry_after(&limits[1], clock.now(), 1);
//! assert_eq!(wait, RetryAfter::After(Duration::from_secs(72)));
//! clock.advance(Duration::from_secs(72));
//! assert!(states[1].test(&limits[1], clock.now(), 1).is_allowed());
//! # Ok::<(), ratekeeper_core::ParseError>(())
//! ```
//!
//! # Strategies
//!
//! | strategy | state | admits | note |
//! |---|---|---|---|
//! | [`FixedWindow`] | 16 bytes | `amount` per window opened by the first hit | bursts of `2 x amount` across a boundary |
//! | [`MovingWindow`] | a log, one entry per distinct instant | exactly `amount` in any window | O(1) amortised per hit |
//! | [`SlidingWindow`] | 24 bytes | weighted two-bucket estimate | at most `2 x amount` in any window |
//! | [`Gcra`] | 8 bytes | burst `amount`, then one per `window / amount` | no boundary bursts |
//!
//! # Feature flags
//!
//! - `std` (default): [`SystemClock`]; implies `alloc`.
//! - `alloc`: [`EntryLog`] for `alloc::collections::VecDeque`, a moving-window log that grows on
//!   the heap (what the memory store uses).
//!
//! Without both the crate is `#![no_std]` and needs no allocator; the errors implement
//! `core::error::Error` either way.
#![no_std]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(any(test, feature = "std"))]
extern crate std;

mod clock;
mod error;
mod limit;
mod parse;
mod span;
pub mod strategy;
mod time;

#[cfg(feature = "std")]
pub use clock::SystemClock;
pub use clock::{Clock, ManualClock};
#[cfg(feature = "alloc")]
pub use clock::{Sleep, SleepFuture};
pub use error::{
    CapacityError, Expected, Found, LimitError, MAX_WORD, ParseError, UnknownStrategy, Word,
};
pub use limit::{Limit, Unit};
pub use parse::{LimitIter, Limits, parse_limits};
pub use span::{parse_decimal, parse_duration};
pub use strategy::{
    AnyStrategy, BoundedMovingWindow, Entry, EntryLog, FixedWindow, Gcra, MovingWindow, Outcome,
    RetryAfter, SlidingWindow, Stats, Strategy, StrategyKind,
};
pub use time::{Duration, Timestamp};
