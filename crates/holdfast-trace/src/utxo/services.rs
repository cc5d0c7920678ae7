//! Which Bitcoin-family addresses are services for a UTXO trace: an address's own label, or
//! the label of a member of its cluster (the existing seam: `holdfast-intel`'s
//! `screen_clustered` over a `ClusterSource`, the join `holdfast screen` makes), so an output
//! paying any address of an exchange's cluster is a freeze target of that exchange, naming the
//! member that carries the label.

use std::collections::BTreeMap;

use holdfast_intel::IntelIndex;
use holdfast_intel::cluster::{ClusterScreen, ClusterSource};
use holdfast_intel::screen::ScreenOptions;

use crate::TraceError;
use crate::labels::{Service, kind_of};

/// A service an address belongs to, and the cluster member whose label says so (`None`: the
/// address's own label).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UtxoService {
    pub service: Service,
    pub via_member: Option<String>,
}

/// Tells the UTXO trace which addresses are services.
pub trait UtxoClassifier {
    fn classify(&self, address: &str) -> Result<Option<UtxoService>, TraceError>;
}

/// A fixed list (tests): an address's own service only.
impl UtxoClassifier for BTreeMap<String, Service> {
    fn classify(&self, address: &str) -> Result<Option<UtxoService>, TraceError> {
        Ok(self.get(address).cloned().map(|service| UtxoService {
            service,
            via_member: None,
        }))
    }
}

/// Labels from intel, with clusters from a UTXO index (`None`: own labels only).
pub struct ClusteredIntel<'a> {
    pub intel: &'a IntelIndex,
    pub clusters: Option<&'a dyn ClusterSource>,
    pub options: ScreenOptions,
}

impl std::fmt::Debug for ClusteredIntel<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusteredIntel")
            .field("clusters", &self.clusters.is_some())
            .finish_non_exhaustive()
    }
}

impl UtxoClassifier for ClusteredIntel<'_> {
    fn classify(&self, address: &str) -> Result<Option<UtxoService>, TraceError> {
        // An address intel cannot read carries no label.
        let Ok(v) = self
            .intel
            .screen_clustered(address, &self.options, self.clusters)
        else {
            return Ok(None);
        };
        // Own labels first (the most severe first, as screening orders them), then the
        // cluster's; a custodial label before a mixer's before a bridge's.
        let own = v.labels.iter().filter(|l| l.active).filter_map(|l| {
            kind_of(l.category).map(|k| {
                (
                    k,
                    Service {
                        kind: k,
                        category: l.category,
                        name: l
                            .name
                            .clone()
                            .or_else(|| l.actor.clone())
                            .unwrap_or_else(|| l.source.clone()),
                    },
                    None,
                )
            })
        });
        let inherited = match &v.cluster {
            Some(ClusterScreen::Clustered(c)) => c
                .inherited
                .iter()
                .filter(|l| l.label.active)
                .filter_map(|l| {
                    kind_of(l.label.category).map(|k| {
                        (
                            k,
                            Service {
                                kind: k,
                                category: l.label.category,
                                name: l
                                    .label
                                    .name
                                    .clone()
                                    .or_else(|| l.label.actor.clone())
                                    .unwrap_or_else(|| l.label.source.clone()),
                            },
                            Some(l.member.clone()),
                        )
                    })
                })
                .collect(),
            _ => Vec::new(),
        };
        let best = own
            .chain(inherited)
            .enumerate()
            .min_by_key(|(i, (k, _, _))| (*k, *i))
            .map(|(_, (_, service, via_member))| UtxoService {
                service,
                via_member,
            });
        Ok(best)
    }
}
