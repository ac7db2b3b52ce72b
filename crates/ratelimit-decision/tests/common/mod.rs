//! Helpers for the Decision API tests: a limiter on a manual clock, requests from one client,
//! header lookup, and a store that is always down or answers short.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use ratelimit_core::{ManualClock, Timestamp};
use ratelimit_decision::{Decision, Limiter, LimiterBuilder, RequestView};
use ratelimit_storage::{Charge, Key, Op, Storage, StorageError, Verdict};

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
    RequestView::new("GET", route).peer(IP.parse().unwrap())
}

pub fn check(limiter: &Limiter, req: &RequestView<'_>) -> Decision {
    smol::block_on(limiter.check(req)).unwrap()
}

pub fn header<'d>(d: &'d Decision, name: &str) -> Option<&'d str> {
    d.headers()
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn down() -> StorageError {
    StorageError::Unreachable {
        backend: "broken",
        detail: "connection refused".into(),
    }
}

/// A store that is always down.
#[derive(Debug)]
pub struct Broken;

#[async_trait::async_trait]
impl Storage for Broken {
    async fn apply(&self, _: Op, _: &[Charge]) -> Result<Verdict, StorageError> {
        Err(down())
    }
    async fn clear(&self, _: &Key) -> Result<(), StorageError> {
        Err(down())
    }
    async fn reset(&self) -> Result<(), StorageError> {
        Err(down())
    }
    async fn health(&self) -> Result<(), StorageError> {
        Err(down())
    }
}

/// A store that answers every batch with no statuses at all.
#[derive(Debug)]
pub struct Short;

#[async_trait::async_trait]
impl Storage for Short {
    async fn apply(&self, _: Op, _: &[Charge]) -> Result<Verdict, StorageError> {
        Ok(Verdict {
            allowed: true,
            statuses: Vec::new().into(),
            at: T0,
        })
    }
    async fn clear(&self, _: &Key) -> Result<(), StorageError> {
        Ok(())
    }
    async fn reset(&self) -> Result<(), StorageError> {
        Ok(())
    }
    async fn health(&self) -> Result<(), StorageError> {
        Ok(())
    }
}
