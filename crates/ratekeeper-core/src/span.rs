//! Lengths of time written by people: `90` (seconds), `1.5s`, `500ms`, `10m`, `2h`, `1d`.
//! One reader for the family: storage URI options and the command line take the same text.

use crate::Duration;

/// Each unit and its length in nanoseconds.
const UNITS: [(&str, u64); 6] = [
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("min", 60_000_000_000),
    ("h", 3_600_000_000_000),
    ("d", 86_400_000_000_000),
];

/// Reads a length of time: a number of seconds (decimals allowed, as Python `limits` takes
/// timeouts), or a number followed by `ms`, `s`, `m` (or `min`), `h` or `d`. Exact to the
/// nanosecond; `None` for anything else, or a length past `u64` nanoseconds.
///
/// ```
/// use ratekeeper_core::{Duration, parse_duration};
///
/// assert_eq!(parse_duration("0.25"), Some(Duration::from_millis(250)));
/// assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
/// assert_eq!(parse_duration("1d"), Some(Duration::from_secs(86_400)));
/// assert_eq!(parse_duration("ten minutes"), None);
/// assert_eq!(parse_duration("-1s"), None);
/// ```
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let scale = match unit.trim() {
        "" => 1_000_000_000,
        unit => UNITS.iter().find(|(name, _)| *name == unit)?.1,
    };
    parse_decimal(number, scale).map(Duration::from_nanos)
}

/// `number` (digits, at most one `.`) times `scale`, exactly, or `None` (digits past what
/// `scale` can hold are refused, not rounded).
pub fn parse_decimal(number: &str, scale: u64) -> Option<u64> {
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty()) || !digits(whole) || !digits(fraction) {
        return None;
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut total = whole.checked_mul(scale)?;
    let mut place = scale;
    for digit in fraction.bytes() {
        place /= 10;
        if place == 0 && digit != b'0' {
            return None;
        }
        total = total.checked_add(u64::from(digit - b'0') * place)?;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_unit_and_the_edges() {
        let ms = |n| Some(Duration::from_millis(n));
        assert_eq!(parse_duration("90"), ms(90_000));
        assert_eq!(parse_duration(" 2s "), ms(2_000));
        assert_eq!(parse_duration("10m"), parse_duration("10min"));
        assert_eq!(parse_duration("2h"), ms(7_200_000));
        assert_eq!(parse_duration(".5"), ms(500));
        assert_eq!(
            parse_duration("1.000000001"),
            Some(Duration::from_nanos(1_000_000_001))
        );
        for bad in [
            "",
            ".",
            "1.2.3",
            "5 parsecs",
            "1e3",
            "18446744073709551616",
            "99999999999d",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
        // A tenth of a nanosecond cannot be held: refused, not rounded away.
        assert_eq!(parse_decimal("0.0000000001", 1_000_000_000), None);
        assert_eq!(parse_decimal("1.50", 10), Some(15));
    }
}
