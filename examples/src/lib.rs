//! The seed article's application, shared by `examples/seed_tour.rs`, `examples/quickstart.rs`
//! and the HTTP tests: one route per snippet of the article.
//!
//! | route | limit |
//! |---|---|
//! | `GET /api/data`, `GET /api/status` | defaults: `200 per day; 50 per hour`, per route |
//! | `POST /auth/login` | `5 per minute` |
//! | `GET /api/search` | `30 per minute` |
//! | `GET /api/feed` | `100 per minute` |
//! | `GET /health` | exempt from everything |
//! | `GET /metrics` | exempt: the limiter's metrics in the Prometheus text format |
//! | `GET /api/generate` | per API key tier: `basic-key` 100, `premium-key` 500, else 20 per minute |
//! | `POST /api/upload` | `100 per minute`, cost 5 above 10 MiB (a body of unknown length is charged 5, then settled once read) |
//! | `GET /api/process` | `10 per minute`, only 200s count (`?fail=1` answers 400) |
//! | `GET /api/expensive` | `10 per minute`, its own 429 body |
//! | `GET /api/report` | works `?ms=` ms (300; at most 5,000): `30 per minute`, 2 in flight per client, 20 in all |
//!
//! Everywhere: meta limits `5 per minute`, both header families, the 429 body
//! `{"error": "Rate limit exceeded", "message": "<limit>", "retry_after": N}`, and the key
//! `apikey:<X-API-Key>` for a key the app knows (`basic-key`, `premium-key`, and the free-tier
//! keys listed in `SEED_API_KEYS`), `ip:<client>` for every other request: a client that makes
//! up a new key per request is still one client.

mod prometheus;
#[cfg(feature = "axum")]
mod seed_axum;

use std::sync::Arc;

use ratekeeper::integrations::tide::{HttpListener, RateLimit};
use ratekeeper::primitives::{Clock, StrategyKind};
use ratekeeper::{
    ConfigError, KeyFunction, Limiter, Outage, RoutePolicy, headers::HeaderOptions,
    limits::limit_set, proxy::ForwardedHeader,
};

pub use prometheus::{
    CONTENT_TYPE as METRICS_CONTENT_TYPE, metrics_page, metrics_text, prometheus,
};
#[cfg(feature = "axum")]
pub use seed_axum::{
    BODY_TIMEOUT, HEADER_TIMEOUT, seed_axum_app, serve_axum, serve_axum_on_free_port,
    serve_axum_on_free_port_with, serve_axum_with,
};

/// The seed tour's configuration, normally from the environment.
#[derive(Clone, Default)]
pub struct SeedConfig {
    /// `REDIS_URL` (or `RATELIMIT_STORAGE_URI`): the store, any storage URI (`redis://...`,
    /// `memcached://...`); memory when unset.
    pub redis_url: Option<String>,
    /// `RATELIMIT_STRATEGY` (default `fixed-window`).
    pub strategy: Option<StrategyKind>,
    /// `TRUSTED_PROXY_HOPS` (default 0).
    pub trusted_hops: usize,
    /// `TRUSTED_PROXIES`: the networks of those proxies, comma-separated CIDRs (default:
    /// loopback and private ranges).
    pub trusted_networks: Option<String>,
    /// `RATELIMIT_FALLBACK`: in-memory fallback limits for when Redis is down.
    pub fallback: Option<String>,
    /// `SEED_API_KEYS`: free-tier API keys, comma-separated (`basic-key` and `premium-key` are
    /// always known).
    pub api_keys: Vec<String>,
    /// `MAX_BODY_BYTES`: the largest request body served (default 64 MiB); larger ones are
    /// answered 413.
    pub max_body: Option<u64>,
    /// The clock (tests use a manual one); the system clock when unset.
    pub clock: Option<Arc<dyn Clock + Send + Sync>>,
    /// Flask-Limiter's `RATELIMIT_*` settings ([`LimiterBuilder::with_config`]), applied over
    /// the tour's own: `RATELIMIT_DEFAULT="3 per minute"` replaces its defaults,
    /// `RATELIMIT_ENABLED=false` turns limiting off.
    ///
    /// [`LimiterBuilder::with_config`]: ratekeeper::LimiterBuilder::with_config
    pub ratelimit: Vec<(String, String)>,
}

impl core::fmt::Debug for SeedConfig {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SeedConfig")
            .field(
                "redis_url",
                &self
                    .redis_url
                    .as_deref()
                    .map(ratekeeper::storage::redact_uri),
            )
            .field("strategy", &self.strategy)
            .field("trusted_hops", &self.trusted_hops)
            .field("trusted_networks", &self.trusted_networks)
            .field("fallback", &self.fallback)
            .field("api_keys", &self.api_keys.len())
            .field("max_body", &self.max_body)
            .field(
                "ratelimit",
                &self
                    .ratelimit
                    .iter()
                    .map(|(k, v)| (k, ratekeeper::storage::redact_uri(v)))
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl SeedConfig {
    /// Reads the process environment (see [`SeedConfig::from_vars`]).
    pub fn from_env() -> Result<Self, String> {
        Self::from_vars(std::env::vars())
    }

    /// Reads `REDIS_URL` (or `RATELIMIT_STORAGE_URI`), `RATELIMIT_STRATEGY`,
    /// `TRUSTED_PROXY_HOPS`, `TRUSTED_PROXIES`, `RATELIMIT_FALLBACK` (or
    /// `RATELIMIT_IN_MEMORY_FALLBACK`), `SEED_API_KEYS`, `MAX_BODY_BYTES`, and every other
    /// `RATELIMIT_*` variable into [`SeedConfig::ratelimit`], from `vars`.
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Result<Self, String> {
        let vars: Vec<(String, String)> = vars
            .into_iter()
            .filter(|(_, v)| !v.trim().is_empty())
            .collect();
        let var = |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        // Read here (the store and its fallback go together), not passed on.
        const OWN: [&str; 4] = [
            "RATELIMIT_STORAGE_URI",
            "RATELIMIT_FALLBACK",
            "RATELIMIT_IN_MEMORY_FALLBACK",
            "RATELIMIT_STRATEGY",
        ];
        let ratelimit = vars
            .iter()
            .filter(|(k, _)| k.starts_with("RATELIMIT_") && !OWN.contains(&k.as_str()))
            .cloned()
            .collect();
        let strategy = match var("RATELIMIT_STRATEGY") {
            None => None,
            Some(s) => Some(
                s.parse()
                    .map_err(|e| format!("RATELIMIT_STRATEGY={s:?}: {e}"))?,
            ),
        };
        let trusted_hops = match var("TRUSTED_PROXY_HOPS") {
            None => 0,
            Some(s) => s
                .trim()
                .parse()
                .map_err(|_| format!("TRUSTED_PROXY_HOPS={s:?}: not a number"))?,
        };
        let max_body = match var("MAX_BODY_BYTES") {
            None => None,
            Some(s) => Some(
                s.trim()
                    .parse()
                    .map_err(|_| format!("MAX_BODY_BYTES={s:?}: not a number of bytes"))?,
            ),
        };
        Ok(Self {
            max_body,
            redis_url: var("REDIS_URL").or_else(|| var("RATELIMIT_STORAGE_URI")),
            strategy,
            trusted_hops,
            trusted_networks: var("TRUSTED_PROXIES"),
            fallback: var("RATELIMIT_FALLBACK").or_else(|| var("RATELIMIT_IN_MEMORY_FALLBACK")),
            api_keys: var("SEED_API_KEYS")
                .map(|keys| {
                    keys.split(',')
                        .map(str::trim)
                        .filter(|k| !k.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            clock: None,
            ratelimit,
        })
    }
}

/// The seed's 429 body, for every route without its own.
fn breach_body(b: &ratekeeper::breach::Breach<'_>) -> String {
    if b.in_flight {
        return format!(
            "{{\"error\": \"Too many requests in flight\", \"message\": \"{} in flight\", \"retry_after\": null}}",
            b.limit.amount()
        );
    }
    let retry = b
        .retry_after
        .map_or_else(|| "null".to_owned(), |s| s.to_string());
    format!(
        "{{\"error\": \"Rate limit exceeded\", \"message\": \"{}\", \"retry_after\": {retry}}}",
        b.limit
    )
}

/// An upload above this size costs 5.
const LARGE_UPLOAD: u64 = 10 << 20;

/// The seed's limiter.
pub fn seed_limiter(config: &SeedConfig) -> Result<Limiter, ConfigError> {
    let (free, basic, premium) = (
        limit_set("20 per minute")?,
        limit_set("100 per minute")?,
        limit_set("500 per minute")?,
    );
    // Only keys the app knows are identities; anything else counts by address.
    let free_keys: std::collections::HashSet<String> = config.api_keys.iter().cloned().collect();
    let api_key = KeyFunction::credential("X-API-Key", "apikey", move |key| {
        (matches!(key, "basic-key" | "premium-key") || free_keys.contains(key))
            .then(|| key.to_owned())
    });
    let mut builder = Limiter::builder()
        .default_limits("200 per day; 50 per hour")
        .meta_limits("5 per minute")
        .strategy(config.strategy.unwrap_or(StrategyKind::FixedWindow))
        .key_function(api_key)
        .trusted_proxies(config.trusted_hops, ForwardedHeader::XForwardedFor)
        .headers(HeaderOptions::all())
        .on_breach(breach_body)
        .route("/auth/login", RoutePolicy::new().limit("5 per minute"))
        .route("/api/search", RoutePolicy::new().limit("30 per minute"))
        .route("/api/feed", RoutePolicy::new().limit("100 per minute"))
        .route("/health", RoutePolicy::new().exempt())
        .route("/metrics", RoutePolicy::new().exempt())
        .route(
            "/api/generate",
            RoutePolicy::new().dynamic(move |req| match req.header("X-API-Key") {
                Some("basic-key") => basic.clone(),
                Some("premium-key") => premium.clone(),
                _ => free.clone(),
            }),
        )
        .route(
            "/api/upload",
            RoutePolicy::new()
                .limit("100 per minute")
                // A chunked body has no declared length: charge it as large, and settle once
                // the handler has read it.
                .cost(|req| match req.content_length() {
                    Some(n) if n <= LARGE_UPLOAD => 1,
                    _ => 5,
                })
                .settle(|bytes| if bytes > LARGE_UPLOAD { 5 } else { 1 }),
        )
        .route(
            "/api/process",
            RoutePolicy::new()
                .limit("10 per minute")
                .deduct_when(|status| status == 200),
        )
        .route(
            "/api/report",
            RoutePolicy::new()
                .limit("30 per minute")
                .concurrent(2)
                .concurrent_shared(20),
        )
        .route(
            "/api/expensive",
            RoutePolicy::new().limit("10 per minute").on_breach(|b| {
                format!(
                    "{{\"error\": \"Rate limit exceeded\", \"limit\": \"{}\"}}",
                    b.limit
                )
            }),
        );
    // Flask-Limiter's settings win over the tour's own.
    builder = builder.with_config(config.ratelimit.iter().map(|(k, v)| (k, v)))?;
    if let Some(networks) = &config.trusted_networks {
        builder = builder.trusted_proxy_networks(networks);
    }
    builder = with_store(builder, config)?;
    if let Some(clock) = &config.clock {
        builder = builder.clock(Arc::clone(clock));
    }
    builder.build()
}

/// How long `GET /api/report` works: `?ms=` milliseconds (default 300, at most 5,000).
pub fn report_ms(query: Option<&str>) -> u64 {
    query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| pair.strip_prefix("ms="))
        .and_then(|ms| ms.parse::<u64>().ok())
        .unwrap_or(300)
        .min(5_000)
}

/// The store `config` names (memory when none), with its in-memory fallback.
fn with_store(
    mut builder: ratekeeper::LimiterBuilder,
    config: &SeedConfig,
) -> Result<ratekeeper::LimiterBuilder, ConfigError> {
    if let Some(url) = &config.redis_url {
        builder = builder.stores(ratekeeper::Stores::new()).storage_uri(url);
        if let Some(fallback) = &config.fallback {
            // Redis down: count in memory, every route's own limits and these per client on
            // top, and go back to Redis when it answers again.
            builder = builder.on_outage(Outage::in_memory_fallback(fallback));
        }
    } else if let Some(fallback) = &config.fallback {
        limit_set(fallback)?;
        tracing::warn!(target: "ratekeeper", "RATELIMIT_FALLBACK only applies with REDIS_URL: the memory store cannot go down");
    }
    Ok(builder)
}

fn json(body: &str) -> tide::Response {
    let mut res = tide::Response::new(200);
    res.set_body(body.to_owned());
    res.set_content_type(tide::http::mime::JSON);
    res
}

/// The seed tour application.
pub fn seed_app(config: &SeedConfig) -> Result<tide::Server<()>, ConfigError> {
    // The recorder goes in before the limiter decides anything (its metric handles are taken
    // from the recorder installed at the first request).
    prometheus();
    let limits = RateLimit::new(seed_limiter(config)?);
    let mut app = tide::new();
    app.with(limits.clone());
    limits
        .at(&mut app, "/api/data")
        .get(|_| async { Ok(json("{\"data\": [1, 2, 3]}")) });
    limits
        .at(&mut app, "/api/status")
        .get(|_| async { Ok(json("{\"status\": \"ok\"}")) });
    limits
        .at(&mut app, "/auth/login")
        .post(|_| async { Ok(json("{\"token\": \"example\"}")) });
    limits
        .at(&mut app, "/api/search")
        .get(|_| async { Ok(json("{\"results\": []}")) });
    limits
        .at(&mut app, "/api/feed")
        .get(|_| async { Ok(json("{\"items\": []}")) });
    limits
        .at(&mut app, "/health")
        .get(|_| async { Ok(json("{\"status\": \"healthy\"}")) });
    limits
        .at(&mut app, "/metrics")
        .get(|_| async { Ok(metrics_page()) });
    limits
        .at(&mut app, "/api/generate")
        .get(|_| async { Ok(json("{\"generated\": true}")) });
    limits
        .at(&mut app, "/api/upload")
        .post(|mut req: tide::Request<()>| async move {
            let body = req.body_bytes().await?;
            Ok(json(&format!("{{\"uploaded\": {}}}", body.len())))
        });
    limits
        .at(&mut app, "/api/process")
        .get(|req: tide::Request<()>| async move {
            if req
                .url()
                .query_pairs()
                .any(|(k, v)| k == "fail" && v == "1")
            {
                let mut res = json("{\"error\": \"processing failed\"}");
                res.set_status(400);
                return Ok(res);
            }
            Ok(json("{\"processed\": true}"))
        });
    limits
        .at(&mut app, "/api/report")
        .get(|req: tide::Request<()>| async move {
            let ms = report_ms(req.url().query());
            async_std::task::sleep(core::time::Duration::from_millis(ms)).await;
            Ok(json(&format!("{{\"report\": \"done\", \"ms\": {ms}}}")))
        });
    limits
        .at(&mut app, "/api/expensive")
        .get(|_| async { Ok(json("{\"result\": \"expensive\"}")) });
    Ok(app)
}

/// Starts `app` on `127.0.0.1:0` in a background task, served by [`HttpListener`], and returns
/// its base URL.
pub async fn serve_on_free_port(app: tide::Server<()>) -> std::io::Result<String> {
    use tide::listener::Listener;
    let mut listener = app.bind(HttpListener::new("127.0.0.1:0")).await?;
    let url = listener
        .info()
        .first()
        .map(|i| i.connection().to_owned())
        .ok_or_else(|| std::io::Error::other("the listener reports no address"))?;
    async_std::task::spawn(async move {
        if let Err(e) = listener.accept().await {
            tracing::error!("server stopped: {e}");
        }
    });
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::SeedConfig;

    #[test]
    fn the_printed_configuration_hides_store_passwords() {
        for name in ["REDIS_URL", "RATELIMIT_STORAGE_URI"] {
            let uri = "redis://app:hunter2-Xy9@cache:6379/0";
            let config = SeedConfig::from_vars([(name.to_owned(), uri.to_owned())]).unwrap();
            assert_eq!(
                config.redis_url.as_deref(),
                Some(uri),
                "{name} kept for use"
            );
            let shown = format!("{config:?}");
            assert!(
                shown.contains("redis://***@cache:6379/0"),
                "{name}: {shown}"
            );
            assert!(!shown.contains("hunter2"), "{name}: {shown}");
        }
        // Flask-Limiter settings passed through are shown redacted too.
        let config = SeedConfig::from_vars([(
            "RATELIMIT_STORAGE_OPTIONS".to_owned(),
            "redis://:s3cret-pw@cache".to_owned(),
        )])
        .unwrap();
        let shown = format!("{config:?}");
        assert!(shown.contains("RATELIMIT_STORAGE_OPTIONS"), "{shown}");
        assert!(!shown.contains("s3cret"), "{shown}");
    }
}
