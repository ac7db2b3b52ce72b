//! A Tide service: 200 a day and 50 an hour per client, 5 logins a minute, counted in Redis
//! (`REDIS_URL`, default `redis://127.0.0.1:6379`) and in memory while Redis is down.
use ratekeeper::integrations::tide::{HttpListener, RateLimit};
use ratekeeper::{ConfigError, Limiter, Outage, Stores};

/// The service's routes and their limits.
pub fn app(redis_url: &str) -> Result<tide::Server<()>, ConfigError> {
    let limits = RateLimit::new(
        Limiter::builder()
            .default_limits("200 per day; 50 per hour")
            .stores(Stores::new())
            .storage_uri(redis_url)
            // Redis down or hung: each client is counted in memory until it answers again.
            .on_outage(Outage::in_memory_fallback("100 per day; 25 per hour"))
            .build()?,
    );
    let mut app = tide::new();
    app.with(limits.clone());
    limits.at(&mut app, "/").get(|_| async { Ok("hello") });
    limits
        .limited_at(&mut app, "/login", "5 per minute")?
        .post(|_| async { Ok("welcome") });
    Ok(app)
}

fn main() -> Result<(), Box<dyn core::error::Error>> {
    tracing_subscriber::fmt::init(); // warnings: misconfiguration, Redis going down and back
    let redis = std::env::var("REDIS_URL").unwrap_or("redis://127.0.0.1:6379".into());
    // Deadlines on slow or idle connections; bad requests get a 400.
    async_std::task::block_on(app(&redis)?.listen(HttpListener::new("127.0.0.1:3000")))?;
    Ok(())
}
