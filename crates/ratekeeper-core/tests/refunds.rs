//! Refunds that name the instant of their charge: a charge made in one window and refunded in
//! the next gives nothing back to the next (the case that let slow failing requests admit up
//! to twice the limit), for every strategy; a refund at the charge's own instant restores the
//! state as a plain refund does.

mod common;

use common::AnyState;
use ratekeeper_core::{Duration, Limit, StrategyKind, Timestamp, Unit};

fn at(ms: u64) -> Timestamp {
    Timestamp::from_secs(1_700_000_000).saturating_add(Duration::from_millis(ms))
}

fn state(kind: StrategyKind, limit: &Limit) -> AnyState {
    AnyState::new(kind, limit)
}

/// How many of `n` hits of 1 at `now` are admitted.
fn admitted(s: &mut AnyState, limit: &Limit, now: Timestamp, n: u64) -> u64 {
    (0..n).filter(|_| s.hit(limit, now, 1).is_allowed()).count() as u64
}

#[test]
fn a_refund_after_the_window_closed_gives_nothing_to_the_next() {
    let limit = Limit::per(10, Unit::Second);
    for &kind in StrategyKind::ALL {
        // 5 charged at 0 ms (the request then fails slowly), 5 more at 100 ms.
        let mut s = state(kind, &limit);
        assert!(s.hit(&limit, at(0), 5).is_allowed(), "{kind}");
        assert!(s.hit(&limit, at(100), 5).is_allowed(), "{kind}");
        // Two seconds on, a new window (bucket, log, emission) is full again.
        let later = at(2_050);
        let filled = admitted(&mut s, &limit, later, 20);
        assert!(filled >= 1, "{kind}");
        // The slow failure refunds its charge now: it holds nothing of this window, so nothing
        // comes back (a refund by amount alone gave 5 here).
        let mut by_instant = s.clone();
        by_instant.refund_at(&limit, later, 5, at(0));
        assert_eq!(
            admitted(&mut by_instant, &limit, later, 20),
            0,
            "{kind}: a stale refund admitted more"
        );
        let mut by_amount = s.clone();
        by_amount.refund(&limit, later, 5);
        assert!(
            admitted(&mut by_amount, &limit, later, 20) > 0,
            "{kind}: the old refund, for contrast"
        );
    }
}

#[test]
fn a_refund_in_the_same_window_gives_the_charge_back() {
    let limit = Limit::per(10, Unit::Second);
    for &kind in StrategyKind::ALL {
        let mut s = state(kind, &limit);
        let before = s.stats(&limit, at(0));
        assert!(s.hit(&limit, at(0), 4).is_allowed());
        let mut undone = s.clone();
        undone.refund_at(&limit, at(0), 4, at(0));
        assert_eq!(undone.stats(&limit, at(0)), before, "{kind}: same instant");
        // Full at 300 ms; at 350 ms, still in the window, all of it comes back, except for
        // GCRA, which gives back what its emission interval has not yet passed: 400 ms from
        // 0 ms leaves 50 ms, which with the 50 ms drained since makes one slot of 100 ms.
        admitted(&mut s, &limit, at(300), 20);
        assert!(!s.test(&limit, at(350), 1).is_allowed(), "{kind}");
        s.refund_at(&limit, at(350), 4, at(0));
        let back = admitted(&mut s, &limit, at(350), 10);
        let expected = if kind == StrategyKind::Gcra { 1 } else { 4 };
        assert_eq!(back, expected, "{kind}");
    }
}

#[test]
fn a_sliding_window_refund_goes_to_the_bucket_it_came_from() {
    let limit = Limit::per(10, Unit::Second);
    let mut s = state(StrategyKind::SlidingWindowCounter, &limit);
    // Bucket 0 of the window: 10; bucket 1 at 1.5 s weighs it at half: 5 more fit.
    let t0 = Timestamp::from_secs(1_700_000_000);
    assert!(s.hit(&limit, t0, 10).is_allowed());
    let mid = t0.saturating_add(Duration::from_millis(1_500));
    assert_eq!(admitted(&mut s, &limit, mid, 10), 5);
    // Refunding 4 of the bucket-0 charge lowers the previous bucket: 2 more fit (10 - 6 = 4
    // weighing 2 at half).
    s.refund_at(&limit, mid, 4, t0);
    assert_eq!(admitted(&mut s, &limit, mid, 10), 2);
}

/// Two requests that read the clock in one order and reach the log in the other: the later
/// one's entry takes the earlier one's charge. Refunded at its own instant, that charge comes
/// back from the entry it went into, once, and not after its window.
#[test]
fn a_moving_window_charge_merged_into_a_newer_entry_is_given_back_from_it() {
    use ratekeeper_core::{BoundedMovingWindow, Strategy};
    let limit = Limit::per(2, Unit::Minute);
    let mut s: BoundedMovingWindow<8> = BoundedMovingWindow::default();
    assert!(s.hit(&limit, at(200), 1).is_allowed());
    // Read the clock at 100 ms, reached the log after the charge of 200 ms: merged into it.
    assert!(s.hit(&limit, at(100), 1).is_allowed());
    assert!(!s.test(&limit, at(300), 1).is_allowed());
    s.refund_at(&limit, at(300), 1, at(100));
    assert_eq!(s.stats(&limit, at(300)).remaining, 1);
    // The other charge is still counted, and given back at its own instant.
    s.refund_at(&limit, at(400), 1, at(200));
    assert_eq!(s.stats(&limit, at(400)).remaining, 2);
    // A charge past its window gives nothing back, even where a newer entry counts.
    assert!(s.hit(&limit, at(61_000), 1).is_allowed());
    s.refund_at(&limit, at(61_000), 1, at(100));
    assert_eq!(s.stats(&limit, at(61_000)).remaining, 1);
}
