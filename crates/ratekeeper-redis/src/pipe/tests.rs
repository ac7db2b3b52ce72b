//! The pipe against scripted servers on loopback: replies in order however they are split,
//! dropped calls, closed and silent servers, bad replies.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{TcpListener, TcpStream},
    thread,
};

use redis::aio::ConnectionLike;

use super::*;

/// Reads one command (an array of bulk strings) off `r`; `None` at the end of the stream.
fn command(r: &mut impl BufRead) -> Option<Vec<Vec<u8>>> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let n: usize = line.trim_end().strip_prefix('*')?.parse().ok()?;
    (0..n)
        .map(|_| {
            line.clear();
            r.read_line(&mut line).ok()?;
            let len: usize = line.trim_end().strip_prefix('$')?.parse().ok()?;
            let mut arg = vec![0; len + 2];
            r.read_exact(&mut arg).ok()?;
            arg.truncate(len);
            Some(arg)
        })
        .collect()
}

/// A server on a free port that answers each connection's commands with `answer` (the command
/// in, the bytes out; `None` closes the connection).
fn server(
    answer: impl Fn(&[Vec<u8>]) -> Option<Vec<u8>> + Send + Sync + 'static,
) -> core::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let answer = Arc::new(answer);
    thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut out) = conn else { return };
            out.set_nodelay(true).unwrap();
            let answer = Arc::clone(&answer);
            thread::spawn(move || {
                let mut input = BufReader::new(out.try_clone().unwrap());
                while let Some(cmd) = command(&mut input) {
                    match answer(&cmd) {
                        Some(bytes) => {
                            // One byte at a time: replies arrive in as many pieces as can be.
                            for b in bytes {
                                if out.write_all(&[b]).is_err() {
                                    return;
                                }
                            }
                        }
                        None => return,
                    }
                }
            });
        }
    });
    addr
}

fn echo(cmd: &[Vec<u8>]) -> Option<Vec<u8>> {
    let arg = cmd.get(1)?;
    let mut reply = format!("${}\r\n", arg.len()).into_bytes();
    reply.extend_from_slice(arg);
    reply.extend_from_slice(b"\r\n");
    Some(reply)
}

fn pipe_to(addr: core::net::SocketAddr, response_timeout: Duration) -> Pipe {
    let stream = Async::<TcpStream>::connect(addr);
    let stream = async_io::block_on(stream).unwrap();
    Pipe::new(stream, 0, response_timeout)
}

async fn echo_call(pipe: &Pipe, text: &str) -> RedisResult<Value> {
    pipe.clone()
        .req_packed_command(redis::cmd("ECHO").arg(text))
        .await
}

#[test]
fn concurrent_calls_each_get_their_own_reply_however_it_is_split() {
    let pipe = pipe_to(server(echo), Duration::from_secs(10));
    let executor = smol::Executor::new();
    let calls: Vec<_> = (0..64)
        .map(|i| {
            let pipe = pipe.clone();
            executor.spawn(async move {
                for round in 0..20 {
                    let text = format!("call {i} round {round}");
                    let reply = echo_call(&pipe, &text).await.unwrap();
                    assert_eq!(reply, Value::BulkString(text.into_bytes()));
                }
            })
        })
        .collect();
    let (stop, stopped) = futures::channel::oneshot::channel::<()>();
    thread::scope(|s| {
        // A second thread runs the calls too.
        s.spawn(|| async_io::block_on(executor.run(stopped)));
        async_io::block_on(executor.run(futures::future::join_all(calls)));
        drop(stop);
    });
    let st = pipe.shared.state.lock();
    assert!(st.entries.is_empty(), "{} entries left", st.entries.len());
    assert_eq!(st.answered, 64 * 20);
}

#[test]
fn a_dropped_call_gives_its_reply_to_nobody() {
    // Holds the first reply back until the second command is in: the first call cannot have
    // its reply before it is dropped.
    let held = Mutex::new(None);
    let pipe = pipe_to(
        server(move |cmd| {
            let reply = echo(cmd)?;
            let first = held.lock().take();
            match first {
                None => {
                    *held.lock() = Some(reply);
                    Some(Vec::new())
                }
                Some(first) => Some([first, reply].concat()),
            }
        }),
        Duration::from_secs(10),
    );
    async_io::block_on(async {
        let mut first = Box::pin(echo_call(&pipe, "dropped"));
        // Sent, then dropped before its reply.
        assert!(futures::poll!(first.as_mut()).is_pending());
        drop(first);
        let reply = echo_call(&pipe, "kept").await.unwrap();
        assert_eq!(reply, Value::BulkString(b"kept".to_vec()));
    });
    assert!(pipe.is_open());
}

#[test]
fn a_pipeline_gets_its_replies_past_the_offset() {
    let pipe = pipe_to(server(echo), Duration::from_secs(10));
    let mut p = redis::pipe();
    p.cmd("ECHO")
        .arg("a")
        .cmd("ECHO")
        .arg("b")
        .cmd("ECHO")
        .arg("c");
    let mut pipe = pipe;
    let replies = async_io::block_on(pipe.req_packed_commands(&p, 1, 2)).unwrap();
    assert_eq!(
        replies,
        vec![
            Value::BulkString(b"b".to_vec()),
            Value::BulkString(b"c".to_vec())
        ]
    );
}

#[test]
fn a_server_that_hangs_up_fails_the_waiting_call_and_closes_the_pipe() {
    let pipe = pipe_to(server(|_| None), Duration::from_secs(10));
    let e = async_io::block_on(echo_call(&pipe, "x")).unwrap_err();
    assert!(e.is_connection_dropped(), "{e}");
    assert!(!pipe.is_open());
    let again = async_io::block_on(echo_call(&pipe, "y")).unwrap_err();
    assert!(again.is_io_error(), "{again}");
}

#[test]
fn a_bad_reply_is_an_error_and_closes_the_pipe() {
    let pipe = pipe_to(
        server(|_| Some(b"%oops\r\n".to_vec())),
        Duration::from_secs(10),
    );
    let e = async_io::block_on(echo_call(&pipe, "x")).unwrap_err();
    assert!(e.to_string().contains("unexpected type byte"), "{e}");
    assert!(!pipe.is_open());
}

#[test]
fn a_server_error_is_a_value_the_caller_reads() {
    let pipe = pipe_to(
        server(|_| Some(b"-NOSCRIPT No matching script\r\n".to_vec())),
        Duration::from_secs(10),
    );
    let v = async_io::block_on(echo_call(&pipe, "x")).unwrap();
    let e = v.extract_error().unwrap_err();
    assert_eq!(e.code(), Some("NOSCRIPT"));
    assert!(pipe.is_open());
}

#[test]
fn a_silent_server_times_the_call_out_and_breaks_the_pipe() {
    // Reads commands and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let held = thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut sink = Vec::new();
        let _ = conn.read_to_end(&mut sink);
    });
    let timeout = Duration::from_millis(200);
    let pipe = pipe_to(addr, timeout);
    let started = Instant::now();
    let e = async_io::block_on(echo_call(&pipe, "x")).unwrap_err();
    let waited = started.elapsed();
    assert!(e.is_timeout(), "{e}");
    assert!(waited >= timeout, "{waited:?}");
    assert!(waited < timeout * 10, "{waited:?}");
    assert!(!pipe.is_open());
    drop(pipe);
    held.join().unwrap();
}
