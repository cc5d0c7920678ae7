//! One request: what its bytes do, in words and as the decoded call tree (DELEGATECALLs
//! flagged), the simulation (asset deltas, critical slot writes such as a Safe's singleton,
//! contracts created, revert reason), the counterparties with what intel says of them, the
//! rule that decided and why, and for a Safe transaction the three hashes a hardware wallet
//! shows (domain hash, message hash, safeTxHash) — all from the guard engine's own report of
//! the decision, kept with the request, never recomputed here. Then what the signed-in user
//! may do (approve, cancel, freeze) and the request's audit trail.

use alloy_primitives::{Address, U256};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use holdfast_gate::{GateError, Role};
use holdfast_guard::policy::{AssetKey, Policy};
use holdfast_guard::units::format_units;
use holdfast_primitives::Asset;
use holdfast_store::gate::{GateRequest, RequestState};
use serde_json::{Value, json};

use super::html::{Html, url_component};
use super::pages::{approvals, countdown, freeze_form, gate, now, utc};
use super::{Session, error_page, page, signed_in};
use crate::AppState;
use crate::error::{ApiError, ApiPath};

/// The most entries of a request's audit trail shown on its page (refused approvals are
/// audited too, so a trail has no natural bound); the rest are in the audit log.
pub const AUDIT_TRAIL_MAX: usize = 1_000;
/// How long an approval signed from the console counts.
pub const APPROVAL_LIFETIME_SECS: u64 = 3600;

async fn page_handler(
    state: &AppState,
    headers: &HeaderMap,
    id: &str,
) -> Result<Response, super::Answer> {
    let session = signed_in(state, headers).await?;
    render(state, &session, id)
        .await
        .map_err(|e| Box::new(error_page(Some(&session), &e)))
}

pub async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
) -> Response {
    match page_handler(&state, &headers, &id).await {
        Ok(r) => r,
        Err(r) => *r,
    }
}

async fn render(state: &AppState, session: &Session, id: &str) -> Result<Response, ApiError> {
    let g = gate(state)?.clone();
    let store = g.store().clone();
    let key = id.to_owned();
    let (r, trail) = tokio::task::spawn_blocking(move || {
        let r = store.get(&key)?;
        let trail = store.audit_of(&key, AUDIT_TRAIL_MAX + 1)?;
        Ok::<_, holdfast_store::StoreError>((r, trail))
    })
    .await
    .map_err(|e| ApiError::internal("reading a request", &e))?
    .map_err(|e| ApiError::from(GateError::from(e)))?;
    let r = r.ok_or_else(|| ApiError::not_found(format!("no request {id}")))?;
    let report: Value = r
        .report
        .as_deref()
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or(Value::Null);

    let mut h = Html::new();
    status(&mut h, &g, &r).await;
    actions(&mut h, session, &r);
    words(&mut h, &report);
    if let Some(safe) = report.get("safe").filter(|s| s.is_object()) {
        safe_hashes(&mut h, safe);
    }
    let policy = g.guard().policy();
    calls(&mut h, &report, policy);
    simulation(&mut h, &report, policy);
    counterparties(&mut h, &report);
    findings(&mut h, &report);
    h.el("h2", &[], "The request as submitted");
    h.el("pre", &[("class", "request-json")], &r.request);
    audit(&mut h, &trail);
    Ok(page(
        &format!("Request {}", super::pages::short(&r.id)),
        Some(session),
        h,
    ))
}

/// A JSON value as plain text (strings unquoted).
fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "—".to_owned(),
        v => v.to_string(),
    }
}

fn dl(h: &mut Html, rows: &[(&str, String)]) {
    h.open("dl", &[]);
    for (k, v) in rows {
        h.el("dt", &[], k).el("dd", &[], v);
    }
    h.close("dl");
}

async fn status(h: &mut Html, g: &holdfast_gate::Gate, r: &GateRequest) {
    h.open("section", &[("class", "status"), ("aria-label", "status")]);
    h.open("p", &[("class", "state")]);
    h.el(
        "span",
        &[("class", "badge"), ("id", "state")],
        r.state.name(),
    );
    h.text(" decided ");
    h.el("strong", &[("id", "decision")], r.decision.name());
    if let Some(rule) = &r.rule {
        h.text(" by rule ");
        h.el("strong", &[("class", "rule")], rule);
    }
    h.close("p");
    if !r.reasons.is_empty() {
        h.open("ul", &[("class", "reasons")]);
        for why in &r.reasons {
            h.el("li", &[], why);
        }
        h.close("ul");
    }
    dl(
        h,
        &[
            ("Request id", r.id.clone()),
            ("Wallet", r.wallet.to_string()),
            ("Chain", r.chain_id.to_string()),
            ("Initiator", r.initiator.clone()),
            ("Payload hash", r.payload_hash.to_string()),
            ("Created", utc(r.created_at)),
        ],
    );
    if let Some(e) = &r.error {
        h.el("p", &[("class", "refused")], &format!("Error: {e}"));
    }
    if let Some(tx) = r.tx_hash {
        h.el("p", &[], &format!("Transaction {tx}"));
    }
    if r.state == RequestState::Held {
        h.open("table", &[("class", "hold")]).open("tr", &[]);
        h.el("th", &[("scope", "row")], "Released in");
        countdown(h, r.release_at.unwrap_or_default());
        h.close("tr").close("table");
    }
    if r.need_approvals > 0 {
        h.open("div", &[("class", "approvals"), ("id", "approvals")]);
        approvals(h, g, r).await;
        h.close("div");
    }
    h.close("section");
}

fn actions(h: &mut Html, session: &Session, r: &GateRequest) {
    let p = &session.principal;
    if r.state == RequestState::AwaitingApprovals && p.has(Role::Approver) {
        approve_panel(h, r);
    }
    if matches!(
        r.state,
        RequestState::Held | RequestState::AwaitingApprovals
    ) && p.has(Role::Operator)
    {
        h.open("section", &[("class", "cancel")]);
        h.el("h2", &[], "Cancel");
        h.open(
            "form",
            &[
                ("method", "post"),
                (
                    "action",
                    &format!("/console/requests/{}/cancel", url_component(&r.id)),
                ),
            ],
        );
        h.void(
            "input",
            &[
                ("type", "hidden"),
                ("name", "csrf"),
                ("value", &session.csrf_token()),
            ],
        );
        h.el("label", &[("for", "cancel-reason")], "Reason");
        h.void(
            "input",
            &[
                ("id", "cancel-reason"),
                ("name", "reason"),
                ("required", "required"),
            ],
        );
        h.el(
            "button",
            &[("type", "submit"), ("class", "danger"), ("id", "cancel")],
            "Cancel this request",
        );
        h.close("form").close("section");
    }
    if p.has(Role::Operator) {
        freeze_form(h, &session.csrf_token(), Some(&r.wallet.to_string()));
    }
}

/// The EIP-712 typed data an approver signs for request `r`, exactly as the wallet is asked
/// to sign it (`eth_signTypedData_v4`).
pub fn approval_typed_data(r: &GateRequest, deadline: u64) -> Value {
    json!({
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"}
            ],
            "Approval": [
                {"name": "requestId", "type": "bytes32"},
                {"name": "payloadHash", "type": "bytes32"},
                {"name": "chainId", "type": "uint256"},
                {"name": "action", "type": "string"},
                {"name": "deadline", "type": "uint64"}
            ]
        },
        "primaryType": "Approval",
        "domain": {"name": "Holdfast", "version": "1", "chainId": r.chain_id},
        "message": {
            "requestId": r.id,
            "payloadHash": r.payload_hash,
            "chainId": r.chain_id,
            "action": "approve",
            "deadline": deadline
        }
    })
}

fn approve_panel(h: &mut Html, r: &GateRequest) {
    let typed = approval_typed_data(r, now() + APPROVAL_LIFETIME_SECS);
    let pretty = serde_json::to_string_pretty(&typed).unwrap_or_default();
    h.open(
        "section",
        &[
            ("class", "approve"),
            ("id", "approve"),
            ("data-request-id", &r.id),
        ],
    );
    h.el("h2", &[], "Approve with your wallet");
    h.el(
        "p",
        &[],
        "Your wallet (EIP-1193: MetaMask, Rabby, Frame, or a hardware wallet behind them) is asked to sign exactly this EIP-712 message. Compare it with what the device shows.",
    );
    h.el("pre", &[("id", "typed-data"), ("class", "typed")], &pretty);
    h.el(
        "button",
        &[("type", "button"), ("id", "approve-button")],
        "Sign and approve",
    );
    h.el(
        "p",
        &[
            ("id", "approve-result"),
            ("role", "status"),
            ("aria-live", "polite"),
        ],
        "",
    );
    h.el(
        "script",
        &[("type", "module"), ("src", "/console/assets/approve.js")],
        "",
    );
    h.close("section");
}

fn words(h: &mut Html, report: &Value) {
    h.el("h2", &[], "What the bytes do");
    match report.get("summary").and_then(Value::as_array) {
        Some(lines) if !lines.is_empty() => {
            h.open("ul", &[("class", "summary"), ("id", "summary")]);
            for l in lines {
                h.el("li", &[], &plain(l));
            }
            h.close("ul");
        }
        _ => {
            h.el(
                "p",
                &[],
                "No decoding was kept for this request (recorded before the console kept reports).",
            );
        }
    }
}

fn safe_hashes(h: &mut Html, safe: &Value) {
    h.open("section", &[("class", "hashes"), ("id", "safe-hashes")]);
    h.el("h2", &[], "Compare with your hardware wallet");
    h.el(
        "p",
        &[],
        &format!(
            "Safe {} (version {}, chain {}). A Ledger or Trezor signing this Safe transaction shows the domain hash and the message hash; the safeTxHash is what the owners sign.",
            plain(&safe["safe"]),
            plain(&safe["version"]),
            plain(&safe["chain_id"])
        ),
    );
    for (label, key, id) in [
        ("Domain hash", "domain_hash", "domain-hash"),
        ("Message hash", "message_hash", "message-hash"),
        ("safeTxHash", "safe_tx_hash", "safe-tx-hash"),
    ] {
        let v = plain(&safe[key]);
        h.open("div", &[("class", "hash")]);
        h.el("span", &[("class", "hash-label")], label);
        h.el("code", &[("id", id), ("class", "hash-value")], &v);
        h.el(
            "button",
            &[("type", "button"), ("class", "copy"), ("data-copy", &v)],
            &format!("Copy {label}"),
        );
        h.close("div");
    }
    h.close("section");
}

const CALL_KEYS: [&str; 7] = ["parent", "depth", "from", "to", "kind", "value", "selector"];
/// Fields of a decoded action that are amounts of the called token.
const TOKEN_AMOUNTS: [&str; 3] = ["amount", "added", "value"];

/// `raw` (a hex or decimal quantity, signed for deltas) of `asset` in its units when the
/// policy declares it (`1.5 ETH`), else in raw units naming the asset.
fn amount(policy: &Policy, asset: &Asset, raw: &Value) -> String {
    let text = plain(raw);
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.as_str()),
    };
    let value = match digits.strip_prefix("0x") {
        Some(hex) => U256::from_str_radix(hex, 16).ok(),
        None => U256::from_str_radix(digits, 10).ok(),
    };
    let Some(value) = value else {
        return text;
    };
    let sign = if negative { "-" } else { "" };
    match policy.asset(AssetKey::of(asset)) {
        Some(def) if !matches!(asset, Asset::Erc721 { .. }) => {
            format!("{sign}{} {}", format_units(value, def.decimals), def.symbol)
        }
        _ => match asset.token() {
            Some(t) => format!("{sign}{value} (raw units of token {t})"),
            None => format!("{sign}{} (native coin)", format_units(value, 18)),
        },
    }
}

fn calls(h: &mut Html, report: &Value, policy: &Policy) {
    let Some(calls) = report.get("decoded").and_then(Value::as_array) else {
        return;
    };
    h.el("h2", &[], "Decoded calls");
    h.open("ol", &[("class", "calls"), ("id", "calls")]);
    for c in calls {
        let depth = c["depth"].as_u64().unwrap_or(0).min(8);
        let kind = c["kind"].as_str().unwrap_or("");
        let class = match depth {
            0 => "depth-0",
            1 => "depth-1",
            2 => "depth-2",
            3 => "depth-3",
            _ => "depth-4",
        };
        h.open("li", &[("class", class)]);
        if kind == "delegate_call" {
            h.el("strong", &[("class", "flag delegatecall")], "DELEGATECALL");
        } else {
            h.el("span", &[("class", "kind")], &kind.to_uppercase());
        }
        h.text(&format!(" {} → {}", plain(&c["from"]), plain(&c["to"])));
        if let Some(f) = c.get("function").and_then(Value::as_str) {
            h.text(" ").el("code", &[], f);
        }
        let token = c["to"]
            .as_str()
            .and_then(|t| t.parse::<Address>().ok())
            .map(|token| Asset::Erc20 { token });
        let details: Vec<String> = c
            .as_object()
            .map(|o| {
                o.iter()
                    .filter(|(k, _)| !CALL_KEYS.contains(&k.as_str()) && *k != "function")
                    .map(|(k, v)| match &token {
                        Some(t) if TOKEN_AMOUNTS.contains(&k.as_str()) => {
                            format!("{k}: {}", amount(policy, t, v))
                        }
                        _ => format!("{k}: {}", plain(v)),
                    })
                    .collect()
            })
            .unwrap_or_default();
        if !details.is_empty() {
            h.el(
                "span",
                &[("class", "details")],
                &format!(" ({})", details.join(", ")),
            );
        }
        if c["value"].as_str().is_some_and(|v| v != "0x0") {
            h.text(&format!(
                " sending {}",
                amount(policy, &Asset::Native, &c["value"])
            ));
        }
        h.close("li");
    }
    h.close("ol");
}

fn simulation(h: &mut Html, report: &Value, policy: &Policy) {
    let sim = &report["simulation"];
    h.el("h2", &[], "Simulation");
    let status = sim["status"].as_str().unwrap_or("unavailable");
    if status != "ran" {
        let why = sim
            .get("error")
            .map(plain)
            .unwrap_or_else(|| "no node to simulate on".to_owned());
        h.el(
            "p",
            &[("id", "simulation")],
            &format!("Not simulated ({status}): {why}"),
        );
        return;
    }
    let outcome = &sim["outcome"];
    let mut said = format!(
        "Simulated at block {}: {}",
        plain(&sim["block"]),
        plain(&outcome["status"])
    );
    if let Some(r) = outcome.get("reason") {
        said.push_str(&format!(" ({})", plain(r)));
    }
    h.el("p", &[("id", "simulation")], &said);
    if let Some(writes) = sim["critical_writes"].as_array().filter(|w| !w.is_empty()) {
        h.el("h3", &[], "Critical storage writes");
        h.open("table", &[("class", "writes"), ("id", "critical-writes")]);
        h.open("tr", &[]);
        for c in ["Account", "What", "Before", "After"] {
            h.el("th", &[("scope", "col")], c);
        }
        h.close("tr");
        for w in writes {
            h.open("tr", &[]);
            h.el("td", &[("class", "mono")], &plain(&w["account"]));
            h.el("td", &[("class", "flag")], &plain(&w["what"]));
            h.el("td", &[("class", "mono")], &plain(&w["before"]));
            h.el("td", &[("class", "mono")], &plain(&w["after"]));
            h.close("tr");
        }
        h.close("table");
    }
    if let Some(deltas) = sim["deltas"].as_array().filter(|d| !d.is_empty()) {
        h.el("h3", &[], "Balance changes");
        h.open("table", &[("class", "deltas"), ("id", "deltas")]);
        h.open("tr", &[]);
        for c in ["Holder", "Change"] {
            h.el("th", &[("scope", "col")], c);
        }
        h.close("tr");
        for d in deltas {
            h.open("tr", &[]);
            h.el("td", &[("class", "mono")], &plain(&d["holder"]));
            let change = match serde_json::from_value::<Asset>(d["asset"].clone()) {
                Ok(asset) => amount(policy, &asset, &d["delta"]),
                Err(_) => format!("{} of {}", plain(&d["delta"]), plain(&d["asset"])),
            };
            h.el("td", &[("class", "mono")], &change);
            h.close("tr");
        }
        h.close("table");
    }
    if let Some(created) = sim["created"].as_array().filter(|c| !c.is_empty()) {
        h.el("h3", &[], "Contracts created");
        h.open("ul", &[]);
        for c in created {
            h.el("li", &[("class", "mono")], &plain(c));
        }
        h.close("ul");
    }
}

fn counterparties(h: &mut Html, report: &Value) {
    let Some(cps) = report["counterparties"]
        .as_array()
        .filter(|c| !c.is_empty())
    else {
        return;
    };
    h.el("h2", &[], "Counterparties");
    h.open(
        "table",
        &[("class", "counterparties"), ("id", "counterparties")],
    );
    h.open("tr", &[]);
    for c in ["Address", "Role", "Risk", "Labels"] {
        h.el("th", &[("scope", "col")], c);
    }
    h.close("tr");
    for c in cps {
        h.open("tr", &[]);
        h.el("td", &[("class", "mono")], &plain(&c["address"]));
        let roles: Vec<String> = c["roles"]
            .as_array()
            .map(|r| r.iter().map(plain).collect())
            .unwrap_or_default();
        h.el("td", &[], &roles.join(", "));
        h.el("td", &[("class", "risk")], &plain(&c["risk"]));
        h.open("td", &[("class", "labels")]);
        for why in c["reasons"].as_array().into_iter().flatten() {
            h.el("div", &[("class", "label")], &plain(why));
        }
        h.close("td");
        h.close("tr");
    }
    h.close("table");
}

fn findings(h: &mut Html, report: &Value) {
    let Some(fs) = report["findings"].as_array().filter(|f| !f.is_empty()) else {
        return;
    };
    h.el("h2", &[], "Findings");
    h.open("ul", &[("class", "findings")]);
    for f in fs {
        h.el(
            "li",
            &[],
            &format!("{}: {}", plain(&f["kind"]), plain(&f["message"])),
        );
    }
    h.close("ul");
}

fn audit(h: &mut Html, trail: &[holdfast_store::gate::AuditEntry]) {
    h.el("h2", &[], "Audit trail");
    h.open("table", &[("class", "audit"), ("id", "audit")]);
    h.open("tr", &[]);
    for c in ["#", "Time", "What", "By", "Details"] {
        h.el("th", &[("scope", "col")], c);
    }
    h.close("tr");
    let more = trail.get(AUDIT_TRAIL_MAX);
    for e in trail.iter().take(AUDIT_TRAIL_MAX) {
        h.open("tr", &[]);
        h.el("td", &[], &e.seq.to_string());
        h.el("td", &[], &utc(e.at));
        h.el("td", &[], e.kind.name());
        h.el("td", &[], &e.actor);
        h.el("td", &[("class", "mono small")], &e.details);
        h.close("tr");
    }
    h.close("table");
    if let Some(next) = more {
        h.open("p", &[("class", "small"), ("id", "audit-more")]);
        h.text(&format!(
            "The first {AUDIT_TRAIL_MAX} entries of this request's trail; later ones are in the "
        ));
        h.link(&format!("/console/audit?from={}", next.seq), "audit log");
        h.text(&format!(" from entry #{}.", next.seq));
        h.close("p");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::{B256, I256};
    use holdfast_store::gate::{AuditEntry, AuditKind};

    /// A trail longer than the page shows says so and links to the rest in the audit log.
    #[test]
    fn a_long_trail_shows_its_first_entries_and_links_to_the_rest() {
        let entry = |seq| AuditEntry {
            seq,
            at: 0,
            kind: AuditKind::ApprovalRejected,
            request_id: Some("r".into()),
            actor: "a".into(),
            details: "{}".into(),
            prev: B256::ZERO,
            hash: B256::ZERO,
        };
        let render = |n: u64| {
            let mut h = Html::new();
            audit(&mut h, &(1..=n).map(|i| entry(i * 7)).collect::<Vec<_>>());
            h.into_string()
        };
        let whole = render(AUDIT_TRAIL_MAX as u64);
        assert!(!whole.contains("audit-more"));
        assert_eq!(whole.matches("<tr>").count(), AUDIT_TRAIL_MAX + 1);
        let cut = render(AUDIT_TRAIL_MAX as u64 + 1);
        assert_eq!(cut.matches("<tr>").count(), AUDIT_TRAIL_MAX + 1);
        let next = (AUDIT_TRAIL_MAX as u64 + 1) * 7;
        assert!(
            cut.contains(&format!("/console/audit?from={next}")),
            "{}",
            &cut[cut.len() - 400..]
        );
    }

    #[test]
    fn amounts_are_shown_in_the_units_of_the_policy() {
        let policy = Policy::parse(
            "p.toml",
            "[policy]\nname = \"p\"\n[assets.ETH]\nnative = true\ndecimals = 18\n[assets.USDC]\ntoken = \"0x00000000000000000000000000000000000000cc\"\ndecimals = 6\n",
        )
        .expect("policy");
        let eth = U256::from(3u64) * U256::from(10u64).pow(U256::from(18));
        assert_eq!(
            amount(&policy, &Asset::Native, &json!(format!("{eth:#x}"))),
            "3 ETH"
        );
        let delta = serde_json::to_value(-I256::try_from(eth / U256::from(2u64)).expect("fits"))
            .expect("json");
        assert_eq!(amount(&policy, &Asset::Native, &delta), "-1.5 ETH");
        let usdc = Asset::Erc20 {
            token: Address::with_last_byte(0xcc),
        };
        assert_eq!(amount(&policy, &usdc, &json!("0xf4240")), "1 USDC");
        let other = Asset::Erc20 {
            token: Address::repeat_byte(0xdd),
        };
        assert_eq!(
            amount(&policy, &other, &json!("0x10")),
            format!("16 (raw units of token {})", Address::repeat_byte(0xdd))
        );
    }
}
