//! Test helpers: stores on a manual clock against real servers.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use ratekeeper_core::ManualClock;
use ratekeeper_memcached::MemcachedStorage;

/// The instant the tests start at (the conformance suites' own).
pub const T0: ratekeeper_core::Timestamp = ratekeeper_core::Timestamp::from_secs(1_700_000_040);

/// A store on `url` with a manual clock at `T0` and its own prefix.
pub fn manual_store(url: &str, prefix: &str) -> (MemcachedStorage, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(T0));
    let store = MemcachedStorage::builder_from_uri(url)
        .unwrap()
        .prefix(prefix)
        .clock(clock.clone())
        // The manual clock stands still while real time passes: items must not expire.
        .ttl_grace(core::time::Duration::from_secs(3600))
        .build()
        .unwrap();
    (store, clock)
}

/// `text` with its `%XX` escapes decoded (metadump escapes key names).
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = (bytes[i] == b'%')
            .then(|| text.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Every key name the server on `port` holds (`lru_crawler metadump all`).
pub fn names_on(port: u16) -> Vec<String> {
    use std::io::{BufRead, BufReader, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.write_all(b"lru_crawler metadump all\r\n").unwrap();
    let mut names = Vec::new();
    for line in BufReader::new(stream).lines() {
        let line = line.unwrap();
        if line == "END" || line.starts_with("ERROR") {
            break;
        }
        if let Some(name) = line.strip_prefix("key=").and_then(|l| l.split(' ').next()) {
            names.push(percent_decoded(name));
        }
    }
    names
}
