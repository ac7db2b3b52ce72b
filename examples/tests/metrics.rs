//! `GET /metrics` over real HTTP: the seed tour's decisions in the Prometheus text format.
//! (Its own test binary: the recorder is global to the process, so the counts below are
//! exactly this test's.)

use std::sync::Arc;

use ratekeeper::primitives::{ManualClock, Timestamp};
use ratekeeper_examples::{SeedConfig, seed_app, serve_on_free_port};

async fn get(client: &surf::Client, url: String, method: &str) -> (u16, Vec<String>, String) {
    let req = match method {
        "POST" => client.post(&url),
        _ => client.get(&url),
    };
    let mut res = req.await.unwrap();
    let names = res.iter().map(|(n, _)| n.as_str().to_owned()).collect();
    let body = res.body_string().await.unwrap();
    (res.status().into(), names, body)
}

/// The value of the sample `series` (name and labels as rendered) in `page`.
fn sample(page: &str, series: &str) -> Option<f64> {
    page.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// The seed tour on Tide, then on axum, in one process (the recorder is the process's): the
/// second server's page counts both servers' decisions, `round` of them.
#[test]
fn metrics_page_counts_the_decisions_and_is_never_limited() {
    for (round, axum) in [(1.0, false), (2.0, true)] {
        check_metrics(round, axum);
    }
}

fn check_metrics(round: f64, axum: bool) {
    async_std::task::block_on(async {
        let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_700_000_000)));
        let config = SeedConfig {
            clock: Some(clock),
            ..SeedConfig::default()
        };
        let base = if axum {
            ratekeeper_examples::serve_axum_on_free_port(
                ratekeeper_examples::seed_axum_app(&config).unwrap(),
            )
            .unwrap()
        } else {
            serve_on_free_port(seed_app(&config).unwrap())
                .await
                .unwrap()
        };
        let client = || surf::Client::new();
        for _ in 0..2 {
            assert_eq!(
                get(&client(), format!("{base}/api/data"), "GET").await.0,
                200
            );
        }
        let logins: Vec<u16> = {
            let mut v = Vec::new();
            for _ in 0..6 {
                v.push(get(&client(), format!("{base}/auth/login"), "POST").await.0);
            }
            v
        };
        assert_eq!(logins, [200, 200, 200, 200, 200, 429]);

        // Scraped more often than any limit allows, and never limited.
        let mut page = String::new();
        for _ in 0..12 {
            let (status, headers, body) = get(&client(), format!("{base}/metrics"), "GET").await;
            assert_eq!(status, 200);
            assert!(
                !headers
                    .iter()
                    .any(|h| h.to_ascii_lowercase().contains("ratelimit")),
                "an exempt route gets no rate-limit headers: {headers:?}"
            );
            page = body;
        }
        let res = client().get(format!("{base}/metrics")).await.unwrap();
        let content_type = res.header("Content-Type").unwrap().as_str().to_owned();
        assert!(content_type.starts_with("text/plain"), "{content_type}");
        assert!(content_type.contains("version=0.0.4"), "{content_type}");

        let decisions = |route: &str, scope: &str, outcome: &str| {
            sample(
                &page,
                &format!(
                    "ratelimit_decisions_total{{route=\"{route}\",scope=\"{scope}\",outcome=\"{outcome}\"}}"
                ),
            )
        };
        assert_eq!(
            decisions("/api/data", "default", "allowed"),
            Some(2.0 * round),
            "{page}"
        );
        assert_eq!(
            decisions("/auth/login", "route", "allowed"),
            Some(5.0 * round),
            "{page}"
        );
        assert_eq!(
            decisions("/auth/login", "route", "rejected"),
            Some(round),
            "{page}"
        );
        // The twelfth scrape's page counts its twelve scrapes, its own included (and the
        // first round's thirteen, the content-type check among them).
        assert_eq!(
            decisions("/metrics", "none", "exempt"),
            Some(13.0 * round - 1.0),
            "{page}"
        );
        assert_eq!(
            decisions("/api/data", "default", "rejected"),
            None,
            "{page}"
        );

        assert!(page.contains("# HELP ratelimit_decisions_total "), "{page}");
        assert!(
            page.contains("# TYPE ratelimit_decisions_total counter"),
            "{page}"
        );
        assert!(
            page.contains("# TYPE ratelimit_storage_duration_seconds histogram"),
            "{page}"
        );
        // Eight decisions went to the store (the scrapes are exempt and charge nothing).
        assert_eq!(
            sample(&page, "ratelimit_storage_duration_seconds_count"),
            Some(8.0 * round),
            "{page}"
        );
        assert_eq!(
            sample(
                &page,
                "ratelimit_storage_duration_seconds_bucket{le=\"+Inf\"}"
            ),
            Some(8.0 * round),
            "{page}"
        );
    });
}
