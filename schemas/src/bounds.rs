//! A walk over an Avro datum that checks every length it declares against the bytes that are
//! left, before apache-avro decodes it.
//!
//! apache-avro reserves room for an array or map from the count the datum declares (`reserve(n)`),
//! and takes a string's length on trust up to 512 MiB; a record of a few bytes declaring a billion
//! items asks for tens of gigabytes and aborts the process (the fuzzer's first find). Anyone who can
//! write to a topic could stop a stage that way, at every restart. Here every string, bytes, array
//! and map must fit in what remains of the datum (each item of our schemas takes at least one
//! byte), nesting is bounded, and only then is the datum decoded. No allocation, no I/O.

use std::collections::HashMap;

use apache_avro::Schema;
use apache_avro::schema::Name;

/// How deep a datum may nest records, arrays, maps and unions (ours nest a handful deep).
const MAX_DEPTH: usize = 64;

/// The named types of a schema, for `Ref`s.
pub(crate) type Names = HashMap<Name, Schema>;

/// The named types `schema` defines, owned.
pub(crate) fn names_of(schema: &Schema) -> Result<Names, apache_avro::Error> {
    let resolved = apache_avro::schema::ResolvedSchema::try_from(schema)?;
    Ok(resolved
        .get_names()
        .iter()
        .map(|(name, schema)| (name.clone(), (*schema).clone()))
        .collect())
}

/// Checks that `datum` is one value of `schema` whose every declared length fits in it; on success
/// returns the bytes after it.
pub(crate) fn check<'a>(
    schema: &Schema,
    names: &Names,
    datum: &'a [u8],
) -> Result<&'a [u8], String> {
    let mut walk = Walk { names, rest: datum };
    walk.value(schema, 0)?;
    Ok(walk.rest)
}

/// A zig-zag varint of at most ten bytes (Avro's int and long) from the front of `rest`, as
/// apache-avro reads it; the direct reader reads its numbers with it too.
pub(crate) fn read_long(rest: &mut &[u8]) -> Result<i64, &'static str> {
    let mut value: u64 = 0;
    for shift in (0..64).step_by(7) {
        let (&byte, after) = rest.split_first().ok_or("a number cut short")?;
        *rest = after;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            let magnitude = i64::try_from(value >> 1).unwrap_or(i64::MAX);
            // The low bit is the sign: 0, 1, 2, 3 stand for 0, -1, 1, -2.
            return Ok(if value & 1 == 0 {
                magnitude
            } else {
                -magnitude - 1
            });
        }
    }
    Err("a number longer than ten bytes")
}

struct Walk<'n, 'a> {
    names: &'n Names,
    rest: &'a [u8],
}

impl Walk<'_, '_> {
    fn take(&mut self, n: usize) -> Result<(), String> {
        match self.rest.get(n..) {
            Some(rest) => {
                self.rest = rest;
                Ok(())
            }
            None => Err(format!(
                "declares {n} bytes where {} remain",
                self.rest.len()
            )),
        }
    }

    /// A zig-zag varint (Avro's int and long).
    fn long(&mut self) -> Result<i64, String> {
        read_long(&mut self.rest).map_err(str::to_owned)
    }

    /// A length (of a string, bytes or a block): not negative, and within what remains.
    fn length(&mut self, what: &str) -> Result<usize, String> {
        let length = self.long()?;
        let length = usize::try_from(length).map_err(|_| format!("a negative {what} length"))?;
        if length > self.rest.len() {
            return Err(format!(
                "a {what} of {length} where {} bytes remain",
                self.rest.len()
            ));
        }
        Ok(length)
    }

    /// Array and map blocks: a count (negative: followed by the block's size in bytes), items, up
    /// to a zero count. Every item takes a byte at least, so a count over the bytes left is a lie.
    fn blocks(
        &mut self,
        item: &mut dyn FnMut(&mut Self) -> Result<(), String>,
    ) -> Result<(), String> {
        loop {
            let count = self.long()?;
            if count == 0 {
                return Ok(());
            }
            if count < 0 {
                self.length("block size")?;
            }
            let count = usize::try_from(count.unsigned_abs()).unwrap_or(usize::MAX);
            if count > self.rest.len() {
                return Err(format!(
                    "a block of {count} items where {} bytes remain",
                    self.rest.len()
                ));
            }
            for _ in 0..count {
                item(self)?;
            }
        }
    }

    fn value(&mut self, schema: &Schema, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(format!("nested deeper than {MAX_DEPTH}"));
        }
        match schema {
            Schema::Null => Ok(()),
            Schema::Boolean => self.take(1),
            Schema::Int
            | Schema::Long
            | Schema::Date
            | Schema::TimeMillis
            | Schema::TimeMicros
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos => self.long().map(|_| ()),
            Schema::Float => self.take(4),
            Schema::Double => self.take(8),
            Schema::Bytes | Schema::String | Schema::BigDecimal | Schema::Uuid => {
                let length = self.length("string")?;
                self.take(length)
            }
            Schema::Fixed(fixed) => self.take(fixed.size),
            Schema::Duration => self.take(12),
            Schema::Decimal(decimal) => self.value(&decimal.inner, depth + 1),
            Schema::Enum(_) => self.long().map(|_| ()),
            Schema::Union(union) => {
                let index = self.long()?;
                let variant = usize::try_from(index)
                    .ok()
                    .and_then(|index| union.variants().get(index))
                    .ok_or_else(|| format!("union branch {index} of {}", union.variants().len()))?;
                self.value(variant, depth + 1)
            }
            Schema::Array(array) => self.blocks(&mut |walk| walk.value(&array.items, depth + 1)),
            Schema::Map(map) => self.blocks(&mut |walk| {
                let length = walk.length("map key")?;
                walk.take(length)?;
                walk.value(&map.types, depth + 1)
            }),
            Schema::Record(record) => {
                for field in &record.fields {
                    self.value(&field.schema, depth + 1)?;
                }
                Ok(())
            }
            Schema::Ref { name } => {
                let named = self
                    .names
                    .get(name)
                    .ok_or_else(|| format!("no type named {}", name.fullname(None)))?;
                self.value(named, depth + 1)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(text: &str) -> (Schema, Names) {
        let schema = Schema::parse_str(text).unwrap();
        let names = names_of(&schema).unwrap();
        (schema, names)
    }

    /// Avro's zig-zag varint of `n`.
    #[allow(clippy::cast_sign_loss, clippy::cast_possible_truncation)]
    fn long(n: i64) -> Vec<u8> {
        let mut value = ((n << 1) ^ (n >> 63)) as u64;
        let mut out = Vec::new();
        loop {
            let byte = (value & 0x7f) as u8;
            value >>= 7;
            if value == 0 {
                out.push(byte);
                return out;
            }
            out.push(byte | 0x80);
        }
    }

    const STRINGS: &str = r#"{"type":"record","name":"R","fields":[
        {"name":"xs","type":{"type":"array","items":"string"}},
        {"name":"m","type":{"type":"map","values":"long"}},
        {"name":"u","type":["null","string"]}]}"#;

    #[test]
    fn a_datum_that_holds_what_it_declares_passes_and_the_rest_is_returned() {
        let (schema, names) = schema(STRINGS);
        let mut datum = [
            long(2),
            long(1),
            b"a".to_vec(),
            long(2),
            b"bc".to_vec(),
            long(0),
        ]
        .concat();
        // A map written in one block with its byte size (a negative count), then the end.
        datum.extend([long(-1), long(3), long(1), b"k".to_vec(), long(7), long(0)].concat());
        datum.extend([long(1), long(1), b"z".to_vec()].concat());
        datum.push(0xEE);
        assert_eq!(check(&schema, &names, &datum), Ok(&[0xEE][..]));
        let value = apache_avro::from_avro_datum(&schema, &mut &datum[..], None);
        assert!(value.is_ok(), "apache-avro reads it too: {value:?}");
    }

    /// The fuzzer's find: a count of billions in a few bytes made apache-avro reserve gigabytes.
    #[test]
    fn counts_and_lengths_over_the_bytes_left_are_refused() {
        let (schema, names) = schema(STRINGS);
        let huge_array = [long(1_000_000_000), long(1), b"a".to_vec()].concat();
        let error = check(&schema, &names, &huge_array).unwrap_err();
        assert!(error.contains("1000000000 items"), "{error}");
        let long_string = [long(1), long(500_000_000), b"a".to_vec()].concat();
        assert!(check(&schema, &names, &long_string).is_err());
        let negative_string = [long(1), long(-5), b"a".to_vec()].concat();
        assert!(check(&schema, &names, &negative_string).is_err());
        let bad_branch = [long(0), long(0), long(7)].concat();
        assert!(check(&schema, &names, &bad_branch).is_err());
        let cut_number = [0x80u8, 0x80];
        assert!(check(&schema, &names, &cut_number).is_err());
    }

    #[test]
    fn nesting_past_the_bound_is_refused() {
        let (schema, names) = schema(
            r#"{"type":"record","name":"Node","fields":[{"name":"next","type":["null","Node"]}]}"#,
        );
        let shallow = [vec![2u8; 10], vec![0u8]].concat();
        assert_eq!(check(&schema, &names, &shallow), Ok(&[][..]));
        let deep = [vec![2u8; 10_000], vec![0u8]].concat();
        let error = check(&schema, &names, &deep).unwrap_err();
        assert!(error.contains("nested deeper"), "{error}");
    }
}
