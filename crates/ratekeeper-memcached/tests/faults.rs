//! Fault injection against a real `memcached` under continuous load, behind the fallback store,
//! as for Redis: the scenarios of `ratekeeper_conformance::faults` (SIGKILL and restart, SIGSTOP
//! and SIGCONT, a restart that empties the server, fail-open and fail-closed).

use std::sync::Arc;

use ratekeeper_conformance::faults::{self, Server};
use ratekeeper_memcached::MemcachedStorage;
use ratekeeper_storage::Storage;
use ratekeeper_test_support::memcached::MemcachedServer;

struct Memcached(MemcachedServer);

impl Server for Memcached {
    fn kill(&mut self) {
        self.0.kill();
    }
    fn restart(&mut self) {
        self.0.restart();
    }
    fn pause(&self) {
        self.0.pause();
    }
    fn resume(&self) {
        self.0.resume();
    }
}

/// A fresh memcached, and a way to build stores on it whose own deadline (5 s) is far above
/// the fallback's timeout. Without a cache of refusals: the scenarios count on every request
/// reaching the store (a refusal it gave stands through an outage, answered from the cache).
fn memcached() -> (Memcached, impl Fn() -> Arc<dyn Storage>) {
    let server = MemcachedServer::start();
    let uri = format!(
        "{}?prefix=faults&timeout=5&connect_timeout=0.2&deny_cache=0",
        server.url()
    );
    (Memcached(server), move || {
        Arc::new(MemcachedStorage::from_uri(&uri).unwrap()) as Arc<dyn Storage>
    })
}

#[test]
fn sigkill_falls_back_without_a_failed_request_and_restart_returns_to_memcached() {
    let (mut server, primary) = memcached();
    faults::sigkill_then_restart(&mut server, &primary);
}

#[test]
fn sigstop_never_holds_a_request_past_the_timeout() {
    let (mut server, primary) = memcached();
    faults::sigstop_then_resume(&mut server, &primary);
}

#[test]
fn a_restart_that_empties_memcached_resumes_counting_from_zero() {
    let (mut server, primary) = memcached();
    faults::restart_that_empties(&mut server, &primary);
}

#[test]
fn fail_open_and_fail_closed_behave_as_named() {
    let (mut server, primary) = memcached();
    faults::fail_open_and_fail_closed(&mut server, &primary);
}
