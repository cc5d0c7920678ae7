//! FBI-attributed DPRK theft addresses that are not on the OFAC list
//! (`data/intel/dprk/dprk_attributed_addresses.csv`: `chain,address,incident,role,source_note`).

use holdfast_primitives::{Category, Chain, Confidence};

use super::{SourceError, csv_error};
use crate::record::LabelRecord;

pub const SOURCE: &str = "fbi-dprk";

#[derive(Debug, serde::Deserialize)]
struct Row {
    chain: String,
    address: String,
    incident: String,
    role: String,
    source_note: String,
}

pub fn parse(text: &str) -> Result<Vec<LabelRecord>, SourceError> {
    let mut out = Vec::new();
    for (i, row) in csv::Reader::from_reader(text.as_bytes())
        .deserialize::<Row>()
        .enumerate()
    {
        let row = row.map_err(|e| csv_error(SOURCE, e))?;
        let chain: Chain = row
            .chain
            .parse()
            .map_err(|e: holdfast_primitives::UnknownChain| SourceError::Field {
                source_name: SOURCE.into(),
                row: i + 2,
                field: "chain",
                message: e.to_string(),
            })?;
        let mut r = LabelRecord::new(
            row.address,
            SOURCE,
            Category::DprkAttributed,
            Confidence::AUTHORITY_DATA,
        );
        // Attribution is to whoever holds the key: an EVM address is theirs on every EVM chain.
        r.chain = (!chain.is_evm()).then_some(chain);
        r.actor = Some("lazarusgroup".into());
        r.name = Some(format!("{} ({})", row.incident, row.role));
        r.reference = Some(row.source_note);
        out.push(r);
    }
    Ok(out)
}
