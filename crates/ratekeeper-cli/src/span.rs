//! Lengths of time on the command line (`90`, `1.5s`, `500ms`, `10m`, `2h`, `1d`) and in
//! output.

use ratekeeper_core::Duration;

use crate::error::CliError;

/// Parses a length of time: a number of seconds (decimals allowed), or a number followed by
/// `ms`, `s`, `m` (or `min`), `h` or `d`.
///
/// ```
/// use ratekeeper_cli::span::parse_span;
/// use ratekeeper_core::Duration;
///
/// assert_eq!(parse_span("1d").unwrap(), Duration::from_secs(86_400));
/// assert_eq!(parse_span("1.5s").unwrap(), Duration::from_millis(1_500));
/// assert_eq!(parse_span("90").unwrap(), Duration::from_secs(90));
/// assert!(parse_span("ten minutes").is_err());
/// ```
pub fn parse_span(text: &str) -> Result<Duration, CliError> {
    ratekeeper_core::parse_duration(text).ok_or_else(|| {
        CliError::usage(format!(
            "{text:?} is not a length of time: use a number of seconds, or a number and one of ms, s, m, h, d (\"90s\", \"1d\")"
        ))
    })
}

/// A length of time for people, in the largest unit it fills, with up to three decimals:
/// `1 min`, `86.4 s`, `60 ms`, `1.5 d`.
pub fn show_span(d: Duration) -> String {
    let nanos = d.as_nanos();
    let units: [(&str, u64); 6] = [
        ("d", 86_400_000_000_000),
        ("h", 3_600_000_000_000),
        ("min", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
        ("µs", 1_000),
    ];
    let (name, size) = units
        .into_iter()
        .find(|&(_, size)| nanos >= size)
        .unwrap_or(("ns", 1));
    let text = format!("{:.3}", nanos as f64 / size as f64);
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text} {name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_parse_exactly() {
        assert_eq!(parse_span("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_span("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_span("10min").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_span(" 2h ").unwrap(), Duration::from_secs(7_200));
        assert_eq!(parse_span("0.001").unwrap(), Duration::from_millis(1));
        assert_eq!(parse_span(".5s").unwrap(), Duration::from_millis(500));
        for bad in [
            "",
            "s",
            "1.2.3s",
            "1w",
            "-1s",
            "1e3",
            "99999999999999999999d",
        ] {
            assert!(parse_span(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn spans_show_in_the_largest_unit_they_fill() {
        assert_eq!(show_span(Duration::from_secs(60)), "1 min");
        assert_eq!(show_span(Duration::from_secs(90)), "1.5 min");
        assert_eq!(show_span(Duration::from_millis(1_500)), "1.5 s");
        assert_eq!(show_span(Duration::from_millis(86_400)), "1.44 min");
        assert_eq!(show_span(Duration::from_millis(59_940)), "59.94 s");
        assert_eq!(show_span(Duration::from_nanos(60_000_001)), "60 ms");
        assert_eq!(show_span(Duration::from_nanos(7)), "7 ns");
        assert_eq!(show_span(Duration::from_secs(86_400)), "1 d");
        assert_eq!(show_span(Duration::from_micros(20)), "20 µs");
    }
}
