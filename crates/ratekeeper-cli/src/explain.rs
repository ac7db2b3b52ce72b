//! What a limit string means under each strategy: its canonical form, its window, and per
//! strategy the largest burst, the steady rate, the most it can admit within any window of its
//! length, and what it keeps per client.
//!
//! The figures are for requests of cost 1. The most in any window is exact, and the
//! simulation's tests reach each figure with the traffic that shows it:
//!
//! - fixed window: `2N - 1`. A window opens at its first request; the `N - 1` after it can
//!   come just before it closes, and the next window admits `N` at once.
//! - moving window: `N`, exactly.
//! - sliding window counter: `2N`. A bucket full at its very end weighs less and less in the
//!   next one, whose last `window / N` can admit a whole `N` again.
//! - GCRA: `2N - 1`. A full burst of `N`, then one every `window / N`.

use core::mem::size_of;

use ratekeeper_core::{Duration, Entry, FixedWindow, Gcra, Limit, SlidingWindow, StrategyKind};

use crate::span::show_span;

/// One strategy's figures for one limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Figures {
    /// The strategy.
    pub strategy: StrategyKind,
    /// The most admitted at one instant from rest.
    pub burst: u64,
    /// The most admitted within any window of the limit's length (half-open).
    pub max_in_any_window: u64,
    /// Bytes of state per client (the most, for the moving window's log).
    pub state_bytes: u64,
    /// What the state is.
    pub state: &'static str,
}

/// The strategies this command line knows the figures and state of: every one of
/// [`StrategyKind::ALL`] it was built with.
pub fn known_strategies() -> impl Iterator<Item = StrategyKind> {
    StrategyKind::ALL.iter().copied().filter(|&k| {
        matches!(
            k,
            StrategyKind::FixedWindow
                | StrategyKind::MovingWindow
                | StrategyKind::SlidingWindowCounter
                | StrategyKind::Gcra
        )
    })
}

/// The figures of `limit` under `strategy`, for requests of cost 1; `None` for a strategy this
/// command line does not know.
pub fn figures(limit: &Limit, strategy: StrategyKind) -> Option<Figures> {
    let n = limit.amount();
    let (max_in_any_window, state_bytes, state) = match strategy {
        StrategyKind::FixedWindow => (
            n.saturating_mul(2).saturating_sub(1),
            size_of::<FixedWindow>() as u64,
            "a count and when its window opened",
        ),
        StrategyKind::MovingWindow => (
            n,
            (size_of::<Entry>() as u64).saturating_mul(n),
            "a log: one instant and count per distinct instant in the window",
        ),
        StrategyKind::SlidingWindowCounter => (
            n.saturating_mul(2),
            size_of::<SlidingWindow>() as u64,
            "the current and previous bucket's counts and the bucket",
        ),
        StrategyKind::Gcra => (
            n.saturating_mul(2).saturating_sub(1),
            size_of::<Gcra>() as u64,
            "one instant: when the next request is due",
        ),
        _ => return None,
    };
    Some(Figures {
        strategy,
        burst: n,
        max_in_any_window,
        state_bytes,
        state,
    })
}

/// The steady rate of `limit` in words: `10 per 1 min = 0.1667/s, one every 6 s`.
pub fn steady_rate(limit: &Limit) -> String {
    let per_sec = limit.amount() as f64 / (limit.window().as_nanos() as f64 / 1e9);
    format!(
        "{} per {} = {}/s, one every {}",
        limit.amount(),
        show_span(limit.window()),
        trim_float(per_sec),
        show_span(limit.emission_interval())
    )
}

fn trim_float(x: f64) -> String {
    let s = format!("{x:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_owned()
}

/// What an in-flight limit means: `slots` requests held at once, each until its response
/// ends or its `lease` passes without a renewal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InFlightFigures {
    /// Requests held at once.
    pub slots: u64,
    /// How long a slot is kept without a renewal.
    pub lease: Duration,
    /// Bytes of state per key: a log of at most one entry per hold.
    pub state_bytes: u64,
}

impl InFlightFigures {
    /// The figures of `slots` held at once under `lease`.
    pub fn new(slots: u64, lease: Duration) -> Self {
        Self {
            slots,
            lease,
            state_bytes: (size_of::<Entry>() as u64).saturating_mul(slots),
        }
    }

    /// The explanation for people.
    pub fn render(&self) -> String {
        format!(
            "\n{} in flight\n  at most {} requests held at once, each from its decision until \
             its response ends\n  lease        {} (a holder that dies loses its slot then; a \
             running request renews it)\n  state/key    <= {} B (a log: one entry per hold)\n  \
             no reset or Retry-After is promised: a slot frees when a response ends\n",
            self.slots,
            self.slots,
            show_span(self.lease),
            self.state_bytes
        )
    }

    /// The figures as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "in_flight": self.slots,
            "lease_secs": self.lease.as_nanos() as f64 / 1e9,
            "state_bytes": self.state_bytes,
        })
    }
}

/// The explanation of `limits` for people.
pub fn render(input: &str, limits: &[Limit]) -> String {
    let mut out = String::new();
    let plural = if limits.len() == 1 { "" } else { "s" };
    out.push_str(&format!(
        "{input:?}: {} limit{plural}; a request must fit every one\n",
        limits.len()
    ));
    for limit in limits {
        out.push_str(&format!("\n{limit}\n"));
        out.push_str(&format!("  window       {}\n", show_span(limit.window())));
        out.push_str(&format!("  steady rate  {}\n", steady_rate(limit)));
        out.push_str(&format!(
            "  {:<24} {:>12} {:>20} {:>14}\n",
            "strategy",
            "burst",
            format!("most in any {}", show_span(limit.window())),
            "state/client"
        ));
        for (kind, f) in known_strategies().filter_map(|k| Some((k, figures(limit, k)?))) {
            let state = if kind == StrategyKind::MovingWindow {
                format!("<= {} B", f.state_bytes)
            } else {
                format!("{} B", f.state_bytes)
            };
            out.push_str(&format!(
                "  {:<24} {:>12} {:>20} {:>14}\n",
                kind.name(),
                f.burst,
                f.max_in_any_window,
                state
            ));
        }
    }
    out.push_str(
        "\nFigures for requests of cost 1. \"most in any\" is what a client can get within one \
         window length placed anywhere:\n\
         fixed-window lets a burst through on each side of a boundary; moving-window is exact;\n\
         sliding-window-counter weights the previous bucket and can admit a whole bucket again \
         at the end of the next;\n\
         gcra allows the burst, then one request per interval. State is the core's, per client \
         and limit.\n",
    );
    out
}

/// The explanation as JSON: one object per limit.
pub fn to_json(limits: &[Limit]) -> serde_json::Value {
    serde_json::Value::Array(
        limits
            .iter()
            .map(|limit| {
                serde_json::json!({
                    "limit": limit.to_string(),
                    "amount": limit.amount(),
                    "window_secs": limit.window().as_nanos() as f64 / 1e9,
                    "steady_rate_per_sec": limit.amount() as f64 / (limit.window().as_nanos() as f64 / 1e9),
                    "strategies": known_strategies().filter_map(|kind| figures(limit, kind)).map(|f| {
                        let kind = f.strategy;
                        serde_json::json!({
                            "strategy": kind.name(),
                            "burst": f.burst,
                            "max_in_any_window": f.max_in_any_window,
                            "state_bytes": f.state_bytes,
                            "state": f.state,
                        })
                    }).collect::<Vec<_>>(),
                })
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use ratekeeper_core::{Duration, Unit};

    use super::*;
    use crate::{
        simulate::Simulation,
        traffic::{Generator, Request},
    };

    /// The most the strategy admitted in any window, for `requests` at these instants (ns).
    fn most(limit: Limit, kind: StrategyKind, requests: impl Iterator<Item = u64>) -> u64 {
        let sim = Simulation {
            limits: vec![limit],
            strategies: vec![kind],
            clients: 1,
            duration: Duration::from_secs(3_600),
            bins: 1,
        };
        let requests = requests.map(|at| Request {
            at: Duration::from_nanos(at),
            client: 0,
            cost: 1,
        });
        sim.run(requests, |_| {})[0].limits[0].max_in_any_window
    }

    /// The traffic that reaches each strategy's figure: the boundary attack (fixed window), a
    /// request every millisecond (GCRA, moving window), and for the sliding window a full
    /// bucket at its very end followed by a request every millisecond.
    #[test]
    fn the_worst_cases_are_reached_and_not_exceeded() {
        for n in [1, 2, 3, 7, 10, 60] {
            let limit = Limit::per(n, Unit::Minute);
            let w = limit.window().as_nanos();
            let ms = 1_000_000;
            let dense = || (0..180_000u64).map(move |i| i * ms);
            let boundary = Generator::Boundary {
                size: None,
                window: None,
            }
            .requests(1, Duration::from_secs(600), &[limit])
            .map(|r| r.at.as_nanos());
            let end_of_bucket = || {
                (0..n)
                    .map(move |_| w - ms)
                    .chain((0..120_000u64).map(move |i| w + i * ms))
            };
            let reached = [
                (
                    StrategyKind::FixedWindow,
                    most(limit, StrategyKind::FixedWindow, boundary),
                ),
                (
                    StrategyKind::MovingWindow,
                    most(limit, StrategyKind::MovingWindow, dense()),
                ),
                (
                    StrategyKind::SlidingWindowCounter,
                    most(limit, StrategyKind::SlidingWindowCounter, end_of_bucket()),
                ),
                (StrategyKind::Gcra, most(limit, StrategyKind::Gcra, dense())),
            ];
            for (kind, got) in reached {
                assert_eq!(
                    got,
                    figures(&limit, kind).unwrap().max_in_any_window,
                    "{n} per minute, {kind}"
                );
            }
            // The other traffic never does better than the figure.
            for &kind in StrategyKind::ALL {
                let figure = figures(&limit, kind).unwrap().max_in_any_window;
                assert!(most(limit, kind, dense()) <= figure, "{kind}");
                assert!(most(limit, kind, end_of_bucket()) <= figure, "{kind}");
            }
        }
    }

    #[test]
    fn rates_and_spans_read_well() {
        let limit = Limit::per(10, Unit::Minute);
        assert_eq!(
            steady_rate(&limit),
            "10 per 1 min = 0.1667/s, one every 6 s"
        );
        let text = render("10/minute", &[limit]);
        assert!(text.contains("fixed-window"), "{text}");
        assert!(text.contains("19"), "{text}");
    }
}
