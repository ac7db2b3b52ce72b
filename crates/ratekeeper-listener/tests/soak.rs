//! Thousands of hostile connections against `HttpListener`: chunked trailers split in time,
//! bodies trickled and then abandoned, bodies cut short by a half-close, and answers never read.
//! Every connection must end: afterwards the server holds no more file descriptors than before,
//! and it still answers.

mod common;

use core::time::Duration;
use std::{net::Shutdown, time::Instant};

use async_std::{
    future::timeout,
    io::{ReadExt, WriteExt},
    net::TcpStream,
    task,
};
use common::{NO_ANSWER, exchange, get, start};
use ratekeeper_listener::HttpListener;

/// The stall deadline the server runs with here: short, so the test is.
const BODY_TIMEOUT: Duration = Duration::from_millis(300);

/// How many connections of each kind, and how many at once.
const PER_KIND: usize = 600;
const AT_ONCE: usize = 150;

fn app() -> tide::Server<()> {
    let mut app = tide::new();
    app.at("/").get(|_| async { Ok("hello") });
    app.at("/up").post(|mut req: tide::Request<()>| async move {
        let body = req.body_bytes().await?;
        Ok(format!("{}", body.len()))
    });
    app
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[derive(Clone, Copy, Debug)]
enum Attack {
    /// `0\r\nX-T`, a pause, `: 1\r\n\r\n`, close: on the handler's read (`/up`) and on the
    /// body discarded after the answer (`/`).
    SplitTrailer { read_by_handler: bool },
    /// A few bytes of a declared body, then silence with the socket open.
    Trickle,
    /// Part of a body, then the client's write side closed.
    HalfClose,
    /// Pipelined requests whose answers the client never reads.
    NeverReads,
}

/// Runs one attack and answers whether the server ended the connection (read to its end) within
/// the bound; the split trailer closes from the client side and always answers `true`.
async fn attack(addr: core::net::SocketAddr, kind: Attack) -> bool {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let chunked = |path: &str, method: &str| {
        format!("{method} {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    };
    match kind {
        Attack::SplitTrailer { read_by_handler } => {
            let head = if read_by_handler {
                chunked("/up", "POST")
            } else {
                chunked("/", "GET")
            };
            let first = format!("{head}3\r\nabc\r\n0\r\nX-T");
            stream.write_all(first.as_bytes()).await.unwrap();
            task::sleep(Duration::from_millis(60)).await;
            // The server may have answered and closed already: a failed write is fine.
            let _ = stream.write_all(b": 1\r\n\r\n").await;
            return true;
        }
        Attack::Trickle => {
            let head = "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n";
            stream.write_all(head.as_bytes()).await.unwrap();
            for _ in 0..3 {
                stream.write_all(b"x").await.unwrap();
                task::sleep(Duration::from_millis(BODY_TIMEOUT.as_millis() as u64 / 3)).await;
            }
        }
        Attack::HalfClose => {
            let mut wire = chunked("/up", "POST").into_bytes();
            wire.extend(b"5\r\nhel");
            stream.write_all(&wire).await.unwrap();
            stream.shutdown(Shutdown::Write).unwrap();
        }
        Attack::NeverReads => {
            // Enough pipelined requests that their answers fill both socket buffers.
            let wire = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".repeat(20_000);
            let _ = timeout(NO_ANSWER, stream.write_all(&wire)).await;
            // Wait, unread, until the server gives up on the writes, then drain.
            task::sleep(BODY_TIMEOUT * 3).await;
        }
    }
    let mut scratch = vec![0u8; 1 << 16];
    let drained = timeout(NO_ANSWER, async {
        loop {
            match stream.read(&mut scratch).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    });
    drained.await.is_ok()
}

#[test]
fn no_hostile_connection_outlives_its_deadlines() {
    task::block_on(async {
        let listener = HttpListener::new("127.0.0.1:0")
            .header_timeout(Duration::from_secs(2))
            .body_timeout(BODY_TIMEOUT);
        let server = start(app(), listener).await;
        let answered = exchange(server.addr, &get("/", "")).await;
        assert_eq!(answered[0].status, 200);
        let baseline = open_fds();
        let started = Instant::now();

        let kinds = [
            Attack::SplitTrailer {
                read_by_handler: true,
            },
            Attack::SplitTrailer {
                read_by_handler: false,
            },
            Attack::Trickle,
            Attack::HalfClose,
        ];
        for kind in kinds {
            for _ in 0..PER_KIND / AT_ONCE {
                let batch: Vec<_> = (0..AT_ONCE)
                    .map(|_| task::spawn(attack(server.addr, kind)))
                    .collect();
                for handle in batch {
                    assert!(handle.await, "{kind:?}: the server never closed");
                }
            }
        }
        let never_reads: Vec<_> = (0..8)
            .map(|_| task::spawn(attack(server.addr, Attack::NeverReads)))
            .collect();
        for handle in never_reads {
            assert!(handle.await, "NeverReads: the server never closed");
        }

        // Every server-side socket closes: the open descriptors come back to the baseline.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut now_open = open_fds();
        while now_open > baseline && Instant::now() < deadline {
            task::sleep(Duration::from_millis(50)).await;
            now_open = open_fds();
        }
        assert!(
            now_open <= baseline,
            "{now_open} descriptors open after the soak, {baseline} before ({:?} in)",
            started.elapsed()
        );
        let answered = exchange(server.addr, &get("/", "")).await;
        assert_eq!(
            (answered[0].status, answered[0].body.as_str()),
            (200, "hello")
        );
    });
}

#[test]
fn a_trailer_split_in_time_is_answered() {
    task::block_on(async {
        let server = start(app(), HttpListener::new("127.0.0.1:0")).await;
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        let head = "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
        let first = format!("{head}5\r\nhello\r\n0\r\nX-T");
        stream.write_all(first.as_bytes()).await.unwrap();
        task::sleep(Duration::from_millis(60)).await;
        stream.write_all(b"railer: 1\r\n\r\n").await.unwrap();
        let mut raw = Vec::new();
        timeout(NO_ANSWER, stream.read_to_end(&mut raw))
            .await
            .expect("answered, and the connection closed")
            .unwrap();
        let replies = common::parse(&raw);
        assert_eq!((replies[0].status, replies[0].body.as_str()), (200, "5"));
    });
}
