//! OFAC SDN "Digital Currency Address - XXX" entries.
//!
//! Built from three views of the same public list (see `data/intel/ofac/README.md`):
//! the entity-mapped current list (`thomasgregg`, lower-cased keys, SDN list of 2026-08-20),
//! the derived add/remove history since 2024-12-29 (list and delisting dates, e.g. the
//! Tornado Cash delisting of 2025-03-21), and per-chain lists in original case (`0xB10C`,
//! `ultrasoundmoney`) used to restore the case of base58 addresses. An address whose
//! original case no source gives is matched case-insensitively (`case_folded`): its
//! checksum makes a false match between two valid addresses practically impossible.

use std::collections::{BTreeMap, HashMap};

use holdfast_primitives::{Category, Chain, Confidence, Date};

use super::{SourceError, csv_error};
use crate::address;
use crate::record::LabelRecord;

pub const SOURCE: &str = "ofac-sdn";

/// The raw texts of the OFAC views.
#[derive(Debug, Clone, Copy)]
pub struct OfacTexts<'a> {
    /// `thomasgregg/sanctioned-addresses.json`.
    pub current_json: &'a str,
    /// `derived/sdn_crypto_address_history.csv`.
    pub history_csv: &'a str,
    /// `derived/sdn_crypto_address_events.csv`.
    pub events_csv: &'a str,
}

#[derive(Debug, serde::Deserialize)]
struct Current {
    addresses: BTreeMap<String, CurrentAddress>,
}

#[derive(Debug, serde::Deserialize)]
struct CurrentAddress {
    #[serde(rename = "type")]
    kind: String,
    entries: Vec<SdnEntry>,
}

#[derive(Debug, serde::Deserialize)]
struct HistoryRow {
    address_lowercase: String,
    #[serde(rename = "type")]
    kind: String,
    entities: String,
    programs: String,
    sdn_uids: String,
    first_seen_sdn_list_date: String,
    last_seen_commit_date: String,
    present_at_head: String,
}

#[derive(Debug, serde::Deserialize)]
struct EventRow {
    sdn_list_date: String,
    event: String,
    address_lowercase: String,
}

/// One listed party on one address.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct SdnEntry {
    pub entity: String,
    pub program: String,
    pub uid: String,
}

/// The chain an OFAC "Digital Currency Address - XXX" type denotes for `address`.
/// `Ok(None)`: every chain of the address's format (EVM: sanctions attach to the key holder,
/// not to one network). `Err`: a currency Holdfast has no address format for.
pub fn chain_of_type(kind: &str, address: &str) -> Result<Option<Chain>, String> {
    let ticker = kind.rsplit(" - ").next().unwrap_or(kind).trim();
    let evm = address.starts_with("0x") || address.starts_with("0X");
    match ticker.to_ascii_uppercase().as_str() {
        _ if evm => Ok(None),
        "USDT" | "USDC" if address.starts_with('T') => Ok(Some(Chain::Tron)),
        // Tether on the Omni Layer lives in Bitcoin addresses.
        "USDT" | "USDC" => Ok(Some(Chain::Bitcoin)),
        "BNB" => Ok(Some(Chain::BnbBeacon)),
        t => t.parse::<Chain>().map(Some).map_err(|_| ticker.to_owned()),
    }
}

fn us_date(s: &str) -> Option<Date> {
    Date::parse_us(s).ok()
}

/// Builds the OFAC labels. `originals` maps lower-cased addresses to their original case.
pub fn parse(
    texts: OfacTexts<'_>,
    originals: &HashMap<String, String>,
) -> Result<OfacLabels, SourceError> {
    let current: Current =
        serde_json::from_str(texts.current_json).map_err(|e| SourceError::Json {
            source_name: SOURCE.into(),
            message: e.to_string(),
        })?;
    let mut removed: HashMap<String, Date> = HashMap::new();
    let mut added: HashMap<String, Date> = HashMap::new();
    for row in csv::Reader::from_reader(texts.events_csv.as_bytes()).deserialize::<EventRow>() {
        let row = row.map_err(|e| csv_error(SOURCE, e))?;
        let Some(d) = us_date(&row.sdn_list_date) else {
            continue;
        };
        match row.event.as_str() {
            "removed" => {
                removed.insert(row.address_lowercase, d);
            }
            "added" => {
                added.insert(row.address_lowercase, d);
            }
            _ => {}
        }
    }
    let mut out = OfacLabels::default();
    let mut seen = std::collections::HashSet::new();
    // Currently listed addresses: one label per listed party.
    for (lower, a) in &current.addresses {
        let listed = added.get(lower).copied();
        for e in &a.entries {
            out.push(lower, &a.kind, e, listed, None, originals);
        }
        seen.insert(lower.clone());
    }
    // Addresses listed at some point since the history starts but not any more.
    for row in csv::Reader::from_reader(texts.history_csv.as_bytes()).deserialize::<HistoryRow>() {
        let row = row.map_err(|e| csv_error(SOURCE, e))?;
        if seen.contains(&row.address_lowercase) {
            continue;
        }
        let listed = us_date(&row.first_seen_sdn_list_date);
        let delisted = removed.get(&row.address_lowercase).copied().or_else(|| {
            (row.present_at_head == "False")
                .then(|| row.last_seen_commit_date.parse::<Date>().ok())
                .flatten()
        });
        let entities: Vec<&str> = row.entities.split("; ").collect();
        let uids: Vec<&str> = row.sdn_uids.split("; ").collect();
        if entities.len() == uids.len() {
            for (entity, uid) in entities.iter().zip(&uids) {
                let e = SdnEntry {
                    entity: (*entity).to_owned(),
                    program: row.programs.clone(),
                    uid: (*uid).to_owned(),
                };
                out.push(
                    &row.address_lowercase,
                    &row.kind,
                    &e,
                    listed,
                    delisted,
                    originals,
                );
            }
        } else {
            let e = SdnEntry {
                entity: row.entities.clone(),
                program: row.programs.clone(),
                uid: row.sdn_uids.clone(),
            };
            out.push(
                &row.address_lowercase,
                &row.kind,
                &e,
                listed,
                delisted,
                originals,
            );
        }
    }
    Ok(out)
}

/// OFAC labels and the entries that could not be placed on any chain.
#[derive(Debug, Default)]
pub struct OfacLabels {
    pub records: Vec<LabelRecord>,
    /// Currencies with no address format in Holdfast (ticker → count).
    pub unsupported: BTreeMap<String, usize>,
}

impl OfacLabels {
    fn push(
        &mut self,
        lower: &str,
        kind: &str,
        e: &SdnEntry,
        listed: Option<Date>,
        delisted: Option<Date>,
        originals: &HashMap<String, String>,
    ) {
        let chain = match chain_of_type(kind, lower) {
            Ok(c) => c,
            Err(ticker) => {
                *self.unsupported.entry(ticker).or_default() += 1;
                return;
            }
        };
        self.records
            .push(record(lower, chain, e, listed, delisted, originals));
    }
}

/// One OFAC label, with the address restored to its original case where any source has it.
pub fn record(
    address: &str,
    chain: Option<Chain>,
    e: &SdnEntry,
    listed: Option<Date>,
    delisted: Option<Date>,
    originals: &HashMap<String, String>,
) -> LabelRecord {
    let lower = address.to_ascii_lowercase();
    let spelled = originals.get(&lower).map_or(address, String::as_str);
    // OFAC occasionally files an address under another chain's type (a Tron address as
    // "XBT"): label the address on the chain its format says rather than drop the listing.
    let chain = match chain {
        Some(c)
            if matches!(
                address::parse(spelled, Some(c)),
                Err(address::AddressError::NotForChain { .. })
            ) && address::parse(spelled, None).is_ok() =>
        {
            tracing::debug!(target: "intel::ofac", address = spelled, listed_as = c.name(), "OFAC type does not match the address format; inferring the chain");
            None
        }
        c => c,
    };
    let (addr, case_folded) = if let Some(orig) = originals.get(&lower) {
        (orig.clone(), false)
    } else if address::parse(address, chain).is_ok() {
        (address.to_owned(), false)
    } else {
        (lower, chain.is_some())
    };
    let mut r = LabelRecord::new(
        addr,
        SOURCE,
        Category::Sanctioned,
        Confidence::AUTHORITY_DATA,
    );
    r.chain = chain;
    r.case_folded = case_folded;
    r.actor = (e.entity.eq_ignore_ascii_case("LAZARUS GROUP")).then(|| "lazarusgroup".to_owned());
    r.name = Some(e.entity.clone());
    r.program = Some(e.program.clone()).filter(|p| !p.is_empty());
    r.uid = Some(e.uid.clone()).filter(|u| !u.is_empty());
    r.reference = r
        .uid
        .as_ref()
        .map(|u| format!("https://sanctionssearch.ofac.treas.gov/Details.aspx?id={u}"));
    r.listed_on = listed;
    r.delisted_on = delisted;
    r
}

/// Lines of a one-address-per-line list, for the original-case map.
pub fn list_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines().map(str::trim).filter(|l| !l.is_empty())
}
