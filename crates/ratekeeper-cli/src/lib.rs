//! The library behind the `ratekeeper` command line: everything the subcommands do, so that it
//! can be tested and reused without running the binary.
//!
//! - [`explain`]: what a limit string means under each strategy.
//! - [`traffic`] and [`simulate`]: traffic (a trace, or a generator) through the four
//!   strategies on a simulated clock, with the guarantee each actually gave; [`plot`] draws it.
//! - [`live`]: live counters in a shared store, inspected and cleared as a `Limiter` sees them.
//! - [`bench`](mod@bench): decisions per second and latency against a live store.
//!
//! The binary is installed with `cargo install --path crates/ratekeeper-cli`; `ratekeeper --help`
//! lists its subcommands.
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]

pub mod bench;
pub mod error;
pub mod explain;
pub mod live;
pub mod plot;
pub mod simulate;
pub mod span;
pub mod traffic;

pub use error::CliError;
