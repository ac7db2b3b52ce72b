//! The middleware: each request through the Decision API, the answer onto the response.

use core::any::Any;
use core::{
    fmt,
    net::{IpAddr, SocketAddr},
    pin::Pin,
    str::FromStr,
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    task::{Context, Poll},
};
use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, RwLock},
};

use ratekeeper_decision::{
    ConfigError, Limiter, RequestView, RoutePolicy,
    adapter::{Admission, CompiledPolicy, Headers, Refusal},
};
use route_recognizer::Router;

use crate::held::Held;
use tide::{Middleware, Next, Request, Response, StatusCode, http::Mime};

/// The route id of requests that match no registered pattern.
pub const CATCH_ALL: &str = "*";

/// The rate-limiting middleware, and the registry of its routes. Cheap to clone: clones share
/// the limiter and the registry.
#[derive(Clone)]
pub struct RateLimit {
    limiter: Limiter,
    routes: Arc<RwLock<Routes>>,
    catch_all: Arc<str>,
    extensions: Arc<Vec<ExtensionFn>>,
    /// Whether the first request compared the limiter's route policies with the registry.
    checked_routes: Arc<AtomicBool>,
    /// Policies declared where their routes are ([`RateLimit::limited_at`]), by pattern.
    local: Arc<RwLock<HashMap<Arc<str>, CompiledPolicy>>>,
    /// The application's own refusals, when it gives them ([`RateLimit::respond_with`]).
    respond: Option<RespondFn>,
}

/// Writes the response to a request that is not served.
type RespondFn = Arc<dyn Fn(&Refusal) -> Response + Send + Sync>;

/// Finds a value of one type in a request's extensions, for the limiter's key functions.
type ExtensionFn = fn(&tide::http::Request) -> Option<&(dyn Any + Send + Sync)>;

fn extension_of<T: Any + Send + Sync>(
    req: &tide::http::Request,
) -> Option<&(dyn Any + Send + Sync)> {
    req.ext().get::<T>().map(|t| t as &(dyn Any + Send + Sync))
}

/// The registered patterns, found the way Tide finds a request's endpoint: the patterns
/// registered for the request's method first, then those for every method, then (for `HEAD`)
/// those for `GET`; a path that only other methods' patterns match (Tide answers 405) is
/// counted under the most specific of them.
#[derive(Default)]
struct Routes {
    any: Patterns,
    by_method: BTreeMap<String, Patterns>,
    every: Patterns,
}

impl Routes {
    fn find(&self, method: &str, path: &str) -> Option<Arc<str>> {
        // Methods come in upper case; another spelling costs a copy.
        let upper;
        let method = if method.bytes().any(|b| b.is_ascii_lowercase()) {
            upper = method.to_ascii_uppercase();
            upper.as_str()
        } else {
            method
        };
        let of = |patterns: &Patterns| patterns.find(path);
        self.by_method
            .get(method)
            .and_then(of)
            .or_else(|| of(&self.any))
            .or_else(|| match method {
                "HEAD" => self.by_method.get("GET").and_then(of),
                _ => None,
            })
            .or_else(|| of(&self.every))
    }
}

/// Patterns, matched as Tide matches them; a path that is itself a pattern without parameters
/// or wildcards (most are) is found by a hash lookup, not the router (which allocates a match).
#[derive(Default)]
struct Patterns {
    exact: HashMap<String, Arc<str>>,
    router: Router<Arc<str>>,
    /// Every pattern added, in order.
    all: Vec<Arc<str>>,
}

impl Patterns {
    fn add(&mut self, pattern: &str) {
        let id: Arc<str> = pattern.into();
        if !pattern.split('/').any(|s| s.starts_with([':', '*'])) {
            self.exact.insert(pattern.to_owned(), Arc::clone(&id));
        }
        self.router.add(pattern, Arc::clone(&id));
        self.all.push(id);
    }

    /// The pattern that serves `path`: a static pattern equal to it is the most specific match
    /// the router could give.
    fn find(&self, path: &str) -> Option<Arc<str>> {
        match self.exact.get(path) {
            Some(id) => Some(Arc::clone(id)),
            None => self
                .router
                .recognize(path)
                .ok()
                .map(|m| Arc::clone(m.handler)),
        }
    }
}

impl fmt::Debug for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit")
            .field("limiter", &self.limiter)
            .finish_non_exhaustive()
    }
}

impl RateLimit {
    /// Middleware deciding with `limiter`.
    pub fn new(limiter: Limiter) -> Self {
        Self {
            limiter,
            routes: Arc::new(RwLock::new(Routes::default())),
            catch_all: CATCH_ALL.into(),
            extensions: Arc::new(Vec::new()),
            checked_routes: Arc::new(AtomicBool::new(false)),
            local: Arc::default(),
            respond: None,
        }
    }

    /// Writes the responses the middleware gives instead of calling the endpoint, as the
    /// application's own: `respond` gets the [`Refusal`] (a 429 when a limit is reached, a 503
    /// when the store failed: its status, body and headers as the limiter would send them) and
    /// returns the response; the middleware adds the rate-limit headers to it.
    ///
    /// ```
    /// use ratekeeper_decision::Limiter;
    /// use ratekeeper_tide::RateLimit;
    /// use tide::{Response, http::mime};
    ///
    /// let limits = RateLimit::new(Limiter::builder().default_limits("100 per minute").build()?)
    ///     .respond_with(|refusal| {
    ///         let mut res = Response::new(refusal.status());
    ///         res.set_body(format!("<h1>Slow down</h1><p>{}</p>", refusal.status()));
    ///         res.set_content_type(mime::HTML);
    ///         res
    ///     });
    /// # let _ = limits;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn respond_with(
        mut self,
        respond: impl Fn(&Refusal) -> Response + Send + Sync + 'static,
    ) -> Self {
        self.respond = Some(Arc::new(respond));
        self
    }

    /// Passes the request extension of type `T` (an authenticated user that earlier middleware
    /// set with `req.set_ext`, say) to the limiter, where key functions, dynamic limits and
    /// costs read it with [`RequestView::extension`](ratekeeper_decision::RequestView::extension).
    /// Up to [`MAX_EXTENSIONS`](ratekeeper_decision::adapter::MAX_EXTENSIONS) types.
    #[must_use]
    pub fn extension<T: Any + Send + Sync>(mut self) -> Self {
        Arc::make_mut(&mut self.extensions).push(extension_of::<T>);
        self
    }

    /// The limiter.
    pub fn limiter(&self) -> &Limiter {
        &self.limiter
    }

    /// Registers `pattern` with Tide (returned, to add endpoints to) and with this middleware,
    /// so that its requests are limited under the route id `pattern`.
    pub fn at<'a, State: Clone + Send + Sync + 'static>(
        &self,
        app: &'a mut tide::Server<State>,
        pattern: &str,
    ) -> tide::Route<'a, State> {
        self.register(pattern);
        app.at(pattern)
    }

    /// Like [`RateLimit::at`], and limits the route by `policy` (a limit string, or a full
    /// [`RoutePolicy`]) instead of what the limiter's builder configured for it, so the
    /// pattern is written once. The policy is checked now
    /// ([`Limiter::compile_route`]): a limit string that does not parse is an error here.
    ///
    /// ```
    /// use ratekeeper_decision::Limiter;
    /// use ratekeeper_tide::RateLimit;
    ///
    /// let limits = RateLimit::new(Limiter::builder().default_limits("100 per minute").build()?);
    /// let mut app = tide::new();
    /// app.with(limits.clone());
    /// limits.limited_at(&mut app, "/login", "5 per minute")?.post(|_| async { Ok("welcome") });
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn limited_at<'a, State: Clone + Send + Sync + 'static>(
        &self,
        app: &'a mut tide::Server<State>,
        pattern: &str,
        policy: impl Into<RoutePolicy>,
    ) -> Result<tide::Route<'a, State>, ConfigError> {
        let compiled = self.limiter.compile_route(pattern, policy.into())?;
        self.local
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(pattern.into(), compiled);
        Ok(self.at(app, pattern))
    }

    /// The policy declared for `route` with [`RateLimit::limited_at`], if any.
    fn local_policy(&self, route: &str) -> Option<CompiledPolicy> {
        let local = self
            .local
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if local.is_empty() {
            return None;
        }
        local.get(route).cloned()
    }

    /// The registry as seen from an app nested under `prefix` (`app.at("/api").nest(api)`):
    /// [`Nested::at`] adds a route to the nested app and registers it under its full path, so
    /// that this middleware, on the outer app, limits it by that path (and a
    /// [`group_prefix`](ratekeeper_decision::LimiterBuilder::group_prefix) of `prefix` covers
    /// it).
    pub fn under(&self, prefix: &str) -> Nested<'_> {
        Nested {
            limits: self,
            prefix: prefix.trim_end_matches('/').to_owned(),
        }
    }

    /// Registers a pattern for every method without touching Tide (for routes added some
    /// other way).
    pub fn register(&self, pattern: &str) {
        let mut routes = self.write();
        routes.any.add(pattern);
        routes.every.add(pattern);
    }

    /// Registers a pattern for one method only, as Tide routes it. Needed where patterns
    /// overlap under different methods: with `GET /items/:id` and `POST /items/search`,
    /// Tide serves `GET /items/search` from `/items/:id`, and so must the limits; registered
    /// for every method, the more specific `/items/search` would be chosen.
    pub fn register_method(&self, method: &str, pattern: &str) {
        let mut routes = self.write();
        routes
            .by_method
            .entry(method.to_ascii_uppercase())
            .or_default()
            .add(pattern);
        routes.every.add(pattern);
    }

    /// The route id of a request path for any method: its registered pattern, or
    /// [`CATCH_ALL`]. [`RateLimit::route_for`] is what the middleware uses.
    pub fn route_of(&self, path: &str) -> Arc<str> {
        self.route_for("", path)
    }

    /// The route id of a request: the pattern Tide would serve it from among those
    /// registered (see [`RateLimit::register_method`]), or [`CATCH_ALL`].
    pub fn route_for(&self, method: &str, path: &str) -> Arc<str> {
        let routes = self
            .routes
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        routes
            .find(method, path)
            .unwrap_or_else(|| Arc::clone(&self.catch_all))
    }

    /// Once, at the first request (when the app's routes are registered): route policies of
    /// the limiter that match no registered pattern are logged at `warn`, since their
    /// requests would be counted under other routes' ids.
    fn check_routes(&self) {
        if self.checked_routes.swap(true, Ordering::Relaxed) {
            return;
        }
        let routes = self
            .routes
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let known: Vec<&str> = routes.every.all.iter().map(|p| &**p).collect();
        self.limiter.warn_unmatched_routes(
            &known,
            "registered with the Tide middleware (add routes with `RateLimit::at`)",
        );
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Routes> {
        self.routes
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The routes of an app nested under a prefix ([`RateLimit::under`]).
#[derive(Debug)]
pub struct Nested<'a> {
    limits: &'a RateLimit,
    prefix: String,
}

impl Nested<'_> {
    /// Adds `pattern` to the nested `app` (returned, to add endpoints to) and registers the
    /// prefix and `pattern` with the middleware.
    pub fn at<'s, State: Clone + Send + Sync + 'static>(
        &self,
        app: &'s mut tide::Server<State>,
        pattern: &str,
    ) -> tide::Route<'s, State> {
        self.limits.register(&format!("{}{pattern}", self.prefix));
        app.at(pattern)
    }
}

/// A request body that counts the bytes the handler reads.
struct Counted {
    inner: tide::Body,
    read: Arc<AtomicU64>,
}

impl futures::io::AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        let read = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(n)) = &read {
            self.read.fetch_add(*n as u64, Ordering::Relaxed);
        }
        read
    }
}

impl futures::io::AsyncBufRead for Counted {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<&[u8]>> {
        Pin::new(&mut self.get_mut().inner).poll_fill_buf(cx)
    }

    fn consume(mut self: Pin<&mut Self>, amt: usize) {
        self.read.fetch_add(amt as u64, Ordering::Relaxed);
        Pin::new(&mut self.inner).consume(amt);
    }
}

/// Tide's headers, as the Decision API reads them.
struct TideHeaders<'a>(&'a tide::http::Headers);

impl Headers for TideHeaders<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .and_then(|values| values.iter().next())
            .map(|v| v.as_str())
    }

    fn get_all(&self, name: &str) -> Vec<&str> {
        self.0
            .get(name)
            .map(|values| values.iter().map(|v| v.as_str()).collect())
            .unwrap_or_default()
    }
}

/// The address of a peer as Tide gives it (`ip:port`, `[ipv6]:port`).
fn peer_ip(peer: &str) -> Option<IpAddr> {
    // The address alone parses faster than the whole socket address; a form it does not
    // cover (an IPv6 zone) goes the long way.
    let fast = peer.rsplit_once(':').and_then(|(host, _)| {
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        host.parse::<IpAddr>().ok()
    });
    fast.or_else(|| peer.parse::<SocketAddr>().ok().map(|a| a.ip()))
}

/// The response to a request that is not served: the application's own (`respond`), or the
/// refusal's status, content type, body and a breach hook's headers; then the rate-limit
/// headers.
fn refusal(refusal: &Refusal, respond: Option<&RespondFn>) -> Response {
    if let Some(respond) = respond {
        let mut res = respond(refusal);
        for (name, value) in refusal.rate_limit_headers() {
            res.insert_header(name, value);
        }
        return res;
    }
    let status = StatusCode::try_from(refusal.status()).unwrap_or(StatusCode::TooManyRequests);
    let mut res = Response::new(status);
    res.set_body(refusal.body().to_owned());
    // A content type Tide cannot parse would panic in `set_content_type`: JSON instead.
    match Mime::from_str(refusal.content_type()) {
        Ok(mime) => res.set_content_type(mime),
        Err(_) => {
            tracing::error!(target: "ratekeeper", content_type = refusal.content_type(),
                "a breach response's content type does not parse: sent as JSON");
            res.set_content_type(tide::http::mime::JSON);
        }
    }
    for (name, value) in refusal.extra_headers().chain(refusal.rate_limit_headers()) {
        res.insert_header(name, value);
    }
    res
}

#[tide::utils::async_trait]
impl<State: Clone + Send + Sync + 'static> Middleware<State> for RateLimit {
    async fn handle(&self, mut req: Request<State>, next: Next<'_, State>) -> tide::Result {
        self.check_routes();
        let method = req.method();
        let route = self.route_for(method.as_ref(), req.url().path());
        let local = self.local_policy(&route);
        let admission = {
            let headers = TideHeaders(req.as_ref());
            let mut view = RequestView::new(method.as_ref(), &route).with_headers(&headers);
            if let Some(policy) = &local {
                view = view.with_policy(policy);
            }
            if let Some(ip) = req.peer_addr().and_then(peer_ip) {
                view = view.with_peer(ip);
            }
            for find in self.extensions.iter() {
                if let Some(value) = find(req.as_ref()) {
                    view = view.with_extension(value);
                }
            }
            if let Some(len) = req.len().map(|l| l as u64).or_else(|| {
                req.header("content-length")
                    .and_then(|v| v.as_str().trim().parse().ok())
            }) {
                view = view.with_content_length(len);
            }
            self.limiter.admit(&view).await
        };
        let mut decision = match admission {
            Admission::Serve(decision) => decision,
            Admission::Refuse(refused) => return Ok(refusal(&refused, self.respond.as_ref())),
        };
        // In-flight slots are kept until the response body is sent; dropped with this future
        // (the client gone, the handler panicked), they go back.
        let slots = decision.take_slots();
        // A decision to complete after the response learns its status and, for a settled cost,
        // how much body the handler read.
        let read = decision.is_conditional().then(|| {
            let read = Arc::new(AtomicU64::new(0));
            let len = req.len();
            let body = Counted {
                inner: req.take_body(),
                read: Arc::clone(&read),
            };
            req.set_body(tide::Body::from_reader(body, len));
            read
        });
        let mut res = match &slots {
            None => next.run(req).await,
            Some(slots) => slots.while_running(next.run(req)).await,
        };
        if let Some(slots) = slots {
            Held::around(&mut res, slots);
        }
        // Read in place: the decision is not copied.
        for (name, value) in decision.headers() {
            res.insert_header(name, value);
        }
        let bytes = read.map(|read| read.load(Ordering::Relaxed));
        decision
            .settle(&route, u16::from(res.status()), bytes)
            .await;
        Ok(res)
    }
}

#[cfg(test)]
mod tests {
    use core::net::IpAddr;

    use super::peer_ip;

    #[test]
    fn peer_addresses_as_tide_gives_them() {
        let ip = |s: &str| s.parse::<IpAddr>().ok();
        assert_eq!(peer_ip("203.0.113.7:5000"), ip("203.0.113.7"));
        assert_eq!(peer_ip("[2001:db8::1]:443"), ip("2001:db8::1"));
        assert_eq!(peer_ip("[fe80::1%2]:443"), ip("fe80::1"));
        assert_eq!(peer_ip("[::ffff:10.0.0.1]:80"), ip("::ffff:10.0.0.1"));
        assert_eq!(peer_ip("unix:/tmp/sock"), None);
        assert_eq!(peer_ip(""), None);
    }
}
