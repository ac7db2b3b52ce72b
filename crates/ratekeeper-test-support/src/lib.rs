//! What the ratekeeper crates' tests, benches and examples share. Real `redis-server` and
//! `memcached` processes on free loopback ports: [`redis`] (a node, a cluster, a primary with a
//! replica behind a sentinel) and [`memcached`]; each process is killed when its handle drops.
//! And [`logs`], a `tracing` subscriber that keeps every event, for tests of what is logged.
//! Not published: nothing a user of the crates needs.
//!
//! These helpers are for tests: they panic, saying what failed, when a server does not come up.
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]

pub mod logs;
pub mod memcached;
mod process;
pub mod redis;

pub use process::{free_port, wait_until};
