//! Each transaction's state changes, from geth's `prestateTracer` in `diffMode` or parity's
//! `stateDiff`, to [`StateDiff`]s with exact values before and after.
//!
//! `prestateTracer` `diffMode` gives, per transaction, `pre` (the touched accounts before,
//! with the storage slots that changed) and `post` (only what changed). It leaves out zeros:
//! a slot that was zero is absent from `pre`, a slot that became zero is absent from `post`,
//! and an account that was destroyed is absent from `post` altogether. So, per account:
//! - in `pre` and `post`: a field absent from `post` kept its `pre` value, except storage,
//!   where a slot listed in `pre` and absent from `post` became zero;
//! - only in `post` (created): everything was zero or empty before;
//! - only in `pre` (destroyed): balance, code and every listed slot are zero or empty after.
//!
//! Parity's `stateDiff` says it outright (`=`, `+`, `-`, `*` with `from` and `to`).
//!
//! Nonces are not kept. Only accounts whose balance, code or storage changed are listed, in
//! address order, their slots in slot order.

use std::collections::{BTreeMap, BTreeSet};

use alloy::rpc::types::trace::parity::Delta;
use alloy_primitives::{Address, B256, Bytes, U256};
use serde::Deserialize;

use super::{SlotChange, StateDiff};

/// One transaction's `prestateTracer` answer in `diffMode`.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct PrestateDiff {
    pre: BTreeMap<Address, PrestateAccount>,
    post: BTreeMap<Address, PrestateAccount>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct PrestateAccount {
    #[serde(default)]
    balance: Option<U256>,
    #[serde(default)]
    code: Option<Bytes>,
    #[serde(default)]
    storage: BTreeMap<B256, B256>,
}

/// One account in parity's `stateDiff` (read leniently: a field left out is unchanged).
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct ParityAccountDiff {
    #[serde(default)]
    balance: Delta<U256>,
    #[serde(default)]
    code: Delta<Bytes>,
    #[serde(default)]
    storage: BTreeMap<B256, Delta<B256>>,
}

/// Transaction `tx_index`'s changes from its `prestateTracer` `diffMode` answer.
pub(crate) fn from_prestate(tx_index: u32, diff: &PrestateDiff) -> Vec<StateDiff> {
    let addresses: BTreeSet<&Address> = diff.pre.keys().chain(diff.post.keys()).collect();
    let empty = PrestateAccount::default();
    let mut out = Vec::new();
    for address in addresses {
        let pre = diff.pre.get(address);
        let post = diff.post.get(address);
        let before = pre.unwrap_or(&empty);
        let balance_before = before.balance.unwrap_or_default();
        let code_before = before.code.clone().unwrap_or_default();
        let (balance_after, code_after) = match post {
            // Destroyed.
            None => (U256::ZERO, Bytes::new()),
            Some(after) => (
                after.balance.unwrap_or(balance_before),
                after.code.clone().unwrap_or_else(|| code_before.clone()),
            ),
        };
        let slots: BTreeSet<&B256> = before
            .storage
            .keys()
            .chain(post.iter().flat_map(|p| p.storage.keys()))
            .collect();
        let storage = slots
            .into_iter()
            .map(|slot| SlotChange {
                slot: *slot,
                before: before.storage.get(slot).copied().unwrap_or_default(),
                after: post
                    .and_then(|p| p.storage.get(slot))
                    .copied()
                    .unwrap_or_default(),
            })
            .filter(|c| c.before != c.after)
            .collect();
        out.extend(account(
            tx_index,
            *address,
            (balance_before, balance_after),
            code_before != code_after,
            storage,
        ));
    }
    out
}

/// Transaction `tx_index`'s changes from its parity `stateDiff`.
pub(crate) fn from_parity(
    tx_index: u32,
    diff: &BTreeMap<Address, ParityAccountDiff>,
) -> Vec<StateDiff> {
    let mut out = Vec::new();
    for (address, d) in diff {
        let storage = d
            .storage
            .iter()
            .map(|(slot, delta)| {
                let (before, after) = before_after(delta);
                SlotChange {
                    slot: *slot,
                    before,
                    after,
                }
            })
            .filter(|c| c.before != c.after)
            .collect();
        let code = before_after(&d.code);
        out.extend(account(
            tx_index,
            *address,
            before_after(&d.balance),
            code.0 != code.1,
            storage,
        ));
    }
    out
}

fn before_after<T: Clone + Default>(delta: &Delta<T>) -> (T, T) {
    match delta {
        Delta::Unchanged => (T::default(), T::default()),
        Delta::Added(v) => (T::default(), v.clone()),
        Delta::Removed(v) => (v.clone(), T::default()),
        Delta::Changed(c) => (c.from.clone(), c.to.clone()),
    }
}

fn account(
    tx_index: u32,
    address: Address,
    balance: (U256, U256),
    code_changed: bool,
    storage: Vec<SlotChange>,
) -> Option<StateDiff> {
    let balance = (balance.0 != balance.1).then_some(balance);
    (balance.is_some() || code_changed || !storage.is_empty()).then_some(StateDiff {
        tx_index,
        address,
        balance,
        code_changed,
        storage,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(b: u8) -> B256 {
        B256::with_last_byte(b)
    }

    #[test]
    fn prestate_zeros_left_out_are_restored() {
        let (safe, created, destroyed, sender) = (
            Address::repeat_byte(1),
            Address::repeat_byte(2),
            Address::repeat_byte(3),
            Address::repeat_byte(4),
        );
        let diff: PrestateDiff = serde_json::from_value(serde_json::json!({
            "pre": {
                // slot 0 replaced, slot 1 set to zero (absent from post), slot 2 unchanged
                // (listed in both), slot 3 was zero (absent from pre).
                safe.to_string(): {"balance": "0x10", "code": "0x60", "nonce": 1, "storage": {
                    word(0).to_string(): word(0xaa).to_string(),
                    word(1).to_string(): word(0xbb).to_string(),
                    word(2).to_string(): word(0xcc).to_string(),
                }},
                destroyed.to_string(): {"balance": "0x3", "code": "0x6000", "storage": {word(9).to_string(): word(1).to_string()}},
                sender.to_string(): {"balance": "0x100", "nonce": 4},
            },
            "post": {
                safe.to_string(): {"storage": {
                    word(0).to_string(): word(0xdd).to_string(),
                    word(2).to_string(): word(0xcc).to_string(),
                    word(3).to_string(): word(0xee).to_string(),
                }},
                created.to_string(): {"code": "0x6001", "nonce": 1},
                sender.to_string(): {"nonce": 5},
            }
        }))
        .expect("parses");
        let got = from_prestate(3, &diff);
        let slot = |s: u8, b: u8, a: u8| SlotChange {
            slot: word(s),
            before: if b == 0 { B256::ZERO } else { word(b) },
            after: if a == 0 { B256::ZERO } else { word(a) },
        };
        assert_eq!(
            got,
            vec![
                StateDiff {
                    tx_index: 3,
                    address: safe,
                    balance: None,
                    code_changed: false,
                    storage: vec![slot(0, 0xaa, 0xdd), slot(1, 0xbb, 0), slot(3, 0, 0xee)],
                },
                StateDiff {
                    tx_index: 3,
                    address: created,
                    balance: None,
                    code_changed: true,
                    storage: vec![],
                },
                StateDiff {
                    tx_index: 3,
                    address: destroyed,
                    balance: Some((U256::from(3), U256::ZERO)),
                    code_changed: true,
                    storage: vec![slot(9, 1, 0)],
                },
            ],
            "the sender's nonce alone is not a change kept"
        );
    }

    #[test]
    fn parity_deltas_read_both_ways() {
        let a = Address::repeat_byte(1);
        let diff: BTreeMap<Address, ParityAccountDiff> =
            serde_json::from_value(serde_json::json!({
                a.to_string(): {
                    "balance": {"-": "0x7"},
                    "code": {"+": "0x60"},
                    "nonce": "=",
                    "storage": {
                        word(1).to_string(): {"*": {"from": word(5).to_string(), "to": B256::ZERO.to_string()}},
                        word(2).to_string(): {"+": word(6).to_string()},
                        word(3).to_string(): "=",
                    }
                },
                Address::repeat_byte(2).to_string(): {"nonce": {"*": {"from": "0x1", "to": "0x2"}}}
            }))
            .expect("parses");
        let got = from_parity(0, &diff);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].balance, Some((U256::from(7), U256::ZERO)));
        assert!(got[0].code_changed);
        assert_eq!(
            got[0].storage,
            vec![
                SlotChange {
                    slot: word(1),
                    before: word(5),
                    after: B256::ZERO
                },
                SlotChange {
                    slot: word(2),
                    before: B256::ZERO,
                    after: word(6)
                },
            ]
        );
    }
}
