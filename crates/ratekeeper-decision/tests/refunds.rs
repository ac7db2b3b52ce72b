//! Conditional deduction across a window boundary: requests that reserve in one window and
//! fail (refund) in the next give nothing to the next window, so slow failures cannot admit up
//! to twice the limit. The refund names the instant the store charged at.

mod common;

use common::{T0, build, check, get};
use ratekeeper_core::{Duration, StrategyKind};
use ratekeeper_decision::{Decision, Limiter, RoutePolicy};

#[test]
fn slow_failures_do_not_refund_into_the_next_window() {
    for (kind, later) in [
        (StrategyKind::FixedWindow, 61),
        (StrategyKind::MovingWindow, 61),
        (StrategyKind::Gcra, 61),
        // The sliding window still weighs the previous bucket: two buckets on, it is gone.
        (StrategyKind::SlidingWindowCounter, 121),
    ] {
        let (limiter, clock) = build(
            Limiter::builder().strategy(kind).route(
                "/process",
                RoutePolicy::new()
                    .limit("10 per minute")
                    .deduct_when(|status| status == 200),
            ),
        );
        // Ten slow requests reserve the whole minute...
        let slow: Vec<Decision> = (0..10).map(|_| check(&limiter, &get("/process"))).collect();
        assert!(slow.iter().all(Decision::is_allowed), "{kind}");
        // ...the next window fills up while they run...
        clock.set(T0.saturating_add(Duration::from_secs(later)));
        let admitted = (0..20)
            .filter(|_| check(&limiter, &get("/process")).is_allowed())
            .count();
        assert!(admitted >= 1, "{kind}");
        // ...then they fail. Their charges belong to a window that has closed: nothing comes
        // back to this one (a refund by amount alone gave back all ten).
        for d in slow {
            smol::block_on(d.complete(500)).unwrap();
        }
        assert!(
            !check(&limiter, &get("/process")).is_allowed(),
            "{kind}: a stale refund admitted more"
        );
    }
}

#[test]
fn a_failure_in_its_own_window_is_refunded() {
    let (limiter, clock) = build(
        Limiter::builder().route(
            "/process",
            RoutePolicy::new()
                .limit("2 per minute")
                .deduct_when(|status| status == 200),
        ),
    );
    let first = check(&limiter, &get("/process"));
    clock.set(T0.saturating_add(Duration::from_secs(30)));
    assert!(check(&limiter, &get("/process")).is_allowed());
    assert!(!check(&limiter, &get("/process")).is_allowed());
    assert!(smol::block_on(first.complete(500)).unwrap());
    assert!(
        check(&limiter, &get("/process")).is_allowed(),
        "its slot came back"
    );
}
