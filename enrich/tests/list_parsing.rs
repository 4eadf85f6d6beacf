//! Threat lists come from third parties: no text, however broken, may panic the parser, and every
//! address a list names in any of its formats is found again.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::net::Ipv4Addr;

use proptest::prelude::*;
use vigil_enrich::{AsnDatabase, ListFormat, NamedList};

proptest! {
    #[test]
    fn no_text_panics_the_asn_reader(text in "\\PC{0,400}", probe in any::<u32>()) {
        let database = AsnDatabase::parse(&text);
        let _ = database.lookup(Ipv4Addr::from(probe).into());
    }

    #[test]
    fn every_announced_block_answers_for_its_addresses(
        blocks in proptest::collection::btree_set(any::<u16>(), 1..30),
        host in any::<u8>(),
    ) {
        // Distinct public /24s, 45.x.y.0/24, each its own AS (64512 + index).
        let csv: String = blocks
            .iter()
            .enumerate()
            .map(|(index, block)| {
                let [high, low] = block.to_be_bytes();
                format!("45.{high}.{low}.0/24,{},\"Org {index}\"\n", 64512 + index)
            })
            .collect();
        let database = AsnDatabase::parse(&csv);
        prop_assert_eq!(database.len(), blocks.len());
        for (index, block) in blocks.iter().enumerate() {
            let [high, low] = block.to_be_bytes();
            let ip = Ipv4Addr::new(45, high, low, host);
            let org = format!("Org {index}");
            prop_assert_eq!(
                database.lookup(ip.into()),
                Some((64512 + u32::try_from(index).unwrap(), org.as_str()))
            );
        }
    }

    #[test]
    fn no_text_panics_any_format(text in "\\PC{0,400}") {
        for format in [ListFormat::Auto, ListFormat::Plain, ListFormat::Stix, ListFormat::OtxCsv] {
            let list = NamedList::parse_as("x", &text, format);
            prop_assert_eq!(list.sha256.len(), 64);
        }
    }

    #[test]
    fn no_json_panics_the_stix_reader(text in r#"\{("objects":\[(\{("type":"(indicator|ipv4-addr)"|"pattern":"[\[\]a-z0-9:='. -]{0,40}"|"value":"[0-9.]{0,15}"|"revoked":(true|false))(,)?\}){0,3}\])?\}"#) {
        let _ = NamedList::parse_as("x", &text, ListFormat::Stix);
    }

    #[test]
    fn every_listed_address_is_found_in_every_format(octets in proptest::collection::vec(any::<u32>(), 1..20)) {
        let addresses: Vec<Ipv4Addr> = octets.into_iter().map(Ipv4Addr::from).collect();
        let plain: String = addresses.iter().map(|ip| format!("{ip}\n")).collect();
        let otx = String::from("Indicator type,Indicator,Description\n")
            + &addresses.iter().map(|ip| format!("IPv4,{ip},\"seen, twice\"\n")).collect::<String>();
        let stix = format!(
            r#"{{"type":"bundle","objects":[{}]}}"#,
            addresses
                .iter()
                .map(|ip| format!(r#"{{"type":"indicator","pattern":"[ipv4-addr:value = '{ip}']"}}"#))
                .collect::<Vec<_>>()
                .join(",")
        );
        for text in [plain, otx, stix] {
            let list = NamedList::parse("x", &text);
            prop_assert!(list.bad_lines.is_empty(), "{:?}", list.bad_lines);
            for ip in &addresses {
                prop_assert!(list.set.contains((*ip).into()), "{} in {}", ip, text);
            }
        }
    }
}
