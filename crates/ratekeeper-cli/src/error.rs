//! What the command line can fail with, and how it says so.

use core::fmt;

use ratekeeper_core::ParseError;

/// A failure of one command: printed as `error: ...` on stderr, exit status 1.
#[derive(Debug)]
#[non_exhaustive]
pub enum CliError {
    /// A malformed limit string: shown with a caret under the byte the parser stopped at.
    Limits {
        /// The string as given.
        input: String,
        /// What the parser said.
        error: ParseError,
    },
    /// An option's value is not usable (a traffic spec, a length of time, a key).
    Usage(String),
    /// A line of a trace file is malformed.
    Trace {
        /// The file.
        path: String,
        /// Its line, from 1.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// A file could not be read or written.
    Io {
        /// The file.
        path: String,
        /// What the system said.
        error: std::io::Error,
    },
    /// The store could not be built or did not answer.
    Storage(String),
    /// The plot could not be drawn.
    Plot(String),
}

impl CliError {
    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Self::Usage(message.into())
    }

    /// A file (or stream) named `path` failed with `error`.
    pub fn io(path: &str, error: std::io::Error) -> Self {
        Self::Io {
            path: path.to_owned(),
            error,
        }
    }
}

/// Text from outside (a store's error reply) with its control characters escaped (`\u{1b}`),
/// so that a hostile or broken server cannot drive the terminal that prints it.
struct Escaped<'a>(&'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            if c.is_control() {
                write!(f, "{}", c.escape_unicode())?;
            } else {
                fmt::Write::write_char(f, c)?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Limits { input, error } => {
                writeln!(f, "malformed limit string: {error}")?;
                writeln!(f, "  {input}")?;
                // The caret goes under the character the byte offset falls in (the input
                // is shown as is, so count characters, not bytes).
                let offset = error.offset().unwrap_or(input.len()).min(input.len());
                let column = input
                    .char_indices()
                    .take_while(|(i, _)| *i < offset)
                    .count();
                write!(f, "  {}^", " ".repeat(column))
            }
            Self::Usage(message) => f.write_str(message),
            Self::Trace {
                path,
                line,
                message,
            } => write!(f, "{path}, line {line}: {message}"),
            Self::Io { path, error } => write!(f, "{path}: {error}"),
            Self::Storage(message) => write!(f, "storage: {}", Escaped(message)),
            Self::Plot(message) => write!(f, "plot: {message}"),
        }
    }
}

/// The message includes its cause's, so `source()` continues below it (each cause is
/// printed once in an error report).
impl core::error::Error for CliError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::Limits { error, .. } => error.source(),
            Self::Io { error, .. } => error.source(),
            _ => None,
        }
    }
}

/// Parses a limit string into its limits, or the error with its caret.
///
/// ```
/// use ratekeeper_cli::error::parse_limit_string;
///
/// assert_eq!(parse_limit_string("200 per day; 50/hour").unwrap().len(), 2);
/// let shown = parse_limit_string("10 per minuet").unwrap_err().to_string();
/// assert!(shown.ends_with("\n  10 per minuet\n         ^"), "{shown}");
/// ```
pub fn parse_limit_string(input: &str) -> Result<Vec<ratekeeper_core::Limit>, CliError> {
    ratekeeper_core::parse_limits(input)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| CliError::Limits {
            input: input.to_owned(),
            error,
        })
}
