//! A pipelined connection to one Redis node, driven by the calls waiting on it.
//!
//! There is no task of its own and no channel: a call appends its command to the bytes waiting
//! to go out and writes them itself; one waiting call at a time reads, hands every reply that
//! arrives to its caller (replies come in the order the commands went out) and wakes it. When
//! the reader's own reply is in, it passes the reading on to the oldest call still waiting. So
//! a decision costs one write and one read on the caller's own thread, and concurrent calls
//! share the reads: the replies that have arrived together are read together.
//!
//! A call dropped before its reply leaves its place in the queue: its reply is read and thrown
//! away. A command unanswered after the response timeout marks the connection broken (a
//! [`watchdog`] thread keeps this deadline, so that a call arms no timer of its own), and so
//! does any error of the socket or of the protocol; every call on a broken connection fails,
//! and the owner opens a new one.

mod connect;
mod resp;
mod watchdog;

pub(crate) use connect::{Endpoint, open};

use core::{
    future::Future,
    pin::Pin,
    task::{Context, Poll, Waker},
    time::Duration,
};
use std::{collections::VecDeque, io, net::TcpStream, sync::Arc, time::Instant};

use async_io::Async;
use futures::{
    FutureExt,
    io::{AsyncRead, AsyncWrite},
};
use parking_lot::Mutex;
use redis::{Cmd, Pipeline, RedisError, RedisFuture, RedisResult, Value};

/// The read buffer's first size; it grows (up to a reply of [`resp::MAX_LEN`]) only for a
/// larger reply.
const READ_BUFFER: usize = 16 * 1024;

/// A connection to one node; clones share it.
#[derive(Clone)]
pub(crate) struct Pipe {
    shared: Arc<Shared>,
}

struct Shared {
    stream: Async<TcpStream>,
    state: Mutex<State>,
    db: i64,
    response_timeout: Duration,
}

/// A command's place in the queue: its reply once read, the waker of the call waiting on it.
struct Entry {
    /// When the command was queued.
    sent: Instant,
    reply: Option<Value>,
    waker: Option<Waker>,
    /// The call is gone (dropped) or has its replies: nothing waits on this entry.
    settled: bool,
}

struct State {
    /// Commands not yet written, from `written` on, and how many there are.
    out: Vec<u8>,
    written: usize,
    queued: u64,
    /// Bytes read: replies parsed up to `consumed`, received up to `filled`.
    input: Vec<u8>,
    consumed: usize,
    filled: usize,
    /// The call waiting for the socket to take more bytes, and the one waiting for replies
    /// (by the number of its first command).
    writer: Option<u64>,
    reader: Option<u64>,
    /// Commands sent and not yet settled, the first numbered `first`.
    entries: VecDeque<Entry>,
    first: u64,
    /// The number the next command gets, and the number of the next reply to arrive.
    next: u64,
    answered: u64,
    broken: Option<(io::ErrorKind, String)>,
}

impl Pipe {
    fn new(stream: Async<TcpStream>, db: i64, response_timeout: Duration) -> Self {
        let state = State {
            out: Vec::with_capacity(4096),
            written: 0,
            queued: 0,
            input: vec![0; READ_BUFFER],
            consumed: 0,
            filled: 0,
            writer: None,
            reader: None,
            entries: VecDeque::new(),
            first: 0,
            next: 0,
            answered: 0,
            broken: None,
        };
        let shared = Arc::new(Shared {
            stream,
            state: Mutex::new(state),
            db,
            response_timeout,
        });
        watchdog::watch(&shared);
        Self { shared }
    }

    /// Whether calls can still be made on this connection.
    pub(crate) fn is_open(&self) -> bool {
        self.shared.state.lock().broken.is_none()
    }

    /// Sends what `write` encodes (`count` commands) and waits for their replies.
    fn call<W: FnOnce(&mut Vec<u8>) + Unpin>(&self, count: usize, write: W) -> Call<'_, W> {
        Call {
            shared: &self.shared,
            write: Some(write),
            count: count as u64,
            seq: 0,
            done: false,
        }
    }
}

impl redis::aio::ConnectionLike for Pipe {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        self.call(1, |out: &mut Vec<u8>| cmd.write_packed_command(out))
            .map(|replies| replies.map(|mut r| r.pop().unwrap_or(Value::Nil)))
            .boxed()
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        let packed = pipeline.get_packed_pipeline();
        self.call(offset + count, move |out: &mut Vec<u8>| {
            out.extend_from_slice(&packed);
        })
        .map(move |replies| replies.map(|r| r.into_iter().skip(offset).collect()))
        .boxed()
    }

    fn get_db(&self) -> i64 {
        self.shared.db
    }
}

/// One call: its commands' numbers are `seq..seq + count`.
struct Call<'a, W> {
    shared: &'a Shared,
    /// Encodes the commands; taken on the first poll, which queues them.
    write: Option<W>,
    count: u64,
    seq: u64,
    done: bool,
}

impl<W: FnOnce(&mut Vec<u8>) + Unpin> Future for Call<'_, W> {
    type Output = RedisResult<Vec<Value>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let shared = this.shared;
        let mut guard = shared.state.lock();
        let st = &mut *guard;
        if let Some(write) = this.write.take() {
            if let Some(e) = st.error() {
                this.done = true;
                return Poll::Ready(Err(e));
            }
            write(&mut st.out);
            st.queued += this.count;
            this.seq = st.next;
            st.next += this.count;
            let sent = Instant::now();
            st.entries.extend((0..this.count).map(|_| Entry {
                sent,
                reply: None,
                waker: None,
                settled: false,
            }));
        }
        let last = this.seq + this.count - 1;
        loop {
            if st.answered > last {
                this.done = true;
                let replies = st.take(this.seq, this.count);
                st.leave(this.seq);
                return Poll::Ready(Ok(replies));
            }
            if let Some(e) = st.error() {
                this.done = true;
                st.settle(this.seq, this.count);
                st.leave(this.seq);
                return Poll::Ready(Err(e));
            }
            if st.written < st.out.len() && st.writer.is_none_or(|w| w == this.seq) {
                match Pin::new(&mut &shared.stream).poll_write(cx, &st.out[st.written..]) {
                    Poll::Ready(Ok(n)) => {
                        st.wrote(n, this.seq);
                        continue;
                    }
                    Poll::Ready(Err(e)) => {
                        st.fail(e.kind(), format!("writing to Redis: {e}"));
                        continue;
                    }
                    Poll::Pending => st.writer = Some(this.seq),
                }
            }
            if st.reader.is_none_or(|r| r == this.seq) {
                if let Err((kind, why)) = st.make_room() {
                    st.fail(kind, why);
                    continue;
                }
                let spare = &mut st.input[st.filled..];
                match Pin::new(&mut &shared.stream).poll_read(cx, spare) {
                    Poll::Ready(Ok(0)) => st.fail(
                        io::ErrorKind::UnexpectedEof,
                        "Redis closed the connection".into(),
                    ),
                    Poll::Ready(Ok(n)) => {
                        st.filled += n;
                        if st.reader == Some(this.seq) {
                            st.reader = None;
                        }
                        st.deliver();
                    }
                    Poll::Ready(Err(e)) => st.fail(e.kind(), format!("reading from Redis: {e}")),
                    Poll::Pending => st.reader = Some(this.seq),
                }
                if st.reader != Some(this.seq) {
                    continue;
                }
            }
            st.wait(last, cx.waker());
            return Poll::Pending;
        }
    }
}

impl<W> Drop for Call<'_, W> {
    fn drop(&mut self) {
        if self.done || self.write.is_some() {
            return;
        }
        let mut st = self.shared.state.lock();
        st.settle(self.seq, self.count);
        st.leave(self.seq);
    }
}

impl State {
    fn error(&self) -> Option<RedisError> {
        self.broken
            .as_ref()
            .map(|(kind, why)| io::Error::new(*kind, why.clone()).into())
    }

    fn entry(&mut self, seq: u64) -> Option<&mut Entry> {
        let i = usize::try_from(seq.checked_sub(self.first)?).ok()?;
        self.entries.get_mut(i)
    }

    /// `n` more bytes went out; `seq`'s call wrote them.
    fn wrote(&mut self, n: usize, seq: u64) {
        if n == 0 {
            self.fail(io::ErrorKind::WriteZero, "Redis took no bytes".into());
            return;
        }
        self.written += n;
        if self.written == self.out.len() {
            self.out.clear();
            self.written = 0;
            crate::counts::wrote(self.queued);
            self.queued = 0;
        }
        if self.writer == Some(seq) {
            self.writer = None;
        }
    }

    /// Room in `input` past `filled`: the parsed bytes dropped, or the buffer grown for a
    /// reply larger than it.
    fn make_room(&mut self) -> Result<(), (io::ErrorKind, String)> {
        if self.filled < self.input.len() {
            return Ok(());
        }
        if self.consumed > 0 {
            self.input.copy_within(self.consumed..self.filled, 0);
            self.filled -= self.consumed;
            self.consumed = 0;
            return Ok(());
        }
        if self.input.len() > resp::MAX_LEN {
            return Err((
                io::ErrorKind::InvalidData,
                "a reply from Redis larger than 512 MiB".into(),
            ));
        }
        let len = self.input.len() * 2;
        self.input.resize(len, 0);
        Ok(())
    }

    /// Hands each whole reply read to its entry and wakes the call waiting on it.
    fn deliver(&mut self) {
        let before = self.answered;
        loop {
            let (value, used) = match resp::parse(&self.input[self.consumed..self.filled]) {
                Ok(Some(parsed)) => parsed,
                Ok(None) => break,
                Err(e) => {
                    self.fail(io::ErrorKind::InvalidData, e.to_string());
                    return;
                }
            };
            self.consumed += used;
            let seq = self.answered;
            let Some(entry) = self.entry(seq) else {
                self.fail(
                    io::ErrorKind::InvalidData,
                    "a reply from Redis to no command".into(),
                );
                return;
            };
            if !entry.settled {
                entry.reply = Some(value);
                if let Some(w) = entry.waker.take() {
                    w.wake();
                }
            }
            self.answered += 1;
        }
        crate::counts::read(self.answered - before);
        if self.consumed == self.filled {
            self.consumed = 0;
            self.filled = 0;
        }
        self.trim();
    }

    /// The replies of `seq..seq + count`, which have all arrived.
    fn take(&mut self, seq: u64, count: u64) -> Vec<Value> {
        let replies = (seq..seq + count)
            .map(|s| {
                self.entry(s)
                    .and_then(|e| {
                        e.settled = true;
                        e.waker = None;
                        e.reply.take()
                    })
                    .unwrap_or(Value::Nil)
            })
            .collect();
        self.trim();
        replies
    }

    /// Nothing waits on `seq..seq + count` any more.
    fn settle(&mut self, seq: u64, count: u64) {
        for s in seq..seq + count {
            if let Some(e) = self.entry(s) {
                e.settled = true;
                e.reply = None;
                e.waker = None;
            }
        }
        self.trim();
    }

    /// Drops the settled entries at the front whose replies have been read.
    fn trim(&mut self) {
        while self.first < self.answered && self.entries.front().is_some_and(|e| e.settled) {
            self.entries.pop_front();
            self.first += 1;
        }
    }

    fn wait(&mut self, last: u64, waker: &Waker) {
        if let Some(e) = self.entry(last) {
            match &e.waker {
                Some(w) if w.will_wake(waker) => {}
                _ => e.waker = Some(waker.clone()),
            }
        }
    }

    /// `seq`'s call is done with this connection. Reading (and writing, while bytes wait) must
    /// not be left to nobody: when no other call has taken it on, the oldest call still waiting
    /// is woken to do it.
    fn leave(&mut self, seq: u64) {
        if self.reader == Some(seq) {
            self.reader = None;
        }
        if self.writer == Some(seq) {
            self.writer = None;
        }
        let unwritten = self.written < self.out.len();
        if (self.reader.is_none() || (unwritten && self.writer.is_none()))
            && let Some(w) = self.entries.iter().find_map(|e| e.waker.as_ref())
        {
            w.wake_by_ref();
        }
    }

    /// When the oldest unanswered command was queued.
    fn oldest_unanswered(&self) -> Option<Instant> {
        let i = usize::try_from(self.answered - self.first).ok()?;
        self.entries.get(i).map(|e| e.sent)
    }

    /// Marks the connection broken and wakes every call, which then fails with the reason.
    fn fail(&mut self, kind: io::ErrorKind, why: String) {
        if self.broken.is_none() {
            tracing::debug!(target: "ratekeeper::redis", reason = %why, "connection closed");
            self.broken = Some((kind, why));
        }
        for e in &mut self.entries {
            if let Some(w) = e.waker.take() {
                w.wake();
            }
        }
    }
}

#[cfg(test)]
mod tests;
