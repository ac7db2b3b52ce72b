//! The README's two programs (`examples/axum_service.rs`, `examples/tide_service.rs`), run
//! against a real Redis: five logins a minute per client and the defaults elsewhere, then Redis
//! killed and the in-memory fallback answering. Also: the README shows each program as it is.

use ratekeeper_test_support::redis::RedisServer;

#[allow(dead_code, unreachable_pub)]
#[path = "../axum_service.rs"]
mod axum_service;

#[allow(dead_code, unreachable_pub)]
#[path = "../tide_service.rs"]
mod tide_service;

/// Status and `X-RateLimit-Limit` of one request from 127.0.0.1.
async fn send(base: &str, method: &str, path: &str) -> (u16, Option<String>) {
    // A fresh client per request: async-h1's pooled client misreads a reused connection.
    let client = surf::Client::new();
    let url = format!("{base}{path}");
    let req = match method {
        "POST" => client.post(&url).body_string(String::new()),
        _ => client.get(&url),
    };
    let res = req.await.unwrap();
    let limit = res
        .header("X-RateLimit-Limit")
        .map(|v| v.as_str().to_owned());
    (res.status().into(), limit)
}

/// What both programs must do, served at `base` with their store at `redis`.
fn exercise(redis: &mut RedisServer, base: &str) {
    async_std::task::block_on(async {
        let mut logins = Vec::new();
        for _ in 0..6 {
            logins.push(send(base, "POST", "/login").await.0);
        }
        assert_eq!(logins, [200, 200, 200, 200, 200, 429]);
        assert_eq!(send(base, "GET", "/").await, (200, Some("50".to_owned())));
        let counters = redis.cli(&["--scan", "--pattern", "*"]);
        assert!(!counters.trim().is_empty(), "nothing counted in Redis");
        // Redis gone: no 503s; the fallback counts the client in memory, its 25 an hour on top.
        redis.kill();
        let mut statuses = Vec::new();
        for _ in 0..26 {
            statuses.push(send(base, "GET", "/").await.0);
        }
        assert_eq!(statuses, [[200; 25].as_slice(), &[429]].concat());
    });
}

#[test]
fn the_axum_service_limits_logins_and_survives_redis_dying() {
    let mut redis = RedisServer::start();
    let app = axum_service::app(&redis.url()).unwrap();
    let base = ratekeeper_examples::serve_axum_on_free_port(app).unwrap();
    exercise(&mut redis, &base);
}

#[test]
fn the_tide_service_limits_logins_and_survives_redis_dying() {
    let mut redis = RedisServer::start();
    let app = tide_service::app(&redis.url()).unwrap();
    let base = async_std::task::block_on(ratekeeper_examples::serve_on_free_port(app)).unwrap();
    exercise(&mut redis, &base);
}

/// The README shows each program whole (less its `//!` header), in a Rust code block.
#[test]
fn the_readme_shows_both_programs_as_they_are() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    for file in ["axum_service.rs", "tide_service.rs"] {
        let source = std::fs::read_to_string(format!("{root}/examples/{file}")).unwrap();
        let body: String = source
            .lines()
            .skip_while(|l| l.starts_with("//!"))
            .map(|l| format!("{l}\n"))
            .collect();
        let block = format!("```rust,no_run\n{body}```\n");
        assert!(
            readme.contains(&block),
            "README.md does not show examples/{file} as it is"
        );
    }
}
