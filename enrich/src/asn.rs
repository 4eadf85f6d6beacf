//! Autonomous systems of public addresses, from a database the user supplies (Vigil ships none: the
//! good ones are licensed or updated daily). Two free formats are read, told apart by content:
//!
//! - MaxMind GeoLite2-ASN's CSV (`GeoLite2-ASN-Blocks-IPv4.csv`, `-IPv6.csv`): a header line
//!   `network,autonomous_system_number,autonomous_system_organization`, then `1.0.0.0/24,13335,"CLOUDFLARENET"`;
//! - iptoasn.com's `ip2asn-v4.tsv` / `ip2asn-combined.tsv`: `range_start<TAB>range_end<TAB>AS_number<TAB>country<TAB>description`
//!   (AS 0, "Not routed", is skipped).
//!
//! No I/O: the text arrives parsed by the caller. Lookups are a binary search over sorted ranges.

use std::net::IpAddr;

/// One announced range, both ends inclusive, IPv4 mapped into IPv6's space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Range {
    start: u128,
    end: u128,
    asn: u32,
    organization: u32,
}

/// A parsed ASN database.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AsnDatabase {
    ranges: Vec<Range>,
    organizations: Vec<String>,
    /// (line number, text) of lines that could not be read.
    pub bad_lines: Vec<(usize, String)>,
}

use crate::cidr::{Cidr, mapped as address};

/// A CIDR's first and last address (GeoLite2 names every network as a block).
fn cidr_range(text: &str) -> Option<(u128, u128)> {
    if !text.contains('/') {
        return None;
    }
    let block = Cidr::parse(text)?;
    Some((block.first(), block.last()))
}

impl AsnDatabase {
    /// Reads either format; lines that are neither are kept in `bad_lines` (comments and blank lines
    /// are skipped).
    pub fn parse(text: &str) -> Self {
        let mut database = Self::default();
        let mut organizations: std::collections::HashMap<String, u32> =
            std::collections::HashMap::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty()
                || line.starts_with('#')
                || line.starts_with("network,autonomous_system_number")
            {
                continue;
            }
            let parsed = if line.contains('\t') {
                Self::tsv_line(line)
            } else {
                Self::csv_line(line)
            };
            match parsed {
                Some((_, _, 0, _)) => {}
                Some((start, end, asn, organization)) if start <= end => {
                    let next = u32::try_from(organizations.len()).unwrap_or(u32::MAX);
                    let id = *organizations
                        .entry(organization.clone())
                        .or_insert_with(|| {
                            database.organizations.push(organization);
                            next
                        });
                    database.ranges.push(Range {
                        start,
                        end,
                        asn,
                        organization: id,
                    });
                }
                _ => database
                    .bad_lines
                    .push((index + 1, line.chars().take(80).collect())),
            }
        }
        database
            .ranges
            .sort_by_key(|range| (range.start, range.end));
        database
    }

    /// `1.0.0.0/24,13335,"CLOUDFLARENET"` (the organization may be quoted and hold commas).
    fn csv_line(line: &str) -> Option<(u128, u128, u32, String)> {
        let (network, rest) = line.split_once(',')?;
        let (asn, organization) = rest.split_once(',').unwrap_or((rest, ""));
        let (start, end) = cidr_range(network)?;
        let asn = asn.trim().parse().ok()?;
        let organization = organization.trim().trim_matches('"').replace("\"\"", "\"");
        Some((start, end, asn, organization))
    }

    /// `1.0.0.0<TAB>1.0.0.255<TAB>13335<TAB>US<TAB>CLOUDFLARENET`.
    fn tsv_line(line: &str) -> Option<(u128, u128, u32, String)> {
        let mut fields = line.split('\t');
        let start: IpAddr = fields.next()?.trim().parse().ok()?;
        let end: IpAddr = fields.next()?.trim().parse().ok()?;
        if start.is_ipv4() != end.is_ipv4() {
            return None;
        }
        let asn = fields.next()?.trim().parse().ok()?;
        let _country = fields.next();
        let organization = fields.next().unwrap_or("").trim().to_owned();
        Some((address(start), address(end), asn, organization))
    }

    /// The autonomous system announcing `ip`, and its organization.
    pub fn lookup(&self, ip: IpAddr) -> Option<(u32, &str)> {
        let wanted = address(ip);
        // The last range starting at or before the address; ranges of a database do not overlap.
        let after = self.ranges.partition_point(|range| range.start <= wanted);
        let range = self.ranges.get(after.checked_sub(1)?)?;
        (range.end >= wanted).then(|| {
            let organization = usize::try_from(range.organization)
                .ok()
                .and_then(|index| self.organizations.get(index))
                .map_or("", String::as_str);
            (range.asn, organization)
        })
    }

    /// Announced ranges held.
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    #[test]
    fn maxmind_csv_is_read_with_quoted_organizations() {
        let database = AsnDatabase::parse(
            "network,autonomous_system_number,autonomous_system_organization\n\
             1.0.0.0/24,13335,CLOUDFLARENET\n\
             3.5.140.0/22,16509,\"AMAZON-02\"\n\
             203.0.113.0/24,64500,\"Example, Inc.\"\n\
             2001:db8::/32,64501,Doc Net\n\
             not a line\n",
        );
        assert_eq!(database.len(), 4);
        assert_eq!(database.lookup(ip("3.5.141.7")), Some((16509, "AMAZON-02")));
        assert_eq!(
            database.lookup(ip("203.0.113.255")),
            Some((64500, "Example, Inc."))
        );
        assert_eq!(
            database.lookup(ip("2001:db8:1::5")),
            Some((64501, "Doc Net"))
        );
        assert_eq!(database.lookup(ip("3.5.144.0")), None);
        assert_eq!(database.lookup(ip("8.8.8.8")), None);
        assert_eq!(database.bad_lines, [(6, "not a line".to_owned())]);
    }

    #[test]
    fn iptoasn_tsv_is_read_and_unrouted_space_skipped() {
        let database = AsnDatabase::parse(
            "1.0.0.0\t1.0.0.255\t13335\tUS\tCLOUDFLARENET\n\
             1.0.1.0\t1.0.3.255\t0\tNone\tNot routed\n\
             1.0.4.0\t1.0.7.255\t38803\tAU\tWPL-AS-AP Wirefreebroadband Pty Ltd\n\
             1.0.8.0\t1.0.9.255\t1\tUS\n",
        );
        assert_eq!(database.len(), 3);
        assert_eq!(
            database.lookup(ip("1.0.0.1")),
            Some((13335, "CLOUDFLARENET"))
        );
        assert_eq!(database.lookup(ip("1.0.2.1")), None);
        assert_eq!(
            database.lookup(ip("1.0.6.9")),
            Some((38803, "WPL-AS-AP Wirefreebroadband Pty Ltd"))
        );
        assert_eq!(database.lookup(ip("1.0.9.9")), Some((1, "")));
        assert!(database.bad_lines.is_empty());
    }

    #[test]
    fn any_text_parses_without_panicking() {
        for text in [
            "",
            "\t\t\t",
            "1.0.0.0/99,1,x",
            "::/0,4294967295,all",
            "0.0.0.0/0,1",
            "1.0.0.0\t::1\t5\tUS\tx",
            ",,,,",
        ] {
            let database = AsnDatabase::parse(text);
            let _ = database.lookup(ip("1.2.3.4"));
        }
        // The whole space in one range still answers.
        let everything = AsnDatabase::parse("::/0,64512,Everything");
        assert_eq!(
            everything.lookup(ip("9.9.9.9")),
            Some((64512, "Everything"))
        );
    }
}
