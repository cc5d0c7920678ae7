//! The UTXO index's address clusters as `holdfast-intel`'s `ClusterSource`: the join of the
//! clusters (`holdfast-store`) with the labels (`holdfast-intel`) for `holdfast screen` and the
//! screening API (`holdfast serve`). The address's network comes from its form
//! (`holdfast-bitcoin`'s `address::networks`), narrowed to the networks the index holds.

use std::sync::Arc;

use holdfast_bitcoin::{Network, address};
use holdfast_intel::cluster::{ClusterFacts, ClusterLookup, ClusterSource, ClusterSourceError};
use holdfast_store::utxo::UtxoStore;

use crate::chain_cmd::StoreArgs;

/// Clusters read from a UTXO index.
pub struct UtxoClusters {
    pub index: Arc<dyn UtxoStore>,
}

impl UtxoClusters {
    /// The configured UTXO index (`--store`, else `<data-dir>/store/utxo` if it exists), or
    /// `None` when there is none (an embedded index is never created to be screened against).
    pub fn configured(
        data_dir: &holdfast_intel::DataDir,
        store: &StoreArgs,
    ) -> anyhow::Result<Option<UtxoClusters>> {
        if store.store.is_none() && !data_dir.root().join("store/utxo").exists() {
            return Ok(None);
        }
        Ok(Some(UtxoClusters {
            index: crate::bitcoin_cmd::open_index(data_dir, store)?,
        }))
    }
}

/// The embedded index found but not opened (another process, such as `holdfast ingest
/// --chain bitcoin --follow`, holds it): every Bitcoin-family verdict says so instead of
/// failing the screening.
pub struct Unreadable(pub String);

impl ClusterSource for Unreadable {
    fn cluster_of(&self, _: &str, _: usize) -> Result<ClusterLookup, ClusterSourceError> {
        Ok(ClusterLookup::NotIndexed {
            reason: format!(
                "the UTXO index could not be read, so no cluster facts: {}",
                self.0
            ),
        })
    }
}

fn names(list: &[Network]) -> String {
    list.iter().map(|n| n.name()).collect::<Vec<_>>().join(", ")
}

impl ClusterSource for UtxoClusters {
    fn cluster_of(&self, text: &str, limit: usize) -> Result<ClusterLookup, ClusterSourceError> {
        let err = |e: holdfast_store::StoreError| ClusterSourceError(e.to_string());
        let Ok(candidates) = address::networks(text) else {
            return Ok(ClusterLookup::NotIndexed {
                reason: "not an address of a network the UTXO index reads".into(),
            });
        };
        // A network is held when the index has its blocks from a node or imported history
        // (bitcoin-etl); the node-built clusters are preferred where both exist.
        let mut held = Vec::new();
        for n in &candidates {
            if self.index.head(n.index_id()).map_err(err)?.is_some() {
                held.push((*n, n.index_id()));
            } else if self.index.head(n.import_id()).map_err(err)?.is_some() {
                held.push((*n, n.import_id()));
            }
        }
        let (network, id) = match held[..] {
            [one] => one,
            [] => {
                return Ok(ClusterLookup::NotIndexed {
                    reason: format!(
                        "the UTXO index holds no blocks of {}: run `holdfast ingest --chain bitcoin` on such a node, or import a bitcoin-etl export",
                        names(&candidates)
                    ),
                });
            }
            _ => {
                return Ok(ClusterLookup::NotIndexed {
                    reason: format!(
                        "the address is one of {}, all indexed: its cluster is ambiguous",
                        names(&held.iter().map(|(n, _)| *n).collect::<Vec<_>>())
                    ),
                });
            }
        };
        // The index keys addresses in the network's canonical form.
        let canonical = address::parse(text, network)
            .map(|(_, c)| c)
            .map_err(|e| ClusterSourceError(e.to_string()))?;
        let cluster = self.index.cluster(id, &canonical).map_err(err)?;
        let members = self
            .index
            .cluster_members(id, &cluster.root, limit)
            .map_err(err)?;
        Ok(ClusterLookup::Found(ClusterFacts {
            network: network.name().to_owned(),
            root: cluster.root,
            size: cluster.size,
            members,
        }))
    }
}
