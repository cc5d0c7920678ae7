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

pub(crate) fn role_name(r: Role) -> &'static str {
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
            .map(|s| csv_text(&s.name))
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

/// Text from labels in a CSV cell: a cell starting with `=`, `+`, `-`, `@`, a tab or a
/// carriage return is a formula to a spreadsheet (CSV injection), so it gets a leading `'`
/// (OWASP's advice). Quoting is the `csv` writer's.
pub(crate) fn csv_text(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_owned()
    }
}

/// Every address of the graph outputs: those reached and both ends of each tree hop, once,
/// in address order.
pub fn nodes(trace: &Trace) -> Vec<Address> {
    let mut nodes: Vec<Address> = trace.addresses.iter().map(|a| a.address).collect();
    for h in &trace.tree {
        nodes.push(h.from);
        nodes.push(h.to);
    }
    nodes.sort();
    nodes.dedup();
    nodes
}

/// A node's DOT label (escaped: the address, and the service's name on a second line) and
/// its role.
fn node_label(trace: &Trace, a: &Address) -> (String, &'static str) {
    match trace.reached(a) {
        Some(r) => {
            let name = r
                .service
                .as_ref()
                .map(|s| format!("\\n{}", escape_dot(&s.name)))
                .unwrap_or_default();
            (format!("{a}{name}"), role_name(r.role))
        }
        None => (a.to_string(), "venue"),
    }
}

/// `s` inside a DOT double-quoted string: `\` and `"` escaped (a trailing backslash would
/// otherwise escape the closing quote, and Graphviz reads `\N`, `\G`, `\l` in labels), a
/// line break as Graphviz's `\n`, other control characters as U+FFFD.
pub fn escape_dot(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
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
            "  \"{a}\" [label=\"{label}\", color={color}, role=\"{role}\"];"
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

/// `s` as XML text or attribute value: markup characters escaped, and characters XML 1.0
/// does not allow at all (control characters but tab and line breaks, U+FFFE, U+FFFF) as
/// U+FFFD — escaping them (`&#1;`) would still be ill-formed.
pub fn escape_xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if c.is_control() || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// A GraphML document's opening: the attribute keys `(id, for, name)`, all strings, and the
/// graph element of trace `id` (close it with `  </graph>\n</graphml>\n`).
pub(crate) fn graphml_open(keys: &[(&str, &str, &str)], id: &str) -> String {
    let mut s = String::new();
    s.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    s.push_str("<graphml xmlns=\"http://graphml.graphdrawing.org/xmlns\">\n");
    for (key, on, name) in keys {
        let _ = writeln!(
            s,
            "  <key id=\"{key}\" for=\"{on}\" attr.name=\"{name}\" attr.type=\"string\"/>"
        );
    }
    let _ = writeln!(s, "  <graph id=\"trace-{id}\" edgedefault=\"directed\">");
    s
}

/// The taint tree in GraphML.
pub fn graphml(trace: &Trace) -> String {
    let mut s = graphml_open(
        &[
            ("role", "node", "role"),
            ("service", "node", "service"),
            ("hops", "node", "hops"),
            ("tx", "edge", "tx_hash"),
            ("block", "edge", "block"),
            ("asset", "edge", "asset"),
            ("amount", "edge", "amount"),
            ("tainted", "edge", "tainted"),
        ],
        &trace.id,
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

#[cfg(test)]
mod tests {
    use alloy_primitives::{B256, U256};
    use holdfast_primitives::{Asset, Category};

    use super::*;
    use crate::labels::{Service, ServiceKind};
    use crate::policy::{Policy, Seed, TraceOptions};
    use crate::result::{Amount, FreezeTarget, Hop, Reached, TraceStats};

    /// Script, markup, quotes of both kinds, a trailing backslash, Graphviz escapes, a line
    /// break, control characters XML forbids, a direction override and a spreadsheet formula.
    const HOSTILE: &str =
        "=HYPERLINK(\"x\")<script>alert('1')</script>&amp; \\N\\G\n\u{1}\u{7}\u{202E}evil\\";

    /// A seed paying a service deposit labelled with [`HOSTILE`].
    fn hostile_trace() -> Trace {
        let seed = Address::repeat_byte(1);
        let deposit = Address::repeat_byte(2);
        let amount = Amount {
            source: 0,
            asset: Asset::Native,
            amount: U256::from(5u64),
        };
        let service = Service {
            kind: ServiceKind::Custodial,
            category: Category::Exchange,
            name: HOSTILE.to_owned(),
        };
        let hop = Hop {
            tx_hash: B256::repeat_byte(3),
            block: 7,
            from: seed,
            to: deposit,
            asset: Asset::Native,
            amount: U256::from(5u64),
            tainted: U256::from(5u64),
        };
        Trace {
            id: "abc".into(),
            chain_id: 1,
            policy: Policy::Fifo,
            options: TraceOptions::with_policy(Policy::Fifo),
            seeds: vec![Seed::address(seed)],
            seeded: vec![amount.clone()],
            addresses: vec![
                Reached {
                    address: seed,
                    role: Role::Seed,
                    hops: 0,
                    service: None,
                    first_tx: None,
                    first_block: None,
                    received: vec![],
                    held: vec![],
                    out_degree: 1,
                    capped_assets: Vec::new(),
                },
                Reached {
                    address: deposit,
                    role: Role::Service,
                    hops: 1,
                    service: Some(service.clone()),
                    first_tx: Some(hop.tx_hash),
                    first_block: Some(7),
                    received: vec![amount.clone()],
                    held: vec![amount.clone()],
                    out_degree: 0,
                    capped_assets: Vec::new(),
                },
            ],
            targets: vec![FreezeTarget {
                service,
                deposit,
                amounts: vec![amount],
                first_tx: hop.tx_hash,
                first_block: 7,
                path: vec![hop.clone()],
                arrivals: vec![],
            }],
            exits: vec![],
            mixers: vec![],
            tree: vec![hop],
            stats: TraceStats::default(),
        }
    }

    /// The double-quoted strings of a DOT text, unescaped as Graphviz reads them (`\"`
    /// and `\\`; other escapes kept for the label's own reading), or an error when a string
    /// never closes.
    fn dot_strings(dot: &str) -> Result<Vec<String>, String> {
        let mut out = Vec::new();
        let mut chars = dot.chars();
        while let Some(c) = chars.next() {
            if c != '"' {
                continue;
            }
            let mut s = String::new();
            loop {
                match chars.next() {
                    None => return Err(format!("unterminated string {s:?}")),
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some('"') => s.push('"'),
                        Some('\\') => s.push('\\'),
                        Some(c) => {
                            s.push('\\');
                            s.push(c);
                        }
                        None => return Err("backslash at the end".into()),
                    },
                    Some(c) => s.push(c),
                }
            }
            out.push(s);
        }
        Ok(out)
    }

    #[test]
    fn dot_keeps_a_hostile_label_inside_its_string() {
        let t = hostile_trace();
        let dot = dot(&t);
        let strings = dot_strings(&dot).expect("every string closes");
        let label = strings
            .iter()
            .find(|s| s.contains("HYPERLINK"))
            .expect("the label");
        // Read back: the name, the line break as Graphviz's \n, controls replaced.
        assert_eq!(
            label,
            &format!(
                "{}\\n=HYPERLINK(\"x\")<script>alert('1')</script>&amp; \\N\\G\\n\u{FFFD}\u{FFFD}\u{202E}evil\\",
                Address::repeat_byte(2)
            )
        );
        // One statement per line: the line break did not end the statement.
        assert_eq!(dot.lines().count(), 2 + 2 + 1 + 1, "{dot}");
        assert!(dot.trim_end().ends_with('}'));
    }

    #[test]
    fn graphml_with_a_hostile_label_is_well_formed() {
        let t = hostile_trace();
        let xml = graphml(&t);
        let mut reader = quick_xml::Reader::from_str(&xml);
        let mut nodes = 0;
        let mut texts = Vec::new();
        let mut text = String::new();
        loop {
            use quick_xml::events::Event;
            match reader.read_event().expect("well-formed XML") {
                Event::Eof => break,
                Event::Start(e) if e.name().as_ref() == b"node" => nodes += 1,
                Event::Start(_) => text.clear(),
                Event::Text(e) => text.push_str(&e.xml_content().expect("text")),
                Event::GeneralRef(e) => {
                    let name = e.decode().expect("entity");
                    let c = quick_xml::escape::resolve_predefined_entity(&name)
                        .expect("a predefined entity");
                    text.push_str(c);
                }
                Event::End(_) => texts.push(std::mem::take(&mut text)),
                _ => {}
            }
        }
        assert_eq!(nodes, 2);
        assert!(
            texts.iter().any(|s| s
                == "=HYPERLINK(\"x\")<script>alert('1')</script>&amp; \\N\\G\n\u{FFFD}\u{FFFD}\u{202E}evil\\"),
            "{texts:?}"
        );
    }

    #[test]
    fn csv_quotes_a_hostile_label_and_defuses_the_formula() {
        let t = hostile_trace();
        let mut out = Vec::new();
        write(&t, Format::Csv, &mut out).expect("csv");
        let mut r = csv::Reader::from_reader(out.as_slice());
        let rows: Vec<csv::StringRecord> = r.records().collect::<Result<_, _>>().expect("rows");
        assert_eq!(rows.len(), 2);
        let service = rows
            .iter()
            .find(|r| r.get(1) == Some("service"))
            .and_then(|r| r.get(3))
            .expect("the service row");
        assert_eq!(service, format!("'{HOSTILE}"));
    }
}
