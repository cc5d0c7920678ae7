//! What an address inherits from its cluster: the labels of the addresses a UTXO index
//! clusters it with (common-input ownership: the addresses one transaction spends together are
//! taken to have one owner). An exchange's cluster makes each of its addresses a deposit of
//! that exchange, and a cluster holding a sanctioned address makes its other addresses
//! suspect, but only as an inference: such a label is kept apart from the address's own labels
//! ([`crate::Verdict::labels`]), names the member that carries it, and counts at most at the
//! TagPack scale's `heuristic` confidence ([`INFERRED_CONFIDENCE`]).
//!
//! Intel does not read the UTXO index: the clusters live in `holdfast-store` and a caller that
//! may read both (`holdfast-cli`, which also serves the HTTP API) passes a [`ClusterSource`].

use holdfast_primitives::{Chain, Confidence, RiskLevel};

use crate::address::{self, AddressError};
use crate::index::{IntelIndex, applies_to};
use crate::screen::{LabelView, ScreenOptions, Verdict, describe};

/// Members of one cluster screened at most (the root first, then breadth first down the
/// union-find); a larger cluster is screened in part and says so ([`ClusterView::complete`]).
pub const MAX_MEMBERS: usize = 10_000;

/// The confidence an inherited label counts with at most: the TagPack scale's `heuristic`
/// (below [`Confidence::SEVERE_FLOOR`], so an inherited label alone never makes an address
/// `severe`).
pub const INFERRED_CONFIDENCE: Confidence = Confidence::HEURISTIC;

/// The heuristic the clusters come from, as verdicts name it.
pub const HEURISTIC: &str =
    "common-input ownership (multi-input heuristic; CoinJoin-like transactions excluded)";

/// A cluster as the UTXO index gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterFacts {
    /// The network the index holds the address on (`bitcoin`, `litecoin-regtest`, ...).
    pub network: String,
    /// The cluster's representative address (its union-find root).
    pub root: String,
    /// How many addresses the cluster holds.
    pub size: u64,
    /// Its addresses, the root first, at most the `limit` asked for.
    pub members: Vec<String>,
}

/// What a [`ClusterSource`] knows of an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterLookup {
    Found(ClusterFacts),
    /// The source holds nothing for it (say why: the index holds none of its networks, ...).
    NotIndexed {
        reason: String,
    },
}

/// A source's failure to answer (the index could not be read).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("reading the address's cluster: {0}")]
pub struct ClusterSourceError(pub String);

/// Where clusters come from: the UTXO index, read by the caller.
pub trait ClusterSource: Send + Sync {
    /// The cluster `address` (in canonical form, as screened) is in, with at most `limit`
    /// members.
    fn cluster_of(&self, address: &str, limit: usize) -> Result<ClusterLookup, ClusterSourceError>;
}

/// A verdict's cluster part.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ClusterScreen {
    /// The address's cluster, with the labels its members carry.
    Clustered(ClusterView),
    /// No cluster facts, and why (no UTXO index configured, or it holds none of the
    /// address's networks).
    Unavailable { note: String },
}

/// An address's cluster and what its members are labelled.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ClusterView {
    pub network: String,
    /// The cluster's representative address (its union-find root): "cluster X".
    pub root: String,
    /// Addresses in the cluster.
    pub size: u64,
    /// Members screened (all of them unless the cluster is larger than [`MAX_MEMBERS`]).
    pub screened: u64,
    /// Whether every member was screened.
    pub complete: bool,
    pub heuristic: &'static str,
    /// Every label carried by another member of the cluster, the most severe first.
    pub inherited: Vec<InheritedLabel>,
}

/// A label the screened address inherits from a member of its cluster.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct InheritedLabel {
    /// The member that carries the label (its own, direct label).
    pub member: String,
    /// The confidence of the inference: the label's, at most [`INFERRED_CONFIDENCE`].
    pub confidence: Confidence,
    /// The risk the inference carries (the label's category at that confidence).
    pub risk: RiskLevel,
    /// The member's label as screening the member gives it.
    pub label: LabelView,
}

/// Whether `chains` holds a chain whose clusters a UTXO index keeps.
fn clustered_chain(chains: &[Chain]) -> bool {
    chains
        .iter()
        .any(|c| matches!(c, Chain::Bitcoin | Chain::Litecoin))
}

/// Screening with clusters: an address error, or the cluster source's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterScreenError {
    #[error(transparent)]
    Address(#[from] AddressError),
    #[error(transparent)]
    Source(#[from] ClusterSourceError),
}

impl IntelIndex {
    /// [`IntelIndex::screen`], and for a Bitcoin or Litecoin address its cluster from
    /// `clusters` (`None`: no UTXO index configured, said as such in the verdict) with the
    /// labels of its other members, inherited: listed in [`Verdict::cluster`] with the member
    /// that carries each, counted in the risk at [`INFERRED_CONFIDENCE`] at most, and given a
    /// reason of their own.
    pub fn screen_clustered(
        &self,
        input: &str,
        options: &ScreenOptions,
        clusters: Option<&dyn ClusterSource>,
    ) -> Result<Verdict, ClusterScreenError> {
        let mut v = self.screen(input, options)?;
        if !clustered_chain(&v.chains) {
            return Ok(v);
        }
        let lookup = match clusters {
            None => ClusterLookup::NotIndexed {
                reason: "no UTXO index configured: cluster facts need one (`holdfast ingest --chain bitcoin`, or --store)".into(),
            },
            Some(src) => src.cluster_of(&v.address, MAX_MEMBERS)?,
        };
        let facts = match lookup {
            ClusterLookup::NotIndexed { reason } => {
                v.reasons.push(format!("cluster: {reason}"));
                v.cluster = Some(ClusterScreen::Unavailable { note: reason });
                return Ok(v);
            }
            ClusterLookup::Found(f) => f,
        };
        let view = self.cluster_view(&v.address, facts, options);
        let shown = if view.complete {
            format!("{} addresses", view.size)
        } else {
            format!("{} addresses, {} screened", view.size, view.screened)
        };
        if view.inherited.is_empty() {
            v.reasons.push(format!(
                "in cluster {} on {} ({shown}): no other member is labelled",
                view.root, view.network
            ));
        }
        for l in &view.inherited {
            let counted = if l.label.active {
                v.risk = v.risk.max(l.risk);
                format!("{}", l.risk)
            } else {
                "not counted".to_owned()
            };
            let name = l
                .label
                .name
                .as_deref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default();
            v.reasons.push(format!(
                "{counted}: inferred from cluster {} on {} ({shown}): member {} is {} per {}{name}; the cluster (confidence {}) makes this address one of its addresses",
                view.root,
                view.network,
                l.member,
                describe(l.label.category),
                l.label.source,
                l.confidence
            ));
        }
        v.cluster = Some(ClusterScreen::Clustered(view));
        Ok(v)
    }

    /// Screens a cluster's members other than `address`.
    fn cluster_view(&self, address: &str, f: ClusterFacts, options: &ScreenOptions) -> ClusterView {
        let mut inherited = Vec::new();
        for m in f.members.iter().filter(|m| *m != address) {
            // A member intel cannot read (a format no source labels) carries no label.
            let Ok(parsed) = address::parse(m, options.chain) else {
                continue;
            };
            let labels = self
                .labels(&parsed.key)
                .iter()
                .chain(self.folded_labels(&parsed.key));
            for label in labels.filter(|l| applies_to(l.chains, options.chain)) {
                let confidence = label.confidence.min(INFERRED_CONFIDENCE);
                inherited.push(InheritedLabel {
                    member: m.clone(),
                    confidence,
                    risk: RiskLevel::of_label(label.category, confidence),
                    label: self.view(label, options.as_of),
                });
            }
        }
        inherited.sort_by(|a, b| {
            (b.label.active, b.risk, b.label.risk).cmp(&(a.label.active, a.risk, a.label.risk))
        });
        let screened = f.members.len() as u64;
        ClusterView {
            network: f.network,
            root: f.root,
            size: f.size,
            screened,
            complete: screened >= f.size,
            heuristic: HEURISTIC,
            inherited,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{IndexBuilder, LabelRecord};
    use holdfast_primitives::{Category, Date};

    /// BIP-173's mainnet vectors: two Bitcoin addresses.
    const EXCHANGE: &str = "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4";
    const DEPOSIT: &str = "bc1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3qccfmv3";

    /// A fixed cluster (a unit test's stand-in for the UTXO index).
    struct Fixed(Option<ClusterFacts>);

    impl ClusterSource for Fixed {
        fn cluster_of(
            &self,
            address: &str,
            limit: usize,
        ) -> Result<ClusterLookup, ClusterSourceError> {
            Ok(match &self.0 {
                Some(f) if f.members.iter().any(|m| m == address) => {
                    let mut f = f.clone();
                    f.members.truncate(limit);
                    ClusterLookup::Found(f)
                }
                _ => ClusterLookup::NotIndexed {
                    reason: "not in the index".into(),
                },
            })
        }
    }

    fn index() -> IntelIndex {
        let mut b = IndexBuilder::default();
        let mut r = LabelRecord::new(EXCHANGE, "test", Category::Exchange, Confidence::OWNERSHIP);
        r.actor = Some("someexchange".into());
        b.add(&r).expect("label");
        b.add(&LabelRecord::new(
            EXCHANGE,
            "ofac",
            Category::Sanctioned,
            Confidence::AUTHORITY_DATA,
        ))
        .expect("label");
        b.finish()
    }

    fn options() -> ScreenOptions {
        ScreenOptions {
            chain: None,
            as_of: Date::today(),
        }
    }

    #[test]
    fn a_member_inherits_its_clusters_labels_as_inferred() {
        let idx = index();
        let src = Fixed(Some(ClusterFacts {
            network: "bitcoin".into(),
            root: EXCHANGE.into(),
            size: 2,
            members: vec![EXCHANGE.into(), DEPOSIT.into()],
        }));
        let v = idx
            .screen_clustered(DEPOSIT, &options(), Some(&src))
            .expect("screen");
        assert!(v.labels.is_empty(), "no direct label: {:?}", v.labels);
        let Some(ClusterScreen::Clustered(c)) = &v.cluster else {
            panic!("{:?}", v.cluster)
        };
        assert_eq!((c.root.as_str(), c.size, c.complete), (EXCHANGE, 2, true));
        assert_eq!(c.inherited.len(), 2);
        for l in &c.inherited {
            assert_eq!(l.member, EXCHANGE);
            assert_eq!(l.confidence, INFERRED_CONFIDENCE);
        }
        // A sanction inherited is high, never severe (confidence capped); first, as the worst.
        assert_eq!(c.inherited[0].label.category, Category::Sanctioned);
        assert_eq!(c.inherited[0].risk, RiskLevel::High);
        assert_eq!(c.inherited[0].label.risk, RiskLevel::Severe);
        assert_eq!(c.inherited[1].label.category, Category::Exchange);
        assert_eq!(c.inherited[1].label.actor.as_deref(), Some("someexchange"));
        assert_eq!(v.risk, RiskLevel::High);
        assert!(
            v.reasons
                .iter()
                .any(|r| r.contains("inferred from cluster") && r.contains(EXCHANGE)),
            "{:?}",
            v.reasons
        );
        // The labelled member itself: its own labels, nothing inherited from itself.
        let own = idx
            .screen_clustered(EXCHANGE, &options(), Some(&src))
            .expect("screen");
        assert_eq!(own.labels.len(), 2);
        let Some(ClusterScreen::Clustered(c)) = &own.cluster else {
            panic!()
        };
        assert!(c.inherited.is_empty());
        // Cut to one member: screened in part, said so.
        let cut = Fixed(Some(ClusterFacts {
            network: "bitcoin".into(),
            root: DEPOSIT.into(),
            size: 2,
            members: vec![DEPOSIT.into()],
        }));
        let v = idx
            .screen_clustered(DEPOSIT, &options(), Some(&cut))
            .expect("screen");
        let Some(ClusterScreen::Clustered(c)) = &v.cluster else {
            panic!()
        };
        assert!(!c.complete && c.screened == 1 && c.inherited.is_empty());
    }

    #[test]
    fn no_index_is_said_and_other_chains_get_no_cluster() {
        let idx = index();
        let v = idx
            .screen_clustered(DEPOSIT, &options(), None)
            .expect("screen");
        assert!(
            matches!(&v.cluster, Some(ClusterScreen::Unavailable { note }) if note.contains("no UTXO index"))
        );
        assert_eq!(v.risk, RiskLevel::None);
        let v = idx
            .screen_clustered(DEPOSIT, &options(), Some(&Fixed(None)))
            .expect("screen");
        assert!(
            matches!(&v.cluster, Some(ClusterScreen::Unavailable { note }) if note == "not in the index")
        );
        let evm = idx
            .screen_clustered(
                "0x000000000000000000000000000000000000dead",
                &options(),
                None,
            )
            .expect("screen");
        assert!(evm.cluster.is_none());
        let json = serde_json::to_value(&v).expect("json");
        assert_eq!(json["cluster"]["status"], "unavailable");
    }
}
