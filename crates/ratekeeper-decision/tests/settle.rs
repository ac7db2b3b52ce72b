//! Settled costs: a body of unknown length is charged the worst case up front, and the
//! difference comes back once the handler has read it; never a second chance to over-admit.

mod common;

use common::{build, check};
use ratekeeper_decision::{Limiter, RequestView, RoutePolicy};

const LARGE: u64 = 10 << 20;

fn upload() -> RoutePolicy {
    RoutePolicy::new()
        .limit("10 per minute")
        .cost(|req| match req.content_length() {
            Some(n) if n <= LARGE => 1,
            _ => 5,
        })
        .settle(|bytes| if bytes > LARGE { 5 } else { 1 })
}

fn post(len: Option<u64>) -> RequestView<'static> {
    let req = RequestView::new("POST", "/upload").with_peer("203.0.113.7".parse().unwrap());
    match len {
        Some(n) => req.with_content_length(n),
        None => req,
    }
}

#[test]
fn an_unknown_length_costs_the_most_until_the_body_is_read() {
    let (limiter, _) = build(Limiter::builder().route("/upload", upload()));
    // Chunked, 1 KiB: 5 reserved, 4 back once read.
    let d = check(&limiter, &post(None));
    assert_eq!(d.remaining(), 5);
    assert!(d.is_conditional());
    assert_eq!(smol::block_on(d.finish(200, Some(1024))).unwrap(), 4);
    // Chunked, 11 MiB: 5 reserved, 5 kept.
    let d = check(&limiter, &post(None));
    assert_eq!(d.remaining(), 4, "10 - 1 - 5");
    assert_eq!(smol::block_on(d.finish(200, Some(11 << 20))).unwrap(), 0);
    // A declared small length costs 1 up front; settling cannot charge more than reserved.
    let d = check(&limiter, &post(Some(100)));
    assert_eq!(d.remaining(), 3);
    assert_eq!(smol::block_on(d.finish(200, Some(11 << 20))).unwrap(), 0);
    // Without the body's size nothing comes back (the adapter did not count it).
    let d = check(&limiter, &post(None));
    assert!(!d.is_allowed(), "3 left, 5 needed");
    let d = check(&limiter, &post(Some(1)));
    assert_eq!(d.remaining(), 2);
    assert_eq!(smol::block_on(d.finish(200, None)).unwrap(), 0);
}

#[test]
fn a_status_that_does_not_count_refunds_everything_and_application_limits_are_not_settled() {
    let (limiter, _) = build(
        Limiter::builder()
            .application_limits("3 per minute")
            .route("/upload", upload().deduct_when(|s| s < 500)),
    );
    // A failure: the whole reservation comes back (the route's 5 and the application's 1).
    let d = check(&limiter, &post(None));
    assert_eq!(smol::block_on(d.finish(503, Some(10))).unwrap(), 5);
    // Settled: the route gets 4 back; the application limit keeps its 1 per request, so the
    // third request still fits and the fourth does not.
    for _ in 0..3 {
        let d = check(&limiter, &post(None));
        assert!(d.is_allowed());
        assert_eq!(smol::block_on(d.finish(200, Some(10))).unwrap(), 4);
    }
    assert!(
        !check(&limiter, &post(Some(1))).is_allowed(),
        "application limit: 3 per minute"
    );
}

/// A reservation for a body of unknown length whose size the adapter never learned
/// (`finish(_, None)`) keeps all it reserved: nothing is refunded as if the body were empty.
#[test]
fn an_unread_body_of_unknown_length_keeps_its_whole_reservation() {
    let (limiter, _) = build(Limiter::builder().route("/upload", upload()));
    let d = check(&limiter, &post(None));
    assert_eq!(d.remaining(), 5, "10 - 5 reserved");
    assert_eq!(smol::block_on(d.finish(200, None)).unwrap(), 0);
    let after = check(&limiter, &post(Some(1)));
    assert_eq!(after.remaining(), 4, "the 5 stayed charged, and 1 more");
}
