//! memcached's text protocol: the requests this crate sends, and reading their replies.
//!
//! Only what the store needs: `gets` (values with their CAS tokens), `add`, `cas`, `incr` and
//! `version`.

use futures::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt};

/// The largest value read back (memcached's default item size limit is 1 MiB).
const MAX_VALUE: usize = 1 << 20;
/// The longest reply line read.
const MAX_LINE: usize = 2048;
/// The most bytes of values one reply may carry, whatever the number of keys asked for.
pub(crate) const MAX_REPLY: usize = 4 << 20;

/// One value of a `gets` reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Value {
    pub(crate) key: String,
    pub(crate) data: Vec<u8>,
    pub(crate) cas: u64,
}

/// A reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Reply {
    Stored,
    NotStored,
    Exists,
    NotFound,
    Deleted,
    Number(u64),
    Values(Vec<Value>),
    Version(String),
}

/// What went wrong reading a reply, or what the server said was wrong.
#[derive(Debug)]
pub(crate) enum ProtocolError {
    /// The connection failed.
    Io(std::io::Error),
    /// `SERVER_ERROR ...` (`out of memory storing object` among them).
    Server(String),
    /// `ERROR` or `CLIENT_ERROR ...`: the request was not understood.
    Client(String),
    /// A reply this client cannot read.
    Malformed(String),
}

impl From<std::io::Error> for ProtocolError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e)
    }
}

/// `gets k1 k2 ...`
pub(crate) fn gets(keys: &[&str], out: &mut Vec<u8>) {
    out.extend_from_slice(b"gets");
    for k in keys {
        out.push(b' ');
        out.extend_from_slice(k.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

/// `add key 0 exptime len` + data: store if absent.
pub(crate) fn add(key: &str, exptime: u32, data: &[u8], out: &mut Vec<u8>) {
    storage_command("add", key, exptime, data, None, out);
}

/// `cas key 0 exptime len token` + data: store if unchanged since `token` was read.
pub(crate) fn cas(key: &str, exptime: u32, data: &[u8], token: u64, out: &mut Vec<u8>) {
    storage_command("cas", key, exptime, data, Some(token), out);
}

fn storage_command(
    name: &str,
    key: &str,
    exptime: u32,
    data: &[u8],
    token: Option<u64>,
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(name.as_bytes());
    out.push(b' ');
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(format!(" 0 {exptime} {}", data.len()).as_bytes());
    if let Some(t) = token {
        out.extend_from_slice(format!(" {t}").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// `incr key by`
pub(crate) fn incr(key: &str, by: u64, out: &mut Vec<u8>) {
    out.extend_from_slice(format!("incr {key} {by}\r\n").as_bytes());
}

/// `version`
pub(crate) fn version(out: &mut Vec<u8>) {
    out.extend_from_slice(b"version\r\n");
}

async fn line(r: &mut (impl AsyncBufRead + Unpin), buf: &mut Vec<u8>) -> Result<(), ProtocolError> {
    buf.clear();
    let n = (&mut *r)
        .take(MAX_LINE as u64)
        .read_until(b'\n', buf)
        .await?;
    if n == 0 {
        return Err(ProtocolError::Io(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the server closed the connection",
        )));
    }
    if !buf.ends_with(b"\r\n") {
        return Err(ProtocolError::Malformed(
            "a reply line without CRLF, or too long".into(),
        ));
    }
    buf.truncate(buf.len() - 2);
    Ok(())
}

/// Reads one reply. `asked` are the keys of a `gets` (empty for any other command): a reply may
/// carry at most one value for each and none for another key, and at most [`MAX_REPLY`] bytes
/// of values in all, so a hostile or broken server cannot make the client read without end.
pub(crate) async fn read_reply(
    r: &mut (impl AsyncBufRead + Unpin),
    asked: &[&str],
) -> Result<Reply, ProtocolError> {
    let mut seen = vec![false; asked.len()];
    let mut total = 0usize;
    let mut buf = Vec::new();
    line(r, &mut buf).await?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let mut values = Vec::new();
    let mut text = text;
    loop {
        match text.as_str() {
            "STORED" => return Ok(Reply::Stored),
            "NOT_STORED" => return Ok(Reply::NotStored),
            "EXISTS" => return Ok(Reply::Exists),
            "NOT_FOUND" => return Ok(Reply::NotFound),
            "DELETED" => return Ok(Reply::Deleted),
            "END" => return Ok(Reply::Values(values)),
            "ERROR" => return Err(ProtocolError::Client("ERROR".into())),
            t if t.starts_with("SERVER_ERROR") => return Err(ProtocolError::Server(t.into())),
            t if t.starts_with("CLIENT_ERROR") => return Err(ProtocolError::Client(t.into())),
            t if t.starts_with("VERSION ") => return Ok(Reply::Version(t[8..].to_owned())),
            t if t.starts_with("VALUE ") => {
                let fields: Vec<&str> = t.split(' ').collect();
                let (key, len, cas) = match fields.as_slice() {
                    ["VALUE", key, _flags, len, cas] => (*key, *len, Some(*cas)),
                    ["VALUE", key, _flags, len] => (*key, *len, None),
                    _ => return Err(ProtocolError::Malformed(format!("{t:?}"))),
                };
                let len: usize = len
                    .parse()
                    .ok()
                    .filter(|n| *n <= MAX_VALUE)
                    .ok_or_else(|| ProtocolError::Malformed(format!("{t:?}")))?;
                let cas: u64 = match cas {
                    Some(c) => c
                        .parse()
                        .map_err(|_| ProtocolError::Malformed(format!("{t:?}")))?,
                    None => 0,
                };
                match asked.iter().position(|k| *k == key) {
                    Some(i) if !seen[i] => seen[i] = true,
                    Some(_) => return Err(ProtocolError::Malformed(format!("{key:?} twice"))),
                    None => {
                        return Err(ProtocolError::Malformed(format!("{key:?} not asked for")));
                    }
                }
                total += len;
                if total > MAX_REPLY {
                    return Err(ProtocolError::Malformed("a reply over 4 MiB".into()));
                }
                let key = key.to_owned();
                let mut data = vec![0; len + 2];
                r.read_exact(&mut data).await?;
                if !data.ends_with(b"\r\n") {
                    return Err(ProtocolError::Malformed("a value without its CRLF".into()));
                }
                data.truncate(len);
                values.push(Value { key, data, cas });
                line(r, &mut buf).await?;
                text = String::from_utf8_lossy(&buf).into_owned();
            }
            t if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) => {
                return t
                    .parse()
                    .map(Reply::Number)
                    .map_err(|_| ProtocolError::Malformed(format!("{t:?}")));
            }
            t => return Err(ProtocolError::Malformed(format!("{t:?}"))),
        }
    }
}

/// The fuzz target's check: any bytes, read as the reply to a `gets` of the keys named by the
/// first byte, give a reply or an error, never a panic, and never more values than keys asked
/// for or more than [`MAX_REPLY`] bytes of them.
#[cfg(any(test, fuzzing))]
pub(crate) fn check_reply(data: &[u8]) {
    const KEYS: [&str; 4] = ["a", "b", "c", "d"];
    let (asked, wire) = match data.split_first() {
        Some((n, rest)) => (&KEYS[..usize::from(*n) % (KEYS.len() + 1)], rest),
        None => (&KEYS[..0], data),
    };
    if let Ok(Reply::Values(values)) =
        futures::executor::block_on(read_reply(&mut &wire[..], asked))
    {
        assert!(
            values.len() <= asked.len(),
            "{} values for {asked:?}",
            values.len()
        );
        assert!(values.iter().map(|v| v.data.len()).sum::<usize>() <= MAX_REPLY);
        for (i, v) in values.iter().enumerate() {
            assert!(asked.contains(&v.key.as_str()));
            assert!(
                values[..i].iter().all(|w| w.key != v.key),
                "{:?} twice",
                v.key
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(bytes: &[u8]) -> Result<Reply, ProtocolError> {
        futures::executor::block_on(read_reply(&mut &bytes[..], &["a", "b"]))
    }

    #[test]
    fn replies_are_read() {
        assert_eq!(read(b"STORED\r\n").unwrap(), Reply::Stored);
        assert_eq!(read(b"EXISTS\r\n").unwrap(), Reply::Exists);
        assert_eq!(read(b"42\r\n").unwrap(), Reply::Number(42));
        assert_eq!(
            read(b"VERSION 1.6.18\r\n").unwrap(),
            Reply::Version("1.6.18".into())
        );
        let values = read(b"VALUE a 0 3 7\r\n\x00\r\n\r\nVALUE b 0 0 8\r\n\r\nEND\r\n").unwrap();
        assert_eq!(
            values,
            Reply::Values(vec![
                Value {
                    key: "a".into(),
                    data: b"\x00\r\n".to_vec(),
                    cas: 7
                },
                Value {
                    key: "b".into(),
                    data: Vec::new(),
                    cas: 8
                },
            ])
        );
        assert!(matches!(
            read(b"SERVER_ERROR out of memory storing object\r\n"),
            Err(ProtocolError::Server(_))
        ));
        for bad in [
            &b"WHAT\r\n"[..],
            b"VALUE a 0 x 1\r\n",
            b"VALUE a 0 3 1\r\nab\r\n",
            b"STORED",
            b"",
        ] {
            assert!(read(bad).is_err(), "{bad:?}");
        }
    }

    /// A server that answers with more values than asked for, a key not asked for, the same key
    /// again, or more bytes than a reply may carry is a protocol error, read no further.
    #[test]
    fn a_reply_carries_one_value_per_key_asked_at_most() {
        assert!(read(b"VALUE a 0 1 1\r\nx\r\nVALUE a 0 1 2\r\ny\r\nEND\r\n").is_err());
        assert!(read(b"VALUE c 0 1 1\r\nx\r\nEND\r\n").is_err());
        let mut endless = Vec::new();
        for _ in 0..10_000 {
            endless.extend_from_slice(b"VALUE a 0 3 1\r\nabc\r\n");
        }
        assert!(read(&endless).is_err());
        let keys: Vec<String> = (0..8).map(|i| format!("k{i}")).collect();
        let asked: Vec<&str> = keys.iter().map(String::as_str).collect();
        let mut big = Vec::new();
        for k in &asked {
            big.extend_from_slice(format!("VALUE {k} 0 {} 1\r\n", 1 << 20).as_bytes());
            big.resize(big.len() + (1 << 20), b'x');
            big.extend_from_slice(b"\r\n");
        }
        big.extend_from_slice(b"END\r\n");
        let read = futures::executor::block_on(read_reply(&mut &big[..], &asked));
        assert!(matches!(read, Err(ProtocolError::Malformed(m)) if m.contains("4 MiB")));
        // Not a gets: no value at all.
        let read = futures::executor::block_on(read_reply(
            &mut &b"VALUE a 0 1 1\r\nx\r\nEND\r\n"[..],
            &[],
        ));
        assert!(read.is_err());
    }

    #[test]
    fn the_fuzz_check_holds_on_its_seeds() {
        for seed in [
            &b""[..],
            b"\x02VALUE a 0 1 1\r\nx\r\nVALUE b 0 0 2\r\n\r\nEND\r\n",
            b"\x04VALUE d 0 1 1\r\nx\r\nVALUE d 0 1 1\r\nx\r\nEND\r\n",
            b"\x01SERVER_ERROR \x1b]0;x\x07\r\n",
            b"\x03VALUE a 0 99999999999 1\r\n",
        ] {
            check_reply(seed);
        }
    }

    #[test]
    fn requests_are_written() {
        let mut out = Vec::new();
        gets(&["a", "b"], &mut out);
        cas("a", 60, b"xy", 9, &mut out);
        add("b", 0, b"", &mut out);
        incr("g", 1, &mut out);
        assert_eq!(
            out,
            b"gets a b\r\ncas a 0 60 2 9\r\nxy\r\nadd b 0 0 0\r\n\r\nincr g 1\r\n"
        );
    }
}
