//! What a finding says of an anomaly: the unusual judgements of each scope, in words for the
//! description and as GuardDuty's `service.detection.anomaly`.

use vigil_schemas::AnomalyObservation;

use super::Scope;
use super::profile::{Familiarity, Judged};
use super::store::Seen;

/// The unusual dimensions as a finding's `anomaly`.
pub(super) fn explanation(seen: &Seen, unusual: &[&Judged]) -> Vec<AnomalyObservation> {
    unusual
        .iter()
        .map(|judged| AnomalyObservation {
            scope: seen.scope.label().into(),
            entity: seen.entity.clone(),
            dimension: judged.dimension.label().into(),
            observed: judged.observed.clone(),
            familiarity: judged.familiarity.label().into(),
            baseline: judged.baseline.clone(),
            profile_observations: seen.observations,
            profile_days: seen.days,
        })
        .collect()
}

/// Per judging scope, its unusual judgements (unseen and rare): what a finding explains.
pub(super) type Unusual<'a> = Vec<(&'a Seen, Vec<&'a Judged>)>;

pub(super) fn unusual_by_scope<'a>(views: &[&'a Seen]) -> Unusual<'a> {
    views
        .iter()
        .map(|seen| {
            let judged: Vec<&Judged> = seen
                .judged
                .iter()
                .filter(|judged| judged.familiarity <= Familiarity::Rare)
                .collect();
            (*seen, judged)
        })
        .filter(|(_, judged)| !judged.is_empty())
        .collect()
}

/// The unusual judgements in words, one each, for a finding's description.
pub(super) fn described(unusual: &Unusual<'_>) -> Vec<String> {
    unusual
        .iter()
        .flat_map(|(seen, judged)| {
            judged
                .iter()
                .map(move |judged| describe(seen.scope, &seen.entity, judged))
        })
        .collect()
}

/// The unusual judgements as a finding's `anomaly`.
pub(super) fn anomaly_of(unusual: &Unusual<'_>) -> Vec<AnomalyObservation> {
    unusual
        .iter()
        .flat_map(|(seen, judged)| explanation(seen, judged))
        .collect()
}

/// One unusual judgement in words: `namespace kube-system (unseen; usually shop, payments)`, with
/// the scope when it is not the principal's own (`cluster prod: privilegedImage ...`).
pub(super) fn describe(scope: Scope, entity: &str, judged: &Judged) -> String {
    let usual = if judged.baseline.is_empty() {
        "nothing yet".to_owned()
    } else {
        judged.baseline.join(", ")
    };
    let whose = match scope {
        Scope::Principal | Scope::Image => String::new(),
        Scope::PeerGroup => format!("peers ({entity}): "),
        other => format!("{} {entity}: ", other.label()),
    };
    format!(
        "{whose}{} {} ({}; usually {usual})",
        judged.dimension,
        judged.observed,
        judged.familiarity.label()
    )
}
