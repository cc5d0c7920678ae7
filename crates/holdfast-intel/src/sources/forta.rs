//! Forta labelled datasets (Etherscan-derived malicious labels, phishing scams, malicious
//! contracts). Web-crawl confidence: they are leads, never `severe` on their own.

use holdfast_primitives::{Category, Chain, Confidence};

use super::{SourceError, csv_error};
use crate::record::LabelRecord;

pub const SOURCE: &str = "forta";

fn category_of_tag(tag: &str) -> Category {
    let t = tag.to_ascii_lowercase();
    if t.contains("phish") {
        Category::Phishing
    } else if t.contains("scam") || t.contains("fake") {
        Category::Scam
    } else {
        Category::Hack
    }
}

/// `etherscan_malicious_labels.csv`: `banned_address,wallet_tag,data_source`.
pub fn malicious_labels(text: &str, chain: Chain) -> Result<Vec<LabelRecord>, SourceError> {
    rows(text, chain, |rec| {
        let tag = rec.get(1).unwrap_or("");
        let src = rec.get(2).unwrap_or("");
        let category = if src.contains("phish") && !tag.to_ascii_lowercase().contains("exploit") {
            category_of_tag(&format!("{tag} phish"))
        } else {
            category_of_tag(tag)
        };
        (rec.get(0), category, tag.to_owned(), src.to_owned())
    })
}

/// `phishing_scams.csv`: `address,etherscan_tag,etherscan_labels,is_contract`.
pub fn phishing_scams(text: &str, chain: Chain) -> Result<Vec<LabelRecord>, SourceError> {
    rows(text, chain, |rec| {
        (
            rec.get(0),
            Category::Phishing,
            rec.get(1).unwrap_or("").to_owned(),
            format!("etherscan labels: {}", rec.get(2).unwrap_or("")),
        )
    })
}

/// `malicious_smart_contracts.csv`: `contract_address,contract_tag,...` (header varies by chain).
pub fn malicious_contracts(text: &str, chain: Chain) -> Result<Vec<LabelRecord>, SourceError> {
    rows(text, chain, |rec| {
        let tag = rec
            .get(1)
            .filter(|t| !t.is_empty())
            .unwrap_or("malicious contract");
        (
            rec.get(0),
            category_of_tag(tag),
            tag.to_owned(),
            "forta malicious smart contracts".to_owned(),
        )
    })
}

fn rows(
    text: &str,
    chain: Chain,
    f: impl Fn(&csv::StringRecord) -> (Option<&str>, Category, String, String),
) -> Result<Vec<LabelRecord>, SourceError> {
    let mut out = Vec::new();
    for rec in csv::Reader::from_reader(text.as_bytes()).records() {
        let rec = rec.map_err(|e| csv_error(SOURCE, e))?;
        let (address, category, name, reference) = f(&rec);
        let Some(address) = address.filter(|a| !a.is_empty()) else {
            continue;
        };
        let mut r = LabelRecord::new(address, SOURCE, category, Confidence::WEB_CRAWL);
        r.chain = Some(chain);
        r.name = Some(name).filter(|n| !n.is_empty());
        r.reference = Some(reference).filter(|n| !n.is_empty());
        out.push(r);
    }
    Ok(out)
}
