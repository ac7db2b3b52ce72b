//! A tour of the core: parse limit strings, then run the four strategies side by side on a
//! manual clock and print what each decides. No server, no storage, no waiting.
//!
//! Run with `cargo run --example core_tour`.

use ratekeeper::primitives::{
    BoundedMovingWindow, Clock, Duration, FixedWindow, Gcra, Limit, Limits, ManualClock,
    RetryAfter, SlidingWindow, Strategy, Timestamp,
};

fn main() {
    println!("== Limit strings ==");
    for input in [
        "200 per day; 50 per hour",
        "5/minute",
        "10 per 2 minutes | 1/second",
    ] {
        match input.parse::<Limits<8>>() {
            Ok(limits) => println!("{input:<30} -> {limits}"),
            Err(e) => println!("{input:<30} -> error: {e}"),
        }
    }
    for bad in ["2 per sec", "1 per 0 seconds", "10/minute;"] {
        let err = bad.parse::<Limits<8>>().expect_err("malformed on purpose");
        println!("{bad:<30} -> error: {err}");
    }

    println!("\n== \"5 per minute\", one request every 10 s, a burst of 3 at 30 s ==");
    let limit: Limit = "5 per minute".parse().expect("valid limit");
    // A minute-aligned start, so that the sliding window's buckets line up with the story.
    let clock = ManualClock::new(Timestamp::from_secs(1_700_000_040));
    let mut states: [(&str, Box<dyn Strategy>); 4] = [
        ("fixed-window", Box::new(FixedWindow::new())),
        ("moving-window", Box::new(BoundedMovingWindow::<16>::new())),
        ("sliding-window", Box::new(SlidingWindow::new())),
        ("gcra", Box::new(Gcra::new())),
    ];
    print!("{:>6}", "t (s)");
    for (name, _) in &states {
        print!(" | {name:^22}");
    }
    println!();
    let start = clock.now();
    let schedule = [0, 10, 20, 30, 30, 30, 40, 50, 60, 70, 80, 90];
    for at in schedule {
        clock.set(start.saturating_add(Duration::from_secs(at)));
        let now = clock.now();
        print!("{at:>6}");
        for (_, state) in &mut states {
            let cell = if state.hit(&limit, now, 1).is_allowed() {
                format!("ok, {} left", state.stats(&limit, now).remaining)
            } else {
                match state.retry_after(&limit, now, 1) {
                    RetryAfter::After(d) => format!("429, retry in {}s", d.as_secs_ceil()),
                    RetryAfter::Never => "429, never".to_owned(),
                }
            };
            print!(" | {cell:^22}");
        }
        println!();
    }
    println!("\nfixed and moving windows admit exactly 5 per window; gcra spaces them 12 s apart;");
    println!("the sliding window weighs the previous minute by how much of it is still covered.");
}
