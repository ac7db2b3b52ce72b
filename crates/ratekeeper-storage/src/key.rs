//! Storage keys: namespaced, escaped and bounded, the same on every backend.
//!
//! A key is a list of scope components followed by an identity (`namespace:value`, e.g.
//! `ip:203.0.113.7`). Every component is percent-encoded except for `A-Z a-z 0-9 . _ -`, so
//! the separators `/` and `:` (and Redis's hash-tag braces) never appear raw: client text cannot
//! forge another key, open or close a tag. A component longer than [`MAX_PART`] bytes once
//! encoded is replaced by `~` and 32 hex digits of its SHA-256 (`~` is never raw otherwise), so
//! keys stay bounded whatever the client sends.

use core::{
    cmp::Ordering,
    fmt::{self, Write as _},
    hash::{Hash, Hasher},
};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use smallvec::SmallVec;

/// The longest encoded component kept verbatim; longer ones are hashed to 33 bytes.
pub const MAX_PART: usize = 64;

/// A storage key. Cheap to clone: keys share their text (and the keys built together by
/// [`Key::under_each`] share one allocation).
///
/// ```
/// use ratekeeper_storage::Key;
///
/// let key = Key::new("ip", "203.0.113.7").scoped("GET /api/data");
/// assert_eq!(key.as_str(), "GET%20%2Fapi%2Fdata/ip:203.0.113.7");
/// assert_eq!(key.identity(), "ip:203.0.113.7");
///
/// // Client text cannot reach into the structure...
/// assert_eq!(Key::new("apikey", "a:b/{c}").as_str(), "apikey:a%3Ab%2F%7Bc%7D");
/// // ...nor make a key long.
/// assert_eq!(Key::new("apikey", &"x".repeat(10_000)).as_str().len(), "apikey:".len() + 33);
/// ```
#[derive(Clone)]
pub struct Key {
    /// Text shared with other keys; this key is `text[start..end]`.
    text: Arc<str>,
    start: usize,
    /// Byte offset in `text` where the identity starts.
    identity_at: usize,
    end: usize,
}

impl Key {
    /// The key of one client identity: `namespace` (`ip`, `apikey`, `user`) and its value.
    pub fn new(namespace: &str, identity: &str) -> Self {
        let mut text = Text::new();
        encode_part(&mut text, namespace);
        text.push(':');
        encode_part(&mut text, identity);
        Self::whole(text.share(), 0)
    }

    fn whole(text: Arc<str>, identity_at: usize) -> Self {
        Self {
            start: 0,
            identity_at,
            end: text.len(),
            text,
        }
    }

    /// This key under a scope (a route, a shared scope name, `meta`...): scopes nest, the
    /// outermost first.
    pub fn scoped(&self, scope: &str) -> Self {
        self.under(&[scope])
    }

    /// This key under several scopes at once, the outermost first: `key.under(&["a", "b"])` is
    /// `key.scoped("b").scoped("a")`, built in one allocation.
    pub fn under(&self, scopes: &[&str]) -> Self {
        match self.under_each(&[scopes]).next() {
            Some(key) => key,
            None => self.clone(),
        }
    }

    /// This key under each list of scopes, all built in one allocation (the keys share it):
    /// `key.under_each(&[&["a"], &["b", "c"]])` yields `key.under(&["a"])` and
    /// `key.under(&["b", "c"])`. What a request needs for its scopes costs one allocation.
    ///
    /// ```
    /// use ratekeeper_storage::Key;
    ///
    /// let ip = Key::new("ip", "10.0.0.1");
    /// let keys: Vec<Key> = ip.under_each(&[&["app"], &["route", "GET /a"]]).collect();
    /// assert_eq!(keys[0], ip.scoped("app"));
    /// assert_eq!(keys[1].as_str(), "route/GET%20%2Fa/ip:10.0.0.1");
    /// assert_eq!(keys[1].identity_key(), ip);
    /// ```
    pub fn under_each(&self, lists: &[&[&str]]) -> UnderEach {
        let lists = lists.iter().map(|scopes| ("", *scopes));
        Self::each_of(self.as_str(), self.identity_at - self.start, lists)
    }

    /// The keys of one client identity (`namespace` and its value, as in [`Key::new`]) under
    /// each list of scopes (an encoded [`ScopePath`], then scopes to encode), all in one
    /// allocation and without the identity's own.
    ///
    /// ```
    /// use ratekeeper_storage::{Key, ScopePath};
    ///
    /// let app = ScopePath::new(&["LIMITER", "app"]);
    /// let route = ScopePath::new(&["LIMITER", "route"]);
    /// let keys: Vec<Key> =
    ///     Key::each("ip", "10.0.0.1", &[(&app, &[]), (&route, &["GET /a"])]).collect();
    /// let ip = Key::new("ip", "10.0.0.1");
    /// assert_eq!(keys[0], ip.under(&["LIMITER", "app"]));
    /// assert_eq!(keys[1], ip.under(&["LIMITER", "route", "GET /a"]));
    /// ```
    pub fn each(namespace: &str, identity: &str, lists: &[(&ScopePath, &[&str])]) -> UnderEach {
        let mut text = Text::new();
        encode_part(&mut text, namespace);
        text.push(':');
        encode_part(&mut text, identity);
        let lists = lists.iter().map(|(path, scopes)| (path.as_str(), *scopes));
        Self::each_of(text.as_str(), 0, lists)
    }

    /// The keys of `key` (whose identity starts at `identity_at`) under each list: encoded
    /// scopes, then scopes to encode.
    fn each_of<'s>(
        key: &str,
        identity_at: usize,
        lists: impl ExactSizeIterator<Item = (&'s str, &'s [&'s str])>,
    ) -> UnderEach {
        let mut text = Text::new();
        let mut ranges = SmallVec::new();
        for (encoded, scopes) in lists {
            let start = text.len();
            text.push_str(encoded);
            for scope in scopes {
                encode_part(&mut text, scope);
                text.push('/');
            }
            let at = text.len() + identity_at;
            text.push_str(key);
            ranges.push((start, at, text.len()));
        }
        UnderEach {
            text: text.share(),
            ranges: ranges.into_iter(),
        }
    }

    /// The key without its scopes: the client identity alone (`ns:value`). Used where one
    /// counter per client spans every route, such as fallback limits. (It shares this key's
    /// text: no allocation.)
    pub fn identity_key(&self) -> Self {
        Self {
            text: Arc::clone(&self.text),
            start: self.identity_at,
            identity_at: self.identity_at,
            end: self.end,
        }
    }

    /// The whole encoded key.
    pub fn as_str(&self) -> &str {
        &self.text[self.start..self.end]
    }

    /// The encoded identity (`namespace:value`): what every key of one client shares, e.g. a
    /// Redis Cluster hash tag.
    pub fn identity(&self) -> &str {
        &self.text[self.identity_at..self.end]
    }

    /// What a key is compared by: its text, and where its identity starts.
    fn parts(&self) -> (&str, usize) {
        (self.as_str(), self.identity_at - self.start)
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}

impl Eq for Key {}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.parts().hash(state);
    }
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Key {
    fn cmp(&self, other: &Self) -> Ordering {
        self.parts().cmp(&other.parts())
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({:?})", self.as_str())
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Scopes encoded once (at start-up: a limiter's prefix and scope names), to go in front of
/// the keys [`Key::each`] builds per request, which then encodes only what varies.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ScopePath(Box<str>);

impl ScopePath {
    /// `scopes`, the outermost first, each encoded as in a key.
    pub fn new(scopes: &[&str]) -> Self {
        let mut text = Text::new();
        for scope in scopes {
            encode_part(&mut text, scope);
            text.push('/');
        }
        Self(text.as_str().into())
    }

    /// The encoded scopes, each followed by `/`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The keys of [`Key::under_each`] and [`Key::each`], in the order of their scope lists.
#[derive(Debug)]
pub struct UnderEach {
    text: Arc<str>,
    ranges: smallvec::IntoIter<[(usize, usize, usize); 8]>,
}

impl Iterator for UnderEach {
    type Item = Key;

    fn next(&mut self) -> Option<Key> {
        let (start, identity_at, end) = self.ranges.next()?;
        Some(Key {
            text: Arc::clone(&self.text),
            start,
            identity_at,
            end,
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.ranges.size_hint()
    }
}

impl ExactSizeIterator for UnderEach {}

/// Key text being written: on the stack while it fits (the keys of a request do), so that
/// a key costs one allocation, for its shared text.
struct Text {
    stack: heapless::String<1024>,
    heap: Option<String>,
}

impl Text {
    fn new() -> Self {
        Self {
            stack: heapless::String::new(),
            heap: None,
        }
    }

    fn push_str(&mut self, s: &str) {
        // A short string byte by byte: cheaper than the call a copy costs.
        if s.len() <= 4 && self.heap.is_none() && self.stack.len() + s.len() <= 1024 {
            for c in s.chars() {
                let _ = self.stack.push(c);
            }
            return;
        }
        if let Some(heap) = &mut self.heap {
            heap.push_str(s);
        } else if self.stack.push_str(s).is_err() {
            let mut heap = String::with_capacity(2 * (self.stack.len() + s.len()));
            heap.push_str(&self.stack);
            heap.push_str(s);
            self.heap = Some(heap);
        }
    }

    /// A byte `b` as `%XX`, a character at a time (the test below checks it against
    /// `percent-encoding`).
    fn push_escaped(&mut self, b: u8) {
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        self.push('%');
        self.push(char::from(HEX[usize::from(b >> 4)]));
        self.push(char::from(HEX[usize::from(b & 0xf)]));
    }

    /// One ASCII character (without the call a copy of a string costs).
    fn push(&mut self, c: char) {
        if self.heap.is_none() && self.stack.push(c).is_ok() {
            return;
        }
        self.push_str(c.encode_utf8(&mut [0; 4]));
    }

    fn as_str(&self) -> &str {
        self.heap.as_deref().unwrap_or(&self.stack)
    }

    fn len(&self) -> usize {
        self.as_str().len()
    }

    /// The text, in its one allocation.
    fn share(&self) -> Arc<str> {
        Arc::from(self.as_str())
    }
}

impl fmt::Write for Text {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.push_str(s);
        Ok(())
    }
}

/// The bytes kept as they are in a key, `A-Z a-z 0-9 . _ -`, as a table: the common case, a
/// part with nothing to escape, is one pass over it.
const RAW: [bool; 256] = {
    let mut raw = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        raw[b] = c.is_ascii_alphanumeric() || c == b'.' || c == b'_' || c == b'-';
        b += 1;
    }
    raw
};

const fn is_raw(b: u8) -> bool {
    RAW[b as usize]
}

/// Appends `part`, percent-encoded, or its hash when the encoding is longer than [`MAX_PART`].
fn encode_part(out: &mut Text, part: &str) {
    // Most parts (namespaces, scope names, addresses) are short and need no escape.
    if part.len() <= MAX_PART && part.bytes().all(is_raw) {
        out.push_str(part);
        return;
    }
    let encoded_len: usize = part.bytes().map(|b| if is_raw(b) { 1 } else { 3 }).sum();
    if encoded_len > MAX_PART {
        let digest = Sha256::digest(part.as_bytes());
        out.push('~');
        for byte in &digest[..16] {
            let _ = write!(out, "{byte:02x}");
        }
        return;
    }
    // Runs of raw bytes are copied as they are; each other byte becomes `%XX`. The loop is
    // ours rather than `percent-encoding`'s (`utf8_percent_encode`, or its `percent_encode_byte`
    // pushed as a string): either costs 30 to 90 more instructions per decision here, measured
    // with callgrind, on the hot path of every request. The tests check both agree.
    let bytes = part.as_bytes();
    let mut at = 0;
    while at < bytes.len() {
        let run_end = bytes[at..]
            .iter()
            .position(|&b| !is_raw(b))
            .map_or(bytes.len(), |n| at + n);
        // A non-empty run is ASCII, so both its ends are character boundaries (an empty one
        // may sit inside a character: `get` then gives nothing, as it should).
        out.push_str(part.get(at..run_end).unwrap_or_default());
        if let Some(&b) = bytes.get(run_end) {
            out.push_escaped(b);
        }
        at = run_end + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

    /// What a key escapes, as `percent-encoding` writes the set.
    const ESCAPED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'.').remove(b'_').remove(b'-');

    #[test]
    fn keys_escape_as_percent_encoding_does() {
        for b in 0..=127u8 {
            let text = char::from(b).to_string();
            let kept = utf8_percent_encode(&text, ESCAPED).to_string() == text;
            assert_eq!(kept, is_raw(b), "byte {b}");
        }
        assert!((128..=255u8).all(|b| !is_raw(b)));
        for b in 0..=255u8 {
            let mut ours = Text::new();
            ours.push_escaped(b);
            assert_eq!(ours.as_str(), percent_encoding::percent_encode_byte(b));
        }
        let part = "GET /a b/ü~{x}";
        let mut ours = Text::new();
        encode_part(&mut ours, part);
        assert_eq!(
            ours.as_str(),
            utf8_percent_encode(part, ESCAPED).to_string()
        );
    }

    #[test]
    fn keys_built_together_equal_keys_built_alone() {
        use core::hash::BuildHasher;
        let state = std::collections::hash_map::RandomState::new();
        let k = Key::new("ip", "10.0.0.1");
        let lists: [&[&str]; 3] = [&["LIMITER", "app"], &[], &["LIMITER", "route", "GET /x"]];
        let together: Vec<Key> = k.under_each(&lists).collect();
        assert_eq!(together.len(), 3);
        for (key, scopes) in together.iter().zip(lists) {
            let alone = k.under(scopes);
            assert_eq!(*key, alone);
            assert_eq!(key.as_str(), alone.as_str());
            assert_eq!(key.identity(), alone.identity());
            assert_eq!(key.identity_key(), k);
            assert_eq!(state.hash_one(key), state.hash_one(&alone));
        }
        // Scoping a key built together works on its own text only.
        assert_eq!(
            together[2].scoped("x"),
            k.under(&["x", "LIMITER", "route", "GET /x"])
        );
        // A key too long for the stack is built on the heap, unchanged.
        let many: Vec<String> = (0..40)
            .map(|i| format!("scope-{i:02}-{}", "s".repeat(40)))
            .collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let long = k.under(&many);
        assert!(long.as_str().len() > 1024);
        assert!(long.as_str().ends_with("/ip:10.0.0.1"));
        assert_eq!(long.identity_key(), k);
    }

    proptest::proptest! {
        #[test]
        fn encoding_escapes_every_byte_but_the_raw_ones(part in "\\PC{0,24}") {
            let mut expected = String::from("n:");
            for b in part.bytes() {
                if is_raw(b) {
                    expected.push(char::from(b));
                } else {
                    expected.push_str(&format!("%{b:02X}"));
                }
            }
            if expected.len() - 2 <= MAX_PART {
                let key = Key::new("n", &part);
                proptest::prop_assert_eq!(key.as_str(), expected);
            }
        }
    }

    #[test]
    fn identity_keys_drop_the_scopes() {
        let k = Key::new("ip", "10.0.0.1");
        let scoped = k.under(&["GET /a", "shared"]);
        assert_eq!(scoped.identity_key(), k);
        assert_eq!(k.identity_key(), k);
    }

    #[test]
    fn encoding_is_injective_on_tricky_parts() {
        let tricky = [
            "", ":", "/", "%", "%3A", "~", "a:b", "a/b", "{x}", "ip:1", "\0", "é", "~0",
        ];
        let mut seen = std::collections::HashSet::new();
        for ns in ["ip", "apikey", "a:b"] {
            for id in tricky {
                assert!(
                    seen.insert(Key::new(ns, id).as_str().to_owned()),
                    "{ns} {id}"
                );
            }
        }
        for k in &seen {
            assert!(!k.contains(['{', '}']), "{k}");
        }
    }

    #[test]
    fn scopes_nest_and_identity_is_kept() {
        let key = Key::new("ip", "::1").scoped("route").scoped("app/x");
        assert_eq!(key.as_str(), "app%2Fx/route/ip:%3A%3A1");
        assert_eq!(Key::new("ip", "::1").under(&["app/x", "route"]), key);
        assert_eq!(key.identity(), "ip:%3A%3A1");
    }

    #[test]
    fn long_parts_are_hashed_and_bounded() {
        let long = "k".repeat(MAX_PART + 1);
        let key = Key::new("apikey", &long);
        assert_eq!(key.identity().len(), "apikey:".len() + 33);
        assert!(key.identity().starts_with("apikey:~"));
        assert_ne!(key, Key::new("apikey", &"k".repeat(MAX_PART + 2)));
        // Exactly MAX_PART encoded bytes stay verbatim.
        assert_eq!(
            Key::new("a", &"k".repeat(MAX_PART)).identity().len(),
            2 + MAX_PART
        );
        // 22 non-raw bytes encode to 66 > 64: hashed.
        assert!(Key::new("a", &"/".repeat(22)).identity().starts_with("a:~"));
    }
}
