//! The middleware's tests send raw HTTP/1.1 requests to a Tide app in process (`respond`, as
//! Tide's own tests do) from a loopback peer, and read the replies; serving over sockets is
//! `ratekeeper-listener`'s, tested there.
#![allow(dead_code, unreachable_pub)]

use tide::http::{Method, Request, Response, Url};

/// The peer every request comes from, as a loopback client's would.
pub const PEER: &str = "127.0.0.1:40000";

/// An app the tests send requests to.
pub struct Served(pub tide::Server<()>);

/// One reply: its status and body, and the response for its headers.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    response: Response,
}

impl Reply {
    /// The last value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.response.header(name).map(|v| v.last().as_str())
    }
}

impl Served {
    /// Sends `raw` (a request head and its body) from [`PEER`] and reads the reply.
    pub async fn send(&self, raw: &[u8]) -> Reply {
        let text = core::str::from_utf8(raw).expect("the tests' requests are text");
        let (head, body) = text.split_once("\r\n\r\n").expect("a whole head");
        let mut lines = head.split("\r\n");
        let mut start = lines.next().expect("a request line").split(' ');
        let (method, path) = (start.next().unwrap(), start.next().unwrap());
        let url = Url::parse(&format!("http://test{path}")).unwrap();
        let mut req = Request::new(method.parse::<Method>().unwrap(), url);
        for line in lines {
            let (name, value) = line.split_once(':').expect("a header line");
            req.append_header(name.trim(), value.trim());
        }
        req.set_peer_addr(Some(PEER));
        req.set_body(body.to_owned());
        let mut response: Response = self.0.respond(req).await.unwrap();
        Reply {
            status: u16::from(response.status()),
            body: response.body_string().await.unwrap(),
            response,
        }
    }
}

/// A `GET path` with `extra` header lines (each ending in `\r\n`).
pub fn get(path: &str, extra: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: test\r\n{extra}Connection: close\r\n\r\n").into_bytes()
}
