//! The errors of this crate. Being rate limited is not among them: that is an
//! [`Outcome`](crate::Outcome) with a [`RetryAfter`](crate::RetryAfter).

use core::fmt;

use crate::limit::Unit;

/// A limit that cannot be built from its parts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LimitError {
    /// `per 0 <unit>`: a window of no time at all.
    ZeroMultiples,
    /// The window (multiples x unit) does not fit in `u64` nanoseconds (about 584 years).
    WindowTooLong,
}

impl fmt::Display for LimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ZeroMultiples => f.write_str("a window of 0 units is not a window"),
            Self::WindowTooLong => {
                f.write_str("the window is longer than u64 nanoseconds allow (about 584 years)")
            }
        }
    }
}

impl core::error::Error for LimitError {}

/// What the limit grammar expected where it failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Expected {
    /// The amount: a whole number of ASCII digits.
    Amount,
    /// `per` or `/` after the amount.
    PerOrSlash,
    /// A number of units or a unit after `per` or `/`.
    MultiplesOrUnit,
    /// A unit after the number of units.
    Unit,
    /// A separator (`,` `;` `|`) or the end of the input after a complete limit.
    SeparatorOrEnd,
    /// The end of the input: a single [`Limit`](crate::Limit) was asked for.
    End,
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Amount => "an amount (a whole number)",
            Self::PerOrSlash => "\"per\" or \"/\"",
            Self::MultiplesOrUnit => "a number or a unit (second, minute, hour, day, month, year)",
            Self::Unit => "a unit (second, minute, hour, day, month, year)",
            Self::SeparatorOrEnd => "\",\", \";\", \"|\" or the end of the input",
            Self::End => "the end of the input (one limit; parse a list with `Limits`)",
        })
    }
}

/// What the parser found instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Found {
    /// The input ended.
    End,
    /// This character.
    Char(char),
}

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::End => f.write_str("the end of the input"),
            Self::Char(c) => write!(f, "{:?}", c),
        }
    }
}

/// The longest unknown unit word an error keeps; longer words are cut (on a char boundary).
pub const MAX_WORD: usize = 16;

/// A word of a limit string, kept in an error without allocating (at most [`MAX_WORD`] bytes).
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Word(heapless::String<MAX_WORD>);

impl Word {
    /// The first [`MAX_WORD`] bytes of `text` (cut at a character boundary).
    pub fn new(text: &str) -> Self {
        let mut kept = heapless::String::new();
        for c in text.chars() {
            if kept.push(c).is_err() {
                break;
            }
        }
        Self(kept)
    }

    /// The word.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl core::ops::Deref for Word {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Word {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Word {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A malformed limit string: what went wrong and at which byte offset of the input.
///
/// ```
/// use ratekeeper_core::{Limit, ParseError, Unit};
///
/// let err = "2 per sec".parse::<Limit>().unwrap_err();
/// assert_eq!(err.offset(), Some(6));
/// assert!(matches!(err, ParseError::UnknownUnit { suggestion: Some(Unit::Second), .. }));
/// assert_eq!(err.to_string(), "unknown unit \"sec\" at byte 6; did you mean \"second\"?");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseError {
    /// The input is empty or only whitespace.
    Empty,
    /// Something other than what the grammar allows here.
    Unexpected {
        /// Byte offset of the offending character (or the input length at its end).
        offset: usize,
        /// What would have been valid.
        expected: Expected,
        /// What was there.
        found: Found,
    },
    /// A word in the unit position that is not a unit.
    UnknownUnit {
        /// Byte offset of the word.
        offset: usize,
        /// The word as written (cut to [`MAX_WORD`] bytes); also [`ParseError::word`].
        word: Word,
        /// The unit it most likely meant (`sec` -> `second`), if any is close.
        suggestion: Option<Unit>,
    },
    /// The amount does not fit in a `u64`.
    AmountTooLarge {
        /// Byte offset of the amount.
        offset: usize,
    },
    /// `per 0 <unit>`.
    ZeroMultiples {
        /// Byte offset of the `0`.
        offset: usize,
    },
    /// The window does not fit in `u64` nanoseconds (about 584 years).
    WindowTooLong {
        /// Byte offset of the window (its number, or its unit when there is no number).
        offset: usize,
    },
    /// More limits than the fixed-capacity list holds.
    TooMany {
        /// Byte offset of the first limit that did not fit.
        offset: usize,
        /// The list's capacity.
        capacity: usize,
    },
}

impl ParseError {
    /// For [`ParseError::UnknownUnit`], the word that is not a unit, as written (cut to
    /// [`MAX_WORD`] bytes).
    ///
    /// ```
    /// let err = "2 per fortnight".parse::<ratekeeper_core::Limit>().unwrap_err();
    /// assert_eq!(err.word(), Some("fortnight"));
    /// ```
    pub fn word(&self) -> Option<&str> {
        match self {
            Self::UnknownUnit { word, .. } => Some(word.as_str()),
            _ => None,
        }
    }

    /// The byte offset the error points at, when it points anywhere.
    pub fn offset(&self) -> Option<usize> {
        match *self {
            Self::Empty => None,
            Self::Unexpected { offset, .. }
            | Self::UnknownUnit { offset, .. }
            | Self::AmountTooLarge { offset }
            | Self::ZeroMultiples { offset }
            | Self::WindowTooLong { offset }
            | Self::TooMany { offset, .. } => Some(offset),
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("empty limit string: expected e.g. \"10 per minute\""),
            Self::Unexpected {
                offset,
                expected,
                found,
            } => {
                write!(f, "expected {expected} at byte {offset}, found {found}")
            }
            Self::UnknownUnit {
                offset,
                word,
                suggestion,
            } => {
                write!(f, "unknown unit {:?} at byte {offset}", word.as_str())?;
                match suggestion {
                    Some(unit) => write!(f, "; did you mean \"{unit}\"?"),
                    None => f.write_str("; expected second, minute, hour, day, month or year"),
                }
            }
            Self::AmountTooLarge { offset } => {
                write!(f, "the amount at byte {offset} is larger than {}", u64::MAX)
            }
            Self::ZeroMultiples { offset } => {
                write!(f, "a window of 0 units at byte {offset}; use 1 or more")
            }
            Self::WindowTooLong { offset } => write!(
                f,
                "the window at byte {offset} is longer than u64 nanoseconds allow (about 584 years)"
            ),
            Self::TooMany { offset, capacity } => {
                write!(
                    f,
                    "more than {capacity} limits: the one at byte {offset} does not fit"
                )
            }
        }
    }
}

impl core::error::Error for ParseError {}

/// A limit too large for a fixed-capacity strategy state (a moving-window log).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CapacityError {
    /// The limit's amount.
    pub amount: u64,
    /// The entries the state can hold.
    pub capacity: usize,
}

impl fmt::Display for CapacityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "an amount of {} does not fit a moving-window log of {} entries",
            self.amount, self.capacity
        )
    }
}

impl core::error::Error for CapacityError {}

/// A strategy name that is not one of the four.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownStrategy;

impl fmt::Display for UnknownStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "unknown strategy: expected fixed-window, moving-window, sliding-window-counter or gcra",
        )
    }
}

impl core::error::Error for UnknownStrategy {}
