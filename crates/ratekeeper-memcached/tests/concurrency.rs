//! No over-admission across processes: 4 processes x 64 tasks hammer one key of
//! `100 per minute` through memcached (one server, then two) and exactly 100 get through, for
//! every strategy (`ratekeeper_conformance::concurrency`).

use std::sync::Arc;

use ratekeeper_conformance::concurrency::{hammer, worker as run_worker};
use ratekeeper_memcached::MemcachedStorage;
use ratekeeper_test_support::memcached::MemcachedServer;

#[test]
#[ignore = "a worker process, started by the tests below"]
fn worker() {
    run_worker(|url, prefix, clock| {
        let mut builder = MemcachedStorage::builder_from_uri(url)
            .unwrap()
            .prefix(prefix)
            // 256 tasks share one item: give the slowest answer room.
            .response_timeout(core::time::Duration::from_secs(5));
        if let Some(clock) = clock {
            builder = builder
                .clock(clock)
                .ttl_grace(core::time::Duration::from_secs(3600));
        }
        Arc::new(builder.build().unwrap())
    });
}

#[test]
fn four_processes_admit_exactly_the_limit_on_one_server() {
    let server = MemcachedServer::start();
    hammer(&server.url(), "single");
}

#[test]
fn four_processes_admit_exactly_the_limit_over_two_servers() {
    let (a, b) = (MemcachedServer::start(), MemcachedServer::start());
    hammer(
        &format!("memcached://{},{}", a.host_port(), b.host_port()),
        "two",
    );
}
