//! The layer and its service.

use core::{
    any::Any,
    fmt,
    future::Future,
    net::IpAddr,
    pin::Pin,
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    task::{Context, Poll},
};
use std::{collections::HashMap, sync::Arc};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, header};
use ratekeeper_decision::{
    ConfigError, Limiter, RequestView, RoutePolicy,
    adapter::{Admission, CompiledPolicy, Headers, Refusal},
};
use tower_layer::Layer;
use tower_service::Service;

use crate::{
    body::{CountedBody, LimitedBody},
    routes::{CATCH_ALL, Routes},
};

/// Finds a request's client address in its extensions.
pub type PeerFn = Arc<dyn Fn(&http::Extensions) -> Option<IpAddr> + Send + Sync>;

/// Writes the response to a request that is not served (see [`RateLimitLayer::respond_with`]).
pub(crate) type RespondFn = Arc<dyn Fn(&Refusal) -> Response<Bytes> + Send + Sync>;

/// Finds a value of one type in a request's extensions, for the limiter's key functions.
type ExtensionFn = fn(&http::Extensions) -> Option<&(dyn Any + Send + Sync)>;

fn extension_of<T: Any + Send + Sync>(ext: &http::Extensions) -> Option<&(dyn Any + Send + Sync)> {
    ext.get::<T>().map(|t| t as &(dyn Any + Send + Sync))
}

/// What every clone of a layer shares: set while the layer is configured, then only read
/// (no lock on a request's path); the two flags are the once-only reports.
struct Shared {
    limiter: Limiter,
    routes: Routes,
    peer: PeerFn,
    extensions: Vec<ExtensionFn>,
    /// Policies declared where their routes are ([`RateLimitLayer::add_route_policy`]), by
    /// route pattern.
    local: HashMap<Arc<str>, CompiledPolicy>,
    /// The application's own refusals, when it gives them.
    respond: Option<RespondFn>,
    /// Whether a request without a client address was reported (once per layer).
    reported_peerless: AtomicBool,
    /// Whether the first request compared the configured policies with the known routes.
    checked_routes: AtomicBool,
}

impl Clone for Shared {
    fn clone(&self) -> Self {
        Self {
            limiter: self.limiter.clone(),
            routes: self.routes.clone(),
            peer: Arc::clone(&self.peer),
            extensions: self.extensions.clone(),
            local: self.local.clone(),
            respond: self.respond.clone(),
            reported_peerless: AtomicBool::new(self.reported_peerless.load(Ordering::Relaxed)),
            checked_routes: AtomicBool::new(self.checked_routes.load(Ordering::Relaxed)),
        }
    }
}

/// What the layer logs, once, for the first request without a client address.
const PEERLESS: &str = "a request reached the rate-limit layer without a client address, so every such request counts against one shared identity: serve the app with `into_make_service_with_connect_info::<SocketAddr>()`, or tell the layer where the address is with `RateLimitLayer::peer`";

/// The rate-limiting layer. Cheap to clone: clones share the limiter and the routes. It is
/// configured by value (or `&mut` for [`add_route_policy`](Self::add_route_policy)) before it
/// wraps a service; after that it is only read, so a request takes no lock.
///
/// ```
/// use axum::{Router, routing::get};
/// use ratekeeper_decision::{Limiter, RoutePolicy};
/// use ratekeeper_tower::RateLimitLayer;
///
/// let limits = RateLimitLayer::new(
///     Limiter::builder()
///         .default_limits("200 per day; 50 per hour")
///         .route("/auth/login", RoutePolicy::new().limit("5 per minute"))
///         .build()?,
/// );
/// let app: Router = Router::new()
///     .route("/auth/login", get(|| async { "welcome" }))
///     .route("/users/{id}", get(|| async { "a user" }))
///     // Inside the router: each request carries its `MatchedPath`.
///     .layer(limits);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct RateLimitLayer {
    shared: Arc<Shared>,
}

impl fmt::Debug for RateLimitLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("limiter", &self.shared.limiter)
            .finish_non_exhaustive()
    }
}

/// axum's `ConnectInfo<SocketAddr>`, when the app is served with
/// `into_make_service_with_connect_info::<SocketAddr>()`.
fn default_peer(ext: &http::Extensions) -> Option<IpAddr> {
    #[cfg(feature = "axum")]
    if let Some(axum::extract::ConnectInfo(addr)) =
        ext.get::<axum::extract::ConnectInfo<core::net::SocketAddr>>()
    {
        return Some(addr.ip());
    }
    ext.get::<core::net::SocketAddr>().map(|a| a.ip())
}

impl RateLimitLayer {
    /// A layer deciding with `limiter`.
    pub fn new(limiter: Limiter) -> Self {
        Self {
            shared: Arc::new(Shared {
                limiter,
                routes: Routes::default(),
                peer: Arc::new(default_peer),
                extensions: Vec::new(),
                local: HashMap::new(),
                respond: None,
                reported_peerless: AtomicBool::new(false),
                checked_routes: AtomicBool::new(false),
            }),
        }
    }

    /// Where the client address comes from (default: axum's `ConnectInfo<SocketAddr>`, or a
    /// `SocketAddr` extension). A request without one is counted as the limiter's
    /// [`UnknownClient`](ratekeeper_decision::keys::UnknownClient) policy says.
    #[must_use]
    pub fn peer(
        self,
        peer: impl Fn(&http::Extensions) -> Option<IpAddr> + Send + Sync + 'static,
    ) -> Self {
        self.configure(|shared| shared.peer = Arc::new(peer))
    }

    /// Writes the responses the layer gives instead of calling the service, as the
    /// application's own: `respond` gets the [`Refusal`] (a 429 when a limit is reached, a
    /// 503 when the store failed: its status, body and headers as the limiter would send them)
    /// and returns the response; the layer adds the rate-limit headers to it. The limiter's
    /// breach hooks still shape the refusal's own body, for adapters of every framework.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use http::{Response, header};
    /// use ratekeeper_decision::Limiter;
    /// use ratekeeper_tower::RateLimitLayer;
    ///
    /// let limits = RateLimitLayer::new(Limiter::builder().default_limits("100 per minute").build()?)
    ///     .respond_with(|refusal| {
    ///         let page = format!("<h1>Slow down</h1><p>{}</p>", refusal.status());
    ///         let mut res = Response::new(Bytes::from(page));
    ///         *res.status_mut() = http::StatusCode::from_u16(refusal.status()).unwrap();
    ///         res.headers_mut().insert(header::CONTENT_TYPE, "text/html".parse().unwrap());
    ///         res
    ///     });
    /// # let _ = limits;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn respond_with(
        self,
        respond: impl Fn(&Refusal) -> Response<Bytes> + Send + Sync + 'static,
    ) -> Self {
        self.configure(|shared| shared.respond = Some(Arc::new(respond)))
    }

    /// Passes the request extension of type `T` (an authenticated user that an outer layer
    /// inserted, say) to the limiter, where key functions, dynamic limits and costs read it
    /// with [`RequestView::extension`](ratekeeper_decision::RequestView::extension). Up to
    /// [`MAX_EXTENSIONS`](ratekeeper_decision::adapter::MAX_EXTENSIONS) types.
    ///
    /// ```
    /// use ratekeeper_decision::{KeyFunction, Limiter};
    /// use ratekeeper_tower::RateLimitLayer;
    ///
    /// #[derive(Clone)]
    /// struct User(String);
    ///
    /// let by_user = KeyFunction::custom("user", |req, _| {
    ///     req.extension::<User>().map(|u| u.0.clone()).unwrap_or_default()
    /// });
    /// let limits = RateLimitLayer::new(
    ///     Limiter::builder().default_limits("100 per minute").key_function(by_user).build()?,
    /// )
    /// .extension::<User>();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn extension<T: Any + Send + Sync>(self) -> Self {
        self.configure(|shared| shared.extensions.push(extension_of::<T>))
    }

    /// Changes the shared state while the layer is configured (a copy, when a clone holds
    /// it too: clones made before keep what they had).
    fn configure(mut self, change: impl FnOnce(&mut Shared)) -> Self {
        change(Arc::make_mut(&mut self.shared));
        self
    }

    /// Registers a route pattern in axum's syntax (`/users/{id}`), for requests that arrive
    /// without a `MatchedPath` (the layer around a whole router, or a plain hyper service).
    #[must_use]
    pub fn route(self, pattern: &str) -> Self {
        self.configure(|shared| shared.routes.add(pattern))
    }

    /// Limits the route `pattern` (its id: axum's `MatchedPath`, or a registered pattern)
    /// by `policy` instead of what the limiter's builder configured for it, checked now
    /// against the limiter ([`Limiter::compile_route`]). With axum,
    /// [`LimitedRoutes::limited_route`](crate::LimitedRoutes::limited_route) adds the route
    /// and its policy in one call, so the path is written once. Clones made before keep the
    /// policies they had.
    pub fn add_route_policy(
        &mut self,
        pattern: &str,
        policy: impl Into<RoutePolicy>,
    ) -> Result<(), ConfigError> {
        let compiled = self.shared.limiter.compile_route(pattern, policy.into())?;
        Arc::make_mut(&mut self.shared)
            .local
            .insert(pattern.into(), compiled);
        Ok(())
    }

    /// The policy declared for `route` with [`RateLimitLayer::add_route_policy`], if any.
    fn local_policy(&self, route: &str) -> Option<&CompiledPolicy> {
        self.shared.local.get(route)
    }

    /// Once, at the first request: the builder's route policies whose patterns match no
    /// route this layer knows (registered patterns and routes with policies of their own) are
    /// logged at `warn`. A layer that knows no routes (an axum router, whose routes it sees
    /// only as requests arrive) checks nothing.
    fn check_routes(&self) {
        let shared = &self.shared;
        if shared.checked_routes.swap(true, Ordering::Relaxed) {
            return;
        }
        let known: Vec<&str> = shared
            .routes
            .patterns()
            .chain(shared.local.keys().map(|k| &**k))
            .collect();
        if !known.is_empty() {
            shared.limiter.warn_unmatched_routes(
                &known,
                "the tower layer knows (its registered patterns and limited routes)",
            );
        }
    }

    /// The limiter.
    pub fn limiter(&self) -> &Limiter {
        &self.shared.limiter
    }

    /// The route id of a request: its `MatchedPath` (axum), else the registered pattern that
    /// serves `path`, else [`CATCH_ALL`].
    pub fn route_of(&self, ext: &http::Extensions, path: &str) -> Arc<str> {
        #[cfg(feature = "axum")]
        if let Some(matched) = ext.get::<axum::extract::MatchedPath>() {
            return matched.as_str().into();
        }
        #[cfg(not(feature = "axum"))]
        let _ = ext;
        self.shared
            .routes
            .find(path)
            .unwrap_or_else(|| CATCH_ALL.into())
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimitService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimitService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`RateLimitLayer`] wraps around another.
#[derive(Clone, Debug)]
pub struct RateLimitService<S> {
    inner: S,
    layer: RateLimitLayer,
}

impl<S> RateLimitService<S> {
    /// The service it wraps.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The service it wraps, to change.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The service it wraps, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// The layer it was made by.
    pub fn layer(&self) -> &RateLimitLayer {
        &self.layer
    }
}

/// The response future of [`RateLimitService`]: the decision, then (when the request is
/// served) the wrapped service's response with the rate-limit headers.
pub struct ResponseFuture<R, E> {
    inner: Pin<Box<dyn Future<Output = Result<R, E>> + Send>>,
}

impl<R, E> fmt::Debug for ResponseFuture<R, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<R, E> Future for ResponseFuture<R, E> {
    type Output = Result<R, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

struct HttpHeaders<'a>(&'a HeaderMap);

impl Headers for HttpHeaders<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(|v| v.to_str().ok())
    }

    fn get_all(&self, name: &str) -> Vec<&str> {
        self.0
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect()
    }

    fn get_all_bytes(&self, name: &str) -> Vec<&[u8]> {
        self.0.get_all(name).iter().map(|v| v.as_bytes()).collect()
    }
}

/// Sets rate-limit headers on `headers`.
fn set_headers<'a>(headers: &mut HeaderMap, rate_limit: impl Iterator<Item = (&'a str, &'a str)>) {
    for (name, value) in rate_limit {
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            (Ok(n), Ok(v)) => {
                headers.insert(n, v);
            }
            _ => {
                tracing::error!(target: "ratekeeper", header = %name, "a rate-limit header that HTTP cannot carry: left out")
            }
        }
    }
}

/// The response to a request that is not served: the application's own (`respond`), or the
/// refusal's status, content type, body and a breach hook's headers; then the rate-limit
/// headers.
fn refusal<B>(refusal: &Refusal, respond: Option<&RespondFn>) -> Response<LimitedBody<B>> {
    if let Some(respond) = respond {
        let (mut parts, body) = respond(refusal).into_parts();
        set_headers(&mut parts.headers, refusal.rate_limit_headers());
        return Response::from_parts(parts, LimitedBody::refused(body));
    }
    let body = Bytes::from(refusal.body().to_owned());
    let mut res = Response::new(LimitedBody::refused(body));
    *res.status_mut() =
        StatusCode::from_u16(refusal.status()).unwrap_or(StatusCode::TOO_MANY_REQUESTS);
    let ct = HeaderValue::from_str(refusal.content_type())
        .unwrap_or(HeaderValue::from_static("application/json"));
    res.headers_mut().insert(header::CONTENT_TYPE, ct);
    for (name, value) in refusal.extra_headers() {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            res.headers_mut().append(n, v);
        }
    }
    set_headers(res.headers_mut(), refusal.rate_limit_headers());
    res
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RateLimitService<S>
where
    S: Service<Request<CountedBody<ReqBody>>, Response = Response<ResBody>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Send + 'static,
{
    type Response = Response<LimitedBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<Self::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        // The service polled ready is the one that serves; a fresh clone stays behind.
        let clone = self.inner.clone();
        let mut inner = core::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        let inner = Box::pin(async move {
            let (parts, body) = req.into_parts();
            layer.check_routes();
            let route = layer.route_of(&parts.extensions, parts.uri.path());
            let local = layer.local_policy(&route);
            let shared = &layer.shared;
            let admission = {
                let headers = HttpHeaders(&parts.headers);
                let mut view =
                    RequestView::new(parts.method.as_str(), &route).with_headers(&headers);
                if let Some(policy) = local {
                    view = view.with_policy(policy);
                }
                match (shared.peer)(&parts.extensions) {
                    Some(ip) => view = view.with_peer(ip),
                    None if !shared.reported_peerless.swap(true, Ordering::Relaxed) => {
                        tracing::error!(target: "ratekeeper", route = %route, "{PEERLESS}");
                    }
                    None => {}
                }
                for find in &shared.extensions {
                    if let Some(value) = find(&parts.extensions) {
                        view = view.with_extension(value);
                    }
                }
                if let Some(len) = parts
                    .headers
                    .get(header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse().ok())
                {
                    view = view.with_content_length(len);
                }
                shared.limiter.admit(&view).await
            };
            let mut decision = match admission {
                Admission::Serve(decision) => decision,
                Admission::Refuse(refused) => {
                    return Ok(refusal(&refused, shared.respond.as_ref()));
                }
            };
            // In-flight slots are kept until the response body is sent; dropped with this
            // future (the client gone, the handler panicked), they go back.
            let slots = decision.take_slots();
            let read = Arc::new(AtomicU64::new(0));
            let req = Request::from_parts(parts, CountedBody::new(body, Arc::clone(&read)));
            let res = match &slots {
                None => inner.call(req).await?,
                Some(slots) => slots.while_running(inner.call(req)).await?,
            };
            let (mut parts, body) = res.into_parts();
            set_headers(&mut parts.headers, decision.headers());
            let bytes = read.load(Ordering::Relaxed);
            decision
                .settle(&route, parts.status.as_u16(), Some(bytes))
                .await;
            Ok(Response::from_parts(
                parts,
                LimitedBody::served(body, slots),
            ))
        });
        ResponseFuture { inner }
    }
}
