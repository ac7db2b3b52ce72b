//! A real `redis-server` that runs out of memory (`maxmemory` with `noeviction`): it answers
//! pings and reads but refuses writes. The fallback store must not take the pings for health
//! (flapping), must not hand a limited client fresh quota, and must not be looser than Redis.

use core::time::Duration;
use std::sync::Arc;

use ratekeeper_core::{Limit, StrategyKind};
use ratekeeper_fallback::{Backoff, FallbackStorage, Mode};
use ratekeeper_redis::RedisStorage;
use ratekeeper_storage::{Charge, Key, Storage};
use ratekeeper_test_support::redis::{RedisServer, wait_until};

fn login(ip: &str) -> [Charge; 1] {
    [Charge::new(
        Key::new("ip", ip).under(&["POST /auth/login"]),
        "5 per minute".parse::<Limit>().unwrap(),
        StrategyKind::FixedWindow,
        1,
    )]
}

/// `cmdstat_fcall`'s `rejected_calls`: calls Redis refused before running them (out of memory).
fn refused_fcalls(server: &RedisServer) -> u64 {
    let stats = server.cli(&["INFO", "commandstats"]);
    stats
        .lines()
        .find_map(|l| l.trim().strip_prefix("cmdstat_fcall:"))
        .and_then(|fields| {
            fields
                .split(',')
                .find_map(|f| f.strip_prefix("rejected_calls="))
        })
        .map_or(0, |n| n.parse().unwrap())
}

#[test]
fn a_limited_client_stays_limited_through_an_out_of_memory_redis() {
    let server = RedisServer::start();
    // Without a cache of refusals: every request of the limited client must reach Redis (with
    // one, its refusal would stand from the cache, and Redis would not be asked).
    let redis =
        RedisStorage::from_uri(&format!("{}?prefix=oom&deny_cache=0", server.url())).unwrap();
    let store = FallbackStorage::builder(Arc::new(redis))
        .mode(Mode::Fallback {
            limits: vec!["100 per minute".parse().unwrap()],
            strategy: StrategyKind::FixedWindow,
        })
        .backoff(Backoff::new(
            Duration::from_millis(20),
            Duration::from_millis(50),
        ))
        .build();
    smol::block_on(async {
        // On Redis: five logins, then limited.
        for _ in 0..5 {
            assert!(store.hit(&login("10.0.0.1")).await.unwrap().allowed);
        }
        assert!(!store.hit(&login("10.0.0.1")).await.unwrap().allowed);

        // Redis is full: writes refused, pings and reads answered.
        assert_eq!(
            server.cli(&["CONFIG", "SET", "maxmemory-policy", "noeviction"]),
            "OK"
        );
        assert_eq!(server.cli(&["CONFIG", "SET", "maxmemory", "1"]), "OK");
        for i in 0..30 {
            let v = store.hit(&login("10.0.0.1")).await.unwrap();
            assert!(!v.allowed, "the limited client stays limited ({i})");
        }
        assert!(!store.is_primary_up());
        assert_eq!(store.stats().refusals, 1);
        // A client new to the route gets the route's own 5, not the fallback's 100.
        let mut admitted = 0;
        for _ in 0..10 {
            admitted += usize::from(store.hit(&login("10.0.0.2")).await.unwrap().allowed);
        }
        assert_eq!(admitted, 5);
        // Probes are writes, refused like the rest: three of them, and the store is still down
        // (a ping would have answered, and the next call would have failed again).
        let before = refused_fcalls(&server);
        wait_until("three refused probes", Duration::from_secs(20), || {
            refused_fcalls(&server) >= before + 3
        });
        assert!(!store.is_primary_up());
        assert_eq!(store.stats().outages, 1, "no flapping");

        // Room again: the next probe's write succeeds and calls go back to Redis, where the
        // limited client is still limited.
        assert_eq!(server.cli(&["CONFIG", "SET", "maxmemory", "0"]), "OK");
        wait_until("back on Redis", Duration::from_secs(20), || {
            store.is_primary_up()
        });
        assert!(!store.hit(&login("10.0.0.1")).await.unwrap().allowed);
        assert_eq!(store.stats().outages, 1);
    });
}
