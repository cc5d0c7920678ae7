//! [`Alert`]: what a detector found, in words a responder understands, with a deterministic
//! id so the same block gives the same alerts live, after a crash and in replay.

use alloy_primitives::{Address, B256};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// How urgent an alert is. Ordered: `Info < Low < Medium < High < Critical`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Low,
    #[default]
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 5] = [
        Severity::Info,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// 0 (info) to 4 (critical), as the store keeps it.
    pub const fn rank(self) -> u8 {
        self as u8
    }

    pub fn from_rank(rank: u8) -> Option<Severity> {
        Severity::ALL.get(usize::from(rank)).copied()
    }

    pub fn parse(s: &str) -> Option<Severity> {
        Severity::ALL.into_iter().find(|v| v.name() == s)
    }
}

/// The built-in detectors (issue 14's list). Closed set: a watch file naming another is an
/// error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DetectorKind {
    /// Critical storage slots and admin events of watched contracts.
    CriticalStorage,
    /// Outflows from watched wallets: thresholds, velocity, drain, new destination, balance.
    Outflow,
    /// Approvals and permits from watched wallets.
    Grant,
    /// A watched address dealing with a sanctioned, DPRK, mixer or tainted address.
    Counterparty,
    /// Zero-value and fake-token transfers from watched wallets, look-alike addresses.
    Poisoning,
    /// Taint of a theft being followed reaching a labelled service's deposit.
    TaintedDeposit,
}

impl DetectorKind {
    pub const ALL: [DetectorKind; 6] = [
        DetectorKind::CriticalStorage,
        DetectorKind::Outflow,
        DetectorKind::Grant,
        DetectorKind::Counterparty,
        DetectorKind::Poisoning,
        DetectorKind::TaintedDeposit,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            DetectorKind::CriticalStorage => "critical_storage",
            DetectorKind::Outflow => "outflow",
            DetectorKind::Grant => "grant",
            DetectorKind::Counterparty => "counterparty",
            DetectorKind::Poisoning => "poisoning",
            DetectorKind::TaintedDeposit => "tainted_deposit",
        }
    }

    pub fn parse(s: &str) -> Option<DetectorKind> {
        DetectorKind::ALL.into_iter().find(|v| v.name() == s)
    }
}

/// Where in the block an alert's evidence is: with the chain, block hash and rule it makes
/// the alert's id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Place {
    /// The whole transaction.
    Tx { tx_index: u32 },
    /// A receipt log (index in the block).
    Log { tx_index: u32, log_index: u32 },
    /// A call frame (parity trace address).
    Call {
        tx_index: u32,
        trace_address: Vec<u32>,
    },
    /// A storage slot written by a transaction.
    Storage {
        tx_index: u32,
        address: Address,
        slot: B256,
    },
    /// A transfer (its position as the store keeps it, e.g. `log:5`, `trace:0.1`).
    Transfer { tx_index: u32, position: String },
    /// The block as a whole (a drain over several transactions, a velocity window).
    /// `key` tells apart several such alerts of one rule (e.g. the wallet).
    Block { key: String },
}

impl Place {
    pub fn tx_index(&self) -> Option<u32> {
        match self {
            Place::Tx { tx_index }
            | Place::Log { tx_index, .. }
            | Place::Call { tx_index, .. }
            | Place::Storage { tx_index, .. }
            | Place::Transfer { tx_index, .. } => Some(*tx_index),
            Place::Block { .. } => None,
        }
    }

    fn id_part(&self) -> String {
        match self {
            Place::Tx { tx_index } => format!("tx{tx_index}"),
            Place::Log {
                tx_index,
                log_index,
            } => format!("tx{tx_index}:log{log_index}"),
            Place::Call {
                tx_index,
                trace_address,
            } => {
                let path: Vec<String> = trace_address.iter().map(u32::to_string).collect();
                format!("tx{tx_index}:call[{}]", path.join("."))
            }
            Place::Storage {
                tx_index,
                address,
                slot,
            } => format!("tx{tx_index}:slot:{address}:{slot}"),
            Place::Transfer { tx_index, position } => format!("tx{tx_index}:transfer:{position}"),
            Place::Block { key } => format!("block:{key}"),
        }
    }
}

/// The deterministic id of an alert: `hf-` and the first 20 bytes (hex) of
/// SHA-256(chain id, block hash, rule, place).
pub fn alert_id(chain_id: u64, block_hash: B256, rule: &str, place: &Place) -> String {
    let mut h = Sha256::new();
    h.update(chain_id.to_be_bytes());
    h.update(block_hash.as_slice());
    h.update((rule.len() as u64).to_be_bytes());
    h.update(rule.as_bytes());
    h.update(place.id_part().as_bytes());
    let d = h.finalize();
    format!("hf-{}", hex::encode(&d[..20]))
}

/// What an address is to an alert: what the responses do with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Involvement {
    /// A watched wallet or contract: the `freeze` response freezes it in the guard.
    Watched,
    /// An address the alert implicates (the thief, a new implementation, an unknown
    /// spender, a laundering hop): the `label` response labels it `tainted`.
    Suspect,
    /// A labelled service (an exchange deposit): a freeze-request target (`notify`).
    Service,
    /// Anything else mentioned (an executor, a token contract).
    #[default]
    Other,
}

/// One address an alert mentions, with its role and what intel knows of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressNote {
    pub address: Address,
    /// In words: `watched wallet`, `new implementation`, `spender`, `recipient`, `exchange
    /// deposit`, …
    pub role: String,
    /// What the responses do with it.
    #[serde(default)]
    pub involvement: Involvement,
    /// Intel's labels, e.g. `OFAC SDN: Lazarus Group (sanctioned)`; empty when none.
    pub labels: Vec<String>,
}

/// One fact of an alert, as a label and a value in words (amounts in token units).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fact {
    pub name: String,
    pub value: String,
}

/// A link to an explorer (block, transaction, address) configured per chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub name: String,
    pub url: String,
}

/// One alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// [`alert_id`].
    pub id: String,
    pub chain_id: u64,
    /// The chain's name in the watch file.
    pub chain: String,
    pub block_number: u64,
    pub block_hash: B256,
    /// Unix seconds of the block.
    pub block_timestamp: u64,
    pub tx_hash: Option<B256>,
    pub place: Place,
    /// The rule's name in the watch file.
    pub rule: String,
    pub detector: DetectorKind,
    pub severity: Severity,
    /// One line: what happened, e.g. `Safe 0x1db9… singleton replaced by 0xbdd0… in a
    /// DELEGATECALL`.
    pub title: String,
    /// A paragraph in words: what happened, why it matters, what to do.
    pub summary: String,
    pub facts: Vec<Fact>,
    pub addresses: Vec<AddressNote>,
    pub links: Vec<Link>,
    /// Confirmations of the block when the alert was raised (0: the head block; it may be
    /// unwound, and a `confirmed` event follows once it is deep enough).
    pub confirmations: u64,
    /// The responses the rule starts (`freeze`, `trace`, `label`, `notify`).
    pub responses: Vec<String>,
    /// Machine-readable evidence for responders (e.g. a tainted deposit's freeze request:
    /// service, deposit, amounts, hop-by-hop path). `null` when there is none.
    #[serde(default)]
    pub evidence: serde_json::Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_deterministic_and_distinguish_every_part() {
        let place = Place::Log {
            tx_index: 1,
            log_index: 2,
        };
        let a = alert_id(1, B256::ZERO, "r", &place);
        assert_eq!(a, alert_id(1, B256::ZERO, "r", &place));
        assert!(a.starts_with("hf-") && a.len() == 43);
        assert_ne!(a, alert_id(2, B256::ZERO, "r", &place));
        assert_ne!(a, alert_id(1, B256::repeat_byte(1), "r", &place));
        assert_ne!(a, alert_id(1, B256::ZERO, "s", &place));
        let other = Place::Log {
            tx_index: 1,
            log_index: 3,
        };
        assert_ne!(a, alert_id(1, B256::ZERO, "r", &other));
    }

    #[test]
    fn severities_round_trip() {
        for s in Severity::ALL {
            assert_eq!(Severity::from_rank(s.rank()), Some(s));
            assert_eq!(Severity::parse(s.name()), Some(s));
        }
        assert!(Severity::Critical > Severity::High);
    }
}
