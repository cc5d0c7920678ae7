//! The built-in detectors 1–5 (`docs/WATCH.md`): pure functions over a block
//! ([`BlockDetail`]), the watch file, a [`DetectorState`] the engine carries from block to
//! block in its checkpoint, and two seams it implements: [`Labels`] (intel, reloadable at run
//! time) and [`History`] (the wallet's past, from the transfer store).
//!
//! - `storage`: critical storage changes (Safe singleton, owners, threshold, modules, guard,
//!   fallback handler, module guard; EIP-1967 slots; admin events), from the state diff and
//!   the logs, with the DELEGATECALL it happened under.
//! - `outflow`: thresholds, velocity, drain, new destinations, the whole balance leaving.
//! - `grant`: approvals and permits to spenders outside an allowlist.
//! - `counterparty`: a watched address dealing with a sanctioned, DPRK, mixer or tainted one.
//! - `poisoning`: zero-value and fake-token transfers, look-alike addresses.
//! - `safes`: Safes joining `safes_owned_by` sets.
//!
//! Every alert has a deterministic id ([`alert_id`]) and is raised once per occurrence: what
//! a block shows twice (a log and a storage write, a call and its event) is one alert.

mod balances;
mod context;
mod counterparty;
mod early;
mod explain;
mod grant;
mod history;
mod outflow;
mod poisoning;
mod rules;
mod safes;
mod state;
mod storage;
#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use alloy_primitives::{Address, B256};
use holdfast_chain::BlockDetail;
use holdfast_guard::safe::{mapping_slot, slots};

pub use balances::NodeBalances;
pub use context::{AddressLabel, History, HistoryError, Labels, NoHistory, NoLabels, Outage};
pub use early::{EARLY_SLOTS, EarlyStorage, EarlyTarget, MAX_EARLY_CONTRACTS};
pub use grant::unlimited;
pub use history::{MAX_CACHED_DESTINATIONS, MAX_CACHED_WALLETS, StoreHistory};
pub use poisoning::{COUNTERPARTY_LIMIT, Lookalike, looks_like};
pub use rules::{FileRules, RulesError, STATE_PENDING, STATE_STAMP};
pub(crate) use safes::{address_arg, data_word, setup_owners, word_address};
pub use state::{
    ChainState, DetectorState, Episode, MAX_DYNAMIC_MEMBERS, MAX_WINDOW_ENTRIES, Membership,
    Outflow, REORG_HORIZON, STATE_FORMAT, SWEEP_EVERY,
};

use crate::alert::{Alert, DetectorKind};
use crate::config::{Params, Rule, WatchConfig};
use explain::Explain;

/// What the detectors read besides the block, the file and their state.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    /// The chain's name in the watch file (its `[[chain]]`).
    pub chain: &'a str,
    /// Confirmations of the block now (0: the head), copied into the alerts.
    pub confirmations: u64,
    pub labels: &'a dyn Labels,
    pub history: &'a dyn History,
}

impl std::fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("chain", &self.chain)
            .field("confirmations", &self.confirmations)
            .finish_non_exhaustive()
    }
}

/// A detector could not finish a block (its state is left as it was).
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error("chain {0:?} is not in the watch file")]
    UnknownChain(String),
    #[error("history of block {block}: {source}")]
    History {
        block: u64,
        #[source]
        source: HistoryError,
    },
}

/// The watch file's rules, indexed for the detectors: which sets an address is in, which
/// rules of each detector target a set. Built once per configuration.
#[derive(Debug, Clone)]
pub struct Detectors {
    config: WatchConfig,
    /// Address → the sets it is a static member of (asked for both ends of every transfer
    /// by every detector: a fast hash).
    members: rustc_hash::FxHashMap<Address, SetList>,
    /// One bit per [`member_bit`] of every static member: a clear bit answers "in no set"
    /// without the hash lookup (most addresses of a block are in none).
    member_bits: Vec<u64>,
    /// Chain (index in the file) → set → detector (as index) → the rules targeting the set
    /// that apply to the chain, in file order.
    chain_rules: Vec<Vec<[Vec<u32>; 6]>>,
    /// Owner → the sets whose `safes_owned_by` names it.
    owner_sets: HashMap<Address, Vec<u32>>,
    /// `keccak(owner . 2)` (a Safe's `owners[owner]` slot) → owner, for those owners.
    owner_slots: HashMap<B256, Address>,
    /// Sets that have `safes_owned_by` (dynamic members).
    dynamic_sets: Vec<u32>,
    /// The longest drain window of any rule (balance samples kept that long).
    max_drain_blocks: u64,
    /// The longest velocity window, in seconds.
    max_window_secs: u64,
}

impl Detectors {
    pub fn new(config: &WatchConfig) -> Detectors {
        let mut lists: rustc_hash::FxHashMap<Address, Vec<u32>> = Default::default();
        let mut owner_sets: HashMap<Address, Vec<u32>> = HashMap::new();
        let mut dynamic_sets = Vec::new();
        for (i, s) in config.sets.iter().enumerate() {
            let i = i as u32;
            for a in &s.addresses {
                lists.entry(*a).or_default().push(i);
            }
            for o in &s.safes_owned_by {
                owner_sets.entry(*o).or_default().push(i);
            }
            if !s.safes_owned_by.is_empty() {
                dynamic_sets.push(i);
            }
        }
        let mut chain_rules: Vec<Vec<[Vec<u32>; 6]>> =
            vec![vec![Default::default(); config.sets.len()]; config.chains.len()];
        let (mut max_drain_blocks, mut max_window_secs) = (0, 0);
        for (r, rule) in config.rules.iter().enumerate() {
            for (c, chain) in config.chains.iter().enumerate() {
                if !rule.applies_to_chain(&chain.name) {
                    continue;
                }
                for t in &rule.targets {
                    chain_rules[c][*t][kind_index(rule.detector)].push(r as u32);
                }
            }
            if let Params::Outflow(p) = &rule.params {
                if let Some(d) = &p.drain {
                    max_drain_blocks = max_drain_blocks.max(d.blocks);
                }
                if let Some(v) = &p.velocity {
                    max_window_secs = max_window_secs.max(v.window_secs);
                }
            }
        }
        let members: rustc_hash::FxHashMap<Address, SetList> = lists
            .into_iter()
            .map(|(a, sets)| (a, SetList::of(sets)))
            .collect();
        let mut member_bits = vec![0u64; MEMBER_BITS / 64];
        for a in members.keys() {
            let b = member_bit(a);
            member_bits[b / 64] |= 1 << (b % 64);
        }
        let owner_slots = owner_sets
            .keys()
            .map(|o| (mapping_slot(*o, slots::OWNERS_MAPPING), *o))
            .collect();
        Detectors {
            config: config.clone(),
            members,
            member_bits,
            chain_rules,
            owner_sets,
            owner_slots,
            dynamic_sets,
            max_drain_blocks,
            max_window_secs,
        }
    }

    pub fn config(&self) -> &WatchConfig {
        &self.config
    }

    /// Every address a set lists (not the Safes that join `safes_owned_by` sets).
    pub fn static_members(&self) -> Vec<Address> {
        let mut out: Vec<Address> = self.members.keys().copied().collect();
        out.sort_unstable();
        out
    }

    /// Runs detectors 1–5 over one block of chain `cx.chain`. The state advances to this
    /// block only when it succeeds (on an error it is as it was); a block at or below the state's last block first unwinds
    /// the state above its parent (a re-run after a crash, or a reorg the engine did not
    /// announce), so running a block twice gives the same alerts and the same state.
    pub fn run(
        &self,
        block: &BlockDetail,
        state: &mut DetectorState,
        cx: &Context<'_>,
    ) -> Result<Vec<Alert>, DetectError> {
        self.run_with(block, state, cx, None)
    }

    /// The first look at a head: [`Detectors::run`] over its detail without state diffs,
    /// with the critical slots read for it ([`Detectors::early_targets`]). Critical-storage
    /// alerts are raised only where the reads show the whole change (`detect::early`).
    /// Runs on the state it is given: pass a copy.
    pub fn preview(
        &self,
        block: &BlockDetail,
        state: &mut DetectorState,
        cx: &Context<'_>,
        early: &EarlyStorage,
    ) -> Result<Vec<Alert>, DetectError> {
        self.run_with(block, state, cx, Some(early))
    }

    fn run_with(
        &self,
        block: &BlockDetail,
        state: &mut DetectorState,
        cx: &Context<'_>,
        early: Option<&EarlyStorage>,
    ) -> Result<Vec<Alert>, DetectError> {
        let chain_index = self
            .config
            .chains
            .iter()
            .position(|c| c.name == cx.chain)
            .ok_or_else(|| DetectError::UnknownChain(cx.chain.to_owned()))?;
        let chain = &self.config.chains[chain_index];
        let number = block.block().number;
        let cs = state.chains.entry(cx.chain.to_owned()).or_default();
        let last = cs.last_block;
        if last.is_some_and(|last| number <= last) {
            cs.unwind_above(number.saturating_sub(1));
        }
        let before = cs.last_block;
        let ex = Explain::new(&self.config, chain, block, cx);
        // Each transfer's ends looked up once for every detector.
        let ends: Vec<[&[u32]; 2]> = block
            .transfers
            .transfers
            .iter()
            .map(|t| [self.static_sets(t.from), self.static_sets(t.to)])
            .collect();
        let run = Run {
            d: self,
            block,
            cx,
            ex: &ex,
            early,
            chain: chain_index,
            ends: &ends,
        };
        let mut alerts = Vec::new();
        // In place, without a copy of the state: everything a block adds is tagged with its
        // number, so a failure unwinds exactly what this block did.
        if let Err(e) = self.detect_all(&run, cs, &mut alerts) {
            cs.unwind_above(number.saturating_sub(1));
            cs.last_block = before;
            return Err(e);
        }
        cs.last_block = Some(number);
        cs.sweep(
            number,
            block.block().timestamp,
            self.max_drain_blocks,
            self.max_window_secs,
        );
        let mut seen = HashSet::new();
        alerts.retain(|a: &Alert| seen.insert(a.id.clone()));
        Ok(alerts)
    }

    fn detect_all(
        &self,
        run: &Run<'_>,
        cs: &mut ChainState,
        alerts: &mut Vec<Alert>,
    ) -> Result<(), DetectError> {
        safes::update(self, run.block, cs);
        storage::detect(run, cs, alerts);
        outflow::detect(run, cs, alerts)?;
        grant::detect(run, cs, alerts);
        counterparty::detect(run, cs, alerts);
        poisoning::detect(run, cs, alerts)?;
        Ok(())
    }

    /// The rules of `detector` on chain `chain` that target a set `address` is in
    /// (statically or as a Safe that joined a dynamic set), in file order.
    pub(crate) fn rules_for(
        &self,
        cs: &ChainState,
        chain: &str,
        address: Address,
        detector: DetectorKind,
    ) -> Vec<u32> {
        match self.config.chains.iter().position(|c| c.name == chain) {
            Some(c) => self.chain_rules_for(cs, c, address, detector).into_owned(),
            None => Vec::new(),
        }
    }

    /// [`Detectors::rules_for`] by the chain's index in the file: borrowed when the address
    /// is in one set only (asked for both ends of every transfer by every detector).
    pub(crate) fn chain_rules_for(
        &self,
        cs: &ChainState,
        chain: usize,
        address: Address,
        detector: DetectorKind,
    ) -> Cow<'_, [u32]> {
        self.chain_rules_in(cs, chain, address, self.static_sets(address), detector)
    }

    /// The sets `address` is a static member of (from the watch file).
    pub(crate) fn static_sets(&self, address: Address) -> &[u32] {
        let b = member_bit(&address);
        if self.member_bits[b / 64] & (1 << (b % 64)) == 0 {
            &[][..]
        } else {
            self.members
                .get(&address)
                .map_or(&[][..], SetList::as_slice)
        }
    }

    /// [`Detectors::chain_rules_for`] with `address`'s static sets already looked up.
    fn chain_rules_in<'s>(
        &'s self,
        cs: &ChainState,
        chain: usize,
        address: Address,
        sets: &'s [u32],
        detector: DetectorKind,
    ) -> Cow<'s, [u32]> {
        let k = kind_index(detector);
        let table = &self.chain_rules[chain];
        let dynamic = self
            .dynamic_sets
            .iter()
            .filter(|s| cs.is_dynamic_member(&self.config.sets[**s as usize].name, address));
        if self.dynamic_sets.is_empty() {
            match sets {
                [] => return Cow::Borrowed(&[]),
                [one] => return Cow::Borrowed(&table[*one as usize][k]),
                _ => {}
            }
        }
        let mut out: Vec<u32> = Vec::new();
        for s in sets.iter().chain(dynamic) {
            out.extend_from_slice(&table[*s as usize][k]);
        }
        out.sort_unstable();
        out.dedup();
        Cow::Owned(out)
    }

    /// Whether `address` is in set `set` (statically or dynamically).
    pub(crate) fn in_set(&self, cs: &ChainState, set: usize, address: Address) -> bool {
        self.members
            .get(&address)
            .is_some_and(|s| s.as_slice().contains(&(set as u32)))
            || cs.is_dynamic_member(&self.config.sets[set].name, address)
    }

    pub(crate) fn rule(&self, r: u32) -> &Rule {
        &self.config.rules[r as usize]
    }
}

/// The sets an address is a static member of: one, in the map's entry (most addresses),
/// or several.
#[derive(Debug, Clone)]
enum SetList {
    One(u32),
    Many(Box<[u32]>),
}

impl SetList {
    fn of(sets: Vec<u32>) -> SetList {
        match sets.as_slice() {
            [one] => SetList::One(*one),
            _ => SetList::Many(sets.into_boxed_slice()),
        }
    }

    fn as_slice(&self) -> &[u32] {
        match self {
            SetList::One(s) => std::slice::from_ref(s),
            SetList::Many(s) => s,
        }
    }
}

/// Bits of the static-membership filter (32 KiB).
const MEMBER_BITS: usize = 1 << 18;

/// An address's bit in the membership filter: its last bytes, which are as good as random
/// for real addresses (a hash would cost what the filter saves).
fn member_bit(a: &Address) -> usize {
    let b = a.as_slice();
    (usize::from(b[17]) << 16 | usize::from(b[18]) << 8 | usize::from(b[19])) % MEMBER_BITS
}

/// One block's run: what every detector reads.
pub(crate) struct Run<'a> {
    pub d: &'a Detectors,
    pub block: &'a BlockDetail,
    pub cx: &'a Context<'a>,
    pub ex: &'a Explain<'a>,
    /// At a first look: the critical slots read (storage findings only where they show the
    /// whole change).
    pub early: Option<&'a EarlyStorage>,
    /// The chain's index in the file.
    pub chain: usize,
    /// The static sets of each transfer's sender and recipient ([`End`]), by the transfer's
    /// index in the block.
    pub ends: &'a [[&'a [u32]; 2]],
}

/// An end of a transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    From = 0,
    To = 1,
}

impl<'a> Run<'a> {
    pub fn rules_for(
        &self,
        cs: &ChainState,
        address: Address,
        detector: DetectorKind,
    ) -> Cow<'a, [u32]> {
        self.d.chain_rules_for(cs, self.chain, address, detector)
    }

    /// [`Run::rules_for`] the sender or recipient of the block's transfer `i`.
    pub fn transfer_rules(
        &self,
        cs: &ChainState,
        i: usize,
        end: End,
        detector: DetectorKind,
    ) -> Cow<'a, [u32]> {
        let t = &self.block.transfers.transfers[i];
        let (address, sets) = match end {
            End::From => (t.from, self.ends[i][0]),
            End::To => (t.to, self.ends[i][1]),
        };
        self.d
            .chain_rules_in(cs, self.chain, address, sets, detector)
    }
}

const fn kind_index(k: DetectorKind) -> usize {
    match k {
        DetectorKind::CriticalStorage => 0,
        DetectorKind::Outflow => 1,
        DetectorKind::Grant => 2,
        DetectorKind::Counterparty => 3,
        DetectorKind::Poisoning => 4,
        DetectorKind::TaintedDeposit => 5,
    }
}

/// The first and last 4 hex digits of an address, for titles (`0x1Db9…c4B8`).
pub(crate) fn short(a: Address) -> String {
    with_checksum(a, |s| format!("{}…{}", &s[..6], &s[s.len() - 4..]))
}

/// Checksummed addresses remembered per thread (cleared when full).
const CHECKSUMS_CACHED: usize = 1 << 16;

/// `a` in EIP-55 checksum case, as alerts print it. An alert names the same few addresses
/// several times (title, summary, facts, links) and a watched wallet recurs block after
/// block; each checksum is a keccak, so they are remembered.
pub(crate) fn checksum(a: Address) -> String {
    with_checksum(a, str::to_owned)
}

/// `f` of `a`'s EIP-55 checksum text, from the per-thread cache (no copy of it).
fn with_checksum<T>(a: Address, f: impl FnOnce(&str) -> T) -> T {
    thread_local! {
        static CACHE: std::cell::RefCell<rustc_hash::FxHashMap<Address, String>> =
            std::cell::RefCell::new(rustc_hash::FxHashMap::default());
    }
    CACHE.with_borrow_mut(|cache| {
        if cache.len() >= CHECKSUMS_CACHED && !cache.contains_key(&a) {
            cache.clear();
        }
        f(cache.entry(a).or_insert_with(|| a.to_checksum(None)))
    })
}
