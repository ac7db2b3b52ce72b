//! Client addresses a client cannot forge or multiply: forwarded headers only from trusted
//! proxy networks, IPv6 clients grouped by /64, IPv4-mapped addresses as IPv4, and requests
//! without an address limited all the same.

mod common;

use common::{build, check};
use ratekeeper_decision::{
    Kind, Limiter, LimiterBuilder, RequestView, keys::UnknownClient, proxy::ForwardedHeader,
};

fn limiter(b: LimiterBuilder) -> Limiter {
    build(b.default_limits("10 per minute")).0
}

/// How many of 40 requests from `peer` are admitted when each claims another client in
/// `X-Forwarded-For`.
fn admitted_with_spoofed_clients(limiter: &Limiter, peer: &str) -> usize {
    (0..40)
        .filter(|i| {
            let claimed = format!("198.51.100.{i}");
            let h = [("X-Forwarded-For", claimed.as_str())];
            let req = RequestView::new("GET", "/r")
                .with_peer(peer.parse().unwrap())
                .with_headers(&h);
            check(limiter, &req).is_allowed()
        })
        .count()
}

#[test]
fn forwarded_headers_count_only_from_trusted_networks() {
    let one_hop = || Limiter::builder().trusted_proxies(1, ForwardedHeader::XForwardedFor);
    // A client that reaches the app directly from a public address is itself, whatever it
    // claims: 10 of 40.
    let l = limiter(one_hop());
    assert_eq!(admitted_with_spoofed_clients(&l, "203.0.113.7"), 10);
    // A proxy on a private network (trusted by default) forwards 40 different clients.
    assert_eq!(admitted_with_spoofed_clients(&l, "10.0.0.2"), 40);
    assert_eq!(
        admitted_with_spoofed_clients(&limiter(one_hop()), "::1"),
        40
    );
    // Configured networks replace the default.
    let l = limiter(one_hop().trusted_proxy_networks("192.0.2.0/24, 2001:db8::1"));
    assert_eq!(admitted_with_spoofed_clients(&l, "10.0.0.2"), 10);
    assert_eq!(admitted_with_spoofed_clients(&l, "192.0.2.77"), 40);
    assert_eq!(admitted_with_spoofed_clients(&l, "2001:db8::1"), 40);
    // No hops: no header is read, from anywhere.
    assert_eq!(
        admitted_with_spoofed_clients(&limiter(Limiter::builder()), "10.0.0.2"),
        10
    );
}

#[test]
fn bad_networks_and_prefixes_are_refused_at_build() {
    let err = Limiter::builder()
        .trusted_proxy_networks("10.0.0.0/8, 10.0.0.0/40")
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("trusted proxy networks: network \"10.0.0.0/40\""),
        "{err}"
    );
    let err = Limiter::builder().ipv6_prefix(129).build().unwrap_err();
    assert_eq!(err.to_string(), "ipv6 prefix 129: at most 128 bits");
}

fn from(limiter: &Limiter, peer: &str) -> bool {
    check(
        limiter,
        &RequestView::new("GET", "/r").with_peer(peer.parse().unwrap()),
    )
    .is_allowed()
}

#[test]
fn an_ipv6_host_is_its_64_not_every_address_in_it() {
    let l = build(Limiter::builder().default_limits("2 per minute")).0;
    assert!(from(&l, "2001:db8:1:2::1"));
    assert!(from(&l, "2001:db8:1:2:ffff:ffff:ffff:9"));
    assert!(
        !from(&l, "2001:db8:1:2:abcd::42"),
        "a third address of the same /64 is the same client"
    );
    assert!(
        from(&l, "2001:db8:1:3::1"),
        "the next /64 is another client"
    );
    // A longer prefix, configured: /128 counts every address apart.
    let l = build(
        Limiter::builder()
            .default_limits("1 per minute")
            .ipv6_prefix(128),
    )
    .0;
    assert!(from(&l, "2001:db8:1:2::1"));
    assert!(from(&l, "2001:db8:1:2::2"));
    assert!(!from(&l, "2001:db8:1:2::1"));
    // A shorter one: /48.
    let l = build(
        Limiter::builder()
            .default_limits("1 per minute")
            .ipv6_prefix(48),
    )
    .0;
    assert!(from(&l, "2001:db8:1:2::1"));
    assert!(!from(&l, "2001:db8:1:ffff::1"));
}

#[test]
fn an_ipv4_mapped_address_is_the_ipv4_address() {
    let l = build(
        Limiter::builder()
            .default_limits("2 per minute")
            .trusted_proxies(1, ForwardedHeader::XForwardedFor),
    )
    .0;
    assert!(from(&l, "203.0.113.7"));
    assert!(from(&l, "::ffff:203.0.113.7"));
    let h = [("X-Forwarded-For", "::ffff:203.0.113.7")];
    let forwarded = RequestView::new("GET", "/r")
        .with_peer("10.0.0.2".parse().unwrap())
        .with_headers(&h);
    assert!(
        !check(&l, &forwarded).is_allowed(),
        "one client however its address is written"
    );
    // A mapped peer address is checked against IPv4 networks as IPv4.
    let h = [("X-Forwarded-For", "198.51.100.1")];
    let via_mapped_proxy = RequestView::new("GET", "/r")
        .with_peer("::ffff:10.0.0.2".parse().unwrap())
        .with_headers(&h);
    assert_eq!(
        l.client_ip(&via_mapped_proxy),
        Some("198.51.100.1".parse().unwrap())
    );
}

#[test]
fn requests_without_an_address_are_limited_by_default() {
    let nowhere = RequestView::new("GET", "/r");
    // Default: one shared identity, so they are limited together.
    let l = build(Limiter::builder().default_limits("1 per minute")).0;
    assert_eq!(check(&l, &nowhere).kind(), Kind::Allowed);
    assert_eq!(check(&l, &nowhere).kind(), Kind::Rejected);
    // A request with an address is not held by them.
    assert!(from(&l, "203.0.113.7"));
    // Unlimited, when configured so.
    let l = build(
        Limiter::builder()
            .default_limits("1 per minute")
            .unknown_client(UnknownClient::Unlimited),
    )
    .0;
    for _ in 0..3 {
        assert_eq!(check(&l, &nowhere).kind(), Kind::Unlimited);
    }
    // Refused, when configured so.
    let l = build(
        Limiter::builder()
            .default_limits("1 per minute")
            .unknown_client(UnknownClient::Reject),
    )
    .0;
    let d = check(&l, &nowhere);
    assert_eq!(d.kind(), Kind::UnknownClient);
    assert!(!d.is_allowed());
    assert!(d.body().unwrap().contains("unknown"));
    assert!(from(&l, "203.0.113.7"));
}
