//! Intel benchmarks (docs/BENCHMARKS.md): shipped-intel load time, in-process lookup
//! throughput on one core over the shipped intel and over a synthetic 10 M-label set, and
//! memory per label. Each figure is the median of several runs; run with
//! `cargo bench -p holdfast-intel --bench intel` (add `-- --quick` for a smaller synthetic set).

// The binary's allocator, so that the figures are what `holdfast` runs.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::hint::black_box;
use std::time::{Duration, Instant};

use alloy_primitives::Address;
use holdfast_intel::IndexBuilder;
use holdfast_intel::address::{AddressKey, ChainSet};
use holdfast_primitives::{Category, Chain, Confidence, Date};

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    xs[xs.len() / 2]
}

/// SplitMix64: a fixed, dependency-free pseudo-random sequence.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn address(&mut self) -> Address {
        let mut b = [0u8; 20];
        for chunk in b.chunks_mut(8) {
            let r = self.next().to_le_bytes();
            chunk.copy_from_slice(&r[..chunk.len()]);
        }
        Address::from(b)
    }
}

fn rss_bytes() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<usize>().ok())
        })
        .map_or(0, |pages| pages * 4096)
}

/// Lookups per second over `keys` (each lookup returns the label slice and touches its
/// length, so the map and the label array are both read).
fn lookups_per_sec(index: &holdfast_intel::IntelIndex, keys: &[Address], rounds: usize) -> f64 {
    let mut runs = Vec::new();
    for _ in 0..rounds {
        let start = Instant::now();
        let mut found = 0usize;
        for k in keys {
            found += black_box(index.evm_labels(k)).len();
        }
        black_box(found);
        runs.push(keys.len() as f64 / start.elapsed().as_secs_f64());
    }
    median(runs)
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let synthetic_labels: usize = if quick { 1_000_000 } else { 10_000_000 };

    // 1. Loading the shipped intel (parse every embedded dataset, validate every address,
    //    build the index).
    let mut load_ms = Vec::new();
    let mut shipped = None;
    for _ in 0..7 {
        let start = Instant::now();
        let loaded = holdfast_intel::load(None).expect("shipped intel");
        load_ms.push(start.elapsed().as_secs_f64() * 1e3);
        shipped = Some(loaded.index);
    }
    let shipped = shipped.expect("loaded");
    // Where the load time goes: reading the embedded datasets vs validating and indexing.
    let (mut parse_ms, mut index_ms) = (Vec::new(), Vec::new());
    for _ in 0..7 {
        let start = Instant::now();
        let records = holdfast_intel::sources::shipped().expect("shipped").records;
        parse_ms.push(start.elapsed().as_secs_f64() * 1e3);
        let start = Instant::now();
        black_box(holdfast_intel::datadir::build(&records, &mut Vec::new()));
        index_ms.push(start.elapsed().as_secs_f64() * 1e3);
    }
    println!(
        "shipped: of which reading datasets {:.1} ms, validating + indexing {:.1} ms (medians)",
        median(parse_ms),
        median(index_ms)
    );
    println!(
        "shipped: {} labels on {} addresses",
        shipped.label_count(),
        shipped.address_count()
    );
    println!(
        "shipped: load median {:.1} ms (min {:.1}, max {:.1}) over 7 runs",
        median(load_ms.clone()),
        load_ms.iter().cloned().fold(f64::MAX, f64::min),
        load_ms.iter().cloned().fold(0.0, f64::max)
    );
    println!(
        "shipped: index heap {:.1} MB, {:.0} bytes/label",
        shipped.heap_bytes() as f64 / 1e6,
        shipped.heap_bytes() as f64 / shipped.label_count() as f64
    );

    // 2. Lookups over the shipped intel: half labelled EVM addresses, half random ones.
    let stats_keys: Vec<Address> = {
        let mut rng = Rng(7);
        let mut labelled = Vec::new();
        for s in [
            "0x098B716B8Aaf21512996dC57EB0615e2383E2f96",
            "0xd90e2f925DA726b50C4Ed8D0Fb90Ad053324F31b",
            "0x1Db92e2EeBC8E0c075a02BeA49a2935BcD2dFCF4",
        ] {
            if let Ok(p) = holdfast_intel::address::parse(s, None)
                && let AddressKey::Evm(a) = p.key
            {
                labelled.push(a);
            }
        }
        (0..2_000_000)
            .map(|i| {
                if i % 2 == 0 {
                    labelled[i / 2 % labelled.len()]
                } else {
                    rng.address()
                }
            })
            .collect()
    };
    let shipped_rate = lookups_per_sec(&shipped, &stats_keys, 9);
    println!(
        "shipped: {:.1} M lookups/s (one core, median of 9 x 2 M, 50% hits)",
        shipped_rate / 1e6
    );

    // Full screening (parse + lookup + verdict with strings) for comparison.
    let inputs: Vec<String> = stats_keys
        .iter()
        .take(200_000)
        .map(|a| format!("{a:#x}"))
        .collect();
    let opts = holdfast_intel::ScreenOptions {
        chain: None,
        as_of: Date::today(),
    };
    let mut screen_rates = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        for s in &inputs {
            black_box(shipped.screen(s, &opts).ok());
        }
        screen_rates.push(inputs.len() as f64 / start.elapsed().as_secs_f64());
    }
    println!(
        "shipped: {:.2} M full screenings/s (parse lower-case hex + verdict)",
        median(screen_rates) / 1e6
    );
    drop(shipped);

    // 3. Synthetic set: `synthetic_labels` labels on distinct EVM addresses, 8 sources,
    //    realistic categories, 10,000 distinct names (as in real lists, names repeat).
    let rss_before = rss_bytes();
    let build_start = Instant::now();
    let mut b = IndexBuilder::with_capacity(synthetic_labels);
    let sources: Vec<u32> = (0..8)
        .map(|i| b.intern(&format!("synthetic-source-{i}")))
        .collect();
    let names: Vec<u32> = (0..10_000)
        .map(|i| b.intern(&format!("entity {i}")))
        .collect();
    let cats = [
        Category::Exchange,
        Category::Defi,
        Category::Other,
        Category::Phishing,
        Category::Hack,
        Category::Sanctioned,
        Category::Mixer,
        Category::Bridge,
    ];
    let mut rng = Rng(42);
    let mut sample = Vec::with_capacity(1_000_000);
    for i in 0..synthetic_labels {
        let a = rng.address();
        if i % (synthetic_labels / 1_000_000).max(1) == 0 && sample.len() < 1_000_000 {
            sample.push(a);
        }
        let r = rng.next();
        b.push_evm(
            a,
            ChainSet::ALL_EVM,
            sources[(r % 8) as usize],
            cats[((r >> 8) % 8) as usize],
            Confidence::WEB_CRAWL,
            names[((r >> 16) % 10_000) as usize],
            0,
        );
    }
    let index = b.finish();
    let build = build_start.elapsed();
    let rss_after = rss_bytes();
    println!(
        "synthetic: {} labels built in {:.1} s",
        index.label_count(),
        build.as_secs_f64()
    );
    println!(
        "synthetic: index heap {:.0} MB = {:.1} bytes/label (structure sizes); RSS grew {:.0} MB = {:.1} bytes/label (includes allocator slack)",
        index.heap_bytes() as f64 / 1e6,
        index.heap_bytes() as f64 / index.label_count() as f64,
        rss_after.saturating_sub(rss_before) as f64 / 1e6,
        rss_after.saturating_sub(rss_before) as f64 / index.label_count() as f64
    );
    // Lookups: 50% present (random order), 50% absent.
    let mut keys = Vec::with_capacity(2 * sample.len());
    let mut rng = Rng(99);
    for a in &sample {
        keys.push(*a);
        keys.push(rng.address());
    }
    for i in (1..keys.len()).rev() {
        let j = (rng.next() % (i as u64 + 1)) as usize;
        keys.swap(i, j);
    }
    let rate = lookups_per_sec(&index, &keys, 9);
    println!(
        "synthetic: {:.1} M lookups/s (one core, median of 9 x {} keys, 50% hits, random order)",
        rate / 1e6,
        keys.len()
    );
    let _ = Duration::ZERO;
    let _ = Chain::Ethereum;
}
