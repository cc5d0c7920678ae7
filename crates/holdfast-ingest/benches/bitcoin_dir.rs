//! Backfill from raw blocks (issue 16's target: ≥ 50,000 transactions/s; docs/BENCHMARKS.md,
//! "Bitcoin: backfill from a blocks directory"): a regtest chain of real consensus-encoded
//! blocks, generated here and written as a node's `blk*.dat` files (Core's framing, files of
//! at most 128 MiB), then `holdfast ingest --chain bitcoin --blocks-dir`'s path timed end to
//! end: `BlocksDir::open` (every header read, the best chain linked) and
//! `sync_utxo_from_dir` (each block read and decoded by a thread ahead, connected against the
//! index, written in bulk, the last `--tail` blocks (default 100) keeping their undo records)
//! into a fresh embedded index.
//!
//! The chain: the regtest genesis; 100 blocks whose coinbases pay `--outputs` outputs each
//! (the coins the rest spends once mature); then blocks of `--txs` transactions, each
//! spending one unspent output chosen at random among all (old and new alike) and paying two
//! P2WPKH outputs to addresses never seen before. Plain binary:
//! `cargo bench -p holdfast-ingest --bench bitcoin_dir [-- --blocks 500 --txs 2000 --runs 3]`.

// The binary's allocator, so that the figures are what `holdfast` runs.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::Write;
use std::time::Instant;

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
use holdfast_ingest::bitcoin::{NoProgress, sync_utxo_from_dir};

use holdfast_store::utxo::{EmbeddedUtxoStore, UtxoStore};

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// SplitMix64.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A P2WPKH script of a key hash no other output has.
fn fresh_script(n: u64) -> ScriptBuf {
    let mut h = [0u8; 20];
    h[..8].copy_from_slice(&mix(n).to_le_bytes());
    h[8..16].copy_from_slice(&n.to_le_bytes());
    ScriptBuf::new_p2wpkh(&WPubkeyHash::from_byte_array(h))
}

fn block(prev: &Block, txdata: Vec<Transaction>) -> Block {
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
    b
}

fn coinbase(height: u64, outputs: u64, next: &mut u64) -> Transaction {
    // BIP34: the height first in the coinbase's script.
    let script = holdfast_bitcoin::bitcoin::script::Builder::new()
        .push_int(height as i64)
        .push_int(0)
        .into_script();
    Transaction {
        version: holdfast_bitcoin::bitcoin::transaction::Version::TWO,
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::null(),
            script_sig: script,
            sequence: Sequence::MAX,
            witness: Witness::new(),
        }],
        output: (0..outputs)
            .map(|_| {
                *next += 1;
                TxOut {
                    value: Amount::from_sat(1_000_000),
                    script_pubkey: fresh_script(*next),
                }
            })
            .collect(),
    }
}

/// Writes the chain as `blk*.dat` files in `dir`; returns its transactions (the genesis
/// block's included) and the unspent outputs after it (the genesis coinbase's is not one).
fn write_chain(dir: &std::path::Path, blocks: u64, txs: u64, outputs: u64) -> (u64, u64) {
    let magic = holdfast_bitcoin::Network::BitcoinRegtest.magic();
    let mut file_no = 0;
    let mut file =
        std::io::BufWriter::new(std::fs::File::create(dir.join("blk00000.dat")).expect("create"));
    let mut written = 0u64;
    let mut put = |b: &Block| {
        let mut bytes = Vec::new();
        b.consensus_encode(&mut bytes).expect("encode");
        if written + bytes.len() as u64 + 8 > 128 << 20 {
            file.flush().expect("flush");
            file_no += 1;
            file = std::io::BufWriter::new(
                std::fs::File::create(dir.join(format!("blk{file_no:05}.dat"))).expect("create"),
            );
            written = 0;
        }
        file.write_all(&magic).expect("write");
        file.write_all(&(bytes.len() as u32).to_le_bytes())
            .expect("write");
        file.write_all(&bytes).expect("write");
        written += bytes.len() as u64 + 8;
    };
    let genesis = genesis_block(holdfast_bitcoin::bitcoin::Network::Regtest);
    put(&genesis);
    let mut prev = genesis;
    let mut next_script = 0u64;
    // Unspent outputs: (outpoint, value).
    let mut coins: Vec<(OutPoint, u64)> = Vec::new();
    let mut total = 1u64;
    let mut seed = 1u64;
    // Coinbases mature after 100 blocks: the first 100 pay the coins the rest spends.
    let mut immature: std::collections::VecDeque<Vec<(OutPoint, u64)>> = Default::default();
    for height in 1..=blocks {
        let cb = coinbase(
            height,
            if height <= 100 { outputs } else { 1 },
            &mut next_script,
        );
        let cb_txid = cb.compute_txid();
        immature.push_back(
            cb.output
                .iter()
                .enumerate()
                .map(|(i, o)| (OutPoint::new(cb_txid, i as u32), o.value.to_sat()))
                .collect(),
        );
        if immature.len() > 100 {
            coins.extend(immature.pop_front().expect("one"));
        }
        let mut txdata = vec![cb];
        if height > 100 {
            let mut created = Vec::new();
            for _ in 0..txs {
                if coins.is_empty() {
                    break;
                }
                seed = mix(seed);
                let (op, value) = coins.swap_remove((seed % coins.len() as u64) as usize);
                let half = value / 2;
                let output: Vec<TxOut> = [half, value - half]
                    .into_iter()
                    .map(|v| {
                        next_script += 1;
                        TxOut {
                            value: Amount::from_sat(v),
                            script_pubkey: fresh_script(next_script),
                        }
                    })
                    .collect();
                let tx = Transaction {
                    version: holdfast_bitcoin::bitcoin::transaction::Version::TWO,
                    lock_time: LockTime::ZERO,
                    input: vec![TxIn {
                        previous_output: op,
                        script_sig: ScriptBuf::new(),
                        sequence: Sequence::MAX,
                        witness: Witness::new(),
                    }],
                    output,
                };
                let txid = tx.compute_txid();
                created.push((OutPoint::new(txid, 0), half));
                created.push((OutPoint::new(txid, 1), value - half));
                txdata.push(tx);
            }
            // Spendable from the next block on.
            coins.extend(created);
        }
        total += txdata.len() as u64;
        let b = block(&prev, txdata);
        put(&b);
        prev = b;
    }
    file.flush().expect("flush");
    let unspent = coins.len() + immature.iter().map(Vec::len).sum::<usize>();
    (total, unspent as u64)
}

fn main() {
    let blocks = arg("--blocks", 500);
    let txs = arg("--txs", 2000);
    let outputs = arg("--outputs", 2000);
    let runs = arg("--runs", 3);
    let tail = arg("--tail", 100);
    let data = tempfile::tempdir().expect("tempdir");
    let blocks_dir = data.path().join("blocks");
    std::fs::create_dir_all(&blocks_dir).expect("mkdir");
    let started = Instant::now();
    let (total, unspent) = write_chain(&blocks_dir, blocks, txs, outputs);
    println!(
        "chain: {} blocks, {total} transactions written as blk*.dat in {:.1} s",
        blocks + 1,
        started.elapsed().as_secs_f64()
    );
    let mut whole = Vec::new();
    for run in 0..runs {
        let index_dir = data.path().join(format!("index-{run}"));
        let started = Instant::now();
        let dir = BlocksDir::open(&blocks_dir).expect("open");
        let opened = started.elapsed().as_secs_f64();
        let index = EmbeddedUtxoStore::open(&index_dir).expect("index");
        let report = sync_utxo_from_dir(
            &dir,
            &index,
            holdfast_bitcoin::Network::BitcoinRegtest.index_id(),
            None,
            tail,
            &NoProgress,
        )
        .expect("backfill");
        let secs = started.elapsed().as_secs_f64();
        let counts = index
            .counts(holdfast_bitcoin::Network::BitcoinRegtest.index_id())
            .expect("counts");
        // Each call written while the next is gathered: a wrong overlay would lose or keep
        // an output.
        assert_eq!(
            (report.txs, counts.outputs),
            (total, unspent),
            "the index is the chain's"
        );
        let rate = report.txs as f64 / secs;
        whole.push(rate);
        println!(
            "run {run}: {} blocks ({} without undo records), {} transactions in {secs:.2} s ({opened:.2} s reading headers): {rate:.0} tx/s end to end; {} unspent outputs; load {}",
            report.blocks,
            report.bulk_blocks,
            report.txs,
            counts.outputs,
            std::fs::read_to_string("/proc/loadavg")
                .unwrap_or_default()
                .trim()
        );
        drop(index);
        let _ = std::fs::remove_dir_all(&index_dir);
    }
    whole.sort_by(f64::total_cmp);
    println!(
        "backfill from a blocks directory ({total} transactions, the last {tail} blocks keeping undo records): median of {runs} runs {:.0} tx/s end to end",
        whole[whole.len() / 2]
    );
}
