//! The `ratekeeper` binary, run as a user runs it: exit codes, output and files. The commands
//! on live stores are in `live.rs`.

mod common;

use common::{json_lines, ratekeeper};

#[test]
fn explain_prints_each_strategy_and_exits_0() {
    let r = ratekeeper(&["explain", "10/minute; 1000 per day"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("10 per 1 minute"), "{}", r.stdout);
    assert!(r.stdout.contains("1000 per 1 day"), "{}", r.stdout);
    assert!(r.stdout.contains("one every 6 s"), "{}", r.stdout);
    let fixed = r
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("fixed-window"))
        .unwrap();
    assert_eq!(
        fixed.split_whitespace().collect::<Vec<_>>(),
        ["fixed-window", "10", "19", "16", "B"]
    );

    let r = ratekeeper(&["explain", "--json", "10 per minute"]);
    assert_eq!(r.code, 0);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let strategies = v[0]["strategies"].as_array().unwrap();
    let most: Vec<_> = strategies
        .iter()
        .map(|s| {
            (
                s["strategy"].as_str().unwrap(),
                s["max_in_any_window"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        most,
        [
            ("fixed-window", 19),
            ("moving-window", 10),
            ("sliding-window-counter", 20),
            ("gcra", 19)
        ]
    );
}

#[test]
fn explain_shows_an_in_flight_limit_beside_the_rates() {
    let r = ratekeeper(&[
        "explain",
        "30 per minute",
        "--in-flight",
        "2",
        "--lease",
        "90s",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("2 in flight"), "{}", r.stdout);
    assert!(
        r.stdout.contains("at most 2 requests held at once"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("lease        1.5 min"), "{}", r.stdout);
    let r = ratekeeper(&["explain", "--json", "30 per minute", "--in-flight", "2"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v[1]["in_flight"], 2);
    assert_eq!(v[1]["lease_secs"], 60.0);
}

#[test]
fn explain_shows_the_parsers_message_with_a_caret_and_exits_non_zero() {
    let r = ratekeeper(&["explain", "5 per minute; 10 per huor"]);
    assert_eq!(r.code, 1);
    assert_eq!(r.stdout, "");
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert!(
        lines[0].starts_with("error: malformed limit string: "),
        "{}",
        r.stderr
    );
    assert!(lines[0].contains("huor"), "{}", r.stderr);
    assert!(lines[0].contains("byte 21"), "{}", r.stderr);
    assert_eq!(lines[1], "  5 per minute; 10 per huor");
    // The caret under byte 21, the `h`.
    assert_eq!(lines[2], format!("  {}^", " ".repeat(21)));

    let r = ratekeeper(&["explain", ""]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("empty limit string"), "{}", r.stderr);
    // Usage errors are clap's: exit 2.
    assert_eq!(ratekeeper(&["explain"]).code, 2);
}

#[test]
fn simulate_boundary_shows_the_fixed_window_letting_through_twice() {
    let r = ratekeeper(&[
        "simulate",
        "--traffic",
        "boundary",
        "--limits",
        "10 per minute",
        "--strategy",
        "all",
        "--json",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let reports = json_lines(&r.stdout);
    assert_eq!(reports.len(), 4);
    let most = |name: &str| {
        let r = reports.iter().find(|r| r["strategy"] == name).unwrap();
        assert_eq!(
            r["offered"].as_u64().unwrap(),
            r["admitted"].as_u64().unwrap() + r["rejected"].as_u64().unwrap()
        );
        r["max_in_any_window"].as_u64().unwrap()
    };
    // Within one minute: 9 just before a window closes and 10 as the next opens (the window
    // opens at its first request, so one of the 20 is spent opening it).
    assert_eq!(most("fixed-window"), 19);
    assert!(most("moving-window") <= 10);
    assert!(most("sliding-window-counter") <= 20);
    assert!(most("gcra") <= 19);
}

#[test]
fn simulate_reads_a_trace_and_prints_a_table() {
    let dir = std::env::temp_dir().join(format!("ratekeeper-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let trace = dir.join("trace.csv");
    // Three clients, one of them sending 5 within a second and one of cost 3.
    std::fs::write(
        &trace,
        "time,key,cost\n0,a\n0.1,a\n0.2,a\n0.3,a\n0.4,a\n0.5,b,3\n{\"time\": 0.6, \"key\": \"c\"}\n",
    )
    .unwrap();
    let path = trace.to_str().unwrap();
    let r = ratekeeper(&[
        "simulate",
        "--trace",
        path,
        "--limits",
        "2 per second",
        "--strategy",
        "moving-window,gcra",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let rows: Vec<Vec<&str>> = r
        .stdout
        .lines()
        .skip(2)
        .take_while(|l| !l.is_empty())
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 2, "{}", r.stdout);
    assert!(
        r.stdout
            .contains("\"longest wait\" is the longest Retry-After")
    );
    for row in rows {
        // 7 offered; a: 2 of 5, b: its cost of 3 never fits, c: 1.
        assert_eq!(row[1..5], ["7", "3", "4", "2"], "{}", r.stdout);
        assert_eq!(row[5], "never", "{}", r.stdout);
    }
    let bad = dir.join("bad.csv");
    std::fs::write(&bad, "0,a\nsoon,b\n").unwrap();
    let r = ratekeeper(&[
        "simulate",
        "--trace",
        bad.to_str().unwrap(),
        "--limits",
        "1/second",
    ]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("bad.csv, line 2: time \"soon\""),
        "{}",
        r.stderr
    );
    let r = ratekeeper(&[
        "simulate",
        "--trace",
        "/nonexistent/trace.csv",
        "--limits",
        "1/second",
    ]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("/nonexistent/trace.csv"), "{}", r.stderr);
    let r = ratekeeper(&["simulate", "--traffic", "steady", "--limits", "1/second"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("unknown generator"), "{}", r.stderr);
    std::fs::remove_dir_all(&dir).ok();
}

/// Well-formed XML, as far as an SVG viewer needs: every element closed in order.
fn balanced(svg: &str) -> bool {
    let mut open: Vec<&str> = Vec::new();
    let mut rest = svg;
    while let Some(start) = rest.find('<') {
        let Some(len) = rest[start..].find('>') else {
            return false;
        };
        let tag = &rest[start + 1..start + len];
        rest = &rest[start + len + 1..];
        if tag.starts_with('?') || tag.starts_with('!') || tag.ends_with('/') {
            continue;
        }
        if let Some(name) = tag.strip_prefix('/') {
            if open.pop() != Some(name.trim()) {
                return false;
            }
        } else {
            open.push(tag.split_whitespace().next().unwrap_or(""));
        }
    }
    open.is_empty()
}

#[test]
fn simulate_writes_a_plot_with_a_panel_per_strategy() {
    let path = std::env::temp_dir().join(format!("ratekeeper-cli-plot-{}.svg", std::process::id()));
    let file = path.to_str().unwrap();
    let r = ratekeeper(&[
        "simulate",
        "--traffic",
        "poisson:rate=2,seed=3",
        "--keys",
        "5",
        "--duration",
        "10m",
        "--limits",
        "10 per minute",
        "--plot",
        file,
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains(&format!("plot written to {file}")),
        "{}",
        r.stdout
    );
    let svg = std::fs::read_to_string(&path).unwrap();
    assert!(svg.starts_with("<svg "), "{}", &svg[..100]);
    assert!(svg.contains("xmlns=\"http://www.w3.org/2000/svg\""));
    assert!(svg.trim_end().ends_with("</svg>"));
    assert!(balanced(&svg), "unbalanced SVG");
    for name in [
        "fixed-window:",
        "moving-window:",
        "sliding-window-counter:",
        "gcra:",
    ] {
        assert!(svg.contains(name), "no panel for {name}");
    }
    // Bars of both colours; the legend once, beside the title, above every bar (it covers
    // no data); where both series share a bin, the rejected bar sits on the admitted one.
    let rects: Vec<(String, u32, u32, u32)> = svg
        .split("<rect ")
        .skip(1)
        .filter_map(|r| {
            let r = format!(" {r}");
            let attr = |name: &str| {
                let from = r.find(&format!(" {name}=\"")).map(|i| i + name.len() + 3)?;
                let text = &r[from..];
                Some(&text[..text.find('"')?])
            };
            let fill = attr("fill")?;
            let num = |n: &str| attr(n).and_then(|v| v.parse().ok());
            Some((fill.to_owned(), num("x")?, num("y")?, num("height")?))
        })
        .collect();
    let bars = |fill: &'static str| rects.iter().filter(move |r| r.0 == fill);
    let (green, red) = ("#1B9E3E", "#D62728");
    for fill in [green, red] {
        let legend: Vec<_> = bars(fill).filter(|r| r.2 < 30).collect();
        assert_eq!(legend.len(), 1, "one legend key per series: {legend:?}");
        assert!(bars(fill).count() > 4, "no {fill} bars drawn");
    }
    assert_eq!(svg.matches("admitted\n</text>").count(), 1);
    assert_eq!(svg.matches("rejected\n</text>").count(), 1);
    let data = |fill| bars(fill).filter(|r| r.2 >= 30);
    let mut stacked = 0;
    for r in data(red) {
        for g in data(green).filter(|g| g.1 == r.1) {
            assert!(
                r.2 + r.3 <= g.2 || g.2 + g.3 <= r.2,
                "bars overlap at x={}: {r:?} {g:?}",
                r.1
            );
            stacked += usize::from(g.2.abs_diff(r.2 + r.3) <= 1);
        }
    }
    assert!(stacked > 0, "no rejected bar stacked on an admitted one");
    std::fs::remove_file(&path).ok();
    assert!(!balanced("<svg><g></svg>"));
}

#[test]
fn live_commands_refuse_what_they_cannot_do() {
    let r = ratekeeper(&[
        "inspect",
        "--storage",
        "memory://",
        "--limits",
        "1/second",
        "--key",
        "ip:1.2.3.4",
    ]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("memory:// lives inside one process"),
        "{}",
        r.stderr
    );
    let r = ratekeeper(&["clear", "--storage", "redis://127.0.0.1:6379"]);
    assert_eq!(r.code, 2, "--key or --all is required: {}", r.stderr);
    let r = ratekeeper(&[
        "clear",
        "--storage",
        "redis://127.0.0.1:6379",
        "--key",
        "nocolon",
    ]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("namespace:value"), "{}", r.stderr);
    // Nothing listens on port 1: an error, promptly, not a hang or a panic.
    let r = ratekeeper(&["clear", "--storage", "redis://127.0.0.1:1", "--all"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.starts_with("error: storage: "), "{}", r.stderr);
}

/// A store's error text reaches the terminal with its control characters escaped: a fake
/// memcached that answers every request with an escape sequence cannot retitle the terminal.
#[test]
fn a_stores_control_characters_are_escaped() {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_ok() {
                let mut stream = stream;
                let _ = stream.write_all(b"SERVER_ERROR \x1b]0;pwned\x07 \x1b[2J\r\n");
            }
        }
    });
    let r = ratekeeper(&[
        "clear",
        "--storage",
        &format!("memcached://127.0.0.1:{port}"),
        "--key",
        "ip:1.2.3.4",
    ]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        !r.stderr.chars().any(|c| c.is_control() && c != '\n'),
        "{:?}",
        r.stderr
    );
    assert!(r.stderr.contains("\\u{1b}]0;pwned\\u{7}"), "{:?}", r.stderr);
}
