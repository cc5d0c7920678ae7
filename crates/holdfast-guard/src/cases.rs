//! A policy's own unit tests: a table of example requests and the decisions they must get
//! (`holdfast policy test POLICY CASES`). Cases run without a node (the policy sees the
//! simulation as unavailable) unless a case says otherwise, with the history and
//! approvals the case gives.
//!
//! ```toml
//! [defaults]
//! now = "2026-06-01T10:00:00Z"
//!
//! [[case]]
//! name = "a withdrawal within limits"
//! request = { wallet = "hot", asset = "USDC", amount = "2500", destination = "0x…" }
//! expect = "allow"              # allow, hold, require_approvals or deny
//! rule = "small withdrawals"    # optional: the rule that must decide
//! history = [{ to = "0x…", asset = "USDC", amount = "40000", ago = "2h" }]
//! history_truncated = true      # the window held more outflows than are read: velocity fails closed
//! approved_by = ["0x…"]         # approvals taken as verified, for this payload
//! ```
//!
//! A request can also come from a JSON file next to the cases (`request_file`).

use std::path::Path;

use alloy::primitives::B256;
use holdfast_primitives::Asset;
use serde::{Deserialize, Serialize};

use crate::approval::{ApprovalAction, VerifiedApproval};
use crate::check::{CheckOptions, Guard};
use crate::facts::{History, PastOutflow};
use crate::policy::AssetKey;
use crate::request::{self, parse_address};
use crate::safe::SafeVersion;
use crate::units::{parse_duration, parse_units};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CasesFile {
    #[serde(default)]
    defaults: Defaults,
    #[serde(rename = "case")]
    cases: Vec<Case>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Defaults {
    now: Option<String>,
    safe_version: Option<String>,
    initiator: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    #[serde(default)]
    request: Option<toml::Value>,
    #[serde(default)]
    request_file: Option<String>,
    expect: String,
    #[serde(default)]
    rule: Option<String>,
    #[serde(default)]
    now: Option<String>,
    #[serde(default)]
    initiator: Option<String>,
    #[serde(default)]
    safe_version: Option<String>,
    #[serde(default)]
    history: Option<Vec<HistoryEntry>>,
    /// The wallet's window held more outflows than the service reads for one decision.
    #[serde(default)]
    history_truncated: bool,
    #[serde(default)]
    approved_by: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryEntry {
    to: String,
    asset: String,
    amount: String,
    ago: String,
}

/// The outcome of one case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CaseResult {
    pub name: String,
    pub expected: String,
    pub got: String,
    pub expected_rule: Option<String>,
    pub rule: Option<String>,
    pub pass: bool,
    pub reasons: Vec<String>,
}

/// A cases file that cannot be run: names the case and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {message}")]
pub struct CasesError {
    pub file: String,
    pub message: String,
}

/// `YYYY-MM-DDTHH:MM:SSZ` as Unix seconds.
pub fn parse_utc(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() != 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'Z'
    {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d, hh, mm, ss) = (
        n(0..4)?,
        n(5..7)?,
        n(8..10)?,
        n(11..13)?,
        n(14..16)?,
        n(17..19)?,
    );
    holdfast_primitives::Date::new(
        u16::try_from(y).ok()?,
        u8::try_from(m).ok()?,
        u8::try_from(d).ok()?,
    )?;
    if hh > 23 || mm > 59 || ss > 59 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).ok()
}

/// Runs every case of `text` (a cases file at `path`; request files are relative to it).
pub fn run(guard: &Guard, path: &Path, text: &str) -> Result<Vec<CaseResult>, CasesError> {
    let file = path.display().to_string();
    let err = |message: String| CasesError {
        file: file.clone(),
        message,
    };
    let parsed: CasesFile = toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        err(format!(
            "{}{}",
            line.map(|l| format!("line {l}: ")).unwrap_or_default(),
            e.message().trim()
        ))
    })?;
    let policy = guard.policy();
    let mut out = Vec::with_capacity(parsed.cases.len());
    for (i, case) in parsed.cases.iter().enumerate() {
        let cerr = |m: String| err(format!("case {i} ({:?}): {m}", case.name));
        let json = match (&case.request, &case.request_file) {
            (Some(v), None) => serde_json::to_value(v).map_err(|e| cerr(e.to_string()))?,
            (None, Some(f)) => {
                let p = path.parent().unwrap_or(Path::new(".")).join(f);
                let bytes = std::fs::read(&p)
                    .map_err(|e| cerr(format!("request_file {}: {e}", p.display())))?;
                request::parse_json(&bytes)
                    .map_err(|e| cerr(format!("request_file {}: {e}", p.display())))?
            }
            _ => {
                return Err(cerr(
                    "give exactly one of `request` and `request_file`".into(),
                ));
            }
        };
        let mut env = request::from_value(&json).map_err(|e| cerr(format!("request: {e}")))?;
        if env.initiator.is_none() {
            env.initiator = case
                .initiator
                .clone()
                .or_else(|| parsed.defaults.initiator.clone());
        }
        let now_s = case.now.as_ref().or(parsed.defaults.now.as_ref());
        let now = match now_s {
            Some(s) => parse_utc(s)
                .ok_or_else(|| cerr(format!("now {s:?}: expected YYYY-MM-DDTHH:MM:SSZ")))?,
            None => 1_780_000_000,
        };
        let safe_version = match case
            .safe_version
            .as_ref()
            .or(parsed.defaults.safe_version.as_ref())
        {
            Some(v) => Some(v.parse::<SafeVersion>().map_err(|e| cerr(e.to_string()))?),
            None => None,
        };
        let history = match &case.history {
            None if case.history_truncated => History {
                known: true,
                truncated: true,
                ..History::default()
            },
            None => History::default(),
            Some(entries) => {
                let mut outflows = Vec::new();
                for h in entries {
                    let to = parse_address(&h.to)
                        .ok_or_else(|| cerr(format!("history: {:?} is not an address", h.to)))?;
                    let def = policy.asset_by_name(&h.asset).ok_or_else(|| {
                        cerr(format!("history: asset {:?} is not in the policy", h.asset))
                    })?;
                    let amount = parse_units(&h.amount, def.decimals)
                        .map_err(|e| cerr(format!("history: {e}")))?;
                    let ago = parse_duration(&h.ago).map_err(|e| cerr(format!("history: {e}")))?;
                    outflows.push(PastOutflow {
                        to,
                        asset: match def.key {
                            AssetKey::Native => Asset::Native,
                            AssetKey::Token(token) => Asset::Erc20 { token },
                        },
                        amount,
                        at: now.saturating_sub(ago.as_secs()),
                    });
                }
                History {
                    known: true,
                    outflows,
                    truncated: case.history_truncated,
                    first_paid: Vec::new(),
                }
            }
        };
        // First pass finds the payload hash the approvals are for.
        let opts = CheckOptions {
            simulator: None,
            safe_version,
            history,
            approvals: &[],
            now,
            sim_failure: None,
        };
        let mut report = guard.check(&env, &opts).map_err(|e| cerr(e.to_string()))?;
        if !case.approved_by.is_empty() {
            let mut approvals = Vec::new();
            for a in &case.approved_by {
                let approver = parse_address(a)
                    .ok_or_else(|| cerr(format!("approved_by: {a:?} is not an address")))?;
                approvals.push(VerifiedApproval {
                    approver,
                    request_id: B256::ZERO,
                    payload_hash: report.payload_hash,
                    chain_id: report.chain_id.unwrap_or_default(),
                    action: ApprovalAction::Approve,
                    deadline: u64::MAX,
                });
            }
            let opts = CheckOptions {
                approvals: &approvals,
                ..opts
            };
            report = guard.check(&env, &opts).map_err(|e| cerr(e.to_string()))?;
        }
        let expect = case.expect.as_str();
        if !["allow", "hold", "require_approvals", "deny"].contains(&expect) {
            return Err(cerr(format!(
                "expect {expect:?}: expected allow, hold, require_approvals or deny"
            )));
        }
        let got = report.evaluation.decision.name().to_owned();
        let rule_ok = case.rule.is_none() || case.rule == report.evaluation.rule;
        out.push(CaseResult {
            name: case.name.clone(),
            expected: expect.to_owned(),
            got: got.clone(),
            expected_rule: case.rule.clone(),
            rule: report.evaluation.rule.clone(),
            pass: got == expect && rule_ok,
            reasons: report.evaluation.reasons.clone(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::parse_utc;

    #[test]
    fn utc_times() {
        assert_eq!(parse_utc("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_utc("2025-02-21T14:13:35Z"), Some(1_740_147_215));
        assert_eq!(parse_utc("2025-02-30T00:00:00Z"), None);
        assert_eq!(parse_utc("2025-02-21 14:13:35"), None);
    }
}
