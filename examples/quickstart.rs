//! The quickstart: start the seed tour's server with memory storage on a free port, send it
//! requests with a real HTTP client, and print what the limiter answered.
//!
//! Run with `cargo run --example quickstart`. No Redis, no configuration, exits when done.

use ratekeeper_examples::{SeedConfig, seed_app, serve_on_free_port};

struct Row {
    request: String,
    status: u16,
    remaining: String,
    retry_after: String,
}

async fn send(client: &surf::Client, base: &str, method: &str, path: &str) -> surf::Result<Row> {
    let url = format!("{base}{path}");
    let req = match method {
        "POST" => client.post(&url).body_string(String::new()),
        _ => client.get(&url),
    };
    let res = req.await?;
    let header = |name: &str| {
        res.header(name)
            .map_or_else(|| "-".to_owned(), |v| v.as_str().to_owned())
    };
    Ok(Row {
        request: format!("{method} {path}"),
        status: res.status().into(),
        remaining: header("X-RateLimit-Remaining"),
        retry_after: header("Retry-After"),
    })
}

fn main() -> Result<(), Box<dyn core::error::Error>> {
    async_std::task::block_on(async {
        let app = seed_app(&SeedConfig::default())?;
        let base = serve_on_free_port(app).await?;
        println!("seed tour listening on {base} (memory storage)\n");
        let mut plan: Vec<(&str, &str)> = vec![("GET", "/api/data"), ("GET", "/api/data")];
        plan.extend([("POST", "/auth/login"); 6]);
        plan.extend([("GET", "/health"); 3]);
        plan.push(("GET", "/api/search"));
        println!(
            "{:<22} {:>6} {:>10} {:>12}",
            "request", "status", "remaining", "retry-after"
        );
        let mut rejected = 0;
        for (method, path) in plan {
            // A fresh client per request: async-h1's client stumbles on a pooled connection
            // after a POST (\"invalid HTTP version\"); connection reuse is not what this shows.
            let row = send(&surf::Client::new(), &base, method, path)
                .await
                .map_err(|e| e.to_string())?;
            rejected += usize::from(row.status == 429);
            println!(
                "{:<22} {:>6} {:>10} {:>12}",
                row.request, row.status, row.remaining, row.retry_after
            );
        }
        println!("\n/auth/login allows 5 per minute: the sixth got 429 with Retry-After;");
        println!("/health is exempt (no headers, never counted); other routes use the defaults.");
        if rejected != 1 {
            return Err(format!("expected exactly one 429, got {rejected}").into());
        }
        Ok(())
    })
}
