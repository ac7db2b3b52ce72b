//! Where simulated requests come from: a trace file, or a generator.
//!
//! A request is an offset from the start of the simulation, a client (a dense index; a trace
//! names its clients, generators number them) and a cost.
//!
//! | spec | requests |
//! |---|---|
//! | `constant:rate=R` | `R` per second in all, evenly spaced, clients in turn |
//! | `poisson:rate=R,seed=S` | `R` per second in all on average, exponential gaps (seeded), each from a client drawn at random |
//! | `burst:size=N,every=D` | every client sends `N` at once, every `D` (first at 0) |
//! | `boundary` (or `boundary:size=N,window=D`) | every client sends one request at 0 (opening its windows there), then `N` (the first limit's amount) just before each multiple of `D` (the first limit's window) and `N` at it: the attack a fixed window lets through twice |

use std::io::BufRead;

use ratekeeper_core::{Duration, Limit};

use crate::{error::CliError, span::parse_span};

/// One simulated request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    /// When, from the start of the simulation.
    pub at: Duration,
    /// Which client (an index into the client names).
    pub client: u32,
    /// What it costs (at least 1).
    pub cost: u64,
}

/// A traffic generator, parsed from its spec.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Generator {
    /// `constant:rate=R`.
    Constant {
        /// Requests per second, all clients together.
        rate: f64,
    },
    /// `poisson:rate=R,seed=S`.
    Poisson {
        /// Requests per second on average, all clients together.
        rate: f64,
        /// The random generator's seed (default 1).
        seed: u64,
    },
    /// `burst:size=N,every=D`.
    Burst {
        /// Requests per client per burst.
        size: u64,
        /// Time between bursts.
        every: Duration,
    },
    /// `boundary[:size=N,window=D]`.
    Boundary {
        /// Requests per client on each side of a boundary (default: the first limit's amount).
        size: Option<u64>,
        /// The window whose boundaries are attacked (default: the first limit's).
        window: Option<Duration>,
    },
}

impl core::str::FromStr for Generator {
    type Err = CliError;

    fn from_str(spec: &str) -> Result<Self, CliError> {
        let (name, params) = spec.split_once(':').unwrap_or((spec, ""));
        let mut pairs = Vec::new();
        for pair in params.split(',').filter(|p| !p.trim().is_empty()) {
            let (k, v) = pair.split_once('=').ok_or_else(|| {
                CliError::usage(format!(
                    "traffic {spec:?}: {pair:?} is not name=value (e.g. poisson:rate=100,seed=7)"
                ))
            })?;
            pairs.push((k.trim(), v.trim()));
        }
        let known: &[&str] = match name.trim() {
            "constant" => &["rate"],
            "poisson" => &["rate", "seed"],
            "burst" => &["size", "every"],
            "boundary" => &["size", "window"],
            other => {
                return Err(CliError::usage(format!(
                    "traffic {spec:?}: unknown generator {other:?}; use constant:rate=R, poisson:rate=R,seed=S, burst:size=N,every=D or boundary"
                )));
            }
        };
        if let Some((k, _)) = pairs.iter().find(|(k, _)| !known.contains(k)) {
            return Err(CliError::usage(format!(
                "traffic {spec:?}: {name} takes {}, not {k:?}",
                known.join(" and ")
            )));
        }
        let get = |key: &str| pairs.iter().rev().find(|(k, _)| *k == key).map(|(_, v)| *v);
        let required = |key: &str| {
            get(key).ok_or_else(|| CliError::usage(format!("traffic {spec:?}: {key}= is required")))
        };
        let rate = |v: &str| match v.parse::<f64>() {
            Ok(r) if r.is_finite() && r > 0.0 && r <= 1e9 => Ok(r),
            _ => Err(CliError::usage(format!(
                "traffic {spec:?}: rate={v} is not a rate: a number of requests per second above 0"
            ))),
        };
        let count = |key: &str, v: &str| match v.parse::<u64>() {
            Ok(n) if n > 0 && n <= 1_000_000 => Ok(n),
            _ => Err(CliError::usage(format!(
                "traffic {spec:?}: {key}={v} must be a whole number from 1 to 1000000"
            ))),
        };
        let positive_span = |key: &str, v: &str| {
            let d = parse_span(v)?;
            if d == Duration::ZERO {
                return Err(CliError::usage(format!(
                    "traffic {spec:?}: {key}={v} must be longer than nothing"
                )));
            }
            Ok(d)
        };
        Ok(match name.trim() {
            "constant" => Self::Constant {
                rate: rate(required("rate")?)?,
            },
            "poisson" => Self::Poisson {
                rate: rate(required("rate")?)?,
                seed: match get("seed") {
                    None => 1,
                    Some(v) => v.parse().map_err(|_| {
                        CliError::usage(format!("traffic {spec:?}: seed={v} is not a whole number"))
                    })?,
                },
            },
            "burst" => Self::Burst {
                size: count("size", required("size")?)?,
                every: positive_span("every", required("every")?)?,
            },
            _ => Self::Boundary {
                size: get("size").map(|v| count("size", v)).transpose()?,
                window: get("window")
                    .map(|v| positive_span("window", v))
                    .transpose()?,
            },
        })
    }
}

impl Generator {
    /// The requests of `clients` clients over `duration`, in time order. `limits` gives the
    /// boundary attack its defaults.
    pub fn requests(
        &self,
        clients: u32,
        duration: Duration,
        limits: &[Limit],
    ) -> Box<dyn Iterator<Item = Request>> {
        let clients = clients.max(1);
        let end = duration.as_nanos();
        let unit = |at: u64, client: u32| Request {
            at: Duration::from_nanos(at),
            client,
            cost: 1,
        };
        match *self {
            Self::Constant { rate } => {
                let gap = 1e9 / rate;
                Box::new(
                    (0u64..)
                        .map(move |i| ((i as f64 * gap) as u64, i))
                        .take_while(move |(at, _)| *at < end)
                        .map(move |(at, i)| unit(at, (i % u64::from(clients)) as u32)),
                )
            }
            Self::Poisson { rate, seed } => {
                let mut rng = SplitMix64(seed);
                let mut at = 0f64;
                Box::new(core::iter::from_fn(move || {
                    // Exponential gaps: -ln(U) / rate, U uniform in (0, 1].
                    let u = 1.0 - rng.unit();
                    at += -u.ln() / rate * 1e9;
                    let t = at as u64;
                    let client = rng.below(u64::from(clients)) as u32;
                    (at < end as f64).then(|| unit(t, client))
                }))
            }
            Self::Burst { size, every } => {
                let every = every.as_nanos();
                Box::new(
                    (0u64..)
                        .map(move |k| k.saturating_mul(every))
                        .take_while(move |at| *at < end)
                        .flat_map(move |at| {
                            (0..clients).flat_map(move |c| (0..size).map(move |_| unit(at, c)))
                        }),
                )
            }
            Self::Boundary { size, window } => {
                let first = limits.first();
                let size = size.or(first.map(Limit::amount)).unwrap_or(1);
                let window = window
                    .or(first.map(Limit::window))
                    .unwrap_or(Duration::from_secs(60))
                    .as_nanos()
                    .max(1);
                // Just before the boundary: a thousandth of the window, so that the burst is
                // well inside the window that is closing.
                let before = (window / 1_000).max(1);
                let opening = (0..clients).map(move |c| unit(0, c));
                let attacks = (1u64..)
                    .map(move |k| k.saturating_mul(window))
                    .take_while(move |at| *at < end)
                    .flat_map(move |boundary| {
                        [boundary - before, boundary]
                            .into_iter()
                            .flat_map(move |at| {
                                (0..clients).flat_map(move |c| (0..size).map(move |_| unit(at, c)))
                            })
                    });
                Box::new(
                    opening
                        .chain(attacks)
                        .filter(move |r| r.at.as_nanos() < end),
                )
            }
        }
    }
}

/// SplitMix64: a small, fast, well-mixed generator, so that a seed gives the same traffic on
/// every machine and every version (a general-purpose crate's generators may change).
#[derive(Clone, Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [0, n).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }
}

/// A trace read from a file: its requests in time order and its clients' names.
#[derive(Clone, Debug, Default)]
pub struct Trace {
    /// The requests, sorted by time (stable: lines at the same instant keep their order).
    pub requests: Vec<Request>,
    /// Client names, indexed by [`Request::client`].
    pub clients: Vec<String>,
}

impl Trace {
    /// Reads a trace: one request per line, either CSV `time,key[,cost]` or a JSON object
    /// `{"time": 1.5, "key": "a", "cost": 2}`; time in seconds from any origin (decimals
    /// allowed), cost 1 when absent. Blank lines and lines starting with `#` are skipped, and
    /// so is a first line `time,key[,cost]`. Times are taken relative to the earliest.
    pub fn read(path: &str, input: impl BufRead) -> Result<Self, CliError> {
        let mut clients: Vec<String> = Vec::new();
        let mut index = std::collections::HashMap::<String, u32>::new();
        let mut raw: Vec<(u64, u32, u64)> = Vec::new();
        for (n, line) in input.lines().enumerate() {
            let line = line.map_err(|e| CliError::io(path, e))?;
            let fail = |message: String| CliError::Trace {
                path: path.to_owned(),
                line: n + 1,
                message,
            };
            let text = line.trim();
            if text.is_empty() || text.starts_with('#') {
                continue;
            }
            if n == 0 && text.replace(' ', "").starts_with("time,key") {
                continue;
            }
            let (time, key, cost) = if text.starts_with('{') {
                json_line(text).map_err(fail)?
            } else {
                csv_line(text).map_err(fail)?
            };
            let at = parse_decimal_secs(&time).ok_or_else(|| {
                fail(format!(
                    "time {time:?} is not a number of seconds (digits, one '.', at most nanoseconds)"
                ))
            })?;
            if key.is_empty() {
                return Err(fail("the key is empty".into()));
            }
            if cost == 0 {
                return Err(fail("a cost of 0 is not a request".into()));
            }
            let client = match index.get(&key) {
                Some(&c) => c,
                None => {
                    let c = u32::try_from(clients.len())
                        .map_err(|_| fail("more than 4294967295 distinct keys".into()))?;
                    clients.push(key.clone());
                    index.insert(key, c);
                    c
                }
            };
            raw.push((at, client, cost));
        }
        raw.sort_by_key(|r| r.0);
        let origin = raw.first().map_or(0, |r| r.0);
        Ok(Self {
            requests: raw
                .into_iter()
                .map(|(at, client, cost)| Request {
                    at: Duration::from_nanos(at - origin),
                    client,
                    cost,
                })
                .collect(),
            clients,
        })
    }
}

/// Seconds with up to nine decimals, as nanoseconds.
fn parse_decimal_secs(text: &str) -> Option<u64> {
    let text = text.trim();
    if text.split_once('.').is_some_and(|(_, f)| f.len() > 9) {
        return None;
    }
    ratekeeper_core::parse_decimal(text, 1_000_000_000)
}

type Fields = (String, String, u64);

fn csv_line(text: &str) -> Result<Fields, String> {
    let fields: Vec<&str> = text.split(',').map(str::trim).collect();
    let cost = match fields.len() {
        2 => 1,
        3 => fields[2]
            .parse()
            .map_err(|_| format!("cost {:?} is not a whole number", fields[2]))?,
        n => {
            return Err(format!("{n} fields: expected time,key or time,key,cost"));
        }
    };
    Ok((fields[0].to_owned(), fields[1].to_owned(), cost))
}

fn json_line(text: &str) -> Result<Fields, String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not a JSON object: {e}"))?;
    let time = match value.get("time") {
        // Written in full (`1700000000.25`) a number keeps every digit; in exponent form
        // (`1e-9`) it goes through a float, to the nanosecond.
        Some(serde_json::Value::Number(n)) => match n.to_string() {
            text if text.contains(['e', 'E']) => match n.as_f64() {
                Some(secs) if secs >= 0.0 => format!("{secs:.9}"),
                _ => return Err(format!("time {n} is not a number of seconds")),
            },
            text => text,
        },
        Some(serde_json::Value::String(s)) => s.clone(),
        _ => return Err("\"time\" (seconds) is missing or not a number".into()),
    };
    let key = match value.get("key") {
        Some(serde_json::Value::String(s)) => s.clone(),
        // Written in full (`1700000000.25`) a number keeps every digit; in exponent form
        // (`1e-9`) it goes through a float, to the nanosecond.
        Some(serde_json::Value::Number(n)) => match n.to_string() {
            text if text.contains(['e', 'E']) => match n.as_f64() {
                Some(secs) if secs >= 0.0 => format!("{secs:.9}"),
                _ => return Err(format!("time {n} is not a number of seconds")),
            },
            text => text,
        },
        _ => return Err("\"key\" is missing or not a string".into()),
    };
    let cost = match value.get("cost") {
        None | Some(serde_json::Value::Null) => 1,
        Some(v) => v
            .as_u64()
            .ok_or_else(|| format!("cost {v} is not a whole number"))?,
    };
    Ok((time, key, cost))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(g: &str, clients: u32, secs: u64) -> Vec<Request> {
        let limits = [Limit::per(10, ratekeeper_core::Unit::Minute)];
        g.parse::<Generator>()
            .unwrap()
            .requests(clients, Duration::from_secs(secs), &limits)
            .collect()
    }

    #[test]
    fn constant_traffic_is_evenly_spaced_and_shared_in_turn() {
        let r = all("constant:rate=4", 2, 2);
        assert_eq!(r.len(), 8);
        assert_eq!(r[1].at, Duration::from_millis(250));
        assert_eq!(
            r.iter().map(|r| r.client).collect::<Vec<_>>(),
            [0, 1, 0, 1, 0, 1, 0, 1]
        );
    }

    #[test]
    fn poisson_traffic_has_its_rate_and_its_seed() {
        let r = all("poisson:rate=100,seed=7", 10, 1_000);
        let n = r.len() as f64;
        // 100,000 expected; a Poisson count's deviation is 316.
        assert!((n - 100_000.0).abs() < 2_000.0, "{n}");
        assert!(r.windows(2).all(|w| w[0].at <= w[1].at));
        assert!(r.iter().all(|r| r.client < 10));
        assert_eq!(r[..50], all("poisson:rate=100,seed=7", 10, 1_000)[..50]);
        assert_ne!(r[..50], all("poisson:rate=100,seed=8", 10, 1_000)[..50]);
    }

    #[test]
    fn bursts_come_per_client() {
        let r = all("burst:size=3,every=30s", 2, 60);
        assert_eq!(r.len(), 12);
        assert!(r[..6].iter().all(|r| r.at == Duration::ZERO));
        assert_eq!(r[6].at, Duration::from_secs(30));
    }

    #[test]
    fn the_boundary_attack_straddles_each_boundary() {
        let r = all("boundary", 1, 180);
        // One opening request, then 10 just before and 10 at 60 s and at 120 s.
        assert_eq!(r.len(), 41);
        assert_eq!(r[1].at, Duration::from_millis(59_940));
        assert_eq!(r[11].at, Duration::from_secs(60));
        assert_eq!(r[40].at, Duration::from_secs(120));
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        for (spec, says) in [
            ("steady:rate=1", "unknown generator"),
            ("constant", "rate= is required"),
            ("constant:rate=0", "not a rate"),
            ("poisson:rate=5,speed=2", "not \"speed\""),
            ("burst:size=3", "every= is required"),
            ("burst:size=3,every=0s", "longer than nothing"),
            ("boundary:size", "not name=value"),
        ] {
            let e = spec.parse::<Generator>().unwrap_err().to_string();
            assert!(e.contains(says), "{spec}: {e}");
        }
    }

    #[test]
    fn traces_read_csv_and_json_lines_in_time_order() {
        let text = "time,key,cost\n2.5,alice\n# a comment\n1,bob,3\n{\"time\": 0.000000001, \"key\": \"alice\"}\n";
        let t = Trace::read("t.csv", text.as_bytes()).unwrap();
        assert_eq!(t.clients, ["alice", "bob"]);
        let got: Vec<_> = t
            .requests
            .iter()
            .map(|r| (r.at.as_nanos(), r.client, r.cost))
            .collect();
        assert_eq!(got, [(0, 0, 1), (999_999_999, 1, 3), (2_499_999_999, 0, 1)]);
    }

    #[test]
    fn a_bad_trace_line_is_named() {
        for (text, says) in [
            ("1,a\nx,b\n", "line 2: time \"x\""),
            ("1,a,0\n", "line 1: a cost of 0"),
            ("1\n", "line 1: 1 fields"),
            ("{\"key\": \"a\"}\n", "\"time\""),
            ("1.0000000001,a\n", "at most nanoseconds"),
        ] {
            let e = Trace::read("t", text.as_bytes()).unwrap_err().to_string();
            assert!(e.contains(says), "{text:?}: {e}");
        }
    }
}
