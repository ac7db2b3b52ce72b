//! The three ways to reach Redis, behind one `invoke`/`query`: a single node (the redis crate's
//! `ConnectionManager`, which reconnects by itself), a cluster (`ClusterConnection`, which
//! follows slot moves) and a master found through sentinels (reconnected here: on a broken
//! connection or a demoted master the sentinels are asked again).

use core::{fmt, future::Future, pin::Pin};
use std::time::Instant;

use redis::{
    Cmd, RedisError, RedisResult, ScriptInvocation, Value,
    aio::{ConnectionManager, MultiplexedConnection},
    cluster_async::ClusterConnection,
    cluster_routing::{
        MultipleNodeRoutingInfo, ResponsePolicy, Route, RoutingInfo, SingleNodeRoutingInfo,
        SlotAddr,
    },
};

use crate::{error::needs_reconnect, pipe::Pipe};

type ConnectFuture<C> = Pin<Box<dyn Future<Output = RedisResult<C>> + Send>>;

/// A connection made on first use and made anew after [`Reconnecting::invalidate`].
pub(crate) struct Reconnecting<C> {
    current: parking_lot::Mutex<Option<C>>,
    connecting: futures::lock::Mutex<()>,
    /// The last failed attempt: when it ended, and why.
    failed: parking_lot::Mutex<Option<(Instant, RedisError)>>,
    connect: Box<dyn Fn() -> ConnectFuture<C> + Send + Sync>,
}

/// Whether a connection can still take calls (one that knows it is broken says so).
pub(crate) trait Usable {
    fn usable(&self) -> bool {
        true
    }
}

impl Usable for ClusterConnection {}
impl Usable for MultiplexedConnection {}
impl Usable for Pipe {
    fn usable(&self) -> bool {
        self.is_open()
    }
}

impl<C: Clone + Usable> Reconnecting<C> {
    pub(crate) fn new(connect: impl Fn() -> ConnectFuture<C> + Send + Sync + 'static) -> Self {
        Self {
            current: parking_lot::Mutex::new(None),
            connecting: futures::lock::Mutex::new(()),
            failed: parking_lot::Mutex::new(None),
            connect: Box::new(connect),
        }
    }

    async fn get(&self) -> RedisResult<C> {
        if let Some(c) = self.current.lock().clone().filter(Usable::usable) {
            return Ok(c);
        }
        // One connection attempt at a time; the others wait for it and share the result, so
        // that none waits longer than one attempt.
        let asked = Instant::now();
        let _one = self.connecting.lock().await;
        if let Some(c) = self.current.lock().clone().filter(Usable::usable) {
            return Ok(c);
        }
        if let Some((at, e)) = &*self.failed.lock()
            && *at >= asked
        {
            return Err(e.clone());
        }
        match (self.connect)().await {
            Ok(c) => {
                *self.current.lock() = Some(c.clone());
                Ok(c)
            }
            Err(e) => {
                *self.failed.lock() = Some((Instant::now(), e.clone()));
                Err(e)
            }
        }
    }

    fn invalidate(&self) {
        *self.current.lock() = None;
    }

    /// Passes `result` on, dropping the connection first when the error says it is broken.
    fn check<T>(&self, result: RedisResult<T>) -> RedisResult<T> {
        if let Err(e) = &result
            && needs_reconnect(e)
        {
            self.invalidate();
        }
        result
    }
}

/// How this store reaches Redis.
pub(crate) enum Connection {
    /// One node over TLS or a Unix socket.
    Single(ConnectionManager),
    /// One node over plain TCP, on this crate's own pipelined connection.
    Pipe(Reconnecting<Pipe>),
    Cluster(Reconnecting<ClusterConnection>),
    Sentinel(Reconnecting<MultiplexedConnection>),
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Single(_) => "Connection::Single",
            Self::Pipe(_) => "Connection::Pipe",
            Self::Cluster(_) => "Connection::Cluster",
            Self::Sentinel(_) => "Connection::Sentinel",
        })
    }
}

impl Connection {
    pub(crate) const fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }

    /// Whether every call keeps the store's deadline by itself (connecting within the connect
    /// timeout, answered within the response timeout), so that the store arms no timer.
    pub(crate) const fn keeps_deadline(&self) -> bool {
        matches!(self, Self::Pipe(_))
    }

    /// Runs a script (EVALSHA; on NOSCRIPT it is loaded and run again), routed by its first key
    /// on a cluster.
    pub(crate) async fn invoke(&self, script: &ScriptInvocation<'_>) -> RedisResult<Value> {
        match self {
            Self::Single(c) => script.invoke_async(&mut c.clone()).await,
            Self::Pipe(r) => r.check(script.invoke_async(&mut r.get().await?).await),
            Self::Cluster(r) => script.invoke_async(&mut r.get().await?).await,
            Self::Sentinel(r) => r.check(script.invoke_async(&mut r.get().await?).await),
        }
    }

    /// Runs a command, routed by its first key on a cluster.
    pub(crate) async fn query(&self, cmd: &Cmd) -> RedisResult<Value> {
        match self {
            Self::Single(c) => cmd.query_async(&mut c.clone()).await,
            Self::Pipe(r) => r.check(cmd.query_async(&mut r.get().await?).await),
            Self::Cluster(r) => cmd.query_async(&mut r.get().await?).await,
            Self::Sentinel(r) => r.check(cmd.query_async(&mut r.get().await?).await),
        }
    }

    /// Runs a keyless command; on a cluster, on every master (all must succeed).
    pub(crate) async fn on_every_master(&self, cmd: Cmd) -> RedisResult<Value> {
        match self {
            Self::Single(c) => cmd.query_async(&mut c.clone()).await,
            Self::Pipe(r) => r.check(cmd.query_async(&mut r.get().await?).await),
            Self::Cluster(r) => {
                let routing = RoutingInfo::MultiNode((
                    MultipleNodeRoutingInfo::AllMasters,
                    Some(ResponsePolicy::AllSucceeded),
                ));
                r.get().await?.route_command(cmd, routing).await
            }
            Self::Sentinel(r) => r.check(cmd.query_async(&mut r.get().await?).await),
        }
    }

    /// Runs `cmd` on one node: on a cluster the master at `node` (an address from
    /// [`masters`](Self::masters)), or else the master of `key`'s slot; elsewhere the one node.
    pub(crate) async fn on_node(&self, node: Node<'_>, cmd: Cmd) -> RedisResult<Value> {
        match self {
            Self::Cluster(r) => {
                let target = match node {
                    Node::OfKey(key) => {
                        SingleNodeRoutingInfo::SpecificNode(Route::with_key(key, SlotAddr::Master))
                    }
                    Node::At(host, port) => SingleNodeRoutingInfo::ByAddress {
                        host: host.to_owned(),
                        port,
                    },
                };
                r.get()
                    .await?
                    .route_command(cmd, RoutingInfo::SingleNode(target))
                    .await
            }
            _ => self.query(&cmd).await,
        }
    }

    /// The addresses of a cluster's masters (`CLUSTER SLOTS`); empty elsewhere.
    pub(crate) async fn masters(&self) -> RedisResult<Vec<(String, u16)>> {
        if !self.is_cluster() {
            return Ok(Vec::new());
        }
        let ranges: Vec<Vec<Value>> =
            redis::from_redis_value(self.query(redis::cmd("CLUSTER").arg("SLOTS")).await?)?;
        let mut masters = Vec::new();
        for range in ranges {
            // [first slot, last slot, [host, port, id, ...], replicas...]
            if let Some(master) = range.into_iter().nth(2) {
                let fields: Vec<Value> = redis::from_redis_value(master)?;
                let mut fields = fields.into_iter();
                let host: String = redis::from_redis_value(fields.next().unwrap_or(Value::Nil))?;
                let port: u16 = redis::from_redis_value(fields.next().unwrap_or(Value::Nil))?;
                if !masters.contains(&(host.clone(), port)) {
                    masters.push((host, port));
                }
            }
        }
        Ok(masters)
    }
}

/// Which node [`Connection::on_node`] runs a command on.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Node<'a> {
    /// The master of this key's slot.
    OfKey(&'a str),
    /// The master at this address.
    At(&'a str, u16),
}
