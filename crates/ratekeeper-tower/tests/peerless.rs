//! A request without a client address (an app served without `ConnectInfo`) is reported once,
//! at `error`, with the fix in the message: `tracing` prints nothing without a subscriber, so
//! this test installs one that keeps what it is given.

use core::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::{
    Router,
    body::Body,
    http::{Request, StatusCode},
    routing::get,
};
use ratekeeper_decision::Limiter;
use ratekeeper_tower::RateLimitLayer;
use tower::ServiceExt;
use tracing::{
    Event, Level, Metadata, Subscriber,
    field::{Field, Visit},
    span::{Attributes, Id, Record},
};

/// Every event's level and message.
#[derive(Clone, Default)]
struct Kept(Arc<Mutex<Vec<(Level, String)>>>);

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn core::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl Subscriber for Kept {
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
        let mut message = Message(String::new());
        event.record(&mut message);
        self.0
            .lock()
            .unwrap()
            .push((*event.metadata().level(), message.0));
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[test]
fn a_peerless_request_is_reported_once_with_the_fix() {
    let kept = Kept::default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    tracing::subscriber::with_default(kept.clone(), || {
        runtime.block_on(async {
            let limits = RateLimitLayer::new(
                Limiter::builder()
                    .default_limits("100 per minute")
                    .build()
                    .unwrap(),
            );
            let app = Router::new()
                .route("/", get(|| async { "hi" }))
                .layer(limits);
            for _ in 0..3 {
                // No `ConnectInfo`: served as `axum::serve(listener, app)` would serve it.
                let req = Request::builder().uri("/").body(Body::empty()).unwrap();
                let status = app.clone().oneshot(req).await.unwrap().status();
                assert_eq!(status, StatusCode::OK);
            }
        });
    });
    let errors: Vec<String> = kept
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|(level, _)| *level == Level::ERROR)
        .map(|(_, message)| message.clone())
        .collect();
    assert_eq!(errors.len(), 1, "once: {errors:?}");
    assert!(
        errors[0].contains("into_make_service_with_connect_info::<SocketAddr>()"),
        "{}",
        errors[0]
    );
}
