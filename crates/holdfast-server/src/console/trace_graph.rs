//! The trace as an SVG graph, laid out on the server: deterministic layers, one column per
//! hop (an address's fewest transfers from a seed), rows in a column ordered by the row of
//! the address that first brought it taint, then by address. Edges are the taint tree (the
//! transfers that first brought taint to each address). Every node carries what the click
//! panel shows (`data-*` attributes, escaped like all data): its role, hops, service, labels
//! and tainted amounts. `assets/trace.js` pans, zooms and shows a clicked node's details;
//! without it the graph is still a drawing.

use std::collections::HashMap;

use alloy_primitives::Address;
use holdfast_intel::IntelIndex;
use holdfast_trace::output::nodes;
use holdfast_trace::{Amount, Role, Trace};

use super::html::Html;
use super::trace::amount_text;

/// Width of a column (a hop).
const COL_W: u32 = 240;
/// Height of a row.
const ROW_H: u32 = 34;
/// A node's box.
const NODE_W: u32 = 180;
const NODE_H: u32 = 24;
const MARGIN: u32 = 20;

/// Where each node of the graph is drawn.
#[derive(Debug)]
pub struct Layout {
    /// `(address, column, row)`, in drawing order (column, then row).
    pub nodes: Vec<(Address, u32, u32)>,
    pub width: u32,
    pub height: u32,
}

/// The layered layout of `trace`'s graph ([`nodes`] and its tree): deterministic.
pub fn layout(trace: &Trace) -> Layout {
    let all = nodes(trace);
    let mut col: HashMap<Address, u32> = trace
        .addresses
        .iter()
        .map(|r| (r.address, r.hops))
        .collect();
    // Venues (a conversion's pool or wrapper, not reached themselves): one column after
    // the earliest address that sent to them, else one before the earliest they sent to.
    for a in &all {
        if col.contains_key(a) {
            continue;
        }
        let after = trace
            .tree
            .iter()
            .filter(|h| h.to == *a)
            .filter_map(|h| col.get(&h.from))
            .min()
            .map(|c| c + 1);
        let before = trace
            .tree
            .iter()
            .filter(|h| h.from == *a)
            .filter_map(|h| col.get(&h.to))
            .min()
            .map(|c| c.saturating_sub(1));
        col.insert(*a, after.or(before).unwrap_or(0));
    }
    // The first transfer that brought taint to each address: its parent in the layout.
    let mut parent: HashMap<Address, Address> = HashMap::new();
    for h in &trace.tree {
        parent.entry(h.to).or_insert(h.from);
    }
    let columns = all
        .iter()
        .filter_map(|a| col.get(a))
        .max()
        .map_or(0, |m| m + 1);
    let mut by_col: Vec<Vec<Address>> = vec![Vec::new(); columns as usize];
    for a in &all {
        if let Some(c) = col.get(a)
            && let Some(v) = by_col.get_mut(*c as usize)
        {
            v.push(*a);
        }
    }
    let mut row: HashMap<Address, u32> = HashMap::new();
    let mut out = Vec::with_capacity(all.len());
    let mut rows = 0u32;
    for (c, members) in by_col.iter_mut().enumerate() {
        // The parent's row when it is already placed (an earlier column), else last.
        members.sort_by_key(|a| {
            let p = parent.get(a).and_then(|p| row.get(p)).copied();
            (p.unwrap_or(u32::MAX), *a)
        });
        for (r, a) in members.iter().enumerate() {
            let r = u32::try_from(r).unwrap_or(u32::MAX);
            row.insert(*a, r);
            out.push((*a, u32::try_from(c).unwrap_or(u32::MAX), r));
        }
        rows = rows.max(u32::try_from(members.len()).unwrap_or(u32::MAX));
    }
    Layout {
        nodes: out,
        width: 2 * MARGIN + columns.max(1) * COL_W,
        height: 2 * MARGIN + rows.max(1) * ROW_H,
    }
}

fn x(col: u32) -> u32 {
    MARGIN + col * COL_W
}

fn y(row: u32) -> u32 {
    MARGIN + row * ROW_H
}

pub(crate) fn role_name(r: Option<Role>) -> &'static str {
    match r {
        Some(Role::Seed) => "seed",
        Some(Role::Intermediate) => "intermediate",
        Some(Role::Service) => "service",
        Some(Role::Mixer) => "mixer",
        Some(Role::Bridge) => "bridge",
        Some(Role::Capped) => "capped",
        Some(Role::HopLimit) => "hop-limit",
        None => "venue",
    }
}

/// Amounts, one per line, summed over seeds by asset.
fn amounts(list: &[Amount]) -> String {
    let mut by_asset: Vec<(holdfast_primitives::Asset, alloy_primitives::U256)> = Vec::new();
    for a in list {
        match by_asset.iter_mut().find(|(x, _)| *x == a.asset) {
            Some((_, v)) => *v = v.saturating_add(a.amount),
            None => by_asset.push((a.asset, a.amount)),
        }
    }
    by_asset
        .iter()
        .map(|(asset, v)| amount_text(asset, *v))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every label intel holds for `a`, one per line.
fn labels(intel: &IntelIndex, a: &Address) -> String {
    intel
        .evm_labels(a)
        .iter()
        .map(|l| {
            let who = intel
                .name(l)
                .or_else(|| intel.actor(l))
                .map(|n| format!(" · {n}"))
                .unwrap_or_default();
            format!(
                "{} ({}, confidence {}){who}",
                l.category,
                intel.source(l),
                l.confidence
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `0x1234…abcd`.
fn short(a: &Address) -> String {
    let s = a.to_checksum(None);
    format!("{}…{}", &s[..6], &s[s.len() - 4..])
}

/// The graph as an `<svg>` (in `h`), with `layout`'s positions.
pub fn svg(h: &mut Html, trace: &Trace, layout: &Layout, intel: &IntelIndex) {
    let pos: HashMap<Address, (u32, u32)> = layout
        .nodes
        .iter()
        .map(|(a, c, r)| (*a, (x(*c), y(*r))))
        .collect();
    let view = format!("0 0 {} {}", layout.width, layout.height);
    h.open(
        "svg",
        &[
            ("xmlns", "http://www.w3.org/2000/svg"),
            ("id", "trace-graph"),
            ("viewBox", &view),
            ("data-width", &layout.width.to_string()),
            ("data-height", &layout.height.to_string()),
            ("aria-labelledby", "graph-title"),
            ("role", "group"),
        ],
    );
    h.open("g", &[("id", "viewport")]);
    h.open("g", &[("class", "edges")]);
    for e in &trace.tree {
        let (Some((fx, fy)), Some((tx, ty))) = (pos.get(&e.from), pos.get(&e.to)) else {
            continue;
        };
        let (x1, y1) = (fx + NODE_W, fy + NODE_H / 2);
        let (x2, y2) = (*tx, ty + NODE_H / 2);
        let mid = (x1 + x2) / 2;
        let d = format!("M{x1} {y1} C{mid} {y1} {mid} {y2} {x2} {y2}");
        h.open("path", &[("d", &d), ("class", "edge")]);
        h.el(
            "title",
            &[],
            &format!(
                "{} → {}: {} tainted of {} in block {}, tx {}",
                e.from,
                e.to,
                amount_text(&e.asset, e.tainted),
                amount_text(&e.asset, e.amount),
                e.block,
                e.tx_hash
            ),
        );
        h.close("path");
    }
    h.close("g");
    h.open("g", &[("class", "nodes")]);
    for (a, c, r) in &layout.nodes {
        let reached = trace.reached(a);
        let role = role_name(reached.map(|r| r.role));
        let service = reached
            .and_then(|r| r.service.as_ref())
            .map(|s| format!("{} ({})", s.name, s.category))
            .unwrap_or_default();
        let address = a.to_checksum(None);
        let hops = reached.map(|r| r.hops.to_string()).unwrap_or_default();
        let received = reached.map(|r| amounts(&r.received)).unwrap_or_default();
        let held = reached.map(|r| amounts(&r.held)).unwrap_or_default();
        let first_tx = reached
            .and_then(|r| r.first_tx)
            .map(|t| t.to_string())
            .unwrap_or_default();
        let labels = labels(intel, a);
        let class = format!("node role-{role}");
        let name = reached
            .and_then(|r| r.service.as_ref())
            .map(|s| {
                let n: String = s.name.chars().take(14).collect();
                format!(" {n}")
            })
            .unwrap_or_default();
        let shown = format!("{}{name}", short(a));
        // The accessible name starts with the text shown (WCAG 2.5.3, label in name).
        let said = if service.is_empty() {
            format!("{shown}: {address}, {role}")
        } else {
            format!("{shown}: {address}, {role}, {service}")
        };
        let transform = format!("translate({} {})", x(*c), y(*r));
        h.open(
            "g",
            &[
                ("class", &class),
                ("transform", &transform),
                ("tabindex", "0"),
                ("role", "button"),
                ("aria-label", &said),
                ("data-address", &address),
                ("data-role", role),
                ("data-hops", &hops),
                ("data-service", &service),
                ("data-labels", &labels),
                ("data-received", &received),
                ("data-held", &held),
                ("data-first-tx", &first_tx),
            ],
        );
        h.void(
            "rect",
            &[
                ("width", &NODE_W.to_string()),
                ("height", &NODE_H.to_string()),
                ("rx", "4"),
            ],
        );
        h.close("rect");
        h.el("text", &[("x", "6"), ("y", "16")], &shown);
        h.close("g");
    }
    h.close("g").close("g").close("svg");
}

#[cfg(test)]
mod tests {
    use alloy_primitives::{B256, U256};
    use holdfast_primitives::Asset;
    use holdfast_trace::{Hop, Policy, Reached, Seed, TraceOptions, TraceStats};

    use super::*;

    fn reached(address: Address, hops: u32) -> Reached {
        Reached {
            address,
            role: if hops == 0 {
                Role::Seed
            } else {
                Role::Intermediate
            },
            hops,
            service: None,
            first_tx: None,
            first_block: None,
            received: vec![],
            held: vec![],
            out_degree: 0,
            capped_assets: vec![],
        }
    }

    fn hop(from: u8, to: u8) -> Hop {
        Hop {
            tx_hash: B256::repeat_byte(to),
            block: u64::from(to),
            from: Address::repeat_byte(from),
            to: Address::repeat_byte(to),
            asset: Asset::Native,
            amount: U256::from(1u64),
            tainted: U256::from(1u64),
        }
    }

    #[test]
    fn columns_are_hops_and_rows_follow_the_parent() {
        let a = |b: u8| Address::repeat_byte(b);
        let t = Trace {
            id: "t".into(),
            chain_id: 1,
            policy: Policy::Fifo,
            options: TraceOptions::default(),
            seeds: vec![Seed::address(a(9))],
            seeded: vec![],
            // 9 → 5, 9 → 2, 5 → 1, 2 → 3: row order in hop 2 follows the parents' rows.
            addresses: vec![
                reached(a(1), 2),
                reached(a(2), 1),
                reached(a(3), 2),
                reached(a(5), 1),
                reached(a(9), 0),
            ],
            targets: vec![],
            exits: vec![],
            mixers: vec![],
            tree: vec![hop(9, 5), hop(9, 2), hop(5, 1), hop(2, 3)],
            stats: TraceStats::default(),
        };
        let l = layout(&t);
        assert_eq!(
            l.nodes,
            vec![
                (a(9), 0, 0),
                (a(2), 1, 0),
                (a(5), 1, 1),
                (a(3), 2, 0),
                (a(1), 2, 1),
            ]
        );
        assert_eq!(l.width, 2 * MARGIN + 3 * COL_W);
        assert_eq!(l.height, 2 * MARGIN + 2 * ROW_H);
    }
}
