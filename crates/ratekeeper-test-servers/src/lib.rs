//! Real `redis-server` and `memcached` processes for the ratekeeper crates' tests, benches and
//! examples, on free loopback ports: [`redis`] (a node, a cluster, a primary with a replica
//! behind a sentinel) and [`memcached`]. Each process is killed when its handle drops. Not
//! published: nothing a user of the crates needs.
//!
//! These helpers are for tests: they panic, saying what failed, when a server does not come up.
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]

pub mod memcached;
mod process;
pub mod redis;

pub use process::{free_port, wait_until};
