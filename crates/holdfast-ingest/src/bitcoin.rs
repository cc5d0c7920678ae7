//! Bitcoin-family blocks into the UTXO index: [`sync_utxo`] reads blocks from a
//! [`RpcSource`] from the index's checkpoint (its head block) up to a height, connects each to
//! the index ([`holdfast_bitcoin::utxo::connect`] against [`IndexView`], the block's outpoints
//! read from the store in one batch) and writes its changes with the block in one atomic write, so the head is always
//! a complete checkpoint. A block whose parent is not the stored head is a reorg: the fork
//! point is found by walking back, comparing stored hashes with the node's (at most
//! `max_reorg_depth` blocks), and the orphaned blocks are unwound from their undo records.
//!
//! Hashes and txids are stored in rust-bitcoin's internal byte order (`to_byte_array`).
//!
//! Blocks more than `max_reorg_depth` below the height synced to are a backfill: gathered
//! until they hold [`BULK_TXS`] transactions, each connected against the index and the blocks
//! gathered before it, and written in one [`UtxoStore::apply_blocks`] call (no undo records:
//! no reorg this ingestion unwinds reaches them). The head moves at the end of each call.
//!
//! Each block is written with its transactions (inputs resolved by [`connect`] from the index
//! and the block itself, never by asking the node) for the store's address index.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use alloy_primitives::B256;
use holdfast_bitcoin::bitcoin::hashes::Hash;
use holdfast_bitcoin::bitcoin::{OutPoint, ScriptBuf, Txid};
use holdfast_bitcoin::blkdir::{BlkDirError, BlocksDir};
use holdfast_bitcoin::utxo::{BlockChanges, ConnectError, Utxo, UtxoView, ViewError, connect};
use holdfast_bitcoin::{Block, Output, RpcError, RpcSource};
use holdfast_primitives::BlockRef;
use holdfast_store::StoreError;
use holdfast_store::utxo::{
    BULK_TXS, MAX_BATCH, OutPointKey, TxInput, TxOutput, TxRecord, UtxoChanges, UtxoRecord,
    UtxoStore,
};

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
    #[error(transparent)]
    Unresolved(#[from] UnresolvedInput),
    #[error("blocks directory: {0}")]
    Dir(#[from] BlkDirError),
    #[error(
        "the index's head, block {height} ({index}), is not on the blocks directory's best chain (its block at that height: {dir}): the directory is behind a reorg the index followed, or of another network; ingest from a node (--rpc), which unwinds reorgs"
    )]
    NotOnDirChain {
        height: u64,
        index: String,
        dir: String,
    },
}

/// What one [`sync_utxo`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Blocks written.
    pub blocks: u64,
    /// Transactions in them.
    pub txs: u64,
    /// Of the blocks written, those written in bulk without undo records
    /// ([`UtxoStore::apply_blocks`]: more than `max_reorg_depth` below the height synced to).
    pub bulk_blocks: u64,
    /// Blocks unwound by reorgs.
    pub unwound: Vec<BlockRef>,
}

/// What the index holds of one block's outpoints (the outputs its inputs spend and the
/// outputs it creates, for BIP30 replacements), read in one batch ([`UtxoStore::utxos`]) and
/// served to [`connect`] as a UTXO set: one round trip per block instead of one per input.
#[derive(Debug, Default)]
pub struct IndexView {
    utxos: HashMap<OutPoint, Utxo>,
}

impl IndexView {
    /// Reads `block`'s outpoints from the index of `chain_id`.
    pub fn for_block(
        store: &dyn UtxoStore,
        chain_id: u64,
        block: &Block,
    ) -> Result<IndexView, StoreError> {
        IndexView::over(store, chain_id, block, &[])
    }

    /// Reads `block`'s outpoints from the first of `overlays` that holds them (what blocks
    /// not yet written, or being written, created, `Some`, and spent, `None`), and the others
    /// from the index of `chain_id`.
    fn over(
        store: &dyn UtxoStore,
        chain_id: u64,
        block: &Block,
        overlays: &[&HashMap<OutPoint, Option<Utxo>>],
    ) -> Result<IndexView, StoreError> {
        let mut seen = HashSet::new();
        let ops: Vec<OutPoint> = block
            .txs
            .iter()
            .flat_map(|t| {
                t.inputs
                    .iter()
                    .map(|i| i.prevout)
                    .chain((0..t.outputs.len()).map(|vout| OutPoint {
                        txid: t.txid,
                        vout: vout as u32,
                    }))
            })
            .filter(|op| seen.insert(*op))
            .collect();
        let mut utxos = HashMap::new();
        let ops: Vec<OutPoint> = ops
            .into_iter()
            .filter(|op| match overlays.iter().find_map(|o| o.get(op)) {
                Some(Some(u)) => {
                    utxos.insert(*op, u.clone());
                    false
                }
                Some(None) => false,
                None => true,
            })
            .collect();
        for chunk in ops.chunks(MAX_BATCH) {
            let keys: Vec<OutPointKey> = chunk.iter().map(key_of).collect();
            for (op, record) in chunk.iter().zip(store.utxos(chain_id, &keys)?) {
                if let Some(r) = record {
                    let output =
                        Output::new(r.value, ScriptBuf::from_bytes(r.script), block.network);
                    utxos.insert(
                        *op,
                        Utxo {
                            output,
                            height: r.height,
                            coinbase: r.coinbase,
                        },
                    );
                }
            }
        }
        Ok(IndexView { utxos })
    }
}

impl UtxoView for IndexView {
    fn utxo(&self, outpoint: &OutPoint) -> Result<Option<Utxo>, ViewError> {
        Ok(self.utxos.get(outpoint).cloned())
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

/// A block's changes as the store keeps them, with its transactions (`block` as
/// [`connect`] left it: every input resolved).
pub fn store_changes(block: &Block, c: &BlockChanges) -> Result<UtxoChanges, UnresolvedInput> {
    let list =
        |l: &[(OutPoint, Utxo)]| l.iter().map(|(op, u)| (key_of(op), record_of(u))).collect();
    Ok(UtxoChanges {
        created: list(&c.created),
        spent: list(&c.spent),
        replaced: list(&c.replaced),
        transactions: store_transactions(block)?,
    })
}

/// An input [`store_transactions`] was given unresolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("block {block}, tx {txid}: input {input} is not resolved (connect the block first)")]
pub struct UnresolvedInput {
    pub block: String,
    pub txid: String,
    pub input: usize,
}

/// A block's transactions as the store keeps them: inputs with the spent output's value and
/// address (filled in by [`connect`], from the index and the block itself), outputs whole.
pub fn store_transactions(block: &Block) -> Result<Vec<TxRecord>, UnresolvedInput> {
    block
        .txs
        .iter()
        .map(|tx| {
            let inputs = tx
                .inputs
                .iter()
                .enumerate()
                .map(|(i, input)| {
                    let spent = input.spent.as_ref().ok_or_else(|| UnresolvedInput {
                        block: block.hash.to_string(),
                        txid: tx.txid.to_string(),
                        input: i,
                    })?;
                    Ok(TxInput {
                        prevout: key_of(&input.prevout),
                        value: spent.value,
                        address: spent.address.clone(),
                    })
                })
                .collect::<Result<_, UnresolvedInput>>()?;
            Ok(TxRecord {
                txid: B256::from(tx.txid.to_byte_array()),
                coinbase: tx.coinbase,
                inputs,
                outputs: tx
                    .outputs
                    .iter()
                    .map(|o| TxOutput {
                        value: o.value,
                        script: o.script.to_bytes(),
                        address: o.address.clone(),
                    })
                    .collect(),
            })
        })
        .collect()
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
    block: Block,
    height: u64,
) -> Result<Block, BitcoinIngestError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || connect_and_write(&*store, chain_id, block, height))
        .await
        .map_err(|e| BitcoinIngestError::Join(e.to_string()))?
}

/// Connects `block` (at `height`) to the index and writes it with its undo record.
fn connect_and_write(
    store: &dyn UtxoStore,
    chain_id: u64,
    mut block: Block,
    height: u64,
) -> Result<Block, BitcoinIngestError> {
    let view = IndexView::for_block(store, chain_id, &block)?;
    let changes = connect(&mut block, height, &view)?;
    store.apply_block(
        chain_id,
        &block_ref(&block, height),
        &store_changes(&block, &changes)?,
    )?;
    Ok(block)
}

/// Ingests the best chain of a node's blocks directory ([`BlocksDir`]) from the index's head
/// (or the genesis) up to `to` (default: the directory's tip), without a node, in
/// [`UtxoStore::apply_blocks_keeping_undo`] calls of about [`BULK_TXS`] transactions: the
/// last `max_reorg_depth` blocks keep their undo records (so that an ingestion from a node
/// afterwards can unwind a reorg of them), the others none. A thread reads and decodes the
/// blocks ahead (at most [`DIR_READ_AHEAD`]) while this one connects them, and each call is
/// written by a thread of its own while the next is gathered.
///
/// The index's head must be on the directory's best chain (a directory behind a reorg the
/// index followed, or another network's, is refused, naming both blocks): unwinding is left
/// to ingestion from a node, which knows the chain the network follows now.
pub fn sync_utxo_from_dir(
    dir: &BlocksDir,
    store: &dyn UtxoStore,
    chain_id: u64,
    to: Option<u64>,
    max_reorg_depth: u64,
    progress: &dyn UtxoProgress,
) -> Result<SyncReport, BitcoinIngestError> {
    sync_utxo_from_dir_in(
        dir,
        store,
        chain_id,
        (to, max_reorg_depth),
        BULK_TXS,
        progress,
    )
}

/// [`sync_utxo_from_dir`] in calls of about `bulk_txs` transactions (tests: many calls
/// from a small chain).
pub fn sync_utxo_from_dir_in(
    dir: &BlocksDir,
    store: &dyn UtxoStore,
    chain_id: u64,
    (to, max_reorg_depth): (Option<u64>, u64),
    bulk_txs: u64,
    progress: &dyn UtxoProgress,
) -> Result<SyncReport, BitcoinIngestError> {
    let mut report = SyncReport::default();
    let Some(tip) = dir.len().checked_sub(1) else {
        return Ok(report);
    };
    let to = to.map_or(tip, |t| t.min(tip));
    let head = store.head(chain_id)?;
    if let Some(h) = head {
        let theirs = dir.hash_at(h.number).map(|b| B256::from(b.to_byte_array()));
        if theirs != Some(h.hash) {
            return Err(BitcoinIngestError::NotOnDirChain {
                height: h.number,
                index: h.hash.to_string(),
                dir: theirs.map_or_else(|| "none".to_owned(), |b| b.to_string()),
            });
        }
    }
    let next = head.map_or(0, |h| h.number + 1);
    progress.range(next, to);
    if next > to {
        return Ok(report);
    }
    // Blocks from here on keep undo records: a reorg may reach them.
    let undo_from = to.saturating_sub(max_reorg_depth);
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Result<(u64, Block), BitcoinIngestError>>(
            DIR_READ_AHEAD,
        );
        scope.spawn(move || {
            for h in next..=to {
                let read = dir.block_at(h).map_err(BitcoinIngestError::from);
                let failed = read.is_err();
                if tx.send(read.map(|b| (h, b))).is_err() || failed {
                    return;
                }
            }
        });
        let mut gathered = Backfill::default();
        // One call written by a thread of its own while the next is gathered (its outputs
        // read from its overlay meanwhile); joined before the next call and at the end.
        type Written = Result<Vec<(BlockRef, UtxoChanges)>, BitcoinIngestError>;
        let mut writer: Option<std::thread::ScopedJoinHandle<'_, Written>> = None;
        let join = |writer: &mut Option<std::thread::ScopedJoinHandle<'_, Written>>,
                    report: &mut SyncReport| {
            let Some(w) = writer.take() else {
                return Ok::<_, BitcoinIngestError>(());
            };
            let done = w
                .join()
                .map_err(|_| BitcoinIngestError::Join("the index writer panicked".into()))??;
            for (b, c) in &done {
                let n = c.transactions.len() as u64;
                progress.block(b.number, n);
                report.blocks += 1;
                report.bulk_blocks += u64::from(b.number < undo_from);
                report.txs += n;
            }
            Ok(())
        };
        for read in rx {
            let (h, block) = read?;
            gathered.add(store, chain_id, block, h)?;
            if gathered.txs >= bulk_txs || h == to {
                join(&mut writer, &mut report)?;
                let done = std::mem::take(&mut gathered);
                gathered.writing = Some(Arc::new(done.overlay));
                let blocks = done.blocks;
                writer = Some(scope.spawn(move || {
                    store.apply_blocks_keeping_undo(chain_id, &blocks, undo_from)?;
                    Ok(blocks)
                }));
            }
        }
        join(&mut writer, &mut report)?;
        Ok(report)
    })
}

/// Blocks [`sync_utxo_from_dir`] reads and decodes ahead of the one it writes.
pub const DIR_READ_AHEAD: usize = 64;

/// Blocks gathered for one [`UtxoStore::apply_blocks`] call: each connected against the
/// index and the blocks gathered before it.
#[derive(Default)]
struct Backfill {
    blocks: Vec<(BlockRef, UtxoChanges)>,
    /// Outputs the gathered blocks created (`Some`) and spent (`None`).
    overlay: Overlay,
    /// The overlay of the call being written meanwhile, if any: what it creates and spends
    /// may or may not be in the index yet, so it is read from here.
    writing: Option<Arc<Overlay>>,
    txs: u64,
}

/// Outputs created (`Some`) and spent (`None`) by blocks not yet in the index.
type Overlay = HashMap<OutPoint, Option<Utxo>>;

impl Backfill {
    fn add(
        &mut self,
        store: &dyn UtxoStore,
        chain_id: u64,
        mut block: Block,
        height: u64,
    ) -> Result<(), BitcoinIngestError> {
        let view = match &self.writing {
            Some(w) => IndexView::over(store, chain_id, &block, &[&self.overlay, w])?,
            None => IndexView::over(store, chain_id, &block, &[&self.overlay])?,
        };
        let changes = connect(&mut block, height, &view)?;
        for (op, _) in changes.spent.iter().chain(&changes.replaced) {
            self.overlay.insert(*op, None);
        }
        for (op, u) in &changes.created {
            self.overlay.insert(*op, Some(u.clone()));
        }
        self.txs += block.txs.len() as u64;
        self.blocks
            .push((block_ref(&block, height), store_changes(&block, &changes)?));
        Ok(())
    }
}

/// Writes blocks from `first` (at `height`, following the index's head) up to `last` in
/// [`UtxoStore::apply_blocks`] calls of about [`BULK_TXS`] transactions; returns the
/// blocks and transactions written. Stops early, at a call's end, where a block does not
/// follow the one before it (the caller's next round finds the reorg).
async fn backfill(
    source: &RpcSource,
    store: &Arc<dyn UtxoStore>,
    chain_id: u64,
    first: Block,
    height: u64,
    last: u64,
    progress: &dyn UtxoProgress,
) -> Result<(u64, u64), BitcoinIngestError> {
    let mut gathered = Backfill::default();
    let mut next = Some(first);
    let mut h = height;
    loop {
        let block = match next.take() {
            Some(b) => b,
            None => source.block_at(h).await?,
        };
        if let Some((prev, _)) = gathered.blocks.last()
            && B256::from(block.prev.to_byte_array()) != prev.hash
        {
            break;
        }
        let s = store.clone();
        gathered = tokio::task::spawn_blocking(move || {
            gathered.add(&*s, chain_id, block, h)?;
            Ok::<_, BitcoinIngestError>(gathered)
        })
        .await
        .map_err(|e| BitcoinIngestError::Join(e.to_string()))??;
        if h >= last || gathered.txs >= BULK_TXS {
            break;
        }
        h += 1;
    }
    let s = store.clone();
    let blocks = tokio::task::spawn_blocking(move || {
        s.apply_blocks(chain_id, &gathered.blocks)?;
        Ok::<_, BitcoinIngestError>(gathered.blocks)
    })
    .await
    .map_err(|e| BitcoinIngestError::Join(e.to_string()))??;
    let mut txs = 0;
    for (b, c) in &blocks {
        let n = c.transactions.len() as u64;
        progress.block(b.number, n);
        txs += n;
    }
    Ok((blocks.len() as u64, txs))
}

/// What [`sync_utxo_with`] and [`follow_utxo_with`] report as they go (the CLI draws a
/// progress bar from it).
pub trait UtxoProgress: Send + Sync {
    /// Blocks `from..=to` are to be written (`from` > `to`: nothing to do).
    fn range(&self, _from: u64, _to: u64) {}
    /// Block `height` with `txs` transactions was written.
    fn block(&self, _height: u64, _txs: u64) {}
    /// Blocks above `fork` were unwound.
    fn reorg(&self, _fork: u64, _unwound: &[BlockRef]) {}
}

/// No progress reported.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;
impl UtxoProgress for NoProgress {}

/// Ingests blocks from the index's head (or the genesis) up to `to` (default: the node's
/// tip), unwinding reorgs of at most `max_reorg_depth` blocks.
pub async fn sync_utxo(
    source: &RpcSource,
    store: &Arc<dyn UtxoStore>,
    chain_id: u64,
    to: Option<u64>,
    max_reorg_depth: u64,
) -> Result<SyncReport, BitcoinIngestError> {
    sync_utxo_with(source, store, chain_id, to, max_reorg_depth, &NoProgress).await
}

/// [`sync_utxo`], reporting to `progress`.
pub async fn sync_utxo_with(
    source: &RpcSource,
    store: &Arc<dyn UtxoStore>,
    chain_id: u64,
    to: Option<u64>,
    max_reorg_depth: u64,
    progress: &dyn UtxoProgress,
) -> Result<SyncReport, BitcoinIngestError> {
    let mut report = SyncReport::default();
    let tip = source.chain_info().await?.blocks;
    let to = to.unwrap_or(tip);
    // The stored head may be on a branch the node has left, even one shorter than the stored
    // chain: checked once here, then each block's parent is.
    let head = {
        let s = store.clone();
        tokio::task::spawn_blocking(move || s.head(chain_id))
            .await
            .map_err(|e| BitcoinIngestError::Join(e.to_string()))??
    };
    if let Some(h) = head
        && !node_has(source, &h).await?
    {
        let fork = find_fork(source, store, chain_id, h.number, max_reorg_depth).await?;
        let removed = unwind(store, chain_id, fork).await?;
        progress.reorg(fork, &removed);
        report.unwound.extend(removed);
    }
    let mut announced = None;
    loop {
        let head = {
            let s = store.clone();
            tokio::task::spawn_blocking(move || s.head(chain_id))
                .await
                .map_err(|e| BitcoinIngestError::Join(e.to_string()))??
        };
        let next = head.map_or(0, |h| h.number + 1);
        if announced.is_none() {
            progress.range(next, to);
            announced = Some(next);
        }
        if next > to {
            return Ok(report);
        }
        let block = source.block_at(next).await?;
        if let Some(h) = head
            && B256::from(block.prev.to_byte_array()) != h.hash
        {
            let fork = find_fork(source, store, chain_id, h.number, max_reorg_depth).await?;
            let removed = unwind(store, chain_id, fork).await?;
            progress.reorg(fork, &removed);
            report.unwound.extend(removed);
            announced = None; // the range starts lower now
            continue;
        }
        if next.saturating_add(max_reorg_depth) < to {
            // Far below the target, where no reorg this ingestion unwinds reaches: many
            // blocks per write, without undo records.
            let last = to - max_reorg_depth - 1;
            let (blocks, txs) =
                backfill(source, store, chain_id, block, next, last, progress).await?;
            report.blocks += blocks;
            report.bulk_blocks += blocks;
            report.txs += txs;
            continue;
        }
        let txs = block.txs.len() as u64;
        write_block(store, chain_id, block, next).await?;
        progress.block(next, txs);
        report.blocks += 1;
        report.txs += txs;
    }
}

/// Whether the node's best chain has `block` at its height.
async fn node_has(source: &RpcSource, block: &BlockRef) -> Result<bool, BitcoinIngestError> {
    match source.block_hash(block.number).await {
        Ok(hash) => Ok(B256::from(hash.to_byte_array()) == block.hash),
        Err(RpcError::NoSuchBlock { .. }) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Unwinds the index above `fork`.
async fn unwind(
    store: &Arc<dyn UtxoStore>,
    chain_id: u64,
    fork: u64,
) -> Result<Vec<BlockRef>, BitcoinIngestError> {
    let s = store.clone();
    let removed = tokio::task::spawn_blocking(move || s.unwind_above(chain_id, fork))
        .await
        .map_err(|e| BitcoinIngestError::Join(e.to_string()))??;
    tracing::warn!(target: "ingest::bitcoin", chain_id, fork, unwound = removed.len(), "reorg");
    Ok(removed)
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
        if let Some(b) = stored
            && node_has(source, &b).await?
        {
            return Ok(at);
        }
        if at == lowest || at == 0 {
            return Err(BitcoinIngestError::ReorgTooDeep { at: from, max });
        }
        at -= 1;
    }
}

impl BitcoinIngestError {
    /// Whether waiting and trying again may succeed (the node or the database down, the node
    /// behind, a reorg between two reads).
    pub fn is_transient(&self) -> bool {
        match self {
            BitcoinIngestError::Node(e) => e.is_transient(),
            BitcoinIngestError::Store(e) => e.is_transient(),
            BitcoinIngestError::Connect(_)
            | BitcoinIngestError::Dir(_)
            | BitcoinIngestError::NotOnDirChain { .. }
            | BitcoinIngestError::ReorgTooDeep { .. }
            | BitcoinIngestError::Join(_)
            | BitcoinIngestError::Unresolved(_) => false,
        }
    }
}

/// How [`follow_utxo`] follows the node.
#[derive(Debug, Clone)]
pub struct FollowOptions {
    /// Stay this many blocks behind the node's tip.
    pub confirmations: u64,
    /// How often to ask for a new tip once caught up.
    pub poll_interval: std::time::Duration,
    /// Deepest reorg handled.
    pub max_reorg_depth: u64,
    /// Longest wait between retries while the node is unavailable.
    pub max_backoff: std::time::Duration,
}

impl Default for FollowOptions {
    fn default() -> Self {
        FollowOptions {
            confirmations: 0,
            poll_interval: std::time::Duration::from_secs(2),
            max_reorg_depth: 100,
            max_backoff: std::time::Duration::from_secs(30),
        }
    }
}

/// Follows the node's tip into the index until `stop` turns true: [`sync_utxo`] to the tip
/// minus `confirmations`, wait, again. A node that goes away or answers something transient
/// is waited for with capped exponential backoff (logged each time), never given up on; any
/// other error ends the run. `on_sync` sees each round's report. Returns the totals.
pub async fn follow_utxo(
    source: &RpcSource,
    store: &Arc<dyn UtxoStore>,
    chain_id: u64,
    options: &FollowOptions,
    stop: tokio::sync::watch::Receiver<bool>,
    on_sync: impl Fn(&SyncReport),
) -> Result<SyncReport, BitcoinIngestError> {
    follow_utxo_with(source, store, chain_id, options, stop, on_sync, &NoProgress).await
}

/// [`follow_utxo`], reporting each round's blocks to `progress`.
pub async fn follow_utxo_with(
    source: &RpcSource,
    store: &Arc<dyn UtxoStore>,
    chain_id: u64,
    options: &FollowOptions,
    mut stop: tokio::sync::watch::Receiver<bool>,
    on_sync: impl Fn(&SyncReport),
    progress: &dyn UtxoProgress,
) -> Result<SyncReport, BitcoinIngestError> {
    let mut total = SyncReport::default();
    let mut backoff = std::time::Duration::from_millis(250);
    while !*stop.borrow() {
        let round = async {
            let tip = source.chain_info().await?.blocks;
            let to = tip.saturating_sub(options.confirmations);
            sync_utxo_with(
                source,
                store,
                chain_id,
                Some(to),
                options.max_reorg_depth,
                progress,
            )
            .await
        };
        let wait = match round.await {
            Ok(report) => {
                backoff = std::time::Duration::from_millis(250);
                on_sync(&report);
                total.blocks += report.blocks;
                total.txs += report.txs;
                total.bulk_blocks += report.bulk_blocks;
                total.unwound.extend(report.unwound);
                options.poll_interval
            }
            Err(e) if e.is_transient() => {
                tracing::warn!(target: "ingest::bitcoin", chain_id, error = %e, retry_in = ?backoff, "node or store unavailable; waiting");
                let w = backoff;
                backoff = (backoff * 2).min(options.max_backoff);
                w
            }
            Err(e) => return Err(e),
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            // A dropped sender can never ask to stop: wait the round out.
            changed = stop.changed() => if changed.is_err() { tokio::time::sleep(wait).await },
        }
    }
    Ok(total)
}
