//! One alert (`/console/alerts/{id}`): what the watch decoded of its transaction, in words —
//! the title and summary, every fact (amounts in token units, the call, the storage
//! written), every address it mentions with its role and intel's labels, the evidence for
//! responders — with links to trace the stolen funds from the transaction
//! (`/console/trace?seed=TX`) and to screen each address. Read from the watch's store.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use holdfast_store::watch::SEVERITY_NAMES;
use serde_json::Value;

use super::html::{Html, url_component};
use super::pages::utc;
use super::{Session, page, signed_in_page};
use crate::AppState;
use crate::alerts::{blocking, body_json, store};
use crate::error::{ApiError, ApiPath};

/// `v` as text (a JSON string as it is, anything else as JSON).
pub(crate) fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        v => v.to_string(),
    }
}

/// The links of an alert with transaction `tx`: its decoding and a trace from it.
pub(crate) fn links(h: &mut Html, id: &str, tx: Option<&str>) {
    h.open("div", &[("class", "alert-links small")]);
    h.el(
        "a",
        &[
            ("href", &format!("/console/alerts/{}", url_component(id))),
            ("class", "decoding"),
        ],
        "What it did",
    );
    if let Some(tx) = tx.filter(|t| !t.is_empty()) {
        h.text(" · ");
        h.el(
            "a",
            &[
                (
                    "href",
                    &format!("/console/trace?seed={}", url_component(tx)),
                ),
                ("class", "trace"),
            ],
            "Trace from this transaction",
        );
    }
    h.close("div");
}

pub async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
) -> Response {
    signed_in_page(&state, &headers, async |s| render(&state, s, id).await).await
}

async fn render(state: &AppState, session: &Session, id: String) -> Result<Response, ApiError> {
    let store = store(state)?;
    let key = id.clone();
    let a = blocking(move || store.alert(&key))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no alert {id:?}")))?;
    let body = body_json(&a.body);
    let severity = SEVERITY_NAMES
        .get(usize::from(a.severity))
        .copied()
        .unwrap_or("critical");
    let tx = text(&body["tx_hash"]);
    let mut h = Html::new();
    h.open("p", &[("class", "state")]);
    h.el("span", &[("class", "badge")], severity);
    h.text(&format!(
        " rule {} ({}), {} — block {} of chain {}, raised {}",
        a.rule,
        text(&body["detector"]),
        a.status.name(),
        a.block_number,
        a.chain_id,
        utc(a.raised_at_ms / 1000)
    ));
    h.close("p");
    h.el("h2", &[("id", "alert-title")], &text(&body["title"]));
    h.el("p", &[("id", "alert-summary")], &text(&body["summary"]));
    if !tx.is_empty() {
        h.open("p", &[]);
        h.text("Transaction ");
        h.el("code", &[("id", "alert-tx")], &tx);
        h.close("p");
    }
    links(&mut h, &a.id, Some(&tx));

    h.open(
        "section",
        &[("id", "facts"), ("aria-labelledby", "facts-title")],
    );
    h.el("h2", &[("id", "facts-title")], "What the transaction did");
    h.open("dl", &[]);
    for f in body["facts"].as_array().into_iter().flatten() {
        h.el("dt", &[], &text(&f["name"]));
        h.el("dd", &[], &text(&f["value"]));
    }
    h.close("dl");
    h.close("section");

    h.open("section", &[("aria-labelledby", "addresses-title")]);
    h.el("h2", &[("id", "addresses-title")], "Addresses");
    h.open("table", &[("id", "addresses")]);
    h.open("tr", &[]);
    for c in ["Address", "Role", "Involvement", "Labels"] {
        h.el("th", &[("scope", "col")], c);
    }
    h.close("tr");
    for n in body["addresses"].as_array().into_iter().flatten() {
        let address = text(&n["address"]);
        h.open("tr", &[]);
        h.open("td", &[("class", "mono small")]);
        h.link(
            &format!("/console/screen?address={}", url_component(&address)),
            &address,
        );
        h.close("td");
        h.el("td", &[], &text(&n["role"]));
        h.el("td", &[], &text(&n["involvement"]));
        h.open("td", &[]);
        for l in n["labels"].as_array().into_iter().flatten() {
            h.el("div", &[("class", "label")], &text(l));
        }
        h.close("td");
        h.close("tr");
    }
    h.close("table");
    h.close("section");

    let explorer: Vec<(String, String)> = body["links"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| (text(&l["name"]), text(&l["url"])))
        // Only web links: a `javascript:` or `data:` URL from a watch file is not a link.
        .filter(|(_, url)| url.starts_with("https://") || url.starts_with("http://"))
        .collect();
    if !explorer.is_empty() {
        h.open("ul", &[("class", "explorer")]);
        for (name, url) in &explorer {
            h.open("li", &[]);
            h.el("a", &[("href", url), ("rel", "noreferrer")], name);
            h.close("li");
        }
        h.close("ul");
    }
    if !body["evidence"].is_null() {
        h.el("h2", &[], "Evidence");
        h.el(
            "pre",
            &[("id", "evidence")],
            &serde_json::to_string_pretty(&body["evidence"]).unwrap_or_default(),
        );
    }
    Ok(page("Alert", Some(session), h))
}
