//! The blocks-directory backfill writes each call on a thread of its own while it gathers the
//! next, whose blocks may spend what the call being written creates: those outputs are read
//! from the call's overlay (`Backfill::writing`), since the index may not hold them yet. Here
//! the index holds each call's write until the next call has read the index, so the overlay
//! is the only place the next block's input can come from, every time.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use alloy_primitives::B256;
use holdfast_bitcoin::bitcoin::absolute::LockTime;
use holdfast_bitcoin::bitcoin::block::{Header, Version};
use holdfast_bitcoin::bitcoin::blockdata::constants::genesis_block;
use holdfast_bitcoin::bitcoin::consensus::Encodable;
use holdfast_bitcoin::bitcoin::hashes::Hash;
use holdfast_bitcoin::bitcoin::{
    Amount, Block, CompactTarget, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxMerkleNode,
    TxOut, WPubkeyHash, Witness,
};
use holdfast_bitcoin::blkdir::BlocksDir;
use holdfast_ingest::bitcoin::{NoProgress, sync_utxo_from_dir_in};
use holdfast_primitives::BlockRef;
use holdfast_store::StoreError;
use holdfast_store::utxo::{
    AddressTransfer, Cluster, EmbeddedUtxoStore, OutPointKey, PlacedTx, RebuildOptions,
    RebuildProgress, RebuildReport, Spender, TxRecord, UtxoChanges, UtxoCounts, UtxoRecord,
    UtxoStore,
};

const CHAIN: u64 = 9;

fn script(n: u8) -> ScriptBuf {
    ScriptBuf::new_p2wpkh(&WPubkeyHash::from_byte_array([n; 20]))
}

fn tx(input: TxIn, output: TxOut) -> Transaction {
    Transaction {
        version: holdfast_bitcoin::bitcoin::transaction::Version::TWO,
        lock_time: LockTime::ZERO,
        input: vec![input],
        output: vec![output],
    }
}

/// Regtest's genesis, then `n` blocks: each a coinbase (its height first, BIP34), and from
/// block 2 on a transaction spending the output the block before created (block 1's
/// coinbase, then each block's transaction), written as a node's `blk00000.dat`.
fn write_chain(dir: &std::path::Path, n: u8) {
    let mut file = std::fs::File::create(dir.join("blk00000.dat")).expect("create");
    let mut put = |b: &Block| {
        let mut bytes = Vec::new();
        b.consensus_encode(&mut bytes).expect("encode");
        file.write_all(&holdfast_bitcoin::Network::BitcoinRegtest.magic())
            .expect("write");
        file.write_all(&(bytes.len() as u32).to_le_bytes())
            .expect("write");
        file.write_all(&bytes).expect("write");
    };
    let mut prev = genesis_block(holdfast_bitcoin::bitcoin::Network::Regtest);
    put(&prev);
    let mut carry: Option<OutPoint> = None;
    for height in 1..=n {
        let coinbase = tx(
            TxIn {
                previous_output: OutPoint::null(),
                script_sig: holdfast_bitcoin::bitcoin::script::Builder::new()
                    .push_int(i64::from(height))
                    .push_int(0)
                    .into_script(),
                sequence: Sequence::MAX,
                witness: Witness::new(),
            },
            TxOut {
                value: Amount::from_sat(50_0000_0000),
                script_pubkey: script(height),
            },
        );
        let mut txdata = vec![coinbase];
        let next = match carry {
            None => OutPoint::new(txdata[0].compute_txid(), 0),
            Some(spent) => {
                let t = tx(
                    TxIn {
                        previous_output: spent,
                        script_sig: ScriptBuf::new(),
                        sequence: Sequence::MAX,
                        witness: Witness::new(),
                    },
                    TxOut {
                        value: Amount::from_sat(50_0000_0000),
                        script_pubkey: script(100 + height),
                    },
                );
                let out = OutPoint::new(t.compute_txid(), 0);
                txdata.push(t);
                out
            }
        };
        carry = Some(next);
        let mut b = Block {
            header: Header {
                version: Version::TWO,
                prev_blockhash: prev.block_hash(),
                merkle_root: TxMerkleNode::all_zeros(),
                time: prev.header.time + 600,
                bits: CompactTarget::from_consensus(0x207f_ffff),
                nonce: 0,
            },
            txdata,
        };
        b.header.merkle_root = b.compute_merkle_root().expect("transactions");
        put(&b);
        prev = b;
    }
}

/// An embedded index whose bulk writes wait (at most `wait`) until the block after the
/// call's last has been gathered (the index read for it): while one waits, that block is
/// gathered against an index without the call's outputs.
struct Held {
    inner: EmbeddedUtxoStore,
    reads: AtomicUsize,
    held: AtomicUsize,
    wait: Duration,
}

impl UtxoStore for Held {
    fn apply_block(
        &self,
        chain_id: u64,
        block: &BlockRef,
        changes: &UtxoChanges,
    ) -> Result<holdfast_store::Applied, StoreError> {
        self.inner.apply_block(chain_id, block, changes)
    }

    fn apply_blocks_keeping_undo(
        &self,
        chain_id: u64,
        blocks: &[(BlockRef, UtxoChanges)],
        undo_from: u64,
    ) -> Result<Vec<holdfast_store::Applied>, StoreError> {
        // Gathering reads the index once per block, from block 0: the block after this
        // call's last was gathered once there were that many reads.
        let last = blocks.last().map_or(0, |(b, _)| b.number);
        let gathered = |reads: usize| reads as u64 >= last + 2;
        let started = Instant::now();
        while !gathered(self.reads.load(Ordering::SeqCst)) && started.elapsed() < self.wait {
            std::thread::sleep(Duration::from_millis(1));
        }
        if gathered(self.reads.load(Ordering::SeqCst)) {
            self.held.fetch_add(1, Ordering::SeqCst);
        }
        self.inner
            .apply_blocks_keeping_undo(chain_id, blocks, undo_from)
    }

    fn unwind_above(&self, chain_id: u64, number: u64) -> Result<Vec<BlockRef>, StoreError> {
        self.inner.unwind_above(chain_id, number)
    }

    fn head(&self, chain_id: u64) -> Result<Option<BlockRef>, StoreError> {
        self.inner.head(chain_id)
    }

    fn block(&self, chain_id: u64, number: u64) -> Result<Option<BlockRef>, StoreError> {
        self.inner.block(chain_id, number)
    }

    fn utxo(
        &self,
        chain_id: u64,
        outpoint: &OutPointKey,
    ) -> Result<Option<UtxoRecord>, StoreError> {
        self.inner.utxo(chain_id, outpoint)
    }

    fn counts(&self, chain_id: u64) -> Result<UtxoCounts, StoreError> {
        self.inner.counts(chain_id)
    }

    fn utxos(
        &self,
        chain_id: u64,
        outpoints: &[OutPointKey],
    ) -> Result<Vec<Option<UtxoRecord>>, StoreError> {
        let read = self.inner.utxos(chain_id, outpoints);
        self.reads.fetch_add(1, Ordering::SeqCst);
        read
    }

    fn cluster(&self, chain_id: u64, address: &str) -> Result<Cluster, StoreError> {
        self.inner.cluster(chain_id, address)
    }

    fn cluster_members(
        &self,
        chain_id: u64,
        root: &str,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        self.inner.cluster_members(chain_id, root, limit)
    }

    fn rebuild_clusters(
        &self,
        chain_id: u64,
        options: RebuildOptions,
        progress: &dyn RebuildProgress,
    ) -> Result<RebuildReport, StoreError> {
        self.inner.rebuild_clusters(chain_id, options, progress)
    }

    fn import_block(
        &self,
        chain_id: u64,
        block: &BlockRef,
        transactions: &[TxRecord],
    ) -> Result<holdfast_store::Applied, StoreError> {
        self.inner.import_block(chain_id, block, transactions)
    }

    fn block_transactions(&self, chain_id: u64, number: u64) -> Result<Vec<TxRecord>, StoreError> {
        self.inner.block_transactions(chain_id, number)
    }

    fn transaction(
        &self,
        chain_id: u64,
        txid: &B256,
    ) -> Result<Vec<(u64, u32, TxRecord)>, StoreError> {
        self.inner.transaction(chain_id, txid)
    }

    fn address_transfers(
        &self,
        chain_id: u64,
        address: &str,
        from_height: u64,
        limit: usize,
    ) -> Result<Vec<AddressTransfer>, StoreError> {
        self.inner
            .address_transfers(chain_id, address, from_height, limit)
    }

    fn spenders(
        &self,
        chain_id: u64,
        outpoints: &[OutPointKey],
    ) -> Result<Vec<Option<Spender>>, StoreError> {
        self.inner.spenders(chain_id, outpoints)
    }

    fn transactions(
        &self,
        chain_id: u64,
        txids: &[B256],
    ) -> Result<Vec<Vec<PlacedTx>>, StoreError> {
        self.inner.transactions(chain_id, txids)
    }
}

/// A call per block, each held until the next block was gathered: every block from 2 on
/// spends the output the block being written created, found in that call's overlay (the
/// index did not hold it yet: the write was held), and the index is byte for byte the one
/// written without holding. Taking the overlay away makes the next block's input unknown.
#[test]
fn a_call_written_while_the_next_is_gathered_is_read_from_its_overlay() {
    let dir = tempfile::tempdir().expect("tempdir");
    let blocks_dir = dir.path().join("blocks");
    std::fs::create_dir_all(&blocks_dir).expect("mkdir");
    write_chain(&blocks_dir, 12);
    let blocks = BlocksDir::open(&blocks_dir).expect("blocks directory");
    assert_eq!(blocks.len(), 13);

    let held = Held {
        inner: EmbeddedUtxoStore::open(&dir.path().join("held")).expect("open"),
        reads: AtomicUsize::new(0),
        held: AtomicUsize::new(0),
        wait: Duration::from_secs(2),
    };
    let report = sync_utxo_from_dir_in(&blocks, &held, CHAIN, (None, 3), 1, &NoProgress)
        .expect("a call per block, each held");
    assert_eq!((report.blocks, report.txs), (13, 1 + 12 + 11));
    assert_eq!(
        held.held.load(Ordering::SeqCst),
        12,
        "every call but the last was held until the next block was gathered"
    );

    let plain = EmbeddedUtxoStore::open(&dir.path().join("plain")).expect("open");
    sync_utxo_from_dir_in(&blocks, &plain, CHAIN, (None, 3), 1, &NoProgress).expect("plain");
    assert_eq!(
        held.inner.contents().expect("contents"),
        plain.contents().expect("contents")
    );
    let counts = plain.counts(CHAIN).expect("counts");
    // The coinbases of blocks 2 to 12 and the last transaction's output: block 1's coinbase
    // and every other transaction's output were spent (the genesis coinbase is never
    // spendable).
    assert_eq!(counts.outputs, 12);
}
