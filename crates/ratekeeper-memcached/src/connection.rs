//! Connections to one memcached server: opened on demand, pooled, each call bounded by the
//! response timeout. A connection that fails or times out mid-call is dropped, never reused
//! (its next reply would belong to the abandoned request).

use core::{fmt, time::Duration};
use std::{net::TcpStream, os::unix::net::UnixStream};

use async_io::Async;
use futures::{AsyncRead, AsyncWrite, AsyncWriteExt, io::BufReader};
use ratekeeper_storage::StorageError;

use crate::protocol::{ProtocolError, Reply, read_reply};

/// The backend's name in errors.
pub(crate) const BACKEND: &str = "memcached";
/// Idle connections kept per server.
const MAX_IDLE: usize = 64;

/// Where a server listens.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Address {
    /// `host:port`.
    Tcp(String, u16),
    /// A Unix socket.
    Unix(String),
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp(host, port) => write!(f, "{host}:{port}"),
            Self::Unix(path) => f.write_str(path),
        }
    }
}

trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

type Conn = BufReader<Box<dyn Io>>;

/// One server and its idle connections.
pub(crate) struct Server {
    pub(crate) address: Address,
    connect_timeout: Duration,
    response_timeout: Duration,
    idle: parking_lot::Mutex<Vec<Conn>>,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("address", &self.address)
            .field("idle", &self.idle.lock().len())
            .finish_non_exhaustive()
    }
}

async fn bounded<T>(
    after: Duration,
    fut: impl Future<Output = Result<T, StorageError>>,
) -> Result<T, StorageError> {
    ratekeeper_storage::within(BACKEND, after, fut).await
}

impl Server {
    pub(crate) fn new(
        address: Address,
        connect_timeout: Duration,
        response_timeout: Duration,
    ) -> Self {
        Self {
            address,
            connect_timeout,
            response_timeout,
            idle: parking_lot::Mutex::new(Vec::new()),
        }
    }

    fn unreachable(&self, detail: impl fmt::Display) -> StorageError {
        StorageError::unreachable(BACKEND, format!("{}: {detail}", self.address))
    }

    /// [`Self::unreachable`], with the transport's error as the source.
    fn io(&self, e: std::io::Error) -> StorageError {
        self.unreachable(&e).with_source(e)
    }

    async fn connect(&self) -> Result<Conn, StorageError> {
        let io: Box<dyn Io> = match &self.address {
            Address::Tcp(host, port) => {
                let addrs = {
                    use std::net::ToSocketAddrs;
                    (host.as_str(), *port)
                        .to_socket_addrs()
                        .map_err(|e| self.io(e))?
                        .collect::<Vec<_>>()
                };
                let mut last = None;
                let mut stream = None;
                for addr in addrs {
                    match Async::<TcpStream>::connect(addr).await {
                        Ok(s) => {
                            stream = Some(s);
                            break;
                        }
                        Err(e) => last = Some(e),
                    }
                }
                let stream = stream.ok_or_else(|| {
                    self.unreachable(last.map_or("no address".to_owned(), |e| e.to_string()))
                })?;
                // Requests are small and answered at once: no Nagle delay.
                stream.get_ref().set_nodelay(true).map_err(|e| self.io(e))?;
                Box::new(stream)
            }
            Address::Unix(path) => Box::new(
                Async::<UnixStream>::connect(path)
                    .await
                    .map_err(|e| self.io(e))?,
            ),
        };
        Ok(BufReader::new(io))
    }

    /// Sends `request` (one or more pipelined commands) and reads `replies` replies.
    pub(crate) async fn call(
        &self,
        request: &[u8],
        replies: usize,
    ) -> Result<Vec<Reply>, StorageError> {
        self.call_asking(request, replies, &[]).await
    }

    /// Sends `request` and reads `replies` replies, the values of the keys `asked` among them
    /// (a `gets`).
    pub(crate) async fn call_asking(
        &self,
        request: &[u8],
        replies: usize,
        asked: &[&str],
    ) -> Result<Vec<Reply>, StorageError> {
        let pooled = self.idle.lock().pop();
        let mut conn = match pooled {
            Some(c) => c,
            None => bounded(self.connect_timeout, self.connect()).await?,
        };
        let out = bounded(self.response_timeout, async {
            conn.get_mut()
                .write_all(request)
                .await
                .map_err(|e| self.io(e))?;
            let mut out = Vec::with_capacity(replies);
            for _ in 0..replies {
                out.push(
                    read_reply(&mut conn, asked)
                        .await
                        .map_err(|e| self.error(e))?,
                );
            }
            Ok(out)
        })
        .await
        // The server may have gone (killed, restarted): the other idle connections are
        // likely dead too, and the next call opens a fresh one.
        .inspect_err(|_| self.drop_idle())?;
        let mut idle = self.idle.lock();
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
        Ok(out)
    }

    fn error(&self, e: ProtocolError) -> StorageError {
        match e {
            ProtocolError::Io(e) => self.io(e),
            ProtocolError::Server(m) if m.contains("out of memory") => {
                StorageError::refused(BACKEND, format!("{}: {m}", self.address))
            }
            ProtocolError::Server(m) | ProtocolError::Client(m) | ProtocolError::Malformed(m) => {
                StorageError::protocol(BACKEND, format!("{}: {m}", self.address))
            }
        }
    }

    /// Forgets idle connections (after the server went away, say).
    pub(crate) fn drop_idle(&self) {
        self.idle.lock().clear();
    }
}
