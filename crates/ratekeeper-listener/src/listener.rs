//! A Tide listener that serves the way a rate-limited service should: Nagle off, every request
//! head that cannot be decoded answered, a graceful stop.

use core::{fmt, net::SocketAddr, time::Duration};
use std::{io, net::ToSocketAddrs};

use async_std::{
    channel::{Receiver, Sender},
    net::{TcpListener, TcpStream},
    task,
};
use tide::listener::{ListenInfo, Listener, ToListener};

use crate::connection::{self, Options};

/// The request body limit of an [`HttpListener`] unless set: 64 MiB.
pub const DEFAULT_MAX_BODY: u64 = 64 << 20;

/// How long an [`HttpListener`] lets a request body or a response stall unless set: 30 s.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// Tide's TCP listener, made fit to face clients: use it as `app.listen(HttpListener::new(addr))`
/// where a Tide app would write `app.listen(addr)`.
///
/// Compared with Tide's own listener, every accepted stream gets `TCP_NODELAY` (Tide leaves
/// Nagle's algorithm on, so each keep-alive response waits about 40 ms for a delayed ACK: about
/// 730 responses a second at 32 connections, whatever the app does), and a request head that
/// Tide's parser (`async-h1`) cannot decode gets an answer instead of a closed connection: `400
/// Bad Request` (`505` for an HTTP version other than 1.1) with `Connection: close` and a JSON
/// body shaped like the 429's, `{"error": "Bad Request", "message": "..."}`, and one `tracing`
/// event (target `ratekeeper::http`). That covers a head over 8 KiB, more than 128 header fields,
/// an unknown method, a header value with a byte outside ASCII (which makes `http-types` panic),
/// no `Host`, `Content-Length` with `Transfer-Encoding`, and a `Transfer-Encoding` other than
/// `chunked`. A client has [`header_timeout`](Self::header_timeout) to send each head, and a
/// request body may take at most [`max_body`](Self::max_body) bytes (64 MiB unless set; `413`
/// above it, without reading the rest). Peer and local addresses reach the request as with
/// Tide's listener, so key functions see the client. A request body or a response that stalls
/// for [`body_timeout`](Self::body_timeout) ends the connection, and a chunked body's trailer
/// section reaches the app only whole.
///
/// [`stopper`](Self::stopper) gives a handle that stops the listener: it accepts no more
/// connections, closes idle ones, lets requests in flight finish, and then `accept` (so
/// `app.listen`) returns.
///
/// ```no_run
/// use ratekeeper_listener::HttpListener;
///
/// # async_std::task::block_on(async {
/// let mut app = tide::new();
/// app.at("/").get(|_| async { Ok("hello") });
/// app.listen(HttpListener::new("127.0.0.1:8080")).await?;
/// # Ok::<(), std::io::Error>(())
/// # });
/// ```
pub struct HttpListener<State> {
    addrs: io::Result<Vec<SocketAddr>>,
    listener: Option<TcpListener>,
    app: Option<tide::Server<State>>,
    options: Options,
    stop: (Sender<()>, Receiver<()>),
}

impl<State> HttpListener<State> {
    /// A listener that will bind `addrs` (anything `std::net::ToSocketAddrs` takes, such as
    /// `"127.0.0.1:8080"` or `("0.0.0.0", port)`); an address that does not resolve is reported
    /// by `bind`.
    pub fn new(addrs: impl ToSocketAddrs) -> Self {
        Self::with(addrs.to_socket_addrs().map(Iterator::collect), None)
    }

    /// A listener on a socket bound already.
    pub fn from_listener(listener: impl Into<TcpListener>) -> Self {
        Self::with(Ok(Vec::new()), Some(listener.into()))
    }

    fn with(addrs: io::Result<Vec<SocketAddr>>, listener: Option<TcpListener>) -> Self {
        Self {
            addrs,
            listener,
            app: None,
            options: Options {
                header_timeout: Duration::from_secs(60),
                max_body: DEFAULT_MAX_BODY,
                body_timeout: DEFAULT_BODY_TIMEOUT,
            },
            stop: async_std::channel::bounded(1),
        }
    }

    /// How long a client has to send a whole request head, and how long an idle keep-alive
    /// connection is kept open for the next one (default 60 s, as Tide's).
    #[must_use]
    pub fn header_timeout(mut self, timeout: Duration) -> Self {
        self.options.header_timeout = timeout;
        self
    }

    /// How long a request body may go without a byte arriving, and a response without a byte
    /// leaving (default [`DEFAULT_BODY_TIMEOUT`], 30 s). Past it the body read (or the write)
    /// fails and the connection closes: a handler reading the body gets an error, and a cost
    /// reserved for the body is settled from what was read. A client cannot hold a connection
    /// open by trickling nothing, or by never reading its answer.
    #[must_use]
    pub fn body_timeout(mut self, timeout: Duration) -> Self {
        self.options.body_timeout = timeout;
        self
    }

    /// The largest request body accepted, in bytes on the wire (chunked framing included;
    /// default [`DEFAULT_MAX_BODY`], 64 MiB). A declared `Content-Length` above it is answered
    /// `413 Payload Too Large` before any of the body is read; a chunked body that reaches it
    /// fails the handler's read, is answered 413 whatever the handler said, and the connection
    /// closes without reading the rest.
    #[must_use]
    pub fn max_body(mut self, bytes: u64) -> Self {
        self.options.max_body = bytes;
        self
    }

    /// A handle that stops this listener (take it before handing the listener to Tide).
    pub fn stopper(&self) -> Stopper {
        Stopper(self.stop.0.clone())
    }

    /// The bound address (after `bind`).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.as_ref()?.local_addr().ok()
    }
}

/// Stops an [`HttpListener`]; clones stop the same listener.
#[derive(Clone, Debug)]
pub struct Stopper(Sender<()>);

impl Stopper {
    /// Stops accepting connections, closes idle ones, and lets requests in flight finish;
    /// the listener's `accept` returns once the last connection has closed.
    pub fn stop(&self) {
        self.0.close();
    }
}

/// The stop signal as connections see it.
#[derive(Clone, Debug)]
pub(crate) struct Stop(Receiver<()>);

impl Stop {
    /// Resolves once the listener is stopped.
    pub(crate) async fn stopped(&self) {
        // Nothing is ever sent: `recv` fails exactly when the channel is closed.
        let _ = self.0.recv().await;
    }

    pub(crate) fn is_stopped(&self) -> bool {
        self.0.is_closed()
    }
}

/// Accepts one connection and sets `TCP_NODELAY` on it: a response goes out as soon as it is
/// written, not after the client's delayed ACK of the previous one.
pub(crate) async fn accept_stream(listener: &TcpListener) -> io::Result<TcpStream> {
    let (stream, _) = listener.accept().await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Errors that say nothing about the listener itself (the client gave up before we accepted).
fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

#[tide::utils::async_trait]
impl<State: Clone + Send + Sync + 'static> Listener<State> for HttpListener<State> {
    async fn bind(&mut self, app: tide::Server<State>) -> io::Result<()> {
        if self.listener.is_none() {
            let addrs = core::mem::replace(&mut self.addrs, Ok(Vec::new()))?;
            if addrs.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "no address to listen on",
                ));
            }
            self.listener = Some(TcpListener::bind(addrs.as_slice()).await?);
        }
        self.app = Some(app);
        Ok(())
    }

    async fn accept(&mut self) -> io::Result<()> {
        let not_bound = || io::Error::other("`Listener::bind` must be called before `accept`");
        let app = self.app.take().ok_or_else(not_bound)?;
        let listener = self.listener.take().ok_or_else(not_bound)?;
        let stop = Stop(self.stop.1.clone());
        // Each connection holds a clone of `alive`; `recv` fails once all are dropped.
        let (alive, all_closed) = async_std::channel::bounded::<()>(1);
        loop {
            let accepted = futures::select_biased! {
                () = futures::FutureExt::fuse(stop.stopped()) => break,
                s = futures::FutureExt::fuse(accept_stream(&listener)) => s,
            };
            match accepted {
                Ok(stream) => {
                    let (app, stop, alive) = (app.clone(), stop.clone(), alive.clone());
                    let options = self.options;
                    task::spawn(async move {
                        connection::serve(app, stream, options, stop).await;
                        drop(alive);
                    });
                }
                Err(e) if is_transient(&e) => {}
                Err(e) => {
                    // Out of file descriptors, say: wait instead of spinning.
                    tracing::error!(target: "ratekeeper::http", error = %e, "accept failed; pausing 500 ms");
                    task::sleep(Duration::from_millis(500)).await;
                }
            }
        }
        drop((listener, alive));
        let _ = all_closed.recv().await;
        Ok(())
    }

    fn info(&self) -> Vec<ListenInfo> {
        self.local_addr()
            .map(|addr| ListenInfo::new(format!("http://{addr}"), "tcp".into(), false))
            .into_iter()
            .collect()
    }
}

impl<State: Clone + Send + Sync + 'static> ToListener<State> for HttpListener<State> {
    type Listener = Self;

    fn to_listener(self) -> io::Result<Self> {
        Ok(self)
    }
}

impl<State> fmt::Debug for HttpListener<State> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpListener")
            .field("local_addr", &self.local_addr())
            .field("header_timeout", &self.options.header_timeout)
            .field("body_timeout", &self.options.body_timeout)
            .finish_non_exhaustive()
    }
}

impl<State> fmt::Display for HttpListener<State> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.local_addr(), &self.addrs) {
            (Some(addr), _) => write!(f, "http://{addr}"),
            (None, Ok(addrs)) if !addrs.is_empty() => write!(f, "http://{}", addrs[0]),
            _ => f.write_str("an HttpListener not bound yet"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_streams_have_nodelay() {
        task::block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let client = TcpStream::connect(addr).await.unwrap();
            let server = accept_stream(&listener).await.unwrap();
            assert!(
                server.nodelay().unwrap(),
                "the accepted stream has TCP_NODELAY"
            );
            assert!(
                !client.nodelay().unwrap(),
                "a fresh socket does not (so the check above means something)"
            );
        });
    }
}
