//! Trace benchmark (docs/BENCHMARKS.md, "Trace (issue 6)"): a generated graph of
//! `HOLDFAST_BENCH_TRANSFERS` (default 10 M) native transfers with a skewed degree
//! distribution and a few exchange-like super-nodes; 10-hop traces from 10 seeds with the
//! engine, and the same poison trace as recursive SQL in PostgreSQL (a throwaway server) and
//! DuckDB (`scripts/bench-trace-duckdb.py`, PyPI `duckdb`), in the same run, with the results
//! compared. Data goes under `HOLDFAST_BENCH_DIR` (default a temporary directory), never the
//! repository. Run: `cargo bench -p holdfast-trace --bench trace`.

#![allow(clippy::print_stdout, clippy::unwrap_used)]

// The binary's allocator, so that the figures are what `holdfast` runs.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use alloy_primitives::{Address, B256, U256};
use holdfast_primitives::{Asset, Category, Position, Transfer};
use holdfast_trace::{Graph, GraphBuilder, Policy, Role, Seed, Service, ServiceKind, TraceOptions};

const SEEDS: usize = 10;
const SERVICES: u64 = 5;
const HOPS: u32 = 10;
const RUNS: usize = 5;

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn address(i: u64) -> Address {
    let mut b = [0u8; 20];
    b[12..].copy_from_slice(&i.to_be_bytes());
    b[0] = 0xAA;
    Address::from(b)
}

fn index_of(a: &Address) -> u64 {
    u64::from_be_bytes(a.as_slice()[12..].try_into().unwrap())
}

struct Generated {
    edges: Vec<(u64, u64, u64, u64)>, // id (= order), from, to, amount
    blocks: u64,
    per_block: u64,
}

/// Addresses 0..SERVICES are exchanges: a fifth of all transfers go to one, a tenth come
/// from one. The rest pick addresses with a power law (index = n·u³), so a few thousand
/// addresses hold most of the activity and most addresses have a handful of transfers.
fn generate(n_transfers: u64, n_addresses: u64) -> Generated {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let per_block = 100;
    let mut edges = Vec::with_capacity(n_transfers as usize);
    let pick =
        |rng: &mut Rng| SERVICES + ((n_addresses - SERVICES) as f64 * rng.unit().powi(3)) as u64;
    for id in 0..n_transfers {
        let r = rng.unit();
        let (from, to) = if r < 0.2 {
            (pick(&mut rng), rng.next() % SERVICES)
        } else if r < 0.3 {
            (rng.next() % SERVICES, pick(&mut rng))
        } else {
            (pick(&mut rng), pick(&mut rng))
        };
        let amount = 1 + rng.next() % 1_000_000_000_000_000_000;
        edges.push((id, from, to, amount));
    }
    Generated {
        blocks: n_transfers / per_block,
        per_block,
        edges,
    }
}

fn graph(g: &Generated) -> Graph {
    let mut b = GraphBuilder::new(1);
    let transfers = g.edges.iter().map(|&(id, from, to, amount)| {
        let mut h = [0u8; 32];
        h[24..].copy_from_slice(&id.to_be_bytes());
        Transfer {
            chain_id: 1,
            block_number: id / g.per_block,
            block_hash: B256::ZERO,
            timestamp: id / g.per_block * 12,
            tx_hash: B256::from(h),
            tx_index: (id % g.per_block) as u32,
            position: Position::Call {
                trace_address: Vec::new(),
            },
            from: address(from),
            to: address(to),
            asset: Asset::Native,
            amount: U256::from(amount),
        }
    });
    b.add_transfers(transfers).unwrap();
    b.build()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn peak_rss_mb() -> f64 {
    status_mb("VmHWM:")
}

/// A memory figure of this process from /proc (VmRSS now, VmHWM peak), in MB.
fn status_mb(key: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with(key)).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|k| k.parse::<f64>().ok())
            })
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn write_csv(dir: &Path, g: &Generated, seeds: &[u64], from_block: u64) -> PathBuf {
    let path = dir.join("transfers.csv");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    for &(id, from, to, amount) in &g.edges {
        writeln!(w, "{id},{},{from},{to},{amount}", id / g.per_block).unwrap();
    }
    w.flush().unwrap();
    let mut s = std::fs::File::create(dir.join("seeds.csv")).unwrap();
    for a in seeds {
        writeln!(s, "{a},{from_block}").unwrap();
    }
    path
}

/// The poison reach as recursive SQL: rows (address, arrival edge, hop); an edge out of a
/// tainted address after an arrival with fewer than `HOPS` hops is tainted. Services are not
/// expanded. Then the reach set and, per address, the sum of its tainted incoming edges.
fn pg_sql() -> String {
    format!(
        "WITH RECURSIVE reach(addr, arrival, hop) AS (
           SELECT s.addr, s.first_id, 0 FROM seeds s
           UNION
           SELECT t.dst, t.id, r.hop + 1
           FROM reach r JOIN transfers t ON t.src = r.addr AND t.id > r.arrival
           WHERE r.hop < {HOPS} AND r.addr >= {SERVICES}
         ),
         tainted AS (SELECT DISTINCT arrival FROM reach WHERE hop > 0)
         SELECT a.addr, COALESCE(x.amount, 0)::text FROM (SELECT DISTINCT addr FROM reach) a
         LEFT JOIN (SELECT t.dst AS addr, SUM(t.amount) AS amount FROM tainted k JOIN transfers t ON t.id = k.arrival GROUP BY t.dst) x
           ON x.addr = a.addr
         ORDER BY a.addr"
    )
}

fn engine_reach(t: &holdfast_trace::Trace) -> BTreeMap<u64, u128> {
    t.addresses
        .iter()
        .map(|a| {
            let amount: u128 = a.received.iter().map(|x| x.amount.to::<u128>()).sum();
            (index_of(&a.address), amount)
        })
        .collect()
}

fn main() {
    let n: u64 = std::env::var("HOLDFAST_BENCH_TRANSFERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let n_addresses = (n / 10).max(1000);
    let keep = std::env::var_os("HOLDFAST_BENCH_DIR").map(PathBuf::from);
    let tmp = tempfile::tempdir().unwrap();
    let dir = keep.unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&dir).unwrap();
    println!(
        "trace benchmark: {n} transfers, {n_addresses} addresses, {SERVICES} exchange super-nodes, {SEEDS} seeds, {HOPS} hops"
    );

    let t0 = Instant::now();
    let g = generate(n, n_addresses);
    let gen_s = t0.elapsed().as_secs_f64();
    let t0 = Instant::now();
    let graph = graph(&g);
    let build_s = t0.elapsed().as_secs_f64();
    println!(
        "generate {gen_s:.1} s, graph build {build_s:.1} s ({} edges, {} addresses, ~{} MB indexed)",
        graph.edge_count(),
        graph.address_count(),
        graph.heap_bytes() / (1 << 20)
    );
    println!(
        "resident after build {:.0} MB (peak so far {:.0} MB, the build's inputs included)",
        status_mb("VmRSS:"),
        peak_rss_mb()
    );
    // Out-degree skew, for the record.
    let mut out_deg: BTreeMap<u64, u64> = BTreeMap::new();
    for &(_, from, _, _) in &g.edges {
        *out_deg.entry(from).or_default() += 1;
    }
    let mut degs: Vec<u64> = out_deg.values().copied().collect();
    degs.sort_unstable();
    println!(
        "out-degree: median {}, p99 {}, max {} (the exchanges)",
        degs[degs.len() / 2],
        degs[degs.len() * 99 / 100],
        degs[degs.len() - 1]
    );

    // Seeds: ordinary addresses active late in the chain, tainting from 90 % of its length.
    let from_block = g.blocks * 9 / 10;
    let mut rng = Rng(42);
    let mut seeds: Vec<u64> = Vec::new();
    while seeds.len() < SEEDS {
        let &(id, from, _, _) = &g.edges
            [(g.edges.len() * 9 / 10) + (rng.next() % (g.edges.len() as u64 / 20)) as usize];
        let _ = id;
        if from >= SERVICES && !seeds.contains(&from) {
            seeds.push(from);
        }
    }
    let seed_list: Vec<Seed> = seeds
        .iter()
        .map(|&a| Seed::address(address(a)).from_block(from_block).in_theft(0))
        .collect();
    let services: BTreeMap<Address, Service> = (0..SERVICES)
        .map(|i| {
            (
                address(i),
                Service {
                    kind: ServiceKind::Custodial,
                    category: Category::Exchange,
                    name: format!("exchange {i}"),
                },
            )
        })
        .collect();

    let mut results = BTreeMap::new();
    for policy in [Policy::Haircut, Policy::Poison, Policy::Fifo] {
        let mut o = TraceOptions::with_policy(policy);
        o.max_hops = HOPS;
        o.fan_out_cap = usize::MAX;
        let mut times = Vec::new();
        let mut last = None;
        for _ in 0..RUNS {
            let t0 = Instant::now();
            let t = holdfast_trace::trace(&graph, &seed_list, &o, &services).unwrap();
            times.push(t0.elapsed().as_secs_f64());
            last = Some(t);
        }
        let t = last.unwrap();
        let m = median(times.clone());
        println!(
            "engine {policy}: median {:.3} s of {RUNS} (min {:.3}, max {:.3}); {} addresses reached, {} exchanges, {} edges processed",
            m,
            times.iter().copied().fold(f64::INFINITY, f64::min),
            times.iter().copied().fold(0.0, f64::max),
            t.addresses.len(),
            t.addresses
                .iter()
                .filter(|a| a.role == Role::Service)
                .count(),
            t.stats.edges_processed
        );
        results.insert(policy, (m, t));
    }
    println!(
        "resident after the traces {:.0} MB; peak RSS of the process so far {:.0} MB",
        status_mb("VmRSS:"),
        peak_rss_mb()
    );
    let (poison_s, poison) = &results[&Policy::Poison];
    let engine = engine_reach(poison);

    // The SQL side: CSV once, then PostgreSQL and DuckDB.
    let t0 = Instant::now();
    let csv = write_csv(&dir, &g, &seeds, from_block);
    println!("CSV for SQL written in {:.1} s", t0.elapsed().as_secs_f64());
    drop(g);

    let mut ratios = Vec::new();
    match holdfast_store::testing::TempPostgres::start(false) {
        Ok(pg) => {
            let mut c = postgres::Client::connect(pg.url(), postgres::NoTls).unwrap();
            let t0 = Instant::now();
            c.batch_execute(
                "CREATE UNLOGGED TABLE transfers (id BIGINT, blk BIGINT, src BIGINT, dst BIGINT, amount NUMERIC);
                 CREATE TABLE seeds (addr BIGINT, from_block BIGINT, first_id BIGINT);",
            )
            .unwrap();
            let mut w = c
                .copy_in("COPY transfers FROM STDIN WITH (FORMAT csv)")
                .unwrap();
            std::io::copy(&mut std::fs::File::open(&csv).unwrap(), &mut w).unwrap();
            w.finish().unwrap();
            let mut w = c
                .copy_in("COPY seeds (addr, from_block) FROM STDIN WITH (FORMAT csv)")
                .unwrap();
            std::io::copy(
                &mut std::fs::File::open(dir.join("seeds.csv")).unwrap(),
                &mut w,
            )
            .unwrap();
            w.finish().unwrap();
            c.batch_execute(
                "CREATE INDEX transfers_src ON transfers (src, id); CREATE INDEX transfers_id ON transfers (id);
                 UPDATE seeds SET first_id = (SELECT COALESCE(MIN(id), 0) - 1 FROM transfers WHERE blk >= seeds.from_block);
                 ANALYZE transfers; SET work_mem = '256MB'; SET statement_timeout = '900s';",
            )
            .unwrap();
            println!(
                "PostgreSQL load + index {:.1} s",
                t0.elapsed().as_secs_f64()
            );
            let mut times = Vec::new();
            let mut rows = Vec::new();
            for _ in 0..3 {
                let t0 = Instant::now();
                match c.query(pg_sql().as_str(), &[]) {
                    Ok(r) => {
                        times.push(t0.elapsed().as_secs_f64());
                        rows = r;
                    }
                    Err(e) => {
                        println!(
                            "PostgreSQL query failed after {:.0} s: {e}",
                            t0.elapsed().as_secs_f64()
                        );
                        break;
                    }
                }
            }
            if !times.is_empty() {
                let got: BTreeMap<u64, u128> = rows
                    .iter()
                    .map(|r| {
                        (
                            r.get::<_, i64>(0) as u64,
                            r.get::<_, String>(1).parse().unwrap(),
                        )
                    })
                    .collect();
                let m = median(times.clone());
                println!(
                    "PostgreSQL poison (recursive CTE): median {m:.3} s of {}; {} addresses; results {}",
                    times.len(),
                    got.len(),
                    if got == engine {
                        "match the engine"
                    } else {
                        "DIFFER from the engine"
                    }
                );
                ratios.push(("PostgreSQL", m / poison_s));
            }
        }
        Err(e) => println!("PostgreSQL not available ({e}): skipped"),
    }

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/bench-trace-duckdb.py");
    let out = std::process::Command::new("python3")
        .arg(&script)
        .arg(&dir)
        .arg(HOPS.to_string())
        .arg(SERVICES.to_string())
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout);
            let mut median_s = None;
            let mut got = BTreeMap::new();
            for line in text.lines() {
                if let Some(rest) = line.strip_prefix("median ") {
                    median_s = rest.parse::<f64>().ok();
                } else if let Some((a, v)) = line.split_once(',') {
                    if let (Ok(a), Ok(v)) = (a.parse::<u64>(), v.parse::<u128>()) {
                        got.insert(a, v);
                    }
                } else if !line.is_empty() {
                    println!("duckdb: {line}");
                }
            }
            if let Some(m) = median_s {
                println!(
                    "DuckDB poison (recursive CTE): median {m:.3} s; {} addresses; results {}",
                    got.len(),
                    if got == engine {
                        "match the engine"
                    } else {
                        "DIFFER from the engine"
                    }
                );
                ratios.push(("DuckDB", m / poison_s));
            }
        }
        Ok(o) => println!("DuckDB run failed: {}", String::from_utf8_lossy(&o.stderr)),
        Err(e) => println!("python3 not available ({e}): DuckDB skipped"),
    }
    let haircut_s = results[&Policy::Haircut].0;
    for (name, r) in ratios {
        println!(
            "ratio {name} / engine poison: {r:.0}x; {name} poison / engine haircut: {:.0}x",
            r * poison_s / haircut_s
        );
    }
}
