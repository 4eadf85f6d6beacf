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
use vigil_enrich::{ListFormat, NamedList};

proptest! {
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
