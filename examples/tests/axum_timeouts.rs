//! The axum seed tour as served by `serve_axum`: a partial head, a partial body and an idle
//! keep-alive connection are each closed by the server once their deadline passes.

use core::time::Duration;
use std::{
    io::{Read, Write},
    net::TcpStream,
    time::Instant,
};

use ratekeeper_examples::{SeedConfig, seed_axum_app, serve_axum_on_free_port_with};

/// The deadlines the server runs with here.
const DEADLINE: Duration = Duration::from_millis(300);

/// Sends `bytes`, then reads until the server closes the connection: what it answered, and
/// how long that took. Fails if the connection is still open after 10 s.
fn until_closed(base: &str, bytes: &[u8]) -> (String, Duration) {
    let mut stream = TcpStream::connect(base.trim_start_matches("http://")).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = Instant::now();
    stream.write_all(bytes).unwrap();
    let mut answer = Vec::new();
    let mut scratch = [0u8; 4096];
    loop {
        match stream.read(&mut scratch) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&scratch[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("still open after {:?}: {e}", started.elapsed()),
        }
    }
    (
        String::from_utf8_lossy(&answer).into_owned(),
        started.elapsed(),
    )
}

#[test]
fn partial_heads_bodies_and_idle_keep_alives_are_closed() {
    let app = seed_axum_app(&SeedConfig::default()).unwrap();
    let base = serve_axum_on_free_port_with(app, DEADLINE, DEADLINE).unwrap();

    let (answer, took) = until_closed(&base, b"GET /health HTTP/1.1\r\nHost: x\r\n");
    assert!(!answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(took >= DEADLINE, "a partial head: closed after {took:?}");

    let head = b"POST /api/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789";
    let (answer, took) = until_closed(&base, head);
    assert!(!answer.contains("\"uploaded\""), "{answer}");
    assert!(took >= DEADLINE, "a partial body: closed after {took:?}");

    let (answer, took) = until_closed(&base, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        took >= DEADLINE,
        "an idle keep-alive: closed after {took:?}"
    );
}
