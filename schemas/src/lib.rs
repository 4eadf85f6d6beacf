//! Vigil's records. `schemas/*.avsc` are the source of truth for everything that crosses a stage
//! boundary; the Rust types in [`model`] mirror them (a test fails when they drift) and [`codec`]
//! encodes them as Avro single-object records.

pub mod attack;
mod bounds;
pub mod codec;
mod direct;
mod flat;
pub mod hash;
pub mod model;
pub mod severity;
pub mod time;
pub mod vocabulary;
pub mod wildcard;

pub use codec::{Codec, CodecError, Record};
pub use model::*;
pub use severity::Severity;
pub use vocabulary::{IP_SCOPES, IpScope, RUNTIME_KINDS, RuntimeKind, is_kubernetes_audit_source};
