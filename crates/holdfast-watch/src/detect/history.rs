//! [`StoreHistory`]: the [`History`] seam over the transfer store (what ingestion wrote
//! before the block), with an in-memory cache per wallet that grows block by block, so a
//! busy wallet's past is read once, not at every payment. The cache is not part of the
//! checkpoint (the store is the truth; a restart reads it again). Token balances are not in
//! the store: it answers `None` for them (the token drain and whole-balance checks then need
//! an engine-side implementation that asks the node).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use alloy_primitives::{Address, U256};
use holdfast_primitives::Transfer;
use holdfast_store::{AddressEntry, AddressQuery, Direction, Store};

use super::context::{History, HistoryError};
use super::poisoning::{COUNTERPARTY_LIMIT, Lookalike};

/// Transfers read per store query.
const PAGE: usize = 10_000;
/// Most destinations cached per wallet; past it `has_paid` asks the store about the
/// destination instead (the transfers it received).
pub const MAX_CACHED_DESTINATIONS: usize = 100_000;
/// Most destinations a wallet's past keeps in its list alone (see `Past::paid`).
const FEW_DESTINATIONS: usize = 32;
const _: () = assert!(FEW_DESTINATIONS < COUNTERPARTY_LIMIT);
/// Most wallets cached (the cache is emptied when full).
pub const MAX_CACHED_WALLETS: usize = 20_000;

struct Past {
    /// Transfers of blocks below this are in the cache (from `unread_below` on, when set).
    scanned_to: u64,
    /// A tracked wallet's past began with the chain's observation at this block: the
    /// transfers of the blocks below it are not read yet (the first question reads them).
    unread_below: Option<u64>,
    /// Every destination (up to [`MAX_CACHED_DESTINATIONS`]) once there are more than
    /// [`FEW_DESTINATIONS`]; until then `recent` holds them all and this is `None` (most
    /// wallets pay few addresses: a short list is searched faster than a set is built).
    paid: Option<rustc_hash::FxHashSet<Address>>,
    /// `paid` holds every destination (not cut at [`MAX_CACHED_DESTINATIONS`]).
    complete: bool,
    /// The newest distinct destinations, oldest first.
    recent: VecDeque<Address>,
}

impl Default for Past {
    /// Nothing read yet: complete (no destination was cut).
    fn default() -> Past {
        Past {
            scanned_to: 0,
            unread_below: None,
            paid: None,
            complete: true,
            recent: VecDeque::new(),
        }
    }
}

impl Past {
    /// Adds one of `wallet`'s transfers (in block order).
    fn add(&mut self, wallet: Address, t: &Transfer) {
        if t.from == wallet {
            self.add_payment(wallet, t.to, t.amount.is_zero());
        }
    }

    /// Adds a transfer `wallet` sent to `to` (in block order); a zero amount is no payment.
    fn add_payment(&mut self, wallet: Address, to: Address, zero_amount: bool) {
        if to == wallet || zero_amount {
            return;
        }
        // A destination new to `paid` is not in `recent` either (every address of `recent`
        // entered `paid` with it, unless `paid` was full): only a repeat is looked for.
        let first = match &mut self.paid {
            None => !self.recent.contains(&to),
            Some(paid) if paid.len() < MAX_CACHED_DESTINATIONS => paid.insert(to),
            Some(paid) => {
                if !paid.contains(&to) {
                    self.complete = false;
                }
                false
            }
        };
        if !first {
            self.recent.retain(|a| *a != to);
        }
        self.recent.push_back(to);
        if self.paid.is_none() && self.recent.len() > FEW_DESTINATIONS {
            self.paid = Some(self.recent.iter().copied().collect());
        }
        if self.recent.len() > COUNTERPARTY_LIMIT {
            self.recent.pop_front();
        }
    }

    /// Whether the wallet paid `to` (as far as this past holds: see `complete`).
    fn has_paid(&self, to: &Address) -> bool {
        match &self.paid {
            Some(paid) => paid.contains(to),
            None => self.recent.contains(to),
        }
    }

    /// Every destination this past holds, as a set.
    fn into_paid(self) -> rustc_hash::FxHashSet<Address> {
        match self.paid {
            Some(paid) => paid,
            None => self.recent.into_iter().collect(),
        }
    }

    /// Puts `older` (the wallet's past before this one began) in front of this one.
    fn prepend(&mut self, older: Past) {
        self.complete &= older.complete;
        let mut recent = older.recent.clone();
        recent.retain(|a| !self.recent.contains(a));
        recent.extend(self.recent.iter().copied());
        if self.paid.is_some() || older.paid.is_some() || recent.len() > FEW_DESTINATIONS {
            let older_paid = older.into_paid();
            let mut paid = std::mem::take(&mut self.paid)
                .unwrap_or_else(|| self.recent.iter().copied().collect());
            if paid.len() + older_paid.len() > MAX_CACHED_DESTINATIONS {
                self.complete = false;
            }
            for a in older_paid {
                if paid.len() < MAX_CACHED_DESTINATIONS {
                    paid.insert(a);
                }
            }
            self.paid = Some(paid);
        }
        while recent.len() > COUNTERPARTY_LIMIT {
            recent.pop_front();
        }
        self.recent = recent;
        self.unread_below = None;
    }

    /// The block this past is complete up to (exclusive): blocks observed since it was read
    /// count when it was in step with the observations.
    fn complete_to(&self, mark: Option<&Observed>) -> u64 {
        match mark {
            Some(m) if (m.from..=m.to).contains(&self.scanned_to) => m.to,
            _ => self.scanned_to,
        }
    }
}

/// Bits of the interest filter (32 KiB).
const INTEREST_BITS: usize = 1 << 18;

fn interest_bit(a: &Address) -> usize {
    let b = a.as_slice();
    (usize::from(b[17]) << 16 | usize::from(b[18]) << 8 | usize::from(b[19])) % INTEREST_BITS
}

impl Cache {
    fn mark_interest(&mut self, a: &Address) {
        if self.interest.is_empty() {
            self.interest = vec![0; INTEREST_BITS / 64];
        }
        let b = interest_bit(a);
        self.interest[b / 64] |= 1 << (b % 64);
    }
}

/// Whether `a` may be tracked or cached (its bit in `interest` is set).
fn may_interest(interest: &[u64], a: &Address) -> bool {
    let b = interest_bit(a);
    interest
        .get(b / 64)
        .is_some_and(|w| w & (1 << (b % 64)) != 0)
}

/// Blocks `from..to` of a chain were observed one after the other ([`History::observe`]),
/// and every cached past then in step (read up to a block in `from..=to`) got their
/// transfers: such a past is complete up to `to` without reading the store.
#[derive(Debug, Clone, Copy)]
struct Observed {
    from: u64,
    to: u64,
}

#[derive(Default)]
struct Cache {
    /// Asked for the sender of every transfer of every block run (`observe`): a fast hash.
    wallets: rustc_hash::FxHashMap<(u64, Address), Past>,
    /// Chains whose tracked wallets have every transfer since the observation began in
    /// `wallets` (a past dropped since — the cache full, a failed read — ends that until
    /// the next observation starts).
    tracking: rustc_hash::FxHashSet<u64>,
    /// One bit per [`interest_bit`] of every tracked or cached wallet: a clear bit lets
    /// `observe` pass a transfer's sender without a hash lookup (most senders are neither).
    interest: Vec<u64>,
    observed: rustc_hash::FxHashMap<u64, Observed>,
}

pub struct StoreHistory {
    store: Arc<dyn Store>,
    cache: Mutex<Cache>,
    /// Wallets whose transfers `observe` keeps from the start of an observation even before
    /// anything asks about them (the watched wallets: `History::track`).
    tracked: std::sync::RwLock<rustc_hash::FxHashSet<Address>>,
    /// ERC-20 balances from the nodes (live); none in a replay.
    balances: Option<super::NodeBalances>,
}

impl std::fmt::Debug for StoreHistory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreHistory").finish_non_exhaustive()
    }
}

fn store_err(what: String) -> impl Fn(holdfast_store::StoreError) -> HistoryError {
    move |e| HistoryError {
        outage: e.is_transient().then_some(super::Outage::Store),
        message: format!("{what}: {e}"),
    }
}

impl StoreHistory {
    pub fn new(store: Arc<dyn Store>) -> Self {
        StoreHistory {
            store,
            cache: Mutex::new(Cache::default()),
            tracked: Default::default(),
            balances: None,
        }
    }

    /// Token balances asked from the nodes (`token_balance`); without them it answers
    /// `None` and token drains are not checked.
    pub fn with_balances(mut self, balances: super::NodeBalances) -> Self {
        self.balances = Some(balances);
        self
    }

    /// Calls `f` with the address index entry of every transfer out of (`Direction::Out`) or
    /// into `address` in blocks `from_block..before_block`, in block order. Reads the index
    /// alone, not the transfers' records (`Store::address_entries`), in pages of `PAGE`,
    /// each from the place the last one ended at: a block holding more than a page of the
    /// address's transfers (anyone can emit that many token `Transfer` events naming a
    /// wallet, for a few cents of gas) is read whole like any other.
    fn scan(
        &self,
        chain_id: u64,
        (address, direction): (Address, Direction),
        from_block: u64,
        before_block: u64,
        f: &mut dyn FnMut(&AddressEntry),
    ) -> Result<(), HistoryError> {
        if from_block >= before_block {
            return Ok(());
        }
        let query = AddressQuery {
            address,
            direction,
            from_block,
            to_block: before_block - 1,
        };
        let mut after: Option<holdfast_store::Place> = None;
        loop {
            let page = self
                .store
                .address_entries_page(chain_id, query, after.as_ref(), PAGE)
                .map_err(store_err(format!(
                    "transfers from block {}",
                    after.as_ref().map_or(from_block, |p| p.block_number)
                )))?;
            page.iter().for_each(&mut *f);
            match page.last() {
                Some(last) if page.len() == PAGE => after = Some(last.into()),
                _ => return Ok(()),
            }
        }
    }

    /// Brings `wallet`'s cached past up to `before_block` and calls `f` with it.
    fn with_past<T>(
        &self,
        chain_id: u64,
        wallet: Address,
        before_block: u64,
        f: impl FnOnce(&Past) -> T,
    ) -> Result<T, HistoryError> {
        let mut guard = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let cache = &mut *guard;
        if cache.wallets.len() >= MAX_CACHED_WALLETS
            && !cache.wallets.contains_key(&(chain_id, wallet))
        {
            cache.wallets.clear();
            cache.tracking.clear();
        }
        let mark = cache.observed.get(&chain_id).copied();
        if let Some(m) = mark
            && m.to <= before_block
            && cache.tracking.contains(&chain_id)
            && !cache.wallets.contains_key(&(chain_id, wallet))
            && self
                .tracked
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .contains(&wallet)
        {
            // A tracked wallet that sent nothing since the observation began (`observe`
            // would have kept it): only what came before needs reading.
            cache.wallets.insert(
                (chain_id, wallet),
                Past {
                    scanned_to: m.to,
                    unread_below: Some(m.from),
                    ..Past::default()
                },
            );
        }
        cache.mark_interest(&wallet);
        let past = cache.wallets.entry((chain_id, wallet)).or_default();
        if let Some(below) = past.unread_below
            && below <= before_block
        {
            // A tracked wallet: what came before the observation, read once.
            let mut older = Past::default();
            let read = self.scan(chain_id, (wallet, Direction::Out), 0, below, &mut |e| {
                older.add_payment(wallet, e.counterparty, e.zero_amount)
            });
            if let Err(e) = read {
                cache.wallets.remove(&(chain_id, wallet));
                cache.tracking.remove(&chain_id);
                return Err(e);
            }
            past.prepend(older);
        } else if past.unread_below.is_some() {
            // Asked about a point before the observation began: read it all again.
            *past = Past::default();
        }
        let mut from = past.complete_to(mark.as_ref());
        if from > before_block {
            // Asked about an earlier point (a reorg, a replay from the start): read again.
            *past = Past::default();
            from = 0;
        }
        let result = self.scan(
            chain_id,
            (wallet, Direction::Out),
            from,
            before_block,
            &mut |e| past.add_payment(wallet, e.counterparty, e.zero_amount),
        );
        match result {
            Ok(()) => {
                past.scanned_to = before_block;
                Ok(f(past))
            }
            Err(e) => {
                cache.wallets.remove(&(chain_id, wallet));
                cache.tracking.remove(&chain_id);
                Err(e)
            }
        }
    }
}

impl History for StoreHistory {
    fn has_paid(
        &self,
        chain_id: u64,
        from: Address,
        to: Address,
        before_block: u64,
    ) -> Result<bool, HistoryError> {
        let (known, complete) = self.with_past(chain_id, from, before_block, |p| {
            (p.has_paid(&to), p.complete)
        })?;
        if known || complete {
            return Ok(known);
        }
        let mut found = false;
        self.scan(chain_id, (to, Direction::In), 0, before_block, &mut |e| {
            found |= e.counterparty == from && !e.zero_amount
        })?;
        Ok(found)
    }

    fn counterparties(
        &self,
        chain_id: u64,
        wallet: Address,
        before_block: u64,
        limit: usize,
    ) -> Result<Vec<Address>, HistoryError> {
        self.with_past(chain_id, wallet, before_block, |p| {
            p.recent.iter().rev().take(limit).copied().collect()
        })
    }

    fn find_lookalike(
        &self,
        chain_id: u64,
        wallet: Address,
        before_block: u64,
        limit: usize,
        lookalike: &Lookalike,
    ) -> Result<Option<Address>, HistoryError> {
        self.with_past(chain_id, wallet, before_block, |p| {
            // The newest `limit`, in place (the list's two halves as slices).
            let skip = p.recent.len().saturating_sub(limit);
            let (a, b) = p.recent.as_slices();
            let mut found: Option<Address> = None;
            for c in a.iter().chain(b).skip(skip) {
                if lookalike.imitates(*c) && found.is_none_or(|f| *c < f) {
                    found = Some(*c);
                }
            }
            found
        })
    }

    fn token_balance(
        &self,
        chain_id: u64,
        holder: Address,
        token: Address,
        block: u64,
    ) -> Result<Option<U256>, HistoryError> {
        match &self.balances {
            Some(b) => b.balance(chain_id, holder, token, block),
            None => Ok(None),
        }
    }

    fn track(&self, wallets: &[Address]) {
        let mut tracked = self
            .tracked
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        tracked.clear();
        // No more than the cache holds (beyond it they are read when asked, as untracked).
        tracked.extend(wallets.iter().take(MAX_CACHED_WALLETS / 2));
        drop(tracked);
        // (The cache's lock after the tracked set's, never both: `observe` takes them the
        // other way round.)
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for a in wallets.iter().take(MAX_CACHED_WALLETS / 2) {
            cache.mark_interest(a);
        }
        // An observation already under way did not keep the newly tracked wallets' transfers:
        // tracking resumes with the next one.
        cache.tracking.clear();
    }

    fn observe(&self, chain_id: u64, block: u64, transfers: &[Transfer]) {
        let mut guard = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let cache = &mut *guard;
        if !cache.observed.contains_key(&chain_id) {
            // The first observation of the chain: tracking starts here.
            cache.tracking.insert(chain_id);
        }
        let mark = cache.observed.entry(chain_id).or_insert(Observed {
            from: block,
            to: block,
        });
        if block != mark.to {
            // Not the next block (a reorg, a replay again, blocks another instance ran while
            // this one had lost the chain's lease, a replay skipping empty blocks): what the
            // cache holds may miss blocks or include unwound ones. Forget the chain's pasts;
            // the store answers again.
            cache.wallets.retain(|(c, _), _| *c != chain_id);
            cache.tracking.insert(chain_id);
            *mark = Observed {
                from: block,
                to: block,
            };
        }
        let in_step = *mark;
        let tracked = self
            .tracked
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut tracking = cache.tracking.contains(&chain_id);
        for t in transfers {
            if !may_interest(&cache.interest, &t.from) {
                continue;
            }
            let key = (chain_id, t.from);
            if let Some(past) = cache.wallets.get_mut(&key) {
                if (in_step.from..=in_step.to).contains(&past.scanned_to) {
                    past.add(t.from, t);
                }
                continue;
            }
            if !tracking || !tracked.contains(&t.from) {
                continue;
            }
            if cache.wallets.len() >= MAX_CACHED_WALLETS {
                // No room: this wallet's transfers are not kept, so none is from now on.
                cache.tracking.remove(&chain_id);
                tracking = false;
                continue;
            }
            // Its first transfer since the observation began: everything it did from then
            // on is here; before that, read when first asked.
            let mut past = Past {
                scanned_to: in_step.from,
                unread_below: Some(in_step.from),
                ..Past::default()
            };
            past.add(t.from, t);
            cache.wallets.insert(key, past);
        }
        mark.to = block + 1;
    }
}
