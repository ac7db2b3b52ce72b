//! Redis key names: `<prefix>:{<identity>}:<scopes>:<strategy><format>:<amount>/<window>`.
//!
//! The identity of a [`Key`] (`namespace:value`, e.g. `ip:203.0.113.7`) is the cluster hash tag,
//! so every counter of one client lives in one slot and a request's batch is one script call.
//! [`Key`] percent-encodes its parts (braces included) and hashes long ones, so client text can
//! never open, close or move the tag, and names stay bounded: the prefix (at most
//! [`MAX_PREFIX`] bytes) plus the scopes the application chose plus at most 129 bytes of
//! identity plus the limit.

use core::fmt::Write as _;

use ratekeeper_core::{Limit, StrategyKind};
use ratekeeper_storage::{Key, StorageError};

/// The longest key prefix accepted.
pub const MAX_PREFIX: usize = 64;

/// Checks a key prefix: 1 to [`MAX_PREFIX`] bytes of `A-Z a-z 0-9 . _ - :`, so that it can
/// neither carry a hash tag nor a glob character (clear and reset match on it).
pub(crate) fn check_prefix(prefix: &str) -> Result<(), StorageError> {
    let ok_byte = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':');
    if prefix.is_empty() || prefix.len() > MAX_PREFIX || !prefix.bytes().all(ok_byte) {
        return Err(StorageError::configuration(
            crate::error::BACKEND,
            format!(
                "redis key prefix {prefix:?}: use 1 to {MAX_PREFIX} characters of A-Z a-z 0-9 . _ - :"
            ),
        ));
    }
    Ok(())
}

/// The version of the values the script stores, part of every key name: a new format gets new
/// names, so that two versions of this crate sharing a server (a rolling upgrade) never read
/// each other's values. 2: binary doubles (`struct.pack`).
pub(crate) const FORMAT: u8 = 2;

/// The one-letter code of a strategy, in key names and in the script's arguments; `?` for a
/// strategy the script does not know, which [`crate::script::check`] refuses before any call.
pub(crate) const fn code(strategy: StrategyKind) -> &'static str {
    match strategy {
        StrategyKind::FixedWindow => "f",
        StrategyKind::MovingWindow => "m",
        StrategyKind::SlidingWindowCounter => "s",
        StrategyKind::Gcra => "g",
        _ => UNKNOWN,
    }
}

/// [`code`] of a strategy the script does not know.
pub(crate) const UNKNOWN: &str = "?";

/// The cluster slot of a key name: CRC16 (XMODEM) of its hash tag (the text between the first
/// `{` and the next `}`, when not empty) or else of the whole name, modulo 16384.
pub(crate) fn slot(name: &str) -> u16 {
    let bytes = name.as_bytes();
    let tagged = bytes.iter().position(|&b| b == b'{').and_then(|open| {
        let rest = &bytes[open + 1..];
        let close = rest.iter().position(|&b| b == b'}')?;
        (close > 0).then(|| &rest[..close])
    });
    crc16(tagged.unwrap_or(bytes)) % 16384
}

fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in bytes {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// `<prefix>:{<identity>}:`, the part of a name shared by every counter of `key` (scopes
/// excluded); clear matches `<this><scopes>:*`.
pub(crate) fn tagged(prefix: &str, key: &Key) -> String {
    let mut name = String::with_capacity(prefix.len() + key.identity().len() + 4);
    name.push_str(prefix);
    name.push_str(":{");
    name.push_str(key.identity());
    name.push_str("}:");
    name
}

/// The scopes of `key`: everything before its identity (empty, or ending with `/`).
pub(crate) fn scopes(key: &Key) -> &str {
    let text = key.as_str();
    &text[..text.len() - key.identity().len()]
}

/// The name of one counter: `key` under `limit` with `strategy`.
pub(crate) fn counter(prefix: &str, key: &Key, limit: &Limit, strategy: StrategyKind) -> String {
    let mut name = tagged(prefix, key);
    name.push_str(scopes(key));
    let _ = write!(
        name,
        ":{}{FORMAT}:{}/{}",
        code(strategy),
        limit.amount(),
        limit.window().as_secs()
    );
    name
}

/// Whether `name` has the shape of one of this store's counters ([`counter`] under `prefix`,
/// of any value format, or a moving window's running total, the same name and `#`): what
/// clearing may delete. Other keys under the same prefix (an
/// application's own, another store's under a longer prefix) never have it.
pub(crate) fn is_counter(prefix: &str, name: &[u8]) -> bool {
    let digits = |s: &[u8]| !s.is_empty() && s.iter().all(u8::is_ascii_digit);
    let Some(rest) = name
        .strip_prefix(prefix.as_bytes())
        .and_then(|r| r.strip_prefix(b":{"))
    else {
        return false;
    };
    let Some(close) = rest.iter().position(|&b| b == b'}') else {
        return false;
    };
    let (identity, rest) = (&rest[..close], &rest[close + 1..]);
    let Some(rest) = rest.strip_prefix(b":") else {
        return false;
    };
    let (rest, total) = match rest.strip_suffix(b"#") {
        Some(log) => (log, true),
        None => (rest, false),
    };
    // `<scopes>:<code><format>:<amount>/<window>`, the scopes empty or ending with `/`.
    let mut fields = rest.rsplitn(3, |&b| b == b':');
    let (Some(limit), Some(kind), Some(scopes)) = (fields.next(), fields.next(), fields.next())
    else {
        return false;
    };
    let limit_ok = limit
        .iter()
        .position(|&b| b == b'/')
        .is_some_and(|slash| digits(&limit[..slash]) && digits(&limit[slash + 1..]));
    let kind_ok = kind.split_first().is_some_and(|(code, format)| {
        (if total {
            *code == b'm'
        } else {
            b"fmsg".contains(code)
        }) && digits(format)
    });
    !identity.is_empty()
        && !identity.contains(&b'{')
        && limit_ok
        && kind_ok
        && (scopes.is_empty() || scopes.ends_with(b"/"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratekeeper_core::Unit;

    #[test]
    fn slots_are_redis_cluster_slots() {
        // Values from `CLUSTER KEYSLOT` and the CRC16 check value (0x31C3).
        assert_eq!(slot("foo"), 12182);
        assert_eq!(slot("rl:{foo}:GET/:f2:5/60"), 12182);
        assert_eq!(slot("123456789"), 0x31C3);
        assert_eq!(slot("{}foo"), slot("{}foo"));
        assert_ne!(slot("{}foo"), slot("foo"));
    }

    #[test]
    fn names_carry_the_identity_as_the_only_tag() {
        let key = Key::new("ip", "10.0.0.1").under(&["GET /login"]);
        let name = counter("rl", &key, &Limit::per(5, Unit::Minute), StrategyKind::Gcra);
        assert_eq!(name, "rl:{ip:10.0.0.1}:GET%20%2Flogin/:g2:5/60");
        let nasty = Key::new("user", &format!("}}{{x}}{}", "a".repeat(10_000)));
        let name = counter(
            "rl",
            &nasty,
            &Limit::per(1, Unit::Second),
            StrategyKind::FixedWindow,
        );
        assert_eq!(name.matches('{').count(), 1);
        assert_eq!(name.matches('}').count(), 1);
        assert!(name.len() < 100, "{name}");
    }

    #[test]
    fn only_counter_names_are_counters() {
        let key = Key::new("ip", "10.0.0.1").under(&["GET /login"]);
        for kind in StrategyKind::ALL {
            let name = counter("rl", &key, &Limit::per(5, Unit::Minute), *kind);
            assert!(is_counter("rl", name.as_bytes()), "{name}");
            assert!(!is_counter("r", name.as_bytes()), "{name}");
            let total = format!("{name}#");
            assert_eq!(
                is_counter("rl", total.as_bytes()),
                *kind == StrategyKind::MovingWindow,
                "{total}"
            );
        }
        let bare = counter(
            "rl",
            &Key::new("ip", "1"),
            &Limit::per(1, Unit::Day),
            StrategyKind::Gcra,
        );
        assert!(is_counter("rl", bare.as_bytes()), "{bare}");
        for other in [
            "rl:sessions:user42",
            "rl:app2:{ip:1}::f2:5/60",
            "rl:{ip:1}",
            "rl:{ip:1}::f2:5",
            "rl:{ip:1}::x2:5/60",
            "rl:{ip:1}::f2:5/6o",
            "rl:{ip:1}:GET:f2:5/60",
            "rl:{}::f2:5/60",
            "rl:{ip:1}:f2:5/60",
        ] {
            assert!(!is_counter("rl", other.as_bytes()), "{other}");
        }
    }

    #[test]
    fn prefixes_are_checked() {
        for good in ["rl", "app:ratelimit", "a.b-c_d"] {
            assert!(check_prefix(good).is_ok(), "{good}");
        }
        for bad in ["", "{x}", "a*", "with space", &"x".repeat(65)] {
            assert!(check_prefix(bad).is_err(), "{bad}");
        }
    }
}
