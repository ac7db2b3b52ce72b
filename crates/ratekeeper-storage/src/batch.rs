//! What a request asks of the store (a batch of charges) and what it answers (a verdict).

use core::{
    fmt,
    ops::{Deref, DerefMut},
};

use ratekeeper_core::{Limit, RetryAfter, StrategyKind, Timestamp};
use smallvec::SmallVec;

use crate::key::Key;

/// One limit to charge for one key: the unit of a batch. Built with [`Charge::new`] or
/// [`Charge::gate`] and the `with_*`-style methods; fields may be added.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Charge {
    /// Whose counter.
    pub key: Key,
    /// Which limit (counters of different limits on one key are separate).
    pub limit: Limit,
    /// Which algorithm counts it.
    pub strategy: StrategyKind,
    /// How much to charge (or test, or refund).
    pub cost: u64,
    /// See [`Charge::need`].
    need: u64,
    /// See [`Charge::on_reject`].
    on_reject: u64,
    /// For [`Op::Refund`]: the instant the charge being returned was made ([`Verdict::at`] of
    /// its hit). The refund then gives back only what that charge still holds (nothing once
    /// its window has passed: see `Strategy::refund_at`). `None`: up to `cost` of the newest
    /// charges that still count.
    ///
    /// For [`Op::Hit`]: a renewal. The charge made at that instant is given back first, in
    /// the same atomic step, and the charge is then made anew: a charge that still counts
    /// moves to now and always fits again; one whose window has passed is a new charge that
    /// needs room. In-flight limits renew their leases this way (a moving window whose window
    /// is the lease). The refund stands when the batch is rejected (on a Redis
    /// cluster, a rejected batch whose keys span slots may hold it until its window passes).
    pub charged_at: Option<Timestamp>,
    /// See [`Charge::fallback_key`].
    fallback_key: Option<Key>,
    /// See [`Charge::is_hold`].
    hold: bool,
}

impl Charge {
    /// A charge of `cost` against `limit` for `key`, counted by `strategy`.
    pub fn new(key: Key, limit: Limit, strategy: StrategyKind, cost: u64) -> Self {
        Self {
            key,
            limit,
            strategy,
            cost,
            need: cost,
            on_reject: 0,
            charged_at: None,
            fallback_key: None,
            hold: false,
        }
    }

    /// A gate: allowed while `need` would fit, and charges nothing. In a batch it lets the
    /// other charges through only while this limit has room.
    pub fn gate(key: Key, limit: Limit, strategy: StrategyKind, need: u64) -> Self {
        Self {
            key,
            limit,
            strategy,
            cost: 0,
            need,
            on_reject: 0,
            charged_at: None,
            fallback_key: None,
            hold: false,
        }
    }

    /// How much room the charge needs to be allowed: `cost` for an ordinary charge. A gate
    /// ([`Charge::gate`]) needs room but charges nothing: "reject while this limit is
    /// exhausted", the rule of meta limits.
    pub fn need(&self) -> u64 {
        self.need
    }

    /// Charged when a hit of the batch is rejected, if this charge has room for it (0: never).
    /// Meta limits count a breach this way, in the same call as the request's own limits: the
    /// gate that shuts a client out also counts the rejections that lead to it.
    pub fn on_reject(&self) -> u64 {
        self.on_reject
    }

    /// Whom a fallback store's own limits count this charge against while it stands in for an
    /// unavailable store (`ratekeeper-fallback`'s `Mode::Fallback` limits): a client on one
    /// route, say. `None`: the key's identity ([`Key::identity_key`]), one count per client
    /// across everything. Other stores ignore it.
    pub fn fallback_key(&self) -> Option<&Key> {
        self.fallback_key.as_ref()
    }

    /// Whether this charge holds a slot of an in-flight limit (see [`Charge::holding`]).
    pub fn is_hold(&self) -> bool {
        self.hold
    }

    /// This charge, as the hold of a slot of an in-flight limit rather than a spend of quota:
    /// a fallback store's own per-client limits count the request that takes it, but its
    /// release or renewal gives back or spends none of their quota.
    #[must_use]
    pub fn holding(mut self) -> Self {
        self.hold = true;
        self
    }

    /// This charge, needing room for `need` to be allowed (see [`Charge::need`]).
    #[must_use]
    pub fn needing(mut self, need: u64) -> Self {
        self.need = need;
        self
    }

    /// This charge, charging `n` when a hit of its batch is rejected (see
    /// [`Charge::on_reject`]).
    #[must_use]
    pub fn charging_on_reject(mut self, n: u64) -> Self {
        self.on_reject = n;
        self
    }

    /// This charge, refunded (or, in a hit, renewed) as the one made at `at` (see
    /// [`Charge::charged_at`]).
    #[must_use]
    pub fn charged_at(mut self, at: Timestamp) -> Self {
        self.charged_at = Some(at);
        self
    }

    /// This charge, counted against `key` by a fallback store's own limits (see
    /// [`Charge::fallback_key`]).
    #[must_use]
    pub fn with_fallback_key(mut self, key: Key) -> Self {
        self.fallback_key = Some(key);
        self
    }

    /// The room this charge needs: the larger of `need` and `cost`.
    pub fn room(&self) -> u64 {
        self.need.max(self.cost)
    }
}

/// What to do with a batch. Exhaustive on purpose: an operation added here is one every backend
/// must implement, so adding one is a breaking change that the compiler points out in each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// Charge every cost if all of them fit, else none.
    Hit,
    /// Say whether [`Op::Hit`] would succeed; change nothing.
    Test,
    /// Give back up to each cost of earlier charges that still count (conditional deduction):
    /// of the charge made at [`Charge::charged_at`] when it is set, of the newest otherwise.
    Refund,
}

/// The state of one limit of a batch after the operation ([`LimitStatus::new`]; fields may be
/// added).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct LimitStatus {
    /// Whether this charge fits (for a rejected batch: whether it alone would have).
    pub allowed: bool,
    /// Quota left after the operation.
    pub remaining: u64,
    /// When the window resets (see each strategy in `ratekeeper_core`).
    pub reset: Timestamp,
    /// How long until this charge would fit; [`RetryAfter::NOW`] when it does.
    pub retry_after: RetryAfter,
}

impl LimitStatus {
    /// The status of one charge: whether it fits, what is left, when the window resets and
    /// how long until it would fit.
    pub const fn new(
        allowed: bool,
        remaining: u64,
        reset: Timestamp,
        retry_after: RetryAfter,
    ) -> Self {
        Self {
            allowed,
            remaining,
            reset,
            retry_after,
        }
    }
}

/// Statuses held inline, without a heap allocation, for batches of up to this many charges.
pub(crate) const INLINE_STATUSES: usize = 4;

/// The statuses of a batch, one per charge in the batch's order: a list that stays inline (no
/// heap allocation) for batches of up to four charges. Read it as a slice;
/// build it with `collect()`, [`Statuses::push`] or from a `Vec`.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Statuses(SmallVec<[LimitStatus; INLINE_STATUSES]>);

impl Statuses {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty list with room for `n` statuses (inline up to four).
    pub fn with_capacity(n: usize) -> Self {
        if n <= INLINE_STATUSES {
            // Built in place: no call that returns the whole inline array.
            return Self(SmallVec::new());
        }
        Self(SmallVec::with_capacity(n))
    }

    /// Appends a status.
    pub fn push(&mut self, status: LimitStatus) {
        self.0.push(status);
    }
}

impl Deref for Statuses {
    type Target = [LimitStatus];

    fn deref(&self) -> &[LimitStatus] {
        &self.0
    }
}

impl DerefMut for Statuses {
    fn deref_mut(&mut self) -> &mut [LimitStatus] {
        &mut self.0
    }
}

impl fmt::Debug for Statuses {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl FromIterator<LimitStatus> for Statuses {
    fn from_iter<I: IntoIterator<Item = LimitStatus>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

impl From<Vec<LimitStatus>> for Statuses {
    fn from(v: Vec<LimitStatus>) -> Self {
        Self(SmallVec::from_vec(v))
    }
}

impl<const N: usize> From<[LimitStatus; N]> for Statuses {
    fn from(a: [LimitStatus; N]) -> Self {
        a.into_iter().collect()
    }
}

impl PartialEq<[LimitStatus]> for Statuses {
    fn eq(&self, other: &[LimitStatus]) -> bool {
        **self == *other
    }
}

impl PartialEq<Vec<LimitStatus>> for Statuses {
    fn eq(&self, other: &Vec<LimitStatus>) -> bool {
        **self == **other
    }
}

/// The statuses of a [`Statuses`], by value.
pub struct StatusesIntoIter(smallvec::IntoIter<[LimitStatus; INLINE_STATUSES]>);

impl fmt::Debug for StatusesIntoIter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.as_slice()).finish()
    }
}

impl Iterator for StatusesIntoIter {
    type Item = LimitStatus;

    fn next(&mut self) -> Option<LimitStatus> {
        self.0.next()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl DoubleEndedIterator for StatusesIntoIter {
    fn next_back(&mut self) -> Option<LimitStatus> {
        self.0.next_back()
    }
}

impl ExactSizeIterator for StatusesIntoIter {}

impl IntoIterator for Statuses {
    type Item = LimitStatus;
    type IntoIter = StatusesIntoIter;

    fn into_iter(self) -> StatusesIntoIter {
        StatusesIntoIter(self.0.into_iter())
    }
}

impl<'a> IntoIterator for &'a Statuses {
    type Item = &'a LimitStatus;
    type IntoIter = core::slice::Iter<'a, LimitStatus>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// The answer to a batch: one [`LimitStatus`] per charge, in the batch's order
/// ([`Verdict::new`]; fields may be added). Two verdicts are equal when they say the same:
/// whether the answer came from a cache ([`Verdict::from_cache`]) is not compared.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Verdict {
    /// Whether every charge fit (for [`Op::Hit`]: whether they were all charged).
    pub allowed: bool,
    /// Per charge, in order (inline for batches of up to four charges).
    pub statuses: Statuses,
    /// The instant the store applied the batch, on its clock (the Redis server's, by default):
    /// what a refund of these charges names ([`Charge::charged_at`]).
    pub at: Timestamp,
    /// Whether the answer came from a [`DenyCache`](crate::DenyCache): a refusal the store
    /// gave a moment ago and that still stands, repeated without a call.
    pub from_cache: bool,
}

impl PartialEq for Verdict {
    fn eq(&self, other: &Self) -> bool {
        self.allowed == other.allowed && self.statuses == other.statuses && self.at == other.at
    }
}

impl Eq for Verdict {}

impl core::hash::Hash for Verdict {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        (self.allowed, &self.statuses, self.at).hash(state);
    }
}

impl Verdict {
    /// The answer to a batch: whether it was allowed, a status per charge in the batch's
    /// order, and the instant the store applied it.
    pub fn new(allowed: bool, statuses: Statuses, at: Timestamp) -> Self {
        Self {
            allowed,
            statuses,
            at,
            from_cache: false,
        }
    }

    /// The wait until every charge of the batch fits: the longest of them, `Never` if any is.
    pub fn retry_after(&self) -> RetryAfter {
        self.statuses
            .iter()
            .fold(RetryAfter::NOW, |acc, s| match (acc, s.retry_after) {
                (RetryAfter::Never, _) | (_, RetryAfter::Never) => RetryAfter::Never,
                (RetryAfter::After(a), RetryAfter::After(b)) => RetryAfter::After(a.max(b)),
            })
    }

    /// The index of the first charge that did not fit.
    pub fn rejected_by(&self) -> Option<usize> {
        self.statuses.iter().position(|s| !s.allowed)
    }
}

#[cfg(test)]
mod tests {
    use ratekeeper_core::Duration;

    use super::*;

    fn status(allowed: bool, retry_after: RetryAfter) -> LimitStatus {
        LimitStatus {
            allowed,
            remaining: 0,
            reset: Timestamp::EPOCH,
            retry_after,
        }
    }

    #[test]
    fn verdict_waits_for_the_slowest_limit() {
        let secs = |s| RetryAfter::After(Duration::from_secs(s));
        let v = Verdict {
            allowed: false,
            statuses: [
                status(true, RetryAfter::NOW),
                status(false, secs(5)),
                status(false, secs(2)),
            ]
            .into(),
            at: Timestamp::EPOCH,
            from_cache: false,
        };
        assert_eq!(v.retry_after(), secs(5));
        assert_eq!(v.rejected_by(), Some(1));
        let never = Verdict {
            allowed: false,
            statuses: [status(false, RetryAfter::Never), status(false, secs(1))].into(),
            at: Timestamp::EPOCH,
            from_cache: false,
        };
        assert_eq!(never.retry_after(), RetryAfter::Never);
        assert_eq!(
            Verdict {
                allowed: true,
                statuses: Statuses::new(),
                at: Timestamp::EPOCH,
                from_cache: false,
            }
            .retry_after(),
            RetryAfter::NOW
        );
    }
}
