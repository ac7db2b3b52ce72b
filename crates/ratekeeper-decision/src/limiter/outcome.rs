//! What the store's verdict means: the deciding limit, the headers, the decision, and what
//! is left to do once the response is known.

use std::sync::Arc;

use ratekeeper_core::{Duration, Limit, RetryAfter};
use smallvec::SmallVec;

use ratekeeper_storage::{Charge, StorageError, Verdict};

use super::{
    Limiter,
    plan::{INLINE_CHARGES, Plan},
    routes::Compiled,
};
use crate::{
    decision::{Answer, Decision, Kind, Pending, Scope, StatusPredicate},
    error::DecisionError,
    field::RateLimitHeaders,
    headers::{HeaderFacts, Policy, render_into},
    metrics,
    policy::{Breach, RoutePolicy},
    request::RequestView,
    slots::Slots,
};
use core::sync::atomic::Ordering;

/// The default JSON body of a rejection.
fn default_body(breach: &Breach<'_>) -> String {
    if breach.in_flight {
        return format!(
            "{{\"error\": \"too many requests in flight\", \"limit\": \"{} in flight\", \"retry_after\": null}}",
            breach.limit.amount()
        );
    }
    let retry = breach
        .retry_after
        .map_or_else(|| "null".to_owned(), |s| s.to_string());
    format!(
        "{{\"error\": \"rate limit exceeded\", \"limit\": \"{}\", \"retry_after\": {retry}}}",
        breach.limit
    )
}

/// Whole seconds until `r`, rounded up and never 0, as `Retry-After` says it.
pub(crate) fn retry_secs(r: RetryAfter) -> Option<u64> {
    r.duration().map(|d| d.as_secs_ceil().max(1))
}

impl Limiter {
    /// What the store's answer means: its verdict checked (one status per charge; a store
    /// that answers otherwise is an error, not a panic), the deciding limit, the decision.
    pub(super) fn interpret(
        &self,
        compiled: &Compiled,
        plan: &Plan,
        verdict: Result<Verdict, StorageError>,
        req: &RequestView<'_>,
    ) -> Result<Decision, DecisionError> {
        let failed = |e: StorageError| {
            metrics::storage_failed(&e);
            tracing::error!(target: "ratekeeper", route = req.route(), error = %e, "rate-limit storage failed");
            DecisionError::Storage(e)
        };
        let verdict = verdict
            .and_then(|verdict| plan.answered_by(verdict))
            .map_err(failed)?;
        let Some(i) = Self::deciding(plan, &verdict) else {
            return Ok(Decision::free(Kind::Unlimited));
        };
        Ok(self.outcome(plan, &verdict, i, compiled, req))
    }

    /// The limit that decided: when allowed, the one closest to exhaustion (meta gates aside);
    /// when rejected, the rejecting limit with the longest wait (the batch fits only when all
    /// do).
    ///
    /// In-flight limits decide only where no rate limit does: a rate limit's reset and wait
    /// are promises, a slot's are not.
    fn deciding(plan: &Plan, verdict: &Verdict) -> Option<usize> {
        if !plan.holds {
            return Self::deciding_among(plan, verdict, |_| true);
        }
        Self::deciding_among(plan, verdict, |scope| scope != Scope::InFlight)
            .or_else(|| Self::deciding_among(plan, verdict, |_| true))
    }

    /// [`Self::deciding`] among the charges whose scope `counts`.
    #[inline(always)]
    fn deciding_among(
        plan: &Plan,
        verdict: &Verdict,
        counts: impl Fn(Scope) -> bool,
    ) -> Option<usize> {
        let statuses = &verdict.statuses;
        if verdict.allowed {
            (0..plan.charges.len())
                .filter(|&i| plan.scopes[i] != Scope::Meta && counts(plan.scopes[i]))
                .min_by_key(|&i| (statuses[i].remaining, plan.charges[i].limit.window()))
        } else {
            (0..plan.charges.len())
                .filter(|&i| !statuses[i].allowed && counts(plan.scopes[i]))
                .max_by_key(|&i| statuses[i].retry_after.duration().unwrap_or(Duration::MAX))
        }
    }

    /// How long until the rate limits of a rejected request would admit it: the longest wait
    /// among them (in-flight limits promise none).
    fn rate_wait(plan: &Plan, verdict: &Verdict) -> RetryAfter {
        if !plan.holds {
            return verdict.retry_after();
        }
        verdict
            .statuses
            .iter()
            .zip(&plan.scopes)
            .filter(|(_, scope)| **scope != Scope::InFlight)
            .fold(RetryAfter::NOW, |acc, (s, _)| match (acc, s.retry_after) {
                (RetryAfter::Never, _) | (_, RetryAfter::Never) => RetryAfter::Never,
                (RetryAfter::After(a), RetryAfter::After(b)) => RetryAfter::After(a.max(b)),
            })
    }

    /// The rate-limit headers for the deciding charge `i`.
    fn headers_for(
        &self,
        compiled: &Compiled,
        plan: &Plan,
        verdict: &Verdict,
        i: usize,
        retry_after: Option<u64>,
        out: &mut RateLimitHeaders,
    ) {
        let (limit, status) = (&plan.charges[i].limit, &verdict.statuses[i]);
        let inner = &self.inner;
        // Only the IETF `RateLimit-Policy` field lists every limit: rendered at build when the
        // route's limits are fixed, else here.
        let charged = || {
            (0..plan.charges.len())
                .filter(|&j| !matches!(plan.scopes[j], Scope::Meta | Scope::InFlight))
                .map(|j| plan.charges[j].limit)
        };
        let listed: SmallVec<[Limit; INLINE_CHARGES]>;
        let policy = match &compiled.policy_field {
            _ if !inner.answers.headers.ietf => Policy::Limits(&[]),
            Some((limits, field)) if charged().eq(limits.iter().copied()) => {
                Policy::Rendered(field)
            }
            _ => {
                listed = charged().collect();
                Policy::Limits(&listed)
            }
        };
        render_into(
            &inner.answers.headers,
            &HeaderFacts {
                limit,
                remaining: status.remaining,
                reset_epoch_secs: status.reset.as_secs_ceil(),
                // Counted from the instant the store applied the batch, on the store's clock
                // (the one `reset` is on): no clock to read here.
                reset_in_secs: status
                    .reset
                    .saturating_duration_since(verdict.at)
                    .as_secs_ceil(),
                retry_after_secs: retry_after,
                // Only a rejection carries `Retry-After`.
                retry_at_epoch_secs: retry_after
                    .and_then(|_| Self::rate_wait(plan, verdict).duration())
                    .map(|d| verdict.at.saturating_add(d).as_secs_ceil()),
                rejected: !verdict.allowed,
                in_flight: plan.scopes[i] == Scope::InFlight,
                policy,
            },
            out,
        );
    }

    /// The decision from the verdict and its deciding charge `i`: on a rejection the breach
    /// body (and event); on an allowed request under conditional deduction, the charges to
    /// refund if the response says so.
    fn outcome(
        &self,
        plan: &Plan,
        verdict: &Verdict,
        i: usize,
        compiled: &Compiled,
        req: &RequestView<'_>,
    ) -> Decision {
        let inner = &self.inner;
        let policy = &compiled.policy;
        let (limit, scope, status) = (plan.charges[i].limit, plan.scopes[i], verdict.statuses[i]);
        let rejected = !verdict.allowed;
        let in_flight = scope == Scope::InFlight;
        // Shadow mode: decided and counted as usual, served all the same.
        let shadow = rejected && (policy.shadow || inner.answers.shadow);
        // A slot frees when a response ends: no wait can be promised for one.
        let exact_retry = if rejected && !in_flight {
            Self::rate_wait(plan, verdict)
        } else {
            RetryAfter::NOW
        };
        let retry_after = if rejected && !in_flight {
            retry_secs(exact_retry)
        } else {
            None
        };
        let mut decision = Decision {
            kind: match (rejected, shadow) {
                (false, _) => Kind::Allowed,
                (true, false) => Kind::Rejected,
                (true, true) => Kind::ShadowRejected,
            },
            limit: Some((limit, scope)),
            remaining: status.remaining,
            reset: status.reset,
            retry_after: exact_retry,
            headers: RateLimitHeaders::default(),
            answer: Answer::None,
            pending: None,
        };
        // A request served in shadow mode gets no `Retry-After`.
        let header_retry = retry_after.filter(|_| !shadow);
        self.headers_for(
            compiled,
            plan,
            verdict,
            i,
            header_retry,
            &mut decision.headers,
        );
        if shadow {
            inner
                .answers
                .shadow_rejections
                .fetch_add(1, Ordering::Relaxed);
            tracing::info!(target: "ratekeeper", route = req.route(), identity = plan.charges[i].key.identity(),
                limit = %limit, meta = scope == Scope::Meta, "rate limit exceeded (shadow mode: served)");
        } else if rejected {
            let meta = scope == Scope::Meta;
            tracing::info!(target: "ratekeeper", route = req.route(), identity = plan.charges[i].key.identity(),
                limit = %limit, meta, "rate limit exceeded");
            let breach = Breach {
                limit: &limit,
                retry_after,
                route: req.route(),
                meta,
                in_flight,
            };
            decision.answer = self.breach_answer(policy, &breach);
        } else {
            decision.pending = self.pending(plan, verdict, policy, req).map(Box::new);
        }
        decision
    }

    /// The answer to a rejection: the most specific hook writes it, a meta breach's own, then
    /// the route's (a whole response before a body), then the limiter's, then the default body.
    fn breach_answer(&self, policy: &RoutePolicy, breach: &Breach<'_>) -> Answer {
        let answers = &self.inner.answers;
        let response = if breach.meta && answers.on_meta_breach.is_some() {
            answers.on_meta_breach.as_ref()
        } else if policy.on_breach_response.is_some() || policy.on_breach.is_some() {
            policy.on_breach_response.as_ref()
        } else {
            answers.on_breach_response.as_ref()
        };
        if let Some(hook) = response {
            return Answer::Response(Box::new(hook(breach)));
        }
        let hook = policy.on_breach.as_ref().or(answers.on_breach.as_ref());
        Answer::Body(hook.map_or_else(|| default_body(breach), |h| h(breach)))
    }

    /// What is left to do once the response is known, if anything: the charges each
    /// conditional deduction may refund (the route's covers every charge; otherwise the
    /// default and application limits' own), and a settled cost.
    fn pending(
        &self,
        plan: &Plan,
        verdict: &Verdict,
        policy: &RoutePolicy,
        req: &RequestView<'_>,
    ) -> Option<Pending> {
        let options = &self.inner.scopes.options;
        if policy.deduct_when.is_none()
            && policy.settle.is_none()
            && options.defaults_deduct_when.is_none()
            && options.application_deduct_when.is_none()
            && !plan.holds
        {
            return None;
        }
        let slots = plan.holds.then(|| self.slots(plan, verdict, req));
        let counts_for = |scope: Scope| match scope {
            Scope::Meta | Scope::InFlight => None,
            _ if policy.deduct_when.is_some() => policy.deduct_when.as_ref(),
            Scope::Default => options.defaults_deduct_when.as_ref(),
            Scope::Application => options.application_deduct_when.as_ref(),
            Scope::Route | Scope::Shared | Scope::Guard => None,
        };
        let charged = || plan.charges.iter().zip(plan.scopes.iter().copied());
        if policy.settle.is_none() && charged().all(|(_, s)| counts_for(s).is_none()) {
            return slots.map(|slots| Pending {
                storage: Arc::clone(&self.inner.storage),
                deductions: Vec::new(),
                settle: None,
                slots: Some(slots),
            });
        }
        // A refund names the instant the store charged at: it gives back only what these
        // charges still hold (nothing to a window that opened since).
        let at = verdict.at;
        let mut deductions: Vec<(Arc<StatusPredicate>, Vec<Charge>)> = Vec::new();
        for (charge, scope) in charged() {
            let Some(counts) = counts_for(scope) else {
                continue;
            };
            let charge = charge.clone().charged_at(at);
            match deductions.iter_mut().find(|(c, _)| Arc::ptr_eq(c, counts)) {
                Some((_, group)) => group.push(charge),
                None => deductions.push((Arc::clone(counts), vec![charge])),
            }
        }
        // A settled cost returns part of what was charged at the route's cost.
        let settle = policy.settle.clone().map(|f| {
            let settled = charged()
                .filter(|(_, s)| match s {
                    Scope::Meta | Scope::Application | Scope::InFlight => false,
                    Scope::Default => plan.defaults_at_route_cost,
                    Scope::Route | Scope::Shared | Scope::Guard => true,
                })
                .map(|(c, _)| c.clone().charged_at(at))
                .collect();
            (plan.cost, f, settled)
        });
        Some(Pending {
            storage: Arc::clone(&self.inner.storage),
            deductions,
            settle,
            slots,
        })
    }

    /// The slots an allowed request took: its in-flight charges, naming the instant they were
    /// taken at (their release gives back exactly those).
    fn slots(&self, plan: &Plan, verdict: &Verdict, req: &RequestView<'_>) -> Slots {
        let held = plan
            .charges
            .iter()
            .zip(&plan.scopes)
            .filter(|(_, s)| **s == Scope::InFlight)
            .map(|(c, _)| c.clone().charged_at(verdict.at))
            .collect();
        Slots::new(
            Arc::clone(&self.inner.storage),
            held,
            metrics::InFlightGauge::of(req.route()),
        )
    }
}
