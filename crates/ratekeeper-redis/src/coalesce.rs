//! Concurrent decisions share one call: while a call to a lane (a node, or a cluster slot) is
//! on the wire, the batches that arrive for it wait together, and when it returns they go out
//! as one call that runs them one after another (the script's `'M'` form) and answers each.
//!
//! No timer: a batch that finds its lane idle goes out at once, alone. A batch that finds a
//! call on the wire waits for that call (the worst added wait: one call's round trip), then
//! goes out with every batch that arrived meanwhile, up to a cap per call. A lane has one
//! call on the wire at a time.
//!
//! Nothing here is spawned. A lone batch's call is its caller's own future. A shared call is
//! a shared future that every batch it carries awaits, so whichever of them is polled drives
//! it: a caller that gives up (a timeout, a client gone) drops only its own wait, never its
//! neighbours' call; a call dropped by all frees its lane.

use core::sync::atomic::{AtomicU64, Ordering};
use std::{collections::HashMap, sync::Arc};

use event_listener::Event;
use futures::future::{BoxFuture, FutureExt, Shared, WeakShared};
use redis::{ErrorKind, RedisError, RedisResult, Value};

use crate::script::Encoded;

/// Every batch's answer from one call, in the order the batches joined it.
type Answers = Arc<Vec<RedisResult<Value>>>;
type Call = Shared<BoxFuture<'static, Answers>>;
type WeakCall = WeakShared<BoxFuture<'static, Answers>>;
/// The batches waiting to go out in one call; `None` once it has gone.
type Waiting = Arc<parking_lot::Mutex<Option<Vec<Encoded>>>>;

/// Sends one call (one batch, or several in the `'M'` form) and answers with its reply.
pub(crate) type Sender =
    Arc<dyn Fn(Encoded) -> BoxFuture<'static, RedisResult<Value>> + Send + Sync>;

/// One lane: whether a call is on the wire, and the newest call waiting for it to return.
#[derive(Default)]
struct Lane {
    busy: bool,
    next: Option<(WeakCall, Waiting)>,
}

/// The lanes of one store.
#[derive(Default)]
struct Lanes {
    lanes: parking_lot::Mutex<HashMap<u16, Lane>>,
    /// Told whenever a lane's call returns.
    freed: Event,
}

/// The lanes of one store and the cap on the batches of one call.
pub(crate) struct Coalescer {
    lanes: Arc<Lanes>,
    max_batches: usize,
    tally: Arc<Tally>,
}

/// Calls sent and the batches they carried, since the store was made.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub(crate) calls: AtomicU64,
    pub(crate) batches: AtomicU64,
}

impl Tally {
    fn add(&self, batches: usize) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.batches.fetch_add(batches as u64, Ordering::Relaxed);
        crate::counts::shared(batches as u64);
    }
}

impl core::fmt::Debug for Coalescer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Coalescer")
            .field("max_batches", &self.max_batches)
            .finish_non_exhaustive()
    }
}

/// A lane's call on the wire: the lane is free again when this is dropped (the call returned,
/// or its caller gave up on it).
struct OnTheWire {
    lanes: Arc<Lanes>,
    lane: u16,
}

impl Drop for OnTheWire {
    fn drop(&mut self) {
        if let Some(lane) = self.lanes.lanes.lock().get_mut(&self.lane) {
            lane.busy = false;
        }
        self.lanes.freed.notify(usize::MAX);
    }
}

/// Where a batch goes.
enum Joined {
    /// Out at once, alone: the lane was free (and is now taken by this call).
    Alone(OnTheWire, Encoded),
    /// With others, as this place of this call.
    Shared(Call, usize),
}

impl Coalescer {
    /// Lanes whose calls carry at most `max_batches` batches each (at least one).
    pub(crate) fn new(max_batches: usize) -> Self {
        Self {
            lanes: Arc::default(),
            max_batches: max_batches.max(1),
            tally: Arc::default(),
        }
    }

    /// Calls sent and the batches they carried.
    pub(crate) fn tally(&self) -> (u64, u64) {
        (
            self.tally.calls.load(Ordering::Relaxed),
            self.tally.batches.load(Ordering::Relaxed),
        )
    }

    /// Sends `batch` on `lane`, alone when the lane is free, or else with the batches that
    /// wait for the lane's call on the wire; answers with this batch's own reply.
    pub(crate) async fn call(&self, lane: u16, batch: Encoded, send: Sender) -> RedisResult<Value> {
        match self.join(lane, batch, &send) {
            Joined::Alone(wire, batch) => {
                self.tally.add(1);
                let reply = send(batch).await;
                drop(wire);
                reply
            }
            Joined::Shared(call, index) => {
                let answers = call.await;
                answers.get(index).cloned().unwrap_or_else(|| {
                    Err(RedisError::from((
                        ErrorKind::UnexpectedReturnType,
                        "a coalesced call answered fewer batches than it carried",
                    )))
                })
            }
        }
    }
}
impl Coalescer {
    /// Where `batch` goes: out alone when the lane is free; else into the newest call waiting
    /// for the lane, or a new one when there is none or it is full.
    fn join(&self, lane: u16, batch: Encoded, send: &Sender) -> Joined {
        let mut lanes = self.lanes.lanes.lock();
        let state = lanes.entry(lane).or_default();
        let next = state
            .next
            .as_ref()
            .and_then(|(call, waiting)| Some((call.upgrade()?, waiting.clone())));
        if !state.busy && next.is_none() {
            state.busy = true;
            let wire = OnTheWire {
                lanes: Arc::clone(&self.lanes),
                lane,
            };
            return Joined::Alone(wire, batch);
        }
        if let Some((call, waiting)) = next {
            let mut batches = waiting.lock();
            if let Some(list) = batches.as_mut()
                && list.len() < self.max_batches
            {
                list.push(batch);
                return Joined::Shared(call, list.len() - 1);
            }
        }
        let waiting: Waiting = Arc::new(parking_lot::Mutex::new(Some(vec![batch])));
        let call = when_free(
            Arc::clone(&self.lanes),
            lane,
            Arc::clone(&waiting),
            Arc::clone(send),
            Arc::clone(&self.tally),
        )
        .boxed()
        .shared();
        if let Some(weak) = call.downgrade() {
            state.next = Some((weak, waiting));
        }
        Joined::Shared(call, 0)
    }
}

/// Waits until `lane` is free, takes it, and sends every batch in `waiting` as one call.
async fn when_free(
    lanes: Arc<Lanes>,
    lane: u16,
    waiting: Waiting,
    send: Sender,
    tally: Arc<Tally>,
) -> Answers {
    let wire = loop {
        let listener = {
            let mut all = lanes.lanes.lock();
            let state = all.entry(lane).or_default();
            if !state.busy {
                state.busy = true;
                // No more batches join this call; later ones start the next.
                if state
                    .next
                    .as_ref()
                    .is_some_and(|(_, w)| Arc::ptr_eq(w, &waiting))
                {
                    state.next = None;
                }
                break OnTheWire {
                    lanes: Arc::clone(&lanes),
                    lane,
                };
            }
            lanes.freed.listen()
        };
        listener.await;
    };
    let batches = waiting.lock().take().unwrap_or_default();
    let n = batches.len();
    tally.add(n);
    let answers = if n == 1 {
        let batch = batches.into_iter().next().unwrap_or_default();
        vec![send(batch).await]
    } else {
        split(send(many(batches)).await, n)
    };
    drop(wire);
    Arc::new(answers)
}

/// Several batches as one call of the script's `'M'` form: `'M'`, their number, each one's key
/// and argument counts, then their arguments (and keys) one batch after another.
pub(crate) fn many(batches: Vec<Encoded>) -> Encoded {
    let keys = batches.iter().map(|b| b.keys.len()).sum();
    let args = batches.iter().map(|b| b.args.len()).sum::<usize>();
    let mut out = Encoded {
        keys: Vec::with_capacity(keys),
        args: Vec::with_capacity(2 + 2 * batches.len() + args),
    };
    out.args.push("M".to_owned());
    out.args.push(batches.len().to_string());
    for b in &batches {
        out.args.push(b.keys.len().to_string());
        out.args.push(b.args.len().to_string());
    }
    for b in batches {
        out.keys.extend(b.keys);
        out.args.extend(b.args);
    }
    out
}

/// The reply of a call of `n` batches, batch by batch: an error of the whole call is every
/// batch's error; an error in one batch's place is that batch's alone.
pub(crate) fn split(reply: RedisResult<Value>, n: usize) -> Vec<RedisResult<Value>> {
    match reply {
        Ok(Value::Array(items)) if items.len() == n => items.into_iter().map(answer).collect(),
        Ok(_) => {
            let e = RedisError::from((
                ErrorKind::UnexpectedReturnType,
                "a coalesced call's reply does not hold one answer per batch",
            ));
            vec![Err(e); n]
        }
        Err(e) => vec![Err(e); n],
    }
}

/// One batch's place in a shared call's reply: its reply, or `{'E', error}` when it failed.
fn answer(item: Value) -> RedisResult<Value> {
    let failed = match &item {
        Value::Array(pair) => match pair.as_slice() {
            [Value::BulkString(e), Value::BulkString(message)] if e == b"E" => Some(message),
            _ => None,
        },
        _ => None,
    };
    let Some(message) = failed else {
        return Ok(item);
    };
    // Read as the server's own error reply, so that its code (OOM, WRONGTYPE...) is kept.
    let line: Vec<u8> = b"-"
        .iter()
        .chain(message.iter().filter(|b| !matches!(b, b'\r' | b'\n')))
        .chain(b"\r\n")
        .copied()
        .collect();
    match redis::parse_redis_value(&line) {
        Ok(Value::ServerError(e)) => Err(e.into()),
        Ok(_) | Err(_) => Err(RedisError::from((
            ErrorKind::UnexpectedReturnType,
            "a batch of a shared call failed",
            String::from_utf8_lossy(message).into_owned(),
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(keys: &[&str], args: &[&str]) -> Encoded {
        Encoded {
            keys: keys.iter().map(|k| (*k).to_owned()).collect(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
        }
    }

    #[test]
    fn several_batches_become_one_call_with_their_counts_first() {
        let call = many(vec![
            encoded(&["a"], &["h", "", "0", "f 5 60 12", "1 1 0"]),
            encoded(&["b", "b#"], &["r", "", "0", "m 5 60 12", "1 1 0"]),
        ]);
        assert_eq!(call.keys, ["a", "b", "b#"]);
        assert_eq!(
            call.args[..6],
            ["M", "2", "1", "5", "2", "5"].map(str::to_owned)
        );
        assert_eq!(call.args.len(), 6 + 10);
        assert_eq!(call.args[6], "h");
        assert_eq!(call.args[11], "r");
    }

    #[test]
    fn a_failed_batch_fails_alone_and_a_failed_call_fails_all() {
        let ok = Value::Array(vec![Value::Int(1)]);
        let failed = Value::Array(vec![
            Value::BulkString(b"E".to_vec()),
            Value::BulkString(b"OOM command not allowed\r\n".to_vec()),
        ]);
        let answers = split(Ok(Value::Array(vec![ok.clone(), failed])), 2);
        assert_eq!(answers[0].as_ref().unwrap(), &ok);
        let e = answers[1].as_ref().unwrap_err();
        assert_eq!(e.code(), Some("OOM"), "{e}");
        let short = split(Ok(Value::Array(vec![ok])), 2);
        assert!(short.iter().all(Result::is_err));
        let down = RedisError::from((ErrorKind::Io, "gone"));
        assert!(
            split(Err(down), 3)
                .iter()
                .all(|a| a.as_ref().unwrap_err().is_io_error())
        );
    }
}
