//! Decoding throughput (docs/BENCHMARKS.md, "Bitcoin: decoding raw blocks"): real mainnet
//! blocks from the test fixtures (rust-bitcoin's 2021 block, 2,500 txs; Bitcoin Core's bench
//! block 413,567, 1,557 txs; btcd's block 277,647, 213 txs), each decoded into the model
//! (`Block::from_raw`: rust-bitcoin's decoding, merkle root and witness commitment checks,
//! script classification, addresses) over and over; then the same plus connecting block
//! 277,647 to a UTXO set holding its 732 spent outputs (`utxo::connect`, inputs resolved).
//! One thread. Plain binary: `cargo bench -p holdfast-bitcoin --bench decode [-- --seconds S]`.

// The binary's allocator, so that the figures are what `holdfast` runs.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use holdfast_bitcoin::bitcoin::{OutPoint, ScriptBuf};
use holdfast_bitcoin::utxo::{BlockChanges, MemoryUtxoSet, Utxo, connect};
use holdfast_bitcoin::{Block, Network, Output};

fn fixture(path: &str) -> Vec<u8> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn seconds() -> f64 {
    std::env::args()
        .skip_while(|a| a != "--seconds")
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(3.0)
}

/// Runs `f` (which handles `txs` transactions) for about `secs`; transactions per second.
fn rate(secs: f64, txs: usize, mut f: impl FnMut()) -> (f64, u64) {
    let started = Instant::now();
    let mut runs = 0u64;
    while started.elapsed() < Duration::from_secs_f64(secs) {
        f();
        runs += 1;
    }
    (
        runs as f64 * txs as f64 / started.elapsed().as_secs_f64(),
        runs,
    )
}

fn main() {
    let secs = seconds();
    let blocks = [
        (
            "mainnet 2021 (rust-bitcoin)",
            fixture(
                "rust-bitcoin/mainnet_block_000000000000000000000c835b2adcaedc20fdf6ee440009c249452c726dafae.raw",
            ),
        ),
        (
            "mainnet 413567 (Core bench)",
            fixture("bitcoin-core-bench/block413567.raw"),
        ),
        (
            "mainnet 277647 (btcd)",
            fixture("btcd/277647.dat")[8..].to_vec(),
        ),
    ];
    println!("decode into the model (Block::from_raw), one thread, {secs} s each:");
    let mut total_txs = 0.0;
    let mut total_time = 0.0;
    for (name, bytes) in &blocks {
        let txs = Block::from_raw(Network::Bitcoin, bytes, None)
            .expect("decodes")
            .txs
            .len();
        let (per_s, runs) = rate(secs, txs, || {
            std::hint::black_box(Block::from_raw(Network::Bitcoin, bytes, None).expect("decodes"));
        });
        println!(
            "  {name:30} {txs:5} txs, {:8.1} KB: {per_s:10.0} tx/s ({runs} runs)",
            bytes.len() as f64 / 1024.0
        );
        total_txs += txs as f64;
        total_time += txs as f64 / per_s;
    }
    println!(
        "  all three, weighted by txs: {:.0} tx/s",
        total_txs / total_time
    );

    // Block 277,647 connected to a set holding exactly the outputs it spends.
    let bytes = &blocks[2].1;
    let block = Block::from_raw(Network::Bitcoin, bytes, None).expect("decodes");
    let spent: Vec<OutPoint> = block
        .txs
        .iter()
        .flat_map(|t| t.inputs.iter().map(|i| i.prevout))
        .collect();
    let own: HashSet<_> = block.txs.iter().map(|t| t.txid).collect();
    // Every output from outside the block that it spends, each rich enough that no
    // transaction overspends (the values do not matter to the cost).
    let seeded = BlockChanges {
        hash: block.prev,
        height: 277_646,
        created: spent
            .iter()
            .filter(|op| !own.contains(&op.txid))
            .map(|op| {
                let output = Output::new(21_000 * 100_000_000, ScriptBuf::new(), Network::Bitcoin);
                (
                    *op,
                    Utxo {
                        output,
                        height: 277_000,
                        coinbase: false,
                    },
                )
            })
            .collect(),
        spent: Vec::new(),
        replaced: Vec::new(),
    };
    let mut set = MemoryUtxoSet::new();
    set.apply(&seeded);
    let (per_s, runs) = rate(secs, block.txs.len(), || {
        let mut b = Block::from_raw(Network::Bitcoin, bytes, Some(277_647)).expect("decodes");
        std::hint::black_box(connect(&mut b, 277_647, &set).expect("connects"));
    });
    println!(
        "decode + connect to an in-memory UTXO set ({} inputs resolved): {per_s:.0} tx/s ({runs} runs)",
        spent.len()
    );
}
