//! An HTTP/1.1 listener for Tide servers (and anything served by `async-h1`) that faces
//! strangers: [`HttpListener`], used as `app.listen(HttpListener::new(addr))` where a Tide app
//! would write `app.listen(addr)`.
//!
//! Every connection ends. A client has a deadline to send each request head
//! ([`header_timeout`](HttpListener::header_timeout)), a request body or a response that stalls
//! for [`body_timeout`](HttpListener::body_timeout) ends its connection, and an idle keep-alive
//! connection is closed; no byte sequence, however it is split in time, leaves a task waiting
//! for ever. A head Tide's parser cannot decode gets `400 Bad Request` (not a dropped
//! connection, or a panic in the parser for a header value outside ASCII), a body over
//! [`max_body`](HttpListener::max_body) gets `413` without being read, and Nagle's algorithm is
//! off on every connection (with Tide's listener each keep-alive response waits about 40 ms
//! for a delayed ACK, about 730 responses a second at 32 connections). A
//! [`Stopper`] stops it gracefully.
//!
//! ```no_run
//! use ratekeeper_listener::HttpListener;
//!
//! # async_std::task::block_on(async {
//! let mut app = tide::new();
//! app.at("/").get(|_| async { Ok("hello") });
//! app.listen(HttpListener::new("127.0.0.1:8080").max_body(1 << 20)).await?;
//! # Ok::<(), std::io::Error>(())
//! # });
//! ```
//!
//! It is how `ratekeeper-tide` (the rate-limiting middleware, which re-exports it) asks to be
//! served, but it knows nothing of rate limits.
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]

mod body;
mod connection;
mod head;
mod listener;

pub use listener::{DEFAULT_BODY_TIMEOUT, DEFAULT_MAX_BODY, HttpListener, Stopper};
