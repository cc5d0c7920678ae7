//! Etherscan account labels (brianleect/etherscan-labels, Ethereum, scraped 2023-06):
//! `{address: {name, labels[]}}`. Web-crawl confidence.

use std::collections::BTreeMap;

use holdfast_primitives::{Category, Chain, Confidence};

use super::SourceError;
use crate::record::LabelRecord;

pub const SOURCE: &str = "etherscan-labels";

#[derive(Debug, serde::Deserialize)]
struct Entry {
    #[serde(default)]
    name: String,
    #[serde(default)]
    labels: Vec<String>,
}

/// Etherscan label slugs of centralised exchanges (the scrape has no generic "exchange").
const EXCHANGES: &[&str] = &[
    "binance",
    "coinbase",
    "kraken",
    "huobi",
    "okx",
    "okex",
    "kucoin",
    "bitfinex",
    "bitstamp",
    "bittrex",
    "poloniex",
    "gemini",
    "upbit",
    "bithumb",
    "ftx",
    "crypto-com",
    "gate-io",
    "bybit",
    "mexc",
    "hotbit",
    "bitget",
    "htx",
    "exchange",
    "bitmex",
    "deribit",
    "coinone",
    "korbit",
    "bitflyer",
    "zb-com",
    "hitbtc",
    "liquid",
    "coincheck",
    "bitpanda",
    "blockchain-com",
    "robinhood",
    "paribu",
    "btcturk",
    "indodax",
    "wazirx",
    "coindcx",
    "binance-us",
    "bitso",
    "luno",
    "coinlist",
];

fn category_of(labels: &[String]) -> Category {
    let has = |s: &str| labels.iter().any(|l| l == s);
    let any = |set: &[&str]| labels.iter().any(|l| set.contains(&l.as_str()));
    if has("ofac-sanctions-lists") {
        Category::Sanctioned
    } else if any(&["exploit", "heist", "hack", "compromised"]) {
        Category::Hack
    } else if has("phish-hack") || has("phishing") {
        Category::Phishing
    } else if has("tornado-cash") || has("ethereum-mixer") || has("mixer") {
        Category::Mixer
    } else if has("blocked") {
        Category::Blocked
    } else if has("bridge") {
        Category::Bridge
    } else if any(EXCHANGES) {
        Category::Exchange
    } else if has("gambling") {
        Category::Gambling
    } else if has("mining") || has("mining-pool") {
        Category::Miner
    } else if any(&[
        "dex",
        "defi",
        "lending",
        "yield-farming",
        "uniswap",
        "sushiswap",
        "balancer",
        "curve-fi",
        "aave",
        "compound",
        "maker",
        "bancor",
    ]) {
        Category::Defi
    } else {
        Category::Other
    }
}

pub fn parse(text: &str) -> Result<Vec<LabelRecord>, SourceError> {
    let map: BTreeMap<String, Entry> =
        serde_json::from_str(text).map_err(|e| SourceError::Json {
            source_name: SOURCE.into(),
            message: e.to_string(),
        })?;
    Ok(map
        .into_iter()
        .map(|(address, e)| {
            let mut r = LabelRecord::new(
                address,
                SOURCE,
                category_of(&e.labels),
                Confidence::WEB_CRAWL,
            );
            r.chain = Some(Chain::Ethereum);
            r.name = Some(e.name).filter(|n| !n.is_empty());
            r.reference = (!e.labels.is_empty())
                .then(|| format!("etherscan labels: {}", e.labels.join(", ")));
            r
        })
        .collect())
}
