//! Where a request body ends on the wire, so that the bytes after it (a pipelined request) are
//! never handed to `async-h1` as part of it: its body readers buffer ahead, and whatever they
//! buffer past the body is lost with them.

/// The framing of one request's body, consumed as its bytes pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    /// `Content-Length`: this many bytes left (0: no body, or all of it passed).
    Length(u64),
    /// `Transfer-Encoding: chunked`, scanned.
    Chunked(Chunked),
}

impl Default for Framing {
    /// No body.
    fn default() -> Self {
        Self::Length(0)
    }
}

impl Framing {
    /// How many of `bytes` (the next ones on the wire) belong to the body; the rest belong to
    /// what follows it. Advances past them.
    pub(crate) fn take(&mut self, bytes: &[u8]) -> usize {
        match self {
            Self::Length(left) => {
                let n = usize::try_from(*left).map_or(bytes.len(), |left| left.min(bytes.len()));
                *left -= n as u64;
                n
            }
            Self::Chunked(c) => c.take(bytes),
        }
    }

    /// Whether the whole body has passed.
    pub(crate) fn is_done(&self) -> bool {
        match self {
            Self::Length(left) => *left == 0,
            Self::Chunked(c) => c.state == State::Done,
        }
    }

    /// Whether the framing is in a chunked body's trailer section (after the last chunk, before
    /// the empty line that ends the body). `async-h1` must get that section whole: given part of
    /// it, its decoder waits for the rest without asking to be woken, and never wakes.
    pub(crate) fn in_trailers(&self) -> bool {
        matches!(
            self,
            Self::Chunked(Chunked {
                state: State::TrailerStart | State::Trailer | State::TrailerLf { .. }
            })
        )
    }

    /// Whether the bytes so far are not chunked framing at all.
    pub(crate) fn is_lost(&self) -> bool {
        matches!(self, Self::Chunked(Chunked { state: State::Lost }))
    }

    /// Like [`take`](Self::take), but stops where the trailer section begins, so that it can be
    /// handed on whole.
    pub(crate) fn take_until_trailers(&mut self, bytes: &[u8]) -> usize {
        match self {
            Self::Length(_) => self.take(bytes),
            Self::Chunked(c) => c.take_while(bytes, |s| {
                !matches!(
                    s,
                    State::TrailerStart | State::Trailer | State::TrailerLf { .. } | State::Lost
                )
            }),
        }
    }
}

/// A scanner of `chunked` framing (RFC 9112, section 7.1): chunk sizes, chunk data, the last
/// chunk and the trailer section. From the first byte it cannot follow it is
/// [lost](Framing::is_lost), and the listener fails the body read: `async-h1` is never handed
/// framing this scanner did not follow, so the two never disagree on where the trailers begin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Chunked {
    state: State,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// In a chunk-size line: the size so far, and whether an extension (`;...`) began.
    Size { size: u64, digits: bool, ext: bool },
    /// After the size line's CR.
    SizeLf { size: u64 },
    /// Chunk data left.
    Data(u64),
    /// The CR after chunk data.
    DataCr,
    /// The LF after chunk data.
    DataLf,
    /// At the start of a trailer line (an empty one ends the body).
    TrailerStart,
    /// In a trailer field line.
    Trailer,
    /// After a CR: the LF that ends the trailer section (`end`) or a field line.
    TrailerLf { end: bool },
    /// The body is over.
    Done,
    /// Framing this scanner cannot follow: hand everything on.
    Lost,
}

impl Chunked {
    pub(crate) const fn new() -> Self {
        Self {
            state: State::Size {
                size: 0,
                digits: false,
                ext: false,
            },
        }
    }

    fn take(&mut self, bytes: &[u8]) -> usize {
        self.take_while(bytes, |_| true)
    }

    /// Takes bytes while `go` holds for the state reached; stops at the first byte that leads
    /// to a state where it does not (that byte taken).
    fn take_while(&mut self, bytes: &[u8], go: impl Fn(State) -> bool) -> usize {
        let mut i = 0;
        while i < bytes.len() {
            if !go(self.state) {
                return i;
            }
            let b = bytes[i];
            self.state = match self.state {
                State::Done => return i,
                State::Lost => return bytes.len(),
                State::Data(left) => {
                    let n =
                        usize::try_from(left).map_or(bytes.len() - i, |l| l.min(bytes.len() - i));
                    i += n;
                    let left = left - n as u64;
                    self.state = if left == 0 {
                        State::DataCr
                    } else {
                        State::Data(left)
                    };
                    continue;
                }
                state => step(state, b),
            };
            i += 1;
        }
        i
    }
}

/// The state after byte `b` in `state` (not `Data`, `Done` or `Lost`, which `take_while`
/// handles: data is taken in runs, and the end states take nothing).
fn step(state: State, b: u8) -> State {
    match state {
        State::Size { size, digits, ext } => match b {
            b'\r' if digits => State::SizeLf { size },
            b'\n' if digits => after_size(size),
            _ if ext => State::Size { size, digits, ext },
            b';' if digits => State::Size {
                size,
                digits,
                ext: true,
            },
            _ => match (b as char).to_digit(16) {
                Some(d) => match size.checked_mul(16) {
                    Some(s) => State::Size {
                        size: s + u64::from(d),
                        digits: true,
                        ext,
                    },
                    None => State::Lost,
                },
                None => State::Lost,
            },
        },
        State::SizeLf { size } => match b {
            b'\n' => after_size(size),
            _ => State::Lost,
        },
        State::DataCr => match b {
            b'\r' => State::DataLf,
            b'\n' => State::Size {
                size: 0,
                digits: false,
                ext: false,
            },
            _ => State::Lost,
        },
        State::DataLf => match b {
            b'\n' => State::Size {
                size: 0,
                digits: false,
                ext: false,
            },
            _ => State::Lost,
        },
        State::TrailerStart => match b {
            b'\r' => State::TrailerLf { end: true },
            b'\n' => State::Done,
            _ => State::Trailer,
        },
        State::Trailer => match b {
            b'\r' => State::TrailerLf { end: false },
            b'\n' => State::TrailerStart,
            _ => State::Trailer,
        },
        State::TrailerLf { end } => match (b, end) {
            (b'\n', true) => State::Done,
            (b'\n', false) => State::TrailerStart,
            _ => State::Lost,
        },
        State::Done | State::Lost | State::Data(_) => state,
    }
}

fn after_size(size: u64) -> State {
    if size == 0 {
        State::TrailerStart
    } else {
        State::Data(size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `wire` in pieces of `step` bytes; answers how many belonged to the body.
    fn body_len(mut framing: Framing, wire: &[u8], step: usize) -> (usize, bool) {
        let mut taken = 0;
        for piece in wire.chunks(step) {
            let n = framing.take(piece);
            taken += n;
            if n < piece.len() {
                break;
            }
        }
        (taken, framing.is_done())
    }

    #[test]
    fn a_chunked_body_ends_where_its_last_chunk_and_trailers_do() {
        let body = b"5\r\nhello\r\n1;ext=1\r\n!\r\n0\r\nX-Trailer: y\r\n\r\n";
        let mut wire = body.to_vec();
        wire.extend_from_slice(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        for step in [1, 2, 3, 7, wire.len()] {
            assert_eq!(
                body_len(Framing::Chunked(Chunked::new()), &wire, step),
                (body.len(), true),
                "in pieces of {step}"
            );
        }
        let plain = b"A\r\n0123456789\r\n0\r\n\r\nnext";
        assert_eq!(
            body_len(Framing::Chunked(Chunked::new()), plain, 4),
            (plain.len() - 4, true)
        );
    }

    #[test]
    fn a_length_body_ends_at_its_length_and_malformed_chunks_are_handed_on() {
        assert_eq!(body_len(Framing::Length(5), b"helloGET", 3), (5, true));
        assert_eq!(body_len(Framing::Length(0), b"GET", 3), (0, true));
        let bad = b"zz\r\nhello\r\n0\r\n\r\nGET";
        assert_eq!(
            body_len(Framing::Chunked(Chunked::new()), bad, 4),
            (bad.len(), false)
        );
        let huge = b"fffffffffffffffff\r\n";
        assert_eq!(
            body_len(Framing::Chunked(Chunked::new()), huge, 64),
            (huge.len(), false)
        );
    }
}
