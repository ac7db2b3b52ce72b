//! The rest of the seed article, without a server: strategies, header name mapping, a custom
//! key function, and trusted proxies, each decided through the Decision API.
//!
//! Run with `cargo run --example customize`.

use std::sync::Arc;

use ratekeeper::primitives::{Duration, ManualClock, StrategyKind, Timestamp};
use ratekeeper::{
    KeyFunction, Limiter, RequestView, headers::HeaderOptions, proxy::ForwardedHeader,
};

fn main() -> Result<(), Box<dyn core::error::Error>> {
    async_std::task::block_on(async {
        let peer = "10.0.0.1".parse()?;

        println!("== Strategies: \"5 per minute\", 8 requests at t=0s, then 4 more at t=30s ==");
        for &strategy in StrategyKind::ALL {
            let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_700_000_040)));
            let limiter = Limiter::builder()
                .default_limits("5 per minute")
                .strategy(strategy)
                .clock(clock.clone())
                .build()?;
            let req = RequestView::new("GET", "/").with_peer(peer);
            let mut line = String::new();
            for i in 0..12 {
                if i == 8 {
                    clock.advance(Duration::from_secs(30));
                    line.push_str(" | ");
                }
                let allowed = limiter.check(&req).await?.is_allowed();
                line.push(if allowed { '+' } else { '.' });
            }
            println!("{:<24} {line}", strategy.name());
        }

        println!("\n== Header name mapping ==");
        let limiter = Limiter::builder()
            .default_limits("100 per hour")
            .headers(HeaderOptions::default().rename("X-RateLimit-Remaining", "X-Quota-Left"))
            .build()?;
        for (name, value) in limiter
            .check(&RequestView::new("GET", "/").with_peer(peer))
            .await?
            .headers()
        {
            println!("{name}: {value}");
        }

        println!("\n== A custom key function: the user from an auth header ==");
        let limiter = Limiter::builder()
            .default_limits("2 per minute")
            .key_function(KeyFunction::custom("user", |req, _ip| {
                req.header("Authorization")
                    .and_then(|a| a.strip_prefix("User "))
                    .unwrap_or("")
                    .to_owned()
            }))
            .build()?;
        for user in ["User alice", "User alice", "User alice", "User bob", ""] {
            let headers = [("Authorization", user)];
            let d = limiter
                .check(
                    &RequestView::new("GET", "/")
                        .with_peer(peer)
                        .with_headers(&headers),
                )
                .await?;
            println!("{user:<12} -> {:?}", d.kind());
        }

        println!(
            "\n== Trusted proxies: X-Forwarded-For: 6.6.6.6, 198.51.100.7 from peer 10.0.0.1 =="
        );
        let headers = [("X-Forwarded-For", "6.6.6.6, 198.51.100.7")];
        for hops in [0, 1, 2] {
            let limiter = Limiter::builder()
                .default_limits("1 per minute")
                .trusted_proxies(hops, ForwardedHeader::XForwardedFor)
                .build()?;
            let req = RequestView::new("GET", "/")
                .with_peer(peer)
                .with_headers(&headers);
            println!(
                "{hops} trusted hops -> client {:?}",
                limiter.client_ip(&req)
            );
        }
        Ok(())
    })
}
