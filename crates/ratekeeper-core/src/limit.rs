//! A rate limit: an amount per window.

use core::{fmt, str::FromStr};

use crate::{
    error::{LimitError, ParseError},
    parse,
    time::Duration,
};

/// The unit of a limit's window. A month is 30 days and a year 360 days, as in Python `limits`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Unit {
    /// One second.
    Second,
    /// 60 seconds.
    Minute,
    /// 3,600 seconds.
    Hour,
    /// 86,400 seconds.
    Day,
    /// 30 days.
    Month,
    /// 360 days.
    Year,
}

impl Unit {
    /// Every unit, shortest first.
    pub const ALL: [Self; 6] = [
        Self::Second,
        Self::Minute,
        Self::Hour,
        Self::Day,
        Self::Month,
        Self::Year,
    ];

    /// The unit's length in seconds.
    pub const fn seconds(self) -> u64 {
        match self {
            Self::Second => 1,
            Self::Minute => 60,
            Self::Hour => 3_600,
            Self::Day => 86_400,
            Self::Month => 30 * 86_400,
            Self::Year => 360 * 86_400,
        }
    }

    /// The singular lowercase name, as the grammar spells it.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Second => "second",
            Self::Minute => "minute",
            Self::Hour => "hour",
            Self::Day => "day",
            Self::Month => "month",
            Self::Year => "year",
        }
    }
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A rate limit: at most `amount` per `multiples` x `unit`.
///
/// The window length and the GCRA emission interval are computed once, at construction, so that
/// the strategies never divide on their hot path.
///
/// ```
/// use ratekeeper_core::{Duration, Limit, Unit};
///
/// let limit: Limit = "10 per 2 minutes".parse()?;
/// assert_eq!(limit.amount(), 10);
/// assert_eq!(limit.window(), Duration::from_secs(120));
/// assert_eq!(limit.to_string(), "10 per 2 minute");
/// assert_eq!(limit, Limit::new(10, 2, Unit::Minute)?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Limit {
    amount: u64,
    multiples: u64,
    unit: Unit,
    window: Duration,
    interval: Duration,
}

impl Limit {
    /// `amount` per `multiples` `unit`s. An amount of 0 is valid and rejects every hit.
    pub const fn new(amount: u64, multiples: u64, unit: Unit) -> Result<Self, LimitError> {
        if multiples == 0 {
            return Err(LimitError::ZeroMultiples);
        }
        let Some(secs) = multiples.checked_mul(unit.seconds()) else {
            return Err(LimitError::WindowTooLong);
        };
        let Some(window) = Duration::checked_from_secs(secs) else {
            return Err(LimitError::WindowTooLong);
        };
        let interval = if amount == 0 {
            Duration::ZERO
        } else {
            Duration::from_nanos(window.as_nanos().div_ceil(amount))
        };
        Ok(Self {
            amount,
            multiples,
            unit,
            window,
            interval,
        })
    }

    /// `amount` per one `unit`: `Limit::per(100, Unit::Minute)`.
    pub const fn per(amount: u64, unit: Unit) -> Self {
        match Self::new(amount, 1, unit) {
            Ok(limit) => limit,
            // One of any unit fits easily: a year is 3.1e16 ns of the 1.8e19 a u64 holds.
            Err(_) => Self {
                amount,
                multiples: 1,
                unit,
                window: Duration::ZERO,
                interval: Duration::ZERO,
            },
        }
    }

    /// How many hits (units of cost) the window admits.
    pub const fn amount(&self) -> u64 {
        self.amount
    }

    /// How many units make the window.
    pub const fn multiples(&self) -> u64 {
        self.multiples
    }

    /// The window's unit.
    pub const fn unit(&self) -> Unit {
        self.unit
    }

    /// The window's length: `multiples` x `unit`.
    pub const fn window(&self) -> Duration {
        self.window
    }

    /// The GCRA emission interval `ceil(window / amount)`: rounded up so that the limit is never
    /// exceeded. Zero when the amount is zero.
    pub const fn emission_interval(&self) -> Duration {
        self.interval
    }
}

impl fmt::Display for Limit {
    /// The canonical form, which parses back to the same limit: `10 per 2 minute`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} per {} {}", self.amount, self.multiples, self.unit)
    }
}

impl FromStr for Limit {
    type Err = ParseError;

    /// Parses exactly one limit; a list (`"1/second; 5/minute"`) is an error here, see
    /// [`Limits`](crate::Limits) for those.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse::parse_one(s)
    }
}

#[cfg(test)]
mod tests {
    use std::string::ToString;

    use super::*;

    #[test]
    fn windows_and_intervals() {
        let l = Limit::new(3, 2, Unit::Second).unwrap();
        assert_eq!(l.window().as_nanos(), 2_000_000_000);
        // 2e9 / 3 = 666_666_666.67, rounded up.
        assert_eq!(l.emission_interval().as_nanos(), 666_666_667);
        assert_eq!(
            Limit::per(0, Unit::Hour).emission_interval(),
            Duration::ZERO
        );
        assert_eq!(
            Limit::per(5, Unit::Year).window(),
            Duration::from_secs(31_104_000)
        );
        assert_eq!(
            Limit::per(5, Unit::Month).window(),
            Duration::from_secs(2_592_000)
        );
    }

    #[test]
    fn invalid_parts_are_errors() {
        assert_eq!(
            Limit::new(1, 0, Unit::Second),
            Err(LimitError::ZeroMultiples)
        );
        assert_eq!(
            Limit::new(1, 1000, Unit::Year),
            Err(LimitError::WindowTooLong)
        );
        assert_eq!(
            Limit::new(1, u64::MAX, Unit::Day),
            Err(LimitError::WindowTooLong)
        );
        assert!(Limit::new(u64::MAX, 584, Unit::Year).is_ok());
    }

    #[test]
    fn display_is_canonical() {
        assert_eq!(Limit::per(200, Unit::Day).to_string(), "200 per 1 day");
        assert_eq!(
            Limit::new(7, 3, Unit::Month).unwrap().to_string(),
            "7 per 3 month"
        );
    }
}
