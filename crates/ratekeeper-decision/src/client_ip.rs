//! The client's address: the peer by default, forwarded headers only through trusted proxies.

use core::net::{IpAddr, SocketAddr};

use crate::{
    network::{DEFAULT_TRUSTED_PROXIES, Network},
    request::RequestView,
};

/// Which forwarding header trusted proxies set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2`.
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client, for=proxy1`.
    Forwarded,
}

/// How to find the client's address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyConfig {
    /// How many proxies in front of the application are trusted (0: trust no header).
    pub trusted_hops: usize,
    /// The header they set.
    pub header: ForwardedHeader,
    /// The networks a peer must be in for its forwarded headers to count (default
    /// [`DEFAULT_TRUSTED_PROXIES`](crate::proxy::DEFAULT_TRUSTED_PROXIES): loopback and private
    /// ranges). A client that reaches the application directly, from anywhere else, is its
    /// own address whatever headers it sends.
    pub trusted_networks: Vec<Network>,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            trusted_hops: 0,
            header: ForwardedHeader::default(),
            trusted_networks: Network::parse_list(DEFAULT_TRUSTED_PROXIES).unwrap_or_default(),
        }
    }
}

impl ProxyConfig {
    /// The client address of `req`, an IPv4-mapped IPv6 address (`::ffff:192.0.2.1`) given as
    /// the IPv4 address it maps.
    ///
    /// Forwarded headers count only when the peer is in one of the trusted networks; then, with
    /// `n` trusted hops, the peer is the last of them, and the forwarding list is walked from
    /// the right, as Rails' `remote_ip` does with a hop count:
    ///
    /// - the `n`th address from the right is the client: the rightmost one that no trusted
    ///   proxy vouches for (anything the client wrote further left is ignored);
    /// - each address walked before it is an intermediate proxy and must be in a trusted
    ///   network: the first that is not is taken as the client, for no trusted proxy stands
    ///   behind what lies to its left;
    /// - a list shorter than `n` ends the walk at its leftmost address (no list at all: the
    ///   peer is the client);
    /// - an entry that is not an address (any bytes, a byte above 0x7F among them, spoil only
    ///   their own entry) where the walk stops makes the client unknown: `None`, which the
    ///   limiter counts as its [`UnknownClient`](crate::keys::UnknownClient) setting says (one
    ///   shared `ip:unknown` identity by default), never as the proxy's address.
    pub fn client_ip(&self, req: &RequestView<'_>) -> Option<IpAddr> {
        self.find(req).map(|ip| ip.to_canonical())
    }

    fn find(&self, req: &RequestView<'_>) -> Option<IpAddr> {
        let peer = req.peer();
        if self.trusted_hops == 0 {
            return peer;
        }
        if !peer.is_some_and(|p| self.is_trusted(p)) {
            tracing::debug!(target: "ratekeeper", peer = ?peer,
                "the peer is not a trusted proxy; its forwarded headers are ignored");
            return peer;
        }
        let chain = match self.header {
            ForwardedHeader::XForwardedFor => {
                x_forwarded_for(&req.header_all_bytes("x-forwarded-for"))
            }
            ForwardedHeader::Forwarded => forwarded(&req.header_all_bytes("forwarded")),
        };
        if chain.is_empty() {
            return peer;
        }
        let walked = chain.iter().rev().take(self.trusted_hops);
        let last = walked.len() - 1;
        for (i, entry) in walked.enumerate() {
            match *entry {
                Some(ip) if i < last && self.is_trusted(ip) => {}
                Some(ip) => return Some(ip),
                None => {
                    tracing::debug!(target: "ratekeeper", hop = i + 1,
                        "a forwarded entry is not an address: the client is unknown");
                    return None;
                }
            }
        }
        None
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted_networks.iter().any(|n| n.contains(ip))
    }
}

/// One address of a forwarding list: `1.2.3.4`, `1.2.3.4:80`, `::1`, `[::1]:80`; anything else
/// (bytes that are not text among them) is no address.
fn address(bytes: &[u8]) -> Option<IpAddr> {
    let s = core::str::from_utf8(bytes).ok()?.trim();
    s.parse::<IpAddr>()
        .ok()
        .or_else(|| s.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| {
            s.strip_prefix('[')
                .and_then(|r| r.strip_suffix(']'))
                .and_then(|v| v.parse().ok())
        })
}

fn x_forwarded_for(values: &[&[u8]]) -> Vec<Option<IpAddr>> {
    values
        .iter()
        .flat_map(|v| v.split(|&b| b == b','))
        .map(address)
        .collect()
}

/// The `for=` of every element of RFC 7239 `Forwarded` values (quoted strings respected).
fn forwarded(values: &[&[u8]]) -> Vec<Option<IpAddr>> {
    let mut out = Vec::new();
    for value in values {
        for element in split_outside_quotes(value, b',') {
            let node = split_outside_quotes(element, b';')
                .into_iter()
                .find_map(|pair| {
                    let eq = pair.iter().position(|&b| b == b'=')?;
                    let (name, v) = (pair[..eq].trim_ascii(), pair[eq + 1..].trim_ascii());
                    name.eq_ignore_ascii_case(b"for").then_some(v)
                });
            out.push(node.and_then(|n| {
                let unquoted = n.strip_prefix(b"\"").and_then(|n| n.strip_suffix(b"\""));
                address(unquoted.unwrap_or(n))
            }));
        }
    }
    out
}

fn split_outside_quotes(s: &[u8], sep: u8) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, &c) in s.iter().enumerate() {
        match c {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            c if c == sep && !quoted => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn client(hops: usize, header: ForwardedHeader, headers: &[(&str, &str)]) -> Option<IpAddr> {
        let headers = headers.to_vec();
        let req = RequestView::new("GET", "/")
            .with_peer(ip("10.0.0.1"))
            .with_headers(&headers);
        ProxyConfig {
            trusted_hops: hops,
            header,
            ..ProxyConfig::default()
        }
        .client_ip(&req)
    }

    #[test]
    fn zero_hops_ignores_every_header() {
        let spoof = [("X-Forwarded-For", "1.1.1.1"), ("Forwarded", "for=2.2.2.2")];
        assert_eq!(
            client(0, ForwardedHeader::XForwardedFor, &spoof),
            Some(ip("10.0.0.1"))
        );
        assert_eq!(
            client(0, ForwardedHeader::Forwarded, &spoof),
            Some(ip("10.0.0.1"))
        );
    }

    #[test]
    fn the_rightmost_untrusted_address_wins() {
        let h = [
            ("X-Forwarded-For", "6.6.6.6, 203.0.113.7"),
            ("x-forwarded-for", "10.9.9.9"),
        ];
        let xff = ForwardedHeader::XForwardedFor;
        assert_eq!(client(1, xff, &h), Some(ip("10.9.9.9")));
        assert_eq!(client(2, xff, &h), Some(ip("203.0.113.7")));
        assert_eq!(
            client(3, xff, &h),
            Some(ip("203.0.113.7")),
            "an untrusted hop ends the walk: it is the client"
        );
        let inside = [("X-Forwarded-For", "10.2.2.2, 10.1.1.1")];
        assert_eq!(
            client(4, xff, &inside),
            Some(ip("10.2.2.2")),
            "a list shorter than the hops: its leftmost address"
        );
        let f = [(
            "Forwarded",
            r#"for=6.6.6.6;proto=http, for="[2001:db8::17]:4711";by=x, for=10.0.0.9"#,
        )];
        let fwd = ForwardedHeader::Forwarded;
        assert_eq!(client(1, fwd, &f), Some(ip("10.0.0.9")));
        assert_eq!(client(2, fwd, &f), Some(ip("2001:db8::17")));
        assert_eq!(client(3, fwd, &f), Some(ip("2001:db8::17")));
        let quoted = [("Forwarded", r#"for="1.2.3.4:80";note="a,b", for=10.5.6.7"#)];
        assert_eq!(client(2, fwd, &quoted), Some(ip("1.2.3.4")));
    }

    /// Every hop walked before the client must be a trusted proxy (item 8 of the hardening
    /// review): with two hops, an intermediate address outside the trusted networks is the
    /// client, not a proxy whose word is taken for the address to its left.
    #[test]
    fn intermediate_hops_must_be_trusted() {
        let xff = ForwardedHeader::XForwardedFor;
        let spoofed = [("X-Forwarded-For", "1.1.1.1, 203.0.113.50")];
        assert_eq!(client(2, xff, &spoofed), Some(ip("203.0.113.50")));
        let proxied = [("X-Forwarded-For", "1.1.1.1, 192.168.4.4")];
        assert_eq!(client(2, xff, &proxied), Some(ip("1.1.1.1")));
    }

    /// A byte that is not text spoils its own entry, not the list: behind one trusted hop the
    /// client is still the entry the proxy appended.
    #[test]
    fn a_stray_byte_spoils_only_its_entry() {
        struct Raw(&'static [u8]);
        impl crate::request::Headers for Raw {
            fn get(&self, _: &str) -> Option<&str> {
                None
            }
            fn get_all_bytes(&self, name: &str) -> Vec<&[u8]> {
                if name.eq_ignore_ascii_case("x-forwarded-for") {
                    vec![self.0]
                } else {
                    Vec::new()
                }
            }
        }
        let config = ProxyConfig {
            trusted_hops: 1,
            ..ProxyConfig::default()
        };
        let client = |raw: &'static [u8]| {
            let headers = Raw(raw);
            let req = RequestView::new("GET", "/")
                .with_peer(ip("10.0.0.1"))
                .with_headers(&headers);
            config.client_ip(&req)
        };
        assert_eq!(client(b"\xe9, 203.0.113.50"), Some(ip("203.0.113.50")));
        assert_eq!(
            client(b"203.0.113.50, \xe9"),
            None,
            "the client's own entry"
        );
    }

    #[test]
    fn garbage_where_the_client_stands_makes_it_unknown_not_the_proxy() {
        for junk in [
            "not-an-ip",
            ",,,",
            "1.2.3.4.5",
            "unknown",
            "\u{0}\u{ffff}",
            "[::1",
            "1.2.3.4, ",
        ] {
            let h = [("X-Forwarded-For", junk), ("Forwarded", junk)];
            assert_eq!(
                client(1, ForwardedHeader::XForwardedFor, &h),
                None,
                "{junk:?}"
            );
            assert_eq!(client(1, ForwardedHeader::Forwarded, &h), None, "{junk:?}");
        }
        let obfuscated = [("Forwarded", "for=_hidden")];
        assert_eq!(client(1, ForwardedHeader::Forwarded, &obfuscated), None);
        // No forwarded header at all: the trusted peer sent the request itself.
        assert_eq!(
            client(1, ForwardedHeader::XForwardedFor, &[]),
            Some(ip("10.0.0.1"))
        );
        assert_eq!(
            client(
                1,
                ForwardedHeader::XForwardedFor,
                &[("X-Forwarded-For", "1.2.3.4:8080")]
            ),
            Some(ip("1.2.3.4"))
        );
    }
}
