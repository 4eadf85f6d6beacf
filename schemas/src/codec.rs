//! Avro single-object encoding: `C3 01`, the writer schema's 8-byte CRC-64-AVRO (Rabin) fingerprint in
//! little-endian order, then the Avro binary datum. A reader looks the fingerprint up among the schemas
//! it knows and refuses anything else with an error that names the fingerprint, so a record written by
//! an incompatible Vigil (or by something else entirely) never decodes into garbage.
//!
//! The schemas it knows are this build's (`schemas/*.avsc`, what it writes) and every writer schema an
//! earlier release wrote (`schemas/history/<Record>/<fingerprint>.avsc`): a record of an earlier
//! release is decoded with its own writer schema and resolved to this build's by Avro's schema
//! resolution (a field added since takes its default), so topics and saved state written before an
//! upgrade are read after it. Rolling upgrades follow from it: a field is added with a default, the
//! schema it replaces goes into the history, and a stage of the new release reads what the old one
//! still writes.

use std::collections::HashMap;

use apache_avro::rabin::Rabin;
use apache_avro::{
    GenericSingleObjectReader, GenericSingleObjectWriter, Schema, from_value, to_value,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::model::{AuditEvent, Detection, EnrichedEvent, Finding, RuntimeEvent};
use crate::{bounds, direct, flat};

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
/// An earlier release's writer schema: (record's full name, file name in the history, text).
macro_rules! history {
    ($ty:ident, $fingerprint:literal) => {
        (
            concat!("io.vigil.", stringify!($ty)),
            concat!(stringify!($ty), "/", $fingerprint, ".avsc"),
            include_str!(concat!(
                "../history/",
                stringify!($ty),
                "/",
                $fingerprint,
                ".avsc"
            )),
        )
    };
}

record!(AuditEvent, "AuditEvent.avsc");
record!(RuntimeEvent, "RuntimeEvent.avsc");
record!(EnrichedEvent, "EnrichedEvent.avsc");
record!(Detection, "Detection.avsc");
record!(Finding, "Finding.avsc");

/// The writer schemas of earlier releases, by record: `schemas/history/<Record>/<fingerprint>.avsc`.
/// A test holds this list to the directory, so none is forgotten.
pub const HISTORY: [(&str, &str, &str); 11] = [
    history!(AuditEvent, "a8cbb10e67e3ad7e"),
    history!(RuntimeEvent, "00ca457dc1afe118"),
    history!(EnrichedEvent, "0cebec42cef3d6cd"),
    history!(EnrichedEvent, "244f0ebbd7d6f8e3"),
    history!(Detection, "73fad64cd3382e94"),
    history!(Finding, "64f1cdf8bc4ed2cb"),
    history!(Detection, "a4fc4b4b4d42a169"),
    history!(Finding, "14e4b68b64b9ca9a"),
    history!(EnrichedEvent, "5de0f59ede2d954e"),
    history!(AuditEvent, "145f23d489364511"),
    history!(EnrichedEvent, "3f9f55c03ae2b720"),
];

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
    /// A datum declaring a string, array or map larger than the datum itself (checked before
    /// decoding, which would reserve room for it): see `bounds`.
    #[error("Avro datum of {name} declares more than it holds: {detail}")]
    Overstated { name: &'static str, detail: String },
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
    /// The parsed schema, the reader an earlier writer's records are resolved to.
    schema: Schema,
    /// Its named types, for the bounds check.
    names: bounds::Names,
    reader: GenericSingleObjectReader,
    /// The writer keeps a scratch buffer, hence the lock (never contended: a stage encodes on one task).
    writer: std::sync::Mutex<GenericSingleObjectWriter>,
    /// The schema with its named types inlined, for the direct serde writer (see `flat`).
    flat: Option<Schema>,
    /// Whether the direct reader (see `direct`) reads the flat schema.
    direct_read: bool,
}

/// An earlier release's writer schema, and the index of this build's schema of the same record.
struct EarlierSchema {
    writer: Schema,
    names: bounds::Names,
    current: usize,
}

/// Encodes and decodes Vigil's records. Build it once; it parses the schemas.
pub struct Codec {
    by_fingerprint: HashMap<u64, usize>,
    schemas: Vec<KnownSchema>,
    earlier: HashMap<u64, EarlierSchema>,
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
            let reader = GenericSingleObjectReader::new(schema.clone()).map_err(bad)?;
            let names = bounds::names_of(&schema).map_err(bad)?;
            let flat = flat::inline_references(&schema, &names);
            let direct_read = flat.as_ref().is_some_and(direct::supports);
            by_fingerprint.insert(fingerprint, schemas.len());
            schemas.push(KnownSchema {
                name,
                fingerprint,
                names,
                schema,
                reader,
                writer: std::sync::Mutex::new(writer),
                flat,
                direct_read,
            });
        }
        let mut earlier = HashMap::new();
        for (name, _, avsc) in HISTORY {
            let writer = Schema::parse_str(avsc).map_err(|source| CodecError::BadSchema {
                name,
                source: Box::new(source),
            })?;
            let current = schemas.iter().position(|known| known.name == name).ok_or(
                CodecError::WrongRecord {
                    expected: name,
                    found: "no such schema",
                },
            )?;
            let names = bounds::names_of(&writer).map_err(|source| CodecError::BadSchema {
                name,
                source: Box::new(source),
            })?;
            earlier.insert(
                fingerprint(&writer),
                EarlierSchema {
                    writer,
                    names,
                    current,
                },
            );
        }
        Ok(Self {
            by_fingerprint,
            schemas,
            earlier,
        })
    }

    /// Whether `fingerprint` is the writer schema of an earlier release.
    pub fn is_earlier_schema(&self, fingerprint: u64) -> bool {
        self.earlier.contains_key(&fingerprint)
    }

    /// A record an earlier release wrote: decoded with its writer schema, resolved to this build's.
    fn decode_earlier<T: Record>(
        &self,
        earlier: &EarlierSchema,
        mut datum: &[u8],
    ) -> Result<T, CodecError> {
        let known = self
            .schemas
            .get(earlier.current)
            .ok_or(CodecError::WrongRecord {
                expected: T::FULL_NAME,
                found: "no such schema",
            })?;
        expect_record::<T>(known.name)?;
        bounds::check(&earlier.writer, &earlier.names, datum).map_err(|detail| {
            CodecError::Overstated {
                name: known.name,
                detail,
            }
        })?;
        let value = apache_avro::from_avro_datum(&earlier.writer, &mut datum, Some(&known.schema))
            .map_err(datum_error(known.name))?;
        into_record(&value, datum, known.name)
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
        // Straight from `Serialize` to bytes: no `Value` tree and no field map per record, which
        // made encoding a fifth of a stage's time. The same bytes as the `Value` path (a property
        // test holds it for every record type).
        if let Some(flat) = &known.flat {
            let mut out = Vec::with_capacity(HEADER_LEN + 512);
            out.extend_from_slice(&SINGLE_OBJECT_MAGIC);
            out.extend_from_slice(&known.fingerprint.to_le_bytes());
            apache_avro::write_avro_datum_ref(flat, record, &mut out).map_err(|source| {
                CodecError::Datum {
                    name: known.name,
                    source: Box::new(source),
                }
            })?;
            return Ok(out);
        }
        self.encode_through_value(record)
    }

    /// Encodes through apache-avro's `Value` tree, validated against the schema: the reference
    /// the direct path is tested against, and the path for a schema whose named types cannot be
    /// inlined.
    #[doc(hidden)]
    pub fn encode_through_value<T: Record>(&self, record: &T) -> Result<Vec<u8>, CodecError> {
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

    /// Decodes a record written by this build or an earlier release, refusing a writer schema
    /// neither knows.
    pub fn decode<T: Record>(&self, bytes: &[u8]) -> Result<T, CodecError> {
        self.decode_by(bytes, Reading::Direct)
    }

    /// Decodes as [`Codec::decode`] does, but a record of this build's schemas through
    /// apache-avro's `Value` tree: the reference the direct reader is tested against.
    #[doc(hidden)]
    pub fn decode_through_value<T: Record>(&self, bytes: &[u8]) -> Result<T, CodecError> {
        self.decode_by(bytes, Reading::ThroughValue)
    }

    fn decode_by<T: Record>(&self, bytes: &[u8], reading: Reading) -> Result<T, CodecError> {
        let (magic, rest) = bytes
            .split_at_checked(2)
            .ok_or(CodecError::NotSingleObject("shorter than the header"))?;
        if magic != SINGLE_OBJECT_MAGIC {
            return Err(CodecError::NotSingleObject("no C3 01 marker"));
        }
        let (fingerprint_bytes, datum) = rest
            .split_at_checked(8)
            .ok_or(CodecError::NotSingleObject("fingerprint cut short"))?;
        let mut fp = [0u8; 8];
        fp.copy_from_slice(fingerprint_bytes);
        let fingerprint = u64::from_le_bytes(fp);
        let Some(known) = self
            .by_fingerprint
            .get(&fingerprint)
            .and_then(|index| self.schemas.get(*index))
        else {
            return match self.earlier.get(&fingerprint) {
                Some(earlier) => self.decode_earlier(earlier, datum),
                None => Err(CodecError::UnknownSchema(fingerprint)),
            };
        };
        expect_record::<T>(known.name)?;
        bounds::check(&known.schema, &known.names, datum).map_err(|detail| {
            CodecError::Overstated {
                name: known.name,
                detail,
            }
        })?;
        // Straight from the bytes into `T`: no `Value` tree (see `direct`).
        if let (Reading::Direct, Some(flat)) =
            (reading, known.flat.as_ref().filter(|_| known.direct_read))
        {
            let (record, left) = direct::read::<T>(flat, datum).map_err(datum_error(known.name))?;
            if left > 0 {
                return Err(CodecError::NotSingleObject(
                    "trailing bytes after the datum",
                ));
            }
            return Ok(record);
        }
        // The reader checks the header again, then decodes with the names resolved at start.
        let mut remaining = bytes;
        let value = known
            .reader
            .read_value(&mut remaining)
            .map_err(datum_error(known.name))?;
        into_record(&value, remaining, known.name)
    }
}

/// How a record of this build's schemas is read.
#[derive(Debug, Clone, Copy)]
enum Reading {
    /// By the direct reader, where the schema allows it.
    Direct,
    /// Through apache-avro's `Value` tree.
    ThroughValue,
}

/// Refuses a record of another type than the one asked for.
fn expect_record<T: Record>(found: &'static str) -> Result<(), CodecError> {
    if found == T::FULL_NAME {
        Ok(())
    } else {
        Err(CodecError::WrongRecord {
            expected: T::FULL_NAME,
            found,
        })
    }
}

fn datum_error(name: &'static str) -> impl Fn(apache_avro::Error) -> CodecError {
    move |source| CodecError::Datum {
        name,
        source: Box::new(source),
    }
}

/// The decoded value as the record, refusing bytes left after the datum.
fn into_record<T: Record>(
    value: &apache_avro::types::Value,
    remaining: &[u8],
    name: &'static str,
) -> Result<T, CodecError> {
    if !remaining.is_empty() {
        return Err(CodecError::NotSingleObject(
            "trailing bytes after the datum",
        ));
    }
    from_value::<T>(value).map_err(datum_error(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every record type takes the direct paths: its named types can be inlined, and it uses only
    /// the types the direct reader reads.
    #[test]
    fn every_schema_is_written_and_read_directly() {
        let codec = Codec::new().unwrap_or_else(|error| panic!("{error}"));
        for known in &codec.schemas {
            assert!(
                known.flat.is_some(),
                "{} falls back to the Value path",
                known.name
            );
            assert!(
                known.direct_read,
                "{} is read through the Value tree: its schema uses a type the direct reader does not read",
                known.name
            );
        }
        assert_eq!(codec.schemas.len(), 5);
    }
}
