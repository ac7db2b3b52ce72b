//! The small view of a request that an adapter fills in: no framework types.

use core::{any::Any, fmt, net::IpAddr};

use crate::route::CompiledPolicy;

/// Header lookup, case-insensitive, over whatever the framework stores.
pub trait Headers: Sync {
    /// The first value of header `name`.
    fn get(&self, name: &str) -> Option<&str>;

    /// Every value of header `name`, in order (several header lines, or one).
    fn get_all(&self, name: &str) -> Vec<&str> {
        self.get(name).into_iter().collect()
    }

    /// Every value of header `name` as the bytes received: HTTP lets a value carry bytes
    /// above 0x7F, which are not text. Forwarded headers are read this way, so that one stray
    /// byte spoils only the list entry it is in. Defaults to [`get_all`](Self::get_all); an
    /// adapter whose framework keeps bytes overrides it.
    fn get_all_bytes(&self, name: &str) -> Vec<&[u8]> {
        self.get_all(name).into_iter().map(str::as_bytes).collect()
    }
}

fn first<'s>(pairs: impl Iterator<Item = (&'s str, &'s str)>, name: &str) -> Option<&'s str> {
    pairs
        .into_iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

fn all<'s>(pairs: impl Iterator<Item = (&'s str, &'s str)>, name: &str) -> Vec<&'s str> {
    pairs
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
        .collect()
}

impl<const N: usize> Headers for [(&str, &str); N] {
    fn get(&self, name: &str) -> Option<&str> {
        first(self.iter().copied(), name)
    }
    fn get_all(&self, name: &str) -> Vec<&str> {
        all(self.iter().copied(), name)
    }
}

impl Headers for Vec<(&str, &str)> {
    fn get(&self, name: &str) -> Option<&str> {
        first(self.iter().copied(), name)
    }
    fn get_all(&self, name: &str) -> Vec<&str> {
        all(self.iter().copied(), name)
    }
}

impl Headers for Vec<(String, String)> {
    fn get(&self, name: &str) -> Option<&str> {
        first(self.iter().map(|(n, v)| (n.as_str(), v.as_str())), name)
    }
    fn get_all(&self, name: &str) -> Vec<&str> {
        all(self.iter().map(|(n, v)| (n.as_str(), v.as_str())), name)
    }
}

/// No headers at all.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoHeaders;

impl Headers for NoHeaders {
    fn get(&self, _: &str) -> Option<&str> {
        None
    }
}

/// How many extensions a [`RequestView`] holds (see [`RequestView::with_extension`]).
pub const MAX_EXTENSIONS: usize = 4;

/// What the limiter needs to know about a request: built with `new` and the `with_*` methods,
/// read with plain getters.
///
/// ```
/// use ratekeeper_decision::RequestView;
///
/// let headers = [("X-API-Key", "k1")];
/// let req = RequestView::new("POST", "/api/upload")
///     .with_peer("203.0.113.7".parse().unwrap())
///     .with_headers(&headers)
///     .with_content_length(15 << 20);
/// assert_eq!(req.header("x-api-key"), Some("k1"));
/// assert_eq!(req.content_length(), Some(15 << 20));
/// ```
#[derive(Clone, Copy)]
pub struct RequestView<'a> {
    method: &'a str,
    route: &'a str,
    peer: Option<IpAddr>,
    headers: &'a dyn Headers,
    content_length: Option<u64>,
    extensions: [Option<&'a (dyn Any + Send + Sync)>; MAX_EXTENSIONS],
    policy: Option<&'a CompiledPolicy>,
    /// The client address the limiter resolved (behind trusted proxies), once it has.
    client: Option<IpAddr>,
}

impl fmt::Debug for RequestView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestView")
            .field("method", &self.method)
            .field("route", &self.route)
            .field("peer", &self.peer)
            .field("content_length", &self.content_length)
            .field(
                "extensions",
                &self.extensions.iter().filter(|e| e.is_some()).count(),
            )
            .finish_non_exhaustive()
    }
}

impl<'a> RequestView<'a> {
    /// A request for `route` (the route's id or pattern, e.g. `/users/:id`, not the raw path).
    pub fn new(method: &'a str, route: &'a str) -> Self {
        Self {
            method,
            route,
            peer: None,
            headers: &NoHeaders,
            content_length: None,
            extensions: [None; MAX_EXTENSIONS],
            policy: None,
            client: None,
        }
    }

    /// With the peer address (the TCP connection's remote address).
    #[must_use]
    pub fn with_peer(mut self, peer: IpAddr) -> Self {
        self.peer = Some(peer);
        self
    }

    /// With the request headers.
    #[must_use]
    pub fn with_headers(mut self, headers: &'a dyn Headers) -> Self {
        self.headers = headers;
        self
    }

    /// With the declared body length.
    #[must_use]
    pub fn with_content_length(mut self, len: u64) -> Self {
        self.content_length = Some(len);
        self
    }

    /// With something the application or an adapter attached (an authenticated user, a tier),
    /// for key functions, dynamic limits and costs to read by type with
    /// [`RequestView::extension`]. Up to [`MAX_EXTENSIONS`](crate::adapter::MAX_EXTENSIONS) of different types; a value of a
    /// type already attached replaces it, and one more than that replaces the last.
    ///
    /// ```
    /// use ratekeeper_decision::RequestView;
    ///
    /// struct User(String);
    /// struct Tier(u8);
    /// let (user, tier) = (User("ada".into()), Tier(2));
    /// let req = RequestView::new("GET", "/").with_extension(&user).with_extension(&tier);
    /// assert_eq!(req.extension::<User>().map(|u| u.0.as_str()), Some("ada"));
    /// assert_eq!(req.extension::<Tier>().map(|t| t.0), Some(2));
    /// assert!(req.extension::<String>().is_none());
    /// ```
    #[must_use]
    pub fn with_extension(mut self, value: &'a (dyn Any + Send + Sync)) -> Self {
        let id = value.type_id();
        let slot = self
            .extensions
            .iter()
            .position(|e| e.is_none_or(|e| e.type_id() == id))
            .unwrap_or(MAX_EXTENSIONS - 1);
        self.extensions[slot] = Some(value);
        self
    }

    /// Decided under `policy` (compiled by the limiter with
    /// [`Limiter::compile_route`](crate::Limiter::compile_route)) instead of the policy the
    /// limiter's builder configured for the route.
    #[must_use]
    pub fn with_policy(mut self, policy: &'a CompiledPolicy) -> Self {
        self.policy = Some(policy);
        self
    }

    /// The policy the request carries, if any ([`RequestView::with_policy`]).
    pub fn policy(&self) -> Option<&'a CompiledPolicy> {
        self.policy
    }

    /// With the client address as the limiter resolved it.
    pub(crate) fn with_client(mut self, client: Option<IpAddr>) -> Self {
        self.client = client;
        self
    }

    /// The client's address as the limiter resolved it: the peer, or the address trusted
    /// proxies forwarded (see [`LimiterBuilder::trusted_proxies`](crate::LimiterBuilder)).
    /// The limiter sets it before it runs request filters, exemptions, key functions, dynamic
    /// limits and costs, so those closures read it here; it is `None` in a view the limiter
    /// has not seen, and for a request without a usable address.
    ///
    /// ```
    /// use ratekeeper_decision::{proxy::ForwardedHeader, Kind, Limiter, RequestView};
    ///
    /// # smol::block_on(async {
    /// let office: std::net::IpAddr = "198.51.100.4".parse()?;
    /// let limiter = Limiter::builder()
    ///     .default_limits("1 per hour")
    ///     .trusted_proxies(1, ForwardedHeader::XForwardedFor)
    ///     .request_filter(move |req| req.client_ip() == Some(office))
    ///     .build()?;
    /// let headers = [("X-Forwarded-For", "198.51.100.4")];
    /// let req = RequestView::new("GET", "/").with_peer("10.0.0.1".parse()?).with_headers(&headers);
    /// assert_eq!(limiter.check(&req).await?.kind(), Kind::Exempt);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn client_ip(&self) -> Option<IpAddr> {
        self.client
    }

    /// The method, as sent.
    pub fn method(&self) -> &'a str {
        self.method
    }

    /// The route id.
    pub fn route(&self) -> &'a str {
        self.route
    }

    /// The peer address, if known.
    pub fn peer(&self) -> Option<IpAddr> {
        self.peer
    }

    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers.get(name)
    }

    /// Every value of a header.
    pub fn header_all(&self, name: &str) -> Vec<&'a str> {
        self.headers.get_all(name)
    }

    /// Every value of a header, as bytes ([`Headers::get_all_bytes`](crate::adapter::Headers::get_all_bytes)).
    pub fn header_all_bytes(&self, name: &str) -> Vec<&'a [u8]> {
        self.headers.get_all_bytes(name)
    }

    /// The declared body length.
    pub fn content_length(&self) -> Option<u64> {
        self.content_length
    }

    /// The attached extension of type `T`, if any (see [`RequestView::with_extension`]).
    pub fn extension<T: Any>(&self) -> Option<&'a T> {
        self.extensions
            .iter()
            .flatten()
            .find_map(|e| (*e as &dyn Any).downcast_ref())
    }
}
