//! The cache of refusals on a real server, beside the same traffic without it: a flood costs
//! one call per retry instant and trips a meta limit after the same refusals; random traffic
//! (clients, strategies, costs, meta limits, refunds and clears through the store) is admitted
//! exactly alike; and what the cache cannot see (a clear by another process) only refuses more,
//! never past the instant the refusal named.

mod common;

use common::manual_store_with;
use ratekeeper_core::{Clock, Duration, RetryAfter, StrategyKind};
use ratekeeper_storage::{Charge, Key, Storage, Verdict};
use ratekeeper_test_support::redis::RedisServer;

/// The seed's login: `5 per minute`, and the meta limit `5 per minute` that counts breaches.
fn login(ip: &str, kind: StrategyKind) -> Vec<Charge> {
    let client = Key::new("ip", ip);
    vec![
        Charge::new(
            client.scoped("POST /auth/login"),
            "5 per minute".parse().unwrap(),
            kind,
            1,
        ),
        Charge::gate(
            client.scoped("meta"),
            "5 per minute".parse().unwrap(),
            StrategyKind::FixedWindow,
            1,
        )
        .charging_on_reject(1),
    ]
}

fn hit(store: &impl Storage, batch: &[Charge]) -> Verdict {
    smol::block_on(store.hit(batch)).unwrap()
}

#[test]
fn a_flood_costs_one_call_per_retry_instant_and_trips_the_meta_limit_alike() {
    let server = RedisServer::start();
    for kind in StrategyKind::ALL.iter().copied() {
        // With shared calls on, which count the calls sent.
        let (cached, clock) =
            manual_store_with(&server.url(), &format!("on{kind}"), |b| b.coalesce(64));
        let (plain, plain_clock) =
            manual_store_with(&server.url(), &format!("off{kind}"), |b| b.deny_cache(0));
        let batch = login("203.0.113.9", kind);
        let (mut admitted, mut from_cache, mut meta_refusals) = (0, 0, [0u32; 2]);
        for i in 0..10_000 {
            let a = hit(&cached, &batch);
            let b = hit(&plain, &batch);
            assert_eq!(a.allowed, b.allowed, "{kind}: request {i}");
            assert_eq!(
                a.statuses[1].allowed, b.statuses[1].allowed,
                "{kind}: meta, request {i}"
            );
            admitted += u32::from(a.allowed);
            from_cache += u32::from(a.from_cache);
            meta_refusals[0] += u32::from(!a.statuses[1].allowed);
            meta_refusals[1] += u32::from(!b.statuses[1].allowed);
            // 10,000 requests over 50 s: within the first minute's windows.
            clock.advance(Duration::from_millis(5));
            plain_clock.advance(Duration::from_millis(5));
        }
        assert_eq!(admitted, 5, "{kind}");
        assert_eq!(meta_refusals[0], meta_refusals[1], "{kind}");
        // Five admitted, five breaches counted, then every refusal from the cache until the
        // limits' windows end: one call for the first refusal that counts nothing.
        let calls = cached.shared_calls().unwrap().calls;
        assert_eq!(calls, 11, "{kind}: {calls} calls for 10,000 requests");
        assert_eq!(from_cache, 10_000 - 11, "{kind}");
        println!("{kind}: 10,000 requests, {calls} calls, {from_cache} refused from the cache");
    }
}

#[test]
fn random_traffic_is_admitted_alike_with_and_without_the_cache() {
    let server = RedisServer::start();
    let (cached, clock) = manual_store_with(&server.url(), "rnd-on", |b| b);
    let (plain, plain_clock) = manual_store_with(&server.url(), "rnd-off", |b| b.deny_cache(0));
    let mut rng = ratekeeper_conformance::differential::Rng::new(7);
    let (mut from_cache, mut admitted) = (0, 0);
    let mut last_hit: Vec<
        Option<(
            Vec<Charge>,
            ratekeeper_core::Timestamp,
            ratekeeper_core::Timestamp,
        )>,
    > = vec![None; 6];
    for step in 0..20_000 {
        let advance = match rng.below(10) {
            0..=6 => rng.below(50),
            7 | 8 => rng.below(2_000),
            _ => rng.below(40_000),
        };
        clock.advance(Duration::from_millis(advance));
        plain_clock.advance(Duration::from_millis(advance));
        let who = rng.below(6) as usize;
        let ip = format!("198.51.100.{who}");
        let kind = StrategyKind::ALL[who % StrategyKind::ALL.len()];
        match rng.below(100) {
            0..=2 => {
                // A refund of the client's last admitted hit, through each store.
                if let Some((batch, at_a, at_b)) = last_hit[who].take() {
                    let refund = |at| -> Vec<Charge> {
                        batch.iter().map(|c| c.clone().charged_at(at)).collect()
                    };
                    smol::block_on(cached.refund(&refund(at_a))).unwrap();
                    smol::block_on(plain.refund(&refund(at_b))).unwrap();
                }
            }
            3 => {
                let key = Key::new("ip", &ip);
                smol::block_on(cached.clear_client(&key)).unwrap();
                smol::block_on(plain.clear_client(&key)).unwrap();
            }
            _ => {
                let mut batch = login(&ip, kind);
                let cost = 1 + rng.below(2);
                batch[0].cost = cost;
                batch[0] = batch[0].clone().needing(cost);
                let a = hit(&cached, &batch);
                let b = hit(&plain, &batch);
                assert_eq!(a.allowed, b.allowed, "step {step}: {a:?} / {b:?}");
                if a.from_cache {
                    from_cache += 1;
                    for (x, y) in a.statuses.iter().zip(b.statuses.iter()) {
                        match (x.retry_after, y.retry_after) {
                            (RetryAfter::After(x), RetryAfter::After(y)) => assert!(x <= y),
                            (_, RetryAfter::Never) => {}
                            (x, y) => panic!("step {step}: cached {x:?}, store {y:?}"),
                        }
                    }
                } else {
                    assert_eq!(a, b, "step {step}");
                }
                if a.allowed {
                    admitted += 1;
                    last_hit[who] = Some((batch, a.at, b.at));
                }
            }
        }
    }
    assert!(from_cache > 1_000, "{from_cache} refused from the cache");
    assert!(admitted > 500, "{admitted} admitted");
    println!("20,000 steps: {admitted} admitted alike, {from_cache} refused from the cache");
}

#[test]
fn a_clear_by_another_process_is_seen_when_the_refusal_ends() {
    let server = RedisServer::start();
    let (cached, clock) = manual_store_with(&server.url(), "far", |b| b);
    let (elsewhere, other_clock) = manual_store_with(&server.url(), "far", |b| b.deny_cache(0));
    let batch = login("192.0.2.1", StrategyKind::FixedWindow);
    for _ in 0..5 {
        assert!(hit(&cached, &batch).allowed);
    }
    // Five refusals that count a breach each (asked of Redis), then one with the meta limit
    // exhausted: remembered until the meta limit could count again.
    for _ in 0..5 {
        let v = hit(&cached, &batch);
        assert!(!v.allowed && !v.from_cache && v.statuses[1].allowed);
    }
    let refused = hit(&cached, &batch);
    assert!(!refused.allowed && !refused.from_cache && !refused.statuses[1].allowed);
    let RetryAfter::After(wait) = refused.statuses[1].retry_after else {
        panic!("a window's end")
    };
    // Another process clears the client: Redis would admit it now.
    smol::block_on(elsewhere.clear_client(&Key::new("ip", "192.0.2.1"))).unwrap();
    assert!(smol::block_on(elsewhere.test(&batch)).unwrap().allowed);
    // This one refuses from its cache until the instant its refusal named, then asks again.
    clock.advance(wait.saturating_sub(Duration::from_nanos(1)));
    other_clock.set(clock.now());
    let v = hit(&cached, &batch);
    assert!(!v.allowed && v.from_cache);
    assert_eq!(v.retry_after(), RetryAfter::After(Duration::from_nanos(1)));
    clock.advance(Duration::from_nanos(1));
    assert!(hit(&cached, &batch).allowed);
}
