//! No over-admission across processes: 4 processes x 64 tasks hammer one key of
//! `100 per minute` through Redis (a single node, then a cluster) and exactly 100 get through,
//! for every strategy (`ratekeeper_conformance::concurrency`): with the server's time, and
//! frozen at one instant.

use std::sync::Arc;

use ratekeeper_conformance::concurrency::{hammer, worker as run_worker};
use ratekeeper_redis::RedisStorage;
use ratekeeper_test_support::redis::{RedisCluster, RedisServer};

#[test]
#[ignore = "a worker process, started by the tests below"]
fn worker() {
    run_worker(|url, prefix, clock| {
        let mut builder = RedisStorage::builder_from_uri(url).unwrap().prefix(prefix);
        if let Some(clock) = clock {
            builder = builder
                .clock(clock)
                .ttl_grace(core::time::Duration::from_secs(3600));
        }
        Arc::new(builder.build().unwrap())
    });
}

#[test]
fn four_processes_admit_exactly_the_limit_on_one_node() {
    let server = RedisServer::start();
    hammer(&server.url(), "single");
}

#[test]
fn four_processes_sharing_calls_admit_exactly_the_limit() {
    let server = RedisServer::start();
    hammer(&format!("{}?coalesce=64", server.url()), "shared");
}

#[test]
fn four_processes_admit_exactly_the_limit_on_a_cluster() {
    let cluster = RedisCluster::start(3);
    hammer(&cluster.url(), "cluster");
}
