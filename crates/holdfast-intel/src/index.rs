//! The screening index: every label of every source, interned into a compact form and keyed
//! by normalized address, built once and then read-only (so it can be swapped atomically).
//!
//! Layout: labels sit in one `Vec<Label>` grouped by address; three hash maps (EVM bytes,
//! case-sensitive text, case-folded text) point at each address's span. A `Label` is 44
//! bytes of integers: strings (source, actor, name, ...) are interned once.

use std::collections::BTreeMap;

use alloy_primitives::Address;
use holdfast_primitives::{Category, Chain, Confidence, Date, RiskLevel};
use rustc_hash::FxHashMap;

use crate::address::{self, AddressError, AddressKey, ChainSet};
use crate::record::LabelRecord;

/// Index of an interned string; 0 is "absent".
type Sym = u32;

/// One label in the index. Strings are interned; use [`IntelIndex::record`] to get a
/// [`LabelRecord`] back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Label {
    pub chains: ChainSet,
    source: Sym,
    actor: Sym,
    name: Sym,
    reference: Sym,
    program: Sym,
    uid: Sym,
    pub listed_on: Option<Date>,
    pub delisted_on: Option<Date>,
    pub category: Category,
    pub confidence: Confidence,
    pub case_folded: bool,
}

impl Label {
    /// Whether the label applies on `day`: listed on or before it, not yet delisted.
    pub fn active_on(&self, day: Date) -> bool {
        self.listed_on.is_none_or(|l| l <= day) && self.delisted_on.is_none_or(|d| day < d)
    }

    /// The risk this label carries on its own (category capped by confidence).
    pub fn risk(&self) -> RiskLevel {
        RiskLevel::of_label(self.category, self.confidence)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: u32,
    len: u32,
}

/// Read-only label index. Cheap to share (`Arc`), built by [`IndexBuilder`].
#[derive(Debug, Default)]
pub struct IntelIndex {
    labels: Vec<Label>,
    strings: Vec<Box<str>>,
    evm: FxHashMap<Address, Span>,
    text: FxHashMap<Box<str>, Span>,
    folded: FxHashMap<Box<str>, Span>,
}

/// Counts for `intel stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct IntelStats {
    pub labels: usize,
    pub addresses: usize,
    /// source → category → labels.
    pub by_source: BTreeMap<String, BTreeMap<Category, usize>>,
}

impl IntelIndex {
    /// Labels stored under `key`, whatever their chain or dates.
    #[inline]
    pub fn labels(&self, key: &AddressKey) -> &[Label] {
        let span = match key {
            AddressKey::Evm(a) => self.evm.get(a),
            AddressKey::Text(t) => self.text.get(t),
        };
        span.map_or(&[], |s| self.slice(*s))
    }

    /// Labels whose source gives the address only lower-cased (see [`LabelRecord::case_folded`]).
    pub fn folded_labels(&self, key: &AddressKey) -> &[Label] {
        match key {
            AddressKey::Text(t) if !self.folded.is_empty() => self
                .folded
                .get(t.to_ascii_lowercase().as_str())
                .map_or(&[], |s| self.slice(*s)),
            _ => &[],
        }
    }

    /// Fast path for the hot loop: labels of an EVM address.
    #[inline]
    pub fn evm_labels(&self, address: &Address) -> &[Label] {
        self.evm.get(address).map_or(&[], |s| self.slice(*s))
    }

    fn slice(&self, s: Span) -> &[Label] {
        let start = s.start as usize;
        self.labels
            .get(start..start + s.len as usize)
            .unwrap_or(&[])
    }

    fn sym(&self, s: Sym) -> Option<&str> {
        if s == 0 {
            None
        } else {
            self.strings.get(s as usize).map(|b| &**b)
        }
    }

    pub fn source(&self, label: &Label) -> &str {
        self.sym(label.source).unwrap_or("")
    }

    /// The label with its strings, as a record (the address is given by the caller).
    pub fn record(&self, address: &str, label: &Label) -> LabelRecord {
        let own = |s: Sym| self.sym(s).map(str::to_owned);
        LabelRecord {
            address: address.to_owned(),
            chain: (label.chains.len() == 1)
                .then(|| label.chains.iter().next())
                .flatten(),
            source: self.source(label).to_owned(),
            category: label.category,
            confidence: label.confidence,
            actor: own(label.actor),
            name: own(label.name),
            reference: own(label.reference),
            program: own(label.program),
            uid: own(label.uid),
            listed_on: label.listed_on,
            delisted_on: label.delisted_on,
            case_folded: label.case_folded,
        }
    }

    pub fn name(&self, label: &Label) -> Option<&str> {
        self.sym(label.name)
    }
    pub fn actor(&self, label: &Label) -> Option<&str> {
        self.sym(label.actor)
    }
    pub fn reference(&self, label: &Label) -> Option<&str> {
        self.sym(label.reference)
    }
    pub fn program(&self, label: &Label) -> Option<&str> {
        self.sym(label.program)
    }
    pub fn uid(&self, label: &Label) -> Option<&str> {
        self.sym(label.uid)
    }

    pub fn label_count(&self) -> usize {
        self.labels.len()
    }

    pub fn address_count(&self) -> usize {
        self.evm.len() + self.text.len() + self.folded.len()
    }

    pub fn stats(&self) -> IntelStats {
        let mut by_source: BTreeMap<String, BTreeMap<Category, usize>> = BTreeMap::new();
        for l in &self.labels {
            *by_source
                .entry(self.source(l).to_owned())
                .or_default()
                .entry(l.category)
                .or_default() += 1;
        }
        IntelStats {
            labels: self.labels.len(),
            addresses: self.address_count(),
            by_source,
        }
    }

    /// Heap bytes held by the index (labels, strings, maps), for the memory benchmark.
    pub fn heap_bytes(&self) -> usize {
        fn map_bytes<K, V>(m: &FxHashMap<K, V>) -> usize {
            // hashbrown: one control byte per bucket plus a group of trailing control bytes.
            m.capacity() * (std::mem::size_of::<(K, V)>() + 1) + 16
        }
        self.labels.capacity() * std::mem::size_of::<Label>()
            + self.strings.capacity() * std::mem::size_of::<Box<str>>()
            + self.strings.iter().map(|s| s.len()).sum::<usize>()
            + map_bytes(&self.evm)
            + map_bytes(&self.text)
            + self.text.keys().map(|k| k.len()).sum::<usize>()
            + map_bytes(&self.folded)
            + self.folded.keys().map(|k| k.len()).sum::<usize>()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Slot {
    Evm(Address),
    Text(Box<str>),
    Folded(Box<str>),
}

/// Collects labels, then [`IndexBuilder::finish`] groups them by address.
#[derive(Debug)]
pub struct IndexBuilder {
    entries: Vec<(Slot, Label)>,
    strings: Vec<Box<str>>,
    interned: FxHashMap<Box<str>, Sym>,
}

impl Default for IndexBuilder {
    fn default() -> Self {
        IndexBuilder {
            entries: Vec::new(),
            // Index 0 is reserved for "absent".
            strings: vec![Box::from("")],
            interned: FxHashMap::default(),
        }
    }
}

/// A record the builder could not index, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("label from {source_name} for {address:?}: {error}")]
pub struct RejectedRecord {
    pub source_name: String,
    pub address: String,
    pub error: AddressError,
}

impl IndexBuilder {
    pub fn with_capacity(labels: usize) -> Self {
        let mut b = IndexBuilder::default();
        b.entries.reserve(labels);
        b
    }

    pub fn intern(&mut self, s: &str) -> Sym {
        if s.is_empty() {
            return 0;
        }
        if let Some(&sym) = self.interned.get(s) {
            return sym;
        }
        let sym = self.strings.len() as Sym;
        self.strings.push(Box::from(s));
        self.interned.insert(Box::from(s), sym);
        sym
    }

    fn intern_opt(&mut self, s: Option<&str>) -> Sym {
        s.map_or(0, |s| self.intern(s))
    }

    /// Parses the record's address (for its chain, if given) and adds the label.
    pub fn add(&mut self, record: &LabelRecord) -> Result<(), RejectedRecord> {
        let reject = |error| RejectedRecord {
            source_name: record.source.clone(),
            address: record.address.clone(),
            error,
        };
        let (slot, chains) = if record.case_folded {
            let chains = record.chain.map(ChainSet::of).ok_or_else(|| {
                reject(AddressError::Unrecognised {
                    input: record.address.clone(),
                })
            })?;
            (
                Slot::Folded(record.address.trim().to_ascii_lowercase().into_boxed_str()),
                chains,
            )
        } else {
            let (key, chains) =
                address::parse_key(&record.address, record.chain).map_err(reject)?;
            let slot = match key {
                AddressKey::Evm(a) => Slot::Evm(a),
                AddressKey::Text(t) => Slot::Text(t),
            };
            (slot, chains)
        };
        let label = Label {
            chains,
            source: self.intern(&record.source),
            actor: self.intern_opt(record.actor.as_deref()),
            name: self.intern_opt(record.name.as_deref()),
            reference: self.intern_opt(record.reference.as_deref()),
            program: self.intern_opt(record.program.as_deref()),
            uid: self.intern_opt(record.uid.as_deref()),
            listed_on: record.listed_on,
            delisted_on: record.delisted_on,
            category: record.category,
            confidence: record.confidence,
            case_folded: record.case_folded,
        };
        self.entries.push((slot, label));
        Ok(())
    }

    /// Adds an EVM label with pre-interned strings (bulk loads and the synthetic benchmark).
    #[allow(clippy::too_many_arguments)]
    pub fn push_evm(
        &mut self,
        address: Address,
        chains: ChainSet,
        source: Sym,
        category: Category,
        confidence: Confidence,
        name: Sym,
        actor: Sym,
    ) {
        self.entries.push((
            Slot::Evm(address),
            Label {
                chains,
                source,
                actor,
                name,
                reference: 0,
                program: 0,
                uid: 0,
                listed_on: None,
                delisted_on: None,
                category,
                confidence,
                case_folded: false,
            },
        ));
    }

    /// Groups labels by address (dropping exact duplicates) and builds the maps.
    pub fn finish(mut self) -> IntelIndex {
        self.entries
            .sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| label_order(&a.1, &b.1)));
        self.entries.dedup();
        let mut index = IntelIndex {
            labels: Vec::with_capacity(self.entries.len()),
            strings: self.strings,
            ..IntelIndex::default()
        };
        let mut evm_count = 0;
        let mut i = 0;
        while i < self.entries.len() {
            let mut j = i + 1;
            while j < self.entries.len() && self.entries[j].0 == self.entries[i].0 {
                j += 1;
            }
            if matches!(self.entries[i].0, Slot::Evm(_)) {
                evm_count += 1;
            }
            i = j;
        }
        index.evm.reserve(evm_count);
        let mut entries = self.entries.into_iter().peekable();
        while let Some((slot, label)) = entries.next() {
            let start = index.labels.len() as u32;
            index.labels.push(label);
            while let Some((_, next)) = entries.next_if(|(s, _)| *s == slot) {
                index.labels.push(next);
            }
            let span = Span {
                start,
                len: index.labels.len() as u32 - start,
            };
            match slot {
                Slot::Evm(a) => {
                    index.evm.insert(a, span);
                }
                Slot::Text(t) => {
                    index.text.insert(t, span);
                }
                Slot::Folded(t) => {
                    index.folded.insert(t, span);
                }
            }
        }
        index.labels.shrink_to_fit();
        index.strings.shrink_to_fit();
        index
    }
}

/// Most severe first, so output lists what matters at the top.
fn label_order(a: &Label, b: &Label) -> std::cmp::Ordering {
    b.risk()
        .cmp(&a.risk())
        .then(b.confidence.cmp(&a.confidence))
        .then(a.source.cmp(&b.source))
        .then(a.name.cmp(&b.name))
        .then(a.listed_on.cmp(&b.listed_on))
        .then(a.delisted_on.cmp(&b.delisted_on))
        .then(a.actor.cmp(&b.actor))
        .then(a.reference.cmp(&b.reference))
        .then(a.program.cmp(&b.program))
        .then(a.uid.cmp(&b.uid))
        .then(a.chains.cmp(&b.chains))
        .then(a.category.cmp(&b.category))
        .then(a.case_folded.cmp(&b.case_folded))
}

/// Whether a label restricted to `label_chains` applies to a query on `chain`.
pub fn applies_to(label_chains: ChainSet, chain: Option<Chain>) -> bool {
    chain.is_none_or(|c| label_chains.contains(c))
}
