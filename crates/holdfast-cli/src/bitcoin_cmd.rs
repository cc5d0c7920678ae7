//! `holdfast ingest --chain bitcoin`: a Bitcoin-family chain (Bitcoin Core-compatible RPC;
//! the network is the node's, known by its genesis block) into the UTXO index
//! (`<data-dir>/store/utxo`, or the `--store` PostgreSQL database).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use holdfast_bitcoin::{RpcAuth, RpcConfig, RpcSource};
use holdfast_ingest::bitcoin::{FollowOptions, SyncReport, follow_utxo, sync_utxo};
use holdfast_store::utxo::{EmbeddedUtxoStore, PgUtxoStore, UtxoStore};

use crate::chain_cmd::{IngestArgs, StoreArgs};

/// Deepest reorg `ingest --chain bitcoin` unwinds.
const MAX_REORG_DEPTH: u64 = 100;
/// Undo records kept: ten times the deepest reorg unwound (older ones are dropped as blocks are
/// written).
const KEEP_UNDO: u64 = 10 * MAX_REORG_DEPTH;

/// The UTXO index: PostgreSQL when `--store` is a `postgres://` URL, else the embedded one.
fn open_index(
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

pub fn ingest(
    data_dir: &holdfast_intel::DataDir,
    store: &StoreArgs,
    args: &IngestArgs,
) -> anyhow::Result<ExitCode> {
    if args.from.is_some() {
        anyhow::bail!(
            "--from: the UTXO index is built from the genesis block (or resumed from its head); a Bitcoin-family chain cannot start elsewhere"
        );
    }
    let index = open_index(data_dir, store)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let auth = match &args.rpc_cookie {
            Some(path) => RpcAuth::Cookie(path.clone()),
            None => RpcAuth::None,
        };
        let mut config = RpcConfig::new(args.rpc.clone(), auth);
        config.max_response_bytes = (args.max_response_mb as usize) << 20;
        let source = RpcSource::connect(config).await?;
        let network = source.network();
        let chain_id = network.index_id();
        let started = Instant::now();
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
            follow_utxo(&source, &index, chain_id, &options, stop_rx, |r| {
                if r.blocks > 0 {
                    tracing::info!(target: "ingest::bitcoin", blocks = r.blocks, txs = r.txs, unwound = r.unwound.len(), "synced");
                }
            })
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
            sync_utxo(&source, &index, chain_id, Some(to), MAX_REORG_DEPTH).await?
        };
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
