//! The clusters built in memory in one pass over a chain's blocks ([`Build`], [`build`]): what
//! a rebuild of the stored union-find runs (`UtxoStore::rebuild_clusters`).
//!
//! The result is exactly what [`super::apply`] gives block by block from an empty store: the
//! same union rule (union by size, ties to the smaller address) over the same merge groups in
//! the same order, so every address's parent and size are the ones incremental ingestion
//! writes, and the undo record of a block built with [`Build::add_recorded`] is the one
//! `apply` records (the same entries, in the same order, with the same old values). The
//! difference is the cost: every address is interned once into a number (one arena of text,
//! a table of numbers, no per-address allocation), the union-find runs over numbers, and a
//! find follows a second, path-halved array of ancestors (`up`) while the parents stay
//! uncompressed as `apply` leaves them.

use hashbrown::HashTable;
use rustc_hash::FxHashSet;
use std::hash::BuildHasher;

use super::{Node, TxRecord, merges};
use crate::StoreError;
use crate::codec::corrupt;

/// One interned address: where its text ends in the arena, and its union-find entry.
#[derive(Clone, Copy)]
struct Slot {
    /// The end of the address's text in [`Build::text`] (it starts at the previous one's).
    end: u64,
    parent: u32,
    /// A root's cluster size; a non-root's size when it was joined (as `apply` keeps it).
    size: u32,
    /// An ancestor (itself for a root): finds follow and halve these paths.
    up: u32,
}

/// A union-find over interned addresses, built block by block (see the module documentation).
/// An address's number is its order of first sight; what a find, a link and an interning
/// read of it is in one 24-byte slot (a cache miss, not three), its text in one arena.
#[derive(Default)]
pub struct Build {
    text: String,
    slots: Vec<Slot>,
    /// The numbers, hashed by their text, each with 32 bits of its text's hash: the table's
    /// hash is derived from those, so growing the table reads no text.
    table: HashTable<(u32, u32)>,
    hasher: foldhash::fast::RandomState,
}

impl std::fmt::Debug for Build {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Build")
            .field("addresses", &self.slots.len())
            .finish_non_exhaustive()
    }
}

/// The table's 64-bit hash from the 32 bits kept (its top bits are the control tag, its
/// low bits the bucket: a multiplication spreads the 32 bits over both).
fn spread(h32: u32) -> u64 {
    u64::from(h32).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// The text of address `i`.
fn name<'a>(text: &'a str, slots: &[Slot], i: u32) -> &'a str {
    let i = i as usize;
    let start = if i == 0 { 0 } else { slots[i - 1].end as usize };
    &text[start..slots[i].end as usize]
}

/// Old values of the entries a block changed, as [`super::UfChanges::old`]: the undo record.
pub type UndoRecord = Vec<(String, Option<Node>)>;

impl Build {
    pub fn new() -> Build {
        Build::default()
    }

    /// How many addresses are interned (every one of them is in a cluster of two or more when
    /// the groups come from [`merges`]).
    pub fn addresses(&self) -> usize {
        self.slots.len()
    }

    /// Bytes held on the heap (capacities): the address's text, its 24-byte slot and its
    /// place in the table (8 bytes and a control byte, the table at most 7/8 full), so about
    /// 35 bytes plus the address's length, and up to twice that while the arrays grow by
    /// doubling.
    pub fn heap_bytes(&self) -> u64 {
        (self.text.capacity()
            + self.slots.capacity() * std::mem::size_of::<Slot>()
            + self.table.capacity() * (8 + 1)) as u64
    }

    fn name(&self, i: u32) -> &str {
        name(&self.text, &self.slots, i)
    }

    /// The number of `a` (interned now if it is new: a root of one).
    fn id(&mut self, a: &str) -> Result<u32, StoreError> {
        let Build {
            text,
            slots,
            table,
            hasher,
        } = self;
        let h32 = (hasher.hash_one(a.as_bytes()) >> 32) as u32;
        if let Some(&(i, _)) =
            table.find(spread(h32), |&(i, h)| h == h32 && name(text, slots, i) == a)
        {
            return Ok(i);
        }
        let i = u32::try_from(slots.len())
            .ok()
            .filter(|&i| i < u32::MAX)
            .ok_or_else(|| corrupt("more than 2^32 addresses in clusters"))?;
        table.insert_unique(spread(h32), (i, h32), |&(_, h)| spread(h));
        text.push_str(a);
        slots.push(Slot {
            end: text.len() as u64,
            parent: i,
            size: 1,
            up: i,
        });
        Ok(i)
    }

    fn root(&mut self, mut i: u32) -> u32 {
        loop {
            let p = self.slots[i as usize].up;
            if p == i {
                return i;
            }
            let g = self.slots[p as usize].up;
            self.slots[i as usize].up = g;
            i = g;
        }
    }

    /// Links the clusters of roots `a` and `b` by `apply`'s rule; the root kept.
    fn link(&mut self, a: u32, b: u32) -> u32 {
        let (sa, sb) = (self.slots[a as usize].size, self.slots[b as usize].size);
        // The larger cluster's root stays root (ties: the smaller address), as in `apply`.
        let (keep, join) = if sa > sb || (sa == sb && self.name(a) < self.name(b)) {
            (a, b)
        } else {
            (b, a)
        };
        let j = &mut self.slots[join as usize];
        j.parent = keep;
        j.up = keep;
        self.slots[keep as usize].size = sa + sb;
        keep
    }

    /// Folds one group into one cluster, pair by pair in order (as `apply` does).
    fn group(&mut self, ids: &[u32]) {
        let Some((&first, rest)) = ids.split_first() else {
            return;
        };
        let mut acc = self.root(first);
        for &i in rest {
            let b = self.root(i);
            if b != acc {
                acc = self.link(acc, b);
            }
        }
    }

    /// Runs a block's merge groups ([`merges`]), keeping no undo record.
    pub fn add(&mut self, groups: &[Vec<&str>]) -> Result<(), StoreError> {
        let mut ids = Vec::new();
        for g in groups {
            ids.clear();
            for a in g {
                ids.push(self.id(a)?);
            }
            self.group(&ids);
        }
        Ok(())
    }

    /// The stored entry of address `i` as `apply` would read it (`None`: absent, which a root
    /// of one always is).
    fn stored(&self, i: u32) -> Option<(u32, u32)> {
        let s = &self.slots[i as usize];
        (s.parent != i || s.size != 1).then_some((s.parent, s.size))
    }

    fn node(&self, (p, s): (u32, u32)) -> Node {
        Node {
            parent: self.name(p).to_owned(),
            size: u64::from(s),
        }
    }

    /// Runs a block's merge groups and returns its undo record, exactly as `apply` records
    /// it: every address the block touches (each group's members, then the parents followed
    /// up from each to its root, before the group is linked), in the order first touched,
    /// with its entry before the block, for those whose entry changed.
    pub fn add_recorded(&mut self, groups: &[Vec<&str>]) -> Result<UndoRecord, StoreError> {
        let mut seen: FxHashSet<u32> = FxHashSet::default();
        let mut touched: Vec<(u32, Option<(u32, u32)>)> = Vec::new();
        let mut ids = Vec::new();
        for g in groups {
            ids.clear();
            for a in g {
                let i = self.id(a)?;
                ids.push(i);
                // Untouched entries are as before the block; the touched ones are closed
                // under parents, so the walk stops at the first one seen.
                let mut x = i;
                while seen.insert(x) {
                    touched.push((x, self.stored(x)));
                    let p = self.slots[x as usize].parent;
                    if p == x {
                        break;
                    }
                    x = p;
                }
            }
            self.group(&ids);
        }
        Ok(touched
            .into_iter()
            .filter(|&(x, old)| old != self.stored(x))
            .map(|(x, old)| (self.name(x).to_owned(), old.map(|o| self.node(o))))
            .collect())
    }

    /// The stored entry of `address` as numbers.
    fn find(&self, address: &str) -> Option<(u32, u32)> {
        let h32 = (self.hasher.hash_one(address.as_bytes()) >> 32) as u32;
        let &(i, _) = self
            .table
            .find(spread(h32), |&(i, h)| h == h32 && self.name(i) == address)?;
        self.stored(i)
    }

    /// The entry of `address`, as the store would hold it after the blocks added.
    pub fn get(&self, address: &str) -> Option<Node> {
        self.find(address).map(|o| self.node(o))
    }

    /// The parent of `address` in its entry (itself for a root), if it has one.
    pub fn parent(&self, address: &str) -> Option<&str> {
        self.find(address).map(|(p, _)| self.name(p))
    }

    /// Every entry: address, parent address and size, in the order the addresses were first
    /// seen (roots of one, which the store does not hold, left out).
    pub fn nodes(&self) -> impl Iterator<Item = (&str, &str, u64)> + '_ {
        (0..self.slots.len() as u32).filter_map(move |i| {
            let (p, s) = self.stored(i)?;
            Some((self.name(i), self.name(p), u64::from(s)))
        })
    }

    /// Roots of clusters of two or more, and the largest size.
    pub fn clusters(&self) -> (u64, u64) {
        let mut roots = 0;
        let mut largest = 0;
        for (i, s) in self.slots.iter().enumerate() {
            if s.parent as usize == i && s.size > 1 {
                roots += 1;
                largest = largest.max(u64::from(s.size));
            }
        }
        (roots, largest)
    }
}

/// The clusters of `blocks` (each block's transactions, in block order) built from nothing,
/// with the undo records of the newest `keep_undo` blocks (`None`: every block's), oldest
/// first: what `apply` block by block from an empty store writes and records.
pub fn build(
    blocks: &[Vec<TxRecord>],
    keep_undo: Option<usize>,
) -> Result<(Build, Vec<UndoRecord>), StoreError> {
    let first_kept = keep_undo.map_or(0, |k| blocks.len().saturating_sub(k));
    let mut b = Build::new();
    let mut undo = Vec::new();
    for (n, txs) in blocks.iter().enumerate() {
        let groups = merges(txs);
        if n >= first_kept {
            undo.push(b.add_recorded(&groups)?);
        } else {
            b.add(&groups)?;
        }
    }
    Ok((b, undo))
}

#[cfg(test)]
mod tests {
    use super::super::{apply, is_coinjoin};
    use super::*;
    use crate::utxo::{OutPointKey, TxInput, TxOutput};
    use alloy_primitives::B256;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn tx(inputs: &[String], equal_outputs: usize) -> TxRecord {
        TxRecord {
            txid: B256::ZERO,
            coinbase: inputs.is_empty(),
            inputs: inputs
                .iter()
                .map(|a| TxInput {
                    prevout: OutPointKey {
                        txid: B256::ZERO,
                        vout: 0,
                    },
                    value: 1_000,
                    address: Some(a.clone()),
                })
                .collect(),
            outputs: (0..equal_outputs.max(1))
                .map(|i| TxOutput {
                    value: if equal_outputs >= 3 {
                        500
                    } else {
                        400 + i as u64
                    },
                    script: Vec::new(),
                    address: Some("out".into()),
                })
                .collect(),
        }
    }

    /// `apply` block by block from an empty store: the entries and each block's undo record.
    fn fold(blocks: &[Vec<TxRecord>]) -> (HashMap<String, Node>, Vec<UndoRecord>) {
        let mut store: HashMap<String, Node> = HashMap::new();
        let mut undo = Vec::new();
        for txs in blocks {
            let c = apply(&merges(txs), |a| Ok(store.get(a).cloned())).expect("apply");
            for (a, n) in c.new {
                store.insert(a, n);
            }
            undo.push(c.old);
        }
        (store, undo)
    }

    fn check(blocks: &[Vec<TxRecord>], keep: Option<usize>) {
        let (store, undo) = fold(blocks);
        let (b, built_undo) = build(blocks, keep).expect("build");
        let built: HashMap<String, Node> = b
            .nodes()
            .map(|(a, p, s)| {
                (
                    a.to_owned(),
                    Node {
                        parent: p.to_owned(),
                        size: s,
                    },
                )
            })
            .collect();
        assert_eq!(built, store, "every address's entry");
        for (a, n) in &store {
            assert_eq!(b.get(a).as_ref(), Some(n));
        }
        let kept = keep.map_or(undo.len(), |k| k.min(undo.len()));
        assert_eq!(
            built_undo,
            undo[undo.len() - kept..],
            "the kept undo records"
        );
    }

    /// Blocks over `names` addresses: groups of 1 to 6 inputs (repeats included), some
    /// CoinJoin-like, some coinbases.
    fn blocks(seed: u64, n: usize, names: usize) -> Vec<Vec<TxRecord>> {
        let mut rng = seed | 1;
        let mut next = move || {
            rng ^= rng >> 12;
            rng ^= rng << 25;
            rng ^= rng >> 27;
            rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
        };
        let names: Vec<String> = (0..names).map(|i| format!("a{:x}", i * 7919)).collect();
        (0..n)
            .map(|_| {
                (0..1 + next() % 12)
                    .map(|_| {
                        let k = (next() % 7) as usize;
                        let ins: Vec<String> = (0..k)
                            .map(|_| names[(next() % names.len() as u64) as usize].clone())
                            .collect();
                        let coinjoin = next() % 10 == 0;
                        tx(&ins, if coinjoin { k } else { 2 })
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn build_equals_apply_block_by_block() {
        for (seed, names) in [(1, 30), (2, 300), (3, 3000)] {
            let bs = blocks(seed, 400, names);
            assert!(bs.iter().flatten().any(is_coinjoin));
            check(&bs, None);
            check(&bs, Some(50));
            check(&bs, Some(0));
        }
    }

    /// Long chains: pairs, then pairs of pairs, ... (union by size's deepest trees), with
    /// every tie decided by the addresses; then the same names in reverse order.
    #[test]
    fn deep_trees_and_ties() {
        let names: Vec<String> = (0..1024).map(|i| format!("t{i:04}")).collect();
        let mut bs = Vec::new();
        for order in [false, true] {
            let mut width = 1;
            while width < names.len() {
                let block: Vec<TxRecord> = (0..names.len())
                    .step_by(2 * width)
                    .map(|i| {
                        let (a, b) = (names[i].clone(), names[i + width].clone());
                        tx(&if order { vec![b, a] } else { vec![a, b] }, 2)
                    })
                    .collect();
                bs.push(block);
                width *= 2;
            }
        }
        check(&bs, Some(5));
        let (b, _) = build(&bs, Some(0)).expect("build");
        assert_eq!(b.clusters(), (1, 1024));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn build_equals_apply_for_random_blocks(
            seed in any::<u64>(),
            n in 1usize..60,
            names in 2usize..200,
            keep in proptest::option::of(0usize..20),
        ) {
            check(&blocks(seed, n, names), keep);
        }
    }
}
