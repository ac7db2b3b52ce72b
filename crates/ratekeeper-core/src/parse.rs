//! The limit-string grammar.
//!
//! ```text
//! list    = ws limit ws { sep ws limit ws }
//! limit   = amount ws ( "per" | "/" ) ws [ multiples ws ] unit
//! amount  = digit { digit }                     ; fits in u64
//! multiples = digit { digit }                   ; 1 or more, window fits in u64 nanoseconds
//! unit    = ( "second" | "minute" | "hour" | "day" | "month" | "year" ) [ "s" ]
//! sep     = "," | ";" | "|"
//! ws      = { " " | "\t" | "\n" | "\r" | "\x0b" | "\x0c" }
//! ```
//!
//! Letters are case-insensitive and digits are ASCII only. This is the grammar of Python
//! `limits` without its accidents: `per 0 second`, a stray `:` and numbers that overflow are
//! errors here. Parsing never allocates and never panics.

use core::{fmt, ops::Deref, str::FromStr};

use crate::{
    error::{Expected, Found, LimitError, MAX_WORD, ParseError, Word},
    limit::{Limit, Unit},
};

/// Parses a list of limits (`"200 per day; 50 per hour"`) lazily, in input order.
///
/// The iterator stops after the first error. Collect it into whatever container suits: a
/// `Vec` with `std`, or a fixed-capacity [`Limits`].
///
/// ```
/// use ratekeeper_core::parse_limits;
///
/// let mut limits = parse_limits("200 per day; 50 per hour");
/// assert_eq!(limits.next().unwrap()?.to_string(), "200 per 1 day");
/// assert_eq!(limits.next().unwrap()?.to_string(), "50 per 1 hour");
/// assert!(limits.next().is_none());
/// # Ok::<(), ratekeeper_core::ParseError>(())
/// ```
pub fn parse_limits(input: &str) -> LimitIter<'_> {
    LimitIter {
        cursor: Cursor { input, pos: 0 },
        state: State::First,
    }
}

pub(crate) fn parse_one(input: &str) -> Result<Limit, ParseError> {
    let mut cursor = Cursor { input, pos: 0 };
    cursor.skip_ws();
    if cursor.at_end() {
        return Err(ParseError::Empty);
    }
    let limit = cursor.limit()?;
    cursor.skip_ws();
    if cursor.at_end() {
        Ok(limit)
    } else {
        Err(cursor.unexpected(Expected::End))
    }
}

/// The iterator returned by [`parse_limits`].
#[derive(Clone, Debug)]
pub struct LimitIter<'a> {
    cursor: Cursor<'a>,
    state: State,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    First,
    AfterSeparator,
    Done,
}

impl LimitIter<'_> {
    /// The byte offset where the next limit starts (or the input ends).
    pub fn offset(&self) -> usize {
        let mut c = self.cursor.clone();
        c.skip_ws();
        c.pos
    }
}

impl Iterator for LimitIter<'_> {
    type Item = Result<Limit, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        let c = &mut self.cursor;
        match self.state {
            State::Done => return None,
            State::First => {
                c.skip_ws();
                if c.at_end() {
                    self.state = State::Done;
                    return Some(Err(ParseError::Empty));
                }
            }
            State::AfterSeparator => c.skip_ws(),
        }
        let result = c.limit().and_then(|limit| {
            c.skip_ws();
            match c.peek() {
                None => {
                    self.state = State::Done;
                    Ok(limit)
                }
                Some(b',' | b';' | b'|') => {
                    c.pos += 1;
                    self.state = State::AfterSeparator;
                    Ok(limit)
                }
                Some(_) => Err(c.unexpected(Expected::SeparatorOrEnd)),
            }
        });
        if result.is_err() {
            self.state = State::Done;
        }
        Some(result)
    }
}

impl core::iter::FusedIterator for LimitIter<'_> {}

/// A fixed-capacity list of limits, parsed from a string such as `"200 per day; 50 per hour"`.
///
/// ```
/// use ratekeeper_core::{Limits, ParseError};
///
/// let limits: Limits<4> = "10/second | 100/minute".parse()?;
/// assert_eq!(limits.len(), 2);
/// assert_eq!(limits[1].amount(), 100);
///
/// let err = "1/second; 2/minute; 3/hour".parse::<Limits<2>>().unwrap_err();
/// assert_eq!(err, ParseError::TooMany { offset: 20, capacity: 2 });
/// # Ok::<(), ParseError>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Limits<const N: usize>(heapless::Vec<Limit, N>);

impl<const N: usize> Limits<N> {
    /// An empty list.
    pub const fn new() -> Self {
        Self(heapless::Vec::new())
    }

    /// Appends a limit, or hands it back when the list is full.
    pub fn push(&mut self, limit: Limit) -> Result<(), Limit> {
        self.0.push(limit)
    }
}

impl<const N: usize> Deref for Limits<N> {
    type Target = [Limit];

    fn deref(&self) -> &[Limit] {
        &self.0
    }
}

impl<const N: usize> FromStr for Limits<N> {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = Self::new();
        let mut iter = parse_limits(s);
        loop {
            let offset = iter.offset();
            match iter.next() {
                None => return Ok(out),
                Some(Err(e)) => return Err(e),
                Some(Ok(limit)) => {
                    if out.push(limit).is_err() {
                        return Err(ParseError::TooMany {
                            offset,
                            capacity: N,
                        });
                    }
                }
            }
        }
    }
}

impl<const N: usize> fmt::Display for Limits<N> {
    /// The canonical form, limits joined by `"; "`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, limit) in self.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            fmt::Display::fmt(limit, f)?;
        }
        Ok(())
    }
}

#[derive(Clone, Debug)]
struct Cursor<'a> {
    input: &'a str,
    pos: usize,
}

impl Cursor<'_> {
    fn bytes(&self) -> &[u8] {
        self.input.as_bytes()
    }

    fn peek(&self) -> Option<u8> {
        self.bytes().get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.input.len()
    }

    /// Skips Unicode whitespace, as Python's `\s` does in `limits`' grammar: a non-breaking
    /// space pasted from a rich-text page separates words as a space does.
    fn skip_ws(&mut self) {
        while let Some(c) = self
            .input
            .get(self.pos..)
            .and_then(|rest| rest.chars().next())
        {
            if !c.is_whitespace() {
                break;
            }
            self.pos += c.len_utf8();
        }
    }

    fn found(&self) -> Found {
        match self
            .input
            .get(self.pos..)
            .and_then(|rest| rest.chars().next())
        {
            Some(c) => Found::Char(c),
            None => Found::End,
        }
    }

    fn unexpected(&self, expected: Expected) -> ParseError {
        ParseError::Unexpected {
            offset: self.pos,
            expected,
            found: self.found(),
        }
    }

    /// Consumes a run of ASCII digits. `Ok(None)` when there is none, `Err(())` on overflow.
    fn number(&mut self) -> Result<Option<u64>, ()> {
        let start = self.pos;
        let mut value: u64 = 0;
        let mut overflow = false;
        while let Some(b @ b'0'..=b'9') = self.peek() {
            match value
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(b - b'0')))
            {
                Some(v) => value = v,
                None => overflow = true,
            }
            self.pos += 1;
        }
        if overflow {
            Err(())
        } else if self.pos == start {
            Ok(None)
        } else {
            Ok(Some(value))
        }
    }

    fn limit(&mut self) -> Result<Limit, ParseError> {
        let amount_at = self.pos;
        let amount = match self.number() {
            Ok(Some(n)) => n,
            Ok(None) => return Err(self.unexpected(Expected::Amount)),
            Err(()) => return Err(ParseError::AmountTooLarge { offset: amount_at }),
        };
        self.skip_ws();
        let rest = &self.bytes()[self.pos..];
        if rest.first() == Some(&b'/') {
            self.pos += 1;
        } else if rest.len() >= 3 && rest[..3].eq_ignore_ascii_case(b"per") {
            self.pos += 3;
        } else {
            return Err(self.unexpected(Expected::PerOrSlash));
        }
        self.skip_ws();
        let window_at = self.pos;
        let multiples = match self.number() {
            Ok(Some(0)) => return Err(ParseError::ZeroMultiples { offset: window_at }),
            Ok(Some(n)) => Some(n),
            Ok(None) => None,
            Err(()) => return Err(ParseError::WindowTooLong { offset: window_at }),
        };
        if multiples.is_some() {
            self.skip_ws();
        }
        let unit = self.unit(if multiples.is_some() {
            Expected::Unit
        } else {
            Expected::MultiplesOrUnit
        })?;
        Limit::new(amount, multiples.unwrap_or(1), unit).map_err(|e| match e {
            LimitError::ZeroMultiples => ParseError::ZeroMultiples { offset: window_at },
            LimitError::WindowTooLong => ParseError::WindowTooLong { offset: window_at },
        })
    }

    fn unit(&mut self, expected: Expected) -> Result<Unit, ParseError> {
        let start = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii_alphabetic()) {
            self.pos += 1;
        }
        let word = &self.input[start..self.pos];
        if word.is_empty() {
            return Err(self.unexpected(expected));
        }
        if let Some(unit) = unit_named(word) {
            return Ok(unit);
        }
        Err(ParseError::UnknownUnit {
            offset: start,
            word: Word::new(word),
            suggestion: suggest(word),
        })
    }
}

/// The unit a word names exactly (case-insensitive, an optional plural `s`).
fn unit_named(word: &str) -> Option<Unit> {
    let singular = match word.len().checked_sub(1) {
        Some(last) if word.as_bytes()[last].eq_ignore_ascii_case(&b's') => &word[..last],
        _ => word,
    };
    Unit::ALL
        .into_iter()
        .find(|u| u.name().eq_ignore_ascii_case(word) || u.name().eq_ignore_ascii_case(singular))
}

/// A near-miss unit: a common abbreviation, a prefix, or a word within two edits of a unit.
fn suggest(word: &str) -> Option<Unit> {
    if word.len() > MAX_WORD {
        return None;
    }
    let mut lower = [0u8; MAX_WORD];
    for (d, s) in lower.iter_mut().zip(word.bytes()) {
        *d = s.to_ascii_lowercase();
    }
    let w = &lower[..word.len()];
    let abbreviation = match w {
        b"s" | b"sec" | b"secs" => Some(Unit::Second),
        b"min" | b"mins" => Some(Unit::Minute),
        b"h" | b"hr" | b"hrs" => Some(Unit::Hour),
        b"d" => Some(Unit::Day),
        b"mo" | b"mon" | b"mos" | b"mth" | b"mths" => Some(Unit::Month),
        b"y" | b"yr" | b"yrs" => Some(Unit::Year),
        _ => None,
    };
    if abbreviation.is_some() {
        return abbreviation;
    }
    // A prefix that names one unit only ("seco", "minu"; not "m").
    let mut prefixed = Unit::ALL
        .into_iter()
        .filter(|u| u.name().as_bytes().starts_with(w));
    if let (Some(unit), None) = (prefixed.next(), prefixed.next()) {
        return Some(unit);
    }
    Unit::ALL
        .into_iter()
        .map(|u| (edit_distance(w, u.name().as_bytes()), u))
        .filter(|&(d, _)| d <= 2)
        .min_by_key(|&(d, _)| d)
        .map(|(_, u)| u)
}

/// Levenshtein distance of two short byte strings (both at most [`MAX_WORD`] long).
fn edit_distance(a: &[u8], b: &[u8]) -> usize {
    let mut row = [0usize; MAX_WORD + 1];
    for (j, cell) in row.iter_mut().enumerate().take(b.len() + 1) {
        *cell = j;
    }
    for (i, &ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let above = row[j + 1];
            let substitute = diagonal + usize::from(ca != cb);
            row[j + 1] = substitute.min(above + 1).min(row[j] + 1);
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use std::string::ToString;

    use super::*;

    fn err(s: &str) -> ParseError {
        match s.parse::<Limits<8>>() {
            Err(e) => e,
            Ok(l) => panic!("{s:?} parsed as {l}"),
        }
    }

    /// As `limits` (Python's `\s`): non-breaking, em and ideographic spaces separate words.
    #[test]
    fn unicode_whitespace_separates_as_a_space_does() {
        for input in [
            "1\u{a0}per second",
            "1/second\u{2003}",
            "\u{3000}1/second",
            "1\u{2009}per\u{2009}1\u{2009}second",
            "1/second\u{a0};\u{a0}2/minute",
        ] {
            let limits: Limits<2> = input.parse().unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!(limits[0], Limit::per(1, Unit::Second), "{input:?}");
        }
        assert_eq!(err("\u{a0}\u{3000}"), ParseError::Empty);
        // Offsets stay byte offsets: `é` after a two-byte space is at byte 7.
        assert_eq!(err("1\u{a0}per é").offset(), Some(7));
    }

    #[test]
    fn errors_say_what_and_where() {
        assert_eq!(err(""), ParseError::Empty);
        assert_eq!(err("  "), ParseError::Empty);
        assert_eq!(
            err("1 every second"),
            ParseError::Unexpected {
                offset: 2,
                expected: Expected::PerOrSlash,
                found: Found::Char('e')
            }
        );
        assert_eq!(err("1/second;").offset(), Some(9));
        assert_eq!(err(";1/second").offset(), Some(0));
        assert_eq!(
            err("1 per 0 seconds"),
            ParseError::ZeroMultiples { offset: 6 }
        );
        assert_eq!(
            err("99999999999999999999/second"),
            ParseError::AmountTooLarge { offset: 0 }
        );
        assert_eq!(
            err("1 per 1000 years"),
            ParseError::WindowTooLong { offset: 6 }
        );
        assert_eq!(
            err("1/second:"),
            ParseError::Unexpected {
                offset: 8,
                expected: Expected::SeparatorOrEnd,
                found: Found::Char(':')
            }
        );
        assert_eq!(
            err("１/second"),
            ParseError::Unexpected {
                offset: 0,
                expected: Expected::Amount,
                found: Found::Char('１')
            }
        );
        assert_eq!(
            err("1 per"),
            ParseError::Unexpected {
                offset: 5,
                expected: Expected::MultiplesOrUnit,
                found: Found::End
            }
        );
        assert_eq!(
            err("1 / 2 / second"),
            ParseError::Unexpected {
                offset: 6,
                expected: Expected::Unit,
                found: Found::Char('/')
            }
        );
        assert_eq!(
            err("1 per 2 minutes 5/second").to_string(),
            "expected \",\", \";\", \"|\" or the end of the input at byte 16, found '5'"
        );
    }

    #[test]
    fn near_miss_units_get_suggestions() {
        for (input, unit) in [
            ("2 per sec", Unit::Second),
            ("2/secs", Unit::Second),
            ("2/min", Unit::Minute),
            ("2/hr", Unit::Hour),
            ("2/hrs", Unit::Hour),
            ("1 per yearl", Unit::Year),
            ("1/econd", Unit::Second),
            ("1/mont", Unit::Month),
            ("1/MINU", Unit::Minute),
        ] {
            match err(input) {
                ParseError::UnknownUnit { suggestion, .. } => {
                    assert_eq!(suggestion, Some(unit), "{input}")
                }
                other => panic!("{input}: {other:?}"),
            }
        }
        let e = err("1 per millenium");
        assert!(matches!(
            e,
            ParseError::UnknownUnit {
                suggestion: None,
                offset: 6,
                ..
            }
        ));
        assert_eq!(
            e.to_string(),
            "unknown unit \"millenium\" at byte 6; expected second, minute, hour, day, month or year"
        );
        let long = err("1 per abcdefghijklmnopqrstuvwxyz");
        assert!(matches!(long, ParseError::UnknownUnit { ref word, .. } if word.len() == MAX_WORD));
    }

    #[test]
    fn lists_parse_in_order() {
        let limits: Limits<4> = " 1/second ; 2/minute , 3/hour | 4/day ".parse().unwrap();
        assert_eq!(
            limits.to_string(),
            "1 per 1 second; 2 per 1 minute; 3 per 1 hour; 4 per 1 day"
        );
        let one: Limit = "10PER2 MINUTES".parse().unwrap();
        assert_eq!(one.to_string(), "10 per 2 minute");
        assert_eq!(
            "1/second; 2/minute".parse::<Limit>(),
            Err(ParseError::Unexpected {
                offset: 8,
                expected: Expected::End,
                found: Found::Char(';')
            })
        );
    }

    #[test]
    fn iterator_stops_after_an_error() {
        let mut it = parse_limits("1/second; x; 2/minute");
        assert!(it.next().unwrap().is_ok());
        assert!(it.next().unwrap().is_err());
        assert!(it.next().is_none());
    }

    #[test]
    fn edit_distance_is_levenshtein() {
        assert_eq!(edit_distance(b"kitten", b"sitting"), 3);
        assert_eq!(edit_distance(b"", b"day"), 3);
        assert_eq!(edit_distance(b"year", b"year"), 0);
    }
}
