//! The seed tour on axum: the same routes, bodies, headers and environment variables as
//! `seed_tour` (`PORT`, `REDIS_URL`/`RATELIMIT_STORAGE_URI`, `RATELIMIT_STRATEGY`,
//! `TRUSTED_PROXY_HOPS`, `TRUSTED_PROXIES`, `RATELIMIT_FALLBACK`, `SEED_API_KEYS`,
//! `MAX_BODY_BYTES` and the `RATELIMIT_*` configuration), behind `ratekeeper-tower`'s layer, on
//! tokio. Run with `cargo run --release --example seed_tour_axum`.

use ratekeeper_examples::{SeedConfig, seed_axum_app, serve_axum};

fn main() -> Result<(), Box<dyn core::error::Error>> {
    let config = SeedConfig::from_env()?;
    let app = seed_axum_app(&config)?;
    let port: u16 = match std::env::var("PORT") {
        Ok(p) => p
            .parse()
            .map_err(|_| format!("PORT={p:?}: not a port number"))?,
        Err(_) => 8080,
    };
    println!("seed tour (axum) on http://127.0.0.1:{port} ({config:?})");
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        serve_axum(listener, app).await
    })?;
    Ok(())
}
