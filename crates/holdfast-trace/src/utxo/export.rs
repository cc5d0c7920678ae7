//! A UTXO trace as JSON, CSV, Graphviz DOT or GraphML: the EVM output's formats, role names
//! and escaping (`crate::output`); the nodes are outputs (`txid:vout`) and the edges the
//! spends that carried the taint (from the output an output was traced from).

use std::fmt::Write as _;
use std::io::Write;

use super::result::{OutputState, UtxoTrace};
use crate::TraceError;
use crate::output::{Format, csv_text, escape_dot, escape_xml, graphml_open, role_name};

fn state_name(s: OutputState) -> &'static str {
    match s {
        OutputState::Spent => "spent",
        OutputState::Unspent => "unspent",
        OutputState::Burned => "burned",
        OutputState::SpenderUnknown => "spender-unknown",
        OutputState::NotFollowed => "not-followed",
    }
}

/// Writes `trace` in `format`.
pub fn write_utxo(
    trace: &UtxoTrace,
    format: Format,
    out: &mut dyn Write,
) -> Result<(), TraceError> {
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

fn csv(trace: &UtxoTrace, out: &mut dyn Write) -> Result<(), csv::Error> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record([
        "outpoint",
        "height",
        "position",
        "value",
        "tainted",
        "address",
        "hops",
        "role",
        "state",
        "service",
        "category",
        "via_member",
        "from",
    ])?;
    for o in &trace.outputs {
        w.write_record([
            o.outpoint.clone(),
            o.height.to_string(),
            o.position.to_string(),
            o.value.to_string(),
            o.tainted.to_string(),
            o.address.as_deref().map(csv_text).unwrap_or_default(),
            o.hops.to_string(),
            role_name(o.role).into(),
            state_name(o.state).into(),
            o.service
                .as_ref()
                .map(|s| csv_text(&s.name))
                .unwrap_or_default(),
            o.service
                .as_ref()
                .map(|s| s.category.to_string())
                .unwrap_or_default(),
            o.via_member.as_deref().map(csv_text).unwrap_or_default(),
            o.from.clone().unwrap_or_default(),
        ])?;
    }
    w.flush()?;
    Ok(())
}

fn dot(trace: &UtxoTrace) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "digraph trace_{} {{", trace.id);
    let _ = writeln!(s, "  rankdir=LR; node [shape=box, fontname=monospace];");
    for o in &trace.outputs {
        let role = role_name(o.role);
        let color = match role {
            "seed" => "red",
            "service" => "green",
            "mixer" | "bridge" => "orange",
            "capped" => "gray",
            _ => "black",
        };
        let addr = o.address.as_deref().map(escape_dot).unwrap_or_default();
        let service = o
            .service
            .as_ref()
            .map(|x| format!("\\n{}", escape_dot(&x.name)))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "  \"{}\" [label=\"{}\\n{addr}{service}\\ntainted {} of {}\", color={color}, role=\"{role}\", state=\"{}\"];",
            o.outpoint,
            o.outpoint,
            o.tainted,
            o.value,
            state_name(o.state)
        );
    }
    for o in &trace.outputs {
        if let Some(from) = &o.from {
            let _ = writeln!(
                s,
                "  \"{from}\" -> \"{}\" [label=\"tainted {}\\nblock {}\"];",
                o.outpoint, o.tainted, o.height
            );
        }
    }
    s.push_str("}\n");
    s
}

fn graphml(trace: &UtxoTrace) -> String {
    let mut s = graphml_open(
        &[
            ("role", "node", "role"),
            ("state", "node", "state"),
            ("address", "node", "address"),
            ("service", "node", "service"),
            ("hops", "node", "hops"),
            ("value", "node", "value"),
            ("tainted", "node", "tainted"),
            ("block", "edge", "block"),
            ("carried", "edge", "tainted"),
        ],
        &trace.id,
    );
    for o in &trace.outputs {
        let _ = writeln!(
            s,
            "    <node id=\"{}\"><data key=\"role\">{}</data><data key=\"state\">{}</data><data key=\"address\">{}</data><data key=\"service\">{}</data><data key=\"hops\">{}</data><data key=\"value\">{}</data><data key=\"tainted\">{}</data></node>",
            o.outpoint,
            role_name(o.role),
            state_name(o.state),
            o.address.as_deref().map(escape_xml).unwrap_or_default(),
            o.service
                .as_ref()
                .map(|x| escape_xml(&x.name))
                .unwrap_or_default(),
            o.hops,
            o.value,
            o.tainted
        );
    }
    for (i, o) in trace.outputs.iter().enumerate() {
        if let Some(from) = &o.from {
            let _ = writeln!(
                s,
                "    <edge id=\"e{i}\" source=\"{from}\" target=\"{}\"><data key=\"block\">{}</data><data key=\"carried\">{}</data></edge>",
                o.outpoint, o.height, o.tainted
            );
        }
    }
    s.push_str("  </graph>\n</graphml>\n");
    s
}
