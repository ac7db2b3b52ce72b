//! Address networks (`10.0.0.0/8`, `fc00::/7`): which peers are trusted proxies, and how IPv6
//! clients are grouped.

use core::{fmt, net::IpAddr, str::FromStr};

use ipnet::IpNet;

/// An IPv4 or IPv6 network in CIDR notation: `192.168.0.0/16`, `2001:db8::/32`, or one address
/// (`10.0.0.1`, a /32 or /128). An `ipnet` network; the parser here says more than `ipnet`'s
/// about a list entry that is wrong, and reads an IPv4-mapped IPv6 address as IPv4.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Network(IpNet);

/// The networks trusted as proxies unless configured otherwise: loopback and the private
/// ranges (`127.0.0.0/8`, `::1`, `10.0.0.0/8`, `172.16.0.0/12`, `192.168.0.0/16`, `fc00::/7`),
/// as Rails' remote-IP middleware trusts them.
pub const DEFAULT_TRUSTED_PROXIES: &str =
    "127.0.0.0/8, ::1/128, 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, fc00::/7";

impl Network {
    /// The network of `addr` with a prefix of `prefix` bits (host bits cleared); `None` when
    /// the prefix is longer than the address.
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Self> {
        let net = IpNet::new(addr.to_canonical(), prefix).ok()?;
        Some(Self(net.trunc()))
    }

    /// Whether `ip` is in this network (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&ip.to_canonical())
    }

    /// The first address.
    pub fn addr(&self) -> IpAddr {
        self.0.network()
    }

    /// The prefix length in bits.
    pub fn prefix(&self) -> u8 {
        self.0.prefix_len()
    }

    /// Parses a comma-separated list (`"10.0.0.0/8, fc00::/7"`); empty entries are skipped.
    pub fn parse_list(list: &str) -> Result<Vec<Self>, NetworkError> {
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::parse)
            .collect()
    }
}

fn bits(addr: IpAddr) -> u8 {
    if addr.is_ipv4() { 32 } else { 128 }
}

/// `addr` with every bit after the first `prefix` cleared.
pub(crate) fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    IpNet::new(addr, prefix.min(bits(addr))).map_or(addr, |net| net.network())
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A network that did not parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkError {
    input: String,
    why: &'static str,
}

impl fmt::Display for NetworkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "network {:?}: {}", self.input, self.why)
    }
}

impl core::error::Error for NetworkError {}

impl FromStr for Network {
    type Err = NetworkError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let error = |why| NetworkError {
            input: s.to_owned(),
            why,
        };
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| error("expected an IPv4 or IPv6 address before the /"))?;
        let addr = addr.to_canonical();
        let prefix = match prefix {
            None => bits(addr),
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p
                .parse::<u8>()
                .map_err(|_| error("the prefix length is too long"))?,
            Some(_) => return Err(error("expected a prefix length in bits after the /")),
        };
        Self::new(addr, prefix).ok_or_else(|| {
            error(if addr.is_ipv4() {
                "an IPv4 prefix is at most 32 bits"
            } else {
                "an IPv6 prefix is at most 128 bits"
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn networks_parse_and_contain() {
        let n: Network = "10.1.2.3/8".parse().unwrap();
        assert_eq!(n.to_string(), "10.0.0.0/8");
        assert!(n.contains(ip("10.255.0.1")));
        assert!(n.contains(ip("::ffff:10.9.9.9")), "IPv4-mapped");
        assert!(!n.contains(ip("11.0.0.1")));
        assert!(
            !n.contains(ip("::a00:1")),
            "an IPv6 address is not in an IPv4 network"
        );
        let v6: Network = "fc00::/7".parse().unwrap();
        assert!(v6.contains(ip("fd12:3456::1")));
        assert!(!v6.contains(ip("fe80::1")));
        let one: Network = "192.0.2.1".parse().unwrap();
        assert_eq!(one.to_string(), "192.0.2.1/32");
        assert!(one.contains(ip("192.0.2.1")) && !one.contains(ip("192.0.2.2")));
        let all: Network = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.7")));
        assert_eq!(
            "::ffff:192.0.2.0/24"
                .parse::<Network>()
                .unwrap()
                .to_string(),
            "192.0.2.0/24"
        );
        assert_eq!(
            Network::parse_list(DEFAULT_TRUSTED_PROXIES).unwrap().len(),
            6
        );
    }

    #[test]
    fn bad_networks_say_what_is_wrong() {
        for (bad, why) in [
            ("10.0.0.0/33", "at most 32"),
            ("::/129", "at most 128"),
            ("10.0.0.0/", "prefix length"),
            ("10.0.0.0/-1", "prefix length"),
            ("10.0.0.0/8/8", "prefix length"),
            ("10.0.0/8", "address"),
            ("localhost", "address"),
            ("10.0.0.0/999", "too long"),
        ] {
            let err = bad.parse::<Network>().unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
            assert!(err.contains(&format!("{bad:?}")), "{bad}: {err}");
        }
        assert!(Network::parse_list("10.0.0.0/8, nope").is_err());
    }
}
