//! Benchmarks live in `benches/`; run them with `cargo bench -p ratelimit-benches`.

use ratelimit_redis::test_server::RedisServer;

/// The Redis server a Redis benchmark uses: the one on `REDIS_BENCH_PORT` (started pinned by
/// the `scripts/bench-redis*.sh` wrappers), or a fresh one of its own (a smoke run), which
/// lives as long as the returned handle.
pub fn redis_server() -> (Option<RedisServer>, u16) {
    match std::env::var("REDIS_BENCH_PORT") {
        Ok(p) => (None, p.parse().expect("REDIS_BENCH_PORT is a port number")),
        Err(_) => {
            let own = RedisServer::start();
            let port = own.port();
            (Some(own), port)
        }
    }
}
