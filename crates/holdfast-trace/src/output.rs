//! A [`Trace`] written as JSON, CSV (one row per address, seed and asset), Graphviz DOT or
//! GraphML (the taint tree: first-arrival transfers, services highlighted).

use std::fmt::Write as _;
use std::io::Write;

use alloy_primitives::Address;

use crate::TraceError;
use crate::result::{Role, Trace};

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
    Dot,
    GraphMl,
}

impl Format {
    pub fn parse(s: &str) -> Result<Format, TraceError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "json" => Ok(Format::Json),
            "csv" => Ok(Format::Csv),
            "dot" | "graphviz" => Ok(Format::Dot),
            "graphml" => Ok(Format::GraphMl),
            _ => Err(TraceError::Invalid {
                field: "format",
                value: s.to_owned(),
                expected: "json, csv, dot or graphml".into(),
            }),
        }
    }
    pub const fn name(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Csv => "csv",
            Format::Dot => "dot",
            Format::GraphMl => "graphml",
        }
    }
}

pub fn write(trace: &Trace, format: Format, out: &mut dyn Write) -> Result<(), TraceError> {
    let err = |e: String| TraceError::Output {
        format: format.name(),
        message: e,
    };
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, trace).map_err(|e| err(e.to_string()))?;
            writeln!(out).map_err(|e| err(e.to_string()))
        }
        Format::Csv => csv(trace, out).map_err(|e| err(e.to_string())),
        Format::Dot => out
            .write_all(dot(trace).as_bytes())
            .map_err(|e| err(e.to_string())),
        Format::GraphMl => out
            .write_all(graphml(trace).as_bytes())
            .map_err(|e| err(e.to_string())),
    }
}

fn role_name(r: Role) -> &'static str {
    match r {
        Role::Seed => "seed",
        Role::Intermediate => "intermediate",
        Role::Service => "service",
        Role::Mixer => "mixer",
        Role::Bridge => "bridge",
        Role::Capped => "capped",
        Role::HopLimit => "hop-limit",
    }
}

fn csv(trace: &Trace, out: &mut dyn Write) -> Result<(), csv::Error> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record([
        "address",
        "role",
        "hops",
        "service",
        "category",
        "source",
        "asset",
        "received",
        "held",
        "first_tx",
        "first_block",
    ])?;
    for a in &trace.addresses {
        let service = a
            .service
            .as_ref()
            .map(|s| s.name.clone())
            .unwrap_or_default();
        let category = a
            .service
            .as_ref()
            .map(|s| s.category.to_string())
            .unwrap_or_default();
        let first_tx = a.first_tx.map(|t| t.to_string()).unwrap_or_default();
        let first_block = a.first_block.map(|b| b.to_string()).unwrap_or_default();
        let mut rows: Vec<(u16, String, String, String)> = a
            .received
            .iter()
            .map(|r| {
                let held = a
                    .held
                    .iter()
                    .find(|h| h.source == r.source && h.asset == r.asset)
                    .map(|h| h.amount.to_string())
                    .unwrap_or_else(|| "0".into());
                (r.source, r.asset.to_string(), r.amount.to_string(), held)
            })
            .collect();
        if rows.is_empty() {
            rows.push((0, String::new(), String::new(), String::new()));
        }
        for (source, asset, received, held) in rows {
            w.write_record([
                a.address.to_checksum(None),
                role_name(a.role).into(),
                a.hops.to_string(),
                service.clone(),
                category.clone(),
                source.to_string(),
                asset,
                received,
                held,
                first_tx.clone(),
                first_block.clone(),
            ])?;
        }
    }
    w.flush()?;
    Ok(())
}

/// Every address of the graph outputs: those reached and both ends of each tree hop, once.
fn nodes(trace: &Trace) -> Vec<Address> {
    let mut nodes: Vec<Address> = trace.addresses.iter().map(|a| a.address).collect();
    for h in &trace.tree {
        nodes.push(h.from);
        nodes.push(h.to);
    }
    nodes.sort();
    nodes.dedup();
    nodes
}

fn node_label(trace: &Trace, a: &Address) -> (String, &'static str) {
    match trace.reached(a) {
        Some(r) => {
            let name = r
                .service
                .as_ref()
                .map(|s| format!("\\n{}", s.name))
                .unwrap_or_default();
            (format!("{a}{name}"), role_name(r.role))
        }
        None => (a.to_string(), "venue"),
    }
}

fn escape_dot(s: &str) -> String {
    s.replace('"', "\\\"")
}

/// The taint tree in Graphviz DOT.
pub fn dot(trace: &Trace) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "digraph trace_{} {{", trace.id);
    let _ = writeln!(s, "  rankdir=LR; node [shape=box, fontname=monospace];");
    let nodes = nodes(trace);
    for a in &nodes {
        let (label, role) = node_label(trace, a);
        let color = match role {
            "seed" => "red",
            "service" => "green",
            "mixer" | "bridge" => "orange",
            "capped" => "gray",
            _ => "black",
        };
        let _ = writeln!(
            s,
            "  \"{a}\" [label=\"{}\", color={color}, role=\"{role}\"];",
            escape_dot(&label)
        );
    }
    for h in &trace.tree {
        let _ = writeln!(
            s,
            "  \"{}\" -> \"{}\" [label=\"{} {}\\ntainted {}\\nblock {}\", tx=\"{}\"];",
            h.from, h.to, h.amount, h.asset, h.tainted, h.block, h.tx_hash
        );
    }
    s.push_str("}\n");
    s
}

fn escape_xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The taint tree in GraphML.
pub fn graphml(trace: &Trace) -> String {
    let mut s = String::new();
    s.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    s.push_str("<graphml xmlns=\"http://graphml.graphdrawing.org/xmlns\">\n");
    for (id, on, name) in [
        ("role", "node", "role"),
        ("service", "node", "service"),
        ("hops", "node", "hops"),
        ("tx", "edge", "tx_hash"),
        ("block", "edge", "block"),
        ("asset", "edge", "asset"),
        ("amount", "edge", "amount"),
        ("tainted", "edge", "tainted"),
    ] {
        let _ = writeln!(
            s,
            "  <key id=\"{id}\" for=\"{on}\" attr.name=\"{name}\" attr.type=\"string\"/>"
        );
    }
    let _ = writeln!(
        s,
        "  <graph id=\"trace-{}\" edgedefault=\"directed\">",
        trace.id
    );
    let nodes = nodes(trace);
    for a in &nodes {
        let (_, role) = node_label(trace, a);
        let r = trace.reached(a);
        let service = r
            .and_then(|r| r.service.as_ref())
            .map(|x| escape_xml(&x.name))
            .unwrap_or_default();
        let hops = r.map(|r| r.hops.to_string()).unwrap_or_default();
        let _ = writeln!(
            s,
            "    <node id=\"{a}\"><data key=\"role\">{role}</data><data key=\"service\">{service}</data><data key=\"hops\">{hops}</data></node>"
        );
    }
    for (i, h) in trace.tree.iter().enumerate() {
        let _ = writeln!(
            s,
            "    <edge id=\"e{i}\" source=\"{}\" target=\"{}\"><data key=\"tx\">{}</data><data key=\"block\">{}</data><data key=\"asset\">{}</data><data key=\"amount\">{}</data><data key=\"tainted\">{}</data></edge>",
            h.from, h.to, h.tx_hash, h.block, h.asset, h.amount, h.tainted
        );
    }
    s.push_str("  </graph>\n</graphml>\n");
    s
}
