//! The queue's filters (wallet, decision, rule, created between two dates) and the paged
//! scan that applies them: one state's index is read in order, a chunk at a time, keeping
//! the rows that match, until a page is full, the index ends, or [`SCAN_BUDGET`] rows were
//! read — then the page says where to continue. The work of one page view is bounded
//! whatever the filters; a filter that matches rarely costs more "next page" clicks, never
//! an unbounded query. Rows past `until` end the scan (the index is in creation order).

use std::collections::BTreeMap;

use alloy_primitives::Address;
use holdfast_store::StoreError;
use holdfast_store::gate::{DecisionKind, GateRequest, GateStore, RequestState};

use super::html::{Html, url_component};
use crate::error::ApiError;

/// Most index rows read for one page view.
pub const SCAN_BUDGET: usize = 5_000;
/// Rows read from the index at a time.
const CHUNK: usize = 500;

const DECISIONS: [DecisionKind; 4] = [
    DecisionKind::Allow,
    DecisionKind::Hold,
    DecisionKind::RequireApprovals,
    DecisionKind::Deny,
];

/// What the queue shows of a state's requests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub wallet: Option<Address>,
    pub decision: Option<DecisionKind>,
    /// The rule's name, exactly.
    pub rule: Option<String>,
    /// Created on or after this day (`YYYY-MM-DD`), and its Unix time.
    pub since: Option<(String, u64)>,
    /// Created on or before this day, and the Unix time of its end.
    pub until: Option<(String, u64)>,
}

/// Unix seconds of `YYYY-MM-DD`'s start, UTC.
fn day_start(field: &str, s: &str) -> Result<u64, ApiError> {
    let bad = || {
        ApiError::bad_request(
            field.to_owned(),
            format!("{field} is {s:?}; expected a date YYYY-MM-DD"),
        )
    };
    let mut parts = s.splitn(3, '-');
    let (y, m, d) = (
        parts
            .next()
            .and_then(|p| p.parse::<i64>().ok())
            .ok_or_else(bad)?,
        parts
            .next()
            .and_then(|p| p.parse::<i64>().ok())
            .ok_or_else(bad)?,
        parts
            .next()
            .and_then(|p| p.parse::<i64>().ok())
            .ok_or_else(bad)?,
    );
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(bad());
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400).map_err(|_| bad())
}

impl Filter {
    /// The filter a query names (`wallet`, `decision`, `rule`, `since`, `until`); errors
    /// name the parameter.
    pub fn parse(q: &BTreeMap<String, String>) -> Result<Filter, ApiError> {
        let get = |k: &str| q.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        let wallet = get("wallet")
            .map(|w| {
                holdfast_guard::request::parse_address(w).ok_or_else(|| {
                    ApiError::bad_request(
                        "wallet".to_owned(),
                        format!("wallet is {w:?}; expected an address (0x and 40 hex digits)"),
                    )
                })
            })
            .transpose()?;
        let decision = get("decision")
            .map(|d| {
                DECISIONS
                    .into_iter()
                    .find(|k| k.name() == d)
                    .ok_or_else(|| {
                        ApiError::bad_request(
                            "decision".to_owned(),
                            format!(
                                "decision is {d:?}; expected one of {}",
                                DECISIONS.map(|k| k.name()).join(", ")
                            ),
                        )
                    })
            })
            .transpose()?;
        let since = get("since")
            .map(|s| Ok::<_, ApiError>((s.to_owned(), day_start("since", s)?)))
            .transpose()?;
        let until = get("until")
            .map(|s| Ok::<_, ApiError>((s.to_owned(), day_start("until", s)? + 86_399)))
            .transpose()?;
        Ok(Filter {
            wallet,
            decision,
            rule: get("rule").map(str::to_owned),
            since,
            until,
        })
    }

    pub fn matches(&self, r: &GateRequest) -> bool {
        self.wallet.is_none_or(|w| r.wallet == w)
            && self.decision.is_none_or(|d| r.decision == d)
            && self
                .rule
                .as_ref()
                .is_none_or(|rule| r.rule.as_deref() == Some(rule.as_str()))
            && self.since.as_ref().is_none_or(|(_, t)| r.created_at >= *t)
            && self.until.as_ref().is_none_or(|(_, t)| r.created_at <= *t)
    }

    /// The filter as query parameters (`&wallet=...`), for links.
    pub fn query(&self) -> String {
        let mut q = String::new();
        let mut add = |k: &str, v: &str| q.push_str(&format!("&{k}={}", url_component(v)));
        if let Some(w) = self.wallet {
            add("wallet", &w.to_string());
        }
        if let Some(d) = self.decision {
            add("decision", d.name());
        }
        if let Some(r) = &self.rule {
            add("rule", r);
        }
        if let Some((s, _)) = &self.since {
            add("since", s);
        }
        if let Some((s, _)) = &self.until {
            add("until", s);
        }
        q
    }

    /// The filter's form fields.
    pub fn fields(&self, h: &mut Html) {
        let wallet = self.wallet.map(|w| w.to_string()).unwrap_or_default();
        let text = |h: &mut Html, id: &'static str, label: &str, value: &str, hint: &str| {
            h.el("label", &[("for", id)], label);
            h.void(
                "input",
                &[
                    ("id", id),
                    ("name", id),
                    ("value", value),
                    ("placeholder", hint),
                ],
            );
        };
        text(h, "wallet", "Wallet", &wallet, "0x…");
        h.el("label", &[("for", "decision")], "Decision");
        h.open("select", &[("id", "decision"), ("name", "decision")]);
        h.el("option", &[("value", "")], "any");
        for d in DECISIONS {
            if self.decision == Some(d) {
                h.el(
                    "option",
                    &[("value", d.name()), ("selected", "selected")],
                    d.name(),
                );
            } else {
                h.el("option", &[("value", d.name())], d.name());
            }
        }
        h.close("select");
        text(
            h,
            "rule",
            "Rule",
            self.rule.as_deref().unwrap_or(""),
            "name",
        );
        let day =
            |d: &Option<(String, u64)>| d.as_ref().map(|(s, _)| s.clone()).unwrap_or_default();
        text(h, "since", "From", &day(&self.since), "YYYY-MM-DD");
        text(h, "until", "To", &day(&self.until), "YYYY-MM-DD");
    }
}

/// A position in a state's index: the `created_at` and id of the last row read.
pub type Cursor = (u64, String);

/// A page of `state`'s requests matching `filter`, after `after`: the rows (at most
/// `limit`) and where the next page starts (`None`: the index is exhausted for this
/// filter).
pub fn page(
    store: &dyn GateStore,
    state: RequestState,
    mut after: Option<Cursor>,
    filter: &Filter,
    limit: usize,
) -> Result<(Vec<GateRequest>, Option<Cursor>), StoreError> {
    let mut rows = Vec::new();
    let mut scanned = 0;
    // Without a filter every row read is shown: read exactly a page.
    let chunk_size = if *filter == Filter::default() {
        limit
    } else {
        CHUNK
    };
    loop {
        let want = chunk_size.min(SCAN_BUDGET - scanned);
        let chunk =
            store.in_state_after(state, after.as_ref().map(|(a, i)| (*a, i.as_str())), want)?;
        let full = chunk.len() == want;
        for r in chunk {
            scanned += 1;
            after = Some((r.created_at, r.id.clone()));
            if filter
                .until
                .as_ref()
                .is_some_and(|(_, t)| r.created_at > *t)
            {
                return Ok((rows, None));
            }
            if filter.matches(&r) {
                rows.push(r);
                if rows.len() == limit {
                    return Ok((rows, after));
                }
            }
        }
        if !full {
            return Ok((rows, None));
        }
        if scanned >= SCAN_BUDGET {
            return Ok((rows, after));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_bad_filters() {
        assert_eq!(day_start("since", "1970-01-01").ok(), Some(0));
        assert_eq!(day_start("since", "2025-02-21").ok(), Some(1_740_096_000));
        let e = day_start("until", "21/02/2025").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("until"));
        let mut q = BTreeMap::new();
        q.insert("decision".to_owned(), "maybe".to_owned());
        let e = Filter::parse(&q).unwrap_err();
        assert!(
            e.message.contains("\"maybe\"") && e.message.contains("require_approvals"),
            "{}",
            e.message
        );
    }
}
