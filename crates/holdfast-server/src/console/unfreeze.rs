//! Lifting an emergency freeze from the console (`/console/unfreeze?wallet=...`): a freeze is
//! lifted by a quorum of the configuration's `unfreeze_group`, each member signing an EIP-712
//! `Approval` with action `unfreeze` over the hash bound to that freeze
//! ([`holdfast_gate::Gate::unfreeze_hash`]). Each member signs on this page with their own
//! wallet (`assets/unfreeze.js`) and hands the signed approval (JSON, shown on the page) to an
//! admin; the admin pastes the approvals and lifts the freeze, which the guard service checks
//! (`Gate::unfreeze`). Nothing is kept on the server between the two steps.

use alloy_primitives::Address;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use holdfast_gate::Role;
use holdfast_guard::approval::SignedApproval;
use holdfast_guard::request::parse_address;
use serde_json::json;

use super::html::{Html, url_component};
use super::pages::{form, gate, now};
use super::session::check_csrf;
use super::{Session, error_page, page, signed_in, signed_in_page};
use crate::AppState;
use crate::error::{ApiError, query_params};

/// How long an unfreeze approval signed here counts.
const LIFETIME_SECS: u64 = 3600;

fn scope(value: Option<&String>) -> Result<Option<Address>, ApiError> {
    match value.map(|w| w.trim()).filter(|w| !w.is_empty()) {
        None => Ok(None),
        Some(w) => parse_address(w).map(Some).ok_or_else(|| {
            ApiError::bad_request(
                "wallet".to_owned(),
                format!(
                    "wallet is {w:?}; expected an address, or nothing for the freeze of everything"
                ),
            )
        }),
    }
}

pub async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    signed_in_page(&state, &headers, async |s| {
        render(&state, s, query.as_deref()).await
    })
    .await
}

async fn render(
    state: &AppState,
    session: &Session,
    query: Option<&str>,
) -> Result<Response, ApiError> {
    let g = gate(state)?.clone();
    let q = query_params(query, &["wallet"])?;
    let wallet = scope(q.get("wallet"))?;
    let what = wallet.map_or_else(|| "all wallets".to_owned(), |w| format!("wallet {w}"));
    let mut h = Html::new();
    let Some(hash) = g.unfreeze_hash(wallet).await.map_err(ApiError::from)? else {
        h.el(
            "p",
            &[("id", "unfreeze-state")],
            &format!("Signing is not frozen for {what}."),
        );
        return Ok(page("Lift a freeze", Some(session), h));
    };
    let config = g.config();
    h.el(
        "p",
        &[("id", "unfreeze-state"), ("class", "refused")],
        &format!(
            "Signing is frozen for {what}. Lifting it needs {} unfreeze approvals from group {}.",
            config.unfreeze_approvals,
            config
                .unfreeze_group
                .as_deref()
                .unwrap_or("(none configured)")
        ),
    );
    let chain_id = g.chain_id().unwrap_or_default();
    let typed = json!({
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
        "domain": {"name": "Holdfast", "version": "1", "chainId": chain_id},
        "message": {
            "requestId": hash,
            "payloadHash": hash,
            "chainId": chain_id,
            "action": "unfreeze",
            "deadline": now() + LIFETIME_SECS
        }
    });
    h.open("section", &[("id", "unfreeze-sign")]);
    h.el("h2", &[], "1. Members of the group: sign");
    h.el(
        "p",
        &[],
        "Your wallet is asked to sign exactly this EIP-712 message; hand the signed approval shown below to an admin.",
    );
    h.el(
        "pre",
        &[("id", "typed-data"), ("class", "typed")],
        &serde_json::to_string_pretty(&typed).unwrap_or_default(),
    );
    h.el(
        "button",
        &[("type", "button"), ("id", "unfreeze-sign-button")],
        "Sign the unfreeze approval",
    );
    h.el(
        "pre",
        &[
            ("id", "unfreeze-signed"),
            ("class", "typed"),
            ("aria-live", "polite"),
        ],
        "",
    );
    h.el(
        "script",
        &[("type", "module"), ("src", "/console/assets/unfreeze.js")],
        "",
    );
    h.close("section");
    if session.principal.has(Role::Admin) {
        h.open("section", &[("id", "unfreeze-lift")]);
        h.el("h2", &[], "2. Admin: lift the freeze");
        h.open(
            "form",
            &[("method", "post"), ("action", "/console/unfreeze")],
        );
        h.void(
            "input",
            &[
                ("type", "hidden"),
                ("name", "csrf"),
                ("value", &session.csrf_token()),
            ],
        );
        h.void(
            "input",
            &[
                ("type", "hidden"),
                ("name", "wallet"),
                ("value", &wallet.map(|w| w.to_string()).unwrap_or_default()),
            ],
        );
        h.el(
            "label",
            &[("for", "approvals")],
            "Signed approvals, one JSON object a line",
        );
        h.open(
            "textarea",
            &[
                ("id", "approvals"),
                ("name", "approvals"),
                ("rows", "6"),
                ("cols", "100"),
            ],
        );
        h.close("textarea");
        h.el(
            "button",
            &[("type", "submit"), ("id", "unfreeze-lift-button")],
            "Lift the freeze",
        );
        h.close("form").close("section");
    }
    Ok(page("Lift a freeze", Some(session), h))
}

pub async fn lift(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let session = match signed_in(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let result = async {
        let fields = form(&state, &headers, body).await?;
        check_csrf(
            &session,
            &headers,
            fields.get("csrf").map(String::as_str).unwrap_or(""),
        )?;
        let wallet = scope(fields.get("wallet"))?;
        let mut approvals = Vec::new();
        for (i, line) in fields
            .get("approvals")
            .map(String::as_str)
            .unwrap_or("")
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .enumerate()
        {
            approvals.push(serde_json::from_str::<SignedApproval>(line).map_err(|e| {
                ApiError::bad_request(
                    format!("approvals[{i}]"),
                    format!("approval {} is not a signed approval: {e}", i + 1),
                )
            })?);
        }
        let g = gate(&state)?;
        g.unfreeze(wallet, &approvals, &session.principal)
            .await
            .map_err(ApiError::from)?;
        Ok::<_, ApiError>(wallet)
    }
    .await;
    match result {
        Ok(wallet) => Redirect::to(&format!(
            "/console/unfreeze?wallet={}",
            url_component(&wallet.map(|w| w.to_string()).unwrap_or_default())
        ))
        .into_response(),
        Err(e) => error_page(Some(&session), &e),
    }
}
