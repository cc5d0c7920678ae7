//! Detector 4, dangerous counterparties: a watched address receiving from or sending to an
//! address intel labels sanctioned, DPRK-attributed, mixer or tainted (the rule's
//! categories), or calling one directly. Labels are asked per block through the [`Labels`]
//! seam, so labels added at run time count from the next block on.
//!
//! [`Labels`]: super::Labels

use std::collections::BTreeMap;

use alloy_primitives::Address;
use holdfast_primitives::Category;

use super::explain::{Draft, fact};
use super::state::ChainState;
use super::{End, Run, checksum, short};
use crate::alert::{Alert, DetectorKind, Place};
use crate::config::{Direction, Params};

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Way {
    Sent,
    Received,
    Called,
}

struct Contact {
    place: Place,
    /// What moved: indices into the block's transfers (put in words only for an alert).
    moves: Vec<usize>,
    ways: Vec<Way>,
}

pub(crate) fn detect(run: &Run<'_>, cs: &ChainState, alerts: &mut Vec<Alert>) {
    // (tx, watched, counterparty) → contact
    let mut contacts: BTreeMap<(u32, Address, Address), Contact> = BTreeMap::new();
    let mut note =
        |tx: u32, watched: Address, other: Address, way: Way, place: Place, what: Option<usize>| {
            let c = contacts
                .entry((tx, watched, other))
                .or_insert_with(|| Contact {
                    place,
                    moves: Vec::new(),
                    ways: Vec::new(),
                });
            if !c.ways.contains(&way) {
                c.ways.push(way);
            }
            c.moves.extend(what);
        };
    let watched = |a: Address| !run.rules_for(cs, a, DetectorKind::Counterparty).is_empty();
    for (i, t) in run.block.transfers.transfers.iter().enumerate() {
        if t.from == t.to {
            continue;
        }
        // Only a labelled counterparty makes a contact (the rest are dropped below anyway).
        let watched_end = |end| {
            !run.transfer_rules(cs, i, end, DetectorKind::Counterparty)
                .is_empty()
        };
        let sent = watched_end(End::From) && run.ex.has_labels(t.to);
        let received = watched_end(End::To) && run.ex.has_labels(t.from);
        if !sent && !received {
            continue;
        }
        let place = Place::Transfer {
            tx_index: t.tx_index,
            position: t.position.to_string(),
        };
        if sent {
            note(t.tx_index, t.from, t.to, Way::Sent, place.clone(), Some(i));
        }
        if received {
            note(t.tx_index, t.to, t.from, Way::Received, place, Some(i));
        }
    }
    for tx in &run.block.txs {
        if let Some(to) = tx.to
            && to != tx.from
            && watched(tx.from)
        {
            note(
                tx.index,
                tx.from,
                to,
                Way::Called,
                Place::Tx { tx_index: tx.index },
                None,
            );
        }
    }
    for ((tx_index, wallet, other), c) in contacts {
        let labels = run.ex.labels(other);
        if labels.is_empty() {
            continue;
        }
        for r in run
            .rules_for(cs, wallet, DetectorKind::Counterparty)
            .iter()
            .copied()
        {
            let rule = run.d.rule(r);
            let Params::Counterparty(p) = &rule.params else {
                continue;
            };
            let ways: Vec<Way> = c
                .ways
                .iter()
                .copied()
                .filter(|w| {
                    matches!(
                        (p.direction, w),
                        (Direction::Both, _)
                            | (Direction::In, Way::Received)
                            | (Direction::Out, Way::Sent | Way::Called)
                    )
                })
                .collect();
            let hits: Vec<Category> = labels
                .iter()
                .map(|l| l.category)
                .filter(|c| p.categories.contains(c))
                .collect();
            if ways.is_empty() || hits.is_empty() {
                continue;
            }
            let verb = match ways.iter().min() {
                Some(Way::Sent) => "sent to",
                Some(Way::Received) => "received from",
                _ => "called",
            };
            let cats: Vec<&str> = {
                let mut v: Vec<&str> = hits.iter().map(|c| c.name()).collect();
                v.dedup();
                v
            };
            let mut facts: Vec<_> = c
                .moves
                .iter()
                .map(|i| {
                    let t = &run.block.transfers.transfers[*i];
                    fact(
                        "transfer",
                        format!(
                            "{} from {} to {}",
                            run.ex.amount(&t.asset, t.amount),
                            checksum(t.from),
                            checksum(t.to)
                        ),
                    )
                })
                .collect();
            for l in &labels {
                facts.push(fact("counterparty label", l.text.clone()));
            }
            alerts.push(run.ex.alert(
                rule,
                Draft {
                    place: c.place.clone(),
                    tx_index: Some(tx_index),
                    title: format!(
                        "{} {verb} {} address {}",
                        short(wallet),
                        cats.join("/"),
                        short(other)
                    ),
                    summary: format!(
                        "Watched address {} {verb} {} in block {}. Dealing with a {} address can \
                         break sanctions law and taint the wallet's funds; a payment to it may be \
                         the theft itself.",
                        run.ex.who(wallet),
                        run.ex.who(other),
                        run.block.block().number,
                        cats.join("/"),
                    ),
                    facts,
                    addresses: vec![
                        (wallet, "watched address".into()),
                        (other, "counterparty".into()),
                    ],
                },
            ));
        }
    }
}
