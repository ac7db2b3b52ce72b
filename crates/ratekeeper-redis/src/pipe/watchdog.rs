//! The response deadline of every open [`Pipe`](super::Pipe), kept by one thread.
//!
//! A timer per call would cost each decision a timer registration with the reactor (and the
//! reactor a wake-up). Instead one thread sleeps until the earliest moment some connection's
//! oldest unanswered command reaches its response timeout, and breaks that connection if the
//! reply is still missing then. A new command can never be due before the thread's next look
//! (its deadline is a whole response timeout away), so nothing needs to wake the thread early.

use core::time::Duration;
use std::{
    io,
    sync::{Arc, Mutex, OnceLock, PoisonError, Weak},
    thread::{self, Thread},
    time::Instant,
};

use super::Shared;

/// The pipes watched (each dropped once it is gone) and the thread watching them.
struct Watch {
    pipes: Mutex<Vec<Weak<Shared>>>,
    thread: Option<Thread>,
}

static WATCH: OnceLock<Watch> = OnceLock::new();

/// How long the thread sleeps when nothing is watched.
const IDLE: Duration = Duration::from_secs(1);

/// Keeps `pipe`'s response deadline from now on (starting the thread on first use).
pub(super) fn watch(pipe: &Arc<Shared>) {
    let watch = WATCH.get_or_init(|| {
        let spawned = thread::Builder::new()
            .name("ratekeeper-redis-deadlines".into())
            .spawn(run);
        if let Err(e) = &spawned {
            tracing::error!(target: "ratekeeper::redis", error = %e, "could not start the thread that keeps Redis response deadlines");
        }
        Watch {
            pipes: Mutex::new(Vec::new()),
            thread: spawned.ok().map(|h| h.thread().clone()),
        }
    });
    watch
        .pipes
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(Arc::downgrade(pipe));
    // The thread may be asleep for longer than this pipe's timeout: it looks again now.
    if let Some(t) = &watch.thread {
        t.unpark();
    }
}

fn run() {
    let watch = WATCH.wait();
    loop {
        let next = check(&watch.pipes, Instant::now());
        thread::park_timeout(next.saturating_duration_since(Instant::now()));
    }
}

/// Breaks each connection whose oldest unanswered command is past its deadline at `now`;
/// returns when to look again.
fn check(watched: &Mutex<Vec<Weak<Shared>>>, now: Instant) -> Instant {
    let mut next = now + IDLE;
    let mut pipes = watched.lock().unwrap_or_else(PoisonError::into_inner);
    pipes.retain(|weak| {
        let Some(pipe) = weak.upgrade() else {
            return false;
        };
        let timeout = pipe.response_timeout;
        let mut st = pipe.state.lock();
        if st.broken.is_some() {
            return false;
        }
        let due = st.oldest_unanswered().map(|sent| sent + timeout);
        match due {
            Some(due) if due <= now => st.fail(
                io::ErrorKind::TimedOut,
                format!("no reply from Redis within {timeout:?}"),
            ),
            Some(due) => next = next.min(due),
            // A command queued from now on is due a whole timeout from now at the earliest.
            None => next = next.min(now + timeout),
        }
        true
    });
    next
}
