//! A route policy whose pattern matches no route registered with the middleware (a typo) is
//! reported at `warn` at the first request. `tracing` prints nothing without a subscriber, so
//! the test installs one that keeps the warnings.

use core::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use ratekeeper_decision::{Limiter, RoutePolicy};
use ratekeeper_tide::RateLimit;
use tide::http::{Method, Request, Url};
use tracing::{
    Event, Level, Metadata, Subscriber,
    field::{Field, Visit},
    span::{Attributes, Id, Record},
};

/// The messages of `warn` events.
#[derive(Clone, Default)]
struct Warnings(Arc<Mutex<Vec<String>>>);

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn core::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl Subscriber for Warnings {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Id::from_u64(NEXT.fetch_add(1, Ordering::Relaxed))
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        if *event.metadata().level() == Level::WARN {
            let mut message = Message(String::new());
            event.record(&mut message);
            self.0.lock().unwrap().push(message.0);
        }
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[test]
fn a_policy_for_a_route_that_is_not_registered_is_reported_at_the_first_request() {
    let warnings = Warnings::default();
    tracing::subscriber::with_default(warnings.clone(), || {
        async_std::task::block_on(async {
            let limiter = Limiter::builder()
                .default_limits("100 per minute")
                // A typo: the route is `/login`.
                .route("/logn", RoutePolicy::new().limit("5 per minute"))
                .route("/users/:id", RoutePolicy::new().limit("9 per minute"))
                .group_prefix("/api/", RoutePolicy::new().limit("50 per minute"))
                .group_prefix("/admin/", RoutePolicy::new().limit("5 per minute"))
                .build()
                .unwrap();
            let limits = RateLimit::new(limiter);
            let mut app = tide::new();
            app.with(limits.clone());
            limits
                .at(&mut app, "/login")
                .post(|_| async { Ok("welcome") });
            limits
                .at(&mut app, "/users/:id")
                .get(|_| async { Ok("a user") });
            limits
                .at(&mut app, "/api/items")
                .get(|_| async { Ok("items") });
            assert!(
                warnings.0.lock().unwrap().is_empty(),
                "nothing before a request"
            );
            for _ in 0..3 {
                let mut req = Request::new(Method::Post, Url::parse("http://test/login").unwrap());
                req.set_peer_addr(Some("203.0.113.7:4000"));
                let res: tide::http::Response = app.respond(req).await.unwrap();
                assert_eq!(u16::from(res.status()), 200);
            }
        });
    });
    let warnings = warnings.0.lock().unwrap();
    assert_eq!(
        warnings.len(),
        2,
        "once each, for /logn and /admin/*: {warnings:?}"
    );
    for (warning, route) in warnings.iter().zip(["\"/admin/*\"", "\"/logn\""]) {
        assert!(
            warning.contains(route) && warning.contains("matches no route registered"),
            "{warning}"
        );
    }
}
