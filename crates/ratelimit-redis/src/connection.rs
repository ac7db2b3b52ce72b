//! The three ways to reach Redis, behind one `invoke`/`query`: a single node (the redis crate's
//! `ConnectionManager`, which reconnects by itself), a cluster (`ClusterConnection`, which
//! follows slot moves) and a master found through sentinels (reconnected here: on a broken
//! connection or a demoted master the sentinels are asked again).

use core::{fmt, future::Future, pin::Pin};

use redis::{
    Cmd, RedisResult, ScriptInvocation, Value,
    aio::{ConnectionManager, MultiplexedConnection},
    cluster_async::ClusterConnection,
    cluster_routing::{MultipleNodeRoutingInfo, ResponsePolicy, RoutingInfo},
};

use crate::error::needs_reconnect;

type ConnectFuture<C> = Pin<Box<dyn Future<Output = RedisResult<C>> + Send>>;

/// A connection made on first use and made anew after [`Reconnecting::invalidate`].
pub(crate) struct Reconnecting<C> {
    current: parking_lot::Mutex<Option<C>>,
    connecting: futures::lock::Mutex<()>,
    connect: Box<dyn Fn() -> ConnectFuture<C> + Send + Sync>,
}

impl<C: Clone> Reconnecting<C> {
    pub(crate) fn new(connect: impl Fn() -> ConnectFuture<C> + Send + Sync + 'static) -> Self {
        Self {
            current: parking_lot::Mutex::new(None),
            connecting: futures::lock::Mutex::new(()),
            connect: Box::new(connect),
        }
    }

    async fn get(&self) -> RedisResult<C> {
        if let Some(c) = self.current.lock().clone() {
            return Ok(c);
        }
        // One connection attempt at a time; the others wait for it and share the result.
        let _one = self.connecting.lock().await;
        if let Some(c) = self.current.lock().clone() {
            return Ok(c);
        }
        let c = (self.connect)().await?;
        *self.current.lock() = Some(c.clone());
        Ok(c)
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
    Single(ConnectionManager),
    Cluster(Reconnecting<ClusterConnection>),
    Sentinel(Reconnecting<MultiplexedConnection>),
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Single(_) => "Connection::Single",
            Self::Cluster(_) => "Connection::Cluster",
            Self::Sentinel(_) => "Connection::Sentinel",
        })
    }
}

impl Connection {
    pub(crate) const fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }

    /// Runs a script (EVALSHA; on NOSCRIPT it is loaded and run again), routed by its first key
    /// on a cluster.
    pub(crate) async fn invoke(&self, script: &ScriptInvocation<'_>) -> RedisResult<Value> {
        match self {
            Self::Single(c) => script.invoke_async(&mut c.clone()).await,
            Self::Cluster(r) => script.invoke_async(&mut r.get().await?).await,
            Self::Sentinel(r) => r.check(script.invoke_async(&mut r.get().await?).await),
        }
    }

    /// Runs a command, routed by its first key on a cluster.
    pub(crate) async fn query(&self, cmd: &Cmd) -> RedisResult<Value> {
        match self {
            Self::Single(c) => cmd.query_async(&mut c.clone()).await,
            Self::Cluster(r) => cmd.query_async(&mut r.get().await?).await,
            Self::Sentinel(r) => r.check(cmd.query_async(&mut r.get().await?).await),
        }
    }

    /// Runs a keyless command; on a cluster, on every master (all must succeed).
    pub(crate) async fn on_every_master(&self, cmd: Cmd) -> RedisResult<Value> {
        match self {
            Self::Single(c) => cmd.query_async(&mut c.clone()).await,
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
}
