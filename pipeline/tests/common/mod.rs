//! What the pipeline's integration tests share.

use std::path::PathBuf;

use vigil_pipeline::Pipeline;
use vigil_settings::Settings;

/// The repository's root.
pub fn repo() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the pipeline crate sits in the repository")
        .to_owned()
}

/// A pipeline with the example settings: threat lists and Tor exits, so chain rules and
/// sequences have material.
pub fn example_pipeline() -> Pipeline {
    let settings = Settings::load(&vigil_settings::SettingsArgs {
        config: Some(repo().join("examples/vigil.toml")),
        ..vigil_settings::SettingsArgs::default()
    })
    .expect("the example settings load");
    let intel = settings
        .threat_intel(&mut Vec::new())
        .expect("the example lists load");
    Pipeline::new(&settings, intel).expect("the example rules build")
}
