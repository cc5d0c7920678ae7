//! What a search for the Safes some owners hold found on one chain (the watch file's
//! `safes_owned_by` with `safes_from_block`), kept so that the next start searches only the
//! blocks after it ([`super::WatchStore::safe_search`], [`super::WatchStore::put_safe_search`]).
//! Keyed by chain and owners; the owners' key is their hash (a set of many owners does not
//! fit a key), and the owners themselves are stored and compared on every read.

use alloy_primitives::{Address, B256, keccak256};

use crate::StoreError;
use crate::codec::{Reader, corrupt};

/// Most owners one kept search names.
pub const MAX_SEARCH_OWNERS: usize = 10_000;
/// Most Safes one kept search holds (the watch refuses a search with more candidates).
pub const MAX_SEARCH_SAFES: usize = 200_000;

/// One chain's search for the Safes of a set of owners.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafeSearch {
    pub chain_id: u64,
    /// The owners searched for: sorted, no duplicates (with the chain, the key).
    pub owners: Vec<Address>,
    /// The first block searched (the set's `safes_from_block`).
    pub from: u64,
    /// The last block searched: the Safes are those that had one of the owners there.
    pub to: u64,
    /// That block's hash: a node whose block `to` differs (a reorg below it, another chain
    /// under the same id) does not resume from this search.
    pub to_hash: B256,
    /// The Safes found: sorted, no duplicates.
    pub safes: Vec<Address>,
}

fn strictly_sorted(v: &[Address]) -> bool {
    v.windows(2).all(|w| w[0] < w[1])
}

/// Checks the owners a search is keyed by.
pub(super) fn check_owners(owners: &[Address]) -> Result<(), StoreError> {
    if owners.is_empty() || owners.len() > MAX_SEARCH_OWNERS || !strictly_sorted(owners) {
        return Err(StoreError::Argument {
            field: "owners",
            value: format!("{} addresses", owners.len()),
            expected: format!("1 to {MAX_SEARCH_OWNERS} addresses, sorted, without duplicates"),
        });
    }
    Ok(())
}

/// Checks a search before it is written.
pub(super) fn check_search(s: &SafeSearch) -> Result<(), StoreError> {
    check_owners(&s.owners)?;
    if s.safes.len() > MAX_SEARCH_SAFES || !strictly_sorted(&s.safes) {
        return Err(StoreError::Argument {
            field: "safes",
            value: format!("{} addresses", s.safes.len()),
            expected: format!("at most {MAX_SEARCH_SAFES} addresses, sorted, without duplicates"),
        });
    }
    if s.from > s.to {
        return Err(StoreError::Argument {
            field: "to",
            value: s.to.to_string(),
            expected: format!("at least the first block searched, {}", s.from),
        });
    }
    Ok(())
}

/// The hash the owners are keyed by.
pub(super) fn owners_key(owners: &[Address]) -> B256 {
    keccak256(concat(owners))
}

pub(super) fn concat(addresses: &[Address]) -> Vec<u8> {
    addresses
        .iter()
        .flat_map(|a| a.as_slice())
        .copied()
        .collect()
}

pub(super) fn split(bytes: &[u8], what: &str) -> Result<Vec<Address>, StoreError> {
    if !bytes.len().is_multiple_of(20) {
        return Err(corrupt(what));
    }
    Ok(bytes.chunks(20).map(Address::from_slice).collect())
}

/// The embedded value: from, to, the owners' count, the owners, the Safes.
pub(super) fn encode(s: &SafeSearch) -> Vec<u8> {
    let mut v = Vec::with_capacity(52 + 20 * (s.owners.len() + s.safes.len()));
    v.extend_from_slice(&s.from.to_be_bytes());
    v.extend_from_slice(&s.to.to_be_bytes());
    v.extend_from_slice(s.to_hash.as_slice());
    v.extend_from_slice(&(s.owners.len() as u32).to_be_bytes());
    v.extend_from_slice(&concat(&s.owners));
    v.extend_from_slice(&concat(&s.safes));
    v
}

pub(super) fn decode(chain_id: u64, v: &[u8]) -> Result<SafeSearch, StoreError> {
    let mut r = Reader(v);
    let from = r.u64()?;
    let to = r.u64()?;
    let to_hash = r.b256()?;
    let n = r.u32()? as usize;
    let owners = split(
        r.take(n.checked_mul(20).ok_or_else(|| corrupt("safe search"))?)?,
        "safe search owners",
    )?;
    let safes = split(r.0, "safe search safes")?;
    Ok(SafeSearch {
        chain_id,
        owners,
        from,
        to,
        to_hash,
        safes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn searches_round_trip_and_are_checked() {
        let s = SafeSearch {
            chain_id: 7,
            owners: vec![Address::repeat_byte(1), Address::repeat_byte(2)],
            from: 3,
            to: 9,
            to_hash: B256::repeat_byte(9),
            safes: vec![Address::repeat_byte(5)],
        };
        check_search(&s).expect("valid");
        assert_eq!(decode(7, &encode(&s)).expect("decodes"), s);
        let mut bad = s.clone();
        bad.owners.reverse();
        assert!(
            check_search(&bad)
                .unwrap_err()
                .to_string()
                .contains("owners")
        );
        bad.owners.clear();
        assert!(check_search(&bad).is_err());
        let mut bad = s.clone();
        bad.safes = vec![Address::repeat_byte(5); 2];
        assert!(
            check_search(&bad)
                .unwrap_err()
                .to_string()
                .contains("safes")
        );
        let mut bad = s;
        bad.to = 2;
        assert!(check_search(&bad).unwrap_err().to_string().contains("to"));
        assert!(decode(7, &[0; 10]).is_err());
    }
}
