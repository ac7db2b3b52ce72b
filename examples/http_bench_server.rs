//! A hello-world Tide server, bare or behind the rate limiter (memory store), for
//! `scripts/bench-http.sh`. Usage: `http_bench_server bare|noop|headers|limited PORT`.

use ratekeeper::Limiter;
use ratekeeper::integrations::tide::{HttpListener, RateLimit};

/// Calls the next middleware, nothing else.
#[derive(Debug)]
struct Noop;

#[tide::utils::async_trait]
impl tide::Middleware<()> for Noop {
    async fn handle(&self, req: tide::Request<()>, next: tide::Next<'_, ()>) -> tide::Result {
        Ok(next.run(req).await)
    }
}

/// Adds three headers the size of the limiter's.
#[derive(Debug)]
struct StaticHeaders;

#[tide::utils::async_trait]
impl tide::Middleware<()> for StaticHeaders {
    async fn handle(&self, req: tide::Request<()>, next: tide::Next<'_, ()>) -> tide::Result {
        let mut res = next.run(req).await;
        res.insert_header("X-RateLimit-Limit", "4000000000");
        res.insert_header("X-RateLimit-Remaining", "3999999999");
        res.insert_header("X-RateLimit-Reset", "1795777596");
        Ok(res)
    }
}

fn main() -> Result<(), Box<dyn core::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "bare".into());
    let port: u16 = args.next().unwrap_or_else(|| "8080".into()).parse()?;
    let mut app = tide::new();
    match mode.as_str() {
        "bare" => {
            app.at("/").get(|_| async { Ok("ok") });
        }
        "limited" => {
            // Every request is allowed (a limit the run cannot reach) and carries the
            // X-RateLimit-* headers: the full cost of a decision on every request.
            let limiter = Limiter::builder()
                .default_limits("4000000000 per hour")
                .build()?;
            let limits = RateLimit::new(limiter);
            app.with(limits.clone());
            limits.at(&mut app, "/").get(|_| async { Ok("ok") });
        }
        "unkeyed" => {
            // The middleware and the Decision API up to the key: every key is empty, so no
            // storage call (isolates the store's share).
            let limiter = Limiter::builder()
                .default_limits("4000000000 per hour")
                .key_function(ratekeeper::KeyFunction::custom("none", |_, _| {
                    String::new()
                }))
                .build()?;
            let limits = RateLimit::new(limiter);
            app.with(limits.clone());
            limits.at(&mut app, "/").get(|_| async { Ok("ok") });
        }
        "noop" => {
            // Tide's middleware machinery alone: a middleware that only calls the next one.
            app.with(Noop);
            app.at("/").get(|_| async { Ok("ok") });
        }
        "headers" => {
            // The machinery plus three response headers of the limiter's size.
            app.with(StaticHeaders);
            app.at("/").get(|_| async { Ok("ok") });
        }
        other => {
            return Err(format!("unknown mode {other:?}: bare, noop, headers or limited").into());
        }
    }
    // HttpListener accepts with TCP_NODELAY: Tide's own listener leaves Nagle's algorithm on,
    // and with delayed ACKs every keep-alive response then waits about 40 ms.
    async_std::task::block_on(app.listen(HttpListener::new(("127.0.0.1", port))))?;
    Ok(())
}
