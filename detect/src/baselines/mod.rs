//! Behaviour baselines: profiles that learn from event time what each principal, peer group,
//! namespace, cluster, image and workload normally does ([`profile`]), bounded per cluster
//! ([`caps`], [`store`]), and the detectors that judge what departs from them: principals'
//! security-relevant calls ([`principal`]), runtime programs, libraries and destinations ([`image`]),
//! and volumes per hour ([`volume`]). Each anomaly is explained ([`explain`]).

pub mod caps;
pub mod dimensions;
mod explain;
pub mod image;
pub mod principal;
pub mod profile;
pub mod scope;
mod store;
pub mod volume;

pub use dimensions::Dimension;
pub use image::ImageBaselines;
pub use principal::PrincipalBaselines;
pub use profile::{BaselineConfig, Familiarity, Judged, JudgementState, Phase, Profile};
pub use scope::Scope;
pub use volume::VolumeBaselines;
