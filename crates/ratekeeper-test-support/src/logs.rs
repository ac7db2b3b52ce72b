//! A `tracing` subscriber that keeps every event's level and message, for tests of what a
//! crate logs (`tracing` prints nothing without a subscriber).
//!
//! ```
//! use ratekeeper_test_support::logs::Kept;
//! use tracing::Level;
//!
//! let kept = Kept::default();
//! tracing::subscriber::with_default(kept.clone(), || tracing::warn!(route = "/a", "no such route"));
//! assert_eq!(kept.at(Level::WARN), ["no such route"]);
//! ```

use core::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tracing::{
    Event, Level, Metadata, Subscriber,
    field::{Field, Visit},
    span::{Attributes, Id, Record},
};

/// Every event's level and message, in order; clones share them.
#[derive(Clone, Debug, Default)]
pub struct Kept(Arc<Mutex<Vec<(Level, String)>>>);

impl Kept {
    /// The messages of the events at `level`, in order.
    pub fn at(&self, level: Level) -> Vec<String> {
        let events = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let found = events.iter().filter(|(at, _)| *at == level);
        found.map(|(_, message)| message.clone()).collect()
    }
}

/// Reads an event's `message` field.
struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn core::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl Subscriber for Kept {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Id::from_u64(NEXT.fetch_add(1, Ordering::Relaxed))
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut message = Message(String::new());
        event.record(&mut message);
        let mut events = self.0.lock().unwrap_or_else(|e| e.into_inner());
        events.push((*event.metadata().level(), message.0));
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}
