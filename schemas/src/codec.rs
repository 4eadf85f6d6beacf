//! Avro single-object encoding: `C3 01`, the writer schema's 8-byte CRC-64-AVRO (Rabin) fingerprint in
//! little-endian order, then the Avro binary datum. A reader looks the fingerprint up among the schemas
//! it knows and refuses anything else with an error that names the fingerprint, so a record written by
//! an incompatible Vigil (or by something else entirely) never decodes into garbage.

use std::collections::HashMap;

use apache_avro::rabin::Rabin;
use apache_avro::{
    GenericSingleObjectReader, GenericSingleObjectWriter, Schema, from_value, to_value,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::model::{AuditEvent, Detection, EnrichedEvent, Finding, RuntimeEvent};

/// The two marker bytes of Avro single-object encoding.
pub const SINGLE_OBJECT_MAGIC: [u8; 2] = [0xC3, 0x01];
const HEADER_LEN: usize = 10;

/// A record type with its `.avsc` file, the writer schema of everything Vigil encodes.
pub trait Record: Serialize + DeserializeOwned {
    /// The record's full Avro name, `io.vigil.AuditEvent`.
    const FULL_NAME: &'static str;
    /// The text of `schemas/<Name>.avsc`.
    const AVSC: &'static str;
}

macro_rules! record {
    ($ty:ty, $file:literal) => {
        impl Record for $ty {
            const FULL_NAME: &'static str = concat!("io.vigil.", stringify!($ty));
            const AVSC: &'static str = include_str!(concat!("../", $file));
        }
    };
}
record!(AuditEvent, "AuditEvent.avsc");
record!(RuntimeEvent, "RuntimeEvent.avsc");
record!(EnrichedEvent, "EnrichedEvent.avsc");
record!(Detection, "Detection.avsc");
record!(Finding, "Finding.avsc");

/// Every `.avsc` file with the name of the record it defines.
pub const ALL_SCHEMAS: [(&str, &str); 5] = [
    (AuditEvent::FULL_NAME, AuditEvent::AVSC),
    (RuntimeEvent::FULL_NAME, RuntimeEvent::AVSC),
    (EnrichedEvent::FULL_NAME, EnrichedEvent::AVSC),
    (Detection::FULL_NAME, Detection::AVSC),
    (Finding::FULL_NAME, Finding::AVSC),
];

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("schema {name} does not parse: {source}")]
    BadSchema {
        name: &'static str,
        source: Box<apache_avro::Error>,
    },
    #[error("not an Avro single-object record: {0}")]
    NotSingleObject(&'static str),
    #[error(
        "unknown writer schema fingerprint {0:016x}: written by an incompatible version or another producer"
    )]
    UnknownSchema(u64),
    #[error("expected a {expected} record, found {found}")]
    WrongRecord {
        expected: &'static str,
        found: &'static str,
    },
    #[error("Avro datum does not match schema {name}: {source}")]
    Datum {
        name: &'static str,
        source: Box<apache_avro::Error>,
    },
}

/// A schema with its names resolved once: apache-avro's one-shot functions resolve the schema on
/// every call, which cost more than the encoding itself.
struct KnownSchema {
    name: &'static str,
    fingerprint: u64,
    reader: GenericSingleObjectReader,
    /// The writer keeps a scratch buffer, hence the lock (never contended: a stage encodes on one task).
    writer: std::sync::Mutex<GenericSingleObjectWriter>,
}

/// Encodes and decodes Vigil's records. Build it once; it parses the schemas.
pub struct Codec {
    by_fingerprint: HashMap<u64, usize>,
    schemas: Vec<KnownSchema>,
}

impl std::fmt::Debug for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Codec")
            .field("schemas", &self.schemas.len())
            .finish()
    }
}

/// The CRC-64-AVRO fingerprint of a schema's parsing canonical form.
pub fn fingerprint(schema: &Schema) -> u64 {
    let digest = schema.fingerprint::<Rabin>();
    let mut bytes = [0u8; 8];
    for (slot, byte) in bytes.iter_mut().zip(digest.bytes.iter()) {
        *slot = *byte;
    }
    u64::from_le_bytes(bytes)
}

impl Codec {
    pub fn new() -> Result<Self, CodecError> {
        let mut schemas = Vec::with_capacity(ALL_SCHEMAS.len());
        let mut by_fingerprint = HashMap::new();
        for (name, avsc) in ALL_SCHEMAS {
            let schema = Schema::parse_str(avsc).map_err(|source| CodecError::BadSchema {
                name,
                source: Box::new(source),
            })?;
            let fingerprint = fingerprint(&schema);
            let bad = |source| CodecError::BadSchema {
                name,
                source: Box::new(source),
            };
            let writer =
                GenericSingleObjectWriter::new_with_capacity(&schema, 1024).map_err(bad)?;
            let reader = GenericSingleObjectReader::new(schema).map_err(bad)?;
            by_fingerprint.insert(fingerprint, schemas.len());
            schemas.push(KnownSchema {
                name,
                fingerprint,
                reader,
                writer: std::sync::Mutex::new(writer),
            });
        }
        Ok(Self {
            by_fingerprint,
            schemas,
        })
    }

    fn known<T: Record>(&self) -> Result<&KnownSchema, CodecError> {
        self.schemas
            .iter()
            .find(|known| known.name == T::FULL_NAME)
            .ok_or(CodecError::WrongRecord {
                expected: T::FULL_NAME,
                found: "no such schema",
            })
    }

    /// The writer fingerprint of record type `T`.
    pub fn fingerprint_of<T: Record>(&self) -> Result<u64, CodecError> {
        Ok(self.known::<T>()?.fingerprint)
    }

    pub fn encode<T: Record>(&self, record: &T) -> Result<Vec<u8>, CodecError> {
        let known = self.known::<T>()?;
        let datum_error = |source| CodecError::Datum {
            name: known.name,
            source: Box::new(source),
        };
        let value = to_value(record).map_err(datum_error)?;
        let mut out = Vec::with_capacity(HEADER_LEN + 512);
        let mut writer = known
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        writer
            .write_value_ref(&value, &mut out)
            .map_err(datum_error)?;
        Ok(out)
    }

    /// Decodes a record, refusing a writer schema this build does not know.
    pub fn decode<T: Record>(&self, bytes: &[u8]) -> Result<T, CodecError> {
        let (magic, rest) = bytes
            .split_at_checked(2)
            .ok_or(CodecError::NotSingleObject("shorter than the header"))?;
        if magic != SINGLE_OBJECT_MAGIC {
            return Err(CodecError::NotSingleObject("no C3 01 marker"));
        }
        let (fingerprint_bytes, _datum) = rest
            .split_at_checked(8)
            .ok_or(CodecError::NotSingleObject("fingerprint cut short"))?;
        let mut fp = [0u8; 8];
        fp.copy_from_slice(fingerprint_bytes);
        let fingerprint = u64::from_le_bytes(fp);
        let known = self
            .by_fingerprint
            .get(&fingerprint)
            .and_then(|index| self.schemas.get(*index))
            .ok_or(CodecError::UnknownSchema(fingerprint))?;
        if known.name != T::FULL_NAME {
            return Err(CodecError::WrongRecord {
                expected: T::FULL_NAME,
                found: known.name,
            });
        }
        let datum_error = |source| CodecError::Datum {
            name: known.name,
            source: Box::new(source),
        };
        // The reader checks the same header again, then decodes with the names resolved at start.
        let mut remaining = bytes;
        let value = known
            .reader
            .read_value(&mut remaining)
            .map_err(datum_error)?;
        if !remaining.is_empty() {
            return Err(CodecError::NotSingleObject(
                "trailing bytes after the datum",
            ));
        }
        from_value::<T>(&value).map_err(datum_error)
    }
}
