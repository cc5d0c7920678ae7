//! The policy file as written (TOML), before validation. Unknown keys are rejected
//! everywhere, so a typo fails loudly with its line.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    pub policy: RawMeta,
    #[serde(default)]
    pub wallets: BTreeMap<String, RawWallet>,
    #[serde(default)]
    pub assets: BTreeMap<String, RawAsset>,
    #[serde(default)]
    pub lists: BTreeMap<String, Vec<Spanned<String>>>,
    #[serde(default)]
    pub groups: BTreeMap<String, RawGroup>,
    #[serde(default, rename = "rule")]
    pub rules: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMeta {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// The format version; 1 today.
    #[serde(default = "one")]
    pub format: u32,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWallet {
    pub address: Spanned<String>,
    #[serde(default)]
    pub chain_id: Option<u64>,
    /// For Safes: the version, used when no node says otherwise.
    #[serde(default)]
    pub safe_version: Option<Spanned<String>>,
    /// For Safes without a node: the owners, to check signatures against.
    #[serde(default)]
    pub owners: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAsset {
    #[serde(default)]
    pub native: bool,
    #[serde(default)]
    pub token: Option<Spanned<String>>,
    pub decimals: u8,
    /// Price of one whole unit in US dollars, as a decimal string.
    #[serde(default)]
    pub usd: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGroup {
    pub members: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    pub name: Spanned<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub when: RawWhen,
    pub action: Spanned<String>,
    /// With `action = "hold"`.
    #[serde(default)]
    pub hold: Option<Spanned<String>>,
    /// With `action = "require_approvals"`.
    #[serde(default)]
    pub approvals: Option<Spanned<u32>>,
    #[serde(default)]
    pub group: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWhen {
    pub wallet: Option<Vec<Spanned<String>>>,
    pub chain_id: Option<Vec<u64>>,
    pub initiator: Option<Vec<String>>,
    pub kind: Option<Vec<Spanned<String>>>,
    pub destination_in: Option<Spanned<String>>,
    pub destination_not_in: Option<Spanned<String>>,
    pub destination_new: Option<Spanned<String>>,
    pub asset_in: Option<Vec<Spanned<String>>>,
    pub asset_not_in: Option<Vec<Spanned<String>>>,
    pub amount_above: Option<Spanned<String>>,
    pub usd_above: Option<Spanned<String>>,
    pub velocity: Option<RawVelocity>,
    pub counterparty_risk: Option<Spanned<String>>,
    pub counterparty_category: Option<Vec<Spanned<String>>>,
    pub call: Option<Vec<Spanned<String>>>,
    pub no_call: Option<Vec<Spanned<String>>>,
    pub delegatecall_to_unlisted: Option<Spanned<String>>,
    pub approval_to_unlisted: Option<Spanned<String>>,
    pub unknown_call_to_unlisted: Option<Spanned<String>>,
    pub critical_write: Option<bool>,
    pub hidden_critical_write: Option<bool>,
    pub simulation: Option<Vec<Spanned<String>>>,
    pub finding: Option<Vec<Spanned<String>>>,
    pub time_outside: Option<RawTime>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVelocity {
    pub window: Spanned<String>,
    #[serde(default)]
    pub per: Option<Spanned<String>>,
    #[serde(default)]
    pub asset: Option<Spanned<String>>,
    #[serde(default)]
    pub amount_above: Option<Spanned<String>>,
    #[serde(default)]
    pub usd_above: Option<Spanned<String>>,
    #[serde(default)]
    pub count_above: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTime {
    /// `"08:00-18:00"`.
    pub hours: Spanned<String>,
    /// `["mon", "tue", ...]`; default every day.
    #[serde(default)]
    pub days: Option<Vec<Spanned<String>>>,
    /// `"+09:00"`; default UTC.
    #[serde(default)]
    pub utc_offset: Option<Spanned<String>>,
}
