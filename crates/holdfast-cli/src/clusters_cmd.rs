//! `holdfast clusters rebuild --chain bitcoin`: the UTXO index's address clusters computed
//! again from its stored transactions (`UtxoStore::rebuild_clusters`), for every network the
//! index holds (or `--network`'s), with progress and a summary.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use holdfast_bitcoin::Network;
use holdfast_store::utxo::{RebuildOptions, RebuildProgress, RebuildReport, RebuildStep};
use indicatif::{ProgressBar, ProgressStyle};

use crate::chain_cmd::{ChainKind, StoreArgs};

#[derive(Debug, Subcommand)]
pub enum ClustersCommand {
    /// Compute a chain's address clusters again from the transactions the UTXO index holds:
    /// after a change of the clustering rule (merged clusters cannot be split as blocks
    /// arrive), or for transactions written before clusters were kept. The result is what
    /// ingesting the blocks one by one gives, undo records included. Ingestion of the chain
    /// waits meanwhile; if the rebuild is interrupted, the embedded index refuses the chain's
    /// cluster reads and writes until it is run again (PostgreSQL keeps the earlier clusters).
    Rebuild(RebuildArgs),
}

#[derive(Debug, Args)]
pub struct RebuildArgs {
    /// `bitcoin`: the UTXO index of Bitcoin-family chains (clusters are kept for those only).
    #[arg(long, value_enum)]
    pub chain: ChainKind,
    /// Only this network (bitcoin, bitcoin-testnet, litecoin, …); default every network the
    /// index holds, its node-built chain and its imported history each.
    #[arg(long)]
    pub network: Option<String>,
    /// Most memory the build may take, MiB (about 35 bytes plus the address's length per
    /// clustered address, up to twice that while it grows); above it the rebuild stops
    /// before changing anything.
    #[arg(long, default_value_t = 16_384, value_parser = clap::value_parser!(u64).range(1..))]
    pub memory_mb: u64,
}

/// indicatif progress: blocks read, then entries written.
struct Bar {
    bar: ProgressBar,
    writing: std::sync::atomic::AtomicBool,
}

impl Bar {
    fn new(quiet: bool, what: &str) -> Bar {
        let bar = if quiet {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(0)
        };
        bar.set_style(
            ProgressStyle::with_template(&format!(
                "{{spinner}} {what}: {{msg}} {{pos}}/{{len}} [{{bar:30}}] {{per_sec}}, eta {{eta}}"
            ))
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_message("block");
        Bar {
            bar,
            writing: false.into(),
        }
    }
}

impl RebuildProgress for Bar {
    fn step(&self, step: RebuildStep) -> bool {
        use std::sync::atomic::Ordering;
        match step {
            RebuildStep::Read { height, head, .. } => {
                self.bar.set_length(head);
                self.bar.set_position(height);
            }
            RebuildStep::Write { done, total } => {
                if !self.writing.swap(true, Ordering::Relaxed) {
                    self.bar.set_message("writing entries");
                    self.bar.reset_eta();
                }
                self.bar.set_length(total);
                self.bar.set_position(done);
            }
        }
        true
    }
}

fn summary(what: &str, r: &RebuildReport) -> String {
    let total = (r.build_time + r.write_time).as_secs_f64();
    format!(
        "{what}: rebuilt from {} blocks ({} transactions, {} merging their inputs): {} addresses in {} clusters (largest {}); cluster undo records for the newest {} blocks; {:.0} MiB in memory; read and built in {:.1} s, written in {:.1} s ({:.0} transactions/s)",
        r.blocks,
        r.transactions,
        r.merging,
        r.addresses,
        r.clusters,
        r.largest,
        r.undo_blocks,
        r.memory as f64 / f64::from(1 << 20),
        r.build_time.as_secs_f64(),
        r.write_time.as_secs_f64(),
        r.transactions as f64 / total.max(1e-9),
    )
}

pub fn run(
    data_dir: &holdfast_intel::DataDir,
    store: &StoreArgs,
    cmd: ClustersCommand,
    quiet: bool,
) -> anyhow::Result<ExitCode> {
    let ClustersCommand::Rebuild(args) = cmd;
    if args.chain != ChainKind::Bitcoin {
        anyhow::bail!(
            "--chain evm: address clusters are kept for Bitcoin-family chains only (--chain bitcoin)"
        );
    }
    let networks: Vec<Network> = match &args.network {
        Some(name) => vec![
            name.parse()
                .map_err(|e| anyhow::anyhow!("--network: {e}"))?,
        ],
        None => Network::ALL.to_vec(),
    };
    let index = crate::bitcoin_cmd::open_index(data_dir, store)?;
    let options = RebuildOptions {
        memory_limit: Some(args.memory_mb << 20),
    };
    let mut done = 0;
    for network in &networks {
        for (id, kind) in [
            (network.index_id(), "from a node"),
            (network.import_id(), "imported"),
        ] {
            if index.head(id)?.is_none() {
                continue;
            }
            let what = format!("{} ({kind})", network.name());
            let bar = Bar::new(quiet, &what);
            let report = index
                .rebuild_clusters(id, options, &bar)
                .map_err(|e| anyhow::anyhow!("rebuilding the clusters of {what}: {e}"))?;
            bar.bar.finish_and_clear();
            println!("{}", summary(&what, &report));
            done += 1;
        }
    }
    if done == 0 {
        anyhow::bail!(
            "the UTXO index holds no blocks of {}: run `holdfast ingest --chain bitcoin` (or import a bitcoin-etl export) first",
            networks
                .iter()
                .map(|n| n.name())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}
