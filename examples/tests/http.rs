//! The seed tour over real HTTP: a Tide server on `127.0.0.1:0`, requests from `surf`.

use std::sync::Arc;

use ratekeeper::primitives::{ManualClock, Timestamp};
use ratekeeper_examples::{SeedConfig, seed_app, serve_on_free_port};

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A server on a manual clock (nothing in these tests waits for time to pass).
async fn server(trusted_hops: usize) -> String {
    server_with(SeedConfig {
        trusted_hops,
        ..SeedConfig::default()
    })
    .await
}

thread_local! {
    /// Whether the servers of this test thread are the axum seed tour (else the Tide one).
    static AXUM: core::cell::Cell<bool> = const { core::cell::Cell::new(false) };
    /// The store the servers of this test thread use: memory (`None`), or this URI (each
    /// server under a prefix of its own).
    static STORE: core::cell::RefCell<Option<String>> = const { core::cell::RefCell::new(None) };
}

/// Runs `test` with every server it starts being the axum seed tour.
fn on_axum(test: fn()) {
    AXUM.with(|a| a.set(true));
    test();
}

/// Serves the seed tour for `config`: on Tide, or on axum on this thread's choice.
async fn serve(config: &SeedConfig) -> String {
    if AXUM.with(core::cell::Cell::get) {
        ratekeeper_examples::serve_axum_on_free_port(
            ratekeeper_examples::seed_axum_app(config).unwrap(),
        )
        .unwrap()
    } else {
        serve_on_free_port(seed_app(config).unwrap()).await.unwrap()
    }
}

/// Runs `test` with every server it starts being the axum seed tour on memcached.
fn on_axum_memcached(test: fn()) {
    AXUM.with(|a| a.set(true));
    on_memcached(test);
}

/// Runs `test` with every server it starts on memcached instead of memory: a `memcached` of
/// its own, stopped when the test ends (a process-wide one in a static would outlive the test
/// binary: statics are never dropped).
fn on_memcached(test: fn()) {
    let server = ratekeeper_test_support::memcached::MemcachedServer::start();
    STORE.with(|s| *s.borrow_mut() = Some(server.url()));
    test();
    drop(server);
}

/// A server for `config`, on a manual clock, on this thread's store.
async fn server_with(config: SeedConfig) -> String {
    static SERVERS: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_700_000_000)));
    let store = STORE.with(|s| s.borrow().clone());
    let n = SERVERS.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
    let config = SeedConfig {
        clock: Some(clock),
        redis_url: config
            .redis_url
            .or_else(|| store.map(|url| format!("{url}?prefix=http{n}"))),
        ..config
    };
    serve(&config).await
}

async fn send(
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> Reply {
    // A fresh client per request: async-h1's pooled client misreads a reused connection.
    let client = surf::Client::new();
    let url = format!("{base}{path}");
    let mut req = match method {
        "POST" => client.post(&url),
        _ => client.get(&url),
    };
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    req = req.body(surf::Body::from_bytes(body.unwrap_or_default()));
    reply(req.await.unwrap()).await
}

/// A response, read whole.
async fn reply(mut res: surf::Response) -> Reply {
    let headers = res
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), v.as_str().to_owned()))
        .collect();
    let body = res.body_string().await.unwrap();
    Reply {
        status: res.status().into(),
        headers,
        body,
    }
}

async fn get(base: &str, path: &str) -> Reply {
    send(base, "GET", path, &[], None).await
}

#[test]
fn every_route_answers_with_its_limit() {
    async_std::task::block_on(async {
        let base = server(0).await;
        for (method, path, limit, body) in [
            ("GET", "/api/data", "50", "{\"data\": [1, 2, 3]}"),
            ("GET", "/api/status", "50", "{\"status\": \"ok\"}"),
            ("POST", "/auth/login", "5", "{\"token\": \"example\"}"),
            ("GET", "/api/search", "30", "{\"results\": []}"),
            ("GET", "/api/feed", "100", "{\"items\": []}"),
            ("GET", "/api/generate", "20", "{\"generated\": true}"),
            ("POST", "/api/upload", "100", "{\"uploaded\": 0}"),
            ("GET", "/api/process", "10", "{\"processed\": true}"),
            ("GET", "/api/expensive", "10", "{\"result\": \"expensive\"}"),
        ] {
            let r = send(&base, method, path, &[], None).await;
            assert_eq!((r.status, r.body.as_str()), (200, body), "{method} {path}");
            assert_eq!(
                r.header("X-RateLimit-Limit"),
                Some(limit),
                "{method} {path}"
            );
        }
        let health = get(&base, "/health").await;
        assert_eq!(
            (health.status, health.header("X-RateLimit-Limit")),
            (200, None)
        );
        for (key, limit) in [
            ("basic-key", "100"),
            ("premium-key", "500"),
            ("other", "20"),
        ] {
            let r = send(&base, "GET", "/api/generate", &[("X-API-Key", key)], None).await;
            assert_eq!(r.header("X-RateLimit-Limit"), Some(limit), "tier of {key}");
        }
        assert_eq!(get(&base, "/nowhere").await.status, 404);
    });
}

#[test]
fn headers_on_200_and_429() {
    async_std::task::block_on(async {
        let base = server(0).await;
        let first = send(&base, "POST", "/auth/login", &[], None).await;
        assert_eq!(first.header("X-RateLimit-Remaining"), Some("4"));
        assert_eq!(
            first.header("RateLimit-Policy"),
            Some("\"5 per 1 minute\";q=5;w=60")
        );
        assert_eq!(
            first.header("RateLimit"),
            Some("\"5 per 1 minute\";r=4;t=60")
        );
        assert_eq!(first.header("Retry-After"), None);
        for _ in 0..4 {
            assert_eq!(
                send(&base, "POST", "/auth/login", &[], None).await.status,
                200
            );
        }
        let sixth = send(&base, "POST", "/auth/login", &[], None).await;
        assert_eq!(sixth.status, 429);
        assert_eq!(sixth.header("Retry-After"), Some("60"));
        assert_eq!(sixth.header("X-RateLimit-Remaining"), Some("0"));
        assert_eq!(sixth.header("X-RateLimit-Reset"), Some("1700000060"));
        assert_eq!(sixth.header("Content-Type"), Some("application/json"));
        assert_eq!(
            sixth.body,
            "{\"error\": \"Rate limit exceeded\", \"message\": \"5 per 1 minute\", \"retry_after\": 60}"
        );
        for _ in 0..10 {
            get(&base, "/api/expensive").await;
        }
        let expensive = get(&base, "/api/expensive").await;
        assert_eq!(expensive.status, 429);
        assert_eq!(
            expensive.body,
            "{\"error\": \"Rate limit exceeded\", \"limit\": \"10 per 1 minute\"}"
        );
    });
}

/// Owned key/value pairs, as `SeedConfig::from_vars` takes them.
fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn flask_limiter_variables_reach_the_seed_tour() {
    async_std::task::block_on(async {
        let with = |pairs: &[(&str, &str)]| SeedConfig::from_vars(vars(pairs)).unwrap();
        // RATELIMIT_DEFAULT replaces the tour's defaults (200 per day; 50 per hour).
        let base = server_with(with(&[("RATELIMIT_DEFAULT", "3 per minute")])).await;
        let mut statuses = Vec::new();
        for _ in 0..4 {
            let r = get(&base, "/api/data").await;
            statuses.push(r.status);
            assert_eq!(r.header("X-RateLimit-Limit"), Some("3"));
        }
        assert_eq!(statuses, [200, 200, 200, 429]);

        // RATELIMIT_ENABLED=false: nothing is limited, no rate-limit header is sent.
        let off = server_with(with(&[("RATELIMIT_ENABLED", "false")])).await;
        for _ in 0..7 {
            let r = send(&off, "POST", "/auth/login", &[], None).await;
            assert_eq!(r.status, 200);
            assert_eq!(r.header("X-RateLimit-Limit"), None);
        }

        // RATELIMIT_HEADER_RETRY_AFTER_VALUE=http-date: the login limit's window (5 per
        // minute, opened by the first login at 1700000000 s) ends at 1700000060 s.
        let dated = server_with(with(&[("RATELIMIT_HEADER_RETRY_AFTER_VALUE", "http-date")])).await;
        for _ in 0..5 {
            assert_eq!(
                send(&dated, "POST", "/auth/login", &[], None).await.status,
                200
            );
        }
        let r = send(&dated, "POST", "/auth/login", &[], None).await;
        assert_eq!(r.status, 429);
        assert_eq!(
            r.header("Retry-After"),
            Some("Tue, 14 Nov 2023 22:14:20 GMT")
        );
    });
}

#[test]
fn the_seed_tours_own_variables_and_their_flask_limiter_aliases() {
    let config = SeedConfig::from_vars(vars(&[
        ("RATELIMIT_STORAGE_URI", "redis://10.0.0.1:6379"),
        ("RATELIMIT_IN_MEMORY_FALLBACK", "3 per minute"),
        ("RATELIMIT_STRATEGY", "gcra"),
        ("RATELIMIT_META", "2 per minute"),
        ("RATELIMIT_KEY_PREFIX", " "),
        ("HOME", "/root"),
    ]))
    .unwrap();
    assert_eq!(config.redis_url.as_deref(), Some("redis://10.0.0.1:6379"));
    assert_eq!(config.fallback.as_deref(), Some("3 per minute"));
    assert_eq!(
        config.strategy,
        Some(ratekeeper::primitives::StrategyKind::Gcra)
    );
    // The rest is passed on to the limiter; empty values count as unset.
    assert_eq!(
        config.ratelimit,
        vars(&[("RATELIMIT_META", "2 per minute")])
    );
    // The tour's own names win over the aliases.
    let both = SeedConfig::from_vars(vars(&[
        ("REDIS_URL", "redis://a:6379"),
        ("RATELIMIT_STORAGE_URI", "redis://b:6379"),
        ("RATELIMIT_FALLBACK", "1 per minute"),
        ("RATELIMIT_IN_MEMORY_FALLBACK", "9 per minute"),
    ]))
    .unwrap();
    assert_eq!(both.redis_url.as_deref(), Some("redis://a:6379"));
    assert_eq!(both.fallback.as_deref(), Some("1 per minute"));
    // A malformed Flask-Limiter value fails the app's start, naming the variable.
    let bad = SeedConfig::from_vars(vars(&[("RATELIMIT_ENABLED", "maybe")])).unwrap();
    let err = seed_app(&bad).err().unwrap().to_string();
    assert!(err.contains("RATELIMIT_ENABLED"), "{err}");
}

#[test]
fn made_up_api_keys_are_one_client() {
    async_std::task::block_on(async {
        let base = server_with(SeedConfig {
            api_keys: vec!["free-1".into(), "free-2".into()],
            ..SeedConfig::default()
        })
        .await;
        // One address, a new key per request: counted by the address, 5 per minute.
        let mut admitted = 0;
        for i in 0..100 {
            let key = format!("minted-{i:08x}");
            let r = send(&base, "POST", "/auth/login", &[("X-API-Key", &key)], None).await;
            admitted += usize::from(r.status == 200);
        }
        assert_eq!(admitted, 5);
        // Keys the app knows are clients of their own (the address above is shut out by now:
        // its breaches hit the meta limit), each with its own 5.
        for key in ["free-1", "free-2", "premium-key"] {
            let mut statuses = Vec::new();
            for _ in 0..6 {
                let r = send(&base, "POST", "/auth/login", &[("X-API-Key", key)], None).await;
                statuses.push(r.status);
            }
            assert_eq!(statuses, [200, 200, 200, 200, 200, 429], "{key}");
        }
    });
}

#[test]
fn meta_limits_span_routes_and_health_is_exempt() {
    async_std::task::block_on(async {
        let base = server(0).await;
        let statuses = {
            let mut v = Vec::new();
            for _ in 0..10 {
                v.push(send(&base, "POST", "/auth/login", &[], None).await.status);
            }
            v
        };
        assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429, 429, 429, 429]);
        let shut = get(&base, "/api/data").await;
        assert_eq!(shut.status, 429, "five breaches: shut out of every route");
        assert_eq!(
            shut.body,
            "{\"error\": \"Rate limit exceeded\", \"message\": \"5 per 1 minute\", \"retry_after\": 60}"
        );
        let other = send(
            &base,
            "GET",
            "/api/data",
            &[("X-API-Key", "basic-key")],
            None,
        )
        .await;
        assert_eq!(other.status, 200, "another identity is unaffected");
        for i in 0..1000 {
            let h = get(&base, "/health").await;
            assert_eq!(h.status, 200, "health check {i}");
            assert_eq!(h.header("X-RateLimit-Limit"), None);
        }
    });
}

#[test]
fn forwarded_for_only_through_trusted_hops() {
    async_std::task::block_on(async {
        let spoof = |ip: &'static str| [("X-Forwarded-For", ip)];
        let direct = server(0).await;
        for i in 0..5 {
            let h = spoof(if i % 2 == 0 { "1.1.1.1" } else { "2.2.2.2" });
            assert_eq!(
                send(&direct, "POST", "/auth/login", &h, None).await.status,
                200
            );
        }
        let h = spoof("3.3.3.3");
        assert_eq!(
            send(&direct, "POST", "/auth/login", &h, None).await.status,
            429,
            "0 hops: ignored"
        );
        let proxied = server(1).await;
        for ip in ["1.1.1.1", "2.2.2.2"] {
            let h = spoof(ip);
            let statuses = {
                let mut v = Vec::new();
                for _ in 0..6 {
                    v.push(send(&proxied, "POST", "/auth/login", &h, None).await.status);
                }
                v
            };
            assert_eq!(
                statuses,
                [200, 200, 200, 200, 200, 429],
                "1 hop: {ip} has its own counter"
            );
        }
        // The test client connects from 127.0.0.1. With the proxies' network set elsewhere it
        // is no proxy: its forwarded addresses are ignored, 5 logins in all.
        let elsewhere = server_with(SeedConfig {
            trusted_hops: 1,
            trusted_networks: Some("192.0.2.0/24".into()),
            ..SeedConfig::default()
        })
        .await;
        let mut admitted = 0;
        for i in 0..20 {
            let claimed = format!("198.51.100.{i}");
            let h = [("X-Forwarded-For", claimed.as_str())];
            admitted += usize::from(
                send(&elsewhere, "POST", "/auth/login", &h, None)
                    .await
                    .status
                    == 200,
            );
        }
        assert_eq!(admitted, 5, "an untrusted peer's forwarded addresses");
    });
}

/// `n` logins with `X-Forwarded-For: xff` (none if `None`): their statuses.
async fn logins(base: &str, xff: Option<&str>, n: usize) -> Vec<u16> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let headers: Vec<(&str, &str)> = xff.map(|v| ("X-Forwarded-For", v)).into_iter().collect();
        out.push(
            send(base, "POST", "/auth/login", &headers, None)
                .await
                .status,
        );
    }
    out
}

/// The status of one login sent over a raw socket with `xff` as the bytes of its
/// `X-Forwarded-For` (surf cannot send a byte above 0x7F).
async fn raw_login(base: &str, xff: &[u8]) -> u16 {
    use async_std::io::{ReadExt, WriteExt};
    let addr = base.trim_start_matches("http://");
    let mut stream = async_std::net::TcpStream::connect(addr).await.unwrap();
    let mut request = format!(
        "POST /auth/login HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\nX-Forwarded-For: "
    )
    .into_bytes();
    request.extend_from_slice(xff);
    request.extend_from_slice(b"\r\n\r\n");
    stream.write_all(&request).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    String::from_utf8_lossy(&answer[9..12]).parse().unwrap()
}

/// Forwarded lists read alike by the Tide middleware and the tower layer (both ask the
/// decision crate, over the header's bytes): a malformed entry left of the client spoils only
/// itself; a malformed client entry is an unknown client, never the proxy's address; with two
/// hops, an intermediate address outside the trusted networks is the client.
#[test]
fn forwarded_entries_are_read_alike_by_both_adapters() {
    async_std::task::block_on(async {
        let five = [200; 5];
        let one_hop = server(1).await;
        assert_eq!(
            logins(&one_hop, Some("not-an-ip, 203.0.113.50"), 5).await,
            five
        );
        assert_eq!(
            logins(&one_hop, Some("203.0.113.50"), 1).await,
            [429],
            "the same client"
        );
        // The client's own entry is malformed: the unknown client's counter, not the proxy's.
        assert_eq!(logins(&one_hop, Some("203.0.113.51, bogus"), 5).await, five);
        assert_eq!(logins(&one_hop, Some("198.51.100.1, junk"), 1).await, [429]);
        assert_eq!(
            logins(&one_hop, None, 1).await,
            [200],
            "the proxy's own counter is untouched"
        );
        let two_hops = server(2).await;
        assert_eq!(
            logins(&two_hops, Some("1.1.1.1, 203.0.113.60"), 5).await,
            five
        );
        assert_eq!(
            logins(&two_hops, Some("9.9.9.9, 203.0.113.60"), 1).await,
            [429],
            "203.0.113.60 is no trusted proxy: it is the client"
        );
        assert_eq!(logins(&two_hops, Some("1.1.1.1, 10.0.0.7"), 1).await, [200]);
        // A byte above 0x7F: the tower layer reads the bytes and counts the proxy's entry;
        // Tide's listener refuses such a head outright (its parser cannot hold the value).
        let raw = server(1).await;
        let axum = AXUM.with(core::cell::Cell::get);
        let mut statuses = Vec::new();
        for _ in 0..6 {
            statuses.push(raw_login(&raw, b"\xe9, 203.0.113.70").await);
        }
        if axum {
            assert_eq!(statuses, [200, 200, 200, 200, 200, 429]);
            assert_eq!(
                logins(&raw, None, 1).await,
                [200],
                "not the proxy's counter"
            );
        } else {
            assert_eq!(statuses, [400; 6]);
        }
    });
}

#[test]
fn uploads_and_conditional_deduction() {
    async_std::task::block_on(async {
        let base = server(0).await;
        let big = send(&base, "POST", "/api/upload", &[], Some(vec![0; 15 << 20])).await;
        assert_eq!(big.status, 200);
        assert_eq!(big.body, format!("{{\"uploaded\": {}}}", 15 << 20));
        assert_eq!(
            big.header("X-RateLimit-Remaining"),
            Some("95"),
            "a 15 MiB upload costs 5"
        );
        let small = send(&base, "POST", "/api/upload", &[], Some(vec![0; 1024])).await;
        assert_eq!(small.header("X-RateLimit-Remaining"), Some("94"));
        for _ in 0..20 {
            assert_eq!(
                get(&base, "/api/process?fail=1").await.status,
                400,
                "400s never count"
            );
        }
        let mut ok = 0;
        for _ in 0..11 {
            ok += usize::from(get(&base, "/api/process").await.status == 200);
        }
        assert_eq!(ok, 10);
    });
}

/// `POST path` with a chunked body of `len` bytes (no `Content-Length`).
async fn send_chunked(base: &str, path: &str, len: usize) -> Reply {
    let client = surf::Client::new();
    let body = surf::Body::from_reader(async_std::io::Cursor::new(vec![7u8; len]), None);
    reply(
        client
            .post(format!("{base}{path}"))
            .body(body)
            .await
            .unwrap(),
    )
    .await
}

#[test]
fn chunked_uploads_pay_for_their_size_and_huge_ones_are_refused() {
    async_std::task::block_on(async {
        let base = server(0).await;
        // No declared length: 5 reserved either way, settled once the handler has read it.
        let big = send_chunked(&base, "/api/upload", 11 << 20).await;
        assert_eq!(big.body, format!("{{\"uploaded\": {}}}", 11 << 20));
        assert_eq!(big.header("X-RateLimit-Remaining"), Some("95"));
        let small = send_chunked(&base, "/api/upload", 1024).await;
        assert_eq!(small.body, "{\"uploaded\": 1024}");
        assert_eq!(
            small.header("X-RateLimit-Remaining"),
            Some("90"),
            "5 reserved"
        );
        // Settled: the 11 MiB body kept its 5, the 1 KiB one cost 1 (4 came back).
        let next = send(&base, "POST", "/api/upload", &[], Some(vec![0; 10])).await;
        assert_eq!(next.header("X-RateLimit-Remaining"), Some("93"));
        // A declared length over 64 MiB is refused before a byte of it is sent.
        let host = base.trim_start_matches("http://");
        let mut stream = async_std::net::TcpStream::connect(host).await.unwrap();
        let head = format!(
            "POST /api/upload HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\n\r\n",
            (64u64 << 20) + 1
        );
        async_std::io::WriteExt::write_all(&mut stream, head.as_bytes())
            .await
            .unwrap();
        let mut answer = String::new();
        async_std::io::ReadExt::read_to_string(&mut stream, &mut answer)
            .await
            .unwrap();
        assert!(answer.starts_with("HTTP/1.1 413 "), "{answer}");
        assert!(
            answer.contains("larger than this server accepts"),
            "{answer}"
        );
    });
}

#[test]
fn sixty_four_concurrent_clients_get_exactly_five_logins() {
    async_std::task::block_on(async {
        let base = server(0).await;
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let base = base.clone();
                async_std::task::spawn(async move {
                    send(&base, "POST", "/auth/login", &[], None).await.status
                })
            })
            .collect();
        let statuses = futures::future::join_all(tasks).await;
        assert_eq!(statuses.iter().filter(|&&s| s == 200).count(), 5);
        assert_eq!(statuses.iter().filter(|&&s| s == 429).count(), 59);
    });
}

/// Two seed-tour servers (two workers) on one Redis: the login limit is shared, with the
/// Redis server's clock, and a dead Redis answers 503 (until the fallback store is set up).
#[test]
fn two_workers_share_one_redis() {
    let mut redis = ratekeeper_test_support::redis::RedisServer::start();
    async_std::task::block_on(async {
        let config = SeedConfig {
            redis_url: Some(format!("{}?prefix=seed", redis.url())),
            ..SeedConfig::default()
        };
        let a = serve(&config).await;
        let b = serve(&config).await;
        let mut statuses = Vec::new();
        for i in 0..7 {
            let base = if i % 2 == 0 { &a } else { &b };
            let r = send(base, "POST", "/auth/login", &[], None).await;
            statuses.push(r.status);
            if r.status == 200 {
                assert_eq!(r.header("X-RateLimit-Limit"), Some("5"));
            } else {
                assert!(r.header("Retry-After").is_some());
            }
        }
        assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429]);
        redis.kill();
        assert_eq!(get(&a, "/api/data").await.status, 503);
    });
}

/// The seed tour with `REDIS_URL` and `RATELIMIT_FALLBACK`: Redis dies under 16 concurrent
/// clients and every request is still answered from the fallback limit (never a 503); after a
/// restart the server goes back to Redis by itself.
#[test]
fn seed_tour_survives_redis_dying_with_a_fallback() {
    let mut redis = ratekeeper_test_support::redis::RedisServer::start();
    async_std::task::block_on(async {
        let config = SeedConfig {
            redis_url: Some(format!(
                "{}?prefix=seedfb&socket_timeout=0.2&socket_connect_timeout=0.2",
                redis.url()
            )),
            fallback: Some("3 per minute".to_owned()),
            ..SeedConfig::default()
        };
        let base = serve(&config).await;
        for _ in 0..4 {
            assert_eq!(get(&base, "/api/data").await.status, 200);
        }
        redis.kill();
        // One client (all from 127.0.0.1), 16 requests at once: the fallback's 3 per minute.
        let replies = futures::future::join_all((0..16).map(|_| get(&base, "/api/data"))).await;
        let mut statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
        statuses.sort_unstable();
        assert_eq!(statuses, [[200; 3].as_slice(), &[429; 13]].concat());
        assert!(
            replies
                .iter()
                .filter(|r| r.status == 429)
                .all(|r| r.header("Retry-After").is_some())
        );
        redis.restart();
        let start = std::time::Instant::now();
        let back = loop {
            let r = get(&base, "/api/data").await;
            assert_ne!(r.status, 503);
            if r.status == 200 {
                break r;
            }
            assert!(
                start.elapsed() < core::time::Duration::from_secs(10),
                "never back on Redis"
            );
            async_std::task::sleep(core::time::Duration::from_millis(50)).await;
        };
        println!("back on Redis {:?} after the restart", start.elapsed());
        // The 200 is Redis's: the restarted (empty) server holds the client's counters again
        // (a 200 from the fallback would leave it empty).
        assert_eq!(back.header("X-RateLimit-Limit"), Some("50"));
        let counters = redis.cli(&["--scan", "--pattern", "seedfb:*"]);
        assert!(!counters.trim().is_empty(), "no counters in Redis");
    });
}

/// Each named test again, inside `$wrapper` (which sets the server and store for the thread).
macro_rules! again {
    ($wrapper:ident; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                super::$wrapper(super::$name);
            }
        )*
    };
}

/// The tests above that run on memory, again with the seed tour on memcached
/// (`RATELIMIT_STORAGE_URI=memcached://...`).
mod on_memcached {
    again!(on_memcached;
        every_route_answers_with_its_limit,
        headers_on_200_and_429,
        flask_limiter_variables_reach_the_seed_tour,
        made_up_api_keys_are_one_client,
        meta_limits_span_routes_and_health_is_exempt,
        forwarded_for_only_through_trusted_hops,
        uploads_and_conditional_deduction,
        chunked_uploads_pay_for_their_size_and_huge_ones_are_refused,
        sixty_four_concurrent_clients_get_exactly_five_logins,
    );
}

/// Every test above again with the seed tour on axum (`seed_tour_axum`, through
/// `ratekeeper-tower`): memory, Redis and the fallback.
mod on_axum {
    again!(on_axum;
        every_route_answers_with_its_limit,
        headers_on_200_and_429,
        flask_limiter_variables_reach_the_seed_tour,
        made_up_api_keys_are_one_client,
        meta_limits_span_routes_and_health_is_exempt,
        forwarded_for_only_through_trusted_hops,
        forwarded_entries_are_read_alike_by_both_adapters,
        uploads_and_conditional_deduction,
        chunked_uploads_pay_for_their_size_and_huge_ones_are_refused,
        sixty_four_concurrent_clients_get_exactly_five_logins,
        two_workers_share_one_redis,
        seed_tour_survives_redis_dying_with_a_fallback,
    );
}

/// The memcached runs again, on axum.
mod on_axum_memcached {
    again!(on_axum_memcached;
        every_route_answers_with_its_limit,
        headers_on_200_and_429,
        flask_limiter_variables_reach_the_seed_tour,
        made_up_api_keys_are_one_client,
        meta_limits_span_routes_and_health_is_exempt,
        forwarded_for_only_through_trusted_hops,
        uploads_and_conditional_deduction,
        chunked_uploads_pay_for_their_size_and_huge_ones_are_refused,
        sixty_four_concurrent_clients_get_exactly_five_logins,
    );
}
