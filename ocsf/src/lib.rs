//! The Open Cybersecurity Schema Framework (OCSF), compiled from the schema's own repository files
//! and used to validate events. Vigil writes OCSF Detection Findings (class 2004); this crate is how
//! the tests hold that output to the schema rather than to our reading of it.
//!
//! Compiling follows the OCSF server's rules: a class or object takes its parent's attributes
//! (`extends`), then the attributes of the profiles and templates it `$include`s (profile attributes
//! are tagged with their profile), then its own, each merged over the attribute dictionary's entry
//! (type, array-ness, enum, sibling). Enums merge (the base event's Unknown/Other with a class's
//! Create/Update/Close). `class_uid`, `category_uid`, `type_uid` and the observable `type_id` get the
//! enums the server generates.
//!
//! Validation reports errors (unknown attributes, attributes of a profile the event does not declare
//! in `metadata.profiles`, missing required attributes, wrong types, values outside an enum, a sibling
//! whose caption disagrees with its id, unmet `at_least_one`/`just_one` constraints, a `type_uid`
//! that is not `class_uid * 100 + activity_id`, a `metadata.version` other than the schema's) and
//! warnings (missing recommended attributes, deprecated attributes).

mod schema;
mod validate;

pub use schema::{Attribute, ClassDef, ObjectDef, Requirement, Schema, SchemaError};
pub use validate::{Issue, IssueKind, Report};

use std::path::PathBuf;

/// The OCSF version Vigil writes.
pub const VERSION: &str = "1.6.0";

/// Where the tests find the OCSF schema: `VIGIL_OCSF_SCHEMA`, else the reference copy beside the
/// checkout (`../shared/reference/ocsf-schema-1.6.0`).
pub fn reference_dir() -> PathBuf {
    std::env::var_os("VIGIL_OCSF_SCHEMA").map_or_else(
        || {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../shared/reference/ocsf-schema-1.6.0")
        },
        PathBuf::from,
    )
}

impl Schema {
    /// The schema at [`reference_dir`], with a message that says where it was looked for.
    pub fn reference() -> Result<Self, String> {
        let dir = reference_dir();
        Self::load(&dir).map_err(|error| {
            format!(
                "the OCSF {VERSION} schema could not be compiled from {} ({error}); set \
                 VIGIL_OCSF_SCHEMA to a checkout of github.com/ocsf/ocsf-schema at v{VERSION}",
                dir.display()
            )
        })
    }
}
