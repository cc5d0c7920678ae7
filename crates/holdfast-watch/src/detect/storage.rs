//! Detector 1, critical storage: a watched contract's Safe configuration, EIP-1967 slots or
//! admin roles changed. Seen twice where possible: in the state diff (a write inside a
//! DELEGATECALL with no event, the Bybit and WazirX takeovers) and in the logs (`Upgraded`,
//! `ChangedMasterCopy`, ...). Findings are grouped by (transaction, contract, kind of change),
//! so a change with its event is one alert.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use alloy_primitives::{Address, B256, U256};
use holdfast_chain::{CallKind, SlotChange, TxDetail};
use holdfast_guard::decode::{CallKind as DecodedKind, decode};
use holdfast_guard::safe::{eip1967, mapping_slot, slots};

use super::early::{Early, early};
use super::explain::{Draft, fact};
use super::safes::{address_arg, data_word, topic, word_address};
use super::state::ChainState;
use super::{Run, checksum, short};
use crate::alert::{Alert, DetectorKind, Place};
use crate::config::{CriticalChange, Params};

/// The list head of a Safe's owners and modules linked lists.
const SENTINEL: Address =
    Address::new([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Event {
    Upgraded,
    AdminChanged,
    BeaconUpgraded,
    OwnershipTransferred,
    RoleGranted,
    ChangedMasterCopy,
    AddedOwner,
    RemovedOwner,
    ChangedThreshold,
    EnabledModule,
    DisabledModule,
    ChangedGuard,
    ChangedFallbackHandler,
    ChangedModuleGuard,
}

static EVENTS: LazyLock<Vec<(B256, Event)>> = LazyLock::new(|| {
    [
        ("Upgraded(address)", Event::Upgraded),
        ("AdminChanged(address,address)", Event::AdminChanged),
        ("BeaconUpgraded(address)", Event::BeaconUpgraded),
        (
            "OwnershipTransferred(address,address)",
            Event::OwnershipTransferred,
        ),
        ("RoleGranted(bytes32,address,address)", Event::RoleGranted),
        ("ChangedMasterCopy(address)", Event::ChangedMasterCopy),
        ("AddedOwner(address)", Event::AddedOwner),
        ("RemovedOwner(address)", Event::RemovedOwner),
        ("ChangedThreshold(uint256)", Event::ChangedThreshold),
        ("EnabledModule(address)", Event::EnabledModule),
        ("DisabledModule(address)", Event::DisabledModule),
        ("ChangedGuard(address)", Event::ChangedGuard),
        (
            "ChangedFallbackHandler(address)",
            Event::ChangedFallbackHandler,
        ),
        ("ChangedModuleGuard(address)", Event::ChangedModuleGuard),
    ]
    .into_iter()
    .map(|(s, e)| (topic(s), e))
    .collect()
});

/// What one (transaction, contract, change) shows.
#[derive(Default)]
struct Finding {
    writes: Vec<(SlotChange, String)>,
    /// `(log index, description)`.
    events: Vec<(u32, String)>,
    /// The new address the change installs (singleton, implementation, owner, ...).
    new_address: Option<Address>,
}

pub(crate) fn detect(run: &Run<'_>, cs: &ChainState, alerts: &mut Vec<Alert>) {
    let block = run.block;
    let mut findings: BTreeMap<(u32, Address, CriticalChange), Finding> = BTreeMap::new();
    let mut created: BTreeSet<(u32, Address)> = BTreeSet::new();
    for t in &block.txs {
        if let Some(c) = t.created {
            created.insert((t.index, c));
        }
    }
    for c in &block.calls {
        if matches!(c.kind, CallKind::Create | CallKind::Create2) && !c.reverted {
            created.insert((c.tx_index, c.to));
        }
    }
    let diffs = match run.early {
        Some(e) => Some(&e.diffs),
        None => block.state.as_ref(),
    };
    if let Some(diffs) = diffs {
        for d in diffs.iter().filter(|d| d.code_changed) {
            created.insert((d.tx_index, d.address));
        }
        for diff in diffs {
            if diff.storage.is_empty()
                || created.contains(&(diff.tx_index, diff.address))
                || run
                    .rules_for(cs, diff.address, DetectorKind::CriticalStorage)
                    .is_empty()
            {
                continue;
            }
            let safe = safe_like(run, diff.tx_index, diff.address, &diff.storage);
            let candidates = if safe {
                candidates(run, diff.tx_index, diff.address, &diff.storage)
            } else {
                Vec::new()
            };
            for s in &diff.storage {
                if let Some((change, words, new)) = classify_slot(s, safe, &candidates) {
                    let f = findings
                        .entry((diff.tx_index, diff.address, change))
                        .or_default();
                    f.writes.push((*s, words));
                    f.new_address = f.new_address.or(new);
                }
            }
        }
    }
    for l in &block.logs {
        let Some(t0) = l.topics.first() else { continue };
        let Some((_, ev)) = EVENTS.iter().find(|(t, _)| t == t0) else {
            continue;
        };
        if created.contains(&(l.tx_index, l.address))
            || run
                .rules_for(cs, l.address, DetectorKind::CriticalStorage)
                .is_empty()
        {
            continue;
        }
        if let Some((change, words, new)) = describe_event(*ev, l) {
            let f = findings.entry((l.tx_index, l.address, change)).or_default();
            f.events.push((l.log_index, words));
            f.new_address = f.new_address.or(new);
        }
    }
    if let Some(e) = run.early {
        findings.retain(|(tx_index, contract, change), _| match early(*change) {
            Early::Event => true,
            Early::Slot => e.read.contains(&(*tx_index, *contract)),
            Early::Never => false,
        });
    }
    for ((tx_index, contract, change), f) in findings {
        let rules = run.rules_for(cs, contract, DetectorKind::CriticalStorage);
        let delegate = delegatecall(run, tx_index, contract);
        for r in rules.iter().copied() {
            let rule = run.d.rule(r);
            let Params::CriticalStorage(p) = &rule.params else {
                continue;
            };
            if !p.changes.contains(&change) {
                continue;
            }
            let mut alert = run
                .ex
                .alert(rule, draft(run, tx_index, contract, change, &f, &delegate));
            alert.evidence = evidence(contract, change, &f, &delegate);
            alerts.push(alert);
        }
    }
}

/// Events only a Safe emits (every `execTransaction` of 1.1.0 and later emits one of the
/// first two; module executions one of the next two).
static SAFE_EVENTS: LazyLock<Vec<B256>> = LazyLock::new(|| {
    [
        "ExecutionSuccess(bytes32,uint256)",
        "ExecutionFailure(bytes32,uint256)",
        "ExecutionFromModuleSuccess(address)",
        "ExecutionFromModuleFailure(address)",
        "SafeSetup(address,address[],uint256,address,address)",
        "ApproveHash(bytes32,address)",
        "SignMsg(bytes32)",
        "ChangedMasterCopy(address)",
        "AddedOwner(address)",
        "RemovedOwner(address)",
        "ChangedThreshold(uint256)",
        "EnabledModule(address)",
        "DisabledModule(address)",
        "ChangedGuard(address)",
        "ChangedFallbackHandler(address)",
        "ChangedModuleGuard(address)",
    ]
    .into_iter()
    .map(topic)
    .collect()
});

/// Whether the contract acts as a Safe in this transaction, so its slots 0 to 4 and the
/// owners/modules mappings mean what they mean in a Safe (in any other contract they are
/// ordinary variables: an ERC-20's owner at slot 3 is no "owner count"). Evidence: an event
/// only a Safe emits, or slot 0 written whose old value is the code the contract's proxy
/// forwarded the call to (a Safe proxy keeps its singleton there).
fn safe_like(run: &Run<'_>, tx_index: u32, contract: Address, writes: &[SlotChange]) -> bool {
    let block = run.block;
    if block.logs.iter().any(|l| {
        l.tx_index == tx_index
            && l.address == contract
            && l.topics.first().is_some_and(|t| SAFE_EVENTS.contains(t))
    }) {
        return true;
    }
    let Some(old) = writes
        .iter()
        .find(|s| s.slot == slots::SINGLETON)
        .and_then(|s| addr_of(s.before))
        .filter(|a| !a.is_zero())
    else {
        return false;
    };
    block.calls.iter().any(|c| {
        c.tx_index == tx_index
            && c.kind == CallKind::DelegateCall
            && c.from == contract
            && c.to == old
    })
}

/// Addresses whose owners/modules mapping slot a write may be: the list head, every
/// address-shaped value written in the account, and the addresses its logs name.
fn candidates(
    run: &Run<'_>,
    tx_index: u32,
    account: Address,
    writes: &[SlotChange],
) -> Vec<Address> {
    let mut c = vec![SENTINEL];
    for s in writes {
        for v in [s.before, s.after] {
            if let Some(a) = word_address(v.as_slice()).filter(|a| !a.is_zero()) {
                c.push(a);
            }
        }
    }
    for l in run
        .block
        .logs
        .iter()
        .filter(|l| l.tx_index == tx_index && l.address == account)
    {
        for t in l.topics.iter().skip(1) {
            c.extend(word_address(t.as_slice()));
        }
        for i in 0..(l.data.len() / 32).min(8) {
            c.extend(data_word(l, i).and_then(word_address));
        }
    }
    c.sort_unstable();
    c.dedup();
    c
}

fn addr_of(w: B256) -> Option<Address> {
    word_address(w.as_slice())
}

fn show_addr(w: B256) -> String {
    match addr_of(w) {
        Some(a) if a.is_zero() => "none (0x0)".into(),
        Some(a) => checksum(a),
        None => format!("{w}"),
    }
}

fn classify_slot(
    s: &SlotChange,
    safe: bool,
    candidates: &[Address],
) -> Option<(CriticalChange, String, Option<Address>)> {
    let num = |w: B256| U256::from_be_bytes(w.0);
    let addr_change =
        |what: &str| format!("{what}: {} → {}", show_addr(s.before), show_addr(s.after));
    let new = addr_of(s.after).filter(|a| !a.is_zero());
    let r = match s.slot {
        slot if slot == eip1967::IMPLEMENTATION => (
            CriticalChange::Implementation,
            addr_change("EIP-1967 implementation"),
            new,
        ),
        slot if slot == eip1967::ADMIN => {
            (CriticalChange::Admin, addr_change("EIP-1967 admin"), new)
        }
        slot if slot == eip1967::BEACON => {
            (CriticalChange::Beacon, addr_change("EIP-1967 beacon"), new)
        }
        _ if !safe => return None,
        slot if slot == slots::SINGLETON => {
            // A Safe proxy's singleton is an address and never zero.
            addr_of(s.before).filter(|a| !a.is_zero())?;
            (
                CriticalChange::Singleton,
                addr_change("singleton (slot 0)"),
                new,
            )
        }
        slot if slot == B256::from(U256::from(slots::OWNER_COUNT)) => (
            CriticalChange::Owners,
            format!("owner count (slot 3): {} → {}", num(s.before), num(s.after)),
            None,
        ),
        slot if slot == B256::from(U256::from(slots::THRESHOLD)) => (
            CriticalChange::Threshold,
            format!("threshold (slot 4): {} → {}", num(s.before), num(s.after)),
            None,
        ),
        slot if slot == slots::GUARD => (CriticalChange::Guard, addr_change("guard"), new),
        slot if slot == slots::FALLBACK_HANDLER => (
            CriticalChange::FallbackHandler,
            addr_change("fallback handler"),
            new,
        ),
        slot if slot == slots::MODULE_GUARD => (
            CriticalChange::ModuleGuard,
            addr_change("module guard"),
            new,
        ),
        slot => {
            let (c, base, what) = candidates.iter().find_map(|c| {
                if slot == mapping_slot(*c, slots::OWNERS_MAPPING) {
                    Some((*c, CriticalChange::Owners, "owner"))
                } else if slot == mapping_slot(*c, slots::MODULES_MAPPING) {
                    Some((*c, CriticalChange::Modules, "module"))
                } else {
                    None
                }
            })?;
            let key = if c == SENTINEL {
                "(list head)".to_owned()
            } else {
                checksum(c)
            };
            let list = if base == CriticalChange::Owners {
                "owners"
            } else {
                "modules"
            };
            let words = if c != SENTINEL && s.before.is_zero() {
                format!(
                    "{what} {key} added ({list}[{key}] → {})",
                    show_addr(s.after)
                )
            } else if c != SENTINEL && s.after.is_zero() {
                format!(
                    "{what} {key} removed ({list}[{key}] was {})",
                    show_addr(s.before)
                )
            } else {
                format!(
                    "{list}[{key}]: {} → {}",
                    show_addr(s.before),
                    show_addr(s.after)
                )
            };
            let new = (c != SENTINEL && s.before.is_zero()).then_some(c);
            (base, words, new)
        }
    };
    Some(r)
}

fn describe_event(
    ev: Event,
    l: &holdfast_chain::LogDetail,
) -> Option<(CriticalChange, String, Option<Address>)> {
    let topic_addr = |i: usize| l.topics.get(i).and_then(|t| word_address(t.as_slice()));
    let data_addr = |i: usize| data_word(l, i).and_then(word_address);
    let arg = address_arg(l);
    let show = |a: Option<Address>| a.map_or("?".to_owned(), checksum);
    Some(match ev {
        Event::Upgraded => {
            let a = topic_addr(1);
            (
                CriticalChange::Implementation,
                format!("Upgraded(implementation {})", show(a)),
                a,
            )
        }
        Event::AdminChanged => {
            let (old, new) = (data_addr(0), data_addr(1));
            (
                CriticalChange::Admin,
                format!("AdminChanged({} → {})", show(old), show(new)),
                new,
            )
        }
        Event::BeaconUpgraded => {
            let a = topic_addr(1);
            (
                CriticalChange::Beacon,
                format!("BeaconUpgraded(beacon {})", show(a)),
                a,
            )
        }
        Event::OwnershipTransferred => {
            let (old, new) = (topic_addr(1), topic_addr(2));
            (
                CriticalChange::Ownership,
                format!("OwnershipTransferred({} → {})", show(old), show(new)),
                new,
            )
        }
        Event::RoleGranted => {
            let role = l.topics.get(1).copied()?;
            let role = if role.is_zero() {
                "DEFAULT_ADMIN_ROLE".to_owned()
            } else {
                role.to_string()
            };
            let (account, sender) = (topic_addr(2), topic_addr(3));
            (
                CriticalChange::Roles,
                format!(
                    "RoleGranted(role {role} to {} by {})",
                    show(account),
                    show(sender)
                ),
                account,
            )
        }
        Event::ChangedMasterCopy => (
            CriticalChange::Singleton,
            format!("ChangedMasterCopy({})", show(arg)),
            arg,
        ),
        Event::AddedOwner => (
            CriticalChange::Owners,
            format!("AddedOwner({})", show(arg)),
            arg,
        ),
        Event::RemovedOwner => (
            CriticalChange::Owners,
            format!("RemovedOwner({})", show(arg)),
            None,
        ),
        Event::ChangedThreshold => {
            let w = l
                .topics
                .get(1)
                .map(|t| t.0)
                .or_else(|| data_word(l, 0).and_then(|w| w.try_into().ok()))?;
            (
                CriticalChange::Threshold,
                format!("ChangedThreshold({})", U256::from_be_bytes(w)),
                None,
            )
        }
        Event::EnabledModule => (
            CriticalChange::Modules,
            format!("EnabledModule({})", show(arg)),
            arg,
        ),
        Event::DisabledModule => (
            CriticalChange::Modules,
            format!("DisabledModule({})", show(arg)),
            None,
        ),
        Event::ChangedGuard => (
            CriticalChange::Guard,
            format!("ChangedGuard({})", show(arg)),
            arg,
        ),
        Event::ChangedFallbackHandler => (
            CriticalChange::FallbackHandler,
            format!("ChangedFallbackHandler({})", show(arg)),
            arg,
        ),
        Event::ChangedModuleGuard => (
            CriticalChange::ModuleGuard,
            format!("ChangedModuleGuard({})", show(arg)),
            arg,
        ),
    })
}

/// A DELEGATECALL the contract made into code other than its own implementation: the frame
/// (its trace address, or `None` when found by decoding the transaction without traces) and
/// the code it ran.
struct Delegate {
    trace_address: Option<Vec<u32>>,
    target: Address,
}

fn delegatecall(run: &Run<'_>, tx_index: u32, contract: Address) -> Option<Delegate> {
    let block = run.block;
    if block.calls_complete {
        let frames: Vec<_> = block
            .calls
            .iter()
            .filter(|c| c.tx_index == tx_index)
            .collect();
        frames
            .iter()
            .filter(|c| c.kind == CallKind::DelegateCall && c.from == contract && !c.reverted)
            .filter(|c| {
                // A proxy forwarding a call it received to its implementation is the
                // proxy working, not the finding.
                let parent = &c.trace_address[..c.trace_address.len().saturating_sub(1)];
                let forward = frames.iter().any(|p| {
                    p.trace_address == parent
                        && p.to == contract
                        && p.kind != CallKind::DelegateCall
                });
                !forward
            })
            .max_by_key(|c| c.trace_address.len())
            .map(|c| Delegate {
                trace_address: Some(c.trace_address.clone()),
                target: c.to,
            })
    } else {
        let tx: &TxDetail = block.txs.get(tx_index as usize)?;
        let decoded = decode(tx.from, tx.to, DecodedKind::Call, tx.value, &tx.input).ok()?;
        decoded
            .calls
            .iter()
            .find(|c| c.kind == DecodedKind::DelegateCall && c.from == contract)
            .map(|c| Delegate {
                trace_address: None,
                target: c.to,
            })
    }
}

/// The change for machines (webhook receivers, responders): what changed, where, how.
fn evidence(
    contract: Address,
    change: CriticalChange,
    f: &Finding,
    delegate: &Option<Delegate>,
) -> serde_json::Value {
    serde_json::json!({
        "contract": contract,
        "change": change.name(),
        "new_address": f.new_address,
        "storage": f.writes.iter().map(|(s, words)| serde_json::json!({
            "slot": s.slot,
            "before": s.before,
            "after": s.after,
            "decoded": words,
        })).collect::<Vec<_>>(),
        "events": f.events.iter().map(|(i, words)| serde_json::json!({
            "log_index": i,
            "decoded": words,
        })).collect::<Vec<_>>(),
        "delegatecall": delegate.as_ref().map(|d| serde_json::json!({
            "target": d.target,
            "trace_address": d.trace_address,
        })),
        "silent": f.events.is_empty() && !f.writes.is_empty(),
    })
}

fn draft(
    run: &Run<'_>,
    tx_index: u32,
    contract: Address,
    change: CriticalChange,
    f: &Finding,
    delegate: &Option<Delegate>,
) -> Draft {
    let tx = run.block.txs.get(tx_index as usize);
    let mut facts = Vec::new();
    for (s, words) in &f.writes {
        facts.push(fact("storage write", format!("{words} (slot {})", s.slot)));
    }
    for (i, words) in &f.events {
        facts.push(fact("event", format!("{words} (log {i})")));
    }
    let mut addresses = vec![(contract, "watched contract".to_owned())];
    let mut title = format!("{}: {} changed", short(contract), change.words());
    if let Some(n) = f.new_address {
        let role = match change {
            CriticalChange::Singleton => "new singleton",
            CriticalChange::Implementation => "new implementation",
            CriticalChange::Owners => "new owner",
            CriticalChange::Modules => "new module",
            CriticalChange::Ownership => "new owner",
            CriticalChange::Roles => "role grantee",
            CriticalChange::Admin => "new admin",
            CriticalChange::Beacon => "new beacon",
            _ => "new value",
        };
        addresses.push((n, role.to_owned()));
        title = format!("{}: {} → {}", short(contract), change.words(), short(n));
    }
    let mut how = Vec::new();
    if let Some(d) = delegate {
        let frame = d
            .trace_address
            .as_ref()
            .map(|t| {
                format!(
                    " (call frame [{}])",
                    t.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
                )
            })
            .unwrap_or_default();
        facts.push(fact(
            "delegatecall",
            format!(
                "DELEGATECALL from {} into {}{frame}: that code ran with the contract's storage",
                checksum(contract),
                checksum(d.target)
            ),
        ));
        addresses.push((d.target, "DELEGATECALL target".to_owned()));
        title.push_str(&format!(" inside a DELEGATECALL into {}", short(d.target)));
        how.push(format!(
            "The write was made inside a DELEGATECALL from the contract into {}, code that \
             runs with the contract's own storage.",
            run.ex.who(d.target)
        ));
    }
    if f.events.is_empty() && !f.writes.is_empty() {
        title.push_str(", with no event");
        how.push(
            "No event announced it: only the state diff shows it (the Bybit and WazirX \
             takeovers looked like this)."
                .to_owned(),
        );
    }
    if let Some(t) = tx {
        facts.push(fact("transaction sender", checksum(t.from)));
        addresses.push((t.from, "transaction sender".to_owned()));
    }
    let place = match f.writes.iter().map(|(s, _)| s.slot).min() {
        Some(slot) => Place::Storage {
            tx_index,
            address: contract,
            slot,
        },
        None => Place::Log {
            tx_index,
            log_index: f.events.iter().map(|(i, _)| *i).min().unwrap_or(0),
        },
    };
    let what: Vec<&str> = f
        .writes
        .iter()
        .map(|(_, w)| w.as_str())
        .chain(f.events.iter().map(|(_, w)| w.as_str()))
        .collect();
    let summary = format!(
        "The {} of watched contract {} changed in block {} ({}). {} Whoever controls this \
         setting controls the contract and its funds: if this change was not planned, treat \
         it as a takeover — freeze what can be frozen and follow the funds.",
        change.words(),
        run.ex.who(contract),
        run.block.block().number,
        what.join("; "),
        how.join(" "),
    )
    .replace("  ", " ");
    Draft {
        place,
        tx_index: Some(tx_index),
        title,
        summary,
        facts,
        addresses,
    }
}
