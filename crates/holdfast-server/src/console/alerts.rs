//! The alerts feed (`/console/alerts`): the newest alerts read from the watch's store,
//! paged with `before`, and new ones added live by `assets/alerts.js` from
//! `GET /v1/alerts/stream` (server-sent events), starting right after the outbox event the
//! page was rendered at, so nothing between the two is missed. Operators and admins
//! acknowledge an alert with a form. Each alert links to what its transaction did
//! ([`super::alert`]) and to a trace from that transaction.

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use holdfast_gate::Role;
use holdfast_store::watch::{AlertQuery, SEVERITY_NAMES, StoredAlert};

use super::alert::{links, text};
use super::html::{Html, url_component};
use super::pages::utc;
use super::session::check_csrf;
use super::{Session, error_page, page, signed_in, signed_in_page};
use crate::AppState;
use crate::alerts::{blocking, body_json, store};
use crate::error::{ApiError, ApiPath, query_params};

/// Alerts in one page of the feed.
pub const PAGE: usize = 50;

pub async fn feed(
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
    let store = store(state)?;
    let q = query_params(query, &["before"])?;
    let before = q.get("before").cloned();
    let (alerts, head) = blocking(move || {
        let alerts = store.alerts(&AlertQuery {
            chain_id: None,
            rule: None,
            status: None,
            min_severity: None,
            acknowledged: None,
            before_id: before,
            limit: PAGE,
        })?;
        Ok((alerts, store.outbox_head()?))
    })
    .await?;
    let may_ack = session.principal.has(Role::Operator) || session.principal.has(Role::Admin);
    let mut h = Html::new();
    h.open(
        "p",
        &[
            ("id", "live"),
            ("data-after", &head.to_string()),
            ("role", "status"),
            ("aria-live", "polite"),
        ],
    );
    h.text("Live: new alerts appear at the top as the watch raises them.");
    h.close("p");
    h.open("table", &[("class", "alerts")]);
    h.open("thead", &[]).open("tr", &[]);
    for c in [
        "Raised",
        "Severity",
        "Rule",
        "What happened",
        "Block",
        "Transaction",
        "State",
    ] {
        h.el("th", &[("scope", "col")], c);
    }
    h.close("tr").close("thead");
    h.open("tbody", &[("id", "alerts")]);
    for a in &alerts {
        row(&mut h, a, may_ack.then(|| session.csrf_token()).as_deref());
    }
    h.close("tbody").close("table");
    if alerts.len() == PAGE
        && let Some(last) = alerts.last()
    {
        h.open("p", &[])
            .link(
                &format!("/console/alerts?before={}", url_component(&last.id)),
                "Older alerts",
            )
            .close("p");
    }
    h.el(
        "script",
        &[("type", "module"), ("src", "/console/assets/alerts.js")],
        "",
    );
    Ok(page("Alerts", Some(session), h))
}

fn row(h: &mut Html, a: &StoredAlert, ack_csrf: Option<&str>) {
    let body = body_json(&a.body);
    let severity = SEVERITY_NAMES
        .get(usize::from(a.severity))
        .copied()
        .unwrap_or("critical");
    h.open("tr", &[("data-alert-id", &a.id), ("class", severity)]);
    h.el("td", &[], &utc(a.raised_at_ms / 1000));
    h.el("td", &[("class", "severity")], severity);
    h.el("td", &[], &a.rule);
    h.open("td", &[]);
    h.el("strong", &[], &text(&body["title"]));
    h.el("div", &[("class", "small")], &text(&body["summary"]));
    h.close("td");
    h.el("td", &[], &format!("{} #{}", a.chain_id, a.block_number));
    let tx = text(&body["tx_hash"]);
    h.open("td", &[("class", "mono small")]);
    h.text(&tx);
    links(h, &a.id, Some(&tx));
    h.close("td");
    h.open("td", &[]);
    h.text(a.status.name());
    match (&a.acknowledged, ack_csrf) {
        (Some((by, _)), _) => {
            h.el("div", &[], &format!("acknowledged by {by}"));
        }
        (None, Some(csrf)) => {
            h.open(
                "form",
                &[
                    ("method", "post"),
                    (
                        "action",
                        &format!("/console/alerts/{}/ack", url_component(&a.id)),
                    ),
                ],
            );
            h.void(
                "input",
                &[("type", "hidden"), ("name", "csrf"), ("value", csrf)],
            );
            h.el("button", &[("type", "submit")], "Acknowledge");
            h.close("form");
        }
        (None, None) => {}
    }
    h.close("td");
    h.close("tr");
}

pub async fn acknowledge(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
    body: Body,
) -> Response {
    let session = match signed_in(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let result = async {
        let fields = super::pages::form(&state, &headers, body).await?;
        check_csrf(
            &session,
            &headers,
            fields.get("csrf").map(String::as_str).unwrap_or(""),
        )?;
        let who = &session.principal;
        if !(who.has(Role::Operator) || who.has(Role::Admin)) {
            return Err(ApiError {
                status: axum::http::StatusCode::FORBIDDEN,
                code: "forbidden",
                message: format!("token {:?} lacks the operator or admin role", who.name),
                field: None,
            });
        }
        let store = store(&state)?;
        let name = who.name.clone();
        let key = id.clone();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        blocking(move || store.acknowledge(&key, &name, now))
            .await?
            .ok_or_else(|| ApiError::not_found(format!("no alert {id:?}")))
    }
    .await;
    match result {
        Ok(_) => Redirect::to("/console/alerts").into_response(),
        Err(e) => error_page(Some(&session), &e),
    }
}
