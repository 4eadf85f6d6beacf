//! A schema with every named-type reference replaced by the type's definition. Encoding is the
//! same bytes (a reference is only a name for its definition), but apache-avro's serde writer,
//! which writes a record straight from `Serialize` without building a `Value` tree and a field map
//! per record, resolves no names: it needs the definitions in place.

use std::collections::HashMap;

use apache_avro::Schema;
use apache_avro::schema::{ArraySchema, MapSchema, Name, RecordField, RecordSchema, UnionSchema};

/// Named types nest at most this deep in Vigil's schemas; a deeper (recursive) one is refused.
const MAX_DEPTH: usize = 32;

/// `schema` with every `Ref` inlined, or `None` when a type refers to itself (not inlinable).
pub(crate) fn inline_references(schema: &Schema, names: &HashMap<Name, Schema>) -> Option<Schema> {
    inline(schema, names, 0)
}

fn inline(schema: &Schema, names: &HashMap<Name, Schema>, depth: usize) -> Option<Schema> {
    if depth > MAX_DEPTH {
        return None;
    }
    Some(match schema {
        Schema::Ref { name } => inline(names.get(name)?, names, depth + 1)?,
        Schema::Array(array) => Schema::Array(ArraySchema {
            items: Box::new(inline(&array.items, names, depth + 1)?),
            attributes: array.attributes.clone(),
        }),
        Schema::Map(map) => Schema::Map(MapSchema {
            types: Box::new(inline(&map.types, names, depth + 1)?),
            attributes: map.attributes.clone(),
        }),
        Schema::Union(union) => Schema::Union(
            UnionSchema::new(
                union
                    .variants()
                    .iter()
                    .map(|variant| inline(variant, names, depth + 1))
                    .collect::<Option<Vec<_>>>()?,
            )
            .ok()?,
        ),
        Schema::Record(record) => Schema::Record(RecordSchema {
            fields: record
                .fields
                .iter()
                .map(|field| {
                    Some(RecordField {
                        schema: inline(&field.schema, names, depth + 1)?,
                        ..field.clone()
                    })
                })
                .collect::<Option<Vec<_>>>()?,
            ..record.clone()
        }),
        other => other.clone(),
    })
}
