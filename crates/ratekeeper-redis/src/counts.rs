//! What this process's Redis connections did, counted process-wide, so that a benchmark (or an
//! operator) can see how calls shared the wire: commands per write, replies per read, and, with
//! coalescing, batches per call.

use core::sync::atomic::{AtomicU64, Ordering};

static WRITES: AtomicU64 = AtomicU64::new(0);
static COMMANDS: AtomicU64 = AtomicU64::new(0);
static READS: AtomicU64 = AtomicU64::new(0);
static REPLIES: AtomicU64 = AtomicU64::new(0);
static SHARED_CALLS: AtomicU64 = AtomicU64::new(0);
static SHARED_BATCHES: AtomicU64 = AtomicU64::new(0);

/// Counts since the process started, over every store of this crate in it. Writes, commands,
/// reads and replies are those of single-node `redis://` stores (this crate's own
/// connection); shared calls are those of stores with coalescing on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientCounts {
    /// Writes to a socket.
    pub writes: u64,
    /// Commands they carried.
    pub commands: u64,
    /// Reads from a socket that completed at least one reply.
    pub reads: u64,
    /// Replies those reads completed.
    pub replies: u64,
    /// Calls that carried coalesced batches.
    pub shared_calls: u64,
    /// The batches (decisions' charges) those calls carried.
    pub shared_batches: u64,
}

impl ClientCounts {
    /// The counts made between `earlier` and `self`.
    #[must_use]
    pub fn since(&self, earlier: &Self) -> Self {
        Self {
            writes: self.writes.saturating_sub(earlier.writes),
            commands: self.commands.saturating_sub(earlier.commands),
            reads: self.reads.saturating_sub(earlier.reads),
            replies: self.replies.saturating_sub(earlier.replies),
            shared_calls: self.shared_calls.saturating_sub(earlier.shared_calls),
            shared_batches: self.shared_batches.saturating_sub(earlier.shared_batches),
        }
    }
}

/// The counts so far.
pub fn client_counts() -> ClientCounts {
    ClientCounts {
        writes: WRITES.load(Ordering::Relaxed),
        commands: COMMANDS.load(Ordering::Relaxed),
        reads: READS.load(Ordering::Relaxed),
        replies: REPLIES.load(Ordering::Relaxed),
        shared_calls: SHARED_CALLS.load(Ordering::Relaxed),
        shared_batches: SHARED_BATCHES.load(Ordering::Relaxed),
    }
}

/// One write that carried `commands` commands.
pub(crate) fn wrote(commands: u64) {
    WRITES.fetch_add(1, Ordering::Relaxed);
    COMMANDS.fetch_add(commands, Ordering::Relaxed);
}

/// One read that completed `replies` replies (none counted when 0).
pub(crate) fn read(replies: u64) {
    if replies > 0 {
        READS.fetch_add(1, Ordering::Relaxed);
        REPLIES.fetch_add(replies, Ordering::Relaxed);
    }
}

/// One coalesced call of `batches` batches.
pub(crate) fn shared(batches: u64) {
    SHARED_CALLS.fetch_add(1, Ordering::Relaxed);
    SHARED_BATCHES.fetch_add(batches, Ordering::Relaxed);
}
