//! Storage keys: namespaced, escaped and bounded, the same on every backend.
//!
//! A key is a list of scope components followed by an identity (`namespace:value`, e.g.
//! `ip:203.0.113.7`). Every component is percent-encoded except for `A-Z a-z 0-9 . _ -`, so
//! the separators `/` and `:` (and Redis's hash-tag braces) never appear raw: client text cannot
//! forge another key, open or close a tag. A component longer than [`MAX_PART`] bytes once
//! encoded is replaced by `~` and 32 hex digits of its SHA-256 (`~` is never raw otherwise), so
//! keys stay bounded whatever the client sends.

use core::fmt::{self, Write as _};
use std::sync::Arc;

use sha2::{Digest, Sha256};

/// The longest encoded component kept verbatim; longer ones are hashed to 33 bytes.
pub const MAX_PART: usize = 64;

/// A storage key. Cheap to clone.
///
/// ```
/// use ratelimit_storage::Key;
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
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    text: Arc<str>,
    /// Byte offset where the identity starts.
    identity_at: usize,
}

impl Key {
    /// The key of one client identity: `namespace` (`ip`, `apikey`, `user`) and its value.
    pub fn new(namespace: &str, identity: &str) -> Self {
        let mut text = String::with_capacity(namespace.len() + identity.len() + 1);
        encode_part(&mut text, namespace);
        text.push(':');
        encode_part(&mut text, identity);
        Self {
            text: text.into(),
            identity_at: 0,
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
        let len = scopes.iter().map(|s| s.len() + 1).sum::<usize>() + self.text.len();
        let mut text = String::with_capacity(len);
        for scope in scopes {
            encode_part(&mut text, scope);
            text.push('/');
        }
        let identity_at = self.identity_at + text.len();
        text.push_str(&self.text);
        Self {
            text: text.into(),
            identity_at,
        }
    }

    /// The key without its scopes: the client identity alone (`ns:value`). Used where one
    /// counter per client spans every route, such as fallback limits.
    pub fn identity_key(&self) -> Self {
        if self.identity_at == 0 {
            return self.clone();
        }
        Self {
            text: self.identity().into(),
            identity_at: 0,
        }
    }

    /// The whole encoded key.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The encoded identity (`namespace:value`): what every key of one client shares, e.g. a
    /// Redis Cluster hash tag.
    pub fn identity(&self) -> &str {
        &self.text[self.identity_at..]
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

const fn is_raw(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')
}

/// Appends `part`, percent-encoded, or its hash when the encoding is longer than [`MAX_PART`].
fn encode_part(out: &mut String, part: &str) {
    let encoded_len: usize = part.bytes().map(|b| if is_raw(b) { 1 } else { 3 }).sum();
    if encoded_len > MAX_PART {
        let digest = Sha256::digest(part.as_bytes());
        out.push('~');
        for byte in &digest[..16] {
            let _ = write!(out, "{byte:02x}");
        }
        return;
    }
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in part.bytes() {
        if is_raw(b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
