//! Request heads checked before Tide's HTTP parser sees them.
//!
//! `async-h1` (Tide's HTTP/1.1 server) closes the connection without a word on a head it cannot
//! decode, and panics inside `http-types` on a header value with a byte >= 0x80. The listener
//! reads each head itself, checks it here with the same parser and limits, and answers what
//! fails with a status and a short reason; only heads that pass reach `async-h1`.

use core::{fmt, str::FromStr};

use tide::http::{Method, StatusCode};

use crate::body::{Chunked, Framing};

/// The longest head `async-h1` accepts, in bytes, its final empty line included: it refuses a
/// head of this length or more.
pub(crate) const MAX_HEAD_LEN: usize = 8 * 1024;

/// The most header fields `async-h1` parses in one head.
pub(crate) const MAX_HEADERS: usize = 128;

/// Why a request head is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HeadError {
    /// The head reached [`MAX_HEAD_LEN`] bytes without ending.
    TooLarge,
    /// More than [`MAX_HEADERS`] header fields.
    TooManyHeaders,
    /// Not an HTTP/1.x request head (a bad request line, a bad header line, a missing end).
    Malformed,
    /// A method `http-types` does not know.
    UnknownMethod,
    /// An HTTP version other than 1.1, which is all `async-h1` serves.
    UnsupportedVersion,
    /// A header value with a byte outside ASCII (`http-types` panics on those).
    NonAsciiValue,
    /// No `Host` header (HTTP/1.1 requires one).
    MissingHost,
    /// `Content-Length` and `Transfer-Encoding` together, the shape of request smuggling.
    LengthAndEncoding,
    /// A `Transfer-Encoding` other than `chunked`, whose body length the server cannot know.
    UnsupportedEncoding,
    /// A `Content-Length` that is not one decimal number (or several that disagree).
    BadContentLength,
    /// A body larger than the listener accepts (declared, or read so far).
    BodyTooLarge,
    /// A head that ends with a bare LF (`\n\n`) before the CRLF CRLF that `async-h1` waits
    /// for: what follows would be read as part of it, and a request hidden there lost.
    BareLineFeed,
}

impl HeadError {
    /// The status to answer with.
    pub(crate) fn status(self) -> StatusCode {
        match self {
            Self::UnsupportedVersion => StatusCode::HttpVersionNotSupported,
            Self::BodyTooLarge => StatusCode::PayloadTooLarge,
            _ => StatusCode::BadRequest,
        }
    }
}

impl fmt::Display for HeadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::TooLarge => "the request head is larger than 8 KiB",
            Self::TooManyHeaders => "the request has more than 128 header fields",
            Self::Malformed => "the request head is not valid HTTP/1.1",
            Self::UnknownMethod => "unknown request method",
            Self::UnsupportedVersion => "only HTTP/1.1 is served",
            Self::NonAsciiValue => "a header value contains a byte outside ASCII",
            Self::MissingHost => "the Host header is missing",
            Self::LengthAndEncoding => "Content-Length and Transfer-Encoding together",
            Self::UnsupportedEncoding => "a Transfer-Encoding other than chunked",
            Self::BadContentLength => "Content-Length is not a single decimal number",
            Self::BodyTooLarge => "the request body is larger than this server accepts",
            Self::BareLineFeed => "the request head ends with a bare LF instead of CRLF",
        })
    }
}

/// Where the head in `buf` ends (the index just after its empty line), if it is complete.
/// `from` is where the previous search stopped, so a head read in pieces is scanned once.
pub(crate) fn head_end(buf: &[u8], from: usize) -> Option<usize> {
    let start = from.saturating_sub(3);
    buf.get(start..)?
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| start + i + 4)
}

/// Checks a complete head (through its empty line) as `async-h1` will read it, and answers how
/// its body is framed (a declared length too large to hold is `u64::MAX`; no body is a length
/// of 0).
pub(crate) fn check(head: &[u8]) -> Result<Framing, HeadError> {
    if head.len() >= MAX_HEAD_LEN {
        return Err(HeadError::TooLarge);
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(head) {
        Ok(httparse::Status::Complete(end)) if end != head.len() => {
            return Err(HeadError::BareLineFeed);
        }
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(HeadError::Malformed),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooManyHeaders),
        Err(_) => return Err(HeadError::Malformed),
    }
    let method = req.method.ok_or(HeadError::Malformed)?;
    if Method::from_str(method).is_err() {
        return Err(HeadError::UnknownMethod);
    }
    if req.version != Some(1) {
        return Err(HeadError::UnsupportedVersion);
    }
    let mut host = false;
    let mut length: Option<&[u8]> = None;
    let mut encoding = false;
    for header in req.headers.iter() {
        if !header.value.is_ascii() {
            return Err(HeadError::NonAsciiValue);
        }
        let value = header.value.trim_ascii();
        if header.name.eq_ignore_ascii_case("host") {
            host = true;
        } else if header.name.eq_ignore_ascii_case("content-length") {
            if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
                return Err(HeadError::BadContentLength);
            }
            if length.is_some_and(|seen| seen != value) {
                return Err(HeadError::BadContentLength);
            }
            length = Some(value);
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            if encoding || !value.eq_ignore_ascii_case(b"chunked") {
                return Err(HeadError::UnsupportedEncoding);
            }
            encoding = true;
        }
    }
    if !host {
        return Err(HeadError::MissingHost);
    }
    if length.is_some() && encoding {
        return Err(HeadError::LengthAndEncoding);
    }
    if encoding {
        return Ok(Framing::Chunked(Chunked::new()));
    }
    // Digits only, checked above: a number, or one beyond u64.
    Ok(Framing::Length(length.map_or(0, |v| {
        core::str::from_utf8(v)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(u64::MAX)
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(lines: &[&str]) -> Vec<u8> {
        let mut s = lines.join("\r\n");
        s.push_str("\r\n\r\n");
        s.into_bytes()
    }

    #[test]
    fn a_plain_head_passes() {
        assert_eq!(
            check(&head(&["GET /a?b=1 HTTP/1.1", "Host: x"])),
            Ok(Framing::Length(0))
        );
        assert_eq!(
            check(&head(&[
                "POST /up HTTP/1.1",
                "Host: x",
                "Content-Length: 5",
                "content-length: 5"
            ])),
            Ok(Framing::Length(5))
        );
        assert_eq!(
            check(&head(&[
                "POST /up HTTP/1.1",
                "Host: x",
                "Transfer-Encoding: Chunked"
            ])),
            Ok(Framing::Chunked(Chunked::new()))
        );
        assert_eq!(
            check(&head(&[
                "POST /up HTTP/1.1",
                "Host: x",
                "Content-Length: 99999999999999999999999"
            ])),
            Ok(Framing::Length(u64::MAX))
        );
    }

    #[test]
    fn each_refusal_has_its_reason() {
        let cases: [(&[&str], HeadError); 10] = [
            (
                &["GET / HTTP/1.1", "Host: x", "X-Api-Key: caf\u{e9}"],
                HeadError::NonAsciiValue,
            ),
            (&["BREW / HTTP/1.1", "Host: x"], HeadError::UnknownMethod),
            (
                &["GET / HTTP/1.0", "Host: x"],
                HeadError::UnsupportedVersion,
            ),
            (&["GET / HTTP/1.1"], HeadError::MissingHost),
            (
                &["GET / HTTP/1.1", "Host: x", "Bad Header: y"],
                HeadError::Malformed,
            ),
            (&["GET /", "Host: x"], HeadError::Malformed),
            (
                &[
                    "POST / HTTP/1.1",
                    "Host: x",
                    "Content-Length: 3",
                    "Transfer-Encoding: chunked",
                ],
                HeadError::LengthAndEncoding,
            ),
            (
                &[
                    "POST / HTTP/1.1",
                    "Host: x",
                    "Transfer-Encoding: gzip, chunked",
                ],
                HeadError::UnsupportedEncoding,
            ),
            (
                &[
                    "POST / HTTP/1.1",
                    "Host: x",
                    "Content-Length: 3",
                    "Content-Length: 4",
                ],
                HeadError::BadContentLength,
            ),
            (
                &["POST / HTTP/1.1", "Host: x", "Content-Length: -1"],
                HeadError::BadContentLength,
            ),
        ];
        for (lines, want) in cases {
            assert_eq!(check(&head(lines)), Err(want), "{lines:?}");
        }
    }

    #[test]
    fn limits_are_async_h1s() {
        let mut lines = vec!["GET / HTTP/1.1".to_owned(), "Host: x".to_owned()];
        lines.extend((0..MAX_HEADERS - 1).map(|i| format!("X-{i}: v")));
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        assert_eq!(
            check(&head(&refs)),
            Ok(Framing::Length(0)),
            "128 fields pass"
        );
        lines.push("X-last: v".to_owned());
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        assert_eq!(check(&head(&refs)), Err(HeadError::TooManyHeaders));

        let pad = |n: usize| {
            head(&[
                "GET / HTTP/1.1",
                "Host: x",
                &format!("X: {}", "a".repeat(n)),
            ])
        };
        let base = pad(0).len();
        assert_eq!(check(&pad(MAX_HEAD_LEN - 1 - base)), Ok(Framing::Length(0)));
        assert_eq!(check(&pad(MAX_HEAD_LEN - base)), Err(HeadError::TooLarge));
    }

    #[test]
    fn the_end_is_found_across_reads() {
        let buf = b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET";
        assert_eq!(head_end(buf, 0), Some(27));
        assert_eq!(head_end(&buf[..25], 0), None);
        // Resuming just inside the terminator still finds it.
        assert_eq!(head_end(buf, 25), Some(27));
        assert_eq!(head_end(buf, 100), None);
    }

    #[test]
    fn version_gets_505_and_the_rest_400() {
        assert_eq!(
            HeadError::UnsupportedVersion.status(),
            StatusCode::HttpVersionNotSupported
        );
        assert_eq!(HeadError::NonAsciiValue.status(), StatusCode::BadRequest);
    }
}
