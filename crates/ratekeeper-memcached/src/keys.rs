//! Item names, and which server holds each.
//!
//! memcached keys are at most 250 bytes of printable ASCII without spaces. A counter's name is
//! `<prefix>:c<generations>:<key>:<strategy><format>:<amount>/<window>`; when that is too long
//! or holds other bytes (it cannot today: keys are percent-encoded, but a name must never be
//! refused), everything after the generations is replaced by its SHA-256.
//!
//! Generations make `reset`, `clear_client` and `clear` possible on a store that cannot list
//! its keys: every counter's name carries the store's, its client's and its key's generation
//! (small counters under names of their own, read with the batch), and forgetting is one
//! `incr` of a generation: the old counters are never read again and expire by themselves.

use core::fmt::Write as _;

use ratekeeper_core::{Limit, StrategyKind};
use ratekeeper_storage::{Key, StorageError};
use sha2::{Digest, Sha256};
use siphasher::sip::SipHasher13;

use crate::state::FORMAT;

/// memcached's longest key.
pub(crate) const MAX_KEY: usize = 250;
/// The longest prefix.
pub const MAX_PREFIX: usize = 64;

pub(crate) fn check_prefix(prefix: &str) -> Result<(), StorageError> {
    let ok_byte = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':');
    if prefix.is_empty() || prefix.len() > MAX_PREFIX || !prefix.bytes().all(ok_byte) {
        return Err(StorageError::configuration(
            "memcached",
            format!(
                "memcached key prefix {prefix:?}: use 1 to {MAX_PREFIX} characters of A-Z a-z 0-9 . _ - :"
            ),
        ));
    }
    Ok(())
}

fn digest(text: &str) -> String {
    let hash = Sha256::digest(text.as_bytes());
    let mut out = String::with_capacity(64);
    for b in hash {
        let _ = write!(out, "{b:02x}");
    }
    out
}

fn usable(name: &str) -> bool {
    name.len() <= MAX_KEY && name.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

const fn code(strategy: StrategyKind) -> char {
    match strategy {
        StrategyKind::FixedWindow => 'f',
        StrategyKind::MovingWindow => 'm',
        StrategyKind::SlidingWindowCounter => 's',
        StrategyKind::Gcra => 'g',
        // Never stored: `State::fresh` refuses the strategy first.
        _ => '?',
    }
}

/// The store's generation.
pub(crate) fn store_generation(prefix: &str) -> String {
    format!("{prefix}:g")
}

/// A client's generation.
pub(crate) fn client_generation(prefix: &str, key: &Key) -> String {
    format!("{prefix}:gc:{}", digest(key.identity()))
}

/// A key's generation.
pub(crate) fn key_generation(prefix: &str, key: &Key) -> String {
    format!("{prefix}:gk:{}", digest(key.as_str()))
}

/// A counter's name.
pub(crate) fn counter(
    prefix: &str,
    generations: [u64; 3],
    key: &Key,
    limit: &Limit,
    strategy: StrategyKind,
) -> String {
    let [store, client, own] = generations;
    let head = format!("{prefix}:c{store}.{client}.{own}:");
    let tail = format!(
        "{}:{}{FORMAT}:{}/{}",
        key.as_str(),
        code(strategy),
        limit.amount(),
        limit.window().as_secs()
    );
    let name = format!("{head}{tail}");
    if usable(&name) {
        name
    } else {
        format!("{head}h{}", digest(&tail))
    }
}

/// The server (of `servers`) that holds `name`: rendezvous hashing, so that adding or
/// removing a server moves only the keys it gains or held.
pub(crate) fn server_for(name: &str, servers: &[String]) -> usize {
    use core::hash::Hasher;
    (0..servers.len())
        .max_by_key(|&i| {
            let mut h = SipHasher13::new_with_keys(0x7261_7465_6c69_6d69, 0x6d65_6d63_6163_6865);
            h.write(servers[i].as_bytes());
            h.write_u8(0xff);
            h.write(name.as_bytes());
            (h.finish(), i)
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use ratekeeper_core::Unit;

    use super::*;

    #[test]
    fn every_name_is_a_memcached_key() {
        let limit = Limit::per(5, Unit::Minute);
        let short = counter(
            "rl",
            [0, 1, 2],
            &Key::new("ip", "10.0.0.1").under(&["GET /login"]),
            &limit,
            StrategyKind::Gcra,
        );
        assert_eq!(short, "rl:c0.1.2:GET%20%2Flogin/ip:10.0.0.1:g1:5/60");
        let nasty = Key::new("user", &format!("a b\r\n{}", "é".repeat(500)))
            .under(&["x".repeat(300).as_str()]);
        for &kind in StrategyKind::ALL {
            let name = counter(&"p".repeat(MAX_PREFIX), [u64::MAX; 3], &nasty, &limit, kind);
            assert!(usable(&name), "{name}");
        }
        for name in [
            client_generation("rl", &nasty),
            key_generation("rl", &nasty),
            store_generation("rl"),
        ] {
            assert!(usable(&name), "{name}");
        }
    }

    #[test]
    fn names_spread_over_servers_and_move_little() {
        let three: Vec<String> = ["a:1", "b:2", "c:3"].map(String::from).to_vec();
        let two = three[..2].to_vec();
        let mut counts = [0; 3];
        let mut moved = 0;
        for i in 0..3000 {
            let name = format!("k{i}");
            let s = server_for(&name, &three);
            counts[s] += 1;
            if s < 2 && server_for(&name, &two) != s {
                moved += 1;
            }
        }
        assert!(counts.iter().all(|&c| c > 800), "{counts:?}");
        assert_eq!(moved, 0, "only the removed server's keys move");
    }
}
