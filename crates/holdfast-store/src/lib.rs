//! Holdfast's transfer store.
//!
//! [`Store`] is what ingestion writes and the guard, monitor and tracer read: blocks with
//! their [`Transfer`]s and [`Conversion`]s, by chain. Two backends behave identically (one
//! behaviour test suite runs on both):
//! - [`EmbeddedStore`] (default): a fjall (LSM) directory under the data directory, no server.
//! - [`PgStore`]: PostgreSQL, for several instances sharing state.
//!
//! Invariants, on both:
//! - A block is written whole or not at all, with its transfers and conversions; the
//!   highest stored block is therefore a complete checkpoint.
//! - Writing a block that is already stored (same hash) changes nothing. A different hash at
//!   a stored height, or a parent hash that does not match the stored block below, is an
//!   error: reorgs are unwound explicitly ([`Store::unwind_above`]), never overwritten.
//! - Queries return transfers in block order (block, transaction, position) and are bounded
//!   ([`MAX_LIMIT`]).
//!
//! The trait is synchronous; async callers use `spawn_blocking`.
//!
//! [`utxo`] is the UTXO index of Bitcoin-family chains behind [`utxo::UtxoStore`] (blocks,
//! unspent outputs, undo records, transactions, address clusters and their rebuild), with the
//! same two backends.
//!
//! [`gate`] keeps the guard service's state (requests, holds, approvals, signatures,
//! nonces, freezes, the hash-chained audit log) behind its own trait, [`gate::GateStore`],
//! with the same two backends.

mod codec;
mod embedded;
pub mod gate;
mod group_commit;
pub mod import;
mod pg;
mod pg_pool;
#[cfg(any(test, feature = "test-utils"))]
pub mod testing;
pub mod utxo;
pub mod watch;

use std::collections::BTreeMap;

use alloy_primitives::{Address, B256, U256};
use holdfast_primitives::{Asset, BlockRef, Conversion, Position, Transfer};

pub use embedded::{Durability, EmbeddedOptions, EmbeddedStore};
pub use pg::PgStore;

/// Most rows one query returns.
pub const MAX_LIMIT: usize = 10_000;

/// A block with what it moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockData {
    pub block: BlockRef,
    pub transfers: Vec<Transfer>,
    pub conversions: Vec<Conversion>,
}

/// What [`Store::apply_blocks`] did with each block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Written,
    /// The same block (same hash) was already stored: nothing changed.
    AlreadyPresent,
}

/// Transfers to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferQuery {
    /// Sent by `address`, from block `from_block` on.
    From { address: Address, from_block: u64 },
    /// Sent by `address` in blocks `from_block..=to_block` (a wallet's past before a block:
    /// the rows after it are not read).
    FromRange {
        address: Address,
        from_block: u64,
        to_block: u64,
    },
    /// Received by `address`, from block `from_block` on.
    To { address: Address, from_block: u64 },
    /// Of one transaction.
    Tx { tx_hash: B256 },
    /// Of one token (`None`: the native coin), from block `from_block` on.
    Asset {
        token: Option<Address>,
        from_block: u64,
    },
    /// Every transfer of blocks `from_block..=to_block` (the watch's replay), imported ones
    /// included.
    Blocks { from_block: u64, to_block: u64 },
}

/// Which side of its transfers an address query lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Transfers the address sent.
    Out,
    /// Transfers the address received.
    In,
}

/// A range of one address's transfers, for [`Store::address_entries`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressQuery {
    pub address: Address,
    pub direction: Direction,
    /// The first block, inclusive.
    pub from_block: u64,
    /// The last block, inclusive (`u64::MAX`: no end).
    pub to_block: u64,
}

/// A transfer as an address index holds it: its place, the other side and whether it moved
/// anything. What a wallet's history asks (whom it paid, and whether a payment was a
/// zero-amount one), answered without reading the transfer's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressEntry {
    pub block_number: u64,
    pub tx_index: u32,
    pub position: Position,
    /// The receiver of a transfer the address sent, the sender of one it received.
    pub counterparty: Address,
    /// The transfer's amount is zero.
    pub zero_amount: bool,
}

/// Where a transfer is in its chain, in the stores' order (block, transaction, position):
/// where a page of a query ended, to read the next one from ([`Store::transfers_page`],
/// [`Store::address_entries_page`]), even inside a block.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Place {
    pub block_number: u64,
    pub tx_index: u32,
    pub position: Position,
}

impl Place {
    pub fn of(t: &Transfer) -> Place {
        Place {
            block_number: t.block_number,
            tx_index: t.tx_index,
            position: t.position.clone(),
        }
    }
}

impl From<&AddressEntry> for Place {
    fn from(e: &AddressEntry) -> Place {
        Place {
            block_number: e.block_number,
            tx_index: e.tx_index,
            position: e.position.clone(),
        }
    }
}

/// Counts for a chain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreStats {
    pub blocks: u64,
    pub transfers: u64,
    pub conversions: u64,
    pub head: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "chain {chain_id} block {number}: the store holds hash {stored}, the new block has {new}: unwind the reorg first"
    )]
    Conflict {
        chain_id: u64,
        number: u64,
        stored: B256,
        new: B256,
    },
    #[error(
        "chain {chain_id} block {number}: parent hash {parent} does not match the stored block {below} ({stored}): a reorg"
    )]
    ParentMismatch {
        chain_id: u64,
        number: u64,
        parent: B256,
        below: u64,
        stored: B256,
    },
    #[error("chain {chain_id} block {number}: {what}")]
    Invalid {
        chain_id: u64,
        number: u64,
        what: String,
    },
    /// An imported transfer that cannot be stored beside another (module `import`): the
    /// import is refused whole. `index` is the new transfer's place in the import.
    #[error(
        "imported transfer {index} (block {} transaction {} index {} {}, {} → {}, {} {}) conflicts with {} (block {} transaction {} index {} {}, {} → {}, {} {}): {why}",
        new.block_number, new.tx_hash, new.tx_index, new.position, new.from, new.to, new.amount, new.asset,
        if stored.block_hash.is_zero() { "a transfer imported before or earlier in this import" } else { "a stored block's transfer" },
        stored.block_number, stored.tx_hash, stored.tx_index, stored.position, stored.from, stored.to, stored.amount, stored.asset
    )]
    ImportConflict {
        index: usize,
        new: Box<Transfer>,
        stored: Box<Transfer>,
        why: import::Conflict,
    },
    #[error("limit {0} is above the maximum of {MAX_LIMIT}")]
    Limit(usize),
    /// A caller's argument the store cannot take (an id, a name, a cursor).
    #[error("{field} {value:?}: expected {expected}")]
    Argument {
        field: &'static str,
        value: String,
        expected: String,
    },
    /// A watch write of a chain whose lease this writer does not hold (module `watch`):
    /// another instance has taken the chain over (or the lease was released), so this one
    /// must stop writing it. Nothing was written.
    #[error(
        "chain {chain_id}: {}; the lease is {}: nothing was written, stop watching the chain",
        match fence { Some(f) => format!("fencing token {f} is stale"), None => "a write without a fencing token".to_owned() },
        match holder { Some(h) => format!("held by {h:?} with token {token}"), None => format!("released (token {token})") }
    )]
    LeaseLost {
        chain_id: u64,
        /// The token the write carried.
        fence: Option<u64>,
        /// Who holds the lease now (`None`: released or never taken).
        holder: Option<String>,
        token: u64,
    },
    /// A chain's address clusters are marked as being rebuilt (a rebuild is running, or one
    /// was interrupted): they are incomplete, so reading them, writing a block or unwinding
    /// is refused until a rebuild finishes (`utxo::rebuild`).
    #[error(
        "chain {chain_id}: the address clusters are being rebuilt, or a rebuild was interrupted, so they are incomplete: run `holdfast clusters rebuild` for this chain (again) and retry"
    )]
    ClustersRebuilding { chain_id: u64 },
    /// A long operation stopped at its caller's request; `what` says what it leaves.
    #[error("chain {chain_id}: interrupted: {what}")]
    Interrupted { chain_id: u64, what: String },
    #[error("stored data is corrupt ({0}); restore from backup or re-ingest")]
    Corrupt(String),
    #[error("embedded store {path}: {message}")]
    Embedded { path: String, message: String },
    #[error("PostgreSQL: {0}")]
    Postgres(String),
    /// The database could not be reached or dropped the connection (a restart, a network
    /// cut, a failover, too many connections): nothing of the operation is known to have
    /// happened, and asking again once it is back may succeed ([`StoreError::is_transient`]).
    /// The pool reconnects on the next use.
    #[error("PostgreSQL unavailable: {0}")]
    Unavailable(String),
    /// A signature was to be recorded for a wallet while an emergency freeze covers it;
    /// checked in the same atomic step as the write, so no signature outlives a freeze.
    #[error("signing is frozen for wallet {wallet}: an emergency freeze is in force")]
    Frozen { wallet: Address },
}

impl StoreError {
    /// Whether the same operation may succeed if asked again later: the database was
    /// unavailable. Every other error (a conflict, bad input, corrupt data, a lost lease) is
    /// the same on a retry.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// SQLSTATEs that say the server, not the statement, failed: connection exceptions (class
/// 08), the server shutting down or starting (57P01-57P03), out of resources (class 53:
/// too many connections, disk full, out of memory).
fn unavailable_state(code: &str) -> bool {
    code.starts_with("08") || code.starts_with("53") || matches!(code, "57P01" | "57P02" | "57P03")
}

impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> Self {
        let db_state = e.as_db_error().map(|db| db.code().code().to_owned());
        let unavailable = e.is_closed()
            || db_state.as_deref().is_some_and(unavailable_state)
            // No answer from the server at all: the connection failed (I/O, refused, cut).
            || (db_state.is_none()
                && std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>()));
        let message = match e.as_db_error() {
            Some(db) => format!(
                "{} ({}){}",
                db.message(),
                db.code().code(),
                db.detail().map(|d| format!(": {d}")).unwrap_or_default()
            ),
            None => e.to_string(),
        };
        if unavailable {
            StoreError::Unavailable(message)
        } else {
            StoreError::Postgres(message)
        }
    }
}

/// Transfer storage. See the crate documentation for the invariants.
pub trait Store: Send + Sync {
    /// Writes blocks in order, all of them or none (one transaction).
    fn apply_blocks(&self, chain_id: u64, blocks: &[BlockData])
    -> Result<Vec<Applied>, StoreError>;

    /// Writes one block atomically.
    fn apply_block(
        &self,
        chain_id: u64,
        block: &BlockRef,
        transfers: &[Transfer],
        conversions: &[Conversion],
    ) -> Result<Applied, StoreError> {
        let data = BlockData {
            block: *block,
            transfers: transfers.to_vec(),
            conversions: conversions.to_vec(),
        };
        Ok(self
            .apply_blocks(chain_id, std::slice::from_ref(&data))?
            .first()
            .copied()
            .unwrap_or(Applied::AlreadyPresent))
    }

    /// Removes every block above `number`, with its transfers and conversions (a reorg), and
    /// returns the removed blocks, lowest first. Imported transfers (no block hash) stay.
    fn unwind_above(&self, chain_id: u64, number: u64) -> Result<Vec<BlockRef>, StoreError>;

    /// The highest stored block: the ingestion checkpoint.
    fn head(&self, chain_id: u64) -> Result<Option<BlockRef>, StoreError>;

    fn block(&self, chain_id: u64, number: u64) -> Result<Option<BlockRef>, StoreError>;

    /// Transfers matching `query`, in block order, at most `limit` (≤ [`MAX_LIMIT`]).
    fn transfers(
        &self,
        chain_id: u64,
        query: TransferQuery,
        limit: usize,
    ) -> Result<Vec<Transfer>, StoreError> {
        self.transfers_page(chain_id, query, None, limit)
    }

    /// [`Store::transfers`] of the transfers after `after` (those of `query` placed after
    /// it): the next page of a query whose last page ended at `after`, inside a block or
    /// not, so that a block holding more than a page is read whole. Queries by address
    /// (`From`, `FromRange`, `To`) and by blocks only: `after` with a transaction's or an
    /// asset's query is refused ([`StoreError::Argument`]).
    fn transfers_page(
        &self,
        chain_id: u64,
        query: TransferQuery,
        after: Option<&Place>,
        limit: usize,
    ) -> Result<Vec<Transfer>, StoreError>;

    /// The address index's entries for `query`, in block order (block, transaction,
    /// position), at most `limit` (≤ [`MAX_LIMIT`]): the same transfers as the matching
    /// [`TransferQuery`], without reading their records (an index-only read on both backends).
    fn address_entries(
        &self,
        chain_id: u64,
        query: AddressQuery,
        limit: usize,
    ) -> Result<Vec<AddressEntry>, StoreError> {
        self.address_entries_page(chain_id, query, None, limit)
    }

    /// [`Store::address_entries`] of the entries placed after `after` (the next page).
    fn address_entries_page(
        &self,
        chain_id: u64,
        query: AddressQuery,
        after: Option<&Place>,
        limit: usize,
    ) -> Result<Vec<AddressEntry>, StoreError>;

    /// Sent by `address`, from block `from_block` on, in block order.
    fn transfers_from(
        &self,
        chain_id: u64,
        address: Address,
        from_block: u64,
        limit: usize,
    ) -> Result<Vec<Transfer>, StoreError> {
        let query = TransferQuery::From {
            address,
            from_block,
        };
        self.transfers(chain_id, query, limit)
    }

    /// Received by `address`, from block `from_block` on, in block order.
    fn transfers_to(
        &self,
        chain_id: u64,
        address: Address,
        from_block: u64,
        limit: usize,
    ) -> Result<Vec<Transfer>, StoreError> {
        let query = TransferQuery::To {
            address,
            from_block,
        };
        self.transfers(chain_id, query, limit)
    }

    /// Every transfer of one transaction (at most [`MAX_LIMIT`]), in order.
    fn transfers_of_tx(&self, chain_id: u64, tx_hash: B256) -> Result<Vec<Transfer>, StoreError> {
        self.transfers(chain_id, TransferQuery::Tx { tx_hash }, MAX_LIMIT)
    }

    /// Of one token contract (any kind: ERC-20, -721, -1155), or of the native coin
    /// (`None`), from block `from_block` on, in block order.
    fn transfers_of_asset(
        &self,
        chain_id: u64,
        token: Option<Address>,
        from_block: u64,
        limit: usize,
    ) -> Result<Vec<Transfer>, StoreError> {
        self.transfers(chain_id, TransferQuery::Asset { token, from_block }, limit)
    }

    /// Conversions of one transaction, by log index.
    fn conversions_of_tx(
        &self,
        chain_id: u64,
        tx_hash: B256,
    ) -> Result<Vec<Conversion>, StoreError>;

    /// Adds transfers that carry no block hash (exported data), skipping those already
    /// stored (same chain, block, transaction index and position, and the same content); one
    /// transaction. A transfer that conflicts with a stored one or another of the import
    /// (another transaction or other content at its place, or another transaction hash at its
    /// block and transaction index: module [`import`]) fails the whole import with
    /// [`StoreError::ImportConflict`]. Returns how many were new.
    fn import_transfers(&self, chain_id: u64, transfers: &[Transfer]) -> Result<usize, StoreError>;

    fn stats(&self, chain_id: u64) -> Result<StoreStats, StoreError>;

    /// The chains the store holds something of (a block or a transfer), ascending: what a
    /// caller that was given no chain id can choose from.
    fn chains(&self) -> Result<Vec<u64>, StoreError>;

    /// How many transfers are stored for the chain (blocks' and imported).
    fn transfer_count(&self, chain_id: u64) -> Result<u64, StoreError> {
        Ok(self.stats(chain_id)?.transfers)
    }

    /// Sum of amounts per asset (checking a store against the node after a crash).
    fn sum_by_asset(&self, chain_id: u64) -> Result<BTreeMap<Asset, U256>, StoreError>;
}

/// Checks a batch before any write: chain ids and block numbers of the records match their
/// block, blocks ascend.
fn validate(chain_id: u64, blocks: &[BlockData]) -> Result<(), StoreError> {
    let mut last: Option<u64> = None;
    for b in blocks {
        let number = b.block.number;
        let invalid = |what: String| StoreError::Invalid {
            chain_id,
            number,
            what,
        };
        if last.is_some_and(|l| number != l + 1) {
            return Err(invalid(format!(
                "blocks of one write must be consecutive; {number} follows {}",
                last.unwrap_or_default()
            )));
        }
        last = Some(number);
        let mut places: Vec<(u32, &holdfast_primitives::Position)> = b
            .transfers
            .iter()
            .map(|t| (t.tx_index, &t.position))
            .collect();
        places.sort();
        if let Some(w) = places.windows(2).find(|w| w[0] == w[1]) {
            return Err(invalid(format!(
                "two transfers at transaction {} position {}",
                w[0].0, w[0].1
            )));
        }
        if let Some(t) = b.transfers.iter().find(|t| {
            t.chain_id != chain_id || t.block_number != number || t.block_hash != b.block.hash
        }) {
            return Err(invalid(format!(
                "transfer {} {} is for chain {} block {} ({})",
                t.tx_hash, t.position, t.chain_id, t.block_number, t.block_hash
            )));
        }
        if let Some(c) = b.conversions.iter().find(|c| {
            c.chain_id != chain_id || c.block_number != number || c.block_hash != b.block.hash
        }) {
            return Err(invalid(format!(
                "conversion in tx {} log {} is for chain {} block {}",
                c.tx_hash, c.log_index, c.chain_id, c.block_number
            )));
        }
    }
    Ok(())
}

/// Whether block `block` of a write is to be written (`true`), is already stored with the same
/// hash (`false`), or conflicts with what is stored. `read` loads a stored block by number;
/// `below` is the previous block of the same write.
fn admit(
    chain_id: u64,
    block: &BlockRef,
    below: Option<BlockRef>,
    mut read: impl FnMut(u64) -> Result<Option<BlockRef>, StoreError>,
) -> Result<bool, StoreError> {
    let number = block.number;
    if let Some(stored) = read(number)? {
        if stored.hash == block.hash {
            return Ok(false);
        }
        return Err(StoreError::Conflict {
            chain_id,
            number,
            stored: stored.hash,
            new: block.hash,
        });
    }
    let parent = match (
        below.filter(|p| p.number + 1 == number),
        number.checked_sub(1),
    ) {
        (Some(p), _) => Some(p),
        (None, Some(m)) => read(m)?,
        (None, None) => None,
    };
    match parent {
        Some(p) if p.hash != block.parent_hash => Err(StoreError::ParentMismatch {
            chain_id,
            number,
            parent: block.parent_hash,
            below: p.number,
            stored: p.hash,
        }),
        _ => Ok(true),
    }
}

/// `after` given with a query that cannot take it (a transaction's, an asset's).
fn check_after(query: &TransferQuery, after: Option<&Place>) -> Result<(), StoreError> {
    match (query, after) {
        (TransferQuery::Tx { .. } | TransferQuery::Asset { .. }, Some(p)) => {
            Err(StoreError::Argument {
                field: "after",
                value: format!(
                    "block {} transaction {} {}",
                    p.block_number, p.tx_index, p.position
                ),
                expected: "no cursor with a transaction's or an asset's query (only queries by address or by blocks page after a place)".into(),
            })
        }
        _ => Ok(()),
    }
}

fn check_limit(limit: usize) -> Result<(), StoreError> {
    if limit > MAX_LIMIT {
        Err(StoreError::Limit(limit))
    } else {
        Ok(())
    }
}
