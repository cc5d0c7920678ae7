//! `holdfast ingest --chain bitcoin`: a Bitcoin-family chain (Bitcoin Core-compatible RPC;
//! the network is the node's, known by its genesis block) into the UTXO index
//! (`<data-dir>/store/utxo`, or the `--store` PostgreSQL database); `holdfast transfers
//! ADDRESS --chain bitcoin`: an address's receipts and spends from the index.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use holdfast_bitcoin::{Network, RpcAuth, RpcConfig, RpcSource, address};
use holdfast_ingest::bitcoin::{
    FollowOptions, SyncReport, UtxoProgress, follow_utxo_with, sync_utxo_with,
};
use holdfast_store::utxo::{
    Direction as UtxoDirection, EmbeddedUtxoStore, PgUtxoStore, UtxoStore, show_txid,
};
use indicatif::{ProgressBar, ProgressStyle};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::chain_cmd::{Direction, ImportTransfersArgs, IngestArgs, StoreArgs, TransfersArgs};

/// Deepest reorg `ingest --chain bitcoin` unwinds.
const MAX_REORG_DEPTH: u64 = 100;
/// Undo records kept: ten times the deepest reorg unwound (older ones are dropped as blocks are
/// written).
const KEEP_UNDO: u64 = 10 * MAX_REORG_DEPTH;

/// The UTXO index: PostgreSQL when `--store` is a `postgres://` URL, else the embedded one.
pub(crate) fn open_index(
    data_dir: &holdfast_intel::DataDir,
    args: &StoreArgs,
) -> anyhow::Result<Arc<dyn UtxoStore>> {
    match args.store.as_deref() {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            let store = PgUtxoStore::connect_with(url, Some(KEEP_UNDO)).with_context(|| {
                format!(
                    "opening the PostgreSQL UTXO index at {}",
                    holdfast_bitcoin::rpc::redact(url)
                )
            })?;
            Ok(Arc::new(store))
        }
        Some(other) => anyhow::bail!(
            "--store {other:?}: expected a postgres:// URL (or omit it for the embedded store)"
        ),
        None => {
            let path = data_dir.root().join("store/utxo");
            Ok(Arc::new(
                EmbeddedUtxoStore::open_with(&path, Some(KEEP_UNDO)).with_context(|| {
                    format!("opening the embedded UTXO index {}", path.display())
                })?,
            ))
        }
    }
}

/// indicatif progress for `ingest --chain bitcoin`: blocks/s, transactions/s, ETA (hidden with
/// `--quiet` or when stderr is not a terminal).
struct Bar {
    bar: ProgressBar,
    txs: AtomicU64,
    started: Instant,
}

impl Bar {
    fn new(quiet: bool) -> Bar {
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
            txs: AtomicU64::new(0),
            started: Instant::now(),
        }
    }
}

impl UtxoProgress for Bar {
    fn range(&self, from: u64, to: u64) {
        self.bar.set_length(to);
        if self.bar.position() < from {
            self.bar.set_position(from.saturating_sub(1));
            self.bar.reset_eta();
        }
    }
    fn block(&self, height: u64, txs: u64) {
        let n = self.txs.fetch_add(txs, Ordering::Relaxed) + txs;
        self.bar.set_position(height);
        let rate = n as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
        self.bar
            .set_message(format!("{n} transactions ({rate:.0}/s)"));
    }
    fn reorg(&self, fork: u64, unwound: &[holdfast_primitives::BlockRef]) {
        self.bar.suspend(|| {
            eprintln!(
                "holdfast: reorg: unwound {} blocks above {fork}",
                unwound.len()
            )
        });
    }
}

pub fn ingest(
    data_dir: &holdfast_intel::DataDir,
    store: &StoreArgs,
    args: &IngestArgs,
    quiet: bool,
) -> anyhow::Result<ExitCode> {
    if args.from.is_some() {
        anyhow::bail!(
            "--from: the UTXO index is built from the genesis block (or resumed from its head); a Bitcoin-family chain cannot start elsewhere"
        );
    }
    let index = open_index(data_dir, store)?;
    if let Some(dir) = &args.blocks_dir {
        return ingest_dir(&*index, dir, args, quiet);
    }
    let Some(rpc) = &args.rpc else {
        anyhow::bail!("--rpc or --blocks-dir: where the blocks come from");
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let auth = match &args.rpc_cookie {
            Some(path) => RpcAuth::Cookie(path.clone()),
            None => RpcAuth::None,
        };
        let mut config = RpcConfig::new(rpc.clone(), auth);
        config.max_response_bytes = (args.max_response_mb as usize) << 20;
        let source = RpcSource::connect(config).await?;
        let network = source.network();
        let chain_id = network.index_id();
        let started = Instant::now();
        let bar = Bar::new(quiet);
        let report: SyncReport = if args.follow {
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
            let options = FollowOptions {
                confirmations: args.confirmations,
                max_reorg_depth: MAX_REORG_DEPTH,
                ..FollowOptions::default()
            };
            follow_utxo_with(
                &source,
                &index,
                chain_id,
                &options,
                stop_rx,
                |r| {
                    if r.blocks > 0 {
                        tracing::info!(target: "ingest::bitcoin", blocks = r.blocks, bulk_blocks = r.bulk_blocks, txs = r.txs, unwound = r.unwound.len(), "synced");
                    }
                },
                &bar,
            )
            .await?
        } else {
            let to = match args.to {
                Some(t) => t,
                None => source
                    .chain_info()
                    .await?
                    .blocks
                    .saturating_sub(args.confirmations),
            };
            sync_utxo_with(&source, &index, chain_id, Some(to), MAX_REORG_DEPTH, &bar).await?
        };
        bar.bar.finish_and_clear();
        let secs = started.elapsed().as_secs_f64().max(1e-9);
        let i = index.clone();
        let (head, counts) = tokio::task::spawn_blocking(move || {
            Ok::<_, holdfast_store::StoreError>((i.head(chain_id)?, i.counts(chain_id)?))
        })
        .await
        .context("store task")??;
        eprintln!(
            "holdfast: {network} via {}: {} blocks, {} transactions in {secs:.1} s ({:.0} tx/s); {} blocks unwound; index head {}; {} unspent outputs holding {} (smallest unit)",
            source.endpoint(),
            report.blocks,
            report.txs,
            report.txs as f64 / secs,
            report.unwound.len(),
            head.map_or_else(|| "none".to_owned(), |h| h.number.to_string()),
            counts.outputs,
            counts.total,
        );
        Ok(ExitCode::SUCCESS)
    })
}

/// `ingest --chain bitcoin --blocks-dir`: the directory's best chain into the index.
fn ingest_dir(
    index: &dyn UtxoStore,
    dir: &std::path::Path,
    args: &IngestArgs,
    quiet: bool,
) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    if !quiet {
        eprintln!("holdfast: reading the block headers of {}", dir.display());
    }
    let blocks = holdfast_bitcoin::blkdir::BlocksDir::open(dir)?;
    let network = blocks.network();
    let chain_id = network.index_id();
    if !quiet {
        eprintln!(
            "holdfast: {network}: best chain of {} blocks, tip {} ({} other blocks framed in the files) in {:.1} s",
            blocks.len(),
            blocks
                .hash_at(blocks.len().saturating_sub(1))
                .map_or_else(|| "none".to_owned(), |h| h.to_string()),
            blocks.off_chain(),
            started.elapsed().as_secs_f64()
        );
    }
    let tip = blocks.len().saturating_sub(1);
    let to = args
        .to
        .unwrap_or(tip)
        .min(tip)
        .saturating_sub(args.confirmations);
    let bar = Bar::new(quiet);
    let report = holdfast_ingest::bitcoin::sync_utxo_from_dir(
        &blocks,
        index,
        chain_id,
        Some(to),
        MAX_REORG_DEPTH,
        &bar,
    )?;
    bar.bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    let (head, counts) = (index.head(chain_id)?, index.counts(chain_id)?);
    eprintln!(
        "holdfast: {network} from {}: {} blocks, {} transactions in {secs:.1} s ({:.0} tx/s, headers included); index head {}; {} unspent outputs holding {} (smallest unit)",
        dir.display(),
        report.blocks,
        report.txs,
        report.txs as f64 / secs,
        head.map_or_else(|| "none".to_owned(), |h| h.number.to_string()),
        counts.outputs,
        counts.total,
    );
    Ok(ExitCode::SUCCESS)
}

/// Most entries `transfers --chain bitcoin` lists at once.
const MAX_LIST: usize = 10_000;

/// The network `args.address` is read on: `--network`, else the only one the address's form
/// allows, else the only one of those the index holds.
fn address_network(
    index: &dyn UtxoStore,
    args: &TransfersArgs,
) -> anyhow::Result<(Network, String)> {
    if let Some(name) = &args.network {
        let network: Network = name
            .parse()
            .map_err(|e| anyhow::anyhow!("--network: {e}"))?;
        let (_, canonical) = address::parse(&args.address, network)?;
        return Ok((network, canonical));
    }
    let candidates = address::networks(&args.address)?;
    let chosen = if let [one] = candidates[..] {
        one
    } else {
        let mut held = Vec::new();
        for n in &candidates {
            if holds(index, *n)? {
                held.push(*n);
            }
        }
        let names = |l: &[Network]| l.iter().map(|n| n.name()).collect::<Vec<_>>().join(", ");
        match held[..] {
            [one] => one,
            [] => anyhow::bail!(
                "address {:?} is an address of {}, and the index holds none of them: run `holdfast ingest --chain bitcoin` first",
                args.address,
                names(&candidates)
            ),
            _ => anyhow::bail!(
                "address {:?} is an address of {}, all indexed: say which with --network",
                args.address,
                names(&held)
            ),
        }
    };
    let (_, canonical) = address::parse(&args.address, chosen)?;
    Ok((chosen, canonical))
}

/// Whether the store holds blocks of `network`, ingested or imported.
fn holds(index: &dyn UtxoStore, network: Network) -> anyhow::Result<bool> {
    Ok(index.head(network.index_id())?.is_some() || index.head(network.import_id())?.is_some())
}

/// A page of `address`'s entries from the index built from a node and from imported history,
/// merged in block order (an entry both hold once), and whether it is the last page.
fn merged(
    index: &dyn UtxoStore,
    network: Network,
    address: &str,
    from: u64,
) -> anyhow::Result<(Vec<holdfast_store::utxo::AddressTransfer>, bool)> {
    let mut all = index.address_transfers(network.index_id(), address, from, MAX_LIST)?;
    let imported = index.address_transfers(network.import_id(), address, from, MAX_LIST)?;
    let complete = all.len() < MAX_LIST && imported.len() < MAX_LIST;
    // Each list is complete up to its last height when full: keep what both cover.
    let cover = |l: &[holdfast_store::utxo::AddressTransfer]| {
        (l.len() == MAX_LIST).then(|| l[l.len() - 1].height)
    };
    let limit = match (cover(&all), cover(&imported)) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    all.extend(imported);
    let key =
        |t: &holdfast_store::utxo::AddressTransfer| (t.height, t.tx_index, t.direction, t.index);
    all.sort_by_key(key);
    all.dedup_by(|a, b| a == b);
    if let Some(h) = limit {
        // Cut to whole blocks below the covered height plus that height's entries.
        all.retain(|t| t.height <= h);
    }
    Ok((all, complete))
}

/// `holdfast import transfers FILE --chain bitcoin --blocks FILE`: a bitcoin-etl export into
/// the UTXO store's transaction and address index (kept apart from the index built from a
/// node, under the network's import id). The whole export is read and checked before the
/// first write; each block is then written atomically, and a block already imported is left
/// as it is (a run stopped midway is completed by running it again).
pub fn import(
    data_dir: &holdfast_intel::DataDir,
    store: &StoreArgs,
    args: &ImportTransfersArgs,
) -> anyhow::Result<ExitCode> {
    let Some(blocks) = &args.blocks else {
        anyhow::bail!("--blocks: bitcoin-etl's blocks.json for the same blocks is needed");
    };
    let network: Network = match &args.network {
        Some(name) => name
            .parse()
            .map_err(|e| anyhow::anyhow!("--network: {e}"))?,
        None => Network::Bitcoin,
    };
    let export = holdfast_ingest::bitcoin_etl::read_export(network, blocks, &args.file)?;
    let index = open_index(data_dir, store)?;
    let (mut written, mut present, mut txs) = (0u64, 0u64, 0u64);
    for b in &export {
        match index.import_block(network.import_id(), &b.block, &b.transactions)? {
            holdfast_store::Applied::Written => written += 1,
            holdfast_store::Applied::AlreadyPresent => present += 1,
        }
        txs += b.transactions.len() as u64;
    }
    eprintln!(
        "holdfast: {network}: {} blocks in the export, {written} imported, {present} already there; {txs} transactions",
        export.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// An amount in the smallest unit as the coin's unit with its 8 decimals.
fn coins(value: u64) -> String {
    format!("{}.{:08}", value / 100_000_000, value % 100_000_000)
}

pub fn transfers(
    data_dir: &holdfast_intel::DataDir,
    store: &StoreArgs,
    args: &TransfersArgs,
) -> anyhow::Result<ExitCode> {
    if args.chain_id.is_some() {
        anyhow::bail!(
            "--chain-id: a Bitcoin-family chain is named by its network (--network), not a chain id"
        );
    }
    if args.limit == 0 || args.limit > MAX_LIST {
        anyhow::bail!("--limit {}: expected 1 to {MAX_LIST}", args.limit);
    }
    let index = open_index(data_dir, store)?;
    let (network, address) = address_network(&*index, args)?;
    if !holds(&*index, network)? {
        anyhow::bail!(
            "address {:?} is an address of {network}, and the index holds none of its blocks: run `holdfast ingest --chain bitcoin` on a {network} node first",
            args.address
        );
    }
    let unit = network.unit();
    let mut out = std::io::stdout().lock();
    use std::io::Write;
    let mut listed = 0;
    let mut from = args.from_block;
    // Read in pages: --direction filters, --limit counts what is listed.
    'pages: loop {
        let (page, last) = merged(&*index, network, &address, from)?;
        let mut next_from = from;
        for t in &page {
            if !last && t.height == page[page.len() - 1].height {
                // The page may cut this block: read it again from its start.
                next_from = t.height;
                break;
            }
            let wanted = matches!(
                (args.direction, t.direction),
                (Direction::Both, _)
                    | (Direction::In, UtxoDirection::Received)
                    | (Direction::Out, UtxoDirection::Spent)
            );
            if !wanted {
                continue;
            }
            if listed == args.limit {
                eprintln!(
                    "holdfast: more than {} entries; listing the first (raise --limit or use --from-block)",
                    args.limit
                );
                break 'pages;
            }
            listed += 1;
            let txid = show_txid(&t.txid);
            let (direction, place) = match t.direction {
                UtxoDirection::Received => ("received", format!("{txid}:{}", t.index)),
                UtxoDirection::Spent => ("spent", format!("{}", t.outpoint)),
            };
            if args.json {
                let mut v = serde_json::json!({
                    "network": network.name(),
                    "address": address,
                    "block": t.height,
                    "position": t.tx_index,
                    "direction": direction,
                    "value": t.value,
                    "amount": coins(t.value),
                    "unit": unit,
                    "txid": txid,
                    "output": place,
                });
                if t.direction == UtxoDirection::Spent {
                    v["input"] = t.index.into();
                }
                serde_json::to_writer(&mut out, &v)?;
                writeln!(out)?;
            } else if t.direction == UtxoDirection::Received {
                writeln!(
                    out,
                    "block {:>8}  received {:>20} {unit}  {place}",
                    t.height,
                    coins(t.value)
                )?;
            } else {
                writeln!(
                    out,
                    "block {:>8}  spent    {:>20} {unit}  {place}  by {txid} input {}",
                    t.height,
                    coins(t.value),
                    t.index
                )?;
            }
        }
        if last {
            break;
        }
        if next_from == from {
            anyhow::bail!(
                "address {address}: one block holds more than {MAX_LIST} of its entries; not listed"
            );
        }
        from = next_from;
    }
    if listed == 0 && !args.json {
        eprintln!("holdfast: no receipts or spends of {address} on {network} in the index");
    }
    Ok(ExitCode::SUCCESS)
}
