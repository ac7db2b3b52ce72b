//! The request-to-response flow every HTTP adapter shares, whatever its framework: decide,
//! then either answer instead of the handler (429, 401, 403, a breach hook's response, or 503
//! when the store fails) or serve, set the rate-limit headers on the handler's response and
//! settle a conditional charge. An adapter translates requests into a [`RequestView`] and
//! these answers into its framework's responses; nothing else.

use crate::{decision::Decision, limiter::Limiter, request::RequestView};

/// The body of the 503 answered when the store fails and no outage policy decides instead.
pub const UNAVAILABLE_BODY: &str = "{\"error\": \"rate limiting unavailable\"}";

/// What to do with a request ([`Limiter::admit`]).
#[derive(Debug)]
pub enum Admission {
    /// Call the handler; then set [`Decision::headers`] on its response and call
    /// [`Decision::settle`] with the response's status.
    Serve(Decision),
    /// Answer with this instead of calling the handler.
    Refuse(Refusal),
}

/// The answer to a request that is not served: a decision's refusal, or the store's failure.
#[derive(Debug)]
pub struct Refusal(Option<Decision>);

impl Refusal {
    /// The status code: the decision's ([`Decision::status`]), or 503 when the store failed.
    pub fn status(&self) -> u16 {
        self.0.as_ref().map_or(503, Decision::status)
    }

    /// The content type of [`Refusal::body`](crate::adapter::Refusal::body).
    pub fn content_type(&self) -> &str {
        self.0
            .as_ref()
            .map_or("application/json", Decision::content_type)
    }

    /// The body: a breach hook's, or the default JSON.
    pub fn body(&self) -> &str {
        match &self.0 {
            Some(decision) => decision.body().unwrap_or("{}"),
            None => UNAVAILABLE_BODY,
        }
    }

    /// A breach hook's own headers, to add (a name may repeat).
    pub fn extra_headers(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.0
            .as_ref()
            .and_then(Decision::response)
            .into_iter()
            .flat_map(|r| r.headers())
    }

    /// The rate-limit headers, to set (each name once, over any the hook set).
    pub fn rate_limit_headers(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.0.iter().flat_map(Decision::headers)
    }

    /// The decision refused, or `None` when the store failed.
    pub fn decision(&self) -> Option<&Decision> {
        self.0.as_ref()
    }
}

impl Limiter {
    /// Decides `req` for an HTTP adapter ([`Limiter::check`]): serve it, or answer with the
    /// refusal. A store that fails is logged at `error` and answered with 503 (an
    /// [`Outage`](crate::Outage) policy decides instead where one is configured).
    ///
    /// ```
    /// use ratekeeper_decision::{adapter::Admission, Limiter, RequestView};
    ///
    /// # smol::block_on(async {
    /// let limiter = Limiter::builder().default_limits("1 per minute").build()?;
    /// let req = RequestView::new("GET", "/").with_peer("10.0.0.1".parse()?);
    /// let Admission::Serve(decision) = limiter.admit(&req).await else { unreachable!() };
    /// // ... the handler's response, then: its headers from `decision.headers()`, and
    /// decision.settle("/", 200, None).await;
    /// let Admission::Refuse(refusal) = limiter.admit(&req).await else { unreachable!() };
    /// assert_eq!(refusal.status(), 429);
    /// assert!(refusal.rate_limit_headers().any(|(name, _)| name == "Retry-After"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn admit(&self, req: &RequestView<'_>) -> Admission {
        match self.check(req).await {
            Ok(decision) if decision.is_allowed() => Admission::Serve(decision),
            Ok(decision) => Admission::Refuse(Refusal(Some(decision))),
            Err(e) => {
                tracing::error!(target: "ratekeeper", route = req.route(), error = %e, "rate limiting unavailable");
                Admission::Refuse(Refusal(None))
            }
        }
    }
}

impl Decision {
    /// The last step of a served request, once its response is known: a conditional charge
    /// is settled by the response's `status` and the `body_read` bytes of request body the
    /// handler read ([`Decision::finish`]); a refund that fails is logged at `error` (the
    /// reservation then stands). Nothing to do for most decisions.
    pub async fn settle(self, route: &str, status: u16, body_read: Option<u64>) {
        if !self.is_conditional() {
            return;
        }
        if let Err(e) = self.finish(status, body_read).await {
            tracing::error!(target: "ratekeeper", route, error = %e, "could not refund a reserved charge");
        }
    }
}
