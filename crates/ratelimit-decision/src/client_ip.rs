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
    /// [`DEFAULT_TRUSTED_PROXIES`](crate::DEFAULT_TRUSTED_PROXIES): loopback and private
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
    /// With `n` trusted hops, the peer is the last of them and the client is the `n`th address
    /// from the right of the forwarding list: the rightmost address no trusted proxy vouches
    /// for. Anything the client wrote further left is ignored. Forwarded headers count only
    /// when the peer is in one of the trusted networks. A list shorter than `n`, or a
    /// malformed entry where the client should be, falls back to the peer address.
    pub fn client_ip(&self, req: &RequestView<'_>) -> Option<IpAddr> {
        self.find(req).map(|ip| ip.to_canonical())
    }

    fn find(&self, req: &RequestView<'_>) -> Option<IpAddr> {
        let peer = req.peer();
        if self.trusted_hops == 0 {
            return peer;
        }
        if !peer.is_some_and(|p| self.trusted_networks.iter().any(|n| n.contains(p))) {
            tracing::debug!(target: "ratelimit", peer = ?peer,
                "the peer is not a trusted proxy; its forwarded headers are ignored");
            return peer;
        }
        let chain = match self.header {
            ForwardedHeader::XForwardedFor => x_forwarded_for(&req.header_all("x-forwarded-for")),
            ForwardedHeader::Forwarded => forwarded(&req.header_all("forwarded")),
        };
        let Some(index) = chain.len().checked_sub(self.trusted_hops) else {
            tracing::debug!(target: "ratelimit", hops = self.trusted_hops, found = chain.len(),
                "fewer forwarded addresses than trusted hops; using the peer address");
            return peer;
        };
        match chain[index] {
            Some(ip) => Some(ip),
            None => {
                tracing::debug!(target: "ratelimit", "malformed forwarded address; using the peer address");
                peer
            }
        }
    }
}

/// One address of a forwarding list: `1.2.3.4`, `1.2.3.4:80`, `::1`, `[::1]:80`.
fn address(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    s.parse::<IpAddr>()
        .ok()
        .or_else(|| s.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| {
            s.strip_prefix('[')
                .and_then(|r| r.strip_suffix(']'))
                .and_then(|v| v.parse().ok())
        })
}

fn x_forwarded_for(values: &[&str]) -> Vec<Option<IpAddr>> {
    values
        .iter()
        .flat_map(|v| v.split(','))
        .map(address)
        .collect()
}

/// The `for=` of every element of RFC 7239 `Forwarded` values (quoted strings respected).
fn forwarded(values: &[&str]) -> Vec<Option<IpAddr>> {
    let mut out = Vec::new();
    for value in values {
        for element in split_outside_quotes(value, ',') {
            let node = split_outside_quotes(element, ';')
                .into_iter()
                .find_map(|pair| {
                    let (name, v) = pair.split_once('=')?;
                    name.trim().eq_ignore_ascii_case("for").then_some(v.trim())
                });
            out.push(node.and_then(|n| address(n.trim_matches('"'))));
        }
    }
    out
}

fn split_outside_quotes(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                parts.push(&s[start..i]);
                start = i + c.len_utf8();
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
            ("x-forwarded-for", "192.0.2.9"),
        ];
        assert_eq!(
            client(1, ForwardedHeader::XForwardedFor, &h),
            Some(ip("192.0.2.9"))
        );
        assert_eq!(
            client(2, ForwardedHeader::XForwardedFor, &h),
            Some(ip("203.0.113.7"))
        );
        assert_eq!(
            client(4, ForwardedHeader::XForwardedFor, &h),
            Some(ip("10.0.0.1")),
            "too short"
        );
        let f = [(
            "Forwarded",
            r#"for=6.6.6.6;proto=http, for="[2001:db8::17]:4711";by=x"#,
        )];
        assert_eq!(
            client(1, ForwardedHeader::Forwarded, &f),
            Some(ip("2001:db8::17"))
        );
        assert_eq!(
            client(2, ForwardedHeader::Forwarded, &f),
            Some(ip("6.6.6.6"))
        );
        let quoted = [("Forwarded", r#"for="1.2.3.4:80";note="a,b", for=5.6.7.8"#)];
        assert_eq!(
            client(2, ForwardedHeader::Forwarded, &quoted),
            Some(ip("1.2.3.4"))
        );
    }

    #[test]
    fn garbage_falls_back_to_the_peer() {
        for junk in [
            "",
            "not-an-ip",
            ",,,",
            "1.2.3.4.5",
            "unknown",
            "\u{0}\u{ffff}",
            "[::1",
        ] {
            let h = [("X-Forwarded-For", junk), ("Forwarded", junk)];
            assert_eq!(
                client(1, ForwardedHeader::XForwardedFor, &h),
                Some(ip("10.0.0.1")),
                "{junk:?}"
            );
            assert_eq!(
                client(1, ForwardedHeader::Forwarded, &h),
                Some(ip("10.0.0.1")),
                "{junk:?}"
            );
        }
        let obfuscated = [("Forwarded", "for=_hidden")];
        assert_eq!(
            client(1, ForwardedHeader::Forwarded, &obfuscated),
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
