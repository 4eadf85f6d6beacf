//! Addresses and CIDR blocks, once: every address as a 128-bit number (IPv4 in its IPv6-mapped
//! form, so one table holds both families), every block as a prefix of it. Threat lists, cluster
//! ranges, provider ranges and the ASN database all read blocks through here.

use std::net::IpAddr;

/// An address as a number: IPv4 mapped into IPv6 (`::ffff:a.b.c.d`), IPv6 as it is.
pub fn mapped(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().to_bits(),
        IpAddr::V6(v6) => v6.to_bits(),
    }
}

/// The first `length` bits of `bits`, the rest cleared.
pub fn mask(bits: u128, length: u8) -> u128 {
    if length == 0 {
        0
    } else {
        bits & (u128::MAX << (128 - u32::from(length.min(128))))
    }
}

/// A CIDR block (or one address, a block of one) in the mapped space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    /// The network address, host bits cleared.
    pub network: u128,
    /// The prefix length in the mapped space: an IPv4 /24 is 120.
    pub length: u8,
}

impl Cidr {
    /// `1.2.3.4`, `1.2.3.0/24`, `2001:db8::/32` (spaces around the parts allowed); `None` for
    /// anything else, a prefix longer than the family's included.
    pub fn parse(text: &str) -> Option<Self> {
        let (address, length) = match text.split_once('/') {
            Some((address, length)) => (address.trim(), Some(length.trim().parse::<u8>().ok()?)),
            None => (text.trim(), None),
        };
        let ip: IpAddr = address.parse().ok()?;
        let (offset, max) = if ip.is_ipv4() { (96u8, 32u8) } else { (0, 128) };
        let length = length.unwrap_or(max);
        if length > max {
            return None;
        }
        let length = offset + length;
        Some(Self {
            network: mask(mapped(ip), length),
            length,
        })
    }

    pub fn first(self) -> u128 {
        self.network
    }

    pub fn last(self) -> u128 {
        let host_bits = 128 - u32::from(self.length);
        if host_bits >= 128 {
            u128::MAX
        } else {
            self.network | ((1u128 << host_bits) - 1)
        }
    }

    pub fn contains(self, ip: IpAddr) -> bool {
        mask(mapped(ip), self.length) == self.network
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_of_both_families_parse_and_hold_their_addresses() {
        let block = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(block.contains("10.1.200.3".parse().unwrap()));
        assert!(!block.contains("10.2.0.1".parse().unwrap()));
        assert_eq!(block.last() - block.first(), 65_535);
        let one = Cidr::parse(" 203.0.113.7 ").unwrap();
        assert_eq!(one.first(), one.last());
        assert!(
            Cidr::parse("2001:db8::/32")
                .unwrap()
                .contains("2001:db8::1".parse().unwrap())
        );
        assert_eq!(Cidr::parse("0.0.0.0/0").unwrap().length, 96);
        for bad in [
            "10.0.0.0/33",
            "2001:db8::/129",
            "10.0.0.0/x",
            "host.example",
            "",
        ] {
            assert_eq!(Cidr::parse(bad), None, "{bad}");
        }
    }
}
