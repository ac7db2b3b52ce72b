//! Concurrent decisions share one call: while a call to a lane (a node, or a cluster slot) is
//! on the wire, the batches that arrive for it wait together, and when it returns they go out
//! as one call that runs them one after another (the script's `'M'` form) and answers each.
//!
//! No timer: a batch that finds its lane idle goes out at once, alone. A batch that finds a
//! call on the wire waits for that call (the worst added wait: one call's round trip), then
//! goes out with every batch that arrived meanwhile, up to a cap per call. Calls of a lane go
//! out one after another, in the order their batches arrived.
//!
//! Nothing here is spawned. A call is a shared future that every batch it carries awaits, so
//! whichever of them is polled drives it: a caller that gives up (a timeout, a client gone)
//! drops only its own wait, never its neighbours' call.

use core::sync::atomic::{AtomicU64, Ordering};
use std::{collections::HashMap, sync::Arc};

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

/// The newest call of a lane: on the wire, or waiting for the one before it to return.
struct Newest {
    call: WeakCall,
    /// Its batches while it waits (`None` for a batch sent alone).
    waiting: Option<Waiting>,
}

/// The lanes of one store and the cap on the batches of one call.
pub(crate) struct Coalescer {
    lanes: parking_lot::Mutex<HashMap<u16, Newest>>,
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
    }
}

impl core::fmt::Debug for Coalescer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Coalescer")
            .field("max_batches", &self.max_batches)
            .finish_non_exhaustive()
    }
}

impl Coalescer {
    /// Lanes whose calls carry at most `max_batches` batches each (at least one).
    pub(crate) fn new(max_batches: usize) -> Self {
        Self {
            lanes: parking_lot::Mutex::new(HashMap::new()),
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

    /// Sends `batch` on `lane`, alone when the lane is idle, or else with the batches that
    /// wait for the lane's call on the wire; answers with this batch's own reply.
    pub(crate) async fn call(&self, lane: u16, batch: Encoded, send: Sender) -> RedisResult<Value> {
        let (call, index) = self.join(lane, batch, send);
        let answers = call.await;
        answers.get(index).cloned().unwrap_or_else(|| {
            Err(RedisError::from((
                ErrorKind::UnexpectedReturnType,
                "a coalesced call answered fewer batches than it carried",
            )))
        })
    }

    /// The call that will carry `batch`, and the batch's place in it.
    fn join(&self, lane: u16, batch: Encoded, send: Sender) -> (Call, usize) {
        let mut lanes = self.lanes.lock();
        let newest = lanes
            .get(&lane)
            .and_then(|n| Some((n.call.upgrade()?, n.waiting.clone())));
        let (call, waiting) = match newest {
            Some((call, waiting)) if call.peek().is_none() => (call, waiting),
            // Idle (nothing sent, or its answer is in): the batch goes out at once, alone.
            _ => {
                self.tally.add(1);
                let call = send(batch)
                    .map(|reply| Arc::new(vec![reply]))
                    .boxed()
                    .shared();
                remember(&mut lanes, lane, &call, None);
                return (call, 0);
            }
        };
        if let Some(waiting) = &waiting {
            let mut batches = waiting.lock();
            if let Some(list) = batches.as_mut()
                && list.len() < self.max_batches
            {
                list.push(batch);
                return (call, list.len() - 1);
            }
        }
        // The newest call is on the wire, or full: a new call waits for it.
        let waiting: Waiting = Arc::new(parking_lot::Mutex::new(Some(vec![batch])));
        let next = after(call, waiting.clone(), send, self.tally.clone())
            .boxed()
            .shared();
        remember(&mut lanes, lane, &next, Some(waiting));
        (next, 0)
    }
}

/// Makes `call` the newest of `lane`.
fn remember(lanes: &mut HashMap<u16, Newest>, lane: u16, call: &Call, waiting: Option<Waiting>) {
    if let Some(weak) = call.downgrade() {
        lanes.insert(
            lane,
            Newest {
                call: weak,
                waiting,
            },
        );
    }
}

/// Waits for `previous` to return, then sends every batch in `waiting` as one call.
async fn after(previous: Call, waiting: Waiting, send: Sender, tally: Arc<Tally>) -> Answers {
    drop(previous.await);
    let batches = waiting.lock().take().unwrap_or_default();
    let n = batches.len();
    tally.add(n);
    if n == 1 {
        let batch = batches.into_iter().next().unwrap_or_default();
        return Arc::new(vec![send(batch).await]);
    }
    Arc::new(split(send(many(batches)).await, n))
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
