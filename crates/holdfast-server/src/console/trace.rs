//! Investigate → trace (`/console/trace?seed=...&policy=...&max_hops=...&max_nodes=...`):
//! runs Holdfast's tracer (`holdfast_trace`, the engine of `holdfast trace`) over the
//! server's transfer store from a theft transaction or the thief's address, with the chosen
//! taint policy and hop limit; shows the freeze targets (labelled service deposits) with
//! their evidence paths hop by hop beside the graph ([`super::trace_graph`]); exports the
//! same trace as CSV, GraphML or DOT (`/console/trace/export?format=...`, the tracer's own
//! writers). The trace is deterministic, so an export re-runs it and gets the same one.
//!
//! Bounds: `max_hops` 1 to 64 (the tracer's), `max_nodes` (addresses kept) 1 to
//! [`MAX_NODES`], at most [`MAX_TRANSFERS`] transfers loaded, at most [`MAX_RUNNING`] traces
//! at once; every error names the field and the value.

use std::collections::BTreeMap;
use std::sync::Arc;

use alloy_primitives::U256;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use holdfast_primitives::Asset;
use holdfast_store::Store;
use holdfast_trace::output::Format;
use holdfast_trace::{LoadOptions, LoadStats, Policy, Seed, Trace, TraceError, TraceOptions};

use super::html::{Html, url_component};
use super::{Session, error_page, page, signed_in, signed_in_page};
use crate::AppState;
use crate::error::{ApiError, query_params};

/// Most addresses a console trace keeps (`max_nodes`): a graph a browser draws at once.
pub const MAX_NODES: usize = 5_000;
/// `max_nodes` when not given.
pub const DEFAULT_NODES: usize = 2_000;
/// `max_hops` when not given (as `holdfast trace`).
pub const DEFAULT_HOPS: u32 = 10;
/// Most transfers loaded for one console trace.
pub const MAX_TRANSFERS: usize = 1_000_000;
/// Most console traces running at once (each holds its graph in memory); more wait up to
/// [`TRACE_WAIT`], then are refused.
pub const MAX_RUNNING: usize = 2;
/// How long a trace waits for one of the [`MAX_RUNNING`] places.
pub const TRACE_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

static RUNNING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_RUNNING);

const FIELDS: [&str; 7] = [
    "seed",
    "policy",
    "max_hops",
    "max_nodes",
    "asset",
    "chain_id",
    "format",
];

/// What the investigator asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceQuery {
    pub seed: Seed,
    pub options: TraceOptions,
    pub chain_id: Option<u64>,
}

fn invalid(field: &str, value: &str, expected: &str) -> ApiError {
    ApiError::bad_request(
        field.to_owned(),
        format!("{field} is {value:?}: expected {expected}"),
    )
}

fn from_trace_error(e: TraceError) -> ApiError {
    match e {
        TraceError::Invalid {
            field,
            value,
            expected,
        } => invalid(field, &value, &expected),
        TraceError::UnknownSeed { .. } => ApiError::bad_request("seed".to_owned(), e.to_string()),
        TraceError::TooLarge { .. } => ApiError::bad_request(None, e.to_string()),
        e => ApiError::internal("tracing", &e),
    }
}

/// The form's fields as given (for refilling the form).
fn given<'a>(q: &'a BTreeMap<String, String>, field: &str) -> &'a str {
    q.get(field).map_or("", |v| v.trim())
}

/// Parses the query; `None` when no seed is given (the empty form).
pub fn parse(q: &BTreeMap<String, String>) -> Result<Option<TraceQuery>, ApiError> {
    let seed = given(q, "seed");
    if seed.is_empty() {
        return Ok(None);
    }
    let mut seed = Seed::parse(seed).map_err(from_trace_error)?;
    let policy = match given(q, "policy") {
        "" => Policy::Haircut,
        p => p.parse::<Policy>().map_err(from_trace_error)?,
    };
    let max_hops = match given(q, "max_hops") {
        "" => DEFAULT_HOPS,
        h => h
            .parse::<u32>()
            .ok()
            .filter(|h| (1..=holdfast_trace::policy::MAX_HOPS).contains(h))
            .ok_or_else(|| {
                invalid(
                    "max_hops",
                    h,
                    &format!(
                        "a whole number from 1 to {}",
                        holdfast_trace::policy::MAX_HOPS
                    ),
                )
            })?,
    };
    let max_nodes = match given(q, "max_nodes") {
        "" => DEFAULT_NODES,
        n => n
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_NODES).contains(n))
            .ok_or_else(|| {
                invalid(
                    "max_nodes",
                    n,
                    &format!("a whole number from 1 to {MAX_NODES}"),
                )
            })?,
    };
    seed.asset = match given(q, "asset") {
        "" => None,
        a => Some(holdfast_trace::parse_asset(a).map_err(from_trace_error)?),
    };
    let chain_id = match given(q, "chain_id") {
        "" => None,
        c => Some(
            c.parse::<u64>()
                .map_err(|_| invalid("chain_id", c, "a chain id (a whole number)"))?,
        ),
    };
    let options = TraceOptions {
        max_hops,
        max_addresses: max_nodes,
        ..TraceOptions::with_policy(policy)
    };
    options.validate().map_err(from_trace_error)?;
    Ok(Some(TraceQuery {
        seed,
        options,
        chain_id,
    }))
}

fn store(state: &AppState) -> Result<Arc<dyn Store>, ApiError> {
    state.transfers.clone().ok_or_else(|| {
        ApiError::not_found(
            "tracing needs the transfer store: start `holdfast serve` with --trace (or --watch-config)",
        )
    })
}

/// The chain to trace: the one given if the store holds it, else the only one it holds.
fn chain(store: &dyn Store, given: Option<u64>) -> Result<u64, ApiError> {
    let held = store
        .chains()
        .map_err(|e| ApiError::internal("listing the store's chains", &e))?;
    let list = held
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    match (given, held.as_slice()) {
        (Some(id), _) if held.contains(&id) => Ok(id),
        (_, []) => Err(ApiError::not_found(
            "the store holds no transfers: run `holdfast ingest` or `holdfast import transfers` first",
        )),
        (Some(id), _) => Err(invalid(
            "chain_id",
            &id.to_string(),
            &format!("a chain the store holds: {list}"),
        )),
        (None, [only]) => Ok(*only),
        (None, _) => Err(ApiError::bad_request(
            "chain_id".to_owned(),
            format!("the store holds chains {list}: choose one with chain_id"),
        )),
    }
}

/// One of the [`MAX_RUNNING`] places a trace runs in, waited for at most `wait`; refused
/// with 503 when none was freed within it. The trace runs while it is held.
pub async fn place(
    wait: std::time::Duration,
) -> Result<tokio::sync::SemaphorePermit<'static>, ApiError> {
    tokio::time::timeout(wait, RUNNING.acquire())
        .await
        .ok()
        .and_then(Result::ok)
        .ok_or_else(|| ApiError {
            status: axum::http::StatusCode::SERVICE_UNAVAILABLE,
            code: "busy",
            message: format!(
                "{MAX_RUNNING} traces are running and none ended within {} s: try again shortly",
                wait.as_secs()
            ),
            field: None,
        })
}

/// Runs the trace on a blocking thread: the store's transfers around the seed, the
/// server's current intel as the services. Waits up to [`TRACE_WAIT`] for a [`place`].
pub async fn run(state: &AppState, q: &TraceQuery) -> Result<(Trace, LoadStats), ApiError> {
    run_within(state, q, TRACE_WAIT).await
}

/// [`run`], waiting up to `wait` for a place.
pub async fn run_within(
    state: &AppState,
    q: &TraceQuery,
    wait: std::time::Duration,
) -> Result<(Trace, LoadStats), ApiError> {
    let store = store(state)?;
    let intel = state.intel.load().index.clone();
    let q = q.clone();
    let place = place(wait).await?;
    tokio::task::spawn_blocking(move || {
        let _place = place;
        let chain_id = chain(store.as_ref(), q.chain_id)?;
        let seeds = [q.seed];
        let load = LoadOptions {
            max_transfers: MAX_TRANSFERS,
            ..LoadOptions::default()
        };
        let (graph, stats) = holdfast_trace::load_graph(
            store.as_ref(),
            chain_id,
            &seeds,
            &q.options,
            &load,
            intel.as_ref(),
            &mut |_| {},
        )
        .map_err(from_trace_error)?;
        let t = holdfast_trace::trace(&graph, &seeds, &q.options, intel.as_ref())
            .map_err(from_trace_error)?;
        Ok((t, stats))
    })
    .await
    .map_err(|e| ApiError::internal("the trace task", &e))?
}

/// An amount in words: ether with its wei for the native asset, the token's smallest units
/// naming the token otherwise (the tracer knows no decimals).
pub fn amount_text(asset: &Asset, v: U256) -> String {
    match asset {
        Asset::Native => {
            let wei = U256::from(10u64).pow(U256::from(18u64));
            let whole = v / wei;
            let frac = format!("{:018}", v % wei);
            let frac = frac.trim_end_matches('0');
            if frac.is_empty() {
                format!("{whole} ETH ({v} wei)")
            } else {
                format!("{whole}.{frac} ETH ({v} wei)")
            }
        }
        other => format!("{v} units of {other}"),
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

/// The query string of this trace (for the export links).
fn query_of(q: &BTreeMap<String, String>) -> String {
    FIELDS
        .iter()
        .filter(|f| **f != "format")
        .filter_map(|f| q.get(*f).map(|v| (f, v.trim())))
        .filter(|(_, v)| !v.is_empty())
        .map(|(f, v)| format!("{f}={}", url_component(v)))
        .collect::<Vec<_>>()
        .join("&")
}

async fn render(
    state: &AppState,
    session: &Session,
    query: Option<&str>,
) -> Result<Response, ApiError> {
    let q = query_params(query, &FIELDS)?;
    let mut h = Html::new();
    form(&mut h, &q);
    // A bad field is shown above the form, still filled in.
    let parsed = match parse(&q) {
        Ok(p) => p,
        Err(e) => {
            h.el("p", &[("class", "refused"), ("role", "alert")], &e.message);
            let mut r = page("Trace stolen funds", Some(session), h);
            *r.status_mut() = e.status;
            return Ok(r);
        }
    };
    if let Some(tq) = parsed {
        let (t, stats) = match run(state, &tq).await {
            Ok(x) => x,
            Err(e) => {
                h.el("p", &[("class", "refused"), ("role", "alert")], &e.message);
                let mut r = page("Trace stolen funds", Some(session), h);
                *r.status_mut() = e.status;
                return Ok(r);
            }
        };
        let intel = state.intel.load();
        summary(&mut h, &t, &stats, &query_of(&q));
        h.open("div", &[("class", "trace-layout")]);
        h.open(
            "section",
            &[("class", "graph"), ("aria-labelledby", "graph-title")],
        );
        h.el("h2", &[("id", "graph-title")], "Taint graph");
        h.el(
            "p",
            &[("class", "small")],
            "Columns are hops from the seed. Drag (or the arrow keys) to pan, the wheel, the buttons or + and - to zoom; click an address (or Tab to it and press Enter) for its labels and tainted amounts.",
        );
        h.open("div", &[("class", "zoom")]);
        for (id, text) in [
            ("zoom-in", "Zoom in"),
            ("zoom-out", "Zoom out"),
            ("zoom-reset", "Fit"),
        ] {
            h.el("button", &[("type", "button"), ("id", id)], text);
        }
        h.close("div");
        let layout = super::trace_graph::layout(&t);
        super::trace_graph::svg(&mut h, &t, &layout, &intel.index);
        h.open(
            "aside",
            &[
                ("id", "node-details"),
                ("aria-live", "polite"),
                ("aria-label", "selected address"),
            ],
        );
        h.el("p", &[("class", "small")], "No address selected.");
        h.close("aside");
        h.close("section");
        targets(&mut h, &t);
        h.close("div");
        h.el(
            "script",
            &[("type", "module"), ("src", "/console/assets/trace.js")],
            "",
        );
    }
    Ok(page("Trace stolen funds", Some(session), h))
}

fn form(h: &mut Html, q: &BTreeMap<String, String>) {
    h.open(
        "form",
        &[
            ("method", "get"),
            ("action", "/console/trace"),
            ("class", "filters"),
            ("id", "trace-form"),
        ],
    );
    h.el(
        "label",
        &[("for", "seed")],
        "Theft transaction or thief's address",
    );
    h.void(
        "input",
        &[
            ("id", "seed"),
            ("name", "seed"),
            ("value", given(q, "seed")),
            ("size", "68"),
            ("required", "required"),
        ],
    );
    h.el("label", &[("for", "policy")], "Policy");
    h.open("select", &[("id", "policy"), ("name", "policy")]);
    let chosen = match given(q, "policy") {
        "" => Policy::Haircut.name(),
        p => p,
    };
    for p in Policy::ALL {
        if p.name() == chosen {
            h.el(
                "option",
                &[("value", p.name()), ("selected", "selected")],
                p.name(),
            );
        } else {
            h.el("option", &[("value", p.name())], p.name());
        }
    }
    h.close("select");
    let default_hops = DEFAULT_HOPS.to_string();
    let default_nodes = DEFAULT_NODES.to_string();
    for (field, label, default, size) in [
        ("max_hops", "Hop limit", default_hops.as_str(), "4"),
        ("max_nodes", "Most addresses", default_nodes.as_str(), "6"),
        ("asset", "Asset (empty: all)", "", "12"),
        ("chain_id", "Chain id (optional)", "", "8"),
    ] {
        let value = match given(q, field) {
            "" => default,
            v => v,
        };
        h.el("label", &[("for", field)], label);
        h.void(
            "input",
            &[
                ("id", field),
                ("name", field),
                ("value", value),
                ("size", size),
            ],
        );
    }
    h.el("button", &[("type", "submit")], "Trace");
    h.close("form");
}

fn summary(h: &mut Html, t: &Trace, stats: &LoadStats, query: &str) {
    h.open(
        "section",
        &[("id", "trace-summary"), ("aria-label", "summary")],
    );
    let seeded = t
        .seeded
        .iter()
        .map(|a| amount_text(&a.asset, a.amount))
        .collect::<Vec<_>>()
        .join(", ");
    h.el(
        "p",
        &[],
        &format!(
            "Trace {} ({} policy, at most {} hops): {} seeded; {} addresses reached, {} freeze targets, {} bridge exits, {} mixers; {} transfers loaded.",
            t.id,
            t.policy,
            t.options.max_hops,
            if seeded.is_empty() { "nothing".to_owned() } else { seeded },
            t.stats.addresses_reached,
            t.targets.len(),
            t.exits.len(),
            t.mixers.len(),
            stats.transfers,
        ),
    );
    if t.stats.truncated {
        h.el(
            "p",
            &[("class", "refused"), ("role", "alert")],
            &format!(
                "The trace reached max_nodes = {} addresses and stopped adding addresses: what lies further is not shown. Lower the hop limit or raise max_nodes (at most {MAX_NODES}).",
                t.options.max_addresses
            ),
        );
    }
    if stats.truncated {
        h.el(
            "p",
            &[("class", "refused"), ("role", "alert")],
            &format!(
                "Loading stopped at {MAX_TRANSFERS} transfers: the trace is partial. Lower the hop limit."
            ),
        );
    }
    if !stats.outflows_cut.is_empty() {
        let list = stats.outflows_cut_text();
        h.el(
            "p",
            &[("class", "refused"), ("role", "alert")],
            &format!(
                "{} time(s) an address sent more than the fan-out cap ({}) of transfers of an asset, not read: taint of that asset there is shown capped, and a seed's are not followed (start the seed at the theft's block): {}.",
                stats.outflows_cut.len(),
                t.options.fan_out_cap,
                list
            ),
        );
    }
    h.open("p", &[("class", "exports")]);
    h.text("Export: ");
    for (format, text) in [("csv", "CSV"), ("graphml", "GraphML"), ("dot", "DOT")] {
        h.el(
            "a",
            &[
                (
                    "href",
                    &format!("/console/trace/export?{query}&format={format}"),
                ),
                ("download", ""),
                ("id", &format!("export-{format}")),
            ],
            text,
        );
        h.text(" ");
    }
    h.close("p");
    h.close("section");
}

fn targets(h: &mut Html, t: &Trace) {
    h.open(
        "section",
        &[("id", "targets"), ("aria-labelledby", "targets-title")],
    );
    h.el("h2", &[("id", "targets-title")], "Freeze targets");
    if t.targets.is_empty() {
        h.el("p", &[], "No labelled service deposit was reached.");
    }
    for (kind, list) in [
        ("freeze target", &t.targets),
        ("bridge exit", &t.exits),
        ("mixer", &t.mixers),
    ] {
        for target in list.iter() {
            h.open(
                "article",
                &[
                    ("class", "target"),
                    ("data-deposit", &target.deposit.to_checksum(None)),
                    ("data-kind", kind),
                ],
            );
            h.el(
                "h3",
                &[("class", "service")],
                &format!(
                    "{} ({}, {kind})",
                    target.service.name, target.service.category
                ),
            );
            h.open("dl", &[]);
            h.el("dt", &[], "Deposit");
            h.el(
                "dd",
                &[("class", "deposit")],
                &target.deposit.to_checksum(None),
            );
            h.el("dt", &[], "Tainted");
            h.open("dd", &[("class", "amounts")]);
            for a in &target.amounts {
                h.el(
                    "div",
                    &[("class", "amount"), ("data-wei", &a.amount.to_string())],
                    &format!("{} (seed {})", amount_text(&a.asset, a.amount), a.source),
                );
            }
            h.close("dd");
            h.el("dt", &[], "First arrival");
            h.el(
                "dd",
                &[],
                &format!("block {}, tx {}", target.first_block, target.first_tx),
            );
            h.close("dl");
            h.el("h4", &[], "Evidence path");
            h.open("ol", &[("class", "path")]);
            for hop in &target.path {
                h.el(
                    "li",
                    &[("class", "mono small")],
                    &format!(
                        "{} → {}: {} tainted of {}; block {}, tx {}",
                        hop.from,
                        hop.to,
                        amount_text(&hop.asset, hop.tainted),
                        amount_text(&hop.asset, hop.amount),
                        hop.block,
                        hop.tx_hash
                    ),
                );
            }
            h.close("ol");
            h.close("article");
        }
    }
    h.close("section");
}

/// `GET /console/trace/export?format=csv|graphml|dot&...`: the trace in that format, as a
/// download.
pub async fn export(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let session = match signed_in(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let result = async {
        let q = query_params(query.as_deref(), &FIELDS)?;
        let format = match given(&q, "format") {
            "csv" => Format::Csv,
            "graphml" => Format::GraphMl,
            "dot" => Format::Dot,
            f => return Err(invalid("format", f, "csv, graphml or dot")),
        };
        let tq = parse(&q)?.ok_or_else(|| {
            ApiError::bad_request(
                "seed".to_owned(),
                "seed is missing: the export needs a seed",
            )
        })?;
        let (t, _) = run(&state, &tq).await?;
        let mut out = Vec::new();
        holdfast_trace::output::write(&t, format, &mut out)
            .map_err(|e| ApiError::internal("writing the export", &e))?;
        let (ct, ext) = match format {
            Format::Csv => ("text/csv; charset=utf-8", "csv"),
            Format::GraphMl => ("application/graphml+xml; charset=utf-8", "graphml"),
            _ => ("text/vnd.graphviz; charset=utf-8", "dot"),
        };
        Ok((
            [
                (header::CONTENT_TYPE, ct.to_owned()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"trace-{}.{ext}\"", t.id),
                ),
            ],
            out,
        )
            .into_response())
    }
    .await;
    match result {
        Ok(r) => r,
        Err(e) => error_page(Some(&session), &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    const THIEF: &str = "0x1111111111111111111111111111111111111111";

    #[test]
    fn bad_bounds_name_the_field_and_the_value() {
        for (field, value, needle) in [
            (
                "max_hops",
                "0",
                "max_hops is \"0\": expected a whole number from 1 to 64",
            ),
            (
                "max_hops",
                "65",
                "max_hops is \"65\": expected a whole number from 1 to 64",
            ),
            (
                "max_nodes",
                "5001",
                "max_nodes is \"5001\": expected a whole number from 1 to 5000",
            ),
            ("max_nodes", "lots", "max_nodes is \"lots\""),
            (
                "policy",
                "mine",
                "policy is \"mine\": expected one of poison",
            ),
            ("asset", "gold", "asset is \"gold\""),
            ("chain_id", "x", "chain_id is \"x\""),
        ] {
            let e = parse(&q(&[("seed", THIEF), (field, value)])).expect_err(field);
            assert_eq!(e.field.as_deref(), Some(field));
            assert!(e.message.contains(needle), "{field}: {}", e.message);
        }
        let e = parse(&q(&[("seed", "0xabc")])).expect_err("seed");
        assert_eq!(e.field.as_deref(), Some("seed"));
        assert!(e.message.contains("seed is \"0xabc\""), "{}", e.message);
        assert_eq!(parse(&q(&[])).expect("empty"), None);
        let ok = parse(&q(&[
            ("seed", THIEF),
            ("max_hops", "3"),
            ("max_nodes", "5000"),
        ]))
        .expect("ok")
        .expect("some");
        assert_eq!(ok.options.max_hops, 3);
        assert_eq!(ok.options.max_addresses, 5000);
        assert_eq!(ok.options.policy, Policy::Haircut);
    }

    #[test]
    fn amounts_in_words() {
        assert_eq!(
            amount_text(&Asset::Native, U256::from(2_500_000_000_000_000_000u128)),
            "2.5 ETH (2500000000000000000 wei)"
        );
        assert_eq!(amount_text(&Asset::Native, U256::ZERO), "0 ETH (0 wei)");
    }
}
