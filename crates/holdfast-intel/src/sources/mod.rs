//! Intel sources: each turns one published dataset into [`LabelRecord`]s.
//!
//! | module | dataset (copied under `data/intel/`, provenance beside it) |
//! |---|---|
//! | [`ofac`] | OFAC SDN digital currency addresses with entity, program, uid, list/delist dates |
//! | [`dprk`] | FBI-attributed DPRK theft addresses (Stake.com 2023, Harmony 2022) |
//! | [`tagpack`] | GraphSense TagPacks (also the format of `intel import`) |
//! | [`forta`] | Forta labelled datasets (Etherscan malicious, phishing, malicious contracts) |
//! | [`etherscan`] | Etherscan account labels (brianleect scrape, 2023-06) |
//! | [`csv_list`] | plain address lists for `intel import` |
//! | [`sdn_xml`] | OFAC's SDN advanced XML, for `intel update --sdn-xml` |
//!
//! [`shipped`] reads the copies embedded in the binary, so Holdfast screens with real data
//! without any file on disk.

pub mod csv_list;
pub mod dprk;
pub mod etherscan;
pub mod forta;
pub mod ofac;
pub mod sdn_xml;
pub mod tagpack;

mod shipped;

pub use shipped::{Shipped, shipped};

/// GraphSense actor ids that denote the DPRK's state hacking groups.
pub const DPRK_ACTORS: &[&str] = &[
    "lazarusgroup",
    "lazarus",
    "apt38",
    "bluenoroff",
    "tradertraitor",
    "dprk",
];

/// A dataset that could not be read. Names the source and, where there is one, the row.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{source_name}: invalid YAML: {message}")]
    Yaml {
        source_name: String,
        message: String,
    },
    #[error("{source_name}: invalid JSON: {message}")]
    Json {
        source_name: String,
        message: String,
    },
    #[error("{source_name}: invalid CSV: {message}")]
    Csv {
        source_name: String,
        message: String,
    },
    #[error("{source_name}: row {row}: field `{field}`: {message}")]
    Field {
        source_name: String,
        row: usize,
        field: &'static str,
        message: String,
    },
    /// A TagPack's tag (1-based, in `tags:` order), which fields may inherit from the header.
    #[error("{source_name}: tag {tag}: field `{field}`: {message}")]
    Tag {
        source_name: String,
        tag: usize,
        field: &'static str,
        message: String,
    },
    #[error("{source_name}: {message}")]
    Format {
        source_name: String,
        message: String,
    },
}

pub(crate) fn csv_error(source: &str, e: csv::Error) -> SourceError {
    SourceError::Csv {
        source_name: source.to_owned(),
        message: e.to_string(),
    }
}
