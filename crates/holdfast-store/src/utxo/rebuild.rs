//! Rebuilding a chain's clusters from the transactions the index stores
//! ([`super::UtxoStore::rebuild_clusters`]): needed when the clustering rule changes (merged
//! clusters cannot be split by an update), or to have the clusters of transactions written
//! before they were kept.
//!
//! Both backends read the stored transactions in block order, hand each block to `Feed`
//! (the bulk [`Build`], with the undo record of every block that has a UTXO undo record, the
//! blocks an unwind can reach), then replace the stored union-find, its children index and
//! its undo records with the result. What a crash or an interruption leaves:
//!
//! - embedded: the write is many batches; the first one marks the chain "rebuild in
//!   progress" (with the first deletions) and the last one clears the mark, so a partial
//!   state is always marked, and while marked every cluster read, block write and unwind of
//!   the chain is refused with [`StoreError::ClustersRebuilding`] (run the rebuild again);
//! - PostgreSQL: one transaction (under the chain's lock), so readers see the earlier
//!   clusters until it commits and an interrupted rebuild changes nothing.
//!
//! Memory: the build's, about 35 bytes plus the address's length per address in a cluster
//! (twice that at worst while its arrays grow), and the kept blocks' undo records, encoded; a
//! limit ([`RebuildOptions::memory_limit`]) stops the rebuild before anything is written.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use super::TxRecord;
use super::cluster::{Build, encode_undo, merges};
use crate::StoreError;

/// How a rebuild is run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RebuildOptions {
    /// Most bytes the build may hold (`None`: no limit); above it the rebuild stops before
    /// writing anything.
    pub memory_limit: Option<u64>,
}

/// Where a rebuild is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RebuildStep {
    /// Block `height` of `head` read and clustered; `transactions` so far.
    Read {
        height: u64,
        head: u64,
        transactions: u64,
    },
    /// `done` of `total` entries (deletions, then writes) written.
    Write { done: u64, total: u64 },
}

/// Told each step of a rebuild; `false` stops it there ([`StoreError::Interrupted`]: before
/// the writes nothing has changed; during them see the module documentation).
pub trait RebuildProgress {
    fn step(&self, step: RebuildStep) -> bool;
}

/// No progress shown, never stopped.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl RebuildProgress for NoProgress {
    fn step(&self, _: RebuildStep) -> bool {
        true
    }
}

/// What a rebuild did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RebuildReport {
    /// Blocks with stored transactions, and those transactions.
    pub blocks: u64,
    pub transactions: u64,
    /// Transactions that merged their inputs' addresses.
    pub merging: u64,
    /// Addresses in clusters of two or more, those clusters, the largest's size.
    pub addresses: u64,
    pub clusters: u64,
    pub largest: u64,
    /// Blocks given a cluster undo record (those with a UTXO undo record).
    pub undo_blocks: u64,
    /// The build's memory at its largest, in bytes.
    pub memory: u64,
    /// Reading the transactions and building, then writing the result.
    pub build_time: Duration,
    pub write_time: Duration,
}

/// The rebuild's state while the blocks are read: the build and the kept undo records.
pub(crate) struct Feed<'a> {
    chain_id: u64,
    head: u64,
    kept: HashSet<u64>,
    options: RebuildOptions,
    progress: &'a dyn RebuildProgress,
    pub build: Build,
    /// (height, encoded undo record), in block order.
    pub undo: Vec<(u64, Vec<u8>)>,
    undo_bytes: u64,
    block: Option<(u64, Vec<TxRecord>)>,
    pub report: RebuildReport,
    started: Instant,
}

impl<'a> Feed<'a> {
    /// `kept`: the heights to give undo records; `head`: the chain's highest block.
    pub fn new(
        chain_id: u64,
        head: u64,
        kept: HashSet<u64>,
        options: RebuildOptions,
        progress: &'a dyn RebuildProgress,
    ) -> Feed<'a> {
        Feed {
            chain_id,
            head,
            kept,
            options,
            progress,
            build: Build::new(),
            undo: Vec::new(),
            undo_bytes: 0,
            block: None,
            report: RebuildReport::default(),
            started: Instant::now(),
        }
    }

    /// The next stored transaction, in block order.
    pub fn tx(&mut self, height: u64, tx: TxRecord) -> Result<(), StoreError> {
        match &mut self.block {
            Some((h, txs)) if *h == height => txs.push(tx),
            Some((h, _)) if *h > height => {
                return Err(StoreError::Corrupt(format!(
                    "chain {}: stored transactions out of block order at height {height}",
                    self.chain_id
                )));
            }
            _ => {
                self.flush()?;
                self.block = Some((height, vec![tx]));
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        let Some((height, txs)) = self.block.take() else {
            return Ok(());
        };
        let groups = merges(&txs);
        self.report.blocks += 1;
        self.report.transactions += txs.len() as u64;
        self.report.merging += groups.len() as u64;
        if self.kept.contains(&height) {
            let undo = encode_undo(&self.build.add_recorded(&groups)?);
            self.undo_bytes += undo.len() as u64;
            self.undo.push((height, undo));
        } else {
            self.build.add(&groups)?;
        }
        let memory = self.build.heap_bytes() + self.undo_bytes;
        self.report.memory = self.report.memory.max(memory);
        if let Some(limit) = self.options.memory_limit
            && memory > limit
        {
            return Err(StoreError::Invalid {
                chain_id: self.chain_id,
                number: height,
                what: format!(
                    "rebuilding the clusters up to this block takes {} MB, above the limit of {} MB ({} addresses so far): nothing was changed",
                    memory >> 20,
                    limit >> 20,
                    self.build.addresses()
                ),
            });
        }
        let step = RebuildStep::Read {
            height,
            head: self.head,
            transactions: self.report.transactions,
        };
        if !self.progress.step(step) {
            return Err(StoreError::Interrupted {
                chain_id: self.chain_id,
                what: "rebuild of the clusters, while reading: nothing was changed".into(),
            });
        }
        Ok(())
    }

    /// The last block clustered: the counts in the report.
    pub fn finish(&mut self) -> Result<(), StoreError> {
        self.flush()?;
        let (clusters, largest) = self.build.clusters();
        self.report.addresses = self.build.addresses() as u64;
        self.report.clusters = clusters;
        self.report.largest = largest;
        self.report.undo_blocks = self.undo.len() as u64;
        self.report.build_time = self.started.elapsed();
        Ok(())
    }

    /// Tells the progress `done` of `total` written; an interruption is an error naming
    /// `what` is left.
    pub fn written(&self, done: u64, total: u64, left: &str) -> Result<(), StoreError> {
        if self.progress.step(RebuildStep::Write { done, total }) {
            Ok(())
        } else {
            Err(StoreError::Interrupted {
                chain_id: self.chain_id,
                what: format!("rebuild of the clusters, while writing: {left}"),
            })
        }
    }
}
