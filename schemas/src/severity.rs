//! GuardDuty's severity: a number from 1.0 to 10.0 on every finding, read in bands (Low below 4,
//! Medium below 7, High below 9, Critical from 9). One banding for detect, the metrics and the CLI.

/// A severity band.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// The band of a finding's number.
    pub fn of(score: f64) -> Self {
        match score {
            s if s >= 9.0 => Self::Critical,
            s if s >= 7.0 => Self::High,
            s if s >= 4.0 => Self::Medium,
            _ => Self::Low,
        }
    }

    /// The number GuardDuty gives a finding of this band by default (Critical: its attack
    /// sequences').
    pub const fn score(self) -> f64 {
        match self {
            Self::Low => 2.0,
            Self::Medium => 5.0,
            Self::High => 8.0,
            Self::Critical => 9.0,
        }
    }

    pub const fn label(self) -> &'static str {
        match self {
            Self::Low => "Low",
            Self::Medium => "Medium",
            Self::High => "High",
            Self::Critical => "Critical",
        }
    }

    /// A band by its name, case aside: `low`, `Medium`, `HIGH`, `critical`.
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Low, Self::Medium, Self::High, Self::Critical]
            .into_iter()
            .find(|band| band.label().eq_ignore_ascii_case(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_follow_guardduty() {
        let cases = [
            (1.0, "Low"),
            (3.9, "Low"),
            (4.0, "Medium"),
            (6.9, "Medium"),
            (7.0, "High"),
            (8.9, "High"),
            (9.0, "Critical"),
            (10.0, "Critical"),
        ];
        for (score, label) in cases {
            assert_eq!(Severity::of(score).label(), label, "{score}");
        }
        for band in [
            Severity::Low,
            Severity::Medium,
            Severity::High,
            Severity::Critical,
        ] {
            assert_eq!(Severity::of(band.score()), band);
            assert_eq!(
                Severity::from_name(&band.label().to_uppercase()),
                Some(band)
            );
        }
        assert_eq!(Severity::from_name("severe"), None);
    }
}
