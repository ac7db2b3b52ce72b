//! The batch script: its source, the arguments a batch becomes, the reply it gives.

use ratekeeper_core::{Duration, Limit, RetryAfter, StrategyKind, Timestamp};
use ratekeeper_storage::{Charge, LimitStatus, Op, Statuses, StorageError, Verdict};
use redis::{Cmd, Script, ScriptInvocation, Value};

use crate::{error::BACKEND, keys};

/// The batch script's parts, joined: the common definitions, one part per strategy (each the
/// twin of its state machine in `ratekeeper-core`), then the batch itself.
macro_rules! batch_source {
    () => {
        concat!(
            include_str!("lua/common.lua"),
            "\n",
            include_str!("lua/fixed_window.lua"),
            "\n",
            include_str!("lua/gcra.lua"),
            "\n",
            include_str!("lua/sliding_window.lua"),
            "\n",
            include_str!("lua/moving_window.lua"),
            "\n",
            include_str!("lua/batch.lua"),
        )
    };
}

/// The Lua definitions of the batch (`batch(KEYS, ARGV)`; see the comments at the top of
/// `lua/common.lua` for the calling convention), without an entry point.
const BATCH_BODY: &str = batch_source!();

/// The batch as a script for `EVAL`/`EVALSHA` (servers without functions, before Redis 7).
pub const BATCH_LUA: &str = concat!(batch_source!(), "\nreturn batch(KEYS, ARGV)\n");

/// The largest amount, cost or need the script computes with exactly (Lua numbers are doubles).
pub(crate) const MAX_AMOUNT: u64 = 1 << 53;

/// The scripts, hashed once, and the batch as a function library.
#[derive(Debug)]
pub(crate) struct Scripts {
    pub(crate) batch: Script,
    /// `FUNCTION LOAD REPLACE` source: the batch registered as [`Scripts::function`].
    pub(crate) library: String,
    /// The function's name, which carries a digest of the source: two versions of this crate
    /// sharing one server each call their own.
    pub(crate) function: String,
    /// The same batch as a `no-writes` function, for tests: it runs where writes are refused
    /// (a server out of memory).
    pub(crate) test_function: String,
}

impl Scripts {
    pub(crate) fn new() -> Self {
        let batch = Script::new(BATCH_LUA);
        let digest = &batch.get_hash()[..16];
        let function = format!("ratelimit_batch_{digest}");
        let test_function = format!("ratelimit_test_{digest}");
        let library = format!(
            "#!lua name=ratelimit_{digest}\n{BATCH_BODY}\n\
             redis.register_function('{function}', function(keys, args) return batch(keys, args) end)\n\
             redis.register_function{{function_name = '{test_function}', \
             callback = function(keys, args) return batch(keys, args) end, flags = {{'no-writes'}}}}\n"
        );
        Self {
            batch,
            library,
            function,
            test_function,
        }
    }
}

/// What one call of the batch does: a storage operation, or, for one slot's part of a batch
/// that spans cluster slots and was rejected on another slot, "rejected elsewhere" (test every
/// charge, then charge `on_reject` where it fits, as a rejected hit does).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Call {
    Op(Op),
    RejectedElsewhere,
}

const fn op_code(call: Call) -> &'static str {
    match call {
        Call::Op(Op::Hit) => "h",
        Call::Op(Op::Test) => "t",
        Call::Op(Op::Refund) => "r",
        Call::RejectedElsewhere => "x",
    }
}

/// Checks that the script can compute `charge` exactly.
pub(crate) fn check(charge: &Charge) -> Result<(), StorageError> {
    check_limit(&charge.limit, charge.strategy)
}

/// Whether the script counts `limit` with `strategy` exactly.
pub(crate) fn check_limit(limit: &Limit, strategy: StrategyKind) -> Result<(), StorageError> {
    if keys::code(strategy) == keys::UNKNOWN {
        return Err(StorageError::unsupported(BACKEND, "this strategy"));
    }
    if limit.amount() > MAX_AMOUNT {
        return Err(StorageError::configuration(
            BACKEND,
            format!("limit {limit}: the Redis backend counts up to 2^53 per window"),
        ));
    }
    if !limit.window().as_nanos().is_multiple_of(1_000_000_000) {
        return Err(StorageError::configuration(
            BACKEND,
            format!("limit {limit}: the Redis backend needs a window of whole seconds"),
        ));
    }
    Ok(())
}

/// The keys and arguments of a batch call.
#[derive(Debug, Default)]
pub(crate) struct Encoded {
    pub(crate) keys: Vec<String>,
    pub(crate) args: Vec<String>,
}

/// The keys and arguments of `batch`; `now` is `None` for the server's clock.
pub(crate) fn encode(
    prefix: &str,
    call: Call,
    now: Option<Timestamp>,
    grace_ms: u64,
    batch: &[Charge],
) -> Encoded {
    let mut e = Encoded {
        keys: Vec::with_capacity(batch.len() + 1),
        args: Vec::with_capacity(3 + 2 * batch.len()),
    };
    e.args.push(op_code(call).to_owned());
    e.args
        .push(now.map_or_else(String::new, |t| t.as_nanos().to_string()));
    e.args.push(grace_ms.to_string());
    for c in batch {
        let name = keys::counter(prefix, &c.key, &c.limit, c.strategy);
        if c.strategy == StrategyKind::MovingWindow {
            // The log, then its running total.
            let total = format!("{name}#");
            e.keys.extend([name, total]);
        } else {
            e.keys.push(name);
        }
        e.args.extend([
            format!(
                "{} {} {} {}",
                keys::code(c.strategy),
                c.limit.amount(),
                c.limit.window().as_nanos(),
                c.limit.emission_interval().as_nanos()
            ),
            match c.charged_at {
                // A refund of the charge made at that instant, or its renewal in a hit.
                Some(at) if call != Call::Op(Op::Test) => format!(
                    "{} {} {} {}",
                    c.cost.min(MAX_AMOUNT),
                    c.need().min(MAX_AMOUNT),
                    c.on_reject().min(MAX_AMOUNT),
                    at.as_nanos()
                ),
                _ => format!(
                    "{} {} {}",
                    c.cost.min(MAX_AMOUNT),
                    c.need().min(MAX_AMOUNT),
                    c.on_reject().min(MAX_AMOUNT)
                ),
            },
        ]);
    }
    e
}

impl Encoded {
    /// As an `EVALSHA` of `script`.
    pub(crate) fn invocation<'a>(&self, script: &'a Script) -> ScriptInvocation<'a> {
        let mut invocation = script.prepare_invoke();
        for k in &self.keys {
            invocation.key(k);
        }
        for a in &self.args {
            invocation.arg(a);
        }
        invocation
    }

    /// As an `FCALL` of `function`.
    pub(crate) fn fcall(&self, function: &str) -> Cmd {
        let mut cmd = redis::cmd("FCALL");
        cmd.arg(function)
            .arg(self.keys.len())
            .arg(&self.keys)
            .arg(&self.args);
        cmd
    }
}

fn protocol(detail: impl Into<String>) -> StorageError {
    StorageError::protocol(BACKEND, detail.into())
}

fn int(v: &Value) -> Result<i64, StorageError> {
    match v {
        Value::Int(i) => Ok(*i),
        other => Err(protocol(format!("expected an integer, got {other:?}"))),
    }
}

/// An instant given as whole seconds and nanoseconds since the epoch.
fn timestamp(secs: &Value, nanos: &Value) -> Result<Timestamp, StorageError> {
    let (s, n) = (int(secs)?, int(nanos)?);
    u64::try_from(s)
        .ok()
        .zip(u64::try_from(n).ok().filter(|n| *n < 1_000_000_000))
        .and_then(|(s, n)| s.checked_mul(1_000_000_000)?.checked_add(n))
        .map(Timestamp::from_nanos)
        .ok_or_else(|| protocol(format!("expected a timestamp, got {s} s {n} ns")))
}

/// Reads the script's reply for a batch of `n` charges.
pub(crate) fn decode(reply: &Value, n: usize) -> Result<Verdict, StorageError> {
    let Value::Array(items) = reply else {
        return Err(protocol(format!("expected an array, got {reply:?}")));
    };
    if items.len() != 3 + 5 * n {
        return Err(protocol(format!(
            "expected {} values for {n} charges, got {}",
            3 + 5 * n,
            items.len()
        )));
    }
    let mut statuses = Statuses::with_capacity(n);
    for chunk in items[3..].chunks_exact(5) {
        let retry = int(&chunk[4])?;
        statuses.push(LimitStatus::new(
            int(&chunk[0])? == 1,
            u64::try_from(int(&chunk[1])?).unwrap_or(0),
            timestamp(&chunk[2], &chunk[3])?,
            match u64::try_from(retry) {
                Ok(ns) => RetryAfter::After(Duration::from_nanos(ns)),
                Err(_) => RetryAfter::Never,
            },
        ));
    }
    Ok(Verdict::new(
        int(&items[0])? == 1,
        statuses,
        timestamp(&items[1], &items[2])?,
    ))
}
