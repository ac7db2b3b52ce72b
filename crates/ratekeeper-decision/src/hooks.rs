//! The shapes of the functions a limiter is configured with, named once. Every closure or
//! function of a shape implements its trait, so a setter that takes `impl RequestCondition`
//! takes `|req| req.header("X-Internal") == Some("1")` as it stands.

use crate::{
    RequestView,
    breach::{Breach, BreachResponse},
};

/// Declares a hook trait and implements it for every function of its shape.
macro_rules! hook {
    ($(#[$doc:meta])* $name:ident: $($shape:tt)+) => {
        $(#[$doc])*
        pub trait $name: $($shape)+ + Send + Sync + 'static {}
        impl<F: $($shape)+ + Send + Sync + 'static> $name for F {}
    };
}

hook! {
    /// Whether a request is concerned: exemptions (`exempt_when`) and request filters.
    RequestCondition: Fn(&RequestView<'_>) -> bool
}

hook! {
    /// What a request costs: the amount it takes from each of its limits.
    RequestCost: Fn(&RequestView<'_>) -> u64
}

hook! {
    /// Whether a response with this status keeps its charge (conditional deduction,
    /// `deduct_when`).
    StatusCondition: Fn(u16) -> bool
}

hook! {
    /// The body of a rejection (`on_breach`).
    BreachBody: Fn(&Breach<'_>) -> String
}

hook! {
    /// The whole response of a rejection (`on_breach_response`, `on_meta_breach`).
    BreachResponder: Fn(&Breach<'_>) -> BreachResponse
}

/// The two breach-hook setters, written once for the limiter (every route's fallback) and for
/// a route's policy; each caller gives the docs that say where its hooks apply.
macro_rules! breach_hook_setters {
    (
        $(#[$body_doc:meta])*
        body;
        $(#[$response_doc:meta])*
        response;
    ) => {
        $(#[$body_doc])*
        pub fn on_breach(mut self, body: impl $crate::hooks::BreachBody) -> Self {
            self.on_breach = Some(std::sync::Arc::new(body));
            self
        }

        $(#[$response_doc])*
        pub fn on_breach_response(
            mut self,
            response: impl $crate::hooks::BreachResponder,
        ) -> Self {
            self.on_breach_response = Some(std::sync::Arc::new(response));
            self
        }
    };
}
pub(crate) use breach_hook_setters;
