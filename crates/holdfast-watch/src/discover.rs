//! The Safes an owner already holds, found on chain: `safes_owned_by` with
//! `safes_from_block` in the watch file, searched at start.
//!
//! Candidates come from the logs of the block range: a `SafeSetup` naming the owner (Safe
//! 1.3.0 and later), an `AddedOwner` naming it (every version), and every proxy a Safe
//! factory announced (`ProxyCreation`, every factory version) that shows no `SafeSetup` in
//! the range (Safe 1.1.1 and earlier emit none at setup). Each candidate is then asked
//! `getOwners()` at the last block of the range: only what the contract itself answers
//! counts, so a Safe the owner has left since, or a look-alike log from another contract,
//! is not taken. Safes created before the range whose owner was never added inside it are
//! not found: start the range at or before the owner's first Safe.
//!
//! What a search found is kept in the watch store per chain and owners
//! ([`WatchStore::put_safe_search`]), with the hash of its last block: the next start, if
//! the node still has that block, searches only the blocks after it (and the last
//! [`REDO_BLOCKS`] again: the head the search ended at may have been replaced while it ran),
//! and asks the Safes it kept `getOwners()` again at the new head, dropping those the owners
//! have left ([`safes_owned_by_since`]). A node whose block differs there (a reorg deeper
//! than that, another chain under the same id) gets the whole search again.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use alloy_primitives::{Address, B256, Bytes, keccak256};
use holdfast_chain::logs::{MAX_CALLS, RangeLog};
use holdfast_chain::{ChainError, ChainSource, LogDetail};
use holdfast_store::watch::{SafeSearch, WatchStore};

use crate::detect::{address_arg, data_word, setup_owners, word_address};

/// Blocks per `eth_getLogs` request (a range holding more than the node allows is halved).
pub const LOG_CHUNK: u64 = 10_000;
/// The most candidate contracts one search asks `getOwners()` (a range with more proxies
/// than this is refused: start it later).
pub const MAX_CANDIDATES: usize = 200_000;
/// The last blocks of a kept search searched again at the next start: a reorg up to this
/// deep (the engine's default `max_reorg_depth`) may have replaced them.
pub const REDO_BLOCKS: u64 = 64;

/// What a search found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SafesFound {
    /// Safe → the searched owners it has at `to`.
    pub safes: BTreeMap<Address, BTreeSet<Address>>,
    /// Contracts asked `getOwners()`.
    pub candidates: usize,
    pub from: u64,
    pub to: u64,
    /// The first block whose logs were read: `from`, or after a kept search, its last
    /// block less the blocks searched again.
    pub searched_from: u64,
    /// Safes a kept search had found, asked again.
    pub kept: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    #[error("finding the Safes of {owners} in blocks {from}..={to}: {source}")]
    Chain {
        owners: String,
        from: u64,
        to: u64,
        #[source]
        source: ChainError,
    },
    #[error(
        "blocks {from}..={to} hold {count} candidate Safes, more than {MAX_CANDIDATES}: start the search later (safes_from_block)"
    )]
    TooMany { from: u64, to: u64, count: usize },
    #[error("safes_from_block {from} is above the chain's head {head}")]
    FromAboveHead { from: u64, head: u64 },
}

fn topic(sig: &str) -> B256 {
    keccak256(sig.as_bytes())
}

/// Every Safe that has one of `owners` at block `to`, from the logs of `from..=to`.
/// `progress` is told each range of blocks done.
pub async fn safes_owned_by(
    source: &ChainSource,
    owners: &BTreeSet<Address>,
    from: u64,
    to: u64,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<SafesFound, DiscoverError> {
    let err = |source| DiscoverError::Chain {
        owners: owners_text(owners),
        from,
        to,
        source,
    };
    let setup = topic("SafeSetup(address,address[],uint256,address,address)");
    let added = topic("AddedOwner(address)");
    let creations = [
        topic("ProxyCreation(address)"),
        topic("ProxyCreation(address,address)"),
    ];
    let topics = [setup, added, creations[0], creations[1]];
    let mut named: BTreeSet<Address> = BTreeSet::new();
    let mut set_up: BTreeSet<Address> = BTreeSet::new();
    let mut proxies: BTreeSet<Address> = BTreeSet::new();
    let mut start = from;
    while start <= to {
        let end = to.min(start.saturating_add(LOG_CHUNK - 1));
        // A range the node refuses (its limit, whatever its words) or too many logs for ours
        // is halved until it is answered.
        let logs = source
            .logs_split(&[], start, end, &topics)
            .await
            .map_err(err)?;
        for l in logs {
            let t0 = l.topics.first().copied().unwrap_or_default();
            let d = as_detail(l);
            if t0 == setup {
                set_up.insert(d.address);
                if setup_owners(&d).iter().any(|o| owners.contains(o)) {
                    named.insert(d.address);
                }
            } else if t0 == added {
                if address_arg(&d).is_some_and(|o| owners.contains(&o)) {
                    named.insert(d.address);
                }
            } else if creations.contains(&t0) {
                // 1.4.1 indexes the proxy; 1.1.1 and 1.3.0 put it first in the data.
                let proxy = match d.topics.len() {
                    2 => word_address(d.topics[1].as_slice()),
                    _ => data_word(&d, 0).and_then(word_address),
                };
                proxies.extend(proxy);
            }
        }
        progress(end + 1 - start);
        start = end + 1;
    }
    let candidates: Vec<Address> = named
        .iter()
        .copied()
        .chain(proxies.difference(&set_up).copied())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if candidates.len() > MAX_CANDIDATES {
        return Err(DiscoverError::TooMany {
            from,
            to,
            count: candidates.len(),
        });
    }
    let safes = confirm(source, owners, &candidates, to)
        .await
        .map_err(err)?;
    Ok(SafesFound {
        safes,
        candidates: candidates.len(),
        from,
        to,
        searched_from: from,
        kept: 0,
    })
}

/// Each of `candidates` that answers `getOwners()` at block `at` with one of `owners`,
/// with those it names.
async fn confirm(
    source: &ChainSource,
    owners: &BTreeSet<Address>,
    candidates: &[Address],
    at: u64,
) -> Result<BTreeMap<Address, BTreeSet<Address>>, ChainError> {
    let get_owners = Bytes::from(keccak256("getOwners()")[..4].to_vec());
    let mut safes = BTreeMap::new();
    for batch in candidates.chunks(MAX_CALLS) {
        let calls: Vec<(Address, Bytes)> = batch.iter().map(|a| (*a, get_owners.clone())).collect();
        let answers = source.calls_at(&calls, at).await?;
        for (safe, answer) in batch.iter().zip(answers) {
            // A contract that is no Safe (or no contract any more) reverts or answers
            // something else: not taken.
            let Ok(out) = answer else { continue };
            let has: BTreeSet<Address> = decode_addresses(&out)
                .into_iter()
                .filter(|o| owners.contains(o))
                .collect();
            if !has.is_empty() {
                safes.insert(*safe, has);
            }
        }
    }
    Ok(safes)
}

/// [`safes_owned_by`] over `from..=to`, resuming from `kept` (a search of the same owners
/// and `from` on this chain, kept by an earlier start): only its last `redo` blocks and the
/// blocks after it are searched, and the Safes it found are asked `getOwners()` again at
/// `to` (those the owners have left are dropped). A kept search of another `from`, past
/// `to`, or whose last block the node no longer has (another hash) is not used: everything
/// is searched.
pub async fn safes_owned_by_since(
    source: &ChainSource,
    owners: &BTreeSet<Address>,
    (from, to): (u64, u64),
    kept: Option<&SafeSearch>,
    redo: u64,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<SafesFound, DiscoverError> {
    let Some(kept) = kept.filter(|k| k.from == from && (from..=to).contains(&k.to)) else {
        return safes_owned_by(source, owners, from, to, progress).await;
    };
    let at = source
        .block_ref(kept.to)
        .await
        .map_err(|source| DiscoverError::Chain {
            owners: owners_text(owners),
            from: kept.to,
            to,
            source,
        })?;
    if at.hash != kept.to_hash {
        tracing::info!(target: "watch", block = kept.to, kept = %kept.to_hash, node = %at.hash, "the kept Safe search ended on a block the node does not have: searching again from safes_from_block");
        return safes_owned_by(source, owners, from, to, progress).await;
    }
    let resume = (kept.to + 1).saturating_sub(redo).max(from);
    let mut found = if resume <= to {
        safes_owned_by(source, owners, resume, to, progress).await?
    } else {
        SafesFound::default()
    };
    let again: Vec<Address> = kept
        .safes
        .iter()
        .filter(|s| !found.safes.contains_key(*s))
        .copied()
        .collect();
    let confirmed = confirm(source, owners, &again, to)
        .await
        .map_err(|source| DiscoverError::Chain {
            owners: owners_text(owners),
            from: resume,
            to,
            source,
        })?;
    found.safes.extend(confirmed);
    Ok(SafesFound {
        candidates: found.candidates + again.len(),
        from,
        to,
        searched_from: resume,
        kept: kept.safes.len(),
        safes: found.safes,
    })
}

fn owners_text(owners: &BTreeSet<Address>) -> String {
    owners
        .iter()
        .map(|o| o.to_checksum(None))
        .collect::<Vec<_>>()
        .join(", ")
}

fn as_detail(l: RangeLog) -> LogDetail {
    LogDetail {
        tx_index: 0,
        log_index: 0,
        address: l.address,
        topics: l.topics,
        data: l.data,
    }
}

/// An ABI `address[]` return value (empty when it is not one).
fn decode_addresses(out: &[u8]) -> Vec<Address> {
    let word = |i: usize| out.get(i * 32..(i + 1) * 32);
    let num = |w: &[u8]| -> Option<usize> {
        w[..24]
            .iter()
            .all(|b| *b == 0)
            .then(|| u64::from_be_bytes(w[24..].try_into().unwrap_or_default()) as usize)
    };
    let Some(offset) = word(0).and_then(num).filter(|o| o % 32 == 0) else {
        return Vec::new();
    };
    let Some(len) = word(offset / 32).and_then(num).filter(|n| *n <= 1024) else {
        return Vec::new();
    };
    (0..len)
        .map_while(|i| word(offset / 32 + 1 + i).and_then(word_address))
        .collect()
}

/// `config` with the Safes its `safes_owned_by` sets already hold added to their addresses
/// (searched on every chain from each set's `safes_from_block` to the head); `None` when no
/// set asks for a search. With `kept`, each search resumes from the one kept there for the
/// chain and owners ([`safes_owned_by_since`], searching the last `redo` blocks again) and
/// is kept in its place; a store that fails is logged, and the search then runs whole or
/// is not kept (never wrong: it is only slower).
pub async fn existing_safes(
    config: &crate::WatchConfig,
    chains: &[(String, &ChainSource)],
    kept: Option<Arc<dyn WatchStore>>,
    redo: u64,
) -> Result<Option<crate::WatchConfig>, (String, DiscoverError)> {
    if config.sets.iter().all(|s| s.safes_from_block.is_none()) {
        return Ok(None);
    }
    let mut out = config.clone();
    for set in &mut out.sets {
        let Some(from) = set.safes_from_block else {
            continue;
        };
        for (name, source) in chains {
            let head = source.head_number().await.map_err(|source| {
                (
                    name.clone(),
                    DiscoverError::Chain {
                        owners: owners_text(&set.safes_owned_by),
                        from,
                        to: from,
                        source,
                    },
                )
            })?;
            if from > head {
                return Err((name.clone(), DiscoverError::FromAboveHead { from, head }));
            }
            let started = std::time::Instant::now();
            let head_hash = source
                .block_ref(head)
                .await
                .map_err(|source| {
                    (
                        name.clone(),
                        DiscoverError::Chain {
                            owners: owners_text(&set.safes_owned_by),
                            from: head,
                            to: head,
                            source,
                        },
                    )
                })?
                .hash;
            let owners: Vec<Address> = set.safes_owned_by.iter().copied().collect();
            let chain_id = source.chain_id();
            let before = match &kept {
                Some(store) => {
                    let (store, owners) = (store.clone(), owners.clone());
                    match tokio::task::spawn_blocking(move || store.safe_search(chain_id, &owners))
                        .await
                    {
                        Ok(Ok(k)) => k,
                        Ok(Err(e)) => {
                            tracing::warn!(target: "watch", chain = %name, set = %set.name, error = %e, "cannot read the kept Safe search: searching from safes_from_block");
                            None
                        }
                        Err(e) => {
                            tracing::warn!(target: "watch", chain = %name, set = %set.name, error = %e, "reading the kept Safe search failed: searching from safes_from_block");
                            None
                        }
                    }
                }
                None => None,
            };
            let found = safes_owned_by_since(
                source,
                &set.safes_owned_by,
                (from, head),
                before.as_ref(),
                redo,
                &|_| {},
            )
            .await
            .map_err(|e| (name.clone(), e))?;
            tracing::info!(
                target: "watch",
                chain = %name,
                set = %set.name,
                safes = found.safes.len(),
                candidates = found.candidates,
                kept = found.kept,
                from,
                searched_from = found.searched_from,
                to = head,
                elapsed = ?started.elapsed(),
                "found the Safes the set's owners hold"
            );
            if let Some(store) = &kept {
                let search = SafeSearch {
                    chain_id,
                    owners,
                    from,
                    to: head,
                    to_hash: head_hash,
                    safes: found.safes.keys().copied().collect(),
                };
                let store = store.clone();
                match tokio::task::spawn_blocking(move || store.put_safe_search(&search)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        tracing::warn!(target: "watch", chain = %name, set = %set.name, error = %e, "cannot keep the Safe search: the next start searches again");
                    }
                    Err(e) => {
                        tracing::warn!(target: "watch", chain = %name, set = %set.name, error = %e, "keeping the Safe search failed: the next start searches again");
                    }
                }
            }
            set.addresses.extend(found.safes.keys());
        }
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_arrays_decode_and_anything_else_is_empty() {
        let (a, b) = (Address::repeat_byte(1), Address::repeat_byte(2));
        let mut out = vec![0u8; 32];
        out[31] = 32;
        let mut len = [0u8; 32];
        len[31] = 2;
        out.extend_from_slice(&len);
        out.extend_from_slice(a.into_word().as_slice());
        out.extend_from_slice(b.into_word().as_slice());
        assert_eq!(decode_addresses(&out), vec![a, b]);
        assert!(decode_addresses(&[]).is_empty());
        assert!(decode_addresses(&[0xff; 64]).is_empty());
        // A length beyond the data stops at what is there.
        let mut cut = out.clone();
        cut[63] = 9;
        assert_eq!(decode_addresses(&cut), vec![a, b]);
    }
}
