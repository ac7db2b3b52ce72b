//! `HttpListener` over raw sockets: malformed requests answered, keep-alive and pipelining,
//! the peer address, graceful stop.

mod common;

use core::time::Duration;

use async_std::{
    future::timeout,
    io::{ReadExt, WriteExt},
    net::TcpStream,
    task,
};
use common::{NO_ANSWER, exchange, get, parse, start};
use ratekeeper_listener::HttpListener;

fn hello_app() -> tide::Server<()> {
    let mut app = tide::new();
    app.at("/").get(|_| async { Ok("hello") });
    app.at("/peer").get(|req: tide::Request<()>| async move {
        Ok(req.peer_addr().unwrap_or("none").to_owned())
    });
    app
}

#[test]
fn malformed_requests_get_a_400_and_the_server_keeps_serving() {
    task::block_on(async {
        let server = start(hello_app(), HttpListener::new("127.0.0.1:0")).await;
        let many_headers: String = (0..129).map(|i| format!("X-H{i}: v\r\n")).collect();
        let huge = format!("X-Big: {}\r\n", "a".repeat(9000));
        let cases: [(&str, Vec<u8>, &str); 5] = [
            (
                "non-ASCII header value",
                get("/", "X-API-Key: caf\u{e9}\r\n"),
                "outside ASCII",
            ),
            (
                "unknown method",
                b"BREW / HTTP/1.1\r\nHost: test\r\n\r\n".to_vec(),
                "unknown request method",
            ),
            ("oversized head", get("/", &huge), "larger than 8 KiB"),
            ("too many headers", get("/", &many_headers), "more than 128"),
            (
                "Content-Length with Transfer-Encoding",
                b"POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                    .to_vec(),
                "Content-Length and Transfer-Encoding",
            ),
        ];
        for (what, request, message) in cases {
            let replies = exchange(server.addr, &request).await;
            assert_eq!(
                replies.len(),
                1,
                "{what}: one answer, then the connection closed"
            );
            let reply = &replies[0];
            assert_eq!(reply.status, 400, "{what}: {reply:?}");
            assert_eq!(reply.header("connection"), Some("close"), "{what}");
            assert_eq!(
                reply.header("content-type"),
                Some("application/json"),
                "{what}"
            );
            let body: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
            assert_eq!(body["error"], "Bad Request", "{what}");
            let text = body["message"].as_str().unwrap();
            assert!(text.contains(message), "{what}: {text:?}");

            // A normal request right after, on a new connection, gets its normal answer.
            let replies = exchange(server.addr, &get("/", "")).await;
            assert_eq!(
                (replies[0].status, replies[0].body.as_str()),
                (200, "hello"),
                "{what}"
            );
        }
    });
}

#[test]
fn other_undecodable_heads_are_answered_too() {
    task::block_on(async {
        let server = start(hello_app(), HttpListener::new("127.0.0.1:0")).await;
        for (request, status) in [
            (&b"GET / HTTP/1.0\r\nHost: test\r\n\r\n"[..], 505),
            (b"GET / HTTP/1.1\r\n\r\n", 400),
            (b"GET nowhere HTTP/1.1\r\nHost: test\r\n\r\n", 400),
            (
                b"POST / HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: gzip\r\n\r\n",
                400,
            ),
            (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400),
        ] {
            let replies = exchange(server.addr, request).await;
            let what = String::from_utf8_lossy(request);
            assert_eq!(replies.len(), 1, "{what}");
            assert_eq!(replies[0].status, status, "{what}: {:?}", replies[0]);
            assert!(replies[0].body.starts_with("{\"error\": "), "{what}");
        }
    });
}

/// A head ended by bare LFs is refused, not read as one with the request behind it (which would
/// then be lost without an answer).
#[test]
fn a_head_ended_by_bare_lf_is_refused_not_merged_with_the_next() {
    task::block_on(async {
        let server = start(hello_app(), HttpListener::new("127.0.0.1:0")).await;
        let wire = b"GET / HTTP/1.1\nHost: x\n\nGET / HTTP/1.1\r\nHost: x\r\n\r\n";
        let replies = exchange(server.addr, wire).await;
        assert_eq!(replies.len(), 1, "{replies:?}");
        assert_eq!(replies[0].status, 400);
        assert_eq!(replies[0].header("connection"), Some("close"));
        assert!(replies[0].body.contains("bare LF"), "{:?}", replies[0].body);
        // Bare LFs inside a head that ends properly are one request, answered.
        let replies = exchange(
            server.addr,
            b"GET / HTTP/1.1\nHost: x\nConnection: close\r\n\r\n",
        )
        .await;
        assert_eq!(
            (replies[0].status, replies[0].body.as_str()),
            (200, "hello")
        );
    });
}

#[test]
fn keep_alive_and_pipelined_requests_are_all_answered() {
    task::block_on(async {
        let server = start(hello_app(), HttpListener::new("127.0.0.1:0")).await;
        let mut pipelined = b"GET / HTTP/1.1\r\nHost: test\r\n\r\n".repeat(3);
        pipelined.extend(get("/", ""));
        let replies = exchange(server.addr, &pipelined).await;
        assert_eq!(replies.len(), 4, "{replies:?}");
        assert!(replies.iter().all(|r| r.status == 200 && r.body == "hello"));

        // A request after a good one on the same connection may still be refused alone.
        let mut mixed = b"GET / HTTP/1.1\r\nHost: test\r\n\r\n".to_vec();
        mixed.extend(b"BREW / HTTP/1.1\r\nHost: test\r\n\r\n");
        let replies = exchange(server.addr, &mixed).await;
        let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
        assert_eq!(statuses, [200, 400]);
    });
}

#[test]
fn the_peer_address_reaches_the_app() {
    task::block_on(async {
        let mut stream = TcpStream::connect({
            let server = start(hello_app(), HttpListener::new("127.0.0.1:0")).await;
            server.addr
        })
        .await
        .unwrap();
        stream.write_all(&get("/peer", "")).await.unwrap();
        let mut raw = Vec::new();
        timeout(NO_ANSWER, stream.read_to_end(&mut raw))
            .await
            .unwrap()
            .unwrap();
        let replies = parse(&raw);
        assert_eq!(replies[0].body, stream.local_addr().unwrap().to_string());
    });
}

#[test]
fn a_slow_head_is_dropped_after_the_header_timeout() {
    task::block_on(async {
        let listener = HttpListener::new("127.0.0.1:0").header_timeout(Duration::from_millis(50));
        let server = start(hello_app(), listener).await;
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: te")
            .await
            .unwrap();
        let mut raw = Vec::new();
        timeout(NO_ANSWER, stream.read_to_end(&mut raw))
            .await
            .expect("the server closes a connection whose head does not arrive")
            .unwrap();
        assert!(raw.is_empty(), "nothing to answer: {raw:?}");
    });
}

#[test]
fn stop_ends_accept_after_the_connections() {
    task::block_on(async {
        let server = start(hello_app(), HttpListener::new("127.0.0.1:0")).await;
        // An idle keep-alive connection is open when the stop comes.
        let mut idle = TcpStream::connect(server.addr).await.unwrap();
        idle.write_all(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
            .await
            .unwrap();
        // Read the whole answer (it may come in more than one segment) before the stop.
        let mut answer = Vec::new();
        while !answer.ends_with(b"hello") {
            let mut buf = [0u8; 256];
            let n = timeout(NO_ANSWER, idle.read(&mut buf))
                .await
                .unwrap()
                .unwrap();
            assert!(n > 0, "closed before the answer: {answer:?}");
            answer.extend_from_slice(&buf[..n]);
        }
        assert!(answer.starts_with(b"HTTP/1.1 200"));

        server.stopper.stop();
        timeout(NO_ANSWER, server.accepting)
            .await
            .expect("accept returns once stopped")
            .unwrap();
        let mut rest = Vec::new();
        timeout(NO_ANSWER, idle.read_to_end(&mut rest))
            .await
            .expect("the idle connection was closed")
            .unwrap();
        assert!(rest.is_empty());
        assert!(
            TcpStream::connect(server.addr).await.is_err(),
            "the port no longer accepts"
        );
    });
}

/// An upload endpoint that reads the whole body and reports its size.
fn upload_app() -> tide::Server<()> {
    let mut app = tide::new();
    app.at("/up").post(|mut req: tide::Request<()>| async move {
        let body = req.body_bytes().await?;
        Ok(format!("{}", body.len()))
    });
    app
}

/// `len` bytes as one chunked body, in 64 KiB chunks.
fn chunked_body(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + len / 8 + 16);
    let mut left = len;
    while left > 0 {
        let n = left.min(64 << 10);
        out.extend_from_slice(format!("{n:x}\r\n").as_bytes());
        out.resize(out.len() + n, b'x');
        out.extend_from_slice(b"\r\n");
        left -= n;
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

#[test]
fn bodies_over_the_limit_get_413_without_being_read() {
    task::block_on(async {
        let listener = HttpListener::new("127.0.0.1:0").max_body(1 << 20);
        let server = start(upload_app(), listener).await;
        // Within the limit: served.
        let head = "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
        let mut small = head
            .replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n")
            .into_bytes();
        small.extend(chunked_body(512 << 10));
        let replies = exchange(server.addr, &small).await;
        assert_eq!(replies.len(), 1);
        assert_eq!(
            (replies[0].status, replies[0].body.as_str()),
            (200, "524288")
        );
        // Declared over the limit: 413 at once, nothing of the body sent or read.
        let declared = format!(
            "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            (1 << 20) + 1
        );
        let replies = exchange(server.addr, declared.as_bytes()).await;
        assert_eq!(replies[0].status, 413);
        assert!(replies[0].body.contains("larger than this server accepts"));
        // Chunked past the limit: the handler's read fails at 1 MiB, the answer is 413, and
        // the connection closes while the client is still sending its 32 MiB.
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        let mut writer = stream.clone();
        let sending = task::spawn(async move {
            let mut big = head.as_bytes().to_vec();
            big.extend(chunked_body(32 << 20));
            let mut sent = 0;
            for piece in big.chunks(64 << 10) {
                if writer.write_all(piece).await.is_err() {
                    break;
                }
                sent += piece.len();
            }
            sent
        });
        let mut answer = Vec::new();
        let read = timeout(NO_ANSWER, stream.read_to_end(&mut answer)).await;
        assert!(read.is_ok(), "the server closed the connection");
        let replies = parse(&answer);
        assert_eq!(replies.len(), 1, "{}", String::from_utf8_lossy(&answer));
        assert_eq!(replies[0].status, 413);
        assert_eq!(replies[0].header("connection"), Some("close"));
        let sent = timeout(NO_ANSWER, sending).await.unwrap();
        assert!(
            sent < 32 << 20,
            "the rest was never read: {sent} bytes went out"
        );
    });
}

/// A request pipelined behind one with a body is answered too: the body is handed on up to its
/// end and no further (chunked framing followed, a declared length counted), so the next head
/// stays for the next round.
#[test]
fn requests_pipelined_behind_a_body_are_answered() {
    task::block_on(async {
        let server = start(upload_app(), HttpListener::new("127.0.0.1:0")).await;
        let mut wire =
            b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        wire.extend(b"5\r\nhello\r\n3\r\nabc\r\n0\r\nTrailer: t\r\n\r\n");
        wire.extend(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nwxyz");
        wire.extend(
            b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
        );
        let replies = exchange(server.addr, &wire).await;
        let got: Vec<(u16, &str)> = replies
            .iter()
            .map(|r| (r.status, r.body.as_str()))
            .collect();
        assert_eq!(got, [(200, "8"), (200, "4"), (200, "2")]);
    });
}
