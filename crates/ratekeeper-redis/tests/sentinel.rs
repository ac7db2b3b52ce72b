//! A master behind a sentinel: the store finds it, and after the master is killed and the
//! replica promoted, it finds the new one by itself.

mod common;

use core::time::Duration;
use std::time::Instant;

use ratekeeper_core::{Limit, StrategyKind};
use ratekeeper_redis::RedisStorage;
use ratekeeper_storage::{Charge, Key, Storage};
use ratekeeper_test_support::redis::RedisSentinel;

#[test]
fn failover_is_survived_after_reconnect() {
    let mut redis = RedisSentinel::start();
    let store = RedisStorage::from_uri(&format!(
        "{}?prefix=sent&socket_timeout=0.3&socket_connect_timeout=0.3",
        redis.url()
    ))
    .unwrap();
    let limit: Limit = "10 per minute".parse().unwrap();
    let batch = [Charge::new(
        Key::new("ip", "10.1.1.1"),
        limit,
        StrategyKind::FixedWindow,
        1,
    )];
    smol::block_on(async {
        for _ in 0..4 {
            assert!(store.hit(&batch).await.unwrap().allowed);
        }
    });
    let old_master = redis.master().port();
    assert_eq!(redis.current_master_port(), Some(old_master));
    // Let the replica catch up, then kill the master without warning.
    let replica_port = redis.replica().port();
    ratekeeper_test_support::redis::wait_until("replication", Duration::from_secs(10), || {
        // WAIT answers how many replicas acknowledged every write made so far.
        ratekeeper_test_support::redis::cli(old_master, &["WAIT", "1", "1000"]).trim() == "1"
    });
    redis.master().kill();
    let start = Instant::now();
    let (mut errors, mut recovered) = (0, None);
    smol::block_on(async {
        while start.elapsed() < Duration::from_secs(60) {
            match store.hit(&batch).await {
                Ok(v) => {
                    recovered = Some(v);
                    break;
                }
                Err(e) => {
                    assert!(e.is_unavailable(), "{e}");
                    errors += 1;
                    async_io::Timer::after(Duration::from_millis(100)).await;
                }
            }
        }
    });
    let v = recovered.expect("the store never reached the promoted replica");
    println!(
        "failover survived after {:?} ({errors} failed calls)",
        start.elapsed()
    );
    assert_eq!(redis.current_master_port(), Some(replica_port));
    assert!(v.allowed);
    // The replica had the 4 hits: counting went on from there.
    assert_eq!(v.statuses[0].remaining, 5);
}
