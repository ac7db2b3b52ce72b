//! Serving an axum router with deadlines, for apps that face strangers: `axum::serve` sets
//! none, so a client that sends half a request head, or a body byte a minute, holds its
//! connection (and a task) for ever.

use core::{future::IntoFuture, net::SocketAddr, pin::Pin, time::Duration};
use std::io;

use axum::Router;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use tokio::net::TcpListener;
use tower_service::Service;

/// How long a client has to send a request head, and how long an idle keep-alive connection
/// stays open, by default.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a client has to send a request body by default: a handler's read of the body
/// fails past it, and the connection closes.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `app` on `listener` over HTTP/1 on the current tokio runtime: each client known by
/// its address (`ConnectInfo<SocketAddr>`, what [`RateLimitLayer`](crate::RateLimitLayer)
/// counts by), Nagle off, and deadlines on request heads, idle keep-alives and bodies (see
/// [`Serve::header_timeout`], [`Serve::body_timeout`]). Await it to run the server.
///
/// ```no_run
/// use axum::{Router, routing::get};
///
/// # async fn run() -> std::io::Result<()> {
/// let app: Router = Router::new().route("/", get(|| async { "hello" }));
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
/// ratekeeper_tower::serve(listener, app).await
/// # }
/// ```
pub fn serve(listener: TcpListener, app: Router) -> Serve {
    Serve {
        listener,
        app,
        header_timeout: DEFAULT_HEADER_TIMEOUT,
        body_timeout: DEFAULT_BODY_TIMEOUT,
    }
}

/// A server [`serve`] configured; await it to run it.
#[derive(Debug)]
#[must_use = "a server does nothing until it is awaited"]
pub struct Serve {
    listener: TcpListener,
    app: Router,
    header_timeout: Duration,
    body_timeout: Duration,
}

impl Serve {
    /// How long a client has to send a request head, counted from the connection opening or
    /// the previous response (so it bounds idle keep-alives too); then the connection closes.
    /// Default [`DEFAULT_HEADER_TIMEOUT`].
    pub fn header_timeout(mut self, timeout: Duration) -> Self {
        self.header_timeout = timeout;
        self
    }

    /// How long a client has to send a request body; past it the handler's read fails (a
    /// reserved cost is settled from what was read) and the connection closes. Default
    /// [`DEFAULT_BODY_TIMEOUT`].
    pub fn body_timeout(mut self, timeout: Duration) -> Self {
        self.body_timeout = timeout;
        self
    }

    async fn run(self) -> io::Result<()> {
        let app = self
            .app
            .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
                self.body_timeout,
            ));
        let mut make_service = app.into_make_service_with_connect_info::<SocketAddr>();
        loop {
            let (tcp, peer) = match self.listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, say: wait instead of spinning.
                    tracing::error!(target: "ratekeeper::http", "accept failed: {e}; pausing 100 ms");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(target: "ratekeeper::http", "TCP_NODELAY: {e}");
            }
            let Ok(service) = make_service.call(peer).await;
            let header_timeout = self.header_timeout;
            tokio::spawn(async move {
                let served = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(header_timeout)
                    .serve_connection(TokioIo::new(tcp), TowerToHyperService::new(service))
                    .await;
                if let Err(e) = served {
                    tracing::debug!(target: "ratekeeper::http", "connection from {peer} ended: {e}");
                }
            });
        }
    }
}

impl IntoFuture for Serve {
    type Output = io::Result<()>;
    type IntoFuture = Pin<Box<dyn Future<Output = io::Result<()>> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}
