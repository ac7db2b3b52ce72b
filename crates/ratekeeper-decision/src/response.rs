//! A whole response for a rejected request: status, content type, headers and body.

/// The response to a rejected request, as a breach hook writes it
/// ([`LimiterBuilder::on_breach_response`](crate::LimiterBuilder::on_breach_response),
/// [`RoutePolicy::on_breach_response`](crate::RoutePolicy::on_breach_response),
/// [`LimiterBuilder::on_meta_breach`](crate::LimiterBuilder::on_meta_breach)): Flask-Limiter's
/// `on_breach` returning a response. The rate-limit headers are added to it as to any
/// rejection.
///
/// ```
/// use ratekeeper_decision::breach::BreachResponse;
///
/// let busy = BreachResponse::new("slow down")
///     .status(503)
///     .content_type("text/plain; charset=utf-8")
///     .header("Cache-Control", "no-store");
/// assert_eq!(busy.status_code(), 503);
/// # let _ = busy;
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use = "a builder does nothing until it is used"]
pub struct BreachResponse {
    pub(crate) status: u16,
    pub(crate) content_type: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: String,
}

impl BreachResponse {
    /// A `429 Too Many Requests` with `body` as JSON (set another type with
    /// [`content_type`](Self::content_type)).
    pub fn new(body: impl Into<String>) -> Self {
        Self {
            status: 429,
            content_type: "application/json".to_owned(),
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// The status code (default 429). A code outside 100-599 is answered as 429.
    pub fn status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// The content type (default `application/json`).
    pub fn content_type(mut self, content_type: &str) -> Self {
        content_type.clone_into(&mut self.content_type);
        self
    }

    /// One more header. A name that is not a valid HTTP field name, or a value with a line
    /// break or another control character, is dropped (and logged) rather than sent.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// The status code the response is sent with.
    pub fn status_code(&self) -> u16 {
        if (100..=599).contains(&self.status) {
            self.status
        } else {
            429
        }
    }

    /// The body.
    pub fn body(&self) -> &str {
        &self.body
    }

    /// The content type.
    pub fn content_type_value(&self) -> &str {
        &self.content_type
    }

    /// The extra headers that can be sent (see [`header`](Self::header)).
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers
            .iter()
            .filter(|(name, value)| {
                let ok = crate::headers::is_field_name(name)
                    && !value.bytes().any(|b| b.is_ascii_control() && b != b'\t');
                if !ok {
                    tracing::error!(target: "ratekeeper", header = %name,
                        "a breach response header that is not a valid HTTP field: dropped");
                }
                ok
            })
            .map(|(n, v)| (n.as_str(), v.as_str()))
    }
}
