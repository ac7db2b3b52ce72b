//! Opening a [`Pipe`]: the address looked up, the socket connected, then `AUTH` and `SELECT` as
//! the settings ask, all within the connect timeout.

use core::{
    future::Future,
    net::{IpAddr, SocketAddr},
    time::Duration,
};
use std::{
    io,
    net::{TcpStream, ToSocketAddrs},
};

use async_io::{Async, Timer};
use redis::{RedisError, RedisResult, Value, aio::ConnectionLike};

use super::Pipe;

/// Where and how to connect.
#[derive(Clone, Debug)]
pub(crate) struct Endpoint {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) username: Option<String>,
    pub(crate) password: Option<String>,
    pub(crate) db: i64,
    pub(crate) connect_timeout: Duration,
    pub(crate) response_timeout: Duration,
}

/// `fut`, or a timeout error after `after`.
async fn within<T>(
    after: Duration,
    what: &str,
    fut: impl Future<Output = RedisResult<T>>,
) -> RedisResult<T> {
    futures::pin_mut!(fut);
    let timer = Timer::after(after);
    match futures::future::select(fut, timer).await {
        futures::future::Either::Left((out, _)) => out,
        futures::future::Either::Right(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("{what} took longer than {after:?}"),
        )
        .into()),
    }
}

/// The addresses of `host` (looked up off the caller's thread unless it is an IP address).
async fn addresses(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let host = host.to_owned();
    blocking::unblock(move || {
        (host.as_str(), port)
            .to_socket_addrs()
            .map(Iterator::collect)
    })
    .await
}

async fn connect(to: &Endpoint) -> RedisResult<Async<TcpStream>> {
    let mut last = io::Error::new(
        io::ErrorKind::NotFound,
        format!("{} has no address", to.host),
    );
    for addr in addresses(&to.host, to.port).await? {
        match Async::<TcpStream>::connect(addr).await {
            Ok(stream) => {
                stream.get_ref().set_nodelay(true)?;
                return Ok(stream);
            }
            Err(e) => last = e,
        }
    }
    Err(last.into())
}

/// A connection to `to`, logged in and on its database, within the connect timeout.
pub(crate) async fn open(to: &Endpoint) -> RedisResult<Pipe> {
    within(to.connect_timeout, "connecting to Redis", async {
        let mut pipe = Pipe::new(connect(to).await?, to.db, to.response_timeout);
        login(&mut pipe, to).await?;
        Ok(pipe)
    })
    .await
}

/// `AUTH` and `SELECT`, as `to` asks.
async fn login(pipe: &mut Pipe, to: &Endpoint) -> RedisResult<()> {
    let mut hello = Vec::new();
    if let Some(password) = &to.password {
        let mut auth = redis::cmd("AUTH");
        if let Some(user) = &to.username {
            auth.arg(user);
        }
        hello.push(auth.arg(password).clone());
    }
    if to.db != 0 {
        hello.push(redis::cmd("SELECT").arg(to.db).clone());
    }
    for cmd in &hello {
        match pipe.req_packed_command(cmd).await? {
            Value::Okay => {}
            Value::ServerError(e) => return Err(RedisError::from(e)),
            other => {
                return Err(RedisError::from((
                    redis::ErrorKind::Client,
                    "unexpected reply to a login",
                    format!("{other:?}"),
                )));
            }
        }
    }
    Ok(())
}
