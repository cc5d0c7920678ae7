//! `holdfast watch test FILE CASES`: a watch file's rules over recorded blocks, compared
//! with the alerts a case expects — the watch's own test table, like a guard policy's
//! cases.
//!
//! Blocks are recorded from a node with `holdfast watch record` as JSON lines, one
//! [`RecordedBlock`] (a [`BlockDetail`] as it was fetched) per line. A cases file is TOML:
//!
//! ```toml
//! [[case]]
//! name = "the Bybit takeover"
//! blocks = "bybit.jsonl"          # relative to the cases file
//! chain = "ethereum"              # the watch file's chain (default: its only one)
//!
//! [[case.expect]]
//! rule = "treasury-takeover"
//! block = 18                      # optional
//! tx = "0x…"                      # optional
//! count = 1                       # default 1
//! ```
//!
//! A case passes when every expectation matches exactly `count` alerts and no alert is left
//! unmatched: an alert nobody expected fails the case as surely as a missing one.
//! The blocks run through the same path as the live watch (`engine::detect_block`), with
//! their transfers written to a throwaway transfer store first (the history detectors read).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use alloy_primitives::B256;
use holdfast_chain::{BlockDetail, BlockTransfers, CallDetail, LogDetail, StateDiff, TxDetail};
use holdfast_primitives::{BlockRef, Conversion, Transfer};
use holdfast_store::Store;
use holdfast_trace::Classifier;
use serde::{Deserialize, Serialize};

use crate::alert::Alert;
use crate::engine::{Rules, WatchState, detect_block};
use crate::follow::ChainInfo;
use crate::units::Units;

/// Largest cases file and recording read.
pub const MAX_CASES_BYTES: u64 = 256 << 20;

/// A block as `holdfast watch record` writes it (one JSON line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordedBlock {
    pub chain_id: u64,
    pub block: BlockRef,
    pub transfers: Vec<Transfer>,
    pub conversions: Vec<Conversion>,
    pub txs: Vec<TxDetail>,
    pub logs: Vec<LogDetail>,
    pub calls: Vec<CallDetail>,
    pub calls_complete: bool,
    pub state: Option<Vec<StateDiff>>,
}

impl From<&BlockDetail> for RecordedBlock {
    fn from(d: &BlockDetail) -> Self {
        RecordedBlock {
            chain_id: d.chain_id(),
            block: *d.block(),
            transfers: d.transfers.transfers.clone(),
            conversions: d.transfers.conversions.clone(),
            txs: d.txs.clone(),
            logs: d.logs.clone(),
            calls: d.calls.clone(),
            calls_complete: d.calls_complete,
            state: d.state.clone(),
        }
    }
}

impl From<RecordedBlock> for BlockDetail {
    fn from(r: RecordedBlock) -> Self {
        BlockDetail {
            transfers: BlockTransfers {
                chain_id: r.chain_id,
                block: r.block,
                transfers: r.transfers,
                conversions: r.conversions,
                incomplete: 0,
                undecodable: 0,
            },
            txs: r.txs,
            logs: r.logs,
            calls: r.calls,
            calls_complete: r.calls_complete,
            state: r.state,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCases {
    #[serde(default)]
    case: Vec<RawCase>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCase {
    name: String,
    blocks: PathBuf,
    chain: Option<String>,
    #[serde(default)]
    expect: Vec<Expect>,
}

/// One expected alert (or `count` of them).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    pub rule: String,
    pub block: Option<u64>,
    pub tx: Option<B256>,
    #[serde(default = "one")]
    pub count: usize,
}

fn one() -> usize {
    1
}

impl Expect {
    fn matches(&self, a: &Alert) -> bool {
        a.rule == self.rule
            && self.block.is_none_or(|b| b == a.block_number)
            && self.tx.is_none_or(|t| Some(t) == a.tx_hash)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CasesError {
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("{path}: line {line}: not a recorded block: {reason}")]
    Recording {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("case {case:?}: {reason}")]
    Case { case: String, reason: String },
}

/// What one case gave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CaseResult {
    pub name: String,
    pub passed: bool,
    pub blocks: usize,
    /// Expectations not met: (expectation, how many alerts matched).
    pub unmet: Vec<(Expect, usize)>,
    /// Alerts no expectation matched: (rule, block, tx, title).
    pub unexpected: Vec<(String, u64, Option<B256>, String)>,
}

fn read(path: &Path) -> Result<String, CasesError> {
    let err = |reason: String| CasesError::File {
        path: path.to_owned(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
    if meta.len() > MAX_CASES_BYTES {
        return Err(err(format!(
            "{} bytes: the limit is {MAX_CASES_BYTES}",
            meta.len()
        )));
    }
    std::fs::read_to_string(path).map_err(|e| err(e.to_string()))
}

/// Reads a recording (JSON lines of [`RecordedBlock`]), in file order.
pub fn read_recording(path: &Path) -> Result<Vec<RecordedBlock>, CasesError> {
    read(path)?
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| CasesError::Recording {
                path: path.to_owned(),
                line: i + 1,
                reason: e.to_string(),
            })
        })
        .collect()
}

/// A case's own transfer store and the rules reading their history from it.
pub type Fresh = (Arc<dyn Rules>, Arc<dyn Store>);

/// Runs every case of `cases_path`. `fresh` gives each case an empty transfer store and the
/// rules over it (their history is the case's blocks only); `chain_of` names the watch
/// file's chain of a case.
pub fn run_cases<C: Classifier + ?Sized>(
    cases_path: &Path,
    classifier: &C,
    units: &Units,
    chain_of: &dyn Fn(Option<&str>) -> Result<ChainInfo, String>,
    fresh: &mut dyn FnMut() -> Result<Fresh, String>,
) -> Result<Vec<CaseResult>, CasesError> {
    let text = read(cases_path)?;
    let raw: RawCases = toml::from_str(&text).map_err(|e| CasesError::File {
        path: cases_path.to_owned(),
        reason: e.to_string(),
    })?;
    if raw.case.is_empty() {
        return Err(CasesError::File {
            path: cases_path.to_owned(),
            reason: "no [[case]]: a cases file that tests nothing is refused".into(),
        });
    }
    let base = cases_path.parent().unwrap_or(Path::new("."));
    let mut results = Vec::new();
    for c in raw.case {
        let case_err = |reason: String| CasesError::Case {
            case: c.name.clone(),
            reason,
        };
        let chain = chain_of(c.chain.as_deref()).map_err(case_err)?;
        let blocks = read_recording(&base.join(&c.blocks))?;
        let (rules, store) = fresh().map_err(case_err)?;
        let mut state = WatchState::default();
        let mut alerts = Vec::new();
        for r in &blocks {
            if r.chain_id != chain.chain_id {
                return Err(case_err(format!(
                    "block {} is of chain {}, the case's chain {} is {}",
                    r.block.number, r.chain_id, chain.name, chain.chain_id
                )));
            }
            let detail: BlockDetail = r.clone().into();
            store
                .apply_block(
                    r.chain_id,
                    &r.block,
                    &detail.transfers.transfers,
                    &detail.transfers.conversions,
                )
                .map_err(|e| case_err(format!("block {}: {e}", r.block.number)))?;
            alerts.extend(
                detect_block(
                    rules.as_ref(),
                    store.as_ref(),
                    classifier,
                    units,
                    &chain,
                    &detail,
                    &mut state,
                )
                .map_err(|e| case_err(e.to_string()))?,
            );
        }
        let mut used = vec![false; alerts.len()];
        let mut unmet = Vec::new();
        for e in &c.expect {
            let mut n = 0;
            for (i, a) in alerts.iter().enumerate() {
                if !used[i] && e.matches(a) {
                    used[i] = true;
                    n += 1;
                }
            }
            if n != e.count {
                unmet.push((e.clone(), n));
            }
        }
        let unexpected: Vec<_> = alerts
            .iter()
            .zip(&used)
            .filter(|(_, u)| !**u)
            .map(|(a, _)| (a.rule.clone(), a.block_number, a.tx_hash, a.title.clone()))
            .collect();
        results.push(CaseResult {
            name: c.name,
            passed: unmet.is_empty() && unexpected.is_empty(),
            blocks: blocks.len(),
            unmet,
            unexpected,
        });
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_block_round_trips_through_json() {
        let r = RecordedBlock {
            chain_id: 1,
            block: BlockRef {
                number: 7,
                hash: B256::repeat_byte(1),
                parent_hash: B256::repeat_byte(2),
                timestamp: 3,
            },
            transfers: Vec::new(),
            conversions: Vec::new(),
            txs: Vec::new(),
            logs: Vec::new(),
            calls: Vec::new(),
            calls_complete: true,
            state: Some(Vec::new()),
        };
        let line = serde_json::to_string(&r).expect("json");
        assert_eq!(
            serde_json::from_str::<RecordedBlock>(&line).expect("back"),
            r
        );
        let d: BlockDetail = r.clone().into();
        assert_eq!(RecordedBlock::from(&d), r);
    }
}
