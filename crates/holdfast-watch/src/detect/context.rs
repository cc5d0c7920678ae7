//! The seams the engine implements for the detectors: what intel says of an address, and
//! what a wallet did before the block.

use std::collections::HashMap;

use alloy_primitives::{Address, U256};
use holdfast_intel::IntelIndex;
use holdfast_primitives::{Category, Date};

use super::poisoning::Lookalike;

/// One label of an address, as an alert shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressLabel {
    pub category: Category,
    /// In words: `ofac-sdn: LAZARUS GROUP (sanctioned)`.
    pub text: String,
}

/// What intel knows of an address on a chain. The engine implements it over the current
/// `IntelIndex` (swapped when labels are added at run time: every block reads the newest).
pub trait Labels: Send + Sync {
    fn labels(&self, chain_id: u64, address: Address) -> Vec<AddressLabel>;
}

/// Labels of an intel index active on `day` (the block's date is not used: a label added
/// today about an old address counts today).
impl Labels for IntelIndex {
    fn labels(&self, _chain_id: u64, address: Address) -> Vec<AddressLabel> {
        let labels = self.evm_labels(&address);
        if labels.is_empty() {
            // Most addresses of a block: no clock read (asked for every transfer's far end).
            return Vec::new();
        }
        let today = Date::today();
        labels
            .iter()
            .filter(|l| l.active_on(today))
            .map(|l| {
                let who = self
                    .name(l)
                    .or_else(|| self.actor(l))
                    .map(|n| format!(": {n}"))
                    .unwrap_or_default();
                AddressLabel {
                    category: l.category,
                    text: format!("{}{who} ({})", self.source(l), l.category),
                }
            })
            .collect()
    }
}

/// A fixed map (tests, `holdfast watch test`).
impl Labels for HashMap<Address, Vec<AddressLabel>> {
    fn labels(&self, _chain_id: u64, address: Address) -> Vec<AddressLabel> {
        self.get(&address).cloned().unwrap_or_default()
    }
}

/// No intel.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoLabels;

impl Labels for NoLabels {
    fn labels(&self, _chain_id: u64, _address: Address) -> Vec<AddressLabel> {
        Vec::new()
    }
}

/// The history seam could not answer.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct HistoryError {
    pub message: String,
    /// `Some` when asking again may succeed: the outage it met (a database's, or the node's
    /// for token balances).
    pub outage: Option<Outage>,
}

/// What was unavailable, when asking again later may succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outage {
    /// The node did not answer (or answered that it is unavailable).
    Node,
    /// A database (the watch's store, the transfer store, the history read from it) was
    /// unavailable.
    Store,
}

/// A wallet's past, before the block being inspected. The engine implements it over the
/// transfer store (and the node, for token balances). Every answer is about blocks strictly
/// before `before_block` (or at the end of `block`), so live and replay agree.
pub trait History: Send + Sync {
    /// Whether `from` paid `to` anything in a block before `before_block`.
    fn has_paid(
        &self,
        chain_id: u64,
        from: Address,
        to: Address,
        before_block: u64,
    ) -> Result<bool, HistoryError>;

    /// Up to `limit` addresses `wallet` paid before `before_block`, newest first (its real
    /// counterparties, which look-alikes imitate).
    fn counterparties(
        &self,
        chain_id: u64,
        wallet: Address,
        before_block: u64,
        limit: usize,
    ) -> Result<Vec<Address>, HistoryError>;

    /// The smallest (in address order) of the counterparties [`History::counterparties`]
    /// gives that `lookalike` imitates: what the poisoning detector asks of every transfer a
    /// watched wallet takes part in. The default asks `counterparties`; a cache answers from
    /// what it holds without copying it.
    fn find_lookalike(
        &self,
        chain_id: u64,
        wallet: Address,
        before_block: u64,
        limit: usize,
        lookalike: &Lookalike,
    ) -> Result<Option<Address>, HistoryError> {
        Ok(self
            .counterparties(chain_id, wallet, before_block, limit)?
            .into_iter()
            .filter(|c| lookalike.imitates(*c))
            .min())
    }

    /// `holder`'s balance of ERC-20 `token` at the end of `block`; `None` when unknown
    /// (then the token drain and whole-balance checks are skipped for it).
    fn token_balance(
        &self,
        chain_id: u64,
        holder: Address,
        token: Address,
        block: u64,
    ) -> Result<Option<U256>, HistoryError>;

    /// Block `block` of chain `chain_id` was run with these transfers (stored before it
    /// ran): a history that caches may extend what it holds instead of reading the store
    /// again. Only the block right after the last observed one extends the cache; any other
    /// (a reorg, a replay again, blocks run elsewhere meanwhile) must not extend anything.
    fn observe(&self, _chain_id: u64, _block: u64, _transfers: &[holdfast_primitives::Transfer]) {}

    /// The wallets the detectors will ask about (the watched ones): a history that caches
    /// may keep what `observe` shows of them before they are asked, so that their first
    /// question reads only what came before the observation. Default: nothing.
    fn track(&self, _wallets: &[Address]) {}
}

/// No history: every destination is new, no wallet has counterparties, no token balance is
/// known (tests, and a watch without a transfer store).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHistory;

impl History for NoHistory {
    fn has_paid(&self, _: u64, _: Address, _: Address, _: u64) -> Result<bool, HistoryError> {
        Ok(false)
    }
    fn counterparties(
        &self,
        _: u64,
        _: Address,
        _: u64,
        _: usize,
    ) -> Result<Vec<Address>, HistoryError> {
        Ok(Vec::new())
    }
    fn token_balance(
        &self,
        _: u64,
        _: Address,
        _: Address,
        _: u64,
    ) -> Result<Option<U256>, HistoryError> {
        Ok(None)
    }
}
