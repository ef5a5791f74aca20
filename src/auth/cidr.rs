//! CIDR ranges for tokens bound to networks (`npm token create --cidr=…`): the client address
//! must fall in one of them, or the token is treated as unknown.

use std::net::IpAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// `10.0.0.0/8`, `2001:db8::/32`, or a bare address (a single host).
    pub fn parse(s: &str) -> Option<Cidr> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let network: IpAddr = addr.parse().ok()?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && p.len() <= 3 => p.parse::<u8>().ok()?,
            Some(_) => return None,
            None => max,
        };
        (prefix <= max).then_some(Cidr { network, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => prefix_eq(&n.octets(), &a.octets(), self.prefix),
            (IpAddr::V6(n), IpAddr::V6(a)) => prefix_eq(&n.octets(), &a.octets(), self.prefix),
            // An IPv4 client seen as an IPv4-mapped IPv6 address, against an IPv4 range.
            (IpAddr::V4(n), IpAddr::V6(a)) => a.to_ipv4_mapped().is_some_and(|a| prefix_eq(&n.octets(), &a.octets(), self.prefix)),
            (IpAddr::V6(_), IpAddr::V4(_)) => false,
        }
    }
}

/// Whether the first `bits` bits of `a` and `b` agree.
fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let bits = bits as usize;
    a.iter().zip(b).enumerate().all(|(i, (x, y))| {
        let from = i * 8;
        if from >= bits {
            return true;
        }
        let take = (bits - from).min(8) as u32;
        let mask = (0xffu16 << (8 - take)) as u8;
        x & mask == y & mask
    })
}

/// Whether `client` is inside one of `ranges`. An unknown client address is outside all of
/// them (a bound token fails closed).
pub fn allows(ranges: &[String], client: Option<&str>) -> bool {
    let Some(ip) = client.and_then(|c| c.parse::<IpAddr>().ok()) else {
        return false;
    };
    ranges.iter().filter_map(|r| Cidr::parse(r)).any(|c| c.contains(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_hosts() {
        let r = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(allows(&r(&["10.0.0.0/8"]), Some("10.200.1.1")));
        assert!(!allows(&r(&["10.0.0.0/8"]), Some("11.0.0.1")));
        assert!(allows(&r(&["192.168.1.7"]), Some("192.168.1.7")));
        assert!(!allows(&r(&["192.168.1.7"]), Some("192.168.1.8")));
        assert!(allows(&r(&["172.16.0.0/12"]), Some("172.31.255.255")));
        assert!(!allows(&r(&["172.16.0.0/12"]), Some("172.32.0.0")));
        assert!(allows(&r(&["0.0.0.0/0"]), Some("8.8.8.8")));
        assert!(allows(&r(&["2001:db8::/32"]), Some("2001:db8:1::5")));
        assert!(!allows(&r(&["2001:db8::/32"]), Some("2001:db9::5")));
        assert!(allows(&r(&["127.0.0.0/8"]), Some("::ffff:127.0.0.1")));
        assert!(!allows(&r(&["10.0.0.0/8"]), None));
        assert!(!allows(&r(&["10.0.0.0/8"]), Some("not-an-ip")));
    }

    #[test]
    fn refuses_malformed_ranges() {
        for bad in ["", "10.0.0.0/33", "10.0.0/8", "::/129", "10.0.0.0/", "10.0.0.0/+8", "10.0.0.0/8/8", "x"] {
            assert!(Cidr::parse(bad).is_none(), "{bad}");
        }
    }
}
