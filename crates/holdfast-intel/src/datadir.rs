//! What `intel import` and `intel update` persist in the data directory, and loading the
//! full intel (shipped + imported + SDN update) into an [`IntelIndex`].
//!
//! Layout under the data directory:
//! - `intel/imported.jsonl`: imported labels, one [`LabelRecord`] per line;
//! - `intel/sdn-update.json`: the last SDN advanced XML read by `intel update`.
//!
//! Every write goes to a temporary file in the same directory, is synced, then renamed over
//! the old file: a crash leaves the old state or the new one, never half of one.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use holdfast_primitives::Date;

use crate::index::{IndexBuilder, IntelIndex, RejectedRecord};
use crate::record::LabelRecord;
use crate::sources::{self, SourceError, ofac};

/// An error reading or writing intel. Names the file and what was wrong.
#[derive(Debug, thiserror::Error)]
pub enum IntelError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("{path}: line {line}: {message}")]
    Corrupt {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{path}: {count} invalid address(es), nothing imported:\n{examples}")]
    InvalidAddresses {
        path: PathBuf,
        count: usize,
        examples: String,
    },
    #[error("{0}")]
    Usage(String),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> IntelError + '_ {
    move |source| IntelError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The persisted result of `intel update --sdn-xml`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SdnUpdate {
    /// The list's DateOfIssue.
    pub date_of_issue: Date,
    pub entries: Vec<SdnUpdateEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SdnUpdateEntry {
    pub address: String,
    /// The XXX of "Digital Currency Address - XXX".
    pub currency: String,
    pub entity: String,
    pub programs: Vec<String>,
    pub uid: String,
}

/// The data directory's intel part.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DataDir { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn intel_dir(&self) -> PathBuf {
        self.root.join("intel")
    }

    pub fn imported_path(&self) -> PathBuf {
        self.intel_dir().join("imported.jsonl")
    }

    pub fn sdn_update_path(&self) -> PathBuf {
        self.intel_dir().join("sdn-update.json")
    }

    /// Imported labels (none if nothing was ever imported).
    pub fn imported(&self) -> Result<Vec<LabelRecord>, IntelError> {
        let path = self.imported_path();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(&path)(e)),
        };
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                serde_json::from_str(l).map_err(|e| IntelError::Corrupt {
                    path: path.clone(),
                    line: i + 1,
                    message: e.to_string(),
                })
            })
            .collect()
    }

    /// Adds labels to the imported set, atomically; exact duplicates are not stored twice.
    /// Returns how many were new.
    pub fn add_imported(&self, records: &[LabelRecord]) -> Result<usize, IntelError> {
        let mut all = self.imported()?;
        let mut seen: HashSet<String> = all
            .iter()
            .filter_map(|r| serde_json::to_string(r).ok())
            .collect();
        let before = all.len();
        for r in records {
            if let Ok(line) = serde_json::to_string(r)
                && seen.insert(line)
            {
                all.push(r.clone());
            }
        }
        let mut body = String::new();
        for r in &all {
            let line = serde_json::to_string(r).map_err(|e| IntelError::Usage(e.to_string()))?;
            body.push_str(&line);
            body.push('\n');
        }
        self.write_atomic(&self.imported_path(), body.as_bytes())?;
        Ok(all.len() - before)
    }

    pub fn sdn_update(&self) -> Result<Option<SdnUpdate>, IntelError> {
        let path = self.sdn_update_path();
        match std::fs::read_to_string(&path) {
            Ok(t) => serde_json::from_str(&t)
                .map(Some)
                .map_err(|e| IntelError::Corrupt {
                    path,
                    line: e.line(),
                    message: e.to_string(),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    pub fn save_sdn_update(&self, update: &SdnUpdate) -> Result<(), IntelError> {
        let body =
            serde_json::to_vec_pretty(update).map_err(|e| IntelError::Usage(e.to_string()))?;
        self.write_atomic(&self.sdn_update_path(), &body)
    }

    fn write_atomic(&self, path: &Path, body: &[u8]) -> Result<(), IntelError> {
        let dir = self.intel_dir();
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let tmp = path.with_extension("tmp");
        let mut f = std::fs::File::create(&tmp).map_err(io_err(&tmp))?;
        f.write_all(body).map_err(io_err(&tmp))?;
        f.sync_all().map_err(io_err(&tmp))?;
        std::fs::rename(&tmp, path).map_err(io_err(path))?;
        if let Ok(d) = std::fs::File::open(&dir) {
            // Make the rename durable; not all platforms support syncing a directory.
            let _ = d.sync_all();
        }
        Ok(())
    }
}

/// The loaded intel and what happened while loading it.
#[derive(Debug)]
pub struct Loaded {
    pub index: IntelIndex,
    pub report: LoadReport,
}

#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct LoadReport {
    pub shipped_labels: usize,
    pub imported_labels: usize,
    /// DateOfIssue of the SDN update in use, if any.
    pub sdn_update: Option<Date>,
    /// Labels whose address no format accepts (source: reason), never silently dropped.
    pub rejected: Vec<String>,
    /// Entries on chains without an address format in Holdfast (source → currency → count).
    pub unsupported: BTreeMap<String, BTreeMap<String, usize>>,
}

/// Loads shipped intel plus whatever the data directory holds.
pub fn load(data_dir: Option<&DataDir>) -> Result<Loaded, IntelError> {
    let shipped = sources::shipped()?;
    let mut report = LoadReport {
        shipped_labels: shipped.records.len(),
        unsupported: shipped.unsupported,
        ..LoadReport::default()
    };
    let mut records = shipped.records;
    if let Some(dir) = data_dir {
        if let Some(update) = dir.sdn_update()? {
            report.sdn_update = Some(update.date_of_issue);
            apply_sdn_update(&mut records, &update, &mut report);
        }
        let imported = dir.imported()?;
        report.imported_labels = imported.len();
        records.extend(imported);
    }
    let index = build(&records, &mut report.rejected);
    Ok(Loaded { index, report })
}

/// Indexes records; those whose address no format accepts are reported, not dropped silently.
pub fn build(records: &[LabelRecord], rejected: &mut Vec<String>) -> IntelIndex {
    let mut builder = IndexBuilder::with_capacity(records.len());
    for r in records {
        if let Err(RejectedRecord {
            source_name,
            address,
            error,
        }) = builder.add(r)
        {
            rejected.push(format!("{source_name}: {address}: {error}"));
        }
    }
    builder.finish()
}

/// Folds an SDN update into the shipped OFAC labels: addresses in the update are listed
/// (from its date of issue if they are new), listed addresses missing from it are delisted
/// on its date of issue.
fn apply_sdn_update(records: &mut Vec<LabelRecord>, update: &SdnUpdate, report: &mut LoadReport) {
    let day = update.date_of_issue;
    let in_update: HashSet<String> = update
        .entries
        .iter()
        .map(|e| e.address.to_ascii_lowercase())
        .collect();
    let by_key: HashMap<(String, &str), &SdnUpdateEntry> = update
        .entries
        .iter()
        .map(|e| ((e.address.to_ascii_lowercase(), e.uid.as_str()), e))
        .collect();
    let mut active: HashSet<(String, String)> = HashSet::new();
    for r in records.iter_mut().filter(|r| r.source == ofac::SOURCE) {
        let lower = r.address.to_ascii_lowercase();
        let listed_then =
            r.listed_on.is_none_or(|l| l <= day) && r.delisted_on.is_none_or(|d| day < d);
        if !listed_then {
            continue;
        }
        if !in_update.contains(&lower) {
            r.delisted_on = Some(day);
            continue;
        }
        let uid = r.uid.clone().unwrap_or_default();
        // Still listed: the official publication's name and programs are the current ones.
        if let Some(e) = by_key.get(&(lower.clone(), uid.as_str())) {
            r.name = Some(e.entity.clone());
            r.program = Some(e.programs.join(", ")).filter(|p| !p.is_empty());
        }
        active.insert((lower, uid));
    }
    let originals: HashMap<String, String> = update
        .entries
        .iter()
        .map(|e| (e.address.to_ascii_lowercase(), e.address.clone()))
        .collect();
    for e in &update.entries {
        let lower = e.address.to_ascii_lowercase();
        if active.contains(&(lower, e.uid.clone())) {
            continue;
        }
        let chain = match ofac::chain_of_type(&e.currency, &e.address) {
            Ok(c) => c,
            Err(ticker) => {
                *report
                    .unsupported
                    .entry("ofac-sdn (update)".into())
                    .or_default()
                    .entry(ticker)
                    .or_default() += 1;
                continue;
            }
        };
        let entry = ofac::SdnEntry {
            entity: e.entity.clone(),
            program: e.programs.join(", "),
            uid: e.uid.clone(),
        };
        records.push(ofac::record(
            &e.address,
            chain,
            &entry,
            Some(day),
            None,
            &originals,
        ));
    }
}
