//! The watch file as written (TOML), before validation. Unknown keys are rejected everywhere,
//! so a typo fails loudly with its line.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use crate::sink::SinkSpec;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWatch {
    #[serde(default, rename = "chain")]
    pub chains: Vec<RawChain>,
    #[serde(default, rename = "asset")]
    pub assets: Vec<RawAsset>,
    #[serde(default, rename = "set")]
    pub sets: Vec<RawSet>,
    #[serde(default, rename = "rule")]
    pub rules: Vec<RawRule>,
    #[serde(default, rename = "sink")]
    pub sinks: Vec<Spanned<SinkSpec>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawChain {
    pub name: Spanned<String>,
    pub rpc: Spanned<String>,
    #[serde(default)]
    pub chain_id: Option<u64>,
    #[serde(default)]
    pub confirmations: Option<Spanned<u64>>,
    #[serde(default)]
    pub start_block: Option<u64>,
    #[serde(default)]
    pub explorer: Option<Spanned<String>>,
    #[serde(default)]
    pub first_look: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAsset {
    pub symbol: Spanned<String>,
    pub chain: Spanned<String>,
    /// `native`, `erc20` (the default with a `token`), `erc721` or `erc1155`.
    #[serde(default)]
    pub kind: Option<Spanned<String>>,
    #[serde(default)]
    pub token: Option<Spanned<String>>,
    #[serde(default)]
    pub decimals: Option<Spanned<u8>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSet {
    pub name: Spanned<String>,
    #[serde(default)]
    pub addresses: Vec<Spanned<String>>,
    /// Files of addresses, one a line (`#` starts a comment), relative to the watch file.
    #[serde(default)]
    pub files: Vec<Spanned<String>>,
    /// Every Safe whose owner is one of these joins the set when the watch sees it set up or
    /// given that owner.
    #[serde(default)]
    pub safes_owned_by: Vec<Spanned<String>>,
    /// The Safes those owners already hold are found at start from this block's logs on.
    #[serde(default)]
    pub safes_from_block: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    pub name: Spanned<String>,
    #[serde(default)]
    pub description: Option<String>,
    pub detector: Spanned<String>,
    #[serde(default)]
    pub targets: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    pub chains: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    pub severity: Option<Spanned<String>>,
    #[serde(default)]
    pub responses: Vec<Spanned<String>>,
    /// Parameters of the `trace` response.
    #[serde(default)]
    pub trace: Option<Spanned<RawTrace>>,

    // critical_storage
    #[serde(default)]
    pub changes: Option<Vec<Spanned<String>>>,

    // outflow
    #[serde(default)]
    pub amount_above: Option<Spanned<BTreeMap<String, Spanned<String>>>>,
    #[serde(default)]
    pub any_nft: Option<Spanned<bool>>,
    #[serde(default)]
    pub velocity: Option<Spanned<RawVelocity>>,
    #[serde(default)]
    pub drain: Option<Spanned<RawDrain>>,
    #[serde(default)]
    pub new_destination: Option<Spanned<bool>>,
    #[serde(default)]
    pub whole_balance: Option<Spanned<bool>>,

    // grant
    #[serde(default)]
    pub allowlist: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    pub unlimited_only: Option<Spanned<bool>>,

    // counterparty
    #[serde(default)]
    pub categories: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    pub direction: Option<Spanned<String>>,

    // poisoning
    #[serde(default)]
    pub prefix: Option<Spanned<u32>>,
    #[serde(default)]
    pub suffix: Option<Spanned<u32>>,
    #[serde(default)]
    pub zero_value: Option<Spanned<bool>>,
    #[serde(default)]
    pub fake_tokens: Option<Spanned<bool>>,
    #[serde(default)]
    pub lookalike: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTrace {
    /// One taint policy, or several with `policies` (each deposit alert gives every one's
    /// amounts).
    #[serde(default)]
    pub policy: Option<Spanned<String>>,
    #[serde(default)]
    pub policies: Option<Vec<Spanned<String>>>,
    /// The `tainted_deposit` rule whose severity and responses deposit alerts take.
    #[serde(default)]
    pub deposit_rule: Option<Spanned<String>>,
    #[serde(default)]
    pub hops: Option<Spanned<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVelocity {
    /// Over block timestamps: `"1h"`, `"15m"`.
    pub window: Spanned<String>,
    #[serde(default)]
    pub amount_above: Option<Spanned<BTreeMap<String, Spanned<String>>>>,
    #[serde(default)]
    pub count_above: Option<Spanned<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDrain {
    /// Percent of the balance lost (exclusive), 0 < percent < 100.
    pub percent: Spanned<f64>,
    /// Within this many blocks.
    pub blocks: Spanned<u64>,
    /// Asset symbols; default the chain's native coin.
    #[serde(default)]
    pub assets: Option<Vec<Spanned<String>>>,
}
