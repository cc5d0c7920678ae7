//! Sign-in, sign-out and the request queue.
//!
//! The queue has three views: holds (with the time left before release, counted down in
//! the browser), requests awaiting approvals (who approved, who of the group has not), and
//! decided requests (one state at a time). Each view is one state's index read a page at a
//! time, oldest first ([`holdfast_store::gate::GateStore::in_state_after`]); `after`
//! continues from the last row of the previous page. Filters (wallet, decision, rule, dates)
//! are applied by a bounded scan of the index ([`super::filter`]).

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use holdfast_gate::{Gate, GateError, Role};
use holdfast_store::gate::{GateRequest, RequestState};

use super::filter::Filter;
use super::html::{Html, url_component};
use super::session::{check_csrf, same_origin};
use super::{error_page, page, signed_in_page};
use crate::AppState;
use crate::body::read_body;
use crate::error::{ApiError, query_params};

/// Rows in one page of the queue.
pub const PAGE: usize = 50;
/// Largest sign-in or action form accepted.
pub(crate) const MAX_FORM_BYTES: usize = 16 * 1024;

/// The fields of a form body (`application/x-www-form-urlencoded`), at most
/// [`MAX_FORM_BYTES`].
pub(crate) async fn form(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<HashMap<String, String>, ApiError> {
    let body = read_body(headers, body, MAX_FORM_BYTES, state.limits.body_timeout).await?;
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request(None, "the form is not UTF-8"))?;
    query_params(
        Some(text),
        &["token", "csrf", "reason", "wallet", "approvals"],
    )
    .map(|m| m.into_iter().collect())
}

pub async fn sign_in_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Ok(Some(_)) = state.sessions.get(&headers, state.token_book()).await {
        return Redirect::to("/console/requests").into_response();
    }
    sign_in_form(None)
}

fn sign_in_form(refused: Option<&str>) -> Response {
    let mut h = Html::new();
    h.el(
        "p",
        &[],
        "Sign in with your API token (a [[token]] of the guard configuration). The token is sent once; the browser keeps only a session cookie.",
    );
    if let Some(r) = refused {
        h.el("p", &[("class", "refused"), ("role", "alert")], r);
    }
    h.open(
        "form",
        &[
            ("method", "post"),
            ("action", "/console/sign-in"),
            ("class", "sign-in"),
        ],
    );
    h.el("label", &[("for", "token")], "API token");
    h.void(
        "input",
        &[
            ("type", "password"),
            ("id", "token"),
            ("name", "token"),
            ("autocomplete", "off"),
            ("required", "required"),
        ],
    );
    h.el("button", &[("type", "submit")], "Sign in");
    h.close("form");
    let mut resp = page("Sign in", None, h);
    if refused.is_some() {
        *resp.status_mut() = StatusCode::UNAUTHORIZED;
    }
    resp
}

pub async fn sign_in(
    State(state): State<AppState>,
    peer: Option<axum::Extension<super::throttle::Peer>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Err(e) = same_origin(&headers) {
        return error_page(None, &e);
    }
    let client = peer.map(|p| p.0.0);
    if let Err(wait) = state.auth_throttle.check(client) {
        let e = super::throttle::too_many("failed sign-ins", wait);
        return super::throttle::retry_after(error_page(None, &e), wait);
    }
    let fields = match form(&state, &headers, body).await {
        Ok(f) => f,
        Err(e) => return error_page(None, &e),
    };
    let token = fields.get("token").map(String::as_str).unwrap_or("");
    let Some(book) = state.token_book() else {
        return error_page(
            None,
            &ApiError::not_found(
                "the console needs API tokens: start `holdfast serve` with --guard-config (its [[token]] entries)",
            ),
        );
    };
    let Some(who) = book.principal(token) else {
        let failures = state.auth_throttle.failed(client);
        tracing::info!(target: "server::console", ?client, failures, "sign-in refused: unknown token");
        return sign_in_form(Some(
            "Unknown token: not one of the guard configuration's tokens.",
        ));
    };
    let id = match state.sessions.open(token).await {
        Ok(id) => id,
        Err(e) => return error_page(None, &e),
    };
    tracing::info!(target: "server::console", who = %who.name, "signed in");
    (
        [(header::SET_COOKIE, state.sessions.set_cookie(&id))],
        Redirect::to("/console/requests"),
    )
        .into_response()
}

pub async fn sign_out(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let (id, session) = match state.sessions.get(&headers, state.token_book()).await {
        Ok(Some(found)) => found,
        Ok(None) => return Redirect::to("/console/sign-in").into_response(),
        Err(e) => return error_page(None, &e),
    };
    let fields = match form(&state, &headers, body).await {
        Ok(f) => f,
        Err(e) => return error_page(Some(&session), &e),
    };
    let given = fields.get("csrf").map(String::as_str).unwrap_or("");
    if let Err(e) = check_csrf(&session, &headers, given) {
        return error_page(Some(&session), &e);
    }
    if let Err(e) = state.sessions.close(&id).await {
        return error_page(Some(&session), &e);
    }
    (
        [(header::SET_COOKIE, state.sessions.clear_cookie())],
        Redirect::to("/console/sign-in"),
    )
        .into_response()
}

/// Which part of the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum View {
    Held,
    Awaiting,
    Decided,
}

const DECIDED: [RequestState; 7] = [
    RequestState::Signed,
    RequestState::Included,
    RequestState::Broadcast,
    RequestState::Signing,
    RequestState::Denied,
    RequestState::Cancelled,
    RequestState::Failed,
];

fn state_named(s: &str) -> Option<RequestState> {
    DECIDED
        .iter()
        .chain(&[RequestState::Held, RequestState::AwaitingApprovals])
        .copied()
        .find(|x| x.name() == s)
}

pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub(crate) fn gate(state: &AppState) -> Result<&std::sync::Arc<Gate>, ApiError> {
    state.gate.as_ref().ok_or_else(|| {
        ApiError::not_found(
            "the guard service is not configured: start `holdfast serve` with --guard-config",
        )
    })
}

pub async fn queue(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    signed_in_page(&state, &headers, async |s| {
        queue_page(&state, query.as_deref(), s).await
    })
    .await
}

async fn queue_page(
    state: &AppState,
    query: Option<&str>,
    session: &super::Session,
) -> Result<Response, ApiError> {
    let g = gate(state)?.clone();
    let q = query_params(
        query,
        &[
            "view", "state", "after", "wallet", "decision", "rule", "since", "until", "done",
        ],
    )?;
    let filter = Filter::parse(&q)?;
    let view = match q.get("view").map(String::as_str) {
        None | Some("held") => View::Held,
        Some("awaiting") => View::Awaiting,
        Some("decided") => View::Decided,
        Some(v) => {
            return Err(ApiError::bad_request(
                "view".to_owned(),
                format!("view is {v:?}; expected held, awaiting or decided"),
            ));
        }
    };
    let st = match view {
        View::Held => RequestState::Held,
        View::Awaiting => RequestState::AwaitingApprovals,
        View::Decided => match q.get("state") {
            None => RequestState::Signed,
            Some(s) => state_named(s).ok_or_else(|| {
                ApiError::bad_request(
                    "state".to_owned(),
                    format!(
                        "state is {s:?}; expected one of {}",
                        DECIDED.map(|d| d.name()).join(", ")
                    ),
                )
            })?,
        },
    };
    let after = match q.get("after") {
        None => None,
        Some(a) => {
            let parsed = a
                .split_once(':')
                .and_then(|(at, id)| Some((at.parse::<u64>().ok()?, id.to_owned())));
            Some(parsed.ok_or_else(|| {
                ApiError::bad_request(
                    "after".to_owned(),
                    format!("after is {a:?}; expected CREATED_AT:ID from a next-page link"),
                )
            })?)
        }
    };
    let store = g.store().clone();
    let f = filter.clone();
    let (rows, next) =
        tokio::task::spawn_blocking(move || super::filter::page(&*store, st, after, &f, PAGE))
            .await
            .map_err(|e| ApiError::internal("reading the queue", &e))?
            .map_err(|e| ApiError::from(GateError::from(e)))?;

    let mut h = Html::new();
    if let Some(done) = q.get("done") {
        let said = match done.as_str() {
            "cancelled" => "The request was cancelled: it will never be signed.",
            "frozen" => "Signing is frozen.",
            _ => "Done.",
        };
        h.el("p", &[("class", "done"), ("role", "status")], said);
    }
    filters(&mut h, view, st, &filter);
    let title = match view {
        View::Held => "Holds",
        View::Awaiting => "Awaiting approvals",
        View::Decided => "Decided requests",
    };
    table(&mut h, &g, view, &rows).await;
    if let Some((at, id)) = next {
        let href = format!(
            "/console/requests?view={}&state={}&after={}{}",
            view_name(view),
            st.name(),
            url_component(&format!("{at}:{id}")),
            filter.query()
        );
        h.open("p", &[]).link(&href, "Next page").close("p");
    }
    if session.principal.has(Role::Operator) {
        freeze_form(&mut h, &session.csrf_token(), None);
    }
    Ok(page(title, Some(session), h))
}

fn view_name(v: View) -> &'static str {
    match v {
        View::Held => "held",
        View::Awaiting => "awaiting",
        View::Decided => "decided",
    }
}

fn filters(h: &mut Html, view: View, st: RequestState, filter: &Filter) {
    h.open(
        "form",
        &[
            ("method", "get"),
            ("action", "/console/requests"),
            ("class", "filters"),
        ],
    );
    h.void(
        "input",
        &[
            ("type", "hidden"),
            ("name", "view"),
            ("value", view_name(view)),
        ],
    );
    if view == View::Decided {
        h.el("label", &[("for", "state")], "State");
        h.open("select", &[("id", "state"), ("name", "state")]);
        for d in DECIDED {
            if d == st {
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
    }
    filter.fields(h);
    h.el("button", &[("type", "submit")], "Filter");
    h.close("form");
}

async fn table(h: &mut Html, g: &Gate, view: View, rows: &[GateRequest]) {
    if rows.is_empty() {
        h.el("p", &[("class", "empty")], "Nothing here.");
        return;
    }
    h.open("table", &[("class", "queue")])
        .open("thead", &[])
        .open("tr", &[]);
    let last = match view {
        View::Held => "Released in",
        View::Awaiting => "Approvals",
        View::Decided => "State",
    };
    for c in ["Request", "Wallet", "Decision", "Rule", "Created", last] {
        h.el("th", &[("scope", "col")], c);
    }
    h.close("tr").close("thead").open("tbody", &[]);
    for r in rows {
        h.open("tr", &[]);
        h.open("td", &[("class", "mono")]);
        h.link(
            &format!("/console/requests/{}", url_component(&r.id)),
            &short(&r.id),
        );
        h.close("td");
        h.el("td", &[("class", "mono")], &r.wallet.to_string());
        h.el("td", &[], r.decision.name());
        h.el("td", &[], r.rule.as_deref().unwrap_or("—"));
        h.el("td", &[], &utc(r.created_at));
        match view {
            View::Held => {
                let at = r.release_at.unwrap_or_default();
                countdown(h, at);
            }
            View::Awaiting => {
                h.open("td", &[]);
                approvals(h, g, r).await;
                h.close("td");
            }
            View::Decided => {
                h.el("td", &[], r.state.name());
            }
        }
        h.close("tr");
    }
    h.close("tbody").close("table");
}

/// A cell counting down to `at` (the browser updates it every second).
pub(crate) fn countdown(h: &mut Html, at: u64) {
    let left = at.saturating_sub(now());
    h.el(
        "td",
        &[("class", "countdown"), ("data-release-at", &at.to_string())],
        &format!("{left} s (at {})", utc(at)),
    );
}

/// Who of the request's group approved and who is still needed.
pub(crate) async fn approvals(h: &mut Html, g: &Gate, r: &GateRequest) {
    let have = match g.status(&r.id).await {
        Ok(o) => o.approvals.map(|a| a.have).unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    let members = r
        .group
        .as_ref()
        .and_then(|n| g.guard().policy().groups.get(n))
        .cloned()
        .unwrap_or_default();
    h.el(
        "span",
        &[("class", "count")],
        &format!(
            "{} of {} from group {}",
            have.len(),
            r.need_approvals,
            r.group.as_deref().unwrap_or("—")
        ),
    );
    let initiator = r.initiator.parse::<alloy_primitives::Address>().ok();
    h.open("ul", &[("class", "approvers")]);
    for m in &members {
        let (class, said) = if have.contains(m) {
            ("approved", "approved")
        } else if Some(*m) == initiator {
            ("initiator", "initiated this request: cannot approve it")
        } else {
            ("pending", "not yet")
        };
        h.el("li", &[("class", class)], &format!("{m} {said}"));
    }
    h.close("ul");
}

/// The freeze form (operators): a wallet, or everything.
pub(crate) fn freeze_form(h: &mut Html, csrf: &str, wallet: Option<&str>) {
    h.open("section", &[("class", "freeze")]);
    h.el("h2", &[], "Emergency freeze");
    h.el(
        "p",
        &[],
        "Stops every signature (of this wallet, or of all wallets when none is given) until admins lift it with approvals.",
    );
    h.open("form", &[("method", "post"), ("action", "/console/freeze")]);
    h.void(
        "input",
        &[("type", "hidden"), ("name", "csrf"), ("value", csrf)],
    );
    h.el("label", &[("for", "freeze-wallet")], "Wallet (empty: all)");
    h.void(
        "input",
        &[
            ("id", "freeze-wallet"),
            ("name", "wallet"),
            ("value", wallet.unwrap_or("")),
        ],
    );
    h.el("label", &[("for", "freeze-reason")], "Reason");
    h.void(
        "input",
        &[
            ("id", "freeze-reason"),
            ("name", "reason"),
            ("required", "required"),
        ],
    );
    h.el(
        "button",
        &[("type", "submit"), ("class", "danger")],
        "Freeze signing",
    );
    h.close("form").close("section");
}

/// `0x1234…abcd`.
pub(crate) fn short(id: &str) -> String {
    if id.len() > 14 {
        format!("{}…{}", &id[..8], &id[id.len() - 6..])
    } else {
        id.to_owned()
    }
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS UTC`.
pub(crate) fn utc(t: u64) -> String {
    let days = i64::try_from(t / 86_400).unwrap_or_default();
    let secs = t % 86_400;
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_dates() {
        assert_eq!(super::utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(super::utc(1_740_140_000), "2025-02-21 12:13:20 UTC");
    }
}
