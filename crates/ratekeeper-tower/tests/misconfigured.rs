//! Misconfiguration is loud: a request without a client address (an app served without
//! `ConnectInfo`) is reported once, at `error`, with the fix in the message; a route policy
//! whose pattern matches no route the layer knows is reported at `warn` at the first request.
//! `tracing` prints nothing without a subscriber, so these tests install one that keeps what
//! it is given.

use axum::{
    Router,
    body::Body,
    http::{Request, StatusCode},
    routing::get,
};
use ratekeeper_decision::{Limiter, RoutePolicy};
use ratekeeper_test_support::logs::Kept;
use ratekeeper_tower::RateLimitLayer;
use tower::ServiceExt;
use tracing::Level;

#[test]
fn a_policy_for_a_route_the_layer_does_not_know_is_reported_at_the_first_request() {
    let kept = Kept::default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    tracing::subscriber::with_default(kept.clone(), || {
        runtime.block_on(async {
            let limiter = Limiter::builder()
                .default_limits("100 per minute")
                // A typo: the route is `/login`.
                .route("/logn", RoutePolicy::new().limit("5 per minute"))
                .route("/users/{id}", RoutePolicy::new().limit("9 per minute"))
                .build()
                .unwrap();
            // A plain service (no axum router): the layer knows the routes it was given.
            let limits = RateLimitLayer::new(limiter)
                .route("/login")
                .route("/users/{id}");
            assert!(kept.at(Level::WARN).is_empty(), "nothing before a request");
            let svc =
                tower::ServiceBuilder::new()
                    .layer(limits)
                    .service_fn(|_req: Request<_>| async {
                        Ok::<_, core::convert::Infallible>(axum::response::Response::new(
                            Body::empty(),
                        ))
                    });
            for _ in 0..3 {
                let req = Request::builder()
                    .uri("/login")
                    .extension(core::net::SocketAddr::from(([203, 0, 113, 7], 4000)))
                    .body(Body::empty())
                    .unwrap();
                let status = svc.clone().oneshot(req).await.unwrap().status();
                assert_eq!(status, StatusCode::OK);
            }
        });
    });
    let warnings = kept.at(Level::WARN);
    assert_eq!(warnings.len(), 1, "once, for /logn only: {warnings:?}");
    assert!(
        warnings[0].contains("\"/logn\"") && warnings[0].contains("matches no route"),
        "{}",
        warnings[0]
    );
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
    let errors = kept.at(Level::ERROR);
    assert_eq!(errors.len(), 1, "once: {errors:?}");
    assert!(
        errors[0].contains("into_make_service_with_connect_info::<SocketAddr>()"),
        "{}",
        errors[0]
    );
}
