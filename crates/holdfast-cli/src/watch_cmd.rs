//! `holdfast watch`: run a watch file (alone; `serve --watch-config` runs it inside the API
//! server), check one, replay one over stored history.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use holdfast_intel::{DataDir, IntelIndex};
use holdfast_store::Store;
use holdfast_store::watch::{EmbeddedWatchStore, PgWatchStore, WatchStore};
use holdfast_watch::config::{self, ConfigError};
use holdfast_watch::{
    Alert, ChainInfo, HttpFreezer, IntelView, Labeler, Responder, Runner, RunnerDeps, Units,
    WatchState,
};

use crate::chain_cmd::{self, StoreArgs};

mod cursors;

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct WatchArgs {
    #[command(subcommand)]
    pub command: Option<WatchCommand>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum WatchCommand {
    /// Validate a watch file: every error and warning with file, line and key. Exit status 0
    /// when it can run, 1 when it has errors.
    Check {
        file: PathBuf,
        /// One JSON object with the errors and warnings.
        #[arg(long)]
        json: bool,
    },
    /// Run a watch file's rules over stored history (the transfer store): backtest a rule
    /// before turning it on. Rules that need call traces, logs or state diffs see nothing in
    /// replay (the store keeps transfers). Prints the alerts; writes and delivers nothing.
    Replay(ReplayArgs),
    /// Run a watch file's rules over recorded blocks and compare with the alerts each case
    /// expects (exactly: a missing alert and an unexpected one both fail). Exit status 0 when
    /// every case passes, 1 otherwise.
    Test {
        file: PathBuf,
        cases: PathBuf,
        /// One JSON object per case.
        #[arg(long)]
        json: bool,
    },
    /// Record blocks from a node (their transactions, logs, call frames, state diff and
    /// transfers) as JSON lines, for `watch test` cases.
    Record(RecordArgs),
    /// List every stored sink delivery cursor: its position, its backlog (outbox head −
    /// cursor) and whether the watch file configures the sink. The outbox is never pruned
    /// past a cursor, so a stale one (a sink the file no longer names) holds pruning back:
    /// remove it with `forget-sink`. Exit status 0, or 1 when a cursor is stale.
    Cursors {
        /// The watch file: its `[[sink]]`s are the configured ones.
        file: PathBuf,
        /// One JSON object: the outbox head and each cursor.
        #[arg(long)]
        json: bool,
    },
    /// Remove the stored delivery cursor of a sink the watch file no longer names, so that
    /// pruning proceeds past it. Refused for a sink the file configures (it would be
    /// registered again at 0 and receive every event still in the outbox) and for a name
    /// with no stored cursor. With several instances on PostgreSQL, only once no instance
    /// serves the sink.
    ForgetSink {
        /// The watch file: its `[[sink]]`s are the configured ones.
        file: PathBuf,
        /// The sink's name, as `cursors` lists it.
        name: String,
    },
}

#[derive(Debug, Args)]
pub struct RecordArgs {
    /// The node: http(s):// or ws(s)://.
    #[arg(long, value_name = "URL")]
    pub rpc: String,
    #[arg(long, value_name = "N")]
    pub from_block: u64,
    #[arg(long, value_name = "N")]
    pub to_block: u64,
    /// Where to write the JSON lines.
    #[arg(long, short, value_name = "FILE")]
    pub output: PathBuf,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The watch file (TOML: chains, address sets, rules, sinks).
    #[arg(long, value_name = "FILE", env = "HOLDFAST_WATCH_CONFIG")]
    pub config: Option<PathBuf>,
    /// The guard service's API, for rules with the `freeze` response (with
    /// --guard-token-file holding an operator token).
    #[arg(long, value_name = "URL", requires = "guard_token_file")]
    pub guard_url: Option<String>,
    /// File holding the guard API token (operator role) used by the `freeze` response.
    #[arg(long, value_name = "FILE", requires = "guard_url")]
    pub guard_token_file: Option<PathBuf>,
    /// This instance's name in the chains' leases (default: host name and process id).
    #[arg(long, value_name = "NAME")]
    pub instance: Option<String>,
    /// Seconds a chain's lease lasts: when the instance holding it dies, another takes the
    /// chain over after at most this long.
    #[arg(long, value_name = "SECS", default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub lease_secs: u64,
    /// Stop after committing this block (every chain): for tests and backfills.
    #[arg(long, value_name = "N")]
    pub stop_after_block: Option<u64>,
    /// The newest outbox events kept by pruning even when every sink has delivered them:
    /// how far back the API's live stream can resume after a disconnection.
    #[arg(long, value_name = "N", default_value_t = holdfast_watch::DeliveryConfig::default().prune_keep)]
    pub prune_keep: u64,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    #[arg(long, value_name = "FILE", env = "HOLDFAST_WATCH_CONFIG")]
    pub config: PathBuf,
    /// The chain (its name in the watch file; default: the file's only chain).
    #[arg(long)]
    pub chain: Option<String>,
    /// The chain id of the stored transfers (default: the watch file's `chain_id`).
    #[arg(long)]
    pub chain_id: Option<u64>,
    #[arg(long, value_name = "N")]
    pub from_block: u64,
    #[arg(long, value_name = "N")]
    pub to_block: u64,
    /// One JSON alert per line.
    #[arg(long)]
    pub json: bool,
}

/// The watch store: PostgreSQL with `--store postgres://...`, else the embedded one.
pub fn open_watch_store(
    data_dir: &DataDir,
    store: &StoreArgs,
) -> anyhow::Result<Arc<dyn WatchStore>> {
    Ok(match store.store.as_deref() {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            Arc::new(
                PgWatchStore::connect(url, 4)
                    .context("connecting the watch state to PostgreSQL")?,
            )
        }
        Some(other) => anyhow::bail!("--store {other:?}: expected a postgres:// URL"),
        None => {
            let path = data_dir.root().join("store").join("watch");
            Arc::new(
                EmbeddedWatchStore::open(&path)
                    .with_context(|| format!("opening the watch state at {}", path.display()))?,
            )
        }
    })
}

fn print_diagnostics(e: &ConfigError, warnings: &[config::Diagnostic]) {
    for w in warnings {
        eprintln!("warning: {w}");
    }
    for d in e.diagnostics() {
        eprintln!("error: {d}");
    }
}

/// Loads a watch file, printing its warnings; its errors become one error.
pub fn load(path: &std::path::Path) -> anyhow::Result<config::WatchConfig> {
    match config::load(path) {
        Ok(v) => {
            for w in &v.warnings {
                eprintln!("warning: {w}");
            }
            Ok(v.config)
        }
        Err(e) => {
            let warnings = match &e {
                ConfigError::Invalid { warnings, .. } => warnings.clone(),
                ConfigError::Read { .. } => Vec::new(),
            };
            print_diagnostics(&e, &warnings);
            anyhow::bail!("{} cannot be used (errors above)", path.display())
        }
    }
}

pub fn run(data_dir: &DataDir, store: &StoreArgs, args: WatchArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        Some(WatchCommand::Check { file, json }) => check(&file, json),
        Some(WatchCommand::Replay(r)) => replay(data_dir, store, &r),
        Some(WatchCommand::Test { file, cases, json }) => test(data_dir, &file, &cases, json),
        Some(WatchCommand::Record(r)) => record(&r),
        Some(WatchCommand::Cursors { file, json }) => {
            cursors::cursors(data_dir, store, &file, json)
        }
        Some(WatchCommand::ForgetSink { file, name }) => {
            cursors::forget_sink(data_dir, store, &file, &name)
        }
        None => {
            let path =
                args.run.config.clone().context(
                    "holdfast watch needs --config FILE (or a subcommand: check, replay)",
                )?;
            run_watch(data_dir, store, &args.run, &path)
        }
    }
}

fn check(file: &std::path::Path, json: bool) -> anyhow::Result<ExitCode> {
    let (errors, warnings) = match config::load(file) {
        Ok(v) => (Vec::new(), v.warnings),
        Err(e) => {
            let w = match &e {
                ConfigError::Invalid { warnings, .. } => warnings.clone(),
                ConfigError::Read { .. } => Vec::new(),
            };
            (e.diagnostics(), w)
        }
    };
    if json {
        println!(
            "{}",
            serde_json::json!({"file": file.display().to_string(), "ok": errors.is_empty(), "errors": errors, "warnings": warnings})
        );
    } else {
        for w in &warnings {
            println!("warning: {w}");
        }
        for e in &errors {
            println!("error: {e}");
        }
        if errors.is_empty() {
            println!(
                "{}: ok ({} warning{})",
                file.display(),
                warnings.len(),
                if warnings.len() == 1 { "" } else { "s" }
            );
        }
    }
    Ok(if errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Intel as the watch reads it, reloadable.
pub struct SwapIntel(pub arc_swap::ArcSwap<IntelIndex>);

impl IntelView for SwapIntel {
    fn index(&self) -> Arc<IntelIndex> {
        self.0.load_full()
    }
}

fn load_intel(data_dir: &DataDir) -> anyhow::Result<Arc<IntelIndex>> {
    Ok(Arc::new(
        holdfast_intel::load(Some(data_dir))
            .context("loading intel")?
            .index,
    ))
}

fn instance_name(args: &RunArgs) -> String {
    args.instance.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "host".into());
        format!("{host}:{}", std::process::id())
    })
}

/// Prints each alert as it is committed, with its latency from the block being seen.
fn print_alert(a: &Alert, latency: Duration) {
    eprintln!(
        "holdfast: ALERT [{}] {} (rule {}, block {}, {} ms after the block was seen) {}",
        a.severity.name().to_uppercase(),
        a.title,
        a.rule,
        a.block_number,
        latency.as_millis(),
        a.id
    );
}

fn run_watch(
    data_dir: &DataDir,
    store: &StoreArgs,
    args: &RunArgs,
    path: &std::path::Path,
) -> anyhow::Result<ExitCode> {
    let config = load(path)?;
    let transfers = chain_cmd::open_store(data_dir, store)?;
    let watch = open_watch_store(data_dir, store)?;
    let intel = Arc::new(SwapIntel(arc_swap::ArcSwap::new(load_intel(data_dir)?)));
    let freezer: Option<Arc<dyn holdfast_watch::Freezer>> =
        match (&args.guard_url, &args.guard_token_file) {
            (Some(url), Some(file)) => {
                let token = std::fs::read_to_string(file)
                    .with_context(|| format!("reading the guard token file {}", file.display()))?
                    .trim()
                    .to_owned();
                Some(Arc::new(
                    HttpFreezer::new(url, token).map_err(anyhow::Error::msg)?,
                ))
            }
            _ => None,
        };
    let reload_dir = data_dir.clone();
    let reload_into = intel.clone();
    let responder = Responder {
        freezer,
        labeler: Some(Labeler {
            dir: data_dir.clone(),
            reload: Arc::new(move || {
                let index = holdfast_intel::load(Some(&reload_dir))
                    .map_err(|e| e.to_string())?
                    .index;
                reload_into.0.store(Arc::new(index));
                Ok(())
            }),
        }),
        notify_dir: Some(data_dir.root().join("freeze-requests")),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    // The stores' last handles are dropped here, outside the runtime: a PostgreSQL client
    // blocks on its connection when dropped, which panics inside async code.
    let _keep = (transfers.clone(), watch.clone());
    let lease = Duration::from_secs(args.lease_secs);
    let stop_after = args.stop_after_block;
    let prune_keep = args.prune_keep;
    let owner = instance_name(args);
    rt.block_on(async move {
        let deps = RunnerDeps {
            transfers,
            watch,
            intel,
            responder,
            owner: owner.clone(),
            on_alert: Some(Arc::new(print_alert)),
            on_block: None,
            env: Box::new(|k| std::env::var(k).ok()),
            chain_options: Some(holdfast_watch::ChainOptions {
                lease_ttl: lease,
                stop_after,
                ..holdfast_watch::ChainOptions::default()
            }),
            delivery: holdfast_watch::DeliveryConfig {
                prune_keep,
                ..holdfast_watch::DeliveryConfig::default()
            },
        };
        let runner = Runner::start(&config, deps).await?;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!(
                    "holdfast: stopping the watch after the current block (Ctrl-C again to abort)"
                );
                let _ = stop_tx.send(true);
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(130);
                }
            }
        });
        eprintln!(
            "holdfast: watching {} chain{} as {owner} (Ctrl-C to stop)",
            config.chains.len(),
            if config.chains.len() == 1 { "" } else { "s" }
        );
        let summaries = runner.run(stop_rx).await?;
        for s in summaries {
            eprintln!(
                "holdfast: {} blocks, {} alerts, {} reorgs ({} alerts retracted)",
                s.blocks, s.alerts, s.reorgs, s.retracted
            );
        }
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

fn replay(data_dir: &DataDir, store: &StoreArgs, args: &ReplayArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        args.from_block <= args.to_block,
        "--from-block {} is above --to-block {}",
        args.from_block,
        args.to_block
    );
    let config = load(&args.config)?;
    let chain = match &args.chain {
        Some(name) => config
            .chain(name)
            .with_context(|| format!("--chain {name}: the watch file has no such chain"))?,
        None => match config.chains.as_slice() {
            [one] => one,
            _ => anyhow::bail!("the watch file has several chains: name one with --chain"),
        },
    };
    let chain_id = args
        .chain_id
        .or(chain.chain_id)
        .context("--chain-id is needed (the watch file's chain has no chain_id)")?;
    let transfers: Arc<dyn Store> = chain_cmd::open_store(data_dir, store)?;
    let index = load_intel(data_dir)?;
    let intel: Arc<dyn IntelView> = Arc::new(SwapIntel(arc_swap::ArcSwap::new(index.clone())));
    let rules = holdfast_watch::detect::FileRules::new(
        &config,
        intel,
        Arc::new(holdfast_watch::detect::StoreHistory::new(transfers.clone())),
    );
    let info = ChainInfo {
        chain_id,
        name: chain.name.clone(),
        explorer: chain.explorer.clone(),
    };
    let mut state = WatchState::default();
    let started = std::time::Instant::now();
    let json = args.json;
    let mut print = |a: Alert| {
        if json {
            println!("{}", serde_json::to_string(&a).unwrap_or_default());
        } else {
            println!(
                "block {} [{}] {}: {} ({})",
                a.block_number,
                a.severity.name(),
                a.rule,
                a.title,
                a.id
            );
        }
    };
    let summary = holdfast_watch::replay::replay(
        transfers.as_ref(),
        &rules,
        index.as_ref(),
        &Units::new(),
        &info,
        args.from_block,
        args.to_block,
        &mut state,
        &mut print,
        &mut |_| {},
    )?;
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    eprintln!(
        "holdfast: replayed {} blocks, {} transfers in {:.2} s ({:.0} transfers/s): {} alerts",
        summary.blocks,
        summary.transfers,
        secs,
        summary.transfers as f64 / secs,
        summary.alerts
    );
    Ok(ExitCode::SUCCESS)
}

/// The guard service's freeze, in-process (`holdfast serve --guard-config --watch-config`).
#[derive(Debug)]
pub struct GateFreezer(pub Arc<holdfast_gate::Gate>);

impl holdfast_watch::Freezer for GateFreezer {
    fn freeze(
        &self,
        wallet: alloy_primitives::Address,
        reason: String,
    ) -> holdfast_watch::respond::BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let who = holdfast_gate::Principal {
                name: "watch".into(),
                roles: vec![holdfast_gate::Role::Operator],
                address: None,
            };
            self.0
                .freeze(Some(wallet), &reason, &who)
                .await
                .map_err(|e| e.to_string())
        })
    }
}

/// Intel as the server holds it (reloads by SIGHUP, the admin API or the `label` response
/// are seen by the watch at once).
pub struct ServerIntel(pub Arc<arc_swap::ArcSwap<holdfast_server::Intel>>);

impl IntelView for ServerIntel {
    fn index(&self) -> Arc<IntelIndex> {
        self.0.load().index.clone()
    }
}

/// The watch inside `holdfast serve`: its stores are opened by the caller (the watch store
/// also serves `/v1/alerts`); freeze in-process when the guard service runs here.
pub struct InServer {
    pub config: config::WatchConfig,
    pub transfers: Arc<dyn Store>,
    pub watch: Arc<dyn WatchStore>,
}

impl InServer {
    pub fn open(
        data_dir: &DataDir,
        store: &StoreArgs,
        path: &std::path::Path,
    ) -> anyhow::Result<InServer> {
        Ok(InServer {
            config: load(path)?,
            transfers: chain_cmd::open_store(data_dir, store)?,
            watch: open_watch_store(data_dir, store)?,
        })
    }

    /// Checks and connects (errors stop the server from starting), then runs the watch on a
    /// task until `stop`.
    pub async fn start(
        self,
        data_dir: &DataDir,
        state: &holdfast_server::AppState,
        gate: Option<Arc<holdfast_gate::Gate>>,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> anyhow::Result<tokio::task::JoinHandle<()>> {
        let intel = state.intel.clone();
        let metrics = state.metrics.clone();
        let reload_dir = data_dir.clone();
        let responder = Responder {
            freezer: gate.map(|g| Arc::new(GateFreezer(g)) as Arc<dyn holdfast_watch::Freezer>),
            labeler: Some(Labeler {
                dir: data_dir.clone(),
                reload: Arc::new(move || {
                    let loaded =
                        holdfast_intel::load(Some(&reload_dir)).map_err(|e| e.to_string())?;
                    metrics.set_labels(loaded.index.label_count());
                    intel.store(Arc::new(holdfast_server::Intel {
                        index: Arc::new(loaded.index),
                        loaded_at: std::time::SystemTime::now(),
                        report: loaded.report,
                    }));
                    Ok(())
                }),
            }),
            notify_dir: Some(data_dir.root().join("freeze-requests")),
        };
        let deps = RunnerDeps {
            transfers: self.transfers,
            watch: self.watch,
            intel: Arc::new(ServerIntel(state.intel.clone())),
            responder,
            owner: format!("serve:{}", std::process::id()),
            on_alert: None,
            on_block: None,
            env: Box::new(|k| std::env::var(k).ok()),
            chain_options: None,
            delivery: holdfast_watch::DeliveryConfig::default(),
        };
        let runner = Runner::start(&self.config, deps).await?;
        state.metrics.register(|r| runner.register_metrics(r));
        // Every commit wakes the live streams (the console sees alerts at once, not at the
        // streams' next poll).
        let notify = runner.shared().notify.clone();
        let streams = state.streams.clone();
        let mut wake_stop = stop.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = notify.notified() => streams.wake(),
                    _ = wake_stop.changed() => return,
                }
            }
        });
        Ok(tokio::spawn(async move {
            if let Err(e) = runner.run(stop).await {
                tracing::error!(target: "watch", error = %e, "the watch stopped");
            }
        }))
    }
}

/// Most blocks one `watch record` writes.
const MAX_RECORD_BLOCKS: u64 = 10_000;

fn record(args: &RecordArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        args.from_block <= args.to_block,
        "--from-block {} is above --to-block {}",
        args.from_block,
        args.to_block
    );
    anyhow::ensure!(
        args.to_block - args.from_block < MAX_RECORD_BLOCKS,
        "at most {MAX_RECORD_BLOCKS} blocks per recording"
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let lines = rt.block_on(async {
        let source = holdfast_chain::ChainSource::connect(holdfast_chain::SourceConfig::new(
            args.rpc.clone(),
        ))
        .await?;
        let mut out = String::new();
        for n in args.from_block..=args.to_block {
            let d = source.fetch_detail(n).await?;
            out.push_str(&serde_json::to_string(
                &holdfast_watch::cases::RecordedBlock::from(&d),
            )?);
            out.push('\n');
        }
        Ok::<_, anyhow::Error>(out)
    })?;
    let tmp = args.output.with_extension("tmp");
    std::fs::write(&tmp, lines).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &args.output)
        .with_context(|| format!("writing {}", args.output.display()))?;
    eprintln!(
        "holdfast: recorded blocks {}..={} into {}",
        args.from_block,
        args.to_block,
        args.output.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn test(
    data_dir: &DataDir,
    file: &std::path::Path,
    cases: &std::path::Path,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let config = load(file)?;
    let index = load_intel(data_dir)?;
    let intel: Arc<dyn IntelView> = Arc::new(SwapIntel(arc_swap::ArcSwap::new(index.clone())));
    let scratch = tempfile::tempdir().context("a scratch directory for the cases' stores")?;
    let chain_of = |name: Option<&str>| -> Result<ChainInfo, String> {
        let c = match name {
            Some(n) => config
                .chain(n)
                .ok_or_else(|| format!("the watch file has no chain {n}"))?,
            None => match config.chains.as_slice() {
                [one] => one,
                _ => {
                    return Err("the watch file has several chains: name one with `chain`".into());
                }
            },
        };
        Ok(ChainInfo {
            chain_id: c
                .chain_id
                .ok_or_else(|| format!("chain {} needs a chain_id to be tested", c.name))?,
            name: c.name.clone(),
            explorer: c.explorer.clone(),
        })
    };
    let mut n = 0;
    let mut fresh = || -> Result<holdfast_watch::cases::Fresh, String> {
        n += 1;
        let store: Arc<dyn Store> = Arc::new(
            holdfast_store::EmbeddedStore::open(&scratch.path().join(format!("case{n}")))
                .map_err(|e| e.to_string())?,
        );
        let rules = holdfast_watch::detect::FileRules::new(
            &config,
            intel.clone(),
            Arc::new(holdfast_watch::detect::StoreHistory::new(store.clone())),
        );
        Ok((Arc::new(rules), store))
    };
    let results = holdfast_watch::cases::run_cases(
        cases,
        index.as_ref(),
        &Units::new(),
        &chain_of,
        &mut fresh,
    )?;
    let mut failed = 0;
    for r in &results {
        if json {
            println!("{}", serde_json::to_string(r)?);
        } else if r.passed {
            println!("ok    {} ({} blocks)", r.name, r.blocks);
        } else {
            println!("FAIL  {} ({} blocks)", r.name, r.blocks);
            for (e, got) in &r.unmet {
                println!(
                    "      expected {} alert{} of rule {}{}{}, got {got}",
                    e.count,
                    if e.count == 1 { "" } else { "s" },
                    e.rule,
                    e.block
                        .map(|b| format!(" in block {b}"))
                        .unwrap_or_default(),
                    e.tx.map(|t| format!(" for tx {t}")).unwrap_or_default()
                );
            }
            for (rule, block, tx, title) in &r.unexpected {
                println!(
                    "      unexpected alert of rule {rule} in block {block}{}: {title}",
                    tx.map(|t| format!(" (tx {t})")).unwrap_or_default()
                );
            }
        }
        if !r.passed {
            failed += 1;
        }
    }
    if !json {
        println!(
            "{} case{}, {failed} failed",
            results.len(),
            if results.len() == 1 { "" } else { "s" }
        );
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
