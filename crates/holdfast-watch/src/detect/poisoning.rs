//! Detector 5, address poisoning: transfers "from" a watched wallet that the wallet did not
//! make (zero-value `transferFrom`s, fake tokens emitting `Transfer` events with the wallet as
//! sender), and look-alike addresses — the same leading and trailing hex characters as one of
//! the wallet's real past counterparties — appearing in its history, or worse, being paid.
//!
//! Real counterparties are the addresses the wallet paid before the block, as the history
//! seam returns them (the newest [`COUNTERPARTY_LIMIT`]).

use std::collections::BTreeMap;

use alloy_primitives::Address;
use holdfast_primitives::{Asset, Transfer};

use super::explain::{Draft, fact};
use super::state::ChainState;
use super::{DetectError, End, Run, checksum, short};
use crate::alert::{Alert, DetectorKind, Place};
use crate::config::{Params, PoisoningParams};

/// Most past counterparties asked of the history seam per wallet and block.
pub const COUNTERPARTY_LIMIT: usize = 256;

/// Whether `a` imitates `b`: different addresses with the same first `prefix` and last
/// `suffix` hex characters (case-insensitive).
pub fn looks_like(a: Address, b: Address, prefix: u32, suffix: u32) -> bool {
    Lookalike::new(a, prefix, suffix).imitates(b)
}

/// An address and the hex characters [`looks_like`] compares, as a mask over an address's
/// bytes (hex case plays no part) loaded as two machine words: each comparison is then two
/// XORs and two ANDs. This runs for every past counterparty of every transfer a watched
/// wallet takes part in.
#[derive(Debug, Clone, Copy)]
pub struct Lookalike {
    address: Address,
    words: (u128, u32),
    mask: (u128, u32),
}

/// An address's bytes as the two words [`Lookalike`] masks (native byte order: the mask is
/// loaded the same way, so the order plays no part).
fn words(a: &Address) -> (u128, u32) {
    let b = &a.0.0;
    let mut head = [0u8; 16];
    head.copy_from_slice(&b[..16]);
    let mut tail = [0u8; 4];
    tail.copy_from_slice(&b[16..]);
    (u128::from_ne_bytes(head), u32::from_ne_bytes(tail))
}

impl Lookalike {
    /// `address`, compared on its first `prefix` and last `suffix` hex characters.
    pub fn new(address: Address, prefix: u32, suffix: u32) -> Lookalike {
        let (p, s) = (prefix.min(40) as usize, suffix.min(40) as usize);
        // Nibble i of the address is the high (even i) or low (odd i) half of byte i / 2.
        let mut mask = [0u8; 20];
        for i in (0..p).chain(40 - s..40) {
            mask[i / 2] |= if i.is_multiple_of(2) { 0xf0 } else { 0x0f };
        }
        Lookalike {
            address,
            words: words(&address),
            mask: words(&Address::from(mask)),
        }
    }

    /// Whether this address imitates `b` ([`looks_like`]).
    pub fn imitates(&self, b: Address) -> bool {
        let w = words(&b);
        self.address != b
            && (self.words.0 ^ w.0) & self.mask.0 == 0
            && (self.words.1 ^ w.1) & self.mask.1 == 0
    }
}

/// A look-alike question: wallet, other address, prefix and suffix lengths.
type Question = (Address, Address, u32, u32);

struct Case {
    place: Place,
    tx_index: u32,
    reasons: Vec<String>,
    moves: Vec<String>,
}

pub(crate) fn detect(
    run: &Run<'_>,
    cs: &ChainState,
    alerts: &mut Vec<Alert>,
) -> Result<(), DetectError> {
    let number = run.block.block().number;
    let chain_id = run.block.chain_id();
    // The past counterparty of `w` that `other` imitates, if any, read from the history's
    // own list in place. The rules of one wallet come one after the other for a transfer's
    // end and often share their parameters: the last answer is kept for them.
    let mut last: Option<(Question, Option<Address>)> = None;
    let mut imitated = |w: Address,
                        other: Address,
                        prefix: u32,
                        suffix: u32|
     -> Result<Option<Address>, DetectError> {
        let key = (w, other, prefix, suffix);
        if let Some((k, found)) = last
            && k == key
        {
            return Ok(found);
        }
        let found = run
            .cx
            .history
            .find_lookalike(
                chain_id,
                w,
                number,
                COUNTERPARTY_LIMIT,
                &Lookalike::new(other, prefix, suffix),
            )
            .map_err(|source| DetectError::History {
                block: number,
                source,
            })?;
        last = Some((key, found));
        Ok(found)
    };
    // (rule, tx, wallet, other) → case
    let mut cases: BTreeMap<(u32, u32, Address, Address), Case> = BTreeMap::new();
    for (i, t) in run.block.transfers.transfers.iter().enumerate() {
        if t.from == t.to {
            continue;
        }
        for (wallet, other, outgoing) in [(t.from, t.to, true), (t.to, t.from, false)] {
            let end = if outgoing { End::From } else { End::To };
            for r in run
                .transfer_rules(cs, i, end, DetectorKind::Poisoning)
                .iter()
                .copied()
            {
                let Params::Poisoning(p) = &run.d.rule(r).params else {
                    continue;
                };
                let mut reasons = Vec::new();
                if outgoing && initiated_by(run, t.tx_index, wallet) == Some(false) {
                    reasons.extend(unmade(run, p, t));
                }
                if p.lookalike
                    && let Some(real) = imitated(wallet, other, p.prefix, p.suffix)?
                {
                    let paid = outgoing
                        && initiated_by(run, t.tx_index, wallet) == Some(true)
                        && !t.amount.is_zero();
                    reasons.push(format!(
                            "{} {} looks like {}, an address this wallet paid before (same first {} and last {} hex characters){}",
                            if outgoing { "recipient" } else { "sender" },
                            checksum(other),
                            checksum(real),
                            p.prefix,
                            p.suffix,
                            if paid { ": THE WALLET PAID THE LOOK-ALIKE" } else { "" },
                        ));
                }
                if reasons.is_empty() {
                    continue;
                }
                let c = cases
                    .entry((r, t.tx_index, wallet, other))
                    .or_insert_with(|| Case {
                        place: Place::Transfer {
                            tx_index: t.tx_index,
                            position: t.position.to_string(),
                        },
                        tx_index: t.tx_index,
                        reasons: Vec::new(),
                        moves: Vec::new(),
                    });
                for reason in reasons {
                    if !c.reasons.contains(&reason) {
                        c.reasons.push(reason);
                    }
                }
                c.moves.push(format!(
                    "{} from {} to {}",
                    run.ex.amount(&t.asset, t.amount),
                    checksum(t.from),
                    checksum(t.to)
                ));
            }
        }
    }
    for ((r, _, wallet, other), c) in cases {
        let rule = run.d.rule(r);
        let mut facts: Vec<_> = c.reasons.iter().map(|m| fact("why", m.clone())).collect();
        facts.extend(c.moves.iter().map(|m| fact("transfer", m.clone())));
        alerts.push(run.ex.alert(
            rule,
            Draft {
                place: c.place,
                tx_index: Some(c.tx_index),
                title: format!(
                    "{}: address poisoning by {} ({})",
                    short(wallet),
                    short(other),
                    c.reasons.join("; ")
                ),
                summary: format!(
                    "Watched wallet {} is being poisoned: {}. Whoever copies a recipient from the \
                     wallet's history may pay {} instead of the real counterparty. Check every \
                     character of an address before paying it.",
                    run.ex.who(wallet),
                    c.reasons.join("; "),
                    run.ex.who(other),
                ),
                facts,
                addresses: vec![
                    (wallet, "watched wallet".into()),
                    (other, "suspected poisoner".into()),
                ],
            },
        ));
    }
    Ok(())
}

/// Whether the wallet itself acted in the transaction: it sent it, or code ran as it (a
/// Safe's call frame). `None` when the block has no transaction detail (a replay from the
/// store): then nothing is said about who made a transfer.
fn initiated_by(run: &Run<'_>, tx_index: u32, wallet: Address) -> Option<bool> {
    let tx = run.block.txs.get(tx_index as usize)?;
    Some(
        tx.from == wallet
            || run
                .block
                .calls
                .iter()
                .any(|c| c.tx_index == tx_index && c.from == wallet && !c.reverted),
    )
}

/// Why a transfer "from" the wallet that it did not make is poisoning.
fn unmade(run: &Run<'_>, p: &PoisoningParams, t: &Transfer) -> Vec<String> {
    let mut out = Vec::new();
    match t.asset {
        Asset::Erc20 { token } if p.zero_value && t.amount.is_zero() => out.push(format!(
            "a zero-value transfer of {} \"from\" the wallet that the wallet did not make",
            run.ex.token_name(token)
        )),
        Asset::Erc20 { token } if p.fake_tokens && !run.ex.known_token(token) => out.push(format!(
            "a transfer of token {} (not declared in the watch file) \"from\" the wallet that the wallet did not make: a fake token imitating a real one",
            checksum(token)
        )),
        _ => {}
    }
    out
}
