//! Bitcoin-family blocks into the UTXO index: [`sync_utxo`] reads blocks from a
//! [`RpcSource`] from the index's checkpoint (its head block) up to a height, connects each to
//! the index ([`holdfast_bitcoin::utxo::connect`] against [`IndexView`], the store read as a
//! UTXO set) and writes its changes with the block in one atomic write, so the head is always
//! a complete checkpoint. A block whose parent is not the stored head is a reorg: the fork
//! point is found by walking back, comparing stored hashes with the node's (at most
//! `max_reorg_depth` blocks), and the orphaned blocks are unwound from their undo records.
//!
//! Hashes and txids are stored in rust-bitcoin's internal byte order (`to_byte_array`).
//!
//! Not yet here (docs/BITCOIN.md): following the head, waiting out an outage, progress,
//! the transactions and the address index.

use std::sync::Arc;

use alloy_primitives::B256;
use holdfast_bitcoin::bitcoin::hashes::Hash;
use holdfast_bitcoin::bitcoin::{OutPoint, Txid};
use holdfast_bitcoin::utxo::{BlockChanges, ConnectError, Utxo, UtxoView, ViewError, connect};
use holdfast_bitcoin::{Block, Output, RpcError, RpcSource};
use holdfast_primitives::BlockRef;
use holdfast_store::StoreError;
use holdfast_store::utxo::{OutPointKey, UtxoChanges, UtxoRecord, UtxoStore};

/// What went wrong ingesting a Bitcoin-family chain.
#[derive(Debug, thiserror::Error)]
pub enum BitcoinIngestError {
    #[error(transparent)]
    Node(#[from] RpcError),
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("UTXO index: {0}")]
    Store(#[from] StoreError),
    #[error(
        "reorg deeper than {max} blocks below block {at}: the index and the node share no block in that range (is this the same network?)"
    )]
    ReorgTooDeep { at: u64, max: u64 },
    #[error("store task failed: {0}")]
    Join(String),
}

/// What one [`sync_utxo`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Blocks written.
    pub blocks: u64,
    /// Transactions in them.
    pub txs: u64,
    /// Blocks unwound by reorgs.
    pub unwound: Vec<BlockRef>,
}

/// The index of `chain_id` read as a UTXO set.
#[derive(Clone, Copy)]
pub struct IndexView<'a> {
    pub store: &'a dyn UtxoStore,
    pub chain_id: u64,
    pub network: holdfast_bitcoin::Network,
}

impl std::fmt::Debug for IndexView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexView")
            .field("chain_id", &self.chain_id)
            .field("network", &self.network)
            .finish_non_exhaustive()
    }
}

impl UtxoView for IndexView<'_> {
    fn utxo(&self, outpoint: &OutPoint) -> Result<Option<Utxo>, ViewError> {
        let key = key_of(outpoint);
        let record = self
            .store
            .utxo(self.chain_id, &key)
            .map_err(|e| ViewError(e.to_string()))?;
        Ok(record.map(|r| Utxo {
            output: Output::new(
                r.value,
                holdfast_bitcoin::bitcoin::ScriptBuf::from_bytes(r.script),
                self.network,
            ),
            height: r.height,
            coinbase: r.coinbase,
        }))
    }
}

/// The store's key of an outpoint.
pub fn key_of(op: &OutPoint) -> OutPointKey {
    OutPointKey {
        txid: B256::from(op.txid.to_byte_array()),
        vout: op.vout,
    }
}

/// The outpoint of a store key.
pub fn outpoint_of(key: &OutPointKey) -> OutPoint {
    OutPoint {
        txid: Txid::from_byte_array(key.txid.0),
        vout: key.vout,
    }
}

fn record_of(u: &Utxo) -> UtxoRecord {
    UtxoRecord {
        value: u.output.value,
        height: u.height,
        coinbase: u.coinbase,
        script: u.output.script.to_bytes(),
        address: u.output.address.clone(),
    }
}

/// A block's changes as the store keeps them.
pub fn store_changes(c: &BlockChanges) -> UtxoChanges {
    let list =
        |l: &[(OutPoint, Utxo)]| l.iter().map(|(op, u)| (key_of(op), record_of(u))).collect();
    UtxoChanges {
        created: list(&c.created),
        spent: list(&c.spent),
        replaced: list(&c.replaced),
    }
}

/// The block as the store records it.
pub fn block_ref(b: &Block, height: u64) -> BlockRef {
    BlockRef {
        number: height,
        hash: B256::from(b.hash.to_byte_array()),
        parent_hash: B256::from(b.prev.to_byte_array()),
        timestamp: u64::from(b.time),
    }
}

/// Connects `block` (at `height`) to the index and writes it, on a blocking thread.
async fn write_block(
    store: &Arc<dyn UtxoStore>,
    chain_id: u64,
    mut block: Block,
    height: u64,
) -> Result<Block, BitcoinIngestError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || {
        let view = IndexView {
            store: &*store,
            chain_id,
            network: block.network,
        };
        let changes = connect(&mut block, height, &view)?;
        store.apply_block(
            chain_id,
            &block_ref(&block, height),
            &store_changes(&changes),
        )?;
        Ok(block)
    })
    .await
    .map_err(|e| BitcoinIngestError::Join(e.to_string()))?
}

/// Ingests blocks from the index's head (or the genesis) up to `to` (default: the node's
/// tip), unwinding reorgs of at most `max_reorg_depth` blocks.
pub async fn sync_utxo(
    source: &RpcSource,
    store: Arc<dyn UtxoStore>,
    chain_id: u64,
    to: Option<u64>,
    max_reorg_depth: u64,
) -> Result<SyncReport, BitcoinIngestError> {
    let mut report = SyncReport::default();
    let to = match to {
        Some(t) => t,
        None => source.chain_info().await?.blocks,
    };
    loop {
        let head = {
            let s = store.clone();
            tokio::task::spawn_blocking(move || s.head(chain_id))
                .await
                .map_err(|e| BitcoinIngestError::Join(e.to_string()))??
        };
        let next = head.map_or(0, |h| h.number + 1);
        if next > to {
            return Ok(report);
        }
        let block = source.block_at(next).await?;
        if let Some(h) = head
            && B256::from(block.prev.to_byte_array()) != h.hash
        {
            let fork = find_fork(source, &store, chain_id, h.number, max_reorg_depth).await?;
            let s = store.clone();
            let removed = tokio::task::spawn_blocking(move || s.unwind_above(chain_id, fork))
                .await
                .map_err(|e| BitcoinIngestError::Join(e.to_string()))??;
            tracing::warn!(target: "ingest::bitcoin", chain_id, fork, unwound = removed.len(), "reorg");
            report.unwound.extend(removed);
            continue;
        }
        let txs = block.txs.len() as u64;
        write_block(&store, chain_id, block, next).await?;
        report.blocks += 1;
        report.txs += txs;
    }
}

/// The highest stored block at or below `from` whose hash the node still has at its height.
async fn find_fork(
    source: &RpcSource,
    store: &Arc<dyn UtxoStore>,
    chain_id: u64,
    from: u64,
    max: u64,
) -> Result<u64, BitcoinIngestError> {
    let lowest = from.saturating_sub(max);
    let mut at = from;
    loop {
        let s = store.clone();
        let stored = tokio::task::spawn_blocking(move || s.block(chain_id, at))
            .await
            .map_err(|e| BitcoinIngestError::Join(e.to_string()))??;
        let node = source.block_hash(at).await?;
        if stored.is_some_and(|b| b.hash == B256::from(node.to_byte_array())) {
            return Ok(at);
        }
        if at == lowest || at == 0 {
            return Err(BitcoinIngestError::ReorgTooDeep { at: from, max });
        }
        at -= 1;
    }
}
