//! Screening an address from the console (`/console/screen?address=...&chain=...&as_of=...`):
//! the verdict of the server's current intel — the risk, the reasons in words, and every
//! label with its source, category, confidence, actor, program, dates and chains. The same
//! `IntelIndex::screen` as `GET /v1/addresses/{chain}/{address}`.

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use holdfast_intel::{ScreenOptions, Verdict};
use holdfast_primitives::{Chain, Date};

use super::html::Html;
use super::{Session, page, signed_in_page};
use crate::AppState;
use crate::error::{ApiError, query_params};

pub async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    signed_in_page(&state, &headers, async |s| {
        render(&state, s, query.as_deref())
    })
    .await
}

fn render(state: &AppState, session: &Session, query: Option<&str>) -> Result<Response, ApiError> {
    let q = query_params(query, &["address", "chain", "as_of"])?;
    let address = q.get("address").map(|a| a.trim()).unwrap_or("");
    let chain = q.get("chain").map(|c| c.trim()).filter(|c| !c.is_empty());
    let as_of = q.get("as_of").map(|d| d.trim()).filter(|d| !d.is_empty());
    let mut h = Html::new();
    form(&mut h, address, chain, as_of);
    if !address.is_empty() {
        let options = ScreenOptions {
            chain: chain
                .map(|c| {
                    c.parse::<Chain>()
                        .map_err(|e| ApiError::bad_request("chain".to_owned(), e.to_string()))
                })
                .transpose()?,
            as_of: match as_of {
                None => Date::today(),
                Some(d) => d
                    .parse::<Date>()
                    .map_err(|e| ApiError::bad_request("as_of".to_owned(), e.to_string()))?,
            },
        };
        let intel = state.intel.load();
        let verdict = intel
            .index
            .screen(address, &options)
            .map_err(|e| ApiError::bad_request("address".to_owned(), e.to_string()))?;
        show_verdict(&mut h, &verdict);
    }
    Ok(page("Screen an address", Some(session), h))
}

fn form(h: &mut Html, address: &str, chain: Option<&str>, as_of: Option<&str>) {
    h.open(
        "form",
        &[
            ("method", "get"),
            ("action", "/console/screen"),
            ("class", "filters"),
        ],
    );
    h.el("label", &[("for", "address")], "Address");
    h.void(
        "input",
        &[
            ("id", "address"),
            ("name", "address"),
            ("value", address),
            ("size", "46"),
            ("required", "required"),
        ],
    );
    h.el("label", &[("for", "chain")], "Chain (optional)");
    h.void(
        "input",
        &[
            ("id", "chain"),
            ("name", "chain"),
            ("value", chain.unwrap_or("")),
            ("size", "10"),
        ],
    );
    h.el("label", &[("for", "as_of")], "As of (YYYY-MM-DD)");
    h.void(
        "input",
        &[
            ("id", "as_of"),
            ("name", "as_of"),
            ("value", as_of.unwrap_or("")),
            ("size", "10"),
        ],
    );
    h.el("button", &[("type", "submit")], "Screen");
    h.close("form");
}

fn show_verdict(h: &mut Html, v: &Verdict) {
    h.open("section", &[("id", "verdict"), ("aria-label", "verdict")]);
    h.open("p", &[("class", "state")]);
    h.el(
        "span",
        &[("class", "badge"), ("id", "risk")],
        &v.risk.to_string(),
    );
    h.text(&format!(
        " {} as of {} ({} chains: {})",
        v.address,
        v.as_of,
        v.chains.len(),
        v.chains
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    ));
    h.close("p");
    h.open("ul", &[("class", "reasons")]);
    for r in &v.reasons {
        h.el("li", &[], r);
    }
    h.close("ul");
    if v.labels.is_empty() {
        h.el("p", &[], "No label: nothing known of this address.");
    } else {
        h.open("table", &[("class", "labels"), ("id", "labels")]);
        h.open("tr", &[]);
        for c in [
            "Risk",
            "Source",
            "Category",
            "Confidence",
            "Who",
            "Listed",
            "Active",
            "Chains",
        ] {
            h.el("th", &[("scope", "col")], c);
        }
        h.close("tr");
        for l in &v.labels {
            h.open("tr", &[]);
            h.el("td", &[], &l.risk.to_string());
            h.el("td", &[], &l.source);
            h.el("td", &[], &l.category.to_string());
            h.el("td", &[], &l.confidence.to_string());
            let who = [l.name.as_deref(), l.actor.as_deref(), l.program.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" · ");
            h.el("td", &[("class", "label")], &who);
            let listed = match (&l.listed_on, &l.delisted_on) {
                (Some(a), Some(b)) => format!("{a} to {b}"),
                (Some(a), None) => a.to_string(),
                (None, Some(b)) => format!("until {b}"),
                (None, None) => "—".to_owned(),
            };
            h.el("td", &[], &listed);
            h.el("td", &[], if l.active { "yes" } else { "no" });
            h.el(
                "td",
                &[("class", "small")],
                &l.chains
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
            );
            h.close("tr");
        }
        h.close("table");
    }
    h.close("section");
}
