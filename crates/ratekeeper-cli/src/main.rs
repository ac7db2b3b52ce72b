//! `ratekeeper`: explain limit strings, simulate the strategies on your traffic, and inspect,
//! clear and benchmark live stores. `ratekeeper <command> --help` for each command.

use std::{io::Write, process::ExitCode};

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use ratekeeper_cli::{
    CliError, bench,
    error::parse_limit_string,
    explain, live, plot,
    simulate::{self, Simulation},
    span::{parse_span, show_span},
    traffic::{Generator, Request, Trace},
};
use ratekeeper_core::{Duration, Limit, StrategyKind};

#[derive(Parser, Debug)]
#[command(
    name = "ratekeeper",
    version,
    about = "Rate limits: explain them, simulate them on your traffic, inspect, clear and benchmark live stores"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The canonical form of each limit, its window, and per strategy the largest burst, the
    /// steady rate, the most it can admit in any window of its length, and its state per client.
    Explain {
        /// A limit string, e.g. "200 per day; 50 per hour".
        limits: String,
        /// An in-flight limit beside them: at most N requests held at once.
        #[arg(long, value_name = "N")]
        in_flight: Option<u64>,
        /// The in-flight lease, e.g. 60s, 2m.
        #[arg(long, default_value = "60s")]
        lease: String,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Runs traffic through the strategies on a simulated clock (a day takes seconds) and prints
    /// what each admitted, rejected, and the most it let one client have in any window.
    Simulate(SimulateArgs),
    /// Reads one client's counters in a shared store, charging nothing.
    Inspect(InspectArgs),
    /// Forgets one client's counters (every scope and route), or every counter, in a shared store.
    Clear(ClearArgs),
    /// Decisions per second and latency against a live store.
    Bench(BenchArgs),
}

#[derive(Args, Debug)]
#[command(group = clap::ArgGroup::new("source").required(true).args(["trace", "traffic"]))]
struct SimulateArgs {
    /// The limit string; a request must fit every limit.
    #[arg(long)]
    limits: String,
    /// A strategy (fixed-window, moving-window, sliding-window-counter, gcra), several separated
    /// by commas, or all.
    #[arg(long, default_value = "all")]
    strategy: String,
    /// A trace: one request per line, CSV `time,key[,cost]` or JSON `{"time": 1.5, "key": "a"}`;
    /// time in seconds.
    #[arg(long, value_name = "FILE")]
    trace: Option<String>,
    /// A generator: constant:rate=R, poisson:rate=R,seed=S (R: requests per second, all clients
    /// together), burst:size=N,every=D (per client), or boundary (bursts on both sides of each
    /// window boundary).
    #[arg(long, value_name = "SPEC")]
    traffic: Option<String>,
    /// Clients the generated traffic comes from.
    #[arg(long, default_value_t = 1)]
    keys: u32,
    /// How long the generated traffic lasts (default: ten of the longest window), e.g. 1d, 90s.
    #[arg(long)]
    duration: Option<String>,
    /// Writes admitted and rejected requests over time, one panel per strategy, to this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<String>,
    /// Time bins of the plot.
    #[arg(long, default_value_t = 200)]
    bins: usize,
    /// One JSON object per strategy, one per line.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct InspectArgs {
    /// The store: redis://, rediss://, redis+unix://, redis+cluster://, redis+sentinel://,
    /// valkey:// and the like, memcached://.
    #[arg(long)]
    storage: String,
    /// The limit string, as the limiter is configured.
    #[arg(long)]
    limits: String,
    /// The client as the limiter's key function names it: ip:203.0.113.7, apikey:abc, ...
    #[arg(long)]
    key: String,
    /// Where the limits are configured: default (per route), route, or application.
    #[arg(long, default_value = "default")]
    scope: String,
    /// The route (for default and route limits), as the application names it.
    #[arg(long, default_value = "/")]
    route: String,
    /// The request method.
    #[arg(long, default_value = "GET")]
    method: String,
    /// The limiter's strategy.
    #[arg(long, default_value = "fixed-window")]
    strategy: String,
    /// The limiter's key prefix (default LIMITER).
    #[arg(long)]
    prefix: Option<String>,
    /// The in-flight limit per client configured beside the limits (`concurrent(N)`).
    #[arg(long, value_name = "N")]
    concurrent: Option<u64>,
    /// The in-flight limit across clients configured beside them (`concurrent_shared(N)`).
    #[arg(long, value_name = "N")]
    concurrent_shared: Option<u64>,
    /// JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
#[command(group = clap::ArgGroup::new("what").required(true).args(["key", "all"]))]
struct ClearArgs {
    /// The store.
    #[arg(long)]
    storage: String,
    /// One client, as the limiter's key function names it (ip:203.0.113.7, apikey:abc).
    #[arg(long)]
    key: Option<String>,
    /// Every counter under the store's key prefix.
    #[arg(long)]
    all: bool,
}

#[derive(Args, Debug)]
struct BenchArgs {
    /// The store (memory:// measures the in-process store).
    #[arg(long)]
    storage: String,
    /// The strategy.
    #[arg(long, default_value = "fixed-window")]
    strategy: String,
    /// Concurrent tasks.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// How long to run, e.g. 10s.
    #[arg(long, default_value = "10s")]
    duration: String,
    /// The limits each decision checks (large: every decision is allowed).
    #[arg(long, default_value = "1000000000 per minute")]
    limits: String,
    /// Distinct clients, taken in turn.
    #[arg(long, default_value_t = 1000)]
    keys: u32,
    /// JSON instead of a table.
    #[arg(long)]
    json: bool,
}

fn strategies(text: &str) -> Result<Vec<StrategyKind>, CliError> {
    if text.trim() == "all" {
        return Ok(explain::known_strategies().collect());
    }
    text.split(',')
        .map(|name| {
            name.parse::<StrategyKind>()
                .ok()
                .filter(|&k| explain::known_strategies().any(|known| known == k))
                .ok_or_else(|| {
                    CliError::Usage(format!(
                        "strategy {:?}: use fixed-window, moving-window, sliding-window-counter, gcra or all",
                        name.trim()
                    ))
                })
        })
        .collect()
}

fn strategy(text: &str) -> Result<StrategyKind, CliError> {
    match strategies(text)?.as_slice() {
        [one] => Ok(*one),
        _ => Err(CliError::Usage(format!(
            "strategy {text:?}: name one strategy"
        ))),
    }
}

/// A progress bar on stderr (drawn only when stderr is a terminal).
fn progress(len: Option<u64>, template: &str) -> ProgressBar {
    let bar = match len {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::new_spinner(),
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}

fn print(text: &str) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| CliError::io("stdout", e))
}

fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Explain {
            limits,
            in_flight,
            lease,
            json,
        } => explain_command(&limits, in_flight, &lease, json),
        Command::Simulate(args) => simulate_command(args),
        Command::Inspect(args) => {
            let inspect = live::Inspect {
                storage: args.storage,
                limits: args.limits,
                key: args.key,
                scope: args.scope.parse()?,
                route: args.route,
                method: args.method,
                strategy: strategy(&args.strategy)?,
                prefix: args.prefix,
                concurrent: args.concurrent,
                concurrent_shared: args.concurrent_shared,
            };
            let (limits, now) = smol::block_on(live::inspect(&inspect))?;
            if args.json {
                print(&format!("{}\n", live::to_json(&limits, now)))
            } else {
                print(&format!(
                    "{} on {} {} ({} limits)\n{}",
                    inspect.key,
                    inspect.method,
                    inspect.route,
                    args.scope,
                    live::render(&limits, now)
                ))
            }
        }
        Command::Clear(args) => {
            let target = match args.key {
                Some(key) => live::ClearTarget::Key(key),
                None => live::ClearTarget::All,
            };
            smol::block_on(live::clear(&args.storage, &target))?;
            print(&match target {
                live::ClearTarget::Key(key) => {
                    format!("cleared every counter of {key}\n")
                }
                _ => "cleared every counter under the store's prefix\n".to_owned(),
            })
        }
        Command::Bench(args) => {
            let duration = parse_span(&args.duration)?;
            if args.keys == 0 || args.keys > 1 << 24 {
                return Err(CliError::Usage("--keys must be from 1 to 16777216".into()));
            }
            let config = bench::Bench {
                storage: args.storage,
                strategy: strategy(&args.strategy)?,
                concurrency: args.concurrency,
                duration: core::time::Duration::from_nanos(duration.as_nanos()),
                limits: args.limits,
                clients: args.keys,
            };
            let bar = progress(
                Some(duration.as_nanos() / 1_000_000),
                "{spinner} benchmarking [{bar:40}] {elapsed}/{duration}",
            );
            let report = bench::run(&config, |elapsed| {
                bar.set_position(elapsed.as_millis() as u64)
            });
            bar.finish_and_clear();
            let report = report?;
            if args.json {
                print(&format!("{}\n", bench::to_json(&config, &report)))
            } else {
                print(&bench::render(&config, &report))
            }
        }
    }
}

fn explain_command(
    limits: &str,
    in_flight: Option<u64>,
    lease: &str,
    json: bool,
) -> Result<(), CliError> {
    let parsed = parse_limit_string(limits)?;
    let lease = parse_span(lease)?;
    let in_flight = in_flight.map(|n| explain::InFlightFigures::new(n, lease));
    if json {
        let mut value = explain::to_json(&parsed);
        if let (Some(f), Some(list)) = (in_flight, value.as_array_mut()) {
            list.push(f.to_json());
        }
        return print(&format!("{value:#}\n"));
    }
    let slots = in_flight.map(|f| f.render()).unwrap_or_default();
    print(&format!("{}{slots}", explain::render(limits, &parsed)))
}

fn simulate_command(args: SimulateArgs) -> Result<(), CliError> {
    let limits = parse_limit_string(&args.limits)?;
    let strategies = strategies(&args.strategy)?;
    if args.bins == 0 || args.bins > 100_000 {
        return Err(CliError::Usage("--bins must be from 1 to 100000".into()));
    }
    let Traffic {
        requests,
        clients,
        duration,
        source,
    } = traffic(&args, &limits)?;
    let sim = Simulation {
        limits: limits.clone(),
        strategies,
        clients,
        duration,
        bins: args.bins,
    };
    let bar = progress(None, "{spinner} {human_pos} requests simulated ({per_sec})");
    let reports = sim.run(requests, |done| bar.set_position(done));
    bar.finish_and_clear();
    if let Some(path) = &args.plot {
        let title = format!(
            "{} | {source} | {clients} client(s) | {}",
            args.limits,
            show_span(duration)
        );
        plot::draw(path, &reports, duration, &title)?;
    }
    if args.json {
        let lines: String = reports
            .iter()
            .map(|r| format!("{}\n", simulate::to_json(r, clients, duration)))
            .collect();
        return print(&lines);
    }
    let mut out = render_simulation(
        &args.limits,
        &limits,
        &reports,
        (clients, duration, &source),
    );
    out.push_str(SIMULATE_NOTE);
    if let Some(path) = &args.plot {
        out.push_str(&format!("plot written to {path}\n"));
    }
    print(&out)
}

/// The requests `simulate` runs, from a trace or a traffic generator, with how many clients
/// send them, over how long, and a line saying where they come from.
struct Traffic {
    requests: Box<dyn Iterator<Item = Request>>,
    clients: u32,
    duration: Duration,
    source: String,
}

/// The traffic `simulate`'s arguments ask for (a generator's default duration is ten of the
/// longest window).
fn traffic(args: &SimulateArgs, limits: &[Limit]) -> Result<Traffic, CliError> {
    let longest = limits
        .iter()
        .map(|l| l.window())
        .max()
        .unwrap_or(Duration::from_secs(60));
    Ok(match (&args.trace, &args.traffic) {
        (Some(path), _) => {
            let file = std::fs::File::open(path).map_err(|e| CliError::io(path, e))?;
            let trace = Trace::read(path, std::io::BufReader::new(file))?;
            let last = trace.requests.last().map_or(Duration::ZERO, |r| r.at);
            let duration = match &args.duration {
                Some(d) => parse_span(d)?,
                // A bin past the last request, so that it is drawn.
                None => last.saturating_add(Duration::from_nanos(1)),
            };
            let clients = u32::try_from(trace.clients.len()).unwrap_or(u32::MAX);
            let end = duration;
            let requests = trace.requests.into_iter().take_while(move |r| r.at < end);
            Traffic {
                requests: Box::new(requests),
                clients,
                duration,
                source: format!("trace {path}"),
            }
        }
        (None, Some(spec)) => {
            let generator: Generator = spec.parse()?;
            if args.keys == 0 {
                return Err(CliError::Usage("--keys must be at least 1".into()));
            }
            let duration = match &args.duration {
                Some(d) => parse_span(d)?,
                None => longest.saturating_mul(10),
            };
            Traffic {
                requests: generator.requests(args.keys, duration, limits),
                clients: args.keys,
                duration,
                source: format!("traffic {spec}"),
            }
        }
        (None, None) => {
            return Err(CliError::Usage(
                "give --trace FILE or --traffic SPEC".into(),
            ));
        }
    })
}

/// `simulate`'s table: a row per strategy, and with several limits the most admitted within
/// each limit's window.
fn render_simulation(
    text: &str,
    limits: &[Limit],
    reports: &[simulate::Report],
    (clients, duration, source): (u32, Duration, &str),
) -> String {
    let first = &limits[0];
    let mut out = format!(
        "{} | {source} | {clients} client(s) | {}\n{:<24} {:>10} {:>10} {:>10} {:>18} {:>14}\n",
        text,
        show_span(duration),
        "strategy",
        "offered",
        "admitted",
        "rejected",
        format!("most in any {}", show_span(first.window())),
        "longest wait"
    );
    for r in reports {
        let wait = match r.longest_wait {
            None => "-".to_owned(),
            Some(None) => "never".to_owned(),
            Some(Some(d)) => show_span(d),
        };
        out.push_str(&format!(
            "{:<24} {:>10} {:>10} {:>10} {:>18} {:>14}\n",
            r.strategy.name(),
            r.offered,
            r.admitted,
            r.rejected,
            r.limits[0].max_in_any_window,
            wait
        ));
    }
    if limits.len() > 1 {
        out.push_str("most in any window, per limit:\n");
        for r in reports {
            let each: Vec<String> = r
                .limits
                .iter()
                .map(|l| {
                    format!(
                        "{} in any {}",
                        l.max_in_any_window,
                        show_span(l.limit.window())
                    )
                })
                .collect();
            out.push_str(&format!(
                "  {:<22} {}\n",
                r.strategy.name(),
                each.join(", ")
            ));
        }
    }
    out
}

/// What `simulate`'s columns mean, in `explain`'s terms.
const SIMULATE_NOTE: &str = "\n\"most in any\" is the most one client got within one window length \
placed anywhere\n(what `explain` gives as each strategy's worst case); \"longest wait\" is the \
longest Retry-After\ntold to a rejected request (\"never\": a cost above the limit, which no wait \
makes fit; \"-\": none rejected).\n";

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
