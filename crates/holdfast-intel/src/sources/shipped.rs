//! The intel shipped with Holdfast, embedded in the binary from `data/intel/`.

use std::collections::{BTreeMap, HashMap};

use holdfast_primitives::Chain;

use super::{SourceError, dprk, etherscan, forta, ofac, tagpack};
use crate::record::LabelRecord;

macro_rules! data {
    ($path:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../data/intel/",
            $path
        ))
    };
}

macro_rules! packs {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/intel/graphsense/packs/", $name, ".yaml")))),*]
    };
}

/// Every GraphSense TagPack shipped (file stem, text). A test checks this list against the
/// folder, so a pack added to `data/intel/graphsense/packs/` cannot be forgotten here.
pub const TAGPACKS: &[(&str, &str)] = packs![
    "binance_hack",
    "blender_io",
    "defi-protocols-csh",
    "etherscan-label-word-cloud",
    "etherscan-wordcloud-exchange",
    "etherscan-wordcloud-market",
    "etherscan-wordcloud-mixing_service",
    "exchange-wallets-binance",
    "exchange-wallets-bitfinexcom",
    "exchange-wallets-bybit",
    "exchange-wallets-cryptocom",
    "exchange-wallets-deribit",
    "exchange-wallets-huobi",
    "exchange-wallets-kucoin",
    "exchange-wallets-okx",
    "exchange-wallets-swissborg",
    "hacks",
    "interpol-real_services",
    "lazarus",
    "lazarus2",
    "mixing_fc2021",
    "ofac",
    "richest_addresses",
    "ronin_bridge",
    "service-wallets-checksig",
    "sinbad_io",
    "tornado_cash",
    "usdt_blacklist",
    "walletexplorer",
    "defi_updated/defi-protocols_1inch",
    "defi_updated/defi-protocols_aave",
    "defi_updated/defi-protocols_compound",
    "defi_updated/defi-protocols_curve",
    "defi_updated/defi-protocols_instadapp",
    "defi_updated/defi-protocols_sushiswap",
    "defi_updated/defi-protocols_synthetix",
    "defi_updated/defi-protocols_uniswap",
    "defi_updated/defi-protocols_uniswap_pools",
];

/// Per-chain OFAC lists in original case (0xB10C), used only to restore case.
const OFAC_CASE_LISTS: &[&str] = &[
    data!("ofac/0xB10C-lists/sanctioned_addresses_ARB.txt"),
    data!("ofac/0xB10C-lists/sanctioned_addresses_BCH.txt"),
    data!("ofac/0xB10C-lists/sanctioned_addresses_BSC.txt"),
    data!("ofac/0xB10C-lists/sanctioned_addresses_BSV.txt"),
    data!("ofac/0xB10C-lists/sanctioned_addresses_BTG.txt"),
    data!("ofac/0xB10C-lists/sanctioned_addresses_DASH.txt"),
    data!("ofac/0xB10C-lists/sanctioned_addresses_ETC.txt"),
    data!("ofac/0xB10C-lists/sanctioned_addresses_ETH.txt"),
    data!("ofac/0xB10C-lists/sanctioned_addresses_LTC.txt"),
    data!("ofac/0xB10C-lists/sanctioned_addresses_TRX.txt"),
    data!("ofac/0xB10C-lists/sanctioned_addresses_USDC.txt"),
    data!("ofac/0xB10C-lists/sanctioned_addresses_USDT.txt"),
    data!("ofac/0xB10C-lists/sanctioned_addresses_XBT.txt"),
    data!("ofac/0xB10C-lists/sanctioned_addresses_XMR.txt"),
    data!("ofac/0xB10C-lists/sanctioned_addresses_XRP.txt"),
    data!("ofac/0xB10C-lists/sanctioned_addresses_XVG.txt"),
    data!("ofac/0xB10C-lists/sanctioned_addresses_ZEC.txt"),
];

/// What the shipped datasets yielded.
#[derive(Debug, Default)]
pub struct Shipped {
    pub records: Vec<LabelRecord>,
    /// Entries on chains Holdfast has no address format for, per source and currency.
    pub unsupported: BTreeMap<String, BTreeMap<String, usize>>,
}

/// Reads every shipped dataset. Fails only if the embedded data itself is broken, which the
/// test suite rules out.
pub fn shipped() -> Result<Shipped, SourceError> {
    // The Ethereum-only label sets need nothing from the others: read them on a second
    // thread while this one reads the TagPacks and OFAC (which restores case from them).
    std::thread::scope(|scope| {
        let ethereum = scope.spawn(ethereum_labels);
        let mut out = sanctions_and_tagpacks()?;
        let ethereum = ethereum
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
        out.records.extend(ethereum);
        Ok(out)
    })
}

/// TagPacks, FBI DPRK attributions and OFAC.
fn sanctions_and_tagpacks() -> Result<Shipped, SourceError> {
    let mut out = Shipped::default();
    let mut originals: HashMap<String, String> = HashMap::new();
    let mut remember = |a: &str| {
        if !a.starts_with("0x") {
            originals
                .entry(a.to_ascii_lowercase())
                .or_insert_with(|| a.to_owned());
        }
    };
    for text in OFAC_CASE_LISTS {
        ofac::list_lines(text).for_each(&mut remember);
    }
    for (name, text) in TAGPACKS {
        let source = format!("graphsense:{}", name.rsplit('/').next().unwrap_or(name));
        let pack = tagpack::parse(text, &source)?;
        for r in &pack.records {
            remember(&r.address);
        }
        if !pack.unsupported.is_empty() {
            out.unsupported.insert(source, pack.unsupported);
        }
        out.records.extend(pack.records);
    }
    let dprk = dprk::parse(data!("dprk/dprk_attributed_addresses.csv"))?;
    dprk.iter().for_each(|r| remember(&r.address));
    let ofac = ofac::parse(
        ofac::OfacTexts {
            current_json: data!("ofac/thomasgregg/sanctioned-addresses.json"),
            history_csv: data!("ofac/derived/sdn_crypto_address_history.csv"),
            events_csv: data!("ofac/derived/sdn_crypto_address_events.csv"),
        },
        &originals,
    )?;
    if !ofac.unsupported.is_empty() {
        out.unsupported
            .insert(ofac::SOURCE.into(), ofac.unsupported);
    }
    out.records.extend(ofac.records);
    out.records.extend(dprk);
    Ok(out)
}

/// Forta and Etherscan labels (Ethereum and Optimism).
fn ethereum_labels() -> Result<Vec<LabelRecord>, SourceError> {
    let mut out = Vec::new();
    out.extend(forta::malicious_labels(
        data!("forta/labels/1/etherscan_malicious_labels.csv"),
        Chain::Ethereum,
    )?);
    out.extend(forta::phishing_scams(
        data!("forta/labels/1/phishing_scams.csv"),
        Chain::Ethereum,
    )?);
    out.extend(forta::malicious_contracts(
        data!("forta/labels/1/malicious_smart_contracts.csv"),
        Chain::Ethereum,
    )?);
    out.extend(forta::malicious_contracts(
        data!("forta/labels/10/malicious_smart_contracts.csv"),
        Chain::Optimism,
    )?);
    out.extend(etherscan::parse(data!(
        "etherscan/eth_combinedAccountLabels.json"
    ))?);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pack_in_the_folder_is_shipped() {
        let root = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../data/intel/graphsense/packs"
        );
        let mut on_disk = Vec::new();
        for dir in [root.to_owned(), format!("{root}/defi_updated")] {
            for e in std::fs::read_dir(&dir).expect("packs folder") {
                let p = e.expect("entry").path();
                if p.extension().is_some_and(|x| x == "yaml") {
                    let rel = p.strip_prefix(root).expect("under root").with_extension("");
                    on_disk.push(rel.to_string_lossy().into_owned());
                }
            }
        }
        on_disk.sort();
        let mut listed: Vec<String> = TAGPACKS.iter().map(|(n, _)| (*n).to_owned()).collect();
        listed.sort();
        assert_eq!(on_disk, listed);
    }
}
