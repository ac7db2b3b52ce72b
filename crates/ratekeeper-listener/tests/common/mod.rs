//! Helpers for the HTTP tests: a server on a free port served by `HttpListener`, and raw
//! request/response exchanges over TCP (so that malformed requests can be sent at all).
#![allow(dead_code, unreachable_pub)]

use core::{net::SocketAddr, time::Duration};

use async_std::{
    future::timeout,
    io::{ReadExt, WriteExt},
    net::TcpStream,
    task::{self, JoinHandle},
};
use ratekeeper_listener::{HttpListener, Stopper};
use tide::listener::Listener;

/// Bound on any single exchange, so that a server that never answers fails the test instead of
/// hanging it. Nothing waits for it to pass.
pub const NO_ANSWER: Duration = Duration::from_secs(20);

pub struct Server {
    pub addr: SocketAddr,
    pub stopper: Stopper,
    pub accepting: JoinHandle<std::io::Result<()>>,
}

pub async fn start(app: tide::Server<()>, listener: HttpListener<()>) -> Server {
    let stopper = listener.stopper();
    let mut listener = app.bind(listener).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let info = listener.info();
    assert_eq!(info[0].connection(), format!("http://{addr}"));
    let accepting = task::spawn(async move { listener.accept().await });
    Server {
        addr,
        stopper,
        accepting,
    }
}

/// One parsed response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Splits a byte stream of responses (each with a `content-length`) into replies.
pub fn parse(mut raw: &[u8]) -> Vec<Reply> {
    let mut replies = Vec::new();
    while !raw.is_empty() {
        let end = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("no end of head in {:?}", String::from_utf8_lossy(raw)));
        let head = core::str::from_utf8(&raw[..end]).unwrap();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap();
        assert!(status_line.starts_with("HTTP/1.1 "), "{status_line}");
        let status = status_line[9..12].parse().unwrap();
        let headers: Vec<(String, String)> = lines
            .map(|l| {
                let (n, v) = l.split_once(':').unwrap();
                (n.trim().to_owned(), v.trim().to_owned())
            })
            .collect();
        let len: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.parse().unwrap())
            .expect("every response here has a content-length");
        let body = String::from_utf8(raw[end + 4..end + 4 + len].to_vec()).unwrap();
        raw = &raw[end + 4 + len..];
        replies.push(Reply {
            status,
            headers,
            body,
        });
    }
    replies
}

/// Sends `request` on a new connection and reads until the server closes it.
pub async fn exchange(addr: SocketAddr, request: &[u8]) -> Vec<Reply> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut raw = Vec::new();
    timeout(NO_ANSWER, stream.read_to_end(&mut raw))
        .await
        .expect("the server closes the connection")
        .unwrap();
    parse(&raw)
}

pub fn get(path: &str, extra: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: test\r\n{extra}Connection: close\r\n\r\n").into_bytes()
}
