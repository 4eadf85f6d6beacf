//! The bodies of Vigil's fuzz targets: one function per parser or decoder, each taking the bytes
//! libFuzzer hands it. Beyond "no panic, no overflow, no endless loop" each checks what must hold
//! for any input (every rejection counted, a decoded record re-encodes to itself, a budget kept).
//!
//! `fuzz_targets/*.rs` call these; `scripts/fuzz.sh` runs them; the seed corpus is `corpus/TARGET/`
//! and inputs that once crashed a target are `regressions/TARGET/`, replayed on every run.

use std::net::IpAddr;

use vigil_detect::{DetectConfig, Engine, RuleSource};
use vigil_enrich::{
    AsnDatabase, ClusterConfig, Enricher, ListFormat, NamedList, ProviderRanges, ThreatIntel,
    TorRelays,
};
use vigil_gateway_decode::{DecodeLimits, audit_webhook, firehose, gunzip, runtime_lines};
use vigil_ingest::{Ingested, Ingestor, Limits};
use vigil_pipeline::{Pipeline, Stages, Step};
use vigil_publish::format::{guardduty, ocsf};
use vigil_schemas::{AuditEvent, Codec, Detection, EnrichedEvent, Finding, Record, RuntimeEvent};
use vigil_settings::{Settings, SettingsArgs};

/// Addresses looked up in every parsed list: both families, edges of the ranges lists write.
const PROBES: [&str; 6] = [
    "0.0.0.0",
    "10.0.0.1",
    "198.51.100.7",
    "255.255.255.255",
    "::",
    "2001:db8::1",
];

fn probes() -> impl Iterator<Item = IpAddr> {
    PROBES.iter().filter_map(|text| text.parse().ok())
}

/// Small limits, so that the fuzzer reaches the size checks with small inputs.
fn small_limits() -> Limits {
    Limits {
        max_event_bytes: 4096,
        max_object_bytes: 1024,
        dedup_window: 64,
        max_inflated_bytes: Some(1 << 20),
    }
}

/// Any bytes as one Kafka message or file: every audit shape (Event, EventList, AKS, GKE,
/// Pub/Sub, CloudWatch, Firehose, exported log lines), runtime events (Tetragon, Falco, native),
/// gzip or plain, JSON lines, pretty-printed or an array. Every rejection is counted.
pub fn ingest(data: &[u8]) {
    let mut ingestor = Ingestor::new(small_limits());
    let mut rejected = 0u64;
    ingestor.ingest_payload_from(data, Some(0), Some("fuzz"), &mut |item: Ingested| {
        if item.is_err() {
            rejected += 1;
        }
    });
    assert_eq!(
        rejected,
        ingestor.stats().rejected_total(),
        "a rejection not counted"
    );
}

/// Any bytes through all four stages, each finding rendered in both formats: the detectors and
/// the correlator see whatever ingest lets through.
pub fn pipeline(data: &[u8]) {
    let Ok(pipeline) = Pipeline::new(&Settings::default(), ThreatIntel::default()) else {
        return;
    };
    let mut pipeline = pipeline.with_ingest_limits(small_limits());
    pipeline.bound_findings(16);
    pipeline.read(data, &mut |_: Step<'_>| {});
    for finding in pipeline.findings() {
        let _ = guardduty::render(finding);
        let _ = ocsf::render(finding);
    }
    for sequence in pipeline.sequences() {
        let _ = ocsf::render_sequence(sequence);
    }
}

/// The gateway's request bodies: the audit webhook's EventList, Firehose's HTTP endpoint request,
/// runtime lines, and gzip within a budget. The first byte picks the decoder.
pub fn gateway(data: &[u8]) {
    let Some((&choice, body)) = data.split_first() else {
        return;
    };
    match choice % 4 {
        0 => {
            let _ = audit_webhook(body);
        }
        1 => {
            let limits = DecodeLimits {
                max_inflated_bytes: 1 << 16,
            };
            let _ = firehose(body, limits);
        }
        2 => {
            let _ = runtime_lines(body);
        }
        _ => {
            let start = 1 << 16;
            let mut budget = start;
            if let Ok(inflated) = gunzip(body, &mut budget) {
                assert!(inflated.len() <= start, "gunzip went past its budget");
                assert_eq!(budget, start - inflated.len(), "budget not charged");
            }
        }
    }
}

/// Splits `data` at its first NUL: a settings or rule text, and the text every file it names
/// reads as.
fn text_and_file(data: &[u8]) -> (String, String) {
    let mut parts = data.splitn(2, |byte| *byte == 0);
    let text = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let file = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    (text, file)
}

/// The settings file, with every file it names (rules, lists, clusters, the ASN database, provider
/// ranges) read as the text after the first NUL; what loads builds a pipeline.
pub fn settings(data: &[u8]) {
    let (text, file) = text_and_file(data);
    let read_file = |_: &std::path::Path| Ok(file.clone());
    let args = SettingsArgs::default();
    let Ok(settings) = Settings::from_text("fuzz.toml", &text, None, &args, &read_file) else {
        return;
    };
    let mut notes = Vec::new();
    let Ok(intel) = settings.threat_intel_with(&mut notes, &read_file) else {
        return;
    };
    if let Ok(mut pipeline) = Pipeline::new(&settings, intel) {
        pipeline.read(file.as_bytes(), &mut |_: Step<'_>| {});
    }
}

/// A rule file beside the built-in rules; a rule file that loads runs on the events after the
/// first NUL.
pub fn rules(data: &[u8]) {
    let (text, events) = text_and_file(data);
    let config = DetectConfig {
        rule_files: vec![RuleSource {
            name: "fuzz.toml".to_owned(),
            text,
        }],
        ..DetectConfig::default()
    };
    let Ok(engine) = Engine::build(&config) else {
        return;
    };
    let mut pipeline = Pipeline::with_engine(&Settings::default(), ThreatIntel::default(), engine);
    pipeline.read(events.as_bytes(), &mut |_: Step<'_>| {});
}

/// Every list format: threat lists (plain, STIX, OTX CSV, sniffed), Tor exits and relays, the ASN
/// database, provider ranges, cluster metadata; each parsed list answers lookups.
pub fn lists(data: &[u8]) {
    let Some((&choice, body)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(body);
    match choice % 8 {
        0 | 1 | 2 | 3 => {
            let format = match choice % 8 {
                0 => ListFormat::Auto,
                1 => ListFormat::Plain,
                2 => ListFormat::Stix,
                _ => ListFormat::OtxCsv,
            };
            let list = NamedList::parse_as("fuzz", &text, format);
            for ip in probes() {
                let _ = list.set.lookup(ip);
            }
        }
        4 => {
            let relays = TorRelays::parse(&text);
            for ip in probes() {
                let _ = relays.lookup(ip);
            }
        }
        5 => {
            let database = AsnDatabase::parse(&text);
            for ip in probes() {
                let _ = database.lookup(ip);
            }
        }
        6 => {
            if let Ok(ranges) = ProviderRanges::parse(&text) {
                for ip in probes() {
                    let _ = ranges.set.lookup(ip);
                }
            }
        }
        _ => {
            if let Ok(clusters) = ClusterConfig::parse(&text).and_then(ClusterConfig::validated) {
                let details = clusters.resolve(Some("fuzz"));
                for ip in probes() {
                    let _ = clusters.network_of(&details.name, ip);
                    let _ = clusters.owns_public(&details.name, ip);
                }
            }
        }
    }
}

/// Decodes `data` as `T`; a record that decodes re-encodes to bytes that decode to the same bytes
/// again (Avro's encoding of a value is unique, so a second round trip must be a fixed point). A
/// record the direct reader takes, the `Value` path takes too, as the same record.
fn avro_round_trip<T: Record>(codec: &Codec, data: &[u8]) {
    let Ok(record) = codec.decode::<T>(data) else {
        return;
    };
    // Compared as bytes: a NaN severity is not equal to itself.
    let through_value = codec
        .decode_through_value::<T>(data)
        .and_then(|record| codec.encode(&record));
    assert_eq!(
        through_value.ok(),
        codec.encode(&record).ok(),
        "the direct reader took a {} the Value path reads otherwise",
        T::FULL_NAME
    );
    let Ok(encoded) = codec.encode(&record) else {
        return;
    };
    let again = codec
        .decode::<T>(&encoded)
        .and_then(|record| codec.encode(&record));
    assert_eq!(
        again.ok().as_deref(),
        Some(encoded.as_slice()),
        "a decoded {} does not survive a round trip",
        T::FULL_NAME
    );
}

/// Avro single-object records of every kind, by this build's schemas and earlier writers'. The
/// first byte picks the record type.
pub fn avro(data: &[u8]) {
    static CODEC: std::sync::OnceLock<Option<Codec>> = std::sync::OnceLock::new();
    let Some(codec) = CODEC.get_or_init(|| Codec::new().ok()) else {
        return;
    };
    let Some((&choice, record)) = data.split_first() else {
        return;
    };
    match choice % 5 {
        0 => avro_round_trip::<AuditEvent>(codec, record),
        1 => avro_round_trip::<RuntimeEvent>(codec, record),
        2 => avro_round_trip::<EnrichedEvent>(codec, record),
        3 => avro_round_trip::<Detection>(codec, record),
        _ => avro_round_trip::<Finding>(codec, record),
    }
}

/// One checkpointed entry off the front of `data`: a key length byte (0 ends the entries), the
/// key, a little-endian `u16` value length (`u16::MAX`: a deletion) and the value.
fn next_entry(data: &[u8]) -> Option<(&[u8], Option<&[u8]>, &[u8])> {
    let (&key_len, rest) = data.split_first()?;
    if key_len == 0 {
        return None;
    }
    let (key, rest) = rest.split_at_checked(usize::from(key_len))?;
    let (len, rest) = rest.split_at_checked(2)?;
    let len = u16::from_le_bytes([*len.first()?, *len.get(1)?]);
    if len == u16::MAX {
        return Some((key, None, rest));
    }
    let (value, rest) = rest.split_at_checked(usize::from(len))?;
    Some((key, Some(value), rest))
}

/// The entries of a checkpoint target input, and the events after them.
pub fn checkpoint_entries(mut data: &[u8]) -> (Vec<(String, Option<Vec<u8>>)>, &[u8]) {
    let mut entries = Vec::new();
    while let Some((key, value, rest)) = next_entry(data) {
        entries.push((
            String::from_utf8_lossy(key).into_owned(),
            value.map(<[u8]>::to_vec),
        ));
        data = rest;
    }
    (entries, data.get(1..).unwrap_or_default())
}

/// Writes entries and events in the checkpoint target's layout (for the seed corpus).
pub fn checkpoint_input(entries: &[(String, Option<Vec<u8>>)], events: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for (key, value) in entries {
        // A key of no bytes would read as the end of the entries.
        let Ok(key_len @ 1..) = u8::try_from(key.len()) else {
            continue;
        };
        let value_len = match value {
            Some(value) => match u16::try_from(value.len()) {
                Ok(len) if len < u16::MAX => len,
                _ => continue,
            },
            None => u16::MAX,
        };
        out.push(key_len);
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(&value_len.to_le_bytes());
        out.extend_from_slice(value.as_deref().unwrap_or_default());
    }
    out.push(0);
    out.extend_from_slice(events);
    out
}

/// Checkpointed state entries restored into detect and enrich, which must then process the events
/// after them: restored state is as hostile as input (a state topic anyone could write to, a record
/// of an older release).
pub fn checkpoint(data: &[u8]) {
    let mut engine = Engine::default();
    let mut enricher = Enricher::default();
    let (entries, events) = checkpoint_entries(data);
    for (key, value) in &entries {
        if !engine.restore(key, value.as_deref()) {
            let _ = enricher.restore(key, value.as_deref());
        }
    }
    let mut pipeline = Pipeline::from_stages(Stages {
        ingestor: Ingestor::default(),
        enricher,
        engine,
        ..Stages::default()
    });
    pipeline.read(events, &mut |_: Step<'_>| {});
}
