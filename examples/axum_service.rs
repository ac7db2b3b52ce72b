//! An axum service: 200 a day and 50 an hour per client, 5 logins a minute, counted in Redis
//! (`REDIS_URL`, default `redis://127.0.0.1:6379`) and in memory while Redis is down.
use axum::{
    Router,
    routing::{get, post},
};
use ratekeeper::integrations::tower::{LimitedRoutes as _, RateLimitLayer, serve};
use ratekeeper::{ConfigError, Limiter, Outage, Stores};

/// The service's routes and their limits.
pub fn app(redis_url: &str) -> Result<Router, ConfigError> {
    let mut limits = RateLimitLayer::new(
        Limiter::builder()
            .default_limits("200 per day; 50 per hour")
            .stores(Stores::new())
            .storage_uri(redis_url)
            // Redis down or hung: each client is counted in memory until it answers again.
            .on_outage(Outage::in_memory_fallback("100 per day; 25 per hour"))
            .build()?,
    );
    Ok(Router::new()
        .route("/", get(|| async { "hello" }))
        .limited_route(
            "/login",
            post(|| async { "welcome" }),
            &mut limits,
            "5 per minute",
        )?
        .layer(limits))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn core::error::Error>> {
    tracing_subscriber::fmt::init(); // warnings: misconfiguration, Redis going down and back
    let redis = std::env::var("REDIS_URL").unwrap_or("redis://127.0.0.1:6379".into());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    // Clients known by address, deadlines on slow or idle connections.
    serve(listener, app(&redis)?).await?;
    Ok(())
}
