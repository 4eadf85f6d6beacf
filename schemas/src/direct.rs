//! Avro datums read straight into `Deserialize` types, driven by the flat schema (`flat`).
//!
//! apache-avro reads a datum into a `Value` tree and then deserializes the tree: two passes, an
//! allocation per string, field and array, and every field name looked up in a map. That was the
//! largest share of enrich's and detect's own time. Here the bytes are read once, as the type asks
//! for them: strings are borrowed from the datum, a record's fields are handed to the type in the
//! schema's order, and a field the type does not know is read and set aside. Only the types Vigil's
//! schemas use are read (null, boolean, int, long, float, double, string, array, record and unions
//! of them); `supports` says whether a schema stays within them. No allocation of its own, no I/O.
//!
//! The `Value` path is what this is held to: the same records for every datum the encoder writes
//! (property tests and every record of the example day), and never a record the `Value` path
//! refuses (a property test over arbitrary bytes).

use apache_avro::Schema;
use serde::de::value::StrDeserializer;
use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};

type Error = apache_avro::Error;

/// How deep records, arrays and unions may nest while reading (ours nest a handful deep).
const MAX_DEPTH: usize = 64;

fn error(message: impl std::fmt::Display) -> Error {
    de::Error::custom(message)
}

/// Whether every type in `schema` is one this reader reads. A named reference is not: the flat
/// schema has none.
pub(crate) fn supports(schema: &Schema) -> bool {
    match schema {
        Schema::Null
        | Schema::Boolean
        | Schema::Int
        | Schema::Long
        | Schema::Float
        | Schema::Double
        | Schema::String => true,
        // An item must take at least a byte: a count of nulls would be read for as long as it says.
        Schema::Array(array) => !matches!(*array.items, Schema::Null) && supports(&array.items),
        Schema::Record(record) => record.fields.iter().all(|field| supports(&field.schema)),
        Schema::Union(union) => union.variants().iter().all(supports),
        _ => false,
    }
}

/// Reads one datum of `schema` (which `supports`) from the front of `datum`; returns the value
/// and the bytes after it.
pub(crate) fn read<T: de::DeserializeOwned>(
    schema: &Schema,
    datum: &[u8],
) -> Result<(T, usize), Error> {
    let mut input = Input { bytes: datum };
    let value = T::deserialize(Reader {
        input: &mut input,
        schema,
        depth: 0,
    })?;
    Ok((value, input.bytes.len()))
}

/// The bytes not read yet.
struct Input<'de> {
    bytes: &'de [u8],
}

impl<'de> Input<'de> {
    fn take(&mut self, count: usize) -> Result<&'de [u8], Error> {
        let (taken, rest) = self
            .bytes
            .split_at_checked(count)
            .ok_or_else(|| error(format!("datum cut short: {count} bytes declared")))?;
        self.bytes = rest;
        Ok(taken)
    }

    fn byte(&mut self) -> Result<u8, Error> {
        let (&first, rest) = self
            .bytes
            .split_first()
            .ok_or_else(|| error("datum cut short"))?;
        self.bytes = rest;
        Ok(first)
    }

    fn long(&mut self) -> Result<i64, Error> {
        crate::bounds::read_long(&mut self.bytes).map_err(error)
    }

    fn int(&mut self) -> Result<i32, Error> {
        let long = self.long()?;
        i32::try_from(long).map_err(|_| error(format!("int out of range: {long}")))
    }

    fn length(&mut self) -> Result<usize, Error> {
        let long = self.long()?;
        usize::try_from(long).map_err(|_| error(format!("negative length: {long}")))
    }

    fn string(&mut self) -> Result<&'de str, Error> {
        let length = self.length()?;
        std::str::from_utf8(self.take(length)?).map_err(|source| error(source.to_string()))
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        let mut bytes = [0u8; N];
        bytes.copy_from_slice(self.take(N)?);
        Ok(bytes)
    }
}

/// One value of `schema`, read as the type asks.
struct Reader<'a, 'de> {
    input: &'a mut Input<'de>,
    schema: &'a Schema,
    depth: usize,
}

impl<'a, 'de> Reader<'a, 'de> {
    fn nested(&mut self, schema: &'a Schema) -> Result<Reader<'_, 'de>, Error> {
        if self.depth >= MAX_DEPTH {
            return Err(error("datum nested deeper than 64"));
        }
        Ok(Reader {
            input: self.input,
            schema,
            depth: self.depth + 1,
        })
    }

    /// The branch a union's value takes.
    fn branch(&mut self, union: &'a apache_avro::schema::UnionSchema) -> Result<&'a Schema, Error> {
        let index = self.input.long()?;
        usize::try_from(index)
            .ok()
            .and_then(|index| union.variants().get(index))
            .ok_or_else(|| {
                error(format!(
                    "union branch {index} of {}",
                    union.variants().len()
                ))
            })
    }
}

impl<'de> de::Deserializer<'de> for Reader<'_, 'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, Error> {
        match self.schema {
            Schema::Null => visitor.visit_unit(),
            Schema::Boolean => match self.input.byte()? {
                0 => visitor.visit_bool(false),
                1 => visitor.visit_bool(true),
                other => Err(error(format!("boolean byte {other}"))),
            },
            Schema::Int => visitor.visit_i32(self.input.int()?),
            Schema::Long => visitor.visit_i64(self.input.long()?),
            Schema::Float => visitor.visit_f32(f32::from_le_bytes(self.input.fixed()?)),
            Schema::Double => visitor.visit_f64(f64::from_le_bytes(self.input.fixed()?)),
            Schema::String => visitor.visit_borrowed_str(self.input.string()?),
            Schema::Array(array) => {
                let items = self.nested(&array.items)?;
                visitor.visit_seq(Items {
                    input: items.input,
                    schema: items.schema,
                    depth: items.depth,
                    left_in_block: 0,
                    ended: false,
                })
            }
            Schema::Record(record) => {
                let reader = self.nested(self.schema)?;
                visitor.visit_map(Fields {
                    input: reader.input,
                    fields: &record.fields,
                    next: 0,
                    depth: reader.depth,
                })
            }
            Schema::Union(union) => {
                let branch = self.branch(union)?;
                self.nested(branch)?.deserialize_any(visitor)
            }
            other => Err(error(format!("no direct reading of {other:?}"))),
        }
    }

    /// `["null", T]` is an `Option<T>`: the null branch `None`, any other `Some`.
    fn deserialize_option<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, Error> {
        match self.schema {
            Schema::Null => visitor.visit_none(),
            Schema::Union(union) => match self.branch(union)? {
                Schema::Null => visitor.visit_none(),
                branch => visitor.visit_some(self.nested(branch)?),
            },
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    /// A unit variant from its name, as the `Value` path reads a string into an enum.
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.schema {
            Schema::String => {
                let symbol: StrDeserializer<'_, Error> = self.input.string()?.into_deserializer();
                visitor.visit_enum(symbol)
            }
            _ => self.deserialize_any(visitor),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf unit
        unit_struct seq tuple tuple_struct map struct identifier ignored_any
    }
}

/// An array's items, in blocks: a count (negative: followed by the block's size in bytes), then
/// that many items, until a count of zero.
struct Items<'a, 'de> {
    input: &'a mut Input<'de>,
    schema: &'a Schema,
    depth: usize,
    left_in_block: u64,
    ended: bool,
}

impl<'de> SeqAccess<'de> for Items<'_, 'de> {
    type Error = Error;

    fn next_element_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, Error> {
        if self.left_in_block == 0 {
            if self.ended {
                return Ok(None);
            }
            let count = self.input.long()?;
            if count == 0 {
                self.ended = true;
                return Ok(None);
            }
            if count < 0 {
                self.input.long()?;
            }
            self.left_in_block = count.unsigned_abs();
        }
        self.left_in_block -= 1;
        seed.deserialize(Reader {
            input: self.input,
            schema: self.schema,
            depth: self.depth,
        })
        .map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        // Never more than the bytes left: a hostile count must not reserve memory.
        usize::try_from(self.left_in_block)
            .ok()
            .map(|left| left.min(self.input.bytes.len()))
    }
}

/// A record's fields, in the schema's order, by name.
struct Fields<'a, 'de> {
    input: &'a mut Input<'de>,
    fields: &'a [apache_avro::schema::RecordField],
    next: usize,
    depth: usize,
}

impl<'de> MapAccess<'de> for Fields<'_, 'de> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        match self.fields.get(self.next) {
            Some(field) => {
                let name: StrDeserializer<'_, Error> = field.name.as_str().into_deserializer();
                seed.deserialize(name).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, Error> {
        let field = self
            .fields
            .get(self.next)
            .ok_or_else(|| error("a value asked for past the record's last field"))?;
        self.next += 1;
        seed.deserialize(Reader {
            input: self.input,
            schema: &field.schema,
            depth: self.depth,
        })
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.fields.len().saturating_sub(self.next))
    }
}
