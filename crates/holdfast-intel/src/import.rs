//! `intel import` (TagPacks and CSV lists) and `intel update --sdn-xml`.
//!
//! An import is all or nothing: every address is validated first, and if any is invalid
//! nothing is stored and the error lists the bad rows.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use holdfast_primitives::{Category, Chain, Confidence, Date};

use crate::address;
use crate::datadir::{DataDir, IntelError, SdnUpdate, SdnUpdateEntry};
use crate::record::LabelRecord;
use crate::sources::{csv_list, sdn_xml, tagpack};

/// Largest file `intel import` or `intel update` reads.
pub const MAX_IMPORT_BYTES: u64 = 512 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportFormat {
    /// GraphSense TagPack YAML.
    TagPack,
    /// One address per line, or CSV with an `address` column.
    Csv,
}

impl ImportFormat {
    /// From the file extension: `.yaml`/`.yml` → TagPack, `.csv`/`.txt` → CSV.
    pub fn from_path(path: &Path) -> Option<Self> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "yaml" | "yml" => Some(ImportFormat::TagPack),
            "csv" | "txt" | "tsv" => Some(ImportFormat::Csv),
            _ => None,
        }
    }
}

/// Flags of `intel import`. For CSV lists they give every label its fields; for TagPacks
/// they override what the pack says.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    pub format: Option<ImportFormat>,
    pub source: Option<String>,
    pub category: Option<Category>,
    pub actor: Option<String>,
    pub chain: Option<Chain>,
    pub confidence: Option<Confidence>,
    pub name: Option<String>,
    pub reference: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ImportReport {
    pub path: PathBuf,
    pub source: String,
    /// Labels read from the file.
    pub labels: usize,
    /// Of those, labels not already stored.
    pub new: usize,
    /// Labels by category.
    pub by_category: BTreeMap<Category, usize>,
    /// TagPack tags on chains without an address format in Holdfast (currency → count).
    pub unsupported: BTreeMap<String, usize>,
}

fn read_bounded(path: &Path) -> Result<String, IntelError> {
    let io = |source| IntelError::Io {
        path: path.to_owned(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.len() > MAX_IMPORT_BYTES {
        return Err(IntelError::Usage(format!(
            "{}: {} bytes is larger than the {} byte limit",
            path.display(),
            meta.len(),
            MAX_IMPORT_BYTES
        )));
    }
    std::fs::read_to_string(path).map_err(io)
}

/// Reads `path`, validates every address and adds the labels to the data directory.
pub fn import_file(
    dir: &DataDir,
    path: &Path,
    opts: &ImportOptions,
) -> Result<ImportReport, IntelError> {
    let format = opts.format.or_else(|| ImportFormat::from_path(path)).ok_or_else(|| {
        IntelError::Usage(format!("{}: cannot tell the format from the file name: pass --format tagpack or --format csv", path.display()))
    })?;
    let text = read_bounded(path)?;
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("file");
    let source = opts
        .source
        .clone()
        .unwrap_or_else(|| format!("import:{stem}"));
    let (mut records, unsupported, rows) = match format {
        ImportFormat::TagPack => {
            let pack = tagpack::parse(&text, &path.display().to_string())?;
            // Named by the tag's place in the pack: tags on unsupported chains are skipped,
            // so a record's index is not its tag's.
            let rows: Vec<String> = pack.tags.iter().map(|i| format!("tag {i}")).collect();
            (pack.records, pack.unsupported, rows)
        }
        ImportFormat::Csv => {
            let category = opts.category.ok_or_else(|| {
                IntelError::Usage(format!("{}: a CSV list carries no category: pass --category (e.g. --category dprk-attributed)", path.display()))
            })?;
            let listed = csv_list::parse(&text, &path.display().to_string())?;
            let rows = listed.iter().map(|l| format!("line {}", l.line)).collect();
            let records = listed
                .into_iter()
                .map(|l| {
                    let mut r = LabelRecord::new(
                        l.address,
                        source.clone(),
                        category,
                        opts.confidence.unwrap_or(Confidence::UNKNOWN),
                    );
                    r.chain = l.chain;
                    r
                })
                .collect();
            (records, BTreeMap::new(), rows)
        }
    };
    for r in &mut records {
        r.source.clone_from(&source);
        if let Some(c) = opts.category {
            r.category = c;
        }
        if let Some(c) = opts.confidence {
            r.confidence = c;
        }
        if opts.chain.is_some() {
            r.chain = opts.chain;
        }
        if let Some(a) = &opts.actor {
            r.actor = Some(a.clone());
        }
        if let Some(n) = &opts.name {
            r.name = Some(n.clone());
        }
        if let Some(x) = &opts.reference {
            r.reference = Some(x.clone());
        }
    }
    let bad: Vec<String> = records
        .iter()
        .zip(&rows)
        .filter_map(|(r, row)| {
            address::parse(&r.address, r.chain)
                .err()
                .map(|e| format!("  {row}: {e}"))
        })
        .collect();
    if !bad.is_empty() {
        let mut examples: Vec<String> = bad.iter().take(10).cloned().collect();
        if bad.len() > 10 {
            examples.push(format!("  ... and {} more", bad.len() - 10));
        }
        return Err(IntelError::InvalidAddresses {
            path: path.to_owned(),
            count: bad.len(),
            examples: examples.join("\n"),
        });
    }
    if records.is_empty() {
        return Err(IntelError::Usage(format!(
            "{}: no address found in the file",
            path.display()
        )));
    }
    let new = dir.add_imported(&records)?;
    let mut by_category = BTreeMap::new();
    for r in &records {
        *by_category.entry(r.category).or_default() += 1;
    }
    Ok(ImportReport {
        path: path.to_owned(),
        source,
        labels: records.len(),
        new,
        by_category,
        unsupported,
    })
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct SdnUpdateReport {
    pub date_of_issue: Date,
    pub addresses: usize,
    pub by_currency: BTreeMap<String, usize>,
}

/// Reads OFAC's SDN advanced XML and stores its digital currency addresses as the current
/// sanctions state. The previous update is replaced only if the whole file parses.
pub fn update_sdn(dir: &DataDir, path: &Path) -> Result<SdnUpdateReport, IntelError> {
    let io = |source| IntelError::Io {
        path: path.to_owned(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.len() > MAX_IMPORT_BYTES {
        return Err(IntelError::Usage(format!(
            "{}: {} bytes is larger than the {} byte limit",
            path.display(),
            meta.len(),
            MAX_IMPORT_BYTES
        )));
    }
    let file = std::fs::File::open(path).map_err(io)?;
    let publication = sdn_xml::parse_sdn_advanced(std::io::BufReader::new(file))
        .map_err(|e| IntelError::Usage(format!("{}: {e}", path.display())))?;
    let date_of_issue = publication
        .date_of_issue
        .and_then(|(y, m, d)| Date::new(y, m, d))
        .ok_or_else(|| {
            IntelError::Usage(format!(
                "{}: the document has no valid DateOfIssue",
                path.display()
            ))
        })?;
    if publication.entries.is_empty() {
        return Err(IntelError::Usage(format!(
            "{}: no digital currency address in the document; refusing to treat every sanctioned address as delisted",
            path.display()
        )));
    }
    let entries: Vec<SdnUpdateEntry> = publication
        .entries
        .into_iter()
        .map(|e| SdnUpdateEntry {
            address: e.address,
            currency: e.currency,
            entity: e.entity,
            programs: e.programs,
            uid: e.uid,
        })
        .collect();
    let mut by_currency = BTreeMap::new();
    for e in &entries {
        *by_currency.entry(e.currency.clone()).or_default() += 1;
    }
    let report = SdnUpdateReport {
        date_of_issue,
        addresses: entries.len(),
        by_currency,
    };
    dir.save_sdn_update(&SdnUpdate {
        date_of_issue,
        entries,
    })?;
    Ok(report)
}
