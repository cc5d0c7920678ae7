//! Store benchmarks (docs/BENCHMARKS.md): bulk write throughput, "transfers out of address A
//! from block B" latency, bytes on disk per transfer, on the embedded store and on
//! PostgreSQL side by side. Plain binary printing medians:
//! `cargo bench -p holdfast-store --bench store [-- --quick] [-- --no-pg]`.

use std::time::Instant;

use alloy_primitives::{Address, B256, U256};
use holdfast_primitives::{Asset, BlockRef, Position, Transfer};
use holdfast_store::testing::TempPostgres;
use holdfast_store::{BlockData, EmbeddedStore, PgStore, Store, TransferQuery};

/// SplitMix64.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

const PER_BLOCK: usize = 250;
const BLOCKS_PER_WRITE: usize = 40;
const ADDRESSES: u64 = 1_000_000;

fn address(i: u64) -> Address {
    let mut b = [0u8; 20];
    b[..8].copy_from_slice(&i.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_be_bytes());
    b[12..].copy_from_slice(&i.to_be_bytes());
    Address::from(b)
}

fn hash(n: u64) -> B256 {
    let mut h = [0x11u8; 32];
    h[..8].copy_from_slice(&n.to_be_bytes());
    B256::from(h)
}

/// Block `n`: 250 transfers, mostly native and ERC-20, between addresses of a 1 M pool
/// (a tenth of the senders from 1 000 hot addresses, like exchanges).
fn block(n: u64, rng: &mut Rng) -> BlockData {
    let b = BlockRef {
        number: n,
        hash: hash(n),
        parent_hash: if n == 0 { B256::ZERO } else { hash(n - 1) },
        timestamp: 1_700_000_000 + 12 * n,
    };
    let tokens = [
        address(u64::MAX),
        address(u64::MAX - 1),
        address(u64::MAX - 2),
    ];
    let transfers = (0..PER_BLOCK)
        .map(|i| {
            let r = rng.next();
            let from = if r.is_multiple_of(10) {
                address(r % 1000)
            } else {
                address(rng.next() % ADDRESSES)
            };
            let native = r.is_multiple_of(3);
            Transfer {
                chain_id: 1,
                block_number: n,
                block_hash: b.hash,
                timestamp: b.timestamp,
                tx_hash: B256::from(U256::from(n << 16 | i as u64)),
                tx_index: i as u32,
                position: if native {
                    Position::Call {
                        trace_address: vec![],
                    }
                } else {
                    Position::Log {
                        log_index: i as u32,
                        item: 0,
                    }
                },
                from,
                to: address(rng.next() % ADDRESSES),
                asset: if native {
                    Asset::Native
                } else {
                    Asset::Erc20 {
                        token: tokens[(r % 3) as usize],
                    }
                },
                amount: U256::from(rng.next() >> 4),
            }
        })
        .collect();
    BlockData {
        block: b,
        transfers,
        conversions: Vec::new(),
    }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    xs[xs.len() / 2]
}

fn percentile(xs: &mut [f64], p: f64) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    xs[((xs.len() as f64 - 1.0) * p) as usize]
}

fn run(name: &str, store: &dyn Store, transfers: u64, disk: impl Fn() -> u64) {
    let blocks = transfers / PER_BLOCK as u64;
    let mut rng = Rng(42);
    let mut rates = Vec::new();
    let started = Instant::now();
    let mut n = 0;
    while n < blocks {
        let batch: Vec<BlockData> = (n..(n + BLOCKS_PER_WRITE as u64).min(blocks))
            .map(|i| block(i, &mut rng))
            .collect();
        let count: usize = batch.iter().map(|b| b.transfers.len()).sum();
        let t = Instant::now();
        store.apply_blocks(1, &batch).expect("write");
        rates.push(count as f64 / t.elapsed().as_secs_f64());
        n += batch.len() as u64;
    }
    let total = started.elapsed().as_secs_f64();
    println!(
        "{name}: wrote {} transfers in {:.1} s: {:.0} transfers/s overall (incl. generating them), median per commit of {} blocks x {PER_BLOCK}: {:.0} transfers/s",
        blocks * PER_BLOCK as u64,
        total,
        (blocks * PER_BLOCK as u64) as f64 / total,
        BLOCKS_PER_WRITE,
        median(rates)
    );
    let bytes = disk();
    println!(
        "{name}: {:.1} MB on disk, {:.0} bytes per transfer",
        bytes as f64 / 1e6,
        bytes as f64 / (blocks * PER_BLOCK as u64) as f64
    );
    // Random "out of A from block B" queries: A from the pool (hot or cold), B uniform.
    let mut lat = Vec::new();
    let mut found = 0;
    for _ in 0..20_000 {
        let r = rng.next();
        let a = if r.is_multiple_of(10) {
            address(r % 1000)
        } else {
            address(rng.next() % ADDRESSES)
        };
        let from_block = rng.next() % blocks;
        let t = Instant::now();
        found += store
            .transfers(
                1,
                TransferQuery::From {
                    address: a,
                    from_block,
                },
                100,
            )
            .expect("query")
            .len();
        lat.push(t.elapsed().as_secs_f64() * 1e6);
    }
    println!(
        "{name}: out-of-address-after-block query (limit 100, 20 000 random): p50 {:.0} us, p99 {:.0} us, max {:.0} us ({:.1} rows/query)",
        percentile(&mut lat, 0.5),
        percentile(&mut lat, 0.99),
        percentile(&mut lat, 1.0),
        found as f64 / 20_000.0
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let transfers: u64 = if quick { 1_000_000 } else { 10_000_000 };
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bench");
    {
        let store = EmbeddedStore::open(&path).expect("open");
        run("embedded (fjall)", &store, transfers, || dir_size(&path));
    }
    drop(dir);
    if !args.iter().any(|a| a == "--no-pg") {
        let pg = TempPostgres::start(true).expect("PostgreSQL (scripts/install-postgres)");
        let store = PgStore::connect(pg.url()).expect("connect");
        run("postgresql", &store, transfers, || pg_size(pg.url()));
    }
}

fn pg_size(url: &str) -> u64 {
    let mut c = postgres::Client::connect(url, postgres::NoTls).expect("connect");
    let row = c
        .query_one("SELECT pg_total_relation_size('transfers')", &[])
        .expect("size");
    row.get::<_, i64>(0) as u64
}

fn dir_size(p: &std::path::Path) -> u64 {
    std::fs::read_dir(p).map_or(0, |rd| {
        rd.filter_map(Result::ok)
            .map(|e| {
                e.metadata().map_or(0, |m| {
                    if m.is_dir() {
                        dir_size(&e.path())
                    } else {
                        m.len()
                    }
                })
            })
            .sum()
    })
}
