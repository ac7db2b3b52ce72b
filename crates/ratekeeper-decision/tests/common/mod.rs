//! Helpers for the Decision API tests: a limiter on a manual clock, requests from one client,
//! header lookup, and a store that is always down or answers short.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use ratekeeper_core::{ManualClock, Timestamp};
use ratekeeper_decision::{Decision, Limiter, LimiterBuilder, RequestView};
use ratekeeper_storage::{Charge, Key, Op, Storage, StorageError, StorageFuture, Verdict};

/// Hour-aligned, so windows line up with round numbers (and the sliding window's buckets).
pub const T0: Timestamp = Timestamp::from_secs(1_699_999_200);
pub const IP: &str = "203.0.113.7";

/// `b` on a manual clock at [`T0`].
pub fn build(b: LimiterBuilder) -> (Limiter, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(T0));
    (b.clock(clock.clone()).build().unwrap(), clock)
}

/// `GET route` from [`IP`].
pub fn get(route: &str) -> RequestView<'_> {
    RequestView::new("GET", route).with_peer(IP.parse().unwrap())
}

pub fn check(limiter: &Limiter, req: &RequestView<'_>) -> Decision {
    smol::block_on(limiter.check(req)).unwrap()
}

pub fn header<'d>(d: &'d Decision, name: &str) -> Option<&'d str> {
    d.headers()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

fn down() -> StorageError {
    StorageError::unreachable("broken", "connection refused")
}

/// A store that is always down.
#[derive(Debug)]
pub struct Broken;

impl Storage for Broken {
    fn apply<'a>(&'a self, _: Op, _: &'a [Charge]) -> StorageFuture<'a, Verdict> {
        Box::pin(async move { Err(down()) })
    }
    fn clear<'a>(&'a self, _: &'a Key) -> StorageFuture<'a, ()> {
        Box::pin(async move { Err(down()) })
    }
    fn reset(&self) -> StorageFuture<'_, ()> {
        Box::pin(async move { Err(down()) })
    }
    fn health(&self) -> StorageFuture<'_, ()> {
        Box::pin(async move { Err(down()) })
    }
}

/// A store that answers every batch with no statuses at all.
#[derive(Debug)]
pub struct Short;

impl Storage for Short {
    fn apply<'a>(&'a self, _: Op, _: &'a [Charge]) -> StorageFuture<'a, Verdict> {
        Box::pin(async move { Ok(Verdict::new(true, Vec::new().into(), T0)) })
    }
    fn clear<'a>(&'a self, _: &'a Key) -> StorageFuture<'a, ()> {
        Box::pin(async move { Ok(()) })
    }
    fn reset(&self) -> StorageFuture<'_, ()> {
        Box::pin(async move { Ok(()) })
    }
    fn health(&self) -> StorageFuture<'_, ()> {
        Box::pin(async move { Ok(()) })
    }
}
