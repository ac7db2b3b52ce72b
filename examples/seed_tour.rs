//! The seed article's application, one route per snippet, on `127.0.0.1:$PORT` (default 8080).
//!
//! Run with `cargo run --release --example seed_tour`; configure with `REDIS_URL` (memory when unset; any storage URI:
//! `redis://...`, `memcached://127.0.0.1:11211`, ...),
//! `RATELIMIT_STRATEGY` (fixed-window), `TRUSTED_PROXY_HOPS` (0), `TRUSTED_PROXIES` (the
//! proxies' networks, comma-separated CIDRs; loopback and private ranges), `RATELIMIT_FALLBACK`,
//! `SEED_API_KEYS` (free-tier API keys, comma-separated), `MAX_BODY_BYTES` (64 MiB), and
//! Flask-Limiter's `RATELIMIT_*` variables, which win over the tour's own settings
//! (`RATELIMIT_DEFAULT="3 per minute"`, `RATELIMIT_ENABLED=false`,
//! `RATELIMIT_HEADER_RETRY_AFTER_VALUE=http-date`; see `ratekeeper::config::CONFIG_KEYS`;
//! `RATELIMIT_STORAGE_URI` and `RATELIMIT_IN_MEMORY_FALLBACK` are aliases of `REDIS_URL` and
//! `RATELIMIT_FALLBACK`).
//! Try `curl -i localhost:8080/api/data`, or six `curl -i -X POST localhost:8080/auth/login`.

use ratekeeper::integrations::tide::HttpListener;
use ratekeeper_examples::{SeedConfig, seed_app};

fn main() -> Result<(), Box<dyn core::error::Error>> {
    let config = SeedConfig::from_env()?;
    let app = seed_app(&config)?;
    let port: u16 = match std::env::var("PORT") {
        Ok(p) => p
            .parse()
            .map_err(|_| format!("PORT={p:?}: not a port number"))?,
        Err(_) => 8080,
    };
    println!("seed tour on http://127.0.0.1:{port} ({config:?})");
    // HttpListener: Nagle off on every connection, undecodable requests answered with a 400,
    // bodies capped (413).
    let mut listener = HttpListener::new(("127.0.0.1", port));
    if let Some(max) = config.max_body {
        listener = listener.max_body(max);
    }
    async_std::task::block_on(app.listen(listener))?;
    Ok(())
}
