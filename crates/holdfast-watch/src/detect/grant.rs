//! Detector 3, grants: a watched wallet letting a spender outside the rule's allowlist move
//! its assets — `approve`, `increaseAllowance`, `setApprovalForAll`, Permit2 `approve` and
//! `permit`, EIP-2612 `permit` — made by the wallet itself (its transaction, or its Safe's
//! call frame) or by anyone carrying its signature (permits). Unlimited amounts (≥ 2^128) are
//! flagged.
//!
//! With call traces the call frames are the evidence (an `Approval` event also comes from
//! `transferFrom` spending an allowance, so events alone would mislead); without traces the
//! transaction's own payload is decoded (Safe executions and MultiSend batches unpacked) and
//! the `Approval` / `ApprovalForAll` / Permit2 events fill in, one alert per grant either way.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use alloy_primitives::{Address, B256, U256, keccak256};
use holdfast_chain::{CallKind, LogDetail};
use holdfast_guard::decode::{Action, CallKind as DecodedKind, DecodedCall, decode};

use super::explain::{Draft, fact};
use super::safes::{data_word, topic, word_address};
use super::state::ChainState;
use super::{Run, checksum, short};
use crate::alert::{Alert, DetectorKind, Place};
use crate::config::Params;

/// Amounts from this up are "unlimited" (no real balance comes near; `type(uint256).max`
/// and Permit2's `type(uint160).max` are above it).
pub fn unlimited(amount: U256) -> bool {
    amount >= U256::from(1u8) << 128
}

fn selector(sig: &str) -> [u8; 4] {
    let h = keccak256(sig.as_bytes());
    [h[0], h[1], h[2], h[3]]
}

static SELECTORS: LazyLock<[[u8; 4]; 7]> = LazyLock::new(|| {
    [
        selector("approve(address,uint256)"),
        selector("increaseAllowance(address,uint256)"),
        selector("setApprovalForAll(address,bool)"),
        selector("permit(address,address,uint256,uint256,uint8,bytes32,bytes32)"),
        selector("approve(address,address,uint160,uint48)"),
        selector("permit(address,((address,uint160,uint48,uint48),address,uint256),bytes)"),
        selector("permit(address,((address,uint160,uint48,uint48)[],address,uint256),bytes)"),
    ]
});

struct Topics {
    approval: B256,
    approval_for_all: B256,
    permit2_approval: B256,
    permit2_permit: B256,
    transfer: B256,
}

static TOPICS: LazyLock<Topics> = LazyLock::new(|| Topics {
    approval: topic("Approval(address,address,uint256)"),
    approval_for_all: topic("ApprovalForAll(address,address,bool)"),
    permit2_approval: topic("Approval(address,address,address,uint160,uint48)"),
    permit2_permit: topic("Permit(address,address,address,uint160,uint48,uint48)"),
    transfer: topic("Transfer(address,address,uint256)"),
});

/// One token a grant covers.
#[derive(Clone)]
struct Item {
    token: Address,
    /// `None`: every token of the collection (`setApprovalForAll`).
    amount: Option<U256>,
    mechanism: &'static str,
    note: Option<String>,
}

#[derive(Default)]
struct Grant {
    tx_index: u32,
    items: Vec<Item>,
}

pub(crate) fn detect(run: &Run<'_>, cs: &ChainState, alerts: &mut Vec<Alert>) {
    let block = run.block;
    // (place, owner, spender) → grant
    let mut grants: BTreeMap<(Place, Address, Address), Grant> = BTreeMap::new();
    fn add(
        grants: &mut BTreeMap<(Place, Address, Address), Grant>,
        place: Place,
        tx_index: u32,
        owner: Address,
        spender: Address,
        item: Item,
    ) {
        let g = grants.entry((place, owner, spender)).or_default();
        g.tx_index = tx_index;
        if !g
            .items
            .iter()
            .any(|i| i.token == item.token && i.mechanism == item.mechanism)
        {
            g.items.push(item);
        }
    }
    let watched = |a: Address| !run.rules_for(cs, a, DetectorKind::Grant).is_empty();
    let failed = |i: u32| block.txs.get(i as usize).is_some_and(|t| !t.success);
    if block.calls_complete {
        for c in &block.calls {
            if c.reverted || failed(c.tx_index) || c.kind != CallKind::Call {
                continue;
            }
            if c.input.len() < 4
                || !SELECTORS.contains(&[c.input[0], c.input[1], c.input[2], c.input[3]])
            {
                continue;
            }
            let Ok(d) = decode(c.from, Some(c.to), DecodedKind::Call, c.value, &c.input) else {
                continue;
            };
            let Some(call) = d.calls.first() else {
                continue;
            };
            if let Some((owner, spender, items)) = of_call(call)
                && watched(owner)
            {
                let place = Place::Call {
                    tx_index: c.tx_index,
                    trace_address: c.trace_address.clone(),
                };
                for it in items {
                    add(&mut grants, place.clone(), c.tx_index, owner, spender, it);
                }
            }
        }
    } else {
        for t in block.txs.iter().filter(|t| t.success) {
            let Ok(d) = decode(t.from, t.to, DecodedKind::Call, t.value, &t.input) else {
                continue;
            };
            for call in d.calls.iter().filter(|c| c.kind == DecodedKind::Call) {
                if let Some((owner, spender, items)) = of_call(call)
                    && watched(owner)
                {
                    let place = event_place(run, t.index, owner, spender)
                        .unwrap_or(Place::Tx { tx_index: t.index });
                    for it in items {
                        add(&mut grants, place.clone(), t.index, owner, spender, it);
                    }
                }
            }
        }
        for l in &block.logs {
            if let Some((owner, spender, item)) = of_log(l)
                && watched(owner)
                && !spends(run, l.tx_index, item.token, owner)
            {
                let place = Place::Log {
                    tx_index: l.tx_index,
                    log_index: l.log_index,
                };
                let key_place = grants
                    .keys()
                    .find(|(p, o, s)| p == &place && *o == owner && *s == spender)
                    .map(|(p, _, _)| p.clone())
                    .unwrap_or(place);
                add(&mut grants, key_place, l.tx_index, owner, spender, item);
            }
        }
    }
    for ((place, owner, spender), g) in grants {
        for r in run
            .rules_for(cs, owner, DetectorKind::Grant)
            .iter()
            .copied()
        {
            let rule = run.d.rule(r);
            let Params::Grant(p) = &rule.params else {
                continue;
            };
            if p.allowlist.iter().any(|s| run.d.in_set(cs, *s, spender)) {
                continue;
            }
            let any_unlimited = g.items.iter().any(|i| i.amount.is_none_or(unlimited));
            if p.unlimited_only && !any_unlimited {
                continue;
            }
            let mut alert = run.ex.alert(
                rule,
                draft(
                    run,
                    &place,
                    g.tx_index,
                    owner,
                    spender,
                    &g.items,
                    any_unlimited,
                ),
            );
            alert.evidence = serde_json::json!({
                "owner": owner,
                "spender": spender,
                "grants": g.items.iter().map(|i| serde_json::json!({
                    "token": i.token,
                    // Raw units; `null`: every token of the collection.
                    "amount": i.amount.map(|a| a.to_string()),
                    "unlimited": i.amount.is_none_or(unlimited),
                    "mechanism": i.mechanism,
                })).collect::<Vec<_>>(),
            });
            alerts.push(alert);
        }
    }
}

/// The grant a decoded call makes: `(owner, spender, items)`; revocations are not grants.
fn of_call(c: &DecodedCall) -> Option<(Address, Address, Vec<Item>)> {
    let item = |token, amount: U256, mechanism, note| {
        (!amount.is_zero()).then_some(Item {
            token,
            amount: Some(amount),
            mechanism,
            note,
        })
    };
    match &c.action {
        Action::Approve { spender, amount } => Some((
            c.from,
            *spender,
            vec![item(c.to, *amount, "approve", None)?],
        )),
        Action::IncreaseAllowance { spender, added } => Some((
            c.from,
            *spender,
            vec![item(c.to, *added, "increaseAllowance", None)?],
        )),
        Action::SetApprovalForAll {
            operator,
            approved: true,
        } => Some((
            c.from,
            *operator,
            vec![Item {
                token: c.to,
                amount: None,
                mechanism: "setApprovalForAll",
                note: None,
            }],
        )),
        Action::Permit {
            owner,
            spender,
            value,
            deadline,
        } => Some((
            *owner,
            *spender,
            vec![item(
                c.to,
                *value,
                "EIP-2612 permit (the owner's signature, submitted by anyone)",
                Some(format!("deadline {deadline}")),
            )?],
        )),
        Action::Permit2Approve {
            token,
            spender,
            amount,
            expiration,
        } => Some((
            c.from,
            *spender,
            vec![item(
                *token,
                *amount,
                "Permit2 approve",
                Some(format!("expires at {expiration}; through Permit2 {}", c.to)),
            )?],
        )),
        Action::Permit2Permit {
            owner,
            spender,
            tokens,
        } => {
            let items: Vec<Item> = tokens
                .iter()
                .filter_map(|(t, a)| {
                    item(
                        *t,
                        *a,
                        "Permit2 permit (the owner's signature)",
                        Some(format!("through Permit2 {}", c.to)),
                    )
                })
                .collect();
            (!items.is_empty()).then_some((*owner, *spender, items))
        }
        _ => None,
    }
}

fn of_log(l: &LogDetail) -> Option<(Address, Address, Item)> {
    let t = &*TOPICS;
    let t0 = *l.topics.first()?;
    let addr = |i: usize| l.topics.get(i).and_then(|w| word_address(w.as_slice()));
    let word = |i: usize| data_word(l, i).map(|w| U256::from_be_slice(w));
    if t0 == t.approval && l.topics.len() == 3 {
        let amount = word(0)?;
        // (ERC-721's `Approval` has its token id indexed: four topics, below.)
        (!amount.is_zero()).then_some((
            addr(1)?,
            addr(2)?,
            Item {
                token: l.address,
                amount: Some(amount),
                mechanism: "Approval event",
                note: None,
            },
        ))
    } else if t0 == t.approval && l.topics.len() == 4 {
        let spender = addr(2)?;
        (!spender.is_zero()).then_some((
            addr(1)?,
            spender,
            Item {
                token: l.address,
                amount: Some(U256::from(1)),
                mechanism: "ERC-721 Approval event",
                note: Some(format!("token id {}", U256::from_be_bytes(l.topics[3].0))),
            },
        ))
    } else if t0 == t.approval_for_all {
        (word(0)? == U256::from(1)).then_some((
            addr(1)?,
            addr(2)?,
            Item {
                token: l.address,
                amount: None,
                mechanism: "ApprovalForAll event",
                note: None,
            },
        ))
    } else if t0 == t.permit2_approval || t0 == t.permit2_permit {
        let amount = word(0)?;
        (!amount.is_zero()).then_some((
            addr(1)?,
            addr(3)?,
            Item {
                token: addr(2)?,
                amount: Some(amount),
                mechanism: if t0 == t.permit2_approval {
                    "Permit2 Approval event"
                } else {
                    "Permit2 Permit event"
                },
                note: Some(format!("through Permit2 {}", l.address)),
            },
        ))
    } else {
        None
    }
}

/// Whether the transaction moved `owner`'s `token` (an `Approval` event then may be an
/// allowance being spent, not granted).
fn spends(run: &Run<'_>, tx_index: u32, token: Address, owner: Address) -> bool {
    run.block.logs.iter().any(|l| {
        l.tx_index == tx_index
            && l.address == token
            && l.topics.first() == Some(&TOPICS.transfer)
            && l.topics.get(1).and_then(|w| word_address(w.as_slice())) == Some(owner)
    })
}

/// The place of the event that matches a decoded grant, so the call and its event are one.
fn event_place(run: &Run<'_>, tx_index: u32, owner: Address, spender: Address) -> Option<Place> {
    run.block
        .logs
        .iter()
        .filter(|l| l.tx_index == tx_index)
        .find(|l| of_log(l).is_some_and(|(o, s, _)| o == owner && s == spender))
        .map(|l| Place::Log {
            tx_index,
            log_index: l.log_index,
        })
}

fn draft(
    run: &Run<'_>,
    place: &Place,
    tx_index: u32,
    owner: Address,
    spender: Address,
    items: &[Item],
    any_unlimited: bool,
) -> Draft {
    let what: Vec<String> = items
        .iter()
        .map(|i| match i.amount {
            None => format!("every token of {}", run.ex.token_name(i.token)),
            Some(a) if unlimited(a) => format!("UNLIMITED {}", run.ex.token_name(i.token)),
            Some(a) => run.ex.token_amount(i.token, a),
        })
        .collect();
    let mut facts = Vec::new();
    for i in items {
        let amount = match i.amount {
            None => "all (operator over the whole collection)".to_owned(),
            Some(a) if unlimited(a) => format!("unlimited ({a})"),
            Some(a) => run.ex.token_amount(i.token, a),
        };
        let note = i
            .note
            .as_ref()
            .map(|n| format!("; {n}"))
            .unwrap_or_default();
        facts.push(fact(
            "grant",
            format!(
                "{}: {amount} of token {}{note}",
                i.mechanism,
                checksum(i.token)
            ),
        ));
    }
    facts.push(fact("owner", checksum(owner)));
    facts.push(fact("spender", checksum(spender)));
    let mut addresses = vec![
        (owner, "watched wallet".to_owned()),
        (spender, "spender".to_owned()),
    ];
    for i in items {
        if !addresses.iter().any(|(a, _)| *a == i.token) {
            addresses.push((i.token, "token".to_owned()));
        }
    }
    let unl = if any_unlimited { "unlimited " } else { "" };
    Draft {
        place: place.clone(),
        tx_index: Some(tx_index),
        title: format!(
            "{}: {unl}grant of {} to unknown spender {}",
            short(owner),
            what.join(", "),
            short(spender)
        ),
        summary: format!(
            "Watched wallet {} let {} move {} ({}). The spender is not in the rule's allowlist. \
             A spender with an allowance can take the tokens at any time without another \
             signature: revoke it now unless it was intended.",
            run.ex.who(owner),
            run.ex.who(spender),
            what.join(", "),
            items
                .iter()
                .map(|i| i.mechanism)
                .collect::<Vec<_>>()
                .join(", "),
        ),
        facts,
        addresses,
    }
}
