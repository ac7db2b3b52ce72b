//! Traffic through the four strategies on a simulated clock: the core's state machines, one
//! state per client and limit, fed each request at its instant (nothing sleeps: a day of
//! traffic takes seconds).
//!
//! A request is admitted when every limit has room for its cost, and then charged to all of
//! them (the all-or-nothing batch of the stores). Beside the counts, each strategy reports the
//! most it admitted to one client within any window of each limit's length (half-open: the
//! guarantee a limit actually gives) and the longest wait it asked of a rejected client.

use std::collections::VecDeque;

use ratekeeper_core::{AnyStrategy, Duration, Entry, Limit, Strategy, StrategyKind, Timestamp};

use crate::traffic::Request;

/// Where the simulated clock starts: midnight, so that epoch-aligned buckets (the sliding
/// window's) start with the simulation.
pub const START: Timestamp = Timestamp::from_secs(1_699_920_000);

/// How many requests pass between two calls of the progress callback.
pub const PROGRESS_EVERY: u64 = 1 << 16;

/// What one strategy did with the traffic.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// The strategy.
    pub strategy: StrategyKind,
    /// Requests offered.
    pub offered: u64,
    /// Requests admitted.
    pub admitted: u64,
    /// Requests rejected.
    pub rejected: u64,
    /// Per limit, in the order given.
    pub limits: Vec<LimitReport>,
    /// The longest wait told to a rejected request (`Some(None)`: a request whose cost no
    /// window can hold, told never); `None` when nothing was rejected.
    pub longest_wait: Option<Option<Duration>>,
    /// Admitted and rejected requests per time bin, for plots.
    pub timeline: Vec<(u64, u64)>,
}

/// One limit's guarantee, as the traffic tested it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitReport {
    /// The limit.
    pub limit: Limit,
    /// The most cost admitted to one client within any window of the limit's length.
    pub max_in_any_window: u64,
}

/// A simulation's setting.
#[derive(Clone, Debug)]
pub struct Simulation {
    /// Every request must fit all of these.
    pub limits: Vec<Limit>,
    /// The strategies to compare.
    pub strategies: Vec<StrategyKind>,
    /// How many clients the traffic has (client indices are below it).
    pub clients: u32,
    /// How long the traffic lasts (for the timeline's bins).
    pub duration: Duration,
    /// How many bins the timeline has.
    pub bins: usize,
}

/// One client's state under one limit.
type State = AnyStrategy<VecDeque<Entry>>;

/// The costs one client was admitted within the last window of one limit, and their sum.
#[derive(Default)]
struct Window {
    admitted: VecDeque<(u64, u64)>,
    sum: u64,
}

impl Window {
    /// Records an admission of `cost` at `at`, and returns the sum within the window that ends
    /// there (entries `window` or more before `at` have left it).
    fn admit(&mut self, at: u64, cost: u64, window: u64) -> u64 {
        while let Some(&(t, c)) = self.admitted.front() {
            if at - t < window {
                break;
            }
            self.admitted.pop_front();
            self.sum -= c;
        }
        self.admitted.push_back((at, cost));
        self.sum += cost;
        self.sum
    }
}

/// One strategy's run in progress.
struct Run {
    kind: StrategyKind,
    /// Per client, per limit: `client * limits + limit`.
    states: Vec<State>,
    windows: Vec<Window>,
    report: Report,
}

impl Simulation {
    /// Runs `requests` (in time order) through every strategy. `progress` is called with the
    /// number of requests done every [`PROGRESS_EVERY`].
    pub fn run(
        &self,
        requests: impl Iterator<Item = Request>,
        mut progress: impl FnMut(u64),
    ) -> Vec<Report> {
        let per_client = self.limits.len();
        let clients = self.clients.max(1) as usize;
        let bins = self.bins.max(1);
        let mut runs: Vec<Run> = self
            .strategies
            .iter()
            // Strategies this command line does not know are left out (`strategies` refuses
            // them by name).
            .filter_map(|&kind| self.start(kind, clients * per_client, bins))
            .collect();
        let span = self.duration.as_nanos().max(1);
        let mut done = 0u64;
        for request in requests {
            let at = request.at.as_nanos();
            let bin = ((u128::from(at) * bins as u128 / u128::from(span)) as usize).min(bins - 1);
            let first = (request.client as usize).min(clients - 1) * per_client;
            for run in &mut runs {
                run.offer(&self.limits, first, &request, bin);
            }
            done += 1;
            if done.is_multiple_of(PROGRESS_EVERY) {
                progress(done);
            }
        }
        progress(done);
        runs.into_iter()
            .map(|run| {
                debug_assert_eq!(run.kind, run.report.strategy);
                run.report
            })
            .collect()
    }

    /// A run of strategy `kind` with `counters` fresh states (one per client and limit), or
    /// `None` for a strategy this command line does not know.
    fn start(&self, kind: StrategyKind, counters: usize, bins: usize) -> Option<Run> {
        State::fresh(kind)?;
        Some(Run {
            kind,
            states: (0..counters).filter_map(|_| State::fresh(kind)).collect(),
            windows: (0..counters).map(|_| Window::default()).collect(),
            report: Report {
                strategy: kind,
                offered: 0,
                admitted: 0,
                rejected: 0,
                limits: self
                    .limits
                    .iter()
                    .map(|&limit| LimitReport {
                        limit,
                        max_in_any_window: 0,
                    })
                    .collect(),
                longest_wait: None,
                timeline: vec![(0, 0); bins],
            },
        })
    }
}

impl Run {
    /// One request offered to this strategy: admitted when it fits every limit of its client
    /// (whose counters start at `first`), counted in time bin `bin`.
    fn offer(&mut self, limits: &[Limit], first: usize, request: &Request, bin: usize) {
        let (at, cost) = (request.at.as_nanos(), request.cost);
        let now = START.saturating_add(request.at);
        let states = &mut self.states[first..first + limits.len()];
        let report = &mut self.report;
        report.offered += 1;
        let fits = states
            .iter_mut()
            .zip(limits)
            .all(|(s, l)| s.test(l, now, cost).is_allowed());
        if fits {
            let windows = &mut self.windows[first..first + limits.len()];
            for ((state, limit), (window, seen)) in states
                .iter_mut()
                .zip(limits)
                .zip(windows.iter_mut().zip(&mut report.limits))
            {
                // Tested above: the hit is admitted.
                let _ = state.hit(limit, now, cost);
                let sum = window.admit(at, cost, limit.window().as_nanos());
                seen.max_in_any_window = seen.max_in_any_window.max(sum);
            }
            report.admitted += 1;
            report.timeline[bin].0 += 1;
            return;
        }
        let wait = states
            .iter_mut()
            .zip(limits)
            .map(|(s, l)| s.retry_after(l, now, cost))
            .try_fold(Duration::ZERO, |longest, w| {
                w.duration().map(|b| longest.max(b))
            });
        report.longest_wait = Some(match report.longest_wait {
            None => wait,
            Some(None) => None,
            Some(Some(before)) => wait.map(|w| w.max(before)),
        });
        report.rejected += 1;
        report.timeline[bin].1 += 1;
    }
}

/// The report as one JSON object.
pub fn to_json(report: &Report, clients: u32, duration: Duration) -> serde_json::Value {
    let first = report.limits.first();
    serde_json::json!({
        "strategy": report.strategy.name(),
        "offered": report.offered,
        "admitted": report.admitted,
        "rejected": report.rejected,
        // The first limit's; every limit's is in `limits`.
        "max_in_any_window": first.map(|l| l.max_in_any_window),
        "window_secs": first.map(|l| l.limit.window().as_nanos() as f64 / 1e9),
        "limits": report.limits.iter().map(|l| serde_json::json!({
            "limit": l.limit.to_string(),
            "window_secs": l.limit.window().as_nanos() as f64 / 1e9,
            "max_in_any_window": l.max_in_any_window,
        })).collect::<Vec<_>>(),
        // null: nothing rejected; "never": a cost no window can hold.
        "longest_wait_secs": match report.longest_wait {
            None => serde_json::Value::Null,
            Some(None) => serde_json::Value::from("never"),
            Some(Some(d)) => serde_json::Value::from(d.as_nanos() as f64 / 1e9),
        },
        "clients": clients,
        "duration_secs": duration.as_nanos() as f64 / 1e9,
    })
}

#[cfg(test)]
mod tests {
    use ratekeeper_core::Unit;

    use super::*;
    use crate::traffic::Generator;

    fn simulate(limits: &[Limit], traffic: &str, secs: u64) -> Vec<Report> {
        let duration = Duration::from_secs(secs);
        let sim = Simulation {
            limits: limits.to_vec(),
            strategies: StrategyKind::ALL.to_vec(),
            clients: 1,
            duration,
            bins: 10,
        };
        let g: Generator = traffic.parse().unwrap();
        sim.run(g.requests(1, duration, limits), |_| {})
    }

    fn max(reports: &[Report], kind: StrategyKind) -> u64 {
        reports.iter().find(|r| r.strategy == kind).unwrap().limits[0].max_in_any_window
    }

    #[test]
    fn the_boundary_attack_doubles_a_fixed_window_only() {
        let limit = Limit::per(10, Unit::Minute);
        let r = simulate(&[limit], "boundary", 600);
        // A window opened by the first request holds 9 more just before it closes, and the
        // next admits 10 at once: 19 within one minute.
        assert_eq!(max(&r, StrategyKind::FixedWindow), 19);
        assert_eq!(max(&r, StrategyKind::MovingWindow), 10);
        assert!(max(&r, StrategyKind::SlidingWindowCounter) <= 11);
        assert!(max(&r, StrategyKind::Gcra) <= 11);
        for report in &r {
            assert_eq!(report.offered, 1 + 9 * 20);
            assert_eq!(report.admitted + report.rejected, report.offered);
            assert_eq!(
                report.timeline.iter().map(|b| b.0).sum::<u64>(),
                report.admitted
            );
            assert_eq!(
                report.timeline.iter().map(|b| b.1).sum::<u64>(),
                report.rejected
            );
        }
    }

    #[test]
    fn steady_traffic_under_the_limit_is_all_admitted() {
        let r = simulate(&[Limit::per(10, Unit::Minute)], "constant:rate=0.1", 3_600);
        for report in &r {
            assert_eq!((report.offered, report.rejected), (360, 0), "{report:?}");
            assert_eq!(report.longest_wait, None);
            assert_eq!(report.limits[0].max_in_any_window, 6);
        }
    }

    #[test]
    fn twice_the_rate_admits_the_limit_and_waits_are_bounded_by_the_window() {
        let r = simulate(
            &[Limit::per(10, Unit::Minute)],
            "constant:rate=0.333333",
            3_600,
        );
        for report in &r {
            // 1,200 offered; about 600 (10 a minute) admitted by every strategy.
            assert!((590..=612).contains(&report.admitted), "{report:?}");
            let wait = report.longest_wait.unwrap().unwrap();
            assert!(wait <= Duration::from_secs(60), "{report:?}");
            assert!(report.limits[0].max_in_any_window <= 20);
        }
        assert_eq!(max(&r, StrategyKind::MovingWindow), 10);
    }

    #[test]
    fn a_request_must_fit_every_limit() {
        let limits = [Limit::per(5, Unit::Second), Limit::per(20, Unit::Minute)];
        let r = simulate(&limits, "constant:rate=10", 60);
        for report in &r {
            assert!(report.admitted <= 40, "{report:?}");
            assert!(report.limits[1].max_in_any_window <= 40);
        }
        let moving = r
            .iter()
            .find(|r| r.strategy == StrategyKind::MovingWindow)
            .unwrap();
        assert_eq!(moving.admitted, 20);
        assert_eq!(moving.limits[0].max_in_any_window, 5);
        assert_eq!(moving.limits[1].max_in_any_window, 20);
    }

    #[test]
    fn a_cost_above_the_limit_waits_forever() {
        let sim = Simulation {
            limits: vec![Limit::per(2, Unit::Second)],
            strategies: vec![StrategyKind::Gcra],
            clients: 1,
            duration: Duration::from_secs(1),
            bins: 1,
        };
        let big = Request {
            at: Duration::ZERO,
            client: 0,
            cost: 3,
        };
        let r = sim.run([big].into_iter(), |_| {});
        assert_eq!(r[0].longest_wait, Some(None));
        assert_eq!(
            to_json(&r[0], 1, sim.duration)["longest_wait_secs"],
            "never"
        );
    }
}
