//! Critical storage at the first look: a head's detail without state diffs says nothing of
//! storage, so the watch reads the fixed critical slots (a Safe's singleton, threshold,
//! guard, fallback handler and module guard; the EIP-1967 implementation, admin and beacon)
//! of the watched contracts the block touched, at the block and at its parent, by hash.
//! The difference is the block's change. It is the change of one transaction only when one
//! transaction alone ran code as that contract, which the call frames show: every execution
//! in a contract's storage starts with a call into it (a DELEGATECALL it makes runs inside
//! such a call). A contract touched by several transactions, created or destroyed in the
//! block, and the owners and modules lists (mappings whose keys the reads cannot know) wait
//! for the full block's state diff.
//!
//! So an early critical-storage alert holds the same writes and events, and the same words,
//! as the full block's (the detector tests check it on every scenario block), and the Bybit
//! takeover's singleton swap is announced with the first look, not after the replay with
//! state diffs.

use std::collections::{BTreeMap, BTreeSet};

use alloy_primitives::{Address, B256, U256};
use holdfast_chain::{BlockDetail, CallKind, SlotChange, StateDiff};
use holdfast_guard::safe::{eip1967, slots};

use super::{ChainState, DetectorState, Detectors};
use crate::alert::DetectorKind;
use crate::config::{CriticalChange, Params};

/// The slots read at the first look, each fully describing its change.
pub const EARLY_SLOTS: [B256; 8] = [
    slots::SINGLETON,
    B256::new(U256::from_limbs([slots::THRESHOLD, 0, 0, 0]).to_be_bytes::<32>()),
    slots::GUARD,
    slots::FALLBACK_HANDLER,
    slots::MODULE_GUARD,
    eip1967::IMPLEMENTATION,
    eip1967::ADMIN,
    eip1967::BEACON,
];

/// The most contracts whose slots one first look reads (the rest wait for the full block).
pub const MAX_EARLY_CONTRACTS: usize = 256;

/// How a change can be seen at the first look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Early {
    /// From its event alone, as in the full block (no slot is ever classified as it).
    Event,
    /// From one of [`EARLY_SLOTS`] and its events.
    Slot,
    /// Only from the full state diff.
    Never,
}

pub(crate) const fn early(change: CriticalChange) -> Early {
    match change {
        CriticalChange::Ownership | CriticalChange::Roles => Early::Event,
        CriticalChange::Owners | CriticalChange::Modules => Early::Never,
        CriticalChange::Singleton
        | CriticalChange::Threshold
        | CriticalChange::Guard
        | CriticalChange::FallbackHandler
        | CriticalChange::ModuleGuard
        | CriticalChange::Implementation
        | CriticalChange::Admin
        | CriticalChange::Beacon => Early::Slot,
    }
}

/// A watched contract one transaction of a head touched: where to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EarlyTarget {
    pub address: Address,
    pub tx_index: u32,
}

/// What the first look read: the targets' [`EARLY_SLOTS`] at the parent and at the block.
#[derive(Debug, Clone, Default)]
pub struct EarlyStorage {
    /// Per target, the slots that changed, as the transaction's state diff would show them.
    pub diffs: Vec<StateDiff>,
    /// The targets read (a contract whose slots did not change has no diff).
    pub read: BTreeSet<(u32, Address)>,
}

impl EarlyStorage {
    /// From the values of `targets` × [`EARLY_SLOTS`] (in that order) at the parent
    /// (`before`) and the block (`after`).
    pub fn from_reads(targets: &[EarlyTarget], before: &[B256], after: &[B256]) -> Self {
        let mut out = EarlyStorage::default();
        for (i, t) in targets.iter().enumerate() {
            out.read.insert((t.tx_index, t.address));
            let storage: Vec<SlotChange> = EARLY_SLOTS
                .iter()
                .enumerate()
                .filter_map(|(j, slot)| {
                    let k = i * EARLY_SLOTS.len() + j;
                    let (b, a) = (*before.get(k)?, *after.get(k)?);
                    (b != a).then_some(SlotChange {
                        slot: *slot,
                        before: b,
                        after: a,
                    })
                })
                .collect();
            if !storage.is_empty() {
                out.diffs.push(StateDiff {
                    tx_index: t.tx_index,
                    address: t.address,
                    balance: None,
                    code_changed: false,
                    storage,
                });
            }
        }
        out
    }

    /// The reads to make for `targets`: each target's [`EARLY_SLOTS`].
    pub fn reads(targets: &[EarlyTarget]) -> Vec<(Address, B256)> {
        targets
            .iter()
            .flat_map(|t| EARLY_SLOTS.iter().map(|s| (t.address, *s)))
            .collect()
    }
}

impl Detectors {
    /// The watched contracts of chain `chain` whose critical slots the first look at `block`
    /// reads: those with a critical-storage rule that looks at a slot change, into which
    /// exactly one transaction called (with input, or which emitted a log or made a
    /// DELEGATECALL: code ran), not created or destroyed in the block. At most
    /// [`MAX_EARLY_CONTRACTS`], in address order. None without complete call frames.
    pub fn early_targets(
        &self,
        block: &BlockDetail,
        state: &DetectorState,
        chain: &str,
    ) -> Vec<EarlyTarget> {
        if !block.calls_complete {
            return Vec::new();
        }
        let empty = ChainState::default();
        let cs = state.chains.get(chain).unwrap_or(&empty);
        // Contract → the transactions that entered it (None: excluded).
        let mut entered: BTreeMap<Address, Option<u32>> = BTreeMap::new();
        let mut ran: BTreeSet<Address> = BTreeSet::new();
        let mut enter = |a: Address, tx: u32, excluded: bool| {
            let e = entered.entry(a).or_insert(Some(tx));
            if excluded || e.is_some_and(|t| t != tx) {
                *e = None;
            }
        };
        for c in &block.calls {
            match c.kind {
                CallKind::Call | CallKind::StaticCall | CallKind::CallCode => {
                    enter(c.to, c.tx_index, false);
                    if !c.input.is_empty() && c.kind != CallKind::CallCode {
                        ran.insert(c.to);
                    }
                }
                CallKind::DelegateCall => {
                    ran.insert(c.from);
                }
                CallKind::Create | CallKind::Create2 => enter(c.to, c.tx_index, true),
                CallKind::SelfDestruct => enter(c.from, c.tx_index, true),
            }
        }
        for l in &block.logs {
            ran.insert(l.address);
        }
        let mut out = Vec::new();
        for (address, tx) in entered {
            let Some(tx_index) = tx else { continue };
            if !ran.contains(&address) {
                continue;
            }
            let looks = self
                .rules_for(cs, chain, address, DetectorKind::CriticalStorage)
                .into_iter()
                .any(|r| match &self.rule(r).params {
                    Params::CriticalStorage(p) => {
                        p.changes.iter().any(|c| early(*c) == Early::Slot)
                    }
                    _ => false,
                });
            if looks {
                out.push(EarlyTarget { address, tx_index });
                if out.len() == MAX_EARLY_CONTRACTS {
                    break;
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use alloy_primitives::{Bytes, keccak256};

    use super::*;
    use crate::alert::Alert;
    use crate::detect::testing::{addr, block, config, run, word};
    use crate::detect::{Context, NoHistory, NoLabels};

    const SAFE: Address = Address::repeat_byte(0x5a);

    fn watched() -> crate::config::WatchConfig {
        config(&format!(
            "[[set]]\nname = \"treasury\"\naddresses = [\"{SAFE}\"]\n\n[[rule]]\nname = \
             \"takeover\"\ndetector = \"critical_storage\"\ntargets = [\"treasury\"]\nseverity \
             = \"critical\"\n"
        ))
    }

    /// What the node answers for the targets' slots: the block's first `before` and last
    /// `after` of each slot in the full state diff (unchanged slots read as zero).
    fn reads_from(full: &BlockDetail, targets: &[EarlyTarget]) -> EarlyStorage {
        let reads = EarlyStorage::reads(targets);
        let (mut before, mut after) = (Vec::new(), Vec::new());
        for (a, slot) in &reads {
            let writes: Vec<_> = full
                .state
                .iter()
                .flatten()
                .filter(|d| d.address == *a)
                .flat_map(|d| d.storage.iter().filter(|s| s.slot == *slot))
                .collect();
            before.push(writes.first().map_or(B256::ZERO, |s| s.before));
            after.push(writes.last().map_or(B256::ZERO, |s| s.after));
        }
        EarlyStorage::from_reads(targets, &before, &after)
    }

    /// The first look at `full`: targets, reads as the node would answer, preview.
    fn first_look(cfg: &crate::config::WatchConfig, full: &BlockDetail) -> Vec<Alert> {
        let d = Detectors::new(cfg);
        let mut first = full.clone();
        first.state = None;
        let targets = d.early_targets(&first, &DetectorState::default(), "eth");
        let early = reads_from(full, &targets);
        let cx = Context {
            chain: "eth",
            confirmations: 0,
            labels: &NoLabels,
            history: &NoHistory,
        };
        d.preview(&first, &mut DetectorState::default(), &cx, &early)
            .unwrap()
    }

    /// The Bybit shape (execTransaction → DELEGATECALL → DELEGATECALL writing slot 0), and
    /// `extra` transactions after it.
    fn takeover(extra: impl FnOnce(&mut crate::detect::testing::BlockBuilder)) -> BlockDetail {
        let (singleton, swap, sweeper) = (addr(0x11), addr(0x22), addr(0x33));
        let mut b = block(100);
        let tx = b.tx(
            addr(0xa7),
            SAFE,
            U256::ZERO,
            Bytes::from(keccak256("execTransaction()")[..4].to_vec()),
        );
        b.call(
            tx,
            &[0],
            CallKind::DelegateCall,
            SAFE,
            singleton,
            U256::ZERO,
            Bytes::new(),
        )
        .call(
            tx,
            &[0, 0],
            CallKind::DelegateCall,
            SAFE,
            swap,
            U256::ZERO,
            Bytes::new(),
        )
        .slot(tx, SAFE, slots::SINGLETON, word(singleton), word(sweeper));
        extra(&mut b);
        b.build()
    }

    #[test]
    fn a_takeover_by_one_transaction_is_raised_at_the_first_look_word_for_word() {
        let cfg = watched();
        let full = takeover(|_| {});
        let all = run(&cfg, &full, &mut DetectorState::default());
        assert_eq!(all.len(), 1);
        assert_eq!(first_look(&cfg, &full), all);
    }

    #[test]
    fn a_contract_entered_by_two_transactions_waits_for_the_full_block() {
        let cfg = watched();
        // A second transaction swaps the singleton again: the block-level change (0x11… →
        // 0x44…) is neither transaction's, so no early alert; the full block has both.
        let full = takeover(|b| {
            let tx = b.tx(addr(1), SAFE, U256::ZERO, Bytes::from(vec![1, 2, 3, 4]));
            b.call(
                tx,
                &[0],
                CallKind::DelegateCall,
                SAFE,
                addr(0x33),
                U256::ZERO,
                Bytes::new(),
            )
            .slot(
                tx,
                SAFE,
                slots::SINGLETON,
                word(addr(0x33)),
                word(addr(0x44)),
            );
        });
        let all = run(&cfg, &full, &mut DetectorState::default());
        assert_eq!(all.len(), 2, "{all:#?}");
        let early = first_look(&cfg, &full);
        assert!(early.iter().all(|a| all.contains(a)), "{early:#?}");
        assert!(early.is_empty());
    }

    #[test]
    fn only_contracts_that_ran_code_once_and_were_not_created_are_read() {
        let cfg = watched();
        let d = Detectors::new(&cfg);
        let targets = |b: &BlockDetail| d.early_targets(b, &DetectorState::default(), "eth");
        // A plain payment (no input, no log, no DELEGATECALL): nothing ran as the Safe.
        let mut b = block(5);
        b.tx(addr(1), SAFE, U256::from(1), Bytes::new());
        assert!(targets(&b.build()).is_empty());
        // ... a log from it shows code ran.
        b.log(0, SAFE, vec![B256::repeat_byte(1)], Vec::new());
        assert_eq!(
            targets(&b.build()),
            vec![EarlyTarget {
                address: SAFE,
                tx_index: 0
            }]
        );
        // Created in the block: its slots' "before" is no state of a contract.
        let mut b = block(5);
        let tx = b.tx(addr(1), addr(2), U256::ZERO, Bytes::from(vec![1]));
        b.call(
            tx,
            &[0],
            CallKind::Create2,
            addr(2),
            SAFE,
            U256::ZERO,
            Bytes::new(),
        )
        .call(
            tx,
            &[1],
            CallKind::Call,
            addr(2),
            SAFE,
            U256::ZERO,
            Bytes::from(vec![1]),
        );
        assert!(targets(&b.build()).is_empty());
        // An unwatched contract is never read; without call frames nothing is.
        let full = takeover(|_| {});
        assert_eq!(targets(&full).len(), 1);
        let mut blind = full.clone();
        blind.calls_complete = false;
        assert!(targets(&blind).is_empty());
    }

    #[test]
    fn owners_and_modules_never_come_early() {
        let cfg = watched();
        let (old, new) = (addr(0x0a), addr(0x0b));
        let mut b = block(9);
        let tx = b.tx(addr(1), SAFE, U256::ZERO, Bytes::from(vec![1, 2, 3, 4]));
        b.slot(
            tx,
            SAFE,
            holdfast_guard::safe::mapping_slot(new, slots::OWNERS_MAPPING),
            B256::ZERO,
            word(old),
        )
        .slot(
            tx,
            SAFE,
            B256::from(U256::from(slots::OWNER_COUNT)),
            B256::from(U256::from(1)),
            B256::from(U256::from(2)),
        );
        b.log(
            tx,
            SAFE,
            vec![keccak256("AddedOwner(address)")],
            word(new).to_vec(),
        );
        let full = b.build();
        assert_eq!(run(&cfg, &full, &mut DetectorState::default()).len(), 1);
        assert!(first_look(&cfg, &full).is_empty());
    }
}
