//! The guard service's audit log (`/console/audit`, admins): a page of entries in order,
//! the verification of the whole hash chain (read a page at a time, memory bounded by a
//! page: [`holdfast_store::gate::Verifier`], the check `holdfast audit verify` makes), and its
//! export as JSON lines (`/console/audit/export`, the format of `holdfast audit export`).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use holdfast_gate::{GateError, Role};
use holdfast_store::gate::{AuditEntry, GateStore, Verifier};

use super::html::Html;
use super::pages::{gate, utc};
use super::{Session, error_page, page, signed_in, signed_in_page};
use crate::AppState;
use crate::error::{ApiError, query_params};

/// Entries shown on one page.
pub const PAGE: usize = 100;
/// Entries read at a time while verifying or exporting.
const CHUNK: usize = 5_000;

fn admin(session: &Session) -> Result<(), ApiError> {
    if session.principal.has(Role::Admin) {
        Ok(())
    } else {
        Err(GateError::Forbidden {
            who: session.principal.name.clone(),
            role: Role::Admin,
        }
        .into())
    }
}

/// What verifying the whole chain found.
struct Verified {
    entries: u64,
    head: String,
    broken: Option<String>,
}

fn verify_all(store: &dyn GateStore) -> Result<Verified, holdfast_store::StoreError> {
    let mut v = Verifier::default();
    let mut from = 1;
    loop {
        let chunk = store.audit(from, CHUNK)?;
        for e in &chunk {
            if let Err(b) = v.next(e) {
                return Ok(Verified {
                    entries: v.verified(),
                    head: v.head().to_string(),
                    broken: Some(b.to_string()),
                });
            }
        }
        match chunk.last() {
            Some(last) if chunk.len() == CHUNK => from = last.seq + 1,
            _ => {
                return Ok(Verified {
                    entries: v.verified(),
                    head: v.head().to_string(),
                    broken: None,
                });
            }
        }
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
    admin(session)?;
    let q = query_params(query, &["from"])?;
    let from = match q.get("from") {
        None => 1,
        Some(v) => v.parse::<u64>().ok().filter(|n| *n >= 1).ok_or_else(|| {
            ApiError::bad_request(
                "from".to_owned(),
                format!("from is {v:?}; expected an entry number (1 or more)"),
            )
        })?,
    };
    let store: Arc<dyn GateStore> = gate(state)?.store().clone();
    let (entries, verified) = tokio::task::spawn_blocking(move || {
        Ok::<_, holdfast_store::StoreError>((store.audit(from, PAGE)?, verify_all(&*store)?))
    })
    .await
    .map_err(|e| ApiError::internal("reading the audit log", &e))?
    .map_err(|e| ApiError::from(GateError::from(e)))?;

    let mut h = Html::new();
    match &verified.broken {
        None => h.el(
            "p",
            &[("id", "verification"), ("class", "accepted")],
            &format!(
                "Intact: all {} entries verified; head {}.",
                verified.entries, verified.head
            ),
        ),
        Some(b) => h.el(
            "p",
            &[
                ("id", "verification"),
                ("class", "refused"),
                ("role", "alert"),
            ],
            &format!("BROKEN after {} verified entries: {b}", verified.entries),
        ),
    };
    h.open("p", &[]);
    h.link("/console/audit/export", "Export the whole log (JSON lines)");
    h.close("p");
    table(&mut h, &entries);
    if entries.len() == PAGE
        && let Some(last) = entries.last()
    {
        h.open("p", &[])
            .link(
                &format!("/console/audit?from={}", last.seq + 1),
                "Next entries",
            )
            .close("p");
    }
    Ok(page("Audit log", Some(session), h))
}

fn table(h: &mut Html, entries: &[AuditEntry]) {
    h.open("table", &[("class", "audit"), ("id", "audit")]);
    h.open("tr", &[]);
    for c in ["#", "Time", "What", "Request", "By", "Details", "Hash"] {
        h.el("th", &[("scope", "col")], c);
    }
    h.close("tr");
    for e in entries {
        h.open("tr", &[]);
        h.el("td", &[], &e.seq.to_string());
        h.el("td", &[], &utc(e.at));
        h.el("td", &[], e.kind.name());
        h.open("td", &[("class", "mono small")]);
        if let Some(id) = &e.request_id {
            h.link(
                &format!("/console/requests/{}", super::html::url_component(id)),
                &super::pages::short(id),
            );
        }
        h.close("td");
        h.el("td", &[], &e.actor);
        h.el("td", &[("class", "mono small")], &e.details);
        h.el("td", &[("class", "mono small")], &e.hash.to_string());
        h.close("tr");
    }
    h.close("table");
}

/// `GET /console/audit/export`: every entry, one JSON object a line, read and sent a chunk
/// at a time.
pub async fn export(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let session = match signed_in(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return *r,
    };
    if let Err(e) = admin(&session) {
        return error_page(Some(&session), &e);
    }
    let store: Arc<dyn GateStore> = match gate(&state) {
        Ok(g) => g.store().clone(),
        Err(e) => return error_page(Some(&session), &e),
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(2);
    tokio::task::spawn_blocking(move || {
        let mut from = 1;
        loop {
            let chunk = match store.audit(from, CHUNK) {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(target: "server::console", error = %e, "audit export failed");
                    let _ = tx.blocking_send(Err(std::io::Error::other(
                        "the audit log could not be read",
                    )));
                    return;
                }
            };
            let mut buf = Vec::new();
            for e in &chunk {
                if let Ok(line) = serde_json::to_vec(e) {
                    buf.extend_from_slice(&line);
                    buf.push(b'\n');
                }
            }
            if tx.blocking_send(Ok(buf)).is_err() {
                return;
            }
            match chunk.last() {
                Some(last) if chunk.len() == CHUNK => from = last.seq + 1,
                _ => return,
            }
        }
    });
    // Fused: the compression layer polls the body again after its end, which a bare
    // `unfold` answers with a panic.
    let stream =
        futures_util::StreamExt::fuse(futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        }));
    (
        [
            (header::CONTENT_TYPE, "application/x-ndjson"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"holdfast-audit.jsonl\"",
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}
