//! The header fields a decision carries, held without heap allocations: short values (numbers,
//! the `RateLimit` field) inline, long ones (the `RateLimit-Policy` list, rendered once per
//! route) shared.

use core::{fmt, ops::Deref};
use std::sync::Arc;

use smallvec::SmallVec;

/// Values up to this many bytes are held inline (numbers, and the `RateLimit` field of any
/// limit below a billion per window); a value is 48 bytes.
const INLINE: usize = 46;

/// A header value: text that is a valid HTTP field value (visible ASCII and spaces).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct FieldValue(Repr);

#[derive(Clone, PartialEq, Eq, Hash)]
enum Repr {
    Inline(heapless::String<INLINE, u8>),
    Shared(Arc<str>),
}

impl FieldValue {
    /// The value as text.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Inline(s) => s,
            Repr::Shared(s) => s,
        }
    }

    /// A value written by `write` (inline when it fits, else on the heap).
    pub(crate) fn write(write: impl Fn(&mut dyn fmt::Write) -> fmt::Result) -> Self {
        let mut inline = heapless::String::<INLINE, u8>::new();
        if write(&mut inline).is_ok() {
            return Self(Repr::Inline(inline));
        }
        let mut heap = String::new();
        let _ = write(&mut heap);
        Self(Repr::Shared(heap.into()))
    }

    /// A number, written inline.
    pub(crate) fn number(n: u64) -> Self {
        let mut inline = heapless::String::new();
        // 20 digits at most: they fit. (Pushed one by one: cheaper than a call to copy them.)
        for digit in itoa::Buffer::new().format(n).chars() {
            let _ = inline.push(digit);
        }
        Self(Repr::Inline(inline))
    }
}

impl From<Arc<str>> for FieldValue {
    fn from(s: Arc<str>) -> Self {
        Self(Repr::Shared(s))
    }
}

impl From<&str> for FieldValue {
    fn from(s: &str) -> Self {
        Self::write(|w| w.write_str(s))
    }
}

impl From<String> for FieldValue {
    fn from(s: String) -> Self {
        if s.len() <= INLINE {
            return Self::from(s.as_str());
        }
        Self(Repr::Shared(s.into()))
    }
}

impl Deref for FieldValue {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for FieldValue {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq<str> for FieldValue {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for FieldValue {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Debug for FieldValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for FieldValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One header: its name (as configured) and value.
pub type Header = (Arc<str>, FieldValue);

/// The headers of a decision, in the order they are set: held inline (no heap allocation) for
/// the six a decision can carry. Read it as a slice of `(name, value)`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RateLimitHeaders(SmallVec<[Header; 6]>);

impl RateLimitHeaders {
    pub(crate) fn push(&mut self, name: &Arc<str>, value: FieldValue) {
        self.0.push((Arc::clone(name), value));
    }

    /// The headers as a `Vec` (which allocates: read them in place where you can).
    pub fn into_vec(self) -> Vec<Header> {
        self.0.into_vec()
    }
}

impl Deref for RateLimitHeaders {
    type Target = [Header];

    fn deref(&self) -> &[Header] {
        &self.0
    }
}

impl fmt::Debug for RateLimitHeaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|(n, v)| (n, v)))
            .finish()
    }
}

impl From<Vec<Header>> for RateLimitHeaders {
    fn from(v: Vec<Header>) -> Self {
        Self(SmallVec::from_vec(v))
    }
}

impl<'a> IntoIterator for &'a RateLimitHeaders {
    type Item = &'a Header;
    type IntoIter = core::slice::Iter<'a, Header>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        for n in [0, 1, 9, 10, 99, 100, 1_700_000_000, u64::MAX - 1, u64::MAX] {
            assert_eq!(FieldValue::number(n), n.to_string().as_str());
        }
    }

    #[test]
    fn short_values_inline_long_ones_shared() {
        let n = FieldValue::number(u64::MAX);
        assert_eq!(n.as_str(), "18446744073709551615");
        assert!(matches!(n.0, Repr::Inline(_)));
        let long = "x".repeat(INLINE + 1);
        let v = FieldValue::write(|w| w.write_str(&long));
        assert_eq!(v.as_str(), long);
        assert!(matches!(v.0, Repr::Shared(_)));
        assert_eq!(FieldValue::from(long), v);
        assert_eq!(FieldValue::from("7"), FieldValue::number(7));
        assert_eq!(FieldValue::from("7".to_owned()), "7");
        assert_eq!(format!("{n}"), "18446744073709551615");
    }
}
