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

/// One request on a connection of its own, answered whole (a few lines of HTTP/1.1 rather than
/// an HTTP client crate, to keep the quickstart's build small).
async fn send(base: &str, method: &str, path: &str) -> std::io::Result<Row> {
    use async_std::io::{ReadExt as _, WriteExt as _};
    let host = base.trim_start_matches("http://");
    let mut tcp = async_std::net::TcpStream::connect(host).await?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    tcp.write_all(head.as_bytes()).await?;
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).await?;
    let bad = || std::io::Error::other(format!("not an HTTP response: {answer:?}"));
    let mut lines = answer.lines();
    let status_line = lines.next().ok_or_else(bad)?;
    let status = status_line.split(' ').nth(1).and_then(|s| s.parse().ok());
    let status = status.ok_or_else(bad)?;
    let header = |name: &str| {
        let mut heads = answer.lines().skip(1).take_while(|l| !l.is_empty());
        heads
            .find_map(|l| {
                l.split_once(':')
                    .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            })
            .map_or_else(|| "-".to_owned(), |(_, v)| v.trim().to_owned())
    };
    Ok(Row {
        request: format!("{method} {path}"),
        status,
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
            let row = send(&base, method, path).await?;
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
