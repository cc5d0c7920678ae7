//! Address clusters by the common-input-ownership (multi-input) heuristic: the addresses whose
//! outputs one transaction spends together are taken to have one owner (Nakamoto's white paper
//! §10; Meiklejohn et al., "A Fistful of Bitcoins", IMC 2013, heuristic 1). CoinJoin-like
//! transactions, whose inputs belong to several people by design, are detected and merge
//! nothing ([`is_coinjoin`]).
//!
//! The clusters are a union-find over addresses kept in the store, updated in each block's
//! atomic write: every address's parent and, for a root, its cluster's size. Union by size
//! and no path compression (a find is at most log2(n) reads), so a block changes only the
//! roots it links, and its undo record is the previous value of each entry it changed: an
//! unwind puts them back, newest block first, and the clusters are exactly what they were.
//!
//! [`build`] ([`Build`]) computes the same union-find for many blocks at once, in memory over
//! interned addresses, with the same undo records: the stores' `rebuild_clusters`.

use std::collections::{BTreeSet, HashMap};

mod build;
pub use build::{Build, UndoRecord, build};

use rustc_hash::FxHashMap;

use super::TxRecord;
use crate::StoreError;
use crate::codec::{Reader, corrupt};

/// An address's union-find entry: its parent (itself for a root) and, for a root, the number
/// of addresses in its cluster.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Node {
    pub parent: String,
    pub size: u64,
}

/// The cluster an address is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    /// The cluster's representative address (its union-find root): two addresses are in one
    /// cluster when they have the same root.
    pub root: String,
    /// How many addresses the cluster holds.
    pub size: u64,
}

/// Whether `tx` looks like a CoinJoin: at least three outputs of one value (the equal-value
/// "mix" outputs of Wasabi, Whirlpool and JoinMarket rounds), at least as many inputs as those
/// outputs (each participant pays in), and at least two distinct input addresses. Whirlpool's
/// 5-in/5-out rounds, Wasabi's many-party rounds and JoinMarket's n equal outputs plus change
/// all match; a payment batch (many outputs of distinct values) and a consolidation (many
/// inputs, one or two outputs) do not. Such a transaction merges no addresses (Möser and
/// Böhme, "Join Me on a Market for Anonymity", WPES 2016; Kappos et al., "How to Peel a
/// Million", USENIX Security 2022, for the equal-output pattern).
pub fn is_coinjoin(tx: &TxRecord) -> bool {
    if tx.coinbase || tx.inputs.len() < 3 {
        return false;
    }
    let mut by_value: HashMap<u64, usize> = HashMap::new();
    for o in &tx.outputs {
        if o.address.is_some() {
            *by_value.entry(o.value).or_default() += 1;
        }
    }
    let equal = by_value.values().copied().max().unwrap_or(0);
    let owners: BTreeSet<&str> = tx
        .inputs
        .iter()
        .filter_map(|i| i.address.as_deref())
        .collect();
    equal >= 3 && tx.inputs.len() >= equal && owners.len() >= 2
}

/// The groups of addresses each transaction of a block merges: its distinct input addresses,
/// when there are two or more and it is neither the coinbase nor a CoinJoin.
pub fn merges(txs: &[TxRecord]) -> Vec<Vec<&str>> {
    txs.iter()
        .filter(|t| !t.coinbase && !is_coinjoin(t))
        .filter_map(|t| {
            // Distinct, in address order (a sorted vector: a set per transaction cost more).
            let mut set: Vec<&str> = t
                .inputs
                .iter()
                .filter_map(|i| i.address.as_deref())
                .collect();
            set.sort_unstable();
            set.dedup();
            (set.len() >= 2).then_some(set)
        })
        .collect()
}

/// A block's changes to the union-find: the new value of each entry changed, and the old one
/// (`None`: absent) for the undo record.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct UfChanges {
    pub new: Vec<(String, Node)>,
    pub old: Vec<(String, Option<Node>)>,
}

/// Runs a block's merges against the stored union-find (`read`), in memory. Both index
/// backends call this in each block's write (and the clustering benchmark over a map).
///
/// Every address the block touches (the groups' members and the parents followed from them)
/// is read once and numbered; the union-find then runs over the numbers, so a find costs no
/// allocation and no string hashing (the block's cost was in both).
pub fn apply(
    groups: &[Vec<&str>],
    read: impl FnMut(&str) -> Result<Option<Node>, StoreError>,
) -> Result<UfChanges, StoreError> {
    let mut w = Work {
        ids: FxHashMap::default(),
        entries: Vec::new(),
        read,
    };
    let mut roots: Vec<u32> = Vec::new();
    for group in groups {
        roots.clear();
        for a in group {
            let i = w.id(a)?;
            roots.push(w.root(i)?);
        }
        // Fold the group into one cluster, pair by pair in order (as the stores always have).
        for k in 1..roots.len() {
            let (a, b) = (w.root(roots[k - 1])?, w.root(roots[k])?);
            if a == b {
                continue;
            }
            let (ea, eb) = (&w.entries[a as usize], &w.entries[b as usize]);
            // The larger cluster's root stays root (ties: the smaller address, for a result
            // independent of the order the pair came in).
            let (keep, join) = if ea.size > eb.size || (ea.size == eb.size && ea.addr < eb.addr) {
                (a, b)
            } else {
                (b, a)
            };
            let size = w.entries[keep as usize].size + w.entries[join as usize].size;
            w.entries[join as usize].parent = Some(keep);
            w.entries[keep as usize].size = size;
            roots[k] = keep;
        }
    }
    let mut new = Vec::new();
    let mut old = Vec::new();
    let parents: Vec<Option<std::rc::Rc<str>>> = w
        .entries
        .iter()
        .map(|e| e.parent.map(|p| w.entries[p as usize].addr.clone()))
        .collect();
    for (e, parent) in w.entries.into_iter().zip(parents) {
        let parent = match parent {
            Some(p) => p.to_string(),
            None => e.pending.unwrap_or_else(|| e.addr.to_string()),
        };
        let now = Node {
            parent,
            size: e.size,
        };
        let unchanged = match &e.old {
            Some(b) => *b == now,
            // Absent and still a root of one: nothing to write.
            None => now.parent == *e.addr && now.size == 1,
        };
        if !unchanged {
            new.push((e.addr.to_string(), now));
            old.push((e.addr.to_string(), e.old));
        }
    }
    Ok(UfChanges { new, old })
}

/// One address of a block's union-find work.
struct Entry {
    addr: std::rc::Rc<str>,
    /// Its parent's number once followed (`None` with no `pending`: a root).
    parent: Option<u32>,
    /// The stored parent's address, not followed yet.
    pending: Option<String>,
    size: u64,
    /// As stored before the block (`None`: absent).
    old: Option<Node>,
}

struct Work<R> {
    ids: FxHashMap<std::rc::Rc<str>, u32>,
    entries: Vec<Entry>,
    read: R,
}

impl<R: FnMut(&str) -> Result<Option<Node>, StoreError>> Work<R> {
    /// The number of `addr`, read from the store the first time.
    fn id(&mut self, addr: &str) -> Result<u32, StoreError> {
        if let Some(&i) = self.ids.get(addr) {
            return Ok(i);
        }
        let stored = (self.read)(addr)?;
        let i = u32::try_from(self.entries.len())
            .map_err(|_| corrupt("more than 2^32 addresses in one block's clusters"))?;
        let addr: std::rc::Rc<str> = addr.into();
        let (pending, size) = match &stored {
            Some(n) if n.parent != *addr => (Some(n.parent.clone()), n.size),
            Some(n) => (None, n.size),
            None => (None, 1),
        };
        self.ids.insert(addr.clone(), i);
        self.entries.push(Entry {
            addr,
            parent: None,
            pending,
            size,
            old: stored,
        });
        Ok(i)
    }

    /// The root of entry `i` (following stored parents, reading each once).
    fn root(&mut self, mut i: u32) -> Result<u32, StoreError> {
        for _ in 0..=64 {
            if let Some(p) = self.entries[i as usize].pending.take() {
                let pi = self.id(&p)?;
                self.entries[i as usize].parent = Some(pi);
            }
            match self.entries[i as usize].parent {
                None => return Ok(i),
                Some(p) => i = p,
            }
        }
        Err(corrupt("cluster parent chain longer than 64"))
    }
}

/// Follows `address`'s parents to its root.
pub(crate) fn find(
    address: &str,
    mut read: impl FnMut(&str) -> Result<Option<Node>, StoreError>,
) -> Result<Cluster, StoreError> {
    let mut at = address.to_owned();
    for _ in 0..=64 {
        match read(&at)? {
            None => {
                return Ok(Cluster { root: at, size: 1 });
            }
            Some(n) if n.parent == at => {
                return Ok(Cluster {
                    root: at,
                    size: n.size,
                });
            }
            Some(n) => at = n.parent,
        }
    }
    Err(corrupt("cluster parent chain longer than 64"))
}

/// A cluster's members from its root, breadth first (the root first), at most `limit`:
/// `children` gives the addresses whose parent is one of those asked about (a level of the
/// union-find at once: one query per level, at most log2(size) levels), at most `limit`.
pub(crate) fn members(
    root: &str,
    limit: usize,
    mut children: impl FnMut(&[String], usize) -> Result<Vec<String>, StoreError>,
) -> Result<Vec<String>, StoreError> {
    let mut out = Vec::new();
    if limit == 0 {
        return Ok(out);
    }
    out.push(root.to_owned());
    let mut level = 0;
    while level < out.len() && out.len() < limit {
        let end = out.len();
        let kids = children(&out[level..end], limit - out.len())?;
        level = end;
        for k in kids {
            if out.len() >= limit {
                break;
            }
            out.push(k);
        }
    }
    Ok(out)
}

pub(crate) fn encode_node(n: &Node) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + n.parent.len());
    out.push(n.parent.len() as u8);
    out.extend_from_slice(n.parent.as_bytes());
    out.extend_from_slice(&n.size.to_be_bytes());
    out
}

pub(crate) fn decode_node(v: &[u8]) -> Result<Node, StoreError> {
    let mut r = Reader(v);
    let n = usize::from(r.u8()?);
    let parent =
        String::from_utf8(r.take(n)?.to_vec()).map_err(|_| corrupt("cluster parent address"))?;
    let size = r.u64()?;
    if !r.0.is_empty() {
        return Err(corrupt("cluster entry: trailing bytes"));
    }
    Ok(Node { parent, size })
}

pub(crate) fn encode_undo(old: &[(String, Option<Node>)]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(old.len() as u32).to_be_bytes());
    for (a, n) in old {
        out.push(a.len() as u8);
        out.extend_from_slice(a.as_bytes());
        match n {
            Some(n) => {
                let b = encode_node(n);
                out.push(1);
                out.extend_from_slice(&(b.len() as u32).to_be_bytes());
                out.extend_from_slice(&b);
            }
            None => out.push(0),
        }
    }
    out
}

pub(crate) fn decode_undo(v: &[u8]) -> Result<Vec<(String, Option<Node>)>, StoreError> {
    let mut r = Reader(v);
    let mut out = Vec::new();
    for _ in 0..r.u32()? {
        let n = usize::from(r.u8()?);
        let a = String::from_utf8(r.take(n)?.to_vec()).map_err(|_| corrupt("cluster address"))?;
        let node = match r.u8()? {
            0 => None,
            1 => {
                let len = r.u32()? as usize;
                Some(decode_node(r.take(len)?)?)
            }
            _ => return Err(corrupt("cluster undo flag")),
        };
        out.push((a, node));
    }
    if !r.0.is_empty() {
        return Err(corrupt("cluster undo: trailing bytes"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::utxo::{OutPointKey, TxInput, TxOutput};
    use alloy_primitives::B256;

    fn tx(inputs: &[&str], outputs: &[u64]) -> TxRecord {
        TxRecord {
            txid: B256::ZERO,
            coinbase: false,
            inputs: inputs
                .iter()
                .enumerate()
                .map(|(i, a)| TxInput {
                    prevout: OutPointKey {
                        txid: B256::repeat_byte(i as u8),
                        vout: 0,
                    },
                    value: 1_000_000,
                    address: Some((*a).into()),
                })
                .collect(),
            outputs: outputs
                .iter()
                .map(|v| TxOutput {
                    value: *v,
                    script: vec![],
                    address: Some(format!("o{v}")),
                })
                .collect(),
        }
    }

    #[test]
    fn coinjoins_are_told_from_consolidations_and_batches() {
        // Whirlpool: 5 in, 5 equal out.
        assert!(is_coinjoin(&tx(&["a", "b", "c", "d", "e"], &[5; 5])));
        // JoinMarket: 3 equal outputs plus change.
        assert!(is_coinjoin(&tx(&["a", "b", "c", "d"], &[7, 7, 7, 1, 2])));
        // A consolidation, a payment batch, one owner's equal outputs.
        assert!(!is_coinjoin(&tx(&["a", "b", "c", "d"], &[9])));
        assert!(!is_coinjoin(&tx(&["a", "b"], &[1, 2, 3, 4, 5])));
        assert!(!is_coinjoin(&tx(&["a", "a", "a"], &[4, 4, 4])));
        assert!(!is_coinjoin(&tx(&["a", "b"], &[4, 4, 4])));
    }

    /// The implementation before numbering (string keys throughout): the reference the
    /// numbered one must match exactly.
    fn apply_reference(
        groups: &[Vec<&str>],
        mut read: impl FnMut(&str) -> Result<Option<Node>, StoreError>,
    ) -> Result<UfChanges, StoreError> {
        let mut overlay: HashMap<String, Node> = HashMap::new();
        let mut old: Vec<(String, Option<Node>)> = Vec::new();
        let mut get = |addr: &str,
                       overlay: &HashMap<String, Node>,
                       old: &mut Vec<(String, Option<Node>)>|
         -> Result<Node, StoreError> {
            if let Some(n) = overlay.get(addr) {
                return Ok(n.clone());
            }
            // Not in the overlay: read for the first time (every address read is then put in the
            // overlay), so `old` gets each address once.
            let stored = read(addr)?;
            old.push((addr.to_owned(), stored.clone()));
            Ok(stored.unwrap_or(Node {
                parent: addr.to_owned(),
                size: 1,
            }))
        };
        for group in groups {
            for pair in group.windows(2) {
                // Find both roots.
                let mut roots = Vec::with_capacity(2);
                for start in pair {
                    let mut at = (*start).to_owned();
                    let mut hops = 0u32;
                    loop {
                        let n = get(&at, &overlay, &mut old)?;
                        overlay.entry(at.clone()).or_insert_with(|| n.clone());
                        if n.parent == at {
                            roots.push((at, n.size));
                            break;
                        }
                        hops += 1;
                        if hops > 64 {
                            return Err(corrupt("cluster parent chain longer than 64"));
                        }
                        at = n.parent;
                    }
                }
                let (a, b) = (&roots[0], &roots[1]);
                if a.0 == b.0 {
                    continue;
                }
                // The larger cluster's root stays root (ties: the smaller address, for a result
                // independent of the order the pair came in).
                let (keep, join) = if a.1 > b.1 || (a.1 == b.1 && a.0 < b.0) {
                    (a, b)
                } else {
                    (b, a)
                };
                let size = keep.1 + join.1;
                overlay.insert(
                    join.0.clone(),
                    Node {
                        parent: keep.0.clone(),
                        size: join.1,
                    },
                );
                overlay.insert(
                    keep.0.clone(),
                    Node {
                        parent: keep.0.clone(),
                        size,
                    },
                );
            }
        }
        let new: Vec<(String, Node)> = old
            .iter()
            .filter_map(|(a, before)| {
                let now = overlay.get(a)?;
                let unchanged = match before {
                    Some(b) => b == now,
                    // Absent and still a root of one: nothing to write.
                    None => now.parent == *a && now.size == 1,
                };
                (!unchanged).then(|| (a.clone(), now.clone()))
            })
            .collect();
        let changed: std::collections::HashSet<&str> =
            new.iter().map(|(a, _)| a.as_str()).collect();
        let old = old
            .into_iter()
            .filter(|(a, _)| changed.contains(a.as_str()))
            .collect();
        Ok(UfChanges { new, old })
    }

    #[test]
    fn the_numbered_union_find_matches_the_reference_exactly() {
        let mut rng = 0x1234_5678_9abc_def0u64;
        let mut next = || {
            rng ^= rng >> 12;
            rng ^= rng << 25;
            rng ^= rng >> 27;
            rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
        };
        let names: Vec<String> = (0..400).map(|i| format!("addr{i}")).collect();
        let mut store: HashMap<String, Node> = HashMap::new();
        for _ in 0..300 {
            let groups: Vec<Vec<&str>> = (0..1 + next() % 20)
                .map(|_| {
                    let mut g: Vec<&str> = (0..2 + next() % 4)
                        .map(|_| names[(next() % 400) as usize].as_str())
                        .collect();
                    g.sort_unstable();
                    g.dedup();
                    g
                })
                .filter(|g| g.len() >= 2)
                .collect();
            let a = apply(&groups, |x| Ok(store.get(x).cloned())).unwrap();
            let b = apply_reference(&groups, |x| Ok(store.get(x).cloned())).unwrap();
            assert_eq!(a, b);
            for (x, n) in a.new {
                store.insert(x, n);
            }
        }
        let sizes: Vec<u64> = store.values().map(|n| n.size).collect();
        assert!(
            sizes.iter().any(|&s| s > 100),
            "clusters grew large: {sizes:?}"
        );
    }

    #[test]
    fn merges_union_and_undo() {
        let mut store: HashMap<String, Node> = HashMap::new();
        let step = |groups: Vec<Vec<&str>>, store: &mut HashMap<String, Node>| {
            let c = apply(&groups, |a| Ok(store.get(a).cloned())).unwrap();
            for (a, n) in &c.new {
                store.insert(a.clone(), n.clone());
            }
            c
        };
        let before = store.clone();
        let c1 = step(vec![vec!["a", "b"], vec!["c", "d"]], &mut store);
        let after1 = store.clone();
        let c2 = step(vec![vec!["b", "d", "e"]], &mut store);
        let root = |a: &str, s: &HashMap<String, Node>| find(a, |x| Ok(s.get(x).cloned())).unwrap();
        assert_eq!(root("a", &store), root("e", &store));
        assert_eq!(root("a", &store).size, 5);
        assert_eq!(root("zz", &store).size, 1);
        // Undo newest first.
        for (a, old) in c2.old {
            match old {
                Some(n) => store.insert(a, n),
                None => store.remove(&a),
            };
        }
        assert_eq!(store, after1);
        for (a, old) in c1.old {
            match old {
                Some(n) => store.insert(a, n),
                None => store.remove(&a),
            };
        }
        assert_eq!(store, before);
        let undo = vec![
            ("a".to_owned(), None),
            (
                "b".to_owned(),
                Some(Node {
                    parent: "a".into(),
                    size: 1,
                }),
            ),
        ];
        assert_eq!(decode_undo(&encode_undo(&undo)).unwrap(), undo);
    }
}
