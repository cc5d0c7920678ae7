//! Which addresses are services (where a trace stops) and the labels a trace gives back to
//! intel (exposure: `tainted` labels).

use std::collections::BTreeMap;

use alloy_primitives::Address;
use holdfast_intel::{IntelIndex, LabelRecord};
use holdfast_primitives::{Category, Confidence};

use crate::result::{Role, Trace};

/// What a trace does at a labelled address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServiceKind {
    /// A custodial service (exchange, payment processor, gambling site): a freeze target.
    Custodial,
    /// A mixer: marked; followed or not by option.
    Mixer,
    /// A bridge: a cross-chain exit; followed or not by option.
    Bridge,
}

/// A labelled service an address belongs to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Service {
    pub kind: ServiceKind,
    pub category: Category,
    /// The service's name as the label gives it (else its actor, else its source).
    pub name: String,
}

/// Tells the engine which addresses are services. Implemented for [`IntelIndex`] and, for
/// tests and fixed lists, for a map.
pub trait Classifier {
    fn classify(&self, address: &Address) -> Option<Service>;
}

impl Classifier for IntelIndex {
    fn classify(&self, address: &Address) -> Option<Service> {
        let labels = self.evm_labels(address);
        // Strongest first: a custodial label is what makes a freeze possible.
        let mut best: Option<(ServiceKind, &holdfast_intel::Label)> = None;
        for l in labels {
            let kind = match kind_of(l.category) {
                Some(k) => k,
                None => continue,
            };
            if best.is_none_or(|(k, b)| {
                (kind, std::cmp::Reverse(l.confidence)) < (k, std::cmp::Reverse(b.confidence))
            }) {
                best = Some((kind, l));
            }
        }
        best.map(|(kind, l)| Service {
            kind,
            category: l.category,
            name: self
                .name(l)
                .or_else(|| self.actor(l))
                .unwrap_or_else(|| self.source(l))
                .to_owned(),
        })
    }
}

impl Classifier for BTreeMap<Address, Service> {
    fn classify(&self, address: &Address) -> Option<Service> {
        self.get(address).cloned()
    }
}

/// No address is a service.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoServices;

impl Classifier for NoServices {
    fn classify(&self, _: &Address) -> Option<Service> {
        None
    }
}

/// The categories a trace treats as services.
pub const fn kind_of(category: Category) -> Option<ServiceKind> {
    match category {
        Category::Exchange | Category::Service | Category::Gambling => Some(ServiceKind::Custodial),
        Category::Mixer => Some(ServiceKind::Mixer),
        Category::Bridge => Some(ServiceKind::Bridge),
        Category::Sanctioned
        | Category::DprkAttributed
        | Category::Hack
        | Category::Phishing
        | Category::Scam
        | Category::Ransomware
        | Category::Darknet
        | Category::Tainted
        | Category::Blocked
        | Category::Defi
        | Category::Miner
        | Category::Other => None,
    }
}

/// Confidence of the labels a trace produces: derived by a rule from chain data
/// (TagPack "service_data" is 50; a trace is an inference, below it).
pub const TAINTED_CONFIDENCE: Confidence = Confidence(40);

impl Trace {
    /// `tainted` labels for the addresses the trace reached (seeds and intermediaries, not
    /// the services it stopped at: an exchange's deposit address is a freeze target, not a
    /// launderer). Each names the trace id, the policy and the tainted amounts.
    pub fn tainted_labels(&self) -> Vec<LabelRecord> {
        self.addresses
            .iter()
            .filter(|a| {
                matches!(
                    a.role,
                    Role::Seed | Role::Intermediate | Role::HopLimit | Role::Capped
                )
            })
            .map(|a| {
                let amounts = a
                    .received
                    .iter()
                    .map(|x| format!("{} {}", x.amount, x.asset))
                    .collect::<Vec<_>>()
                    .join(", ");
                let mut r = LabelRecord::new(
                    a.address.to_checksum(None),
                    format!("trace:{}", self.id),
                    Category::Tainted,
                    TAINTED_CONFIDENCE,
                );
                r.name = Some(if amounts.is_empty() {
                    format!("trace {} ({}): seed", self.id, self.policy)
                } else {
                    format!("trace {} ({}): {amounts}", self.id, self.policy)
                });
                r.uid = Some(self.id.clone());
                r
            })
            .collect()
    }
}
