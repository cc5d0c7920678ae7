use std::fmt;
use std::str::FromStr;

/// What a label says an address is. A closed set: every source's vocabulary is mapped onto
/// it when the source is read, so that risk derivation is one exhaustive `match`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    /// On a government sanctions list (OFAC SDN).
    Sanctioned,
    /// Attributed to the DPRK (Lazarus / TraderTraitor / APT38) by a public authority.
    DprkAttributed,
    /// Exploiter, hacker or theft address.
    Hack,
    Phishing,
    Scam,
    Ransomware,
    Darknet,
    Mixer,
    /// Reached by taint from a traced theft.
    Tainted,
    /// Frozen by a token issuer (e.g. the USDT blacklist).
    Blocked,
    Gambling,
    Exchange,
    Bridge,
    Defi,
    Miner,
    /// A known service of another kind (payment processor, wallet provider, ...).
    Service,
    Other,
}

/// A category name Holdfast does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown category {input:?}: expected one of {}", Category::ALL.iter().map(|c| c.name()).collect::<Vec<_>>().join(", "))]
pub struct UnknownCategory {
    pub input: String,
}

impl Category {
    pub const ALL: [Category; 17] = [
        Category::Sanctioned,
        Category::DprkAttributed,
        Category::Hack,
        Category::Phishing,
        Category::Scam,
        Category::Ransomware,
        Category::Darknet,
        Category::Mixer,
        Category::Tainted,
        Category::Blocked,
        Category::Gambling,
        Category::Exchange,
        Category::Bridge,
        Category::Defi,
        Category::Miner,
        Category::Service,
        Category::Other,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Category::Sanctioned => "sanctioned",
            Category::DprkAttributed => "dprk-attributed",
            Category::Hack => "hack",
            Category::Phishing => "phishing",
            Category::Scam => "scam",
            Category::Ransomware => "ransomware",
            Category::Darknet => "darknet",
            Category::Mixer => "mixer",
            Category::Tainted => "tainted",
            Category::Blocked => "blocked",
            Category::Gambling => "gambling",
            Category::Exchange => "exchange",
            Category::Bridge => "bridge",
            Category::Defi => "defi",
            Category::Miner => "miner",
            Category::Service => "service",
            Category::Other => "other",
        }
    }

    /// The risk a label of this category carries on its own, before confidence is applied.
    /// This table is the documented derivation (docs/SCREENING.md); keep the two in step.
    pub const fn base_risk(self) -> RiskLevel {
        match self {
            Category::Sanctioned | Category::DprkAttributed => RiskLevel::Severe,
            Category::Hack
            | Category::Phishing
            | Category::Scam
            | Category::Ransomware
            | Category::Darknet
            | Category::Mixer
            | Category::Tainted => RiskLevel::High,
            Category::Blocked | Category::Gambling => RiskLevel::Medium,
            Category::Exchange
            | Category::Bridge
            | Category::Defi
            | Category::Miner
            | Category::Service
            | Category::Other => RiskLevel::Low,
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Category {
    type Err = UnknownCategory;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase().replace('_', "-");
        Category::ALL
            .into_iter()
            .find(|c| c.name() == lower)
            .or(match lower.as_str() {
                "sanction" | "ofac" => Some(Category::Sanctioned),
                "dprk" | "lazarus" => Some(Category::DprkAttributed),
                "exploit" | "theft" | "heist" => Some(Category::Hack),
                "mixing-service" | "mixing" | "coinjoin" => Some(Category::Mixer),
                _ => None,
            })
            .ok_or_else(|| UnknownCategory {
                input: s.to_owned(),
            })
    }
}

/// How far a label's source is trusted, on the GraphSense TagPack confidence scale
/// (0..=100; `ownership` 100 ... `unknown` 5).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct Confidence(pub u8);

/// A confidence name that is not on the TagPack scale.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown confidence {input:?}: expected a number 0-100 or one of {}", Confidence::NAMED.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "))]
pub struct UnknownConfidence {
    pub input: String,
}

impl Confidence {
    pub const OWNERSHIP: Confidence = Confidence(100);
    pub const MANUAL_TRANSACTION: Confidence = Confidence(90);
    pub const SERVICE_API: Confidence = Confidence(70);
    pub const AUTHORITY_DATA: Confidence = Confidence(60);
    pub const TRUSTED_PROVIDER: Confidence = Confidence(50);
    pub const SERVICE_DATA: Confidence = Confidence(50);
    pub const FORENSIC: Confidence = Confidence(50);
    pub const UNTRUSTED_TRANSACTION: Confidence = Confidence(40);
    pub const WEB_CRAWL: Confidence = Confidence(20);
    pub const HEURISTIC: Confidence = Confidence(10);
    pub const UNKNOWN: Confidence = Confidence(5);

    /// The named levels of the TagPack scale (graphsense-tagpack-tool `confidence.csv`).
    pub const NAMED: [(&'static str, Confidence); 13] = [
        ("override", Confidence(100)),
        ("ownership", Confidence::OWNERSHIP),
        // Derived from the ledger itself, e.g. a stablecoin issuer's on-chain blacklist event.
        ("ledger_immanent", Confidence::OWNERSHIP),
        ("manual_transaction", Confidence::MANUAL_TRANSACTION),
        ("service_api", Confidence::SERVICE_API),
        ("authority_data", Confidence::AUTHORITY_DATA),
        ("trusted_provider", Confidence::TRUSTED_PROVIDER),
        ("service_data", Confidence::SERVICE_DATA),
        ("forensic", Confidence::FORENSIC),
        ("untrusted_transaction", Confidence::UNTRUSTED_TRANSACTION),
        ("web_crawl", Confidence::WEB_CRAWL),
        ("heuristic", Confidence::HEURISTIC),
        ("unknown", Confidence::UNKNOWN),
    ];

    /// Labels below this level cannot make an address `severe` on their own: a web crawl that
    /// says "sanctioned" is a lead, not a finding.
    pub const SEVERE_FLOOR: Confidence = Confidence(50);
}

impl FromStr for Confidence {
    type Err = UnknownConfidence;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if let Ok(n) = t.parse::<u8>()
            && n <= 100
        {
            return Ok(Confidence(n));
        }
        let lower = t.to_ascii_lowercase();
        Confidence::NAMED
            .iter()
            .find(|(name, _)| *name == lower)
            .map(|(_, c)| *c)
            .ok_or_else(|| UnknownConfidence {
                input: s.to_owned(),
            })
    }
}

impl fmt::Display for Confidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The screening scale. Ordered: `None < Low < Medium < High < Severe`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum RiskLevel {
    #[default]
    None,
    Low,
    Medium,
    High,
    Severe,
}

/// A risk level name Holdfast does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown risk level {input:?}: expected severe, high, medium, low or none")]
pub struct UnknownRiskLevel {
    pub input: String,
}

impl RiskLevel {
    pub const fn name(self) -> &'static str {
        match self {
            RiskLevel::None => "none",
            RiskLevel::Low => "low",
            RiskLevel::Medium => "medium",
            RiskLevel::High => "high",
            RiskLevel::Severe => "severe",
        }
    }

    /// The risk a label carries: its category's base risk, capped at `high` when the source
    /// is below [`Confidence::SEVERE_FLOOR`].
    pub fn of_label(category: Category, confidence: Confidence) -> RiskLevel {
        let base = category.base_risk();
        if base == RiskLevel::Severe && confidence < Confidence::SEVERE_FLOOR {
            RiskLevel::High
        } else {
            base
        }
    }
}

impl fmt::Display for RiskLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for RiskLevel {
    type Err = UnknownRiskLevel;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "none" => Ok(RiskLevel::None),
            "low" => Ok(RiskLevel::Low),
            "medium" => Ok(RiskLevel::Medium),
            "high" => Ok(RiskLevel::High),
            "severe" => Ok(RiskLevel::Severe),
            _ => Err(UnknownRiskLevel {
                input: s.to_owned(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_ordered() {
        assert!(RiskLevel::None < RiskLevel::Low);
        assert!(RiskLevel::High < RiskLevel::Severe);
    }

    #[test]
    fn low_confidence_cannot_make_severe() {
        assert_eq!(
            RiskLevel::of_label(Category::Sanctioned, Confidence::AUTHORITY_DATA),
            RiskLevel::Severe
        );
        assert_eq!(
            RiskLevel::of_label(Category::Sanctioned, Confidence::WEB_CRAWL),
            RiskLevel::High
        );
        assert_eq!(
            RiskLevel::of_label(Category::Exchange, Confidence::OWNERSHIP),
            RiskLevel::Low
        );
    }

    #[test]
    fn categories_parse_from_names_and_tagpack_words() {
        for c in Category::ALL {
            assert_eq!(c.name().parse::<Category>(), Ok(c));
        }
        assert_eq!("mixing_service".parse::<Category>(), Ok(Category::Mixer));
        assert!("bogus".parse::<Category>().is_err());
    }

    #[test]
    fn confidence_parses_names_and_numbers() {
        assert_eq!("authority_data".parse::<Confidence>(), Ok(Confidence(60)));
        assert_eq!("42".parse::<Confidence>(), Ok(Confidence(42)));
        assert!("101".parse::<Confidence>().is_err());
        assert!("trusty".parse::<Confidence>().is_err());
    }
}
