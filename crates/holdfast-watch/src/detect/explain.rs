//! Alerts in words: every address with its role and labels, amounts in token units, links to
//! the explorer when the chain has one.

use std::cell::RefCell;

use alloy_primitives::{Address, B256, U256};
use holdfast_chain::BlockDetail;
use holdfast_guard::policy::AssetKey;
use holdfast_guard::units::format_units;
use holdfast_primitives::Asset;

use super::context::AddressLabel;
use super::{Context, checksum, short};
use crate::alert::{AddressNote, Alert, Fact, Involvement, Link, Place, alert_id};
use crate::config::{ChainConfig, Rule, WatchConfig};

pub(crate) struct Explain<'a> {
    config: &'a WatchConfig,
    chain: &'a ChainConfig,
    block: &'a BlockDetail,
    cx: &'a Context<'a>,
    labels: RefCell<rustc_hash::FxHashMap<Address, Vec<AddressLabel>>>,
}

/// What one alert says, before the common parts are added.
pub(crate) struct Draft {
    pub place: Place,
    pub tx_index: Option<u32>,
    pub title: String,
    pub summary: String,
    pub facts: Vec<Fact>,
    /// `(address, role)`, in the order they matter.
    pub addresses: Vec<(Address, String)>,
}

impl<'a> Explain<'a> {
    pub fn new(
        config: &'a WatchConfig,
        chain: &'a ChainConfig,
        block: &'a BlockDetail,
        cx: &'a Context<'a>,
    ) -> Self {
        Explain {
            config,
            chain,
            block,
            cx,
            // Sized once: about one address asked per transfer (growing by doubling cost
            // more than the lookups on a busy block).
            labels: RefCell::new(rustc_hash::FxHashMap::with_capacity_and_hasher(
                block.transfers.transfers.len(),
                Default::default(),
            )),
        }
    }

    /// Intel's labels of an address (asked once per block).
    /// Whether `a` has any label (remembered like [`Explain::labels`], without the copy).
    pub fn has_labels(&self, a: Address) -> bool {
        if let Some(l) = self.labels.borrow().get(&a) {
            return !l.is_empty();
        }
        !self.labels(a).is_empty()
    }

    pub fn labels(&self, a: Address) -> Vec<AddressLabel> {
        if let Some(l) = self.labels.borrow().get(&a) {
            return l.clone();
        }
        let l = self.cx.labels.labels(self.block.chain_id(), a);
        self.labels.borrow_mut().insert(a, l.clone());
        l
    }

    /// `9000 ETH`, `1500.25 USDC`, `#42 of 0xabcd…` (NFTs), raw units when the token is not
    /// declared in the watch file.
    pub fn amount(&self, asset: &Asset, amount: U256) -> String {
        match asset {
            Asset::Native => match self.config.asset(&self.chain.name, AssetKey::Native) {
                Some(a) => format!("{} {}", format_units(amount, a.decimals), a.symbol),
                None => format!("{} (native coin)", format_units(amount, 18)),
            },
            Asset::Erc20 { token } => self.token_amount(*token, amount),
            Asset::Erc721 { token, id } => format!("NFT #{id} of {}", self.token_name(*token)),
            Asset::Erc1155 { token, id } => {
                format!("{amount} of token #{id} of {}", self.token_name(*token))
            }
        }
    }

    pub fn token_amount(&self, token: Address, amount: U256) -> String {
        match self.config.asset(&self.chain.name, AssetKey::Token(token)) {
            Some(a) => format!("{} {}", format_units(amount, a.decimals), a.symbol),
            None => format!("{amount} raw units of token {token} (not declared in the watch file)"),
        }
    }

    pub fn token_name(&self, token: Address) -> String {
        self.config
            .asset(&self.chain.name, AssetKey::Token(token))
            .map_or_else(|| short(token), |a| a.symbol.clone())
    }

    /// Whether the watch file declares this token on the chain.
    pub fn known_token(&self, token: Address) -> bool {
        self.config
            .asset(&self.chain.name, AssetKey::Token(token))
            .is_some()
    }

    /// `0x1Db9…c4B8 (ofac-sdn: LAZARUS GROUP (sanctioned))`.
    pub fn who(&self, a: Address) -> String {
        let l = self.labels(a);
        if l.is_empty() {
            checksum(a)
        } else {
            let t: Vec<String> = l.into_iter().map(|l| l.text).collect();
            format!("{} ({})", checksum(a), t.join("; "))
        }
    }

    pub fn tx_hash(&self, tx_index: u32) -> Option<B256> {
        self.block.txs.get(tx_index as usize).map(|t| t.hash)
    }

    pub fn alert(&self, rule: &Rule, d: Draft) -> Alert {
        let block = self.block.block();
        let tx_hash = d.tx_index.and_then(|i| self.tx_hash(i));
        let mut links = Vec::new();
        if let Some(base) = &self.chain.explorer {
            links.push(Link {
                name: "block".into(),
                url: format!("{base}/block/{}", block.number),
            });
            if let Some(h) = tx_hash {
                links.push(Link {
                    name: "transaction".into(),
                    url: format!("{base}/tx/{h}"),
                });
            }
            for (a, role) in &d.addresses {
                links.push(Link {
                    name: role.clone(),
                    url: format!("{base}/address/{}", checksum(*a)),
                });
            }
        }
        let mut facts = d.facts;
        if let Some(desc) = &rule.description {
            facts.push(Fact {
                name: "rule".into(),
                value: format!("{}: {desc}", rule.name),
            });
        }
        Alert {
            id: alert_id(self.block.chain_id(), block.hash, &rule.name, &d.place),
            chain_id: self.block.chain_id(),
            chain: self.chain.name.clone(),
            block_number: block.number,
            block_hash: block.hash,
            block_timestamp: block.timestamp,
            tx_hash,
            place: d.place,
            rule: rule.name.clone(),
            detector: rule.detector,
            severity: rule.severity,
            title: d.title,
            summary: d.summary,
            facts,
            addresses: d
                .addresses
                .into_iter()
                .map(|(address, role)| AddressNote {
                    address,
                    involvement: involvement(&role),
                    role,
                    labels: self.labels(address).into_iter().map(|l| l.text).collect(),
                })
                .collect(),
            links,
            confirmations: self.cx.confirmations,
            responses: rule.response_names(),
            evidence: serde_json::Value::Null,
        }
    }
}

pub(crate) fn fact(name: &str, value: impl Into<String>) -> Fact {
    Fact {
        name: name.to_owned(),
        value: value.into(),
    }
}

/// What the responses do with an address of a given role: `freeze` the watched one, `label`
/// the ones the alert implicates (recipients of a drain, a new singleton or implementation,
/// a DELEGATECALL target, an unknown spender, a poisoner).
fn involvement(role: &str) -> Involvement {
    match role {
        "watched wallet" | "watched contract" | "watched address" => Involvement::Watched,
        "recipient"
        | "recipient in this block"
        | "new singleton"
        | "new implementation"
        | "new owner"
        | "new module"
        | "role grantee"
        | "new admin"
        | "new beacon"
        | "new value"
        | "DELEGATECALL target"
        | "spender"
        | "suspected poisoner" => Involvement::Suspect,
        _ => Involvement::Other,
    }
}
