//! `safes_owned_by`: a Safe joins the set in the block that makes X its owner, seen as the
//! owners-mapping slot `keccak(X . 2)` written non-zero in the state diff (every Safe version,
//! 1.1.1 included, which emits no `SafeSetup`), or, when the node serves no state diff, as a
//! `SafeSetup` naming X or an `AddedOwner(X)`. It leaves when X is removed. Safes that had X
//! as owner before the watch started are found at start from the logs (`safes_from_block`,
//! `crate::discover`) or listed in `addresses`.

use alloy_primitives::{Address, B256, keccak256};
use holdfast_chain::{BlockDetail, LogDetail};

use super::Detectors;
use super::state::{ChainState, MAX_DYNAMIC_MEMBERS, Membership};

pub(crate) fn topic(sig: &str) -> B256 {
    keccak256(sig.as_bytes())
}

/// The address in a 32-byte word (`None` when the high bytes are not zero).
pub(crate) fn word_address(w: &[u8]) -> Option<Address> {
    if w.len() != 32 || w[..12].iter().any(|b| *b != 0) {
        return None;
    }
    Some(Address::from_slice(&w[12..]))
}

/// The `i`-th 32-byte word of a log's data.
pub(crate) fn data_word(l: &LogDetail, i: usize) -> Option<&[u8]> {
    l.data.get(i * 32..(i + 1) * 32)
}

/// An address event argument that is indexed in some Safe versions and not in others.
pub(crate) fn address_arg(l: &LogDetail) -> Option<Address> {
    match l.topics.len() {
        2 => word_address(l.topics[1].as_slice()),
        1 => data_word(l, 0).and_then(word_address),
        _ => None,
    }
}

/// The owners array of a `SafeSetup` log.
pub(crate) fn setup_owners(l: &LogDetail) -> Vec<Address> {
    let read = |i: usize| -> Option<usize> {
        let w = data_word(l, i)?;
        if w[..24].iter().any(|b| *b != 0) {
            return None;
        }
        Some(u64::from_be_bytes(w[24..].try_into().ok()?) as usize)
    };
    let Some(offset) = read(0).filter(|o| o % 32 == 0) else {
        return Vec::new();
    };
    let Some(len) = read(offset / 32).filter(|n| *n <= 1024) else {
        return Vec::new();
    };
    (0..len)
        .filter_map(|i| data_word(l, offset / 32 + 1 + i).and_then(word_address))
        .collect()
}

pub(crate) fn update(d: &Detectors, block: &BlockDetail, cs: &mut ChainState) {
    if d.owner_sets.is_empty() {
        return;
    }
    let number = block.block().number;
    // (safe, owner, joined)
    let mut changes: Vec<(Address, Address, bool)> = Vec::new();
    match &block.state {
        Some(diffs) => {
            for diff in diffs {
                for s in &diff.storage {
                    if let Some(owner) = d.owner_slots.get(&s.slot) {
                        changes.push((diff.address, *owner, s.after != B256::ZERO));
                    }
                }
            }
        }
        None => {
            let (setup, added, removed) = (
                topic("SafeSetup(address,address[],uint256,address,address)"),
                topic("AddedOwner(address)"),
                topic("RemovedOwner(address)"),
            );
            for l in &block.logs {
                let Some(t0) = l.topics.first() else { continue };
                if *t0 == setup {
                    for o in setup_owners(l) {
                        if d.owner_sets.contains_key(&o) {
                            changes.push((l.address, o, true));
                        }
                    }
                } else if (*t0 == added || *t0 == removed)
                    && let Some(o) = address_arg(l).filter(|o| d.owner_sets.contains_key(o))
                {
                    changes.push((l.address, o, *t0 == added));
                }
            }
        }
    }
    for (safe, owner, joined) in changes {
        for set in d.owner_sets.get(&owner).into_iter().flatten() {
            let name = &d.config.sets[*set as usize].name;
            let members = cs.dynamic.entry(name.clone()).or_default();
            if joined {
                let full = members.len() >= MAX_DYNAMIC_MEMBERS;
                match members.get_mut(&safe) {
                    Some(m) => {
                        m.removed_at = None;
                    }
                    None if !full => {
                        members.insert(
                            safe,
                            Membership {
                                owner,
                                since: number,
                                removed_at: None,
                            },
                        );
                    }
                    None => tracing::warn!(
                        target: "watch::detect",
                        set = %name,
                        safe = %safe,
                        "the set holds {MAX_DYNAMIC_MEMBERS} Safes already: this one is not watched"
                    ),
                }
            } else if let Some(m) = members.get_mut(&safe)
                && m.owner == owner
            {
                m.removed_at = Some(number);
            }
        }
    }
}
