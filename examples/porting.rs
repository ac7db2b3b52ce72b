//! What a Flask-Limiter application reaches for, without a server, each decided through the
//! Decision API: configuration under Flask-Limiter's names, a request filter, `exempt_when`, a
//! Blueprint-style route group, an exemption from the default limits, whole breach responses
//! (and one for meta breaches), and `Retry-After` as an HTTP date.
//!
//! Run with `cargo run --example porting`.

use std::sync::Arc;

use ratekeeper::primitives::{ManualClock, Timestamp};
use ratekeeper::{Decision, LimiterBuilder, RequestView, RoutePolicy, breach::BreachResponse};

fn show(what: &str, d: &Decision) {
    let retry = d
        .headers()
        .find(|(n, _)| n.eq_ignore_ascii_case("Retry-After"))
        .map_or(String::new(), |(_, v)| format!(", Retry-After: {v}"));
    println!(
        "{what:<44} {:?} {}{}{}",
        d.kind(),
        d.status(),
        d.body().map_or(String::new(), |b| format!(" {b}")),
        retry
    );
}

fn main() -> Result<(), Box<dyn core::error::Error>> {
    async_std::task::block_on(async {
        let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_700_000_000)));
        // As an app would read its environment (`LimiterBuilder::from_env()`), from a list here;
        // settings made in code afterwards win over these.
        let config = [
            ("RATELIMIT_DEFAULT", "3 per minute"),
            ("RATELIMIT_META", "2 per hour"),
            ("RATELIMIT_HEADER_RETRY_AFTER_VALUE", "http-date"),
            ("RATELIMIT_KEY_PREFIX", "porting"),
        ];
        let limiter = LimiterBuilder::from_env()?
            .with_config(config)?
            .request_filter(|req| req.route() == "/metrics")
            .default_limits_exempt_when(|req| req.header("X-Internal") == Some("1"))
            .group_prefix(
                "/admin/",
                RoutePolicy::new()
                    .limit("2 per minute")
                    .shared("admin")
                    .on_breach_response(|b| {
                        BreachResponse::new(format!("admin quota: {}", b.limit))
                            .status(503)
                            .content_type("text/plain")
                    }),
            )
            .route("/admin/login", RoutePolicy::new().limit("5 per minute"))
            .on_meta_breach(|_| {
                BreachResponse::new("{\"error\": \"too many breaches\"}").status(403)
            })
            .clock(clock)
            .build()?;
        let peer = "10.0.0.1".parse()?;
        let get = |route| RequestView::new("GET", route).with_peer(peer);

        println!("== request_filter: /metrics is never limited ==");
        for _ in 0..5 {
            show("GET /metrics", &limiter.check(&get("/metrics")).await?);
        }

        println!("\n== default_limits_exempt_when: internal calls skip the defaults ==");
        let internal = [("X-Internal", "1")];
        for _ in 0..4 {
            let req = get("/api/data").with_headers(&internal);
            show("GET /api/data (X-Internal: 1)", &limiter.check(&req).await?);
        }

        println!("\n== RATELIMIT_DEFAULT=\"3 per minute\", Retry-After as an HTTP date ==");
        for _ in 0..4 {
            show("GET /api/data", &limiter.check(&get("/api/data")).await?);
        }

        println!(
            "\n== A route group: /admin/login has its own limit, the rest of /admin/* shares 2 per minute =="
        );
        for route in [
            "/admin/login",
            "/admin/users",
            "/admin/audit",
            "/admin/users",
        ] {
            show(&format!("GET {route}"), &limiter.check(&get(route)).await?);
        }

        println!("\n== Two breaches used up RATELIMIT_META=\"2 per hour\": the meta response ==");
        show("GET /api/other", &limiter.check(&get("/api/other")).await?);
        Ok(())
    })
}
