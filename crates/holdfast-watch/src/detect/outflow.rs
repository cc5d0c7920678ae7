//! Detector 2, outflows from watched wallets: a single transfer above a per-asset threshold,
//! any NFT leaving, the first payment to a destination the wallet never paid, velocity over a
//! sliding window of block time, a drain (more than X % of a balance lost within N blocks)
//! and the whole balance leaving.
//!
//! Balances: the native coin's come from the state diff (exact, every block that changes
//! them); ERC-20 balances from the history seam's `token_balance` (the engine asks the node:
//! `NodeBalances`), only for tokens the wallet sent in the block: the drain compares the
//! balance after the block with the larger of the balances at the window's start and before
//! the block (a peak between them is not seen). Without a state diff the native drain and
//! balance checks do not run (the engine says so at start).

use std::collections::{BTreeMap, BTreeSet};

use rustc_hash::FxHashMap;

use alloy_primitives::{Address, U256};
use holdfast_guard::policy::AssetKey;
use holdfast_primitives::{Asset, AssetKind, Transfer};

use super::explain::{Draft, fact};
use super::state::{ChainState, Outflow};
use super::{DetectError, End, Run, checksum, short};
use crate::alert::{Alert, DetectorKind, Place};
use crate::config::{OutflowParams, Params};

fn params<'a>(run: &'a Run<'_>, r: u32) -> Option<&'a OutflowParams> {
    match &run.d.rule(r).params {
        Params::Outflow(p) => Some(p),
        _ => None,
    }
}

fn history_err(run: &Run<'_>) -> impl Fn(super::HistoryError) -> DetectError {
    let block = run.block.block().number;
    move |source| DetectError::History { block, source }
}

pub(crate) fn detect(
    run: &Run<'_>,
    cs: &mut ChainState,
    alerts: &mut Vec<Alert>,
) -> Result<(), DetectError> {
    let block = run.block.block();
    let chain_id = run.block.chain_id();
    let transfers = &run.block.transfers.transfers;
    // Wallet → rules, asked once per wallet (fast hashes: the keys are a block's senders;
    // what is iterated is sorted first, so alerts come in the same order every time).
    // Sized once for the block's watched senders (growing them by doubling cost more than
    // the rest of the work on a busy block).
    let senders = run.ends.iter().filter(|e| !e[0].is_empty()).count();
    let mut wallets: FxHashMap<Address, std::borrow::Cow<'_, [u32]>> =
        FxHashMap::with_capacity_and_hasher(senders, Default::default());
    let mut new_dest: FxHashMap<(Address, Address), bool> = FxHashMap::default();
    let mut touched: Vec<(u32, Address)> = Vec::with_capacity(senders);
    for (i, t) in transfers.iter().enumerate() {
        if t.from == t.to || (t.amount.is_zero() && t.asset.kind() != AssetKind::Erc721) {
            continue;
        }
        let mut pushed = false;
        let rules = run.transfer_rules(cs, i, End::From, DetectorKind::Outflow);
        if rules.is_empty() {
            continue;
        }
        // Only watched wallets are kept (the balance checks below go over them).
        wallets.entry(t.from).or_insert_with(|| rules.clone());
        for r in rules.iter().copied() {
            let Some(p) = params(run, r) else { continue };
            let rule = run.d.rule(r);
            let mut reasons = Vec::new();
            let key = AssetKey::of(&t.asset);
            for th in &p.amount_above {
                if th.chain == run.cx.chain && th.asset == key && t.amount > th.amount {
                    reasons.push(format!(
                        "more than {} in one transfer",
                        run.ex.amount(&t.asset, th.amount)
                    ));
                }
            }
            if p.any_nft && matches!(t.asset.kind(), AssetKind::Erc721 | AssetKind::Erc1155) {
                reasons.push("an NFT left the wallet".to_owned());
            }
            if p.new_destination {
                let new = match new_dest.get(&(t.from, t.to)) {
                    Some(_) => false, // the first payment of the block was the new one
                    None => {
                        let seen = run
                            .cx
                            .history
                            .has_paid(chain_id, t.from, t.to, block.number)
                            .map_err(history_err(run))?;
                        new_dest.insert((t.from, t.to), !seen);
                        !seen
                    }
                };
                if new {
                    reasons.push(
                        "the first payment to an address this wallet never paid before".to_owned(),
                    );
                }
            }
            if p.velocity.is_some() {
                // One record per transfer, shared by every velocity rule of the wallet.
                if !pushed {
                    cs.push_outflow(
                        t.from,
                        Outflow {
                            block: block.number,
                            timestamp: block.timestamp,
                            token: t.asset.token(),
                            amount: if t.asset.kind() == AssetKind::Erc721 {
                                U256::from(1)
                            } else {
                                t.amount
                            },
                        },
                    );
                    pushed = true;
                }
                touched.push((r, t.from));
            }
            if !reasons.is_empty() {
                alerts.push(run.ex.alert(rule, transfer_draft(run, t, &reasons)));
            }
        }
    }
    touched.sort_unstable();
    touched.dedup();
    for (r, wallet) in touched {
        velocity(run, cs, r, wallet, alerts);
    }
    balances(run, cs, wallets, alerts)
}

fn transfer_draft(run: &Run<'_>, t: &Transfer, reasons: &[String]) -> Draft {
    let amount = run.ex.amount(&t.asset, t.amount);
    Draft {
        place: Place::Transfer {
            tx_index: t.tx_index,
            position: t.position.to_string(),
        },
        tx_index: Some(t.tx_index),
        title: format!(
            "{} sent {amount} to {} ({})",
            short(t.from),
            short(t.to),
            reasons.join("; ")
        ),
        summary: format!(
            "Watched wallet {} sent {amount} to {} in block {}: {}. If this payment was not \
             expected, the wallet's key or its signers may be compromised.",
            run.ex.who(t.from),
            run.ex.who(t.to),
            t.block_number,
            reasons.join("; "),
        ),
        facts: vec![
            fact("amount", amount),
            fact("from", checksum(t.from)),
            fact("to", checksum(t.to)),
            fact("why", reasons.join("; ")),
        ],
        addresses: vec![
            (t.from, "watched wallet".into()),
            (t.to, "recipient".into()),
        ],
    }
}

fn velocity(run: &Run<'_>, cs: &mut ChainState, r: u32, wallet: Address, alerts: &mut Vec<Alert>) {
    let rule = run.d.rule(r);
    let Some(v) = params(run, r).and_then(|p| p.velocity.as_ref()) else {
        return;
    };
    let now = run.block.block().timestamp;
    let from = now.saturating_sub(v.window_secs);
    if let Some(w) = cs.velocity.get_mut(&wallet) {
        super::state::trim_window(w, run.block.block().number, now, run.d.max_window_secs);
    }
    let entries: Vec<&Outflow> = cs
        .velocity
        .get(&wallet)
        .map(|w| {
            w.iter()
                .filter(|o| o.timestamp > from || o.timestamp == now)
                .collect()
        })
        .unwrap_or_default();
    let mut reasons = Vec::new();
    for th in v.amount_above.iter().filter(|t| t.chain == run.cx.chain) {
        let token = match th.asset {
            AssetKey::Native => None,
            AssetKey::Token(t) => Some(t),
        };
        let sum = entries
            .iter()
            .filter(|o| o.token == token)
            .fold(U256::ZERO, |s, o| s.saturating_add(o.amount));
        if sum > th.amount {
            let asset = token.map_or(Asset::Native, |token| Asset::Erc20 { token });
            reasons.push(format!(
                "{} sent within {}s (more than {})",
                run.ex.amount(&asset, sum),
                v.window_secs,
                run.ex.amount(&asset, th.amount)
            ));
        }
    }
    if let Some(c) = v.count_above
        && entries.len() > c as usize
    {
        reasons.push(format!(
            "{} outflows within {}s (more than {c})",
            entries.len(),
            v.window_secs
        ));
    }
    if reasons.is_empty() && !cs.has_episodes(&rule.name) {
        return;
    }
    let key = format!("velocity:{}", checksum(wallet));
    if reasons.is_empty() {
        cs.close_episode(&rule.name, &key, run.block.block().number);
        return;
    }
    if !cs.open_episode(&rule.name, key.clone(), run.block.block().number) {
        return;
    }
    let destinations: BTreeSet<Address> = run
        .block
        .transfers
        .transfers
        .iter()
        .filter(|t| t.from == wallet && t.to != wallet)
        .map(|t| t.to)
        .collect();
    let mut addresses = vec![(wallet, "watched wallet".to_owned())];
    addresses.extend(
        destinations
            .iter()
            .map(|d| (*d, "recipient in this block".to_owned())),
    );
    alerts.push(run.ex.alert(
        rule,
        Draft {
            place: Place::Block { key },
            tx_index: None,
            title: format!(
                "{}: outflow velocity above the limit ({})",
                short(wallet),
                reasons.join("; ")
            ),
            summary: format!(
                "Watched wallet {} is sending faster than its rule allows: {}. A burst of \
                 withdrawals is how a stolen hot key is emptied.",
                run.ex.who(wallet),
                reasons.join("; ")
            ),
            facts: vec![
                fact("why", reasons.join("; ")),
                fact("window", format!("{}s of block time", v.window_secs)),
            ],
            addresses,
        },
    ));
}

/// Native balance at the start and end of the block, per account the state diff touches.
fn native_balances(run: &Run<'_>) -> BTreeMap<Address, (U256, U256)> {
    let mut out: BTreeMap<Address, (U256, U256)> = BTreeMap::new();
    for d in run.block.state.iter().flatten() {
        if let Some((before, after)) = d.balance {
            out.entry(d.address)
                .and_modify(|e| e.1 = after)
                .or_insert((before, after));
        }
    }
    out
}

fn balances<'a>(
    run: &Run<'a>,
    cs: &mut ChainState,
    wallets: FxHashMap<Address, std::borrow::Cow<'a, [u32]>>,
    alerts: &mut Vec<Alert>,
) -> Result<(), DetectError> {
    let block = run.block.block();
    let chain_id = run.block.chain_id();
    let native = native_balances(run);
    let sent = |w: Address| -> Vec<&Transfer> {
        run.block
            .transfers
            .transfers
            .iter()
            .filter(|t| t.from == w && t.to != w && !t.amount.is_zero())
            .collect()
    };
    // Drain and balance checks also cover watched wallets whose balance fell without a
    // transfer record (gas, a self-destruct): every account of the state diff is looked at.
    let mut all = wallets;
    for a in native.keys() {
        if !all.contains_key(a) {
            let r = run.rules_for(cs, *a, DetectorKind::Outflow);
            if !r.is_empty() {
                all.insert(*a, r);
            }
        }
    }
    // In address order.
    let mut all: Vec<(Address, std::borrow::Cow<'_, [u32]>)> = all.into_iter().collect();
    all.sort_unstable_by_key(|(a, _)| *a);
    for (wallet, rules) in &all {
        let rules: &[u32] = rules;
        let drains = rules
            .iter()
            .filter(|r| params(run, **r).is_some_and(|p| p.drain.is_some()))
            .count();
        if let Some((start, end)) = native.get(wallet).copied()
            && drains > 0
        {
            let samples = cs.balances.entry(*wallet).or_default();
            if samples
                .back()
                .is_none_or(|(b, v)| *b < block.number.saturating_sub(1) || *v != start)
            {
                samples.push_back((block.number.saturating_sub(1), start));
            }
            samples.push_back((block.number, end));
            super::state::trim_samples(samples, block.number, run.d.max_drain_blocks);
        }
        for r in rules {
            let Some(p) = params(run, *r) else { continue };
            let rule = run.d.rule(*r);
            if let Some(d) = &p.drain {
                if d.native && native.contains_key(wallet) {
                    let window_start = block.number.saturating_sub(d.blocks);
                    let samples = cs.balances.get(wallet);
                    let peak = samples
                        .into_iter()
                        .flatten()
                        .filter(|(b, _)| *b >= window_start)
                        .map(|(_, v)| *v)
                        .max()
                        .unwrap_or_default();
                    let end = native.get(wallet).map_or(U256::ZERO, |e| e.1);
                    check_drain(
                        run,
                        cs,
                        *r,
                        *wallet,
                        &Asset::Native,
                        peak,
                        end,
                        d.basis_points,
                        d.blocks,
                        alerts,
                    );
                }
                for (chain, token) in d.tokens.iter().filter(|(c, _)| c == run.cx.chain) {
                    let _ = chain;
                    if !sent(*wallet)
                        .iter()
                        .any(|t| t.asset == Asset::Erc20 { token: *token })
                    {
                        continue;
                    }
                    // The larger of the balance at the window's start and at the end of
                    // the previous block: a drain from tokens received inside the window
                    // (the window's start holding none) is still a drain.
                    let h = run.cx.history;
                    let mut before = None;
                    for at in [
                        block.number.saturating_sub(d.blocks),
                        block.number.saturating_sub(1),
                    ] {
                        let b = h
                            .token_balance(chain_id, *wallet, *token, at)
                            .map_err(history_err(run))?;
                        before = before.max(b);
                    }
                    let after = h
                        .token_balance(chain_id, *wallet, *token, block.number)
                        .map_err(history_err(run))?;
                    if let (Some(before), Some(after)) = (before, after) {
                        check_drain(
                            run,
                            cs,
                            *r,
                            *wallet,
                            &Asset::Erc20 { token: *token },
                            before,
                            after,
                            d.basis_points,
                            d.blocks,
                            alerts,
                        );
                    }
                }
            }
            if p.whole_balance {
                whole_balance(
                    run,
                    rule,
                    *wallet,
                    native.get(wallet).copied(),
                    &sent(*wallet),
                    alerts,
                )?;
            }
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn check_drain(
    run: &Run<'_>,
    cs: &mut ChainState,
    r: u32,
    wallet: Address,
    asset: &Asset,
    peak: U256,
    end: U256,
    basis_points: u32,
    blocks: u64,
    alerts: &mut Vec<Alert>,
) {
    let rule = run.d.rule(r);
    let lost = peak.saturating_sub(end);
    let fires = !peak.is_zero()
        && lost.saturating_mul(U256::from(10_000u32))
            > peak.saturating_mul(U256::from(basis_points));
    if !fires && !cs.has_episodes(&rule.name) {
        return;
    }
    let key = format!(
        "drain:{}:{}",
        checksum(wallet),
        asset.token().map_or("native".to_owned(), |t| t.to_string())
    );
    if !fires {
        cs.close_episode(&rule.name, &key, run.block.block().number);
        return;
    }
    if !cs.open_episode(&rule.name, key.clone(), run.block.block().number) {
        return;
    }
    let pct = lost.saturating_mul(U256::from(10_000u32)) / peak;
    let pct = format!(
        "{}.{:02} %",
        pct / U256::from(100u32),
        pct % U256::from(100u32)
    );
    let sent: Vec<&Transfer> = run
        .block
        .transfers
        .transfers
        .iter()
        .filter(|t| t.from == wallet && t.to != wallet && &t.asset == asset && !t.amount.is_zero())
        .collect();
    let mut addresses = vec![(wallet, "watched wallet".to_owned())];
    let mut first_tx = None;
    for t in &sent {
        first_tx = first_tx.or(Some(t.tx_index));
        if !addresses.iter().any(|(a, _)| *a == t.to) {
            addresses.push((t.to, "recipient".to_owned()));
        }
    }
    let mut facts = vec![
        fact("balance before", run.ex.amount(asset, peak)),
        fact("balance now", run.ex.amount(asset, end)),
        fact("lost", format!("{} ({pct})", run.ex.amount(asset, lost))),
        fact(
            "limit",
            format!(
                "more than {}.{:02} % within {blocks} blocks",
                basis_points / 100,
                basis_points % 100
            ),
        ),
    ];
    for t in &sent {
        facts.push(fact(
            "sent",
            format!(
                "{} to {} (tx {})",
                run.ex.amount(&t.asset, t.amount),
                checksum(t.to),
                t.tx_hash
            ),
        ));
    }
    alerts.push(run.ex.alert(
        rule,
        Draft {
            place: Place::Block { key },
            tx_index: first_tx,
            title: format!(
                "{} drained: {} lost ({pct}) within {blocks} blocks",
                short(wallet),
                run.ex.amount(asset, lost)
            ),
            summary: format!(
                "Watched wallet {} lost {pct} of its balance: {} before, {} now. A theft empties \
                 a wallet this way; the first tranches usually leave within the hour.",
                run.ex.who(wallet),
                run.ex.amount(asset, peak),
                run.ex.amount(asset, end),
            ),
            facts,
            addresses,
        },
    ));
}

fn whole_balance(
    run: &Run<'_>,
    rule: &crate::config::Rule,
    wallet: Address,
    native: Option<(U256, U256)>,
    sent: &[&Transfer],
    alerts: &mut Vec<Alert>,
) -> Result<(), DetectError> {
    let block = run.block.block();
    let mut emptied: Vec<(Asset, U256)> = Vec::new();
    if let Some((start, end)) = native
        && !start.is_zero()
        && end.is_zero()
    {
        emptied.push((Asset::Native, start));
    }
    let tokens: BTreeSet<Address> = sent
        .iter()
        .filter_map(|t| match t.asset {
            Asset::Erc20 { token } if run.ex.known_token(token) => Some(token),
            _ => None,
        })
        .collect();
    for token in tokens {
        let after = run
            .cx
            .history
            .token_balance(run.block.chain_id(), wallet, token, block.number)
            .map_err(history_err(run))?;
        if after == Some(U256::ZERO) {
            let out = sent
                .iter()
                .filter(|t| t.asset == Asset::Erc20 { token })
                .fold(U256::ZERO, |s, t| s.saturating_add(t.amount));
            emptied.push((Asset::Erc20 { token }, out));
        }
    }
    for (asset, amount) in emptied {
        let key = format!(
            "balance:{}:{}",
            checksum(wallet),
            asset.token().map_or("native".to_owned(), |t| t.to_string())
        );
        let mut addresses = vec![(wallet, "watched wallet".to_owned())];
        let mut tx_index = None;
        for t in sent.iter().filter(|t| t.asset == asset) {
            tx_index = tx_index.or(Some(t.tx_index));
            if !addresses.iter().any(|(a, _)| *a == t.to) {
                addresses.push((t.to, "recipient".to_owned()));
            }
        }
        let what = run.ex.amount(&asset, amount);
        alerts.push(run.ex.alert(
            rule,
            Draft {
                place: Place::Block { key },
                tx_index,
                title: format!("{}: whole balance left ({what})", short(wallet)),
                summary: format!(
                    "Watched wallet {} holds none of this asset any more: {what} left it in \
                     block {}.",
                    run.ex.who(wallet),
                    block.number
                ),
                facts: vec![fact("left", what), fact("balance now", "0")],
                addresses,
            },
        ));
    }
    Ok(())
}
