//! `holdfast ingest`, `holdfast transfers`, `holdfast import transfers`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use alloy_primitives::{Address, U256};
use anyhow::Context;
use clap::{Args, ValueEnum};
use holdfast_chain::{BlockTransfers, ChainError, ChainSource, SourceConfig, TraceMode};
use holdfast_ingest::{IngestOptions, Ingestor, Progress};
use holdfast_primitives::{BlockRef, Transfer};
use holdfast_store::{EmbeddedOptions, EmbeddedStore, PgStore, Store, StoreError, TransferQuery};
use indicatif::{ProgressBar, ProgressStyle};

/// Where transfers are stored.
#[derive(Debug, Args, Clone)]
pub struct StoreArgs {
    /// Transfer store: a `postgres://` URL to share state between instances; default the
    /// embedded store in the data directory (`<data-dir>/store/transfers`).
    #[arg(long, global = true, env = "HOLDFAST_STORE", value_name = "URL")]
    pub store: Option<String>,
    /// Embedded store: transfers whose index entries are held in memory before they are
    /// written out as sorted tables (about 230 bytes each, twice over while writing out).
    /// Smaller saves memory when following a chain; larger makes fewer, larger tables.
    #[arg(
        long,
        global = true,
        env = "HOLDFAST_INDEX_BUFFER",
        value_name = "TRANSFERS",
        default_value_t = 1 << 20,
        value_parser = clap::value_parser!(u32).range(1..=16_777_216)
    )]
    pub index_buffer: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TraceModeArg {
    Auto,
    Geth,
    Parity,
    None,
}

/// Which kind of chain `ingest` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ChainKind {
    /// An EVM chain into the transfer store.
    Evm,
    /// A Bitcoin-family chain (Bitcoin Core-compatible RPC; the network is the node's) into
    /// the UTXO index.
    Bitcoin,
}

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// The node: http(s):// or ws(s):// JSON-RPC URL (its path and query are never logged);
    /// for `--chain bitcoin`, http://[user:password@]host:port.
    #[arg(
        long,
        env = "HOLDFAST_RPC",
        value_name = "URL",
        required_unless_present = "blocks_dir"
    )]
    pub rpc: Option<String>,
    /// `--chain bitcoin` without a node: a stopped node's blocks directory (`blocks/`, its
    /// `blk*.dat` files), read as its best chain from the genesis (the network is the
    /// genesis block's). Backfill only: it resumes from the index's head, refuses a head not
    /// on the directory's best chain, and does not follow.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["rpc", "follow"])]
    pub blocks_dir: Option<PathBuf>,
    /// `evm`, or `bitcoin` for a Bitcoin-family node (Bitcoin Core, Litecoin Core) into the
    /// UTXO index (`--from`, `--trace-mode`, `--rps` and `--prefetch` are EVM only).
    #[arg(long, value_enum, default_value_t = ChainKind::Evm)]
    pub chain: ChainKind,
    /// `--chain bitcoin`: the node's cookie file (`<datadir>/.cookie`), read again whenever
    /// the node refuses it; without it, the user and password come from the URL.
    #[arg(long, value_name = "PATH")]
    pub rpc_cookie: Option<PathBuf>,
    /// First block, when the store has nothing for this chain yet (default 0).
    #[arg(long)]
    pub from: Option<u64>,
    /// Last block (default: the head).
    #[arg(long)]
    pub to: Option<u64>,
    /// After catching up, keep following the head (Ctrl-C stops cleanly).
    #[arg(long)]
    pub follow: bool,
    /// Stay this many blocks behind the head.
    #[arg(long, default_value_t = 0)]
    pub confirmations: u64,
    /// Internal transfers from debug_traceBlockByNumber (geth), trace_block (parity), or
    /// none; auto detects.
    #[arg(long, value_enum, default_value_t = TraceModeArg::Auto)]
    pub trace_mode: TraceModeArg,
    /// Most JSON-RPC calls per second.
    #[arg(long, default_value_t = 200)]
    pub rps: u32,
    /// Blocks fetched ahead during backfill.
    #[arg(long, default_value_t = 8)]
    pub prefetch: usize,
    /// Largest answer accepted from the node, MiB (a batch of one block's header, receipts
    /// and traces is one answer).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub max_response_mb: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Direction {
    Out,
    In,
    Both,
}

#[derive(Debug, Args)]
pub struct TransfersArgs {
    /// The address (0x... on an EVM chain; 1…/3…/bc1…, L…/M…/ltc1… and the test networks'
    /// forms with `--chain bitcoin`).
    pub address: String,
    /// `evm` (the transfer store), or `bitcoin` for a Bitcoin-family chain's address index
    /// (receipts and spends; the network is the address's, or `--network`).
    #[arg(long, value_enum, default_value_t = ChainKind::Evm)]
    pub chain: ChainKind,
    /// With `--chain bitcoin`: the network (bitcoin, bitcoin-testnet, bitcoin-regtest,
    /// litecoin, litecoin-regtest, …) when the address's form alone is ambiguous (testnets and
    /// regtests share `m…`/`n…`).
    #[arg(long)]
    pub network: Option<String>,
    /// Chain id of the stored data (1 = Ethereum mainnet, 31337 = anvil); default: the only
    /// chain the store holds (an error naming them when it holds several).
    #[arg(long)]
    pub chain_id: Option<u64>,
    #[arg(long, value_enum, default_value_t = Direction::Both)]
    pub direction: Direction,
    /// From this block on.
    #[arg(long, default_value_t = 0)]
    pub from_block: u64,
    /// At most this many per direction (≤ 10000; with `--chain bitcoin`, this many in all).
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ImportTransfersArgs {
    /// A blockchain-etl export: token_transfers.csv, traces.csv or transactions.csv (with
    /// receipt_status); with `--chain bitcoin`, bitcoin-etl's transactions.json (JSON lines,
    /// inputs enriched with the spent output's value and address).
    pub file: PathBuf,
    /// Chain id of the exported data.
    #[arg(long, default_value_t = 1)]
    pub chain_id: u64,
    /// `evm` (blockchain-etl CSV into the transfer store), or `bitcoin` (bitcoin-etl JSON
    /// lines into the UTXO store's transaction and address index).
    #[arg(long, value_enum, default_value_t = ChainKind::Evm)]
    pub chain: ChainKind,
    /// With `--chain bitcoin`: bitcoin-etl's blocks.json for the same blocks.
    #[arg(long, value_name = "FILE")]
    pub blocks: Option<PathBuf>,
    /// With `--chain bitcoin`: the network the export is of (default bitcoin).
    #[arg(long)]
    pub network: Option<String>,
}

/// Largest file `import transfers` reads.
const MAX_IMPORT_BYTES: u64 = 2 << 30;

pub fn open_store(
    data_dir: &holdfast_intel::DataDir,
    args: &StoreArgs,
) -> anyhow::Result<Arc<dyn Store>> {
    match args.store.as_deref() {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            let store = PgStore::connect(url).with_context(|| {
                format!(
                    "opening the PostgreSQL store at {}",
                    holdfast_chain::source::redact(url)
                )
            })?;
            Ok(Arc::new(store))
        }
        Some(other) => anyhow::bail!(
            "--store {other:?}: expected a postgres:// URL (or omit it for the embedded store)"
        ),
        None => {
            let path = data_dir.root().join("store/transfers");
            let options = EmbeddedOptions {
                index_buffer: args.index_buffer as usize,
                ..EmbeddedOptions::default()
            };
            Ok(Arc::new(
                EmbeddedStore::open_with(&path, options)
                    .with_context(|| format!("opening the embedded store {}", path.display()))?,
            ))
        }
    }
}

pub fn ingest(store: Arc<dyn Store>, args: &IngestArgs, quiet: bool) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let Some(rpc) = &args.rpc else {
        anyhow::bail!(
            "--blocks-dir: a blocks directory is a Bitcoin-family node's (--chain bitcoin)"
        );
    };
    rt.block_on(async move {
        let mut config = SourceConfig::new(rpc.clone());
        config.trace_mode = match args.trace_mode {
            TraceModeArg::Auto => None,
            TraceModeArg::Geth => Some(TraceMode::Geth),
            TraceModeArg::Parity => Some(TraceMode::Parity),
            TraceModeArg::None => Some(TraceMode::None),
        };
        config.requests_per_second = args.rps;
        config.max_response_bytes = (args.max_response_mb as usize) << 20;
        let source = Arc::new(ChainSource::connect(config).await?);
        let options = IngestOptions { from: args.from, to: args.to, follow: args.follow, confirmations: args.confirmations, prefetch: args.prefetch, ..IngestOptions::default() };
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("holdfast: stopping after the current block (Ctrl-C again to abort)");
                let _ = stop_tx.send(true);
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(130);
                }
            }
        });
        let progress = Bar::new(quiet);
        let ingestor = Ingestor::new(source.clone(), store, options);
        let started = Instant::now();
        let summary = ingestor.run(&progress, stop_rx).await;
        progress.bar.finish_and_clear();
        let summary = summary?;
        let secs = started.elapsed().as_secs_f64().max(1e-9);
        eprintln!(
            "holdfast: chain {} via {} ({}): {} blocks, {} transfers, {} conversions in {:.1} s ({:.0} blocks/s, {:.0} transfers/s); {} reorgs ({} blocks unwound); stored head {}",
            source.chain_id(),
            source.endpoint(),
            source.trace_mode().name(),
            summary.blocks,
            summary.transfers,
            summary.conversions,
            secs,
            summary.blocks as f64 / secs,
            summary.transfers as f64 / secs,
            summary.reorgs,
            summary.unwound_blocks,
            summary.head.map_or_else(|| "none".to_owned(), |h| h.to_string())
        );
        Ok(ExitCode::SUCCESS)
    })
}

/// indicatif progress for ingestion: blocks/s, transfers/s, ETA.
struct Bar {
    bar: ProgressBar,
    transfers: AtomicU64,
    started: Instant,
}

impl Bar {
    fn new(quiet: bool) -> Self {
        let bar = if quiet {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(0)
        };
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} block {pos}/{len} [{bar:30}] {per_sec} blocks, {msg}, eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Bar {
            bar,
            transfers: AtomicU64::new(0),
            started: Instant::now(),
        }
    }
}

impl Progress for Bar {
    fn range(&self, _from: u64, to: u64) {
        self.bar.set_length(to);
    }
    fn block(&self, b: &BlockTransfers) {
        let n = self
            .transfers
            .fetch_add(b.transfers.len() as u64, Ordering::Relaxed)
            + b.transfers.len() as u64;
        self.bar.set_position(b.block.number);
        let rate = n as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
        self.bar.set_message(format!("{n} transfers ({rate:.0}/s)"));
        if b.incomplete > 0 {
            self.bar.suspend(|| tracing::warn!(target: "ingest", block = b.block.number, frames = b.incomplete, "the node's traces omit parties of value-moving frames: transfers may be missing"));
        }
    }
    fn reorg(&self, fork: u64, removed: &[BlockRef]) {
        self.bar.suspend(|| {
            eprintln!(
                "holdfast: reorg: unwound {} blocks above {fork}",
                removed.len()
            )
        });
    }
    fn caught_up(&self, head: u64) {
        self.bar.set_message(format!("following the head ({head})"));
    }
    fn node_unavailable(&self, error: &ChainError, retry_in: Duration) {
        self.bar.suspend(|| {
            eprintln!("holdfast: node unavailable ({error}); retrying in {retry_in:?}")
        });
    }
}

pub fn transfers(store: Arc<dyn Store>, args: &TransfersArgs) -> anyhow::Result<ExitCode> {
    if args.network.is_some() {
        anyhow::bail!("--network: only with --chain bitcoin");
    }
    let address: Address =
        holdfast_intel::address::parse(&args.address, Some(holdfast_primitives::Chain::Ethereum))
            .map_err(anyhow::Error::from)
            .and_then(|p| match p.key {
                holdfast_intel::address::AddressKey::Evm(a) => Ok(a),
                holdfast_intel::address::AddressKey::Text(_) => {
                    anyhow::bail!("{}: not an EVM address", args.address)
                }
            })?;
    let chain_id = stored_chain(store.as_ref(), args.chain_id)?;
    let mut rows: Vec<Transfer> = Vec::new();
    if matches!(args.direction, Direction::Out | Direction::Both) {
        rows.extend(store.transfers(
            chain_id,
            TransferQuery::From {
                address,
                from_block: args.from_block,
            },
            args.limit,
        )?);
    }
    if matches!(args.direction, Direction::In | Direction::Both) {
        rows.extend(store.transfers(
            chain_id,
            TransferQuery::To {
                address,
                from_block: args.from_block,
            },
            args.limit,
        )?);
    }
    rows.sort_by(|a, b| a.order_key().cmp(&b.order_key()));
    rows.dedup();
    let mut out = std::io::stdout().lock();
    use std::io::Write;
    for t in &rows {
        if args.json {
            serde_json::to_writer(&mut out, t)?;
            writeln!(out)?;
        } else {
            let dir = if t.from == address { "out" } else { "in " };
            let other = if t.from == address { t.to } else { t.from };
            writeln!(
                out,
                "{:>10} {} {} {} {} {} {}",
                t.block_number,
                t.tx_hash,
                t.position,
                dir,
                other,
                amount(t.amount),
                t.asset
            )?;
        }
    }
    if rows.is_empty() && !args.json {
        eprintln!(
            "holdfast: no stored transfers for {address} on chain {chain_id} from block {}",
            args.from_block
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The chain a read of the store is about: `given`, if the store holds it; else the only
/// chain the store holds. Otherwise an error naming the chains it holds, so that a query
/// never answers "nothing" about a chain the store was never given.
pub fn stored_chain(store: &dyn Store, given: Option<u64>) -> anyhow::Result<u64> {
    let held = store.chains().context("listing the store's chains")?;
    let list = || {
        held.iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    match (given, held.as_slice()) {
        (Some(id), _) if held.contains(&id) => Ok(id),
        (_, []) => anyhow::bail!(
            "the store holds no transfers of any chain: run `holdfast ingest` or `holdfast import transfers` first"
        ),
        (Some(id), _) => anyhow::bail!(
            "the store holds nothing for chain {id}; it holds chain{} {}: pass one with --chain-id",
            if held.len() == 1 { "" } else { "s" },
            list()
        ),
        (None, [only]) => Ok(*only),
        (None, _) => anyhow::bail!(
            "the store holds chains {}: pass one with --chain-id",
            list()
        ),
    }
}

fn amount(v: U256) -> String {
    v.to_string()
}

pub fn import_transfers(
    store: Arc<dyn Store>,
    args: &ImportTransfersArgs,
) -> anyhow::Result<ExitCode> {
    if args.blocks.is_some() || args.network.is_some() {
        anyhow::bail!("--blocks and --network: only with --chain bitcoin");
    }
    let meta = std::fs::metadata(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    anyhow::ensure!(
        meta.len() <= MAX_IMPORT_BYTES,
        "{}: {} bytes is larger than the {} byte limit: split the export",
        args.file.display(),
        meta.len(),
        MAX_IMPORT_BYTES
    );
    let file = std::fs::File::open(&args.file)
        .with_context(|| format!("opening {}", args.file.display()))?;
    let import = holdfast_chain::etl::read_etl_csv(
        std::io::BufReader::new(file),
        args.chain_id,
        &args.file.display().to_string(),
    )?;
    let name = args.file.display().to_string();
    let new = match store.import_transfers(args.chain_id, &import.transfers) {
        Ok(new) => new,
        // Name the file line of the refused row, and of the other one when it is in the file.
        Err(
            ref e @ StoreError::ImportConflict {
                index, ref stored, ..
            },
        ) => {
            let line = import.lines.get(index).copied().unwrap_or_default();
            let other = import
                .line_of(stored)
                .filter(|&l| l != line)
                .map(|l| format!(" (line {l} of the file)"))
                .unwrap_or_default();
            anyhow::bail!("{name}:{line}: {e}{other}; nothing of the file was stored");
        }
        Err(e) => return Err(e.into()),
    };
    let duplicates = match import.duplicates {
        0 => String::new(),
        n => format!("; {n} rows repeated an earlier row exactly and were stored once"),
    };
    println!(
        "{name}: blockchain-etl {} export, {} rows, {} transfers ({new} new) stored for chain {}, {} of them already stored before{duplicates}",
        import.kind.name(),
        import.rows,
        import.transfers.len(),
        args.chain_id,
        import.transfers.len() - new,
    );
    Ok(ExitCode::SUCCESS)
}
