//! The Tor relay list the user supplies: every relay's addresses and OR ports, from the Tor
//! Project's network consensus (`r` and `a` lines of `cached-consensus` or
//! `https://collector.torproject.org/recent/relay-descriptors/consensuses/`), Onionoo's details
//! document (`https://onionoo.torproject.org/details?type=relay&fields=or_addresses`), or plain
//! lines of `address` or `address:port`. Parsing is free of I/O.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

/// Relays by address, with their OR ports.
#[derive(Debug, Clone, Default)]
pub struct TorRelays {
    or_ports: HashMap<IpAddr, Vec<u16>>,
    /// Lines (1-based) that were none of the forms, with their first characters.
    pub bad_lines: Vec<(usize, String)>,
}

impl TorRelays {
    /// Reads a consensus, an Onionoo details document or plain lines (told apart by content).
    pub fn parse(text: &str) -> Self {
        let mut relays = Self::default();
        if text.trim_start().starts_with('{') {
            relays.read_onionoo(text);
        } else {
            relays.read_lines(text);
        }
        for ports in relays.or_ports.values_mut() {
            ports.sort_unstable();
            ports.dedup();
        }
        relays
    }

    fn add(&mut self, ip: IpAddr, port: Option<u16>) {
        let ip = canonical(ip);
        let ports = self.or_ports.entry(ip).or_default();
        ports.extend(port);
    }

    fn read_onionoo(&mut self, text: &str) {
        let Ok(document) = serde_json::from_str::<serde_json::Value>(text) else {
            self.bad_lines
                .push((1, text.chars().take(80).collect::<String>()));
            return;
        };
        let relays = document
            .get("relays")
            .and_then(serde_json::Value::as_array)
            .map_or(&[][..], Vec::as_slice);
        for (index, relay) in relays.iter().enumerate() {
            let addresses = relay
                .get("or_addresses")
                .and_then(serde_json::Value::as_array)
                .map_or(&[][..], Vec::as_slice);
            for address in addresses.iter().filter_map(serde_json::Value::as_str) {
                match address.parse::<SocketAddr>() {
                    Ok(socket) => self.add(socket.ip(), Some(socket.port())),
                    Err(_) => self
                        .bad_lines
                        .push((index + 1, address.chars().take(80).collect())),
                }
            }
        }
    }

    fn read_lines(&mut self, text: &str) {
        // A consensus (or a server descriptor dump) is mostly lines that say nothing of addresses;
        // plain lists are addresses only, and anything else in them is a mistake worth naming.
        let consensus = text
            .lines()
            .any(|line| line.starts_with("r ") || line.starts_with("network-status-version"));
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            let read = match fields.as_slice() {
                // r nickname identity digest date time address or-port dir-port
                ["r", _, _, _, _, _, address, or_port, ..] => {
                    match (address.parse::<IpAddr>(), or_port.parse::<u16>()) {
                        (Ok(ip), Ok(port)) => {
                            self.add(ip, Some(port));
                            true
                        }
                        _ => false,
                    }
                }
                // a [v6]:port (or v4:port): a relay's other OR address
                ["a", address] => match address.parse::<SocketAddr>() {
                    Ok(socket) => {
                        self.add(socket.ip(), Some(socket.port()));
                        true
                    }
                    Err(_) => false,
                },
                // Every other consensus line (s, v, w, p, m, directory-signature...) says nothing
                // of addresses.
                [keyword, ..]
                    if consensus && keyword.chars().all(|c| c.is_ascii_lowercase() || c == '-') =>
                {
                    true
                }
                [address] => {
                    if let Ok(socket) = address.parse::<SocketAddr>() {
                        self.add(socket.ip(), Some(socket.port()));
                        true
                    } else if let Ok(ip) = address.parse::<IpAddr>() {
                        self.add(ip, None);
                        true
                    } else {
                        false
                    }
                }
                _ => false,
            };
            if !read {
                self.bad_lines
                    .push((index + 1, line.chars().take(80).collect()));
            }
        }
    }

    /// The OR ports of the relay at `ip` (empty when the list does not say), if it is one.
    pub fn lookup(&self, ip: IpAddr) -> Option<&[u16]> {
        self.or_ports.get(&canonical(ip)).map(Vec::as_slice)
    }

    /// Relay addresses known.
    pub fn len(&self) -> usize {
        self.or_ports.len()
    }

    pub fn is_empty(&self) -> bool {
        self.or_ports.is_empty()
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_consensus_gives_addresses_and_or_ports() {
        let relays = TorRelays::parse(
            "network-status-version 3\nvalid-after 2026-12-06 22:00:00\n\
             r relayA AAAAAAAAAAAAAAAAAAAAAAAAAAA BBBBBBBBBBBBBBBBBBBBBBBBBBB 2026-12-06 21:14:02 198.51.100.10 9001 0\n\
             a [2001:db8::10]:9001\n\
             s Fast Guard Running Stable Valid\nv Tor 0.4.8.13\nw Bandwidth=9000\n\
             r relayB CCCCCCCCCCCCCCCCCCCCCCCCCCC DDDDDDDDDDDDDDDDDDDDDDDDDDD 2026-12-06 20:01:00 198.51.100.11 443 80\n\
             directory-footer\n",
        );
        assert_eq!(relays.len(), 3);
        assert_eq!(
            relays.lookup("198.51.100.10".parse().unwrap()),
            Some(&[9001][..])
        );
        assert_eq!(
            relays.lookup("2001:db8::10".parse().unwrap()),
            Some(&[9001][..])
        );
        assert_eq!(
            relays.lookup("198.51.100.11".parse().unwrap()),
            Some(&[443][..])
        );
        assert_eq!(relays.lookup("198.51.100.12".parse().unwrap()), None);
        assert!(relays.bad_lines.is_empty(), "{:?}", relays.bad_lines);
    }

    #[test]
    fn onionoo_and_plain_lines_read_too_and_bad_lines_are_named() {
        let onionoo = TorRelays::parse(
            r#"{"version":"9.0","relays":[{"or_addresses":["203.0.113.5:9001","[2001:db8::5]:443"]},{"or_addresses":["nonsense"]}]}"#,
        );
        assert_eq!(
            onionoo.lookup("203.0.113.5".parse().unwrap()),
            Some(&[9001][..])
        );
        assert_eq!(
            onionoo.lookup("2001:db8::5".parse().unwrap()),
            Some(&[443][..])
        );
        assert_eq!(onionoo.bad_lines.len(), 1);
        let plain = TorRelays::parse(
            "# relays\n203.0.113.6\n203.0.113.7:9001\n::ffff:203.0.113.8\nnot an address at all!\n",
        );
        assert_eq!(plain.lookup("203.0.113.6".parse().unwrap()), Some(&[][..]));
        assert_eq!(
            plain.lookup("203.0.113.7".parse().unwrap()),
            Some(&[9001][..])
        );
        assert_eq!(
            plain.lookup("::ffff:203.0.113.7".parse().unwrap()),
            Some(&[9001][..])
        );
        assert_eq!(plain.lookup("203.0.113.8".parse().unwrap()), Some(&[][..]));
        assert_eq!(plain.bad_lines, [(5, "not an address at all!".to_owned())]);
    }
}
