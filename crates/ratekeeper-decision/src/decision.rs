//! The answer for one request, and the second step of conditional deduction.

use core::fmt;
use std::sync::Arc;

use ratekeeper_core::{Limit, RetryAfter, Timestamp};
use ratekeeper_storage::{Charge, Storage};

use crate::{
    error::DecisionError,
    field::{FieldValue, RateLimitHeaders},
    limiter::retry_secs,
    policy::SettleFn,
    response::BreachResponse,
    slots::Slots,
};

/// Where a limit came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Scope {
    /// The limiter's default limits (counted per route).
    Default,
    /// The route's own limits (counted per route).
    Route,
    /// A shared scope's limits (counted across the routes that name it).
    Shared,
    /// Application limits (counted across every route).
    Application,
    /// Meta limits (breaches, counted across every route).
    Meta,
    /// A route's guard limits, counted by client address whatever the key function says
    /// ([`RoutePolicy::guard`](crate::RoutePolicy::guard)).
    Guard,
    /// In-flight limits: requests holding a slot at once
    /// ([`RoutePolicy::concurrent`](crate::RoutePolicy::concurrent)).
    InFlight,
}

impl Scope {
    /// The scope's name in lower case (`default`, `route`, `shared`, `application`, `meta`,
    /// `guard`, `in_flight`), as metrics label it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::Route => "route",
            Self::Shared => "shared",
            Self::Application => "application",
            Self::Meta => "meta",
            Self::Guard => "guard",
            Self::InFlight => "in_flight",
        }
    }
}

/// What kind of answer a [`Decision`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kind {
    /// Every limit had room; the cost was charged.
    Allowed,
    /// A limit had no room; nothing was charged.
    Rejected,
    /// A limit had no room and nothing was charged, but shadow mode serves the request
    /// ([`LimiterBuilder::shadow`](crate::LimiterBuilder::shadow),
    /// [`RoutePolicy::shadow`](crate::RoutePolicy::shadow)): the breach was logged and counted
    /// ([`Limiter::shadow_rejections`](crate::Limiter::shadow_rejections)), the headers say what
    /// is left, and no `Retry-After` is sent.
    ShadowRejected,
    /// The route is exempt: nothing checked, nothing counted.
    Exempt,
    /// No limit applies (no limits configured, or an empty key).
    Unlimited,
    /// The key function requires a credential the request does not carry
    /// ([`KeyFunction::rejecting_unknown`](crate::KeyFunction::rejecting_unknown)): answer
    /// `401 Unauthorized`. Nothing was checked or counted.
    Unauthorized,
    /// The client address is unknown and the limiter refuses such requests
    /// ([`UnknownClient::Reject`](crate::keys::UnknownClient::Reject)): answer `403 Forbidden`.
    UnknownClient,
}

impl Kind {
    /// The kind's name in snake case (`allowed`, `rejected`, `shadow_rejected`, `exempt`,
    /// `unlimited`, `unauthorized`, `unknown_client`), as metrics label it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::Rejected => "rejected",
            Self::ShadowRejected => "shadow_rejected",
            Self::Exempt => "exempt",
            Self::Unlimited => "unlimited",
            Self::Unauthorized => "unauthorized",
            Self::UnknownClient => "unknown_client",
        }
    }
}

pub(crate) type StatusPredicate = dyn Fn(u16) -> bool + Send + Sync;

/// What is left to do once the response is known: refund the reservation when its status does
/// not count (conditional deduction), or the part of the cost the body did not need (a settled
/// cost).
pub(crate) struct Pending {
    pub(crate) storage: Arc<dyn Storage>,
    /// Conditional deductions: charges (each at the cost it was charged) to refund when their
    /// predicate says the status does not count.
    pub(crate) deductions: Vec<(Arc<StatusPredicate>, Vec<Charge>)>,
    /// The route's cost, as reserved, how to settle it from the body's size, and the charges
    /// that carry it (the application limits charge 1 whatever the route's cost).
    pub(crate) settle: Option<(u64, Arc<SettleFn>, Vec<Charge>)>,
    /// The in-flight slots the request holds, given back when the response is finished.
    pub(crate) slots: Option<Slots>,
}

/// What a request that is not served is answered with.
pub(crate) enum Answer {
    /// Nothing (the request is served).
    None,
    /// A body, with the status and content type the decision's kind implies.
    Body(String),
    /// A breach hook's whole response (boxed: rare, and every decision is moved).
    Response(Box<BreachResponse>),
}

/// The decision for one request: allowed or not, by which limit, and what to tell the client.
pub struct Decision {
    pub(crate) kind: Kind,
    pub(crate) limit: Option<(Limit, Scope)>,
    pub(crate) remaining: u64,
    pub(crate) reset: Timestamp,
    pub(crate) retry_after: RetryAfter,
    pub(crate) headers: RateLimitHeaders,
    /// What to answer a request that is not served with.
    pub(crate) answer: Answer,
    /// Boxed: only conditional routes have one, and every decision is moved a few times.
    pub(crate) pending: Option<Box<Pending>>,
}

impl fmt::Debug for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decision")
            .field("kind", &self.kind)
            .field("limit", &self.limit)
            .field("remaining", &self.remaining)
            .field("reset", &self.reset)
            .field("retry_after", &self.retry_after)
            .field("headers", &self.headers)
            .field("pending", &self.pending.is_some())
            .finish_non_exhaustive()
    }
}

impl Decision {
    pub(crate) fn free(kind: Kind) -> Self {
        Self {
            kind,
            limit: None,
            remaining: 0,
            reset: Timestamp::EPOCH,
            retry_after: RetryAfter::NOW,
            headers: RateLimitHeaders::default(),
            answer: Answer::None,
            pending: None,
        }
    }

    /// A 401 for a request without a known credential in `header`. (`WWW-Authenticate` is
    /// required on a 401; API keys have no registered scheme, so it names the header.)
    pub(crate) fn unauthorized(header: &str) -> Self {
        Self {
            headers: vec![(
                "WWW-Authenticate".into(),
                FieldValue::from(format!("ApiKey header=\"{header}\"")),
            )]
            .into(),
            answer: Answer::Body(
                "{\"error\": \"Unauthorized\", \"message\": \"a known credential is required\"}"
                    .to_owned(),
            ),
            ..Self::free(Kind::Unauthorized)
        }
    }

    /// A refusal of a request whose client address is unknown.
    pub(crate) fn unknown_client() -> Self {
        Self {
            answer: Answer::Body(
                "{\"error\": \"Forbidden\", \"message\": \"the client address is unknown\"}"
                    .to_owned(),
            ),
            ..Self::free(Kind::UnknownClient)
        }
    }

    /// Allowed, exempt or unlimited: serve the request.
    pub fn is_allowed(&self) -> bool {
        !matches!(
            self.kind,
            Kind::Rejected | Kind::Unauthorized | Kind::UnknownClient
        )
    }

    /// What kind of answer this is.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The deciding limit: on a rejection the one that rejected (the one with the longest wait
    /// when several did); otherwise the one closest to exhaustion (fewest remaining, ties to the
    /// shorter window). Meta limits only when they reject.
    pub fn limit(&self) -> Option<&Limit> {
        self.limit.as_ref().map(|(l, _)| l)
    }

    /// Where the deciding limit came from.
    pub fn scope(&self) -> Option<Scope> {
        self.limit.map(|(_, s)| s)
    }

    /// Quota left on the deciding limit.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// When the deciding limit resets.
    pub fn reset(&self) -> Timestamp {
        self.reset
    }

    /// How long until a retry can succeed, exactly: [`RetryAfter::NOW`] for a request that was
    /// not rejected, [`RetryAfter::Never`] when the cost exceeds the limit.
    pub fn retry_after(&self) -> RetryAfter {
        self.retry_after
    }

    /// On a rejection (shadow mode's included): whole seconds until a retry can succeed,
    /// rounded up and never 0, as `Retry-After` says it; `None` when it never can (the cost
    /// exceeds the limit), when no wait can be promised (an in-flight limit refused it) or
    /// when the request was not rejected.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self.kind {
            _ if self.scope() == Some(Scope::InFlight) => None,
            Kind::Rejected | Kind::ShadowRejected => retry_secs(self.retry_after),
            _ => None,
        }
    }

    /// The in-flight slots this served request holds
    /// ([`RoutePolicy::concurrent`](crate::RoutePolicy::concurrent)), if it holds any. They
    /// go back with [`Decision::finish`] or [`Decision::settle`], or when the decision is
    /// dropped.
    pub fn slots(&self) -> Option<&Slots> {
        self.pending.as_ref()?.slots.as_ref()
    }

    /// Takes the in-flight slots out, to keep them until the response is finished (an adapter
    /// drops them at the end of the response body); the decision then no longer returns
    /// them.
    pub fn take_slots(&mut self) -> Option<Slots> {
        self.pending.as_mut()?.slots.take()
    }

    /// The headers to set on the response, names as configured, in order.
    pub fn headers(&self) -> impl ExactSizeIterator<Item = (&str, &str)> + '_ {
        self.headers
            .iter()
            .map(|(name, value)| (&**name, value.as_str()))
    }

    /// Takes the headers out (an adapter that copies them onto its response needs no clone).
    pub fn take_headers(&mut self) -> RateLimitHeaders {
        core::mem::take(&mut self.headers)
    }

    /// On a rejection: the response body (a route's or the limiter's breach hook, else the
    /// default JSON); for [`Kind::Unauthorized`], `{"error": "Unauthorized", ...}`.
    pub fn body(&self) -> Option<&str> {
        match &self.answer {
            Answer::None => None,
            Answer::Body(body) => Some(body),
            Answer::Response(response) => Some(response.body()),
        }
    }

    /// The status code to answer with when the request is not served: a breach hook's
    /// ([`BreachResponse::status`](crate::breach::BreachResponse::status)), else 429 for a rejection, 401 for
    /// [`Kind::Unauthorized`], 403 for [`Kind::UnknownClient`]; 200 when it is served.
    pub fn status(&self) -> u16 {
        match (self.response(), self.kind) {
            (Some(response), _) => response.status_code(),
            (None, Kind::Rejected) => 429,
            (None, Kind::Unauthorized) => 401,
            (None, Kind::UnknownClient) => 403,
            (None, _) => 200,
        }
    }

    /// The content type of [`Decision::body`]: a breach hook's, else `application/json`.
    pub fn content_type(&self) -> &str {
        self.response()
            .map_or("application/json", |r| r.content_type_value())
    }

    /// The whole response a breach hook wrote, if one did: its extra headers are here
    /// ([`BreachResponse::headers`](crate::breach::BreachResponse::headers)); [`Decision::headers`] has the rate-limit ones.
    pub fn response(&self) -> Option<&BreachResponse> {
        match &self.answer {
            Answer::Response(response) => Some(response),
            Answer::None | Answer::Body(_) => None,
        }
    }

    /// Whether [`Decision::complete`] or [`Decision::finish`] has something to do (the route
    /// deducts conditionally, settles its cost from the body's size, or holds in-flight
    /// slots).
    pub fn is_conditional(&self) -> bool {
        self.pending.is_some()
    }

    /// The second step of conditional deduction: tells the limiter the response status. When the
    /// route's predicate says this status does not count, the reserved cost is refunded. Returns
    /// whether it was. Forgetting to call it is harmless: the reservation then stands, as if the
    /// status counted. (A route that settles its cost wants [`Decision::finish`].)
    pub async fn complete(self, status: u16) -> Result<bool, DecisionError> {
        Ok(self.finish(status, None).await? > 0)
    }

    /// The second step, once the response is known: its status, and how many bytes of request
    /// body the handler read. A status the route's `deduct_when` does not count refunds the whole
    /// reservation; otherwise a route with a [`settle`](crate::RoutePolicy::settle) cost gets
    /// back what the body did not need (nothing when `body_bytes` is `None`). Returns the cost
    /// refunded per charge. Forgetting to call it is harmless: the reservation stands.
    ///
    /// The in-flight slots the request still holds go back first: the response is finished.
    pub async fn finish(self, status: u16, body_bytes: Option<u64>) -> Result<u64, DecisionError> {
        let Some(mut pending) = self.pending else {
            return Ok(0);
        };
        if let Some(slots) = pending.slots.take() {
            slots.release().await?;
        }
        let mut refunded = 0;
        for (counts, charges) in &pending.deductions {
            if !counts(status) {
                pending.storage.refund(charges).await?;
                refunded = charges.iter().map(|c| c.cost).fold(refunded, u64::max);
            }
        }
        // What was refunded is not settled again.
        if refunded > 0 {
            return Ok(refunded);
        }
        let (Some((reserved, settle, charged)), Some(bytes)) = (&pending.settle, body_bytes) else {
            return Ok(0);
        };
        let back = reserved.saturating_sub(settle(bytes));
        if back == 0 {
            return Ok(0);
        }
        let refund: Vec<Charge> = charged
            .iter()
            .map(|c| {
                let mut c = c.clone();
                c.cost = back;
                c
            })
            .collect();
        pending.storage.refund(&refund).await?;
        Ok(back)
    }
}
