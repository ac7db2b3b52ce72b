//! Replies in RESP2, read one at a time off the front of a buffer that may hold only part of
//! one. The values are the redis crate's, as its own parser makes them, so that everything
//! above the connection reads them unchanged; error replies go through that parser itself.

use redis::{ErrorKind, RedisError, RedisResult, Value};

/// How deeply arrays may nest in a reply.
const MAX_DEPTH: usize = 16;

/// The longest bulk string or array accepted (Redis's own `proto-max-bulk-len` default).
pub(crate) const MAX_LEN: usize = 512 * 1024 * 1024;

/// Parses the first reply in `buf`: the value and the bytes it took, or `None` while the
/// reply is not all there.
pub(crate) fn parse(buf: &[u8]) -> RedisResult<Option<(Value, usize)>> {
    let mut at = 0;
    Ok(value(buf, &mut at, 0)?.map(|v| (v, at)))
}

fn bad(detail: String) -> RedisError {
    RedisError::from((ErrorKind::Parse, "invalid reply from Redis", detail))
}

/// The line starting at `*at` (without its CRLF), moving `*at` past it.
fn line<'a>(buf: &'a [u8], at: &mut usize) -> RedisResult<Option<&'a [u8]>> {
    let rest = &buf[*at..];
    let Some(end) = rest.iter().position(|&b| b == b'\r') else {
        return Ok(None);
    };
    match rest.get(end + 1) {
        None => Ok(None),
        Some(b'\n') => {
            *at += end + 2;
            Ok(Some(&rest[..end]))
        }
        Some(_) => Err(bad("a line not ended by CRLF".into())),
    }
}

fn integer(digits: &[u8]) -> RedisResult<i64> {
    core::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            bad(format!(
                "not an integer: {:?}",
                String::from_utf8_lossy(digits)
            ))
        })
}

/// A length prefix: `None` for -1 (a nil), an error past [`MAX_LEN`].
fn length(digits: &[u8]) -> RedisResult<Option<usize>> {
    match integer(digits)? {
        -1 => Ok(None),
        n => usize::try_from(n)
            .ok()
            .filter(|n| *n <= MAX_LEN)
            .map(Some)
            .ok_or_else(|| bad(format!("length {n} out of range"))),
    }
}

fn value(buf: &[u8], at: &mut usize, depth: usize) -> RedisResult<Option<Value>> {
    let start = *at;
    let Some(&kind) = buf.get(start) else {
        return Ok(None);
    };
    *at += 1;
    let Some(head) = line(buf, at)? else {
        return Ok(None);
    };
    match kind {
        b'+' if head == b"OK" => Ok(Some(Value::Okay)),
        b'+' => Ok(Some(Value::SimpleString(
            String::from_utf8_lossy(head).into_owned(),
        ))),
        // The redis crate's parser makes the server error (its code and detail) from the line.
        b'-' => redis::parse_redis_value(&buf[start..*at]).map(Some),
        b':' => integer(head).map(|i| Some(Value::Int(i))),
        b'$' => {
            let Some(len) = length(head)? else {
                return Ok(Some(Value::Nil));
            };
            let body = *at;
            if buf.len() < body + len + 2 {
                return Ok(None);
            }
            if &buf[body + len..body + len + 2] != b"\r\n" {
                return Err(bad("a bulk string not ended by CRLF".into()));
            }
            *at = body + len + 2;
            Ok(Some(Value::BulkString(buf[body..body + len].to_vec())))
        }
        b'*' => {
            let Some(n) = length(head)? else {
                return Ok(Some(Value::Nil));
            };
            if depth >= MAX_DEPTH {
                return Err(bad(format!("arrays nested deeper than {MAX_DEPTH}")));
            }
            // Each element takes three bytes at least: do not reserve for what cannot be there.
            let mut items = Vec::with_capacity(n.min((buf.len() - *at) / 3));
            for _ in 0..n {
                match value(buf, at, depth + 1)? {
                    Some(v) => items.push(v),
                    None => return Ok(None),
                }
            }
            Ok(Some(Value::Array(items)))
        }
        other => Err(bad(format!("unexpected type byte {other:#04x}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Replies of every kind this crate's commands get, as the server sends them.
    const REPLIES: &[&[u8]] = &[
        b"+OK\r\n",
        b"+PONG\r\n",
        b":0\r\n",
        b":-42\r\n",
        b":9007199254740992\r\n",
        b"$-1\r\n",
        b"$0\r\n\r\n",
        b"$5\r\nhe\r\no\r\n",
        b"*-1\r\n",
        b"*0\r\n",
        b"*3\r\n:1\r\n$3\r\nabc\r\n*2\r\n:7\r\n$-1\r\n",
        b"-ERR Function not found\r\n",
        b"-NOSCRIPT No matching script. Please use EVAL.\r\n",
        b"-OOM command not allowed when used memory > 'maxmemory'.\r\n",
        b"*2\r\n$1\r\n0\r\n*2\r\n$4\r\nk:a1\r\n$4\r\nk:b2\r\n",
    ];

    #[test]
    fn whole_replies_parse_as_the_redis_crate_parses_them() {
        for reply in REPLIES {
            let ours = parse(reply).unwrap();
            let theirs = redis::parse_redis_value(reply).unwrap();
            assert_eq!(
                ours,
                Some((theirs, reply.len())),
                "{:?}",
                String::from_utf8_lossy(reply)
            );
        }
    }

    #[test]
    fn every_prefix_of_a_reply_is_incomplete() {
        for reply in REPLIES {
            for cut in 0..reply.len() {
                assert_eq!(
                    parse(&reply[..cut]).unwrap(),
                    None,
                    "{reply:?} cut at {cut}"
                );
            }
        }
    }

    #[test]
    fn replies_back_to_back_are_read_one_by_one() {
        let all: Vec<u8> = REPLIES.concat();
        let mut at = 0;
        for reply in REPLIES {
            let (v, used) = parse(&all[at..]).unwrap().unwrap();
            assert_eq!(v, redis::parse_redis_value(reply).unwrap());
            assert_eq!(used, reply.len());
            at += used;
        }
        assert_eq!(at, all.len());
    }

    #[test]
    fn malformed_replies_are_errors_not_waits() {
        for bad in [
            &b"?1\r\n"[..],
            b":12x\r\n",
            b"$3\r\nabcde\r\n",
            b"$-2\r\n",
            b"*-5\r\n",
            b"$99999999999\r\n",
            b"+OK\rX",
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Parse, "{bad:?}");
        }
    }

    #[test]
    fn deep_nesting_is_refused() {
        let deep = b"*1\r\n".repeat(MAX_DEPTH + 1);
        assert_eq!(parse(&deep).unwrap_err().kind(), ErrorKind::Parse);
        let ok = [b"*1\r\n".repeat(MAX_DEPTH), b":1\r\n".to_vec()].concat();
        assert!(parse(&ok).unwrap().is_some());
    }

    #[test]
    fn a_huge_array_header_reserves_nothing_it_has_not_seen() {
        // Claims 500 million elements, holds one: incomplete, and cheap to find out.
        let reply = b"*500000000\r\n:1\r\n";
        assert_eq!(parse(reply).unwrap(), None);
    }
}
