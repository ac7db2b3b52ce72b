//! One accepted connection: read each request head, refuse what `async-h1` cannot decode with
//! a status and a JSON body, hand the rest to `async-h1` and the Tide app.

use core::{
    future::Future,
    net::SocketAddr,
    panic::AssertUnwindSafe,
    pin::Pin,
    sync::atomic::{AtomicBool, Ordering},
    task::{Context, Poll, ready},
    time::Duration,
};
use std::{
    io,
    net::Shutdown,
    sync::{Arc, Mutex, PoisonError},
};

use async_h1::server::{ConnectionStatus, Server as H1Server};
use async_io::Timer;
use async_std::{
    io::{Read, ReadExt, Write, WriteExt},
    net::TcpStream,
};
use futures::FutureExt;
use tide::http::StatusCode;

use crate::{
    body::Framing,
    head::{self, HeadError, MAX_HEAD_LEN},
    listener::Stop,
};

/// What a connection is served with.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Options {
    /// How long a client has to send a whole request head (and how long an idle keep-alive
    /// connection waits for the next one).
    pub(crate) header_timeout: Duration,
    /// The most bytes a request body may take on the wire (chunked framing included).
    pub(crate) max_body: u64,
    /// How long reading a request body, or writing a response, may go without progress.
    pub(crate) body_timeout: Duration,
}

/// Bytes read ahead of `async-h1`: the head being checked, and whatever came after it.
#[derive(Debug)]
struct ReadAhead {
    bytes: Vec<u8>,
    /// How much of `bytes` has been handed on.
    pos: usize,
    /// The end of the checked head: `async-h1`'s first read gets the head alone, so bytes of a
    /// pipelined request stay here for the next round instead of in its dropped buffer.
    head_end: usize,
    /// Bytes handed on after the head: the body as it crosses the wire.
    body_read: u64,
    /// The most `body_read` may reach; reading past it fails, and sets `over`.
    max_body: u64,
    /// The body went past `max_body`: the request is answered 413 and the connection closed.
    over: bool,
    /// Where the body ends on the wire.
    framing: Framing,
    /// The read side's stall timer.
    stall: Stall,
}

impl ReadAhead {
    fn new(options: Options) -> Self {
        Self {
            bytes: Vec::new(),
            pos: 0,
            head_end: 0,
            body_read: 0,
            max_body: options.max_body,
            over: false,
            framing: Framing::default(),
            stall: Stall::new(options.body_timeout),
        }
    }
}

/// The most bytes a chunked body's trailer section may take: `async-h1` reads it into a buffer
/// of 8 KiB and fails a longer one.
const MAX_TRAILERS: usize = 8 * 1024;

/// The stream `async-h1` reads: the bytes read ahead first, then the socket. A read or write
/// that makes no progress for the stall timeout fails, so no request body or response waits on
/// a silent client for ever.
#[derive(Clone, Debug)]
struct Conn {
    stream: TcpStream,
    ahead: Arc<Mutex<ReadAhead>>,
    /// The write side's stall timer (the read side's is in `ahead`).
    writing: Arc<Mutex<Stall>>,
}

/// A deadline on progress: armed when an operation has to wait, disarmed when it moves.
#[derive(Debug)]
struct Stall {
    timeout: Duration,
    timer: Option<Timer>,
}

impl Stall {
    fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            timer: None,
        }
    }

    /// Passes on what an operation on the socket came to: progress disarms the timer, a wait
    /// arms it (and registers the task to be woken when it fires), and a wait past the timeout
    /// becomes an error.
    fn watch<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if polled.is_ready() {
            self.timer = None;
            return polled;
        }
        let timeout = self.timeout;
        let timer = self.timer.get_or_insert_with(|| Timer::after(timeout));
        match Pin::new(timer).poll(cx) {
            Poll::Ready(_) => {
                self.timer = None;
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client sent or took nothing for the body timeout",
                )))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Conn {
    /// Reads more of the socket into the read-ahead buffer (the trailer section, collected until
    /// it is whole).
    fn poll_fill(&self, cx: &mut Context<'_>, ahead: &mut ReadAhead) -> Poll<io::Result<()>> {
        if ahead.bytes.len() - ahead.pos >= MAX_TRAILERS {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the request's trailer section is larger than 8 KiB",
            )));
        }
        let filled = ahead.bytes.len();
        ahead.bytes.resize(filled + MAX_TRAILERS, 0);
        let mut stream = &self.stream;
        let read = Pin::new(&mut stream).poll_read(cx, &mut ahead.bytes[filled..]);
        let read = ahead.stall.watch(cx, read);
        ahead.bytes.truncate(filled + read_len(&read));
        match read {
            Poll::Ready(Ok(0)) => Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into())),
            Poll::Ready(Ok(_)) => Poll::Ready(Ok(())),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// How many bytes a read got (none unless it is ready and succeeded).
fn read_len(read: &Poll<io::Result<usize>>) -> usize {
    match read {
        Poll::Ready(Ok(n)) => *n,
        _ => 0,
    }
}

/// The error of a body whose chunked framing cannot be followed.
fn bad_framing() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "the request body's chunked framing is malformed",
    )
}

impl Read for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = &*self;
        let mut guard = this.ahead.lock().unwrap_or_else(PoisonError::into_inner);
        let ahead = &mut *guard;
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if ahead.pos < ahead.head_end {
            // The head, alone: `async-h1` buffers what it reads, so a first read that went
            // past the head would take the body (or the next request) with it.
            let n = buf.len().min(ahead.head_end - ahead.pos);
            buf[..n].copy_from_slice(&ahead.bytes[ahead.pos..ahead.pos + n]);
            ahead.pos += n;
            return Poll::Ready(Ok(n));
        }
        loop {
            // The body: never past its end (what follows is the next request's, and stays
            // here for it), nor past the limit.
            if let Some(end) = ahead.body_end() {
                return Poll::Ready(end);
            }
            let room = buf
                .len()
                .min(usize::try_from(ahead.max_body - ahead.body_read).unwrap_or(usize::MAX));
            if ahead.framing.in_trailers() {
                if let Some(section) = ahead.trailers(buf, room) {
                    return Poll::Ready(section);
                }
                ready!(this.poll_fill(cx, ahead))?;
                continue;
            }
            if ahead.pos < ahead.bytes.len() {
                let end = ahead.bytes.len().min(ahead.pos + room);
                let mut framing = ahead.framing;
                let n = framing.take_until_trailers(&ahead.bytes[ahead.pos..end]);
                if n > 0 {
                    return Poll::Ready(Ok(ahead.hand_on(buf, n, framing)));
                }
                continue;
            }
            let mut stream = &this.stream;
            let read = Pin::new(&mut stream).poll_read(cx, &mut buf[..room]);
            let got = ready!(ahead.stall.watch(cx, read))?;
            if got == 0 {
                return Poll::Ready(Ok(0));
            }
            let n = ahead.framing.take_until_trailers(&buf[..got]);
            ahead.body_read += n as u64;
            if n < got {
                // Past the body's end (the start of the next request), or the trailer section:
                // kept here, for the next request or until the section is whole.
                ahead.bytes.clear();
                ahead.bytes.extend_from_slice(&buf[n..got]);
                ahead.pos = 0;
                ahead.head_end = 0;
            }
            if n > 0 {
                return Poll::Ready(Ok(n));
            }
        }
    }
}

impl ReadAhead {
    /// Why the body can give no more, if it cannot: its end (`Ok(0)`), framing that cannot be
    /// followed, or the listener's limit reached.
    fn body_end(&mut self) -> Option<io::Result<usize>> {
        if self.framing.is_done() {
            return Some(Ok(0));
        }
        if self.framing.is_lost() {
            return Some(Err(bad_framing()));
        }
        if self.body_read >= self.max_body {
            self.over = true;
            return Some(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "request body over the listener's limit",
            )));
        }
        None
    }

    /// The trailer section, handed on whole (into `buf`, at most `room` bytes) or refused;
    /// `None` while it is not whole yet.
    fn trailers(&mut self, buf: &mut [u8], room: usize) -> Option<io::Result<usize>> {
        let mut framing = self.framing;
        let n = framing.take(&self.bytes[self.pos..]);
        if framing.is_done() {
            if n > room {
                return Some(Err(bad_framing()));
            }
            return Some(Ok(self.hand_on(buf, n, framing)));
        }
        if framing.is_lost() {
            return Some(Err(bad_framing()));
        }
        None
    }

    /// Copies the next `n` read-ahead bytes into `buf` and moves past them, the framing now at
    /// `framing`.
    fn hand_on(&mut self, buf: &mut [u8], n: usize, framing: Framing) -> usize {
        buf[..n].copy_from_slice(&self.bytes[self.pos..self.pos + n]);
        self.pos += n;
        self.body_read += n as u64;
        self.framing = framing;
        n
    }
}

impl Write for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut stream = &self.stream;
        let written = Pin::new(&mut stream).poll_write(cx, buf);
        let mut stall = self.writing.lock().unwrap_or_else(PoisonError::into_inner);
        stall.watch(cx, written)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut stream = &self.stream;
        let flushed = Pin::new(&mut stream).poll_flush(cx);
        let mut stall = self.writing.lock().unwrap_or_else(PoisonError::into_inner);
        stall.watch(cx, flushed)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut stream = &self.stream;
        Pin::new(&mut stream).poll_close(cx)
    }
}

/// What waiting for the next head came to.
enum Next {
    /// A complete head, checked.
    Head,
    /// The client closed, went quiet past the timeout, or the server is stopping.
    Close,
    /// A head to refuse.
    Refuse(HeadError),
}

/// Serves `stream` until the client or the server closes it.
pub(crate) async fn serve<State: Clone + Send + Sync + 'static>(
    app: tide::Server<State>,
    stream: TcpStream,
    options: Options,
    stop: Stop,
) {
    let local = stream.local_addr().ok();
    let peer = stream.peer_addr().ok();
    let conn = Conn {
        stream: stream.clone(),
        ahead: Arc::new(Mutex::new(ReadAhead::new(options))),
        writing: Arc::new(Mutex::new(Stall::new(options.body_timeout))),
    };
    // Set when `async-h1` hands a decoded request to the app: an error before that is the
    // client's (an undecodable head), an error after it is the connection's.
    let handed_on = AtomicBool::new(false);
    let app = &app;
    let handed = &handed_on;
    let ahead = &conn.ahead;
    let mut h1 = H1Server::new(conn.clone(), move |mut req: tide::http::Request| {
        handed.store(true, Ordering::Relaxed);
        req.set_local_addr(local);
        req.set_peer_addr(peer);
        async move {
            let res = app.respond(req).await;
            // The handler met the body limit (its read failed): whatever it answered, the
            // answer is 413, and the connection closes without reading the rest.
            if ahead.lock().unwrap_or_else(PoisonError::into_inner).over {
                return Ok(too_large());
            }
            res
        }
    });
    loop {
        if !head_to_serve(&conn, peer, options, &stop).await {
            return;
        }
        handed_on.store(false, Ordering::Relaxed);
        let exchange = AssertUnwindSafe(h1.accept_one()).catch_unwind();
        let Some(served) = unless_gone(&stream, peer, exchange).await else {
            return;
        };
        let before_app = !handed_on.load(Ordering::Relaxed);
        match served {
            Ok(Ok(ConnectionStatus::KeepAlive)) if !stop.is_stopped() => {}
            Ok(Ok(_)) => return,
            Ok(Err(e)) if before_app => {
                // A head that passed our checks and still failed to decode (say, a path that
                // is not a URL): the client's error all the same.
                tracing::debug!(target: "ratekeeper::http", ?peer, error = %e, "undecodable request head");
                let reason = "the request head could not be decoded";
                return refuse(&stream, peer, StatusCode::BadRequest, reason).await;
            }
            Ok(Err(e)) => {
                tracing::debug!(target: "ratekeeper::http", ?peer, error = %e, "connection ended");
                if conn
                    .ahead
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .over
                {
                    // The 413 is written; the client may still be sending.
                    linger(&stream).await;
                }
                return;
            }
            Err(_) if before_app => {
                tracing::warn!(target: "ratekeeper::http", ?peer, "the HTTP parser panicked on a request head");
                let reason = "the request head could not be decoded";
                return refuse(&stream, peer, StatusCode::BadRequest, reason).await;
            }
            Err(_) => {
                tracing::error!(target: "ratekeeper::http", ?peer, "a request handler panicked; connection closed");
                return;
            }
        }
    }
}

/// Whether a checked head waits to be served; else the connection ends (a head to refuse is
/// answered first).
async fn head_to_serve(
    conn: &Conn,
    peer: Option<SocketAddr>,
    options: Options,
    stop: &Stop,
) -> bool {
    match next_head(conn, options, stop).await {
        Next::Head => true,
        Next::Close => false,
        Next::Refuse(reason) => {
            refuse(&conn.stream, peer, reason.status(), &reason.to_string()).await;
            false
        }
    }
}

/// `exchange`'s output, or `None` when the client closes the connection first: the handler is
/// then dropped (and with it what it held: in-flight slots, say), as hyper does. The socket is
/// watched (peeked, nothing consumed) only once the exchange has had to wait: a request served
/// at once costs nothing more. Bytes waiting on the socket (a body being read, a pipelined
/// request) mean the client is still there: the watch then ends.
async fn unless_gone<F: Future>(
    stream: &TcpStream,
    peer: Option<SocketAddr>,
    exchange: F,
) -> Option<F::Output> {
    let mut exchange = core::pin::pin!(exchange);
    let mut watch: Option<Pin<Box<dyn Future<Output = bool> + Send>>> = None;
    let mut watching = true;
    core::future::poll_fn(|cx| {
        if let Poll::Ready(out) = exchange.as_mut().poll(cx) {
            return Poll::Ready(Some(out));
        }
        if watching {
            let gone = watch.get_or_insert_with(|| Box::pin(peer_gone(stream.clone())));
            match gone.as_mut().poll(cx) {
                Poll::Ready(true) => {
                    tracing::debug!(target: "ratekeeper::http", ?peer, "the client left before its response");
                    return Poll::Ready(None);
                }
                Poll::Ready(false) => watching = false,
                Poll::Pending => {}
            }
        }
        Poll::Pending
    })
    .await
}

/// Whether the peer closed: `true` at the end of the stream or on an error; `false` (and done
/// watching) when bytes arrive.
async fn peer_gone(stream: TcpStream) -> bool {
    let mut byte = [0u8; 1];
    match stream.peek(&mut byte).await {
        Ok(0) | Err(_) => true,
        Ok(_) => false,
    }
}

/// Reads until the read-ahead buffer holds a whole head (or a reason to refuse it), within the
/// header timeout, and checks it.
async fn next_head(conn: &Conn, options: Options, stop: &Stop) -> Next {
    // The buffer leaves the mutex while the socket is read (async-h1 is not running now).
    let mut buf = {
        let mut ahead = conn.ahead.lock().unwrap_or_else(PoisonError::into_inner);
        let ReadAhead { bytes, pos, .. } = &mut *ahead;
        bytes.drain(..*pos);
        core::mem::take(bytes)
    };
    let read = async {
        let mut stream = conn.stream.clone();
        let mut scanned = 0;
        loop {
            if let Some(end) = head::head_end(&buf, scanned) {
                return Ok::<_, io::Error>(Some(end));
            }
            scanned = buf.len();
            if buf.len() >= MAX_HEAD_LEN {
                return Ok(None);
            }
            let filled = buf.len();
            buf.resize(MAX_HEAD_LEN, 0);
            let n = stream.read(&mut buf[filled..]).await;
            buf.truncate(filled + n.as_ref().map_or(0, |n| *n));
            if n? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    };
    let read = async_std::future::timeout(options.header_timeout, read);
    let end = futures::select_biased! {
        () = stop.stopped().fuse() => return Next::Close,
        read = read.fuse() => match read {
            Ok(Ok(Some(end))) => end,
            Ok(Ok(None)) => return Next::Refuse(HeadError::TooLarge),
            // End of stream, a socket error, or too slow: nothing to answer.
            Ok(Err(_)) | Err(_) => return Next::Close,
        },
    };
    let checked = head::check(&buf[..end]);
    *conn.ahead.lock().unwrap_or_else(PoisonError::into_inner) = ReadAhead {
        bytes: buf,
        head_end: end,
        framing: checked.unwrap_or_default(),
        ..ReadAhead::new(options)
    };
    match checked {
        // A declared length over the limit is refused before a byte of the body is read.
        Ok(Framing::Length(length)) if length > options.max_body => {
            Next::Refuse(HeadError::BodyTooLarge)
        }
        Ok(_) => Next::Head,
        Err(reason) => Next::Refuse(reason),
    }
}

/// Answers `status` with the JSON body `{"error": <reason phrase>, "message": <reason>}`, then
/// closes the connection without losing the answer to a reset.
async fn refuse(stream: &TcpStream, peer: Option<SocketAddr>, status: StatusCode, reason: &str) {
    tracing::debug!(target: "ratekeeper::http", ?peer, status = u16::from(status), reason, "refused a request");
    let body = refusal_body(status, reason);
    let response = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        u16::from(status),
        status.canonical_reason(),
        body.len(),
    );
    let mut stream = stream.clone();
    if stream.write_all(response.as_bytes()).await.is_err() {
        return;
    }
    linger(&stream).await;
}

/// The JSON body of a refusal, shaped like the 429's: `{"error": <reason phrase>, "message": ...}`.
fn refusal_body(status: StatusCode, reason: &str) -> String {
    format!(
        "{{\"error\": \"{}\", \"message\": \"{reason}\"}}",
        status.canonical_reason()
    )
}

/// The answer to a request whose body went past the listener's limit.
fn too_large() -> tide::http::Response {
    let reason = HeadError::BodyTooLarge;
    let mut res = tide::http::Response::new(reason.status());
    res.set_body(refusal_body(reason.status(), &reason.to_string()));
    res.set_content_type(tide::http::mime::JSON);
    res.insert_header("connection", "close");
    res
}

/// Closes a connection whose answer is written without losing it to a reset: closing a socket
/// with unread input sends one, which can destroy the answer before the client reads it. Ends
/// our side, then drains what the client still sends, bounded in bytes and time.
async fn linger(stream: &TcpStream) {
    let mut stream = stream.clone();
    let _ = stream.shutdown(Shutdown::Write);
    let drain = async {
        let mut scratch = [0u8; 4096];
        let mut left = 256 * 1024usize;
        while left > 0 {
            match stream.read(&mut scratch).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    };
    let _ = async_std::future::timeout(Duration::from_secs(2), drain).await;
}
