//! Arguments (clap) and dispatch.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use holdfast_intel::DataDir;
use holdfast_primitives::{Category, Chain, Confidence, Date, RiskLevel};

use crate::chain_cmd::{self, ImportTransfersArgs, IngestArgs, StoreArgs, TransfersArgs};
use crate::gate_cmd::{self, AuditCommand};
use crate::guard_cmd::{self, GuardCommand, PolicyCommand};
use crate::{intel_cmd, screen_cmd};

/// Holdfast: checks and delays for crypto — screening, guard, watch, trace.
#[derive(Debug, Parser)]
#[command(name = "holdfast", version, about, propagate_version = true)]
pub struct Cli {
    /// Where Holdfast keeps its state (imported intel, stores, audit logs).
    /// Default: $XDG_DATA_HOME/holdfast, else ~/.local/share/holdfast.
    #[arg(long, global = true, env = "HOLDFAST_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Only print errors on stderr (logging; HOLDFAST_LOG overrides).
    #[arg(long, short, global = true)]
    pub quiet: bool,

    #[command(flatten)]
    pub store: StoreArgs,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Screen addresses against sanctions, DPRK attributions and labelled services.
    ///
    /// Exit status like grep: 0 if no address reaches --fail-on, 1 if one does, 2 on error
    /// (then no verdict is printed, so nothing is reported as clean).
    Screen(ScreenArgs),
    /// Manage threat intel: import lists, update sanctions, show counts.
    #[command(subcommand)]
    Intel(IntelCommand),
    /// Run the HTTP API on embedded defaults.
    Serve(ServeArgs),
    /// Ingest an EVM chain's transfers into the store, or a Bitcoin-family chain into the UTXO
    /// index (`--chain bitcoin`): backfill, resume from the checkpoint, follow the head,
    /// unwind reorgs.
    Ingest(IngestArgs),
    /// List the stored transfers of an address, in block order.
    Transfers(TransfersArgs),
    /// Import exported chain data.
    #[command(subcommand)]
    Import(ImportCommand),
    /// The UTXO index's address clusters (common-input ownership): `clusters rebuild
    /// --chain bitcoin` computes them again from the stored transactions.
    #[command(subcommand)]
    Clusters(crate::clusters_cmd::ClustersCommand),
    /// Follow stolen funds through the stored transfers to the service deposits that can be
    /// frozen (poison, haircut, FIFO, LIFO or TIHO taint).
    Trace(crate::trace_cmd::TraceArgs),
    /// Decide on exact payloads before they are signed.
    #[command(subcommand)]
    Guard(GuardCommand),
    /// Validate a guard policy, or run its test cases.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// The guard service's hash-chained audit log: verify it, export it.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// A local chain with a real Safe co-signed by Holdfast and a hot wallet it holds;
    /// normal traffic next to a scripted Lazarus-style attack (the Bybit DELEGATECALL, a
    /// drained-key burst, a payment to a sanctioned address). Leaves the audit log in the
    /// data directory.
    Demo,
    /// Follow chains in real time and raise alerts within a block on thefts (critical
    /// storage changes, drains, grants, dangerous counterparties, poisoning, stolen funds
    /// reaching an exchange); deliver them to sinks and start the responses. `watch check`
    /// validates a watch file, `watch replay` backtests it on stored history, `watch cursors`
    /// and `watch forget-sink` show and clear the sinks' stored delivery cursors.
    Watch(crate::watch_cmd::WatchArgs),
}

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Transfers from a blockchain-etl CSV export (token_transfers, traces, transactions), or
    /// with `--chain bitcoin` a bitcoin-etl export (transactions.json and --blocks blocks.json).
    Transfers(ImportTransfersArgs),
}

#[derive(Debug, Args)]
pub struct ScreenArgs {
    /// Addresses to screen.
    #[arg(
        value_name = "ADDRESS",
        required_unless_present = "file",
        conflicts_with = "file"
    )]
    pub addresses: Vec<String>,
    /// Screen every address of a file (one per line, or CSV with an `address` column).
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// With --file: where to write results (default: standard output).
    #[arg(long, short, value_name = "FILE", requires = "file")]
    pub output: Option<PathBuf>,
    /// With --file: output format.
    #[arg(long, value_enum, default_value_t = BatchFormat::Csv, requires = "file")]
    pub format: BatchFormat,
    /// Validate addresses for this chain and count only labels that apply on it
    /// (name or ticker: ethereum/eth, bitcoin/btc, tron/trx, ...).
    #[arg(long)]
    pub chain: Option<Chain>,
    /// Judge list membership on this day (YYYY-MM-DD; default today).
    #[arg(long, value_name = "DATE")]
    pub as_of: Option<Date>,
    /// Lowest risk level that makes the exit status 1.
    #[arg(long, default_value = "high", value_name = "LEVEL")]
    pub fail_on: RiskLevel,
    /// Print one JSON verdict per line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BatchFormat {
    Csv,
    Jsonl,
}

#[derive(Debug, Subcommand)]
pub enum IntelCommand {
    /// Import a GraphSense TagPack (YAML) or an address list (CSV or one per line).
    /// Imported labels persist in the data directory; every later command and `serve` use them.
    Import(ImportArgs),
    /// Read OFAC's SDN advanced XML (SDN_ADVANCED.XML) as the current sanctions state.
    Update(UpdateArgs),
    /// Label counts per source and category.
    Stats {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    pub file: PathBuf,
    /// File format (default: from the extension: .yaml/.yml TagPack, .csv/.txt list).
    #[arg(long, value_enum)]
    pub format: Option<ImportFormatArg>,
    /// Category of every label (required for lists; overrides a TagPack's).
    #[arg(long)]
    pub category: Option<Category>,
    /// Source name shown with every label (default: import:<file name>).
    #[arg(long)]
    pub source: Option<String>,
    /// Actor id (e.g. lazarusgroup).
    #[arg(long)]
    pub actor: Option<String>,
    /// Chain of every address (default: inferred from each address's format; EVM addresses
    /// then apply to every EVM chain).
    #[arg(long)]
    pub chain: Option<Chain>,
    /// Confidence on the TagPack scale: a name (authority_data, service_data, web_crawl, ...)
    /// or 0-100. Default for lists: unknown (5).
    #[arg(long)]
    pub confidence: Option<Confidence>,
    /// Name of every label (e.g. the incident).
    #[arg(long)]
    pub name: Option<String>,
    /// Reference of every label (e.g. the press release URL).
    #[arg(long)]
    pub reference: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ImportFormatArg {
    Tagpack,
    Csv,
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// Path to SDN_ADVANCED.XML as published by OFAC's Sanctions List Service.
    #[arg(long, value_name = "FILE")]
    pub sdn_xml: PathBuf,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on. Loopback by default: put a TLS-terminating proxy in front to
    /// expose it.
    #[arg(long, default_value = "127.0.0.1:8080", env = "HOLDFAST_LISTEN")]
    pub listen: SocketAddr,
    /// File holding the admin token for POST /v1/admin/reload (or set HOLDFAST_ADMIN_TOKEN).
    /// Without one the admin endpoints are disabled.
    #[arg(long, value_name = "FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// Run the guard service too (`/v1/guard/...`): its configuration file (policy, node,
    /// signing key, API tokens with roles). State: the embedded store in the data directory,
    /// or PostgreSQL with --store.
    #[arg(long, value_name = "FILE", env = "HOLDFAST_GUARD_CONFIG")]
    pub guard_config: Option<PathBuf>,
    /// Also listen here as a JSON-RPC firewall in front of the guard's node (needs
    /// --guard-config with gate.rpc): sends (eth_sendRawTransaction, eth_sendTransaction and
    /// their …Sync variants) are decided, a list of read methods is forwarded, everything else
    /// (signing, unsigned sends, node administration, unknown methods) is refused.
    #[arg(long, value_name = "ADDR", requires = "guard_config")]
    pub firewall_listen: Option<SocketAddr>,
    /// Forward this read method through the firewall too (repeatable), e.g.
    /// debug_traceTransaction; a method that signs, sends or administers the node is refused.
    #[arg(
        long = "firewall-allow-method",
        value_name = "METHOD",
        requires = "firewall_listen"
    )]
    pub firewall_allow_methods: Vec<String>,
    /// Run the watch too (`holdfast watch --config` inside the server): its watch file. Its
    /// alerts are served at /v1/alerts (list, acknowledge, live stream), its metrics at
    /// /metrics; with --guard-config its `freeze` response freezes in-process, and its
    /// `label` response reloads the server's intel at once.
    #[arg(long, value_name = "FILE", env = "HOLDFAST_WATCH_CONFIG")]
    pub watch_config: Option<PathBuf>,
    /// Serve traces of the transfer store (the console's trace page, /console/trace): opens
    /// --store, or the embedded store in the data directory (no other process may then open
    /// it; with a PostgreSQL store `holdfast ingest --follow` keeps writing). With
    /// --watch-config the watch's transfer store is used, with or without this flag.
    #[arg(long)]
    pub trace: bool,
    /// Screen Bitcoin and Litecoin addresses with their clusters (common-input ownership)
    /// from the UTXO index (`holdfast ingest --chain bitcoin`): --store, or the embedded index
    /// in the data directory (no other process may then open it). Without it, such verdicts
    /// say that no UTXO index is configured.
    #[arg(long)]
    pub clusters: bool,
    /// How long a web console session lasts (the console is at / with --guard-config; its
    /// users sign in with an API token), e.g. 8h, 30m, 90s.
    #[arg(long, value_name = "DURATION", default_value = "8h", value_parser = console_ttl)]
    pub console_session_ttl: std::time::Duration,
    /// Mark the console's session cookie `Secure`: set it when the console is reached over
    /// TLS (a TLS-terminating proxy in front).
    #[arg(long)]
    pub console_secure_cookie: bool,
    /// A reverse proxy in front of the server (an IP address; repeat for several): requests
    /// it forwards count as from the client its `X-Forwarded-For` names (sign-in bounds per
    /// client). From any other peer the header is ignored.
    #[arg(long, value_name = "IP")]
    pub trusted_proxy: Vec<std::net::IpAddr>,
    /// Requests per second per guard API token.
    #[arg(long, default_value_t = 2000.0)]
    pub guard_rate: f64,
    /// Most client connections open at once (API and firewall together); more wait to be
    /// accepted. Lowered to fit the open-file limit.
    #[arg(long, value_name = "N", default_value_t = holdfast_server::serve::DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// Seconds a client has to send a request head, counted from when the server waits for
    /// it; also how long an idle kept-alive connection stays open.
    #[arg(long, value_name = "SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub header_timeout: u64,
    /// Seconds a client has to send a whole request body.
    #[arg(long, value_name = "SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub body_timeout: u64,
    /// Seconds a connection stays open while its client reads nothing of an answer.
    #[arg(long, value_name = "SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub write_timeout: u64,
}

fn console_ttl(s: &str) -> Result<std::time::Duration, String> {
    match holdfast_guard::units::parse_duration(s) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err("a session must last more than 0 s".to_owned()),
        Err(e) => Err(e.to_string()),
    }
}

/// The default data directory: `$XDG_DATA_HOME/holdfast`, else `~/.local/share/holdfast`.
fn default_data_dir() -> anyhow::Result<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|x| !x.is_empty()) {
        return Ok(PathBuf::from(x).join("holdfast"));
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .context("no data directory: set --data-dir, HOLDFAST_DATA_DIR or HOME")?;
    Ok(PathBuf::from(home).join(".local/share/holdfast"))
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let data_dir = DataDir::new(match cli.data_dir {
        Some(d) => d,
        None => default_data_dir()?,
    });
    match cli.command {
        Command::Screen(args) => screen_cmd::run(&data_dir, &cli.store, &args),
        Command::Intel(cmd) => intel_cmd::run(&data_dir, cmd),
        Command::Serve(args) => serve(data_dir, &cli.store, args),
        Command::Ingest(args) if args.chain == chain_cmd::ChainKind::Bitcoin => {
            crate::bitcoin_cmd::ingest(&data_dir, &cli.store, &args, cli.quiet)
        }
        Command::Ingest(args) => chain_cmd::ingest(
            chain_cmd::open_store(&data_dir, &cli.store)?,
            &args,
            cli.quiet,
        ),
        Command::Transfers(args) if args.chain == chain_cmd::ChainKind::Bitcoin => {
            crate::bitcoin_cmd::transfers(&data_dir, &cli.store, &args)
        }
        Command::Transfers(args) => {
            chain_cmd::transfers(chain_cmd::open_store(&data_dir, &cli.store)?, &args)
        }
        Command::Clusters(cmd) => crate::clusters_cmd::run(&data_dir, &cli.store, cmd, cli.quiet),
        Command::Import(ImportCommand::Transfers(args))
            if args.chain == chain_cmd::ChainKind::Bitcoin =>
        {
            crate::bitcoin_cmd::import(&data_dir, &cli.store, &args)
        }
        Command::Import(ImportCommand::Transfers(args)) => {
            chain_cmd::import_transfers(chain_cmd::open_store(&data_dir, &cli.store)?, &args)
        }
        Command::Trace(args) => match crate::bitcoin_trace::chain_of(&args)? {
            chain_cmd::ChainKind::Bitcoin => {
                crate::bitcoin_trace::run(&data_dir, &cli.store, &args)
            }
            chain_cmd::ChainKind::Evm => crate::trace_cmd::run(
                &data_dir,
                (chain_cmd::open_store(&data_dir, &cli.store)?, &cli.store),
                &args,
                cli.quiet,
            ),
        },
        Command::Guard(GuardCommand::Check(args)) => guard_cmd::check(&data_dir, &cli.store, &args),
        Command::Policy(cmd) => guard_cmd::policy(&data_dir, cmd),
        Command::Audit(cmd) => gate_cmd::audit(&data_dir, &cli.store, &cmd),
        Command::Demo => crate::demo_cmd::run(&data_dir),
        Command::Watch(args) => crate::watch_cmd::run(&data_dir, &cli.store, args),
    }
}

/// Timeouts and the connection cap from the flags, the cap lowered to fit the open-file
/// limit (raised to its hard limit first).
fn serve_limits(args: &ServeArgs) -> holdfast_server::Limits {
    let files = crate::raise_open_file_limit();
    let cap = holdfast_server::connection_cap(args.max_connections, files);
    if cap < args.max_connections {
        tracing::warn!(target: "serve", wanted = args.max_connections, cap, open_file_limit = files,
            "the open-file limit allows fewer connections than --max-connections; capping");
    }
    holdfast_server::Limits::new(
        std::time::Duration::from_secs(args.header_timeout),
        std::time::Duration::from_secs(args.body_timeout),
        std::time::Duration::from_secs(args.write_timeout),
        cap,
    )
    .with_trusted_proxies(args.trusted_proxy.clone())
}

fn serve(
    data_dir: DataDir,
    store: &chain_cmd::StoreArgs,
    args: ServeArgs,
) -> anyhow::Result<ExitCode> {
    let token = match &args.admin_token_file {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .with_context(|| format!("reading admin token file {}", p.display()))?
                .trim()
                .to_owned(),
        ),
        None => std::env::var("HOLDFAST_ADMIN_TOKEN").ok(),
    };
    let reads =
        holdfast_server::firewall::methods::ReadMethods::with_extra(&args.firewall_allow_methods)?;
    let limits = serve_limits(&args);
    let dir = data_dir.clone();
    let loader: Arc<holdfast_server::Loader> = Arc::new(move || holdfast_intel::load(Some(&dir)));
    let started = std::time::Instant::now();
    let state = holdfast_server::AppState::new(loader, token)
        .context("loading intel")?
        .with_limits(limits.clone())
        .with_sessions(args.console_session_ttl, args.console_secure_cookie);
    {
        let intel = state.intel.load();
        tracing::info!(target: "serve", labels = intel.index.label_count(), addresses = intel.index.address_count(),
            rejected = intel.report.rejected.len(), ms = started.elapsed().as_millis() as u64, data_dir = %data_dir.root().display(), "intel loaded");
    }
    // The watch's stores are opened here and their last handles dropped outside the runtime
    // (a PostgreSQL client blocks when dropped).
    let watch = match &args.watch_config {
        Some(path) => Some(crate::watch_cmd::InServer::open(&data_dir, store, path)?),
        None => None,
    };
    let _keep = watch
        .as_ref()
        .map(|w| (w.transfers.clone(), w.watch.clone()));
    let state = match &watch {
        Some(w) => state
            .with_watch(w.watch.clone())
            .with_transfers(w.transfers.clone()),
        None if args.trace => state.with_transfers(chain_cmd::open_store(&data_dir, store)?),
        None => state,
    };
    let state = if args.clusters {
        match crate::bitcoin_clusters::UtxoClusters::configured(&data_dir, store)? {
            Some(c) => state.with_clusters(Arc::new(c)),
            None => anyhow::bail!(
                "--clusters: no UTXO index in {} (run `holdfast ingest --chain bitcoin` first, or pass --store)",
                data_dir.root().join("store/utxo").display()
            ),
        }
    } else {
        state
    };
    // Dropped outside the runtime, as the watch's (a PostgreSQL client blocks when dropped).
    let _keep_transfers = state.transfers.clone();
    let _keep_clusters = state.clusters.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let store = store.clone();
    rt.block_on(async move {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stop_rx_watch = stop_rx.clone();
        let stopped = move || {
            let mut rx = stop_rx.clone();
            async move {
                let _ = rx.wait_for(|s| *s).await;
            }
        };
        let mut state = state;
        let mut tasks = Vec::new();
        if let Some(cfg) = &args.guard_config {
            let gate = gate_cmd::build_gate(&data_dir, &store, cfg).await?;
            state = state.with_gate(gate.clone(), args.guard_rate);
            tasks.push(tokio::spawn(gate.clone().run(stopped())));
            if let Some(addr) = args.firewall_listen {
                let upstream = gate
                    .config()
                    .rpc
                    .clone()
                    .context("--firewall-listen needs gate.rpc (the node to protect) in the guard configuration")?;
                let fw = holdfast_server::firewall::Firewall::new(gate.clone(), upstream)
                    .with_reads(reads);
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding the firewall on {addr}"))?;
                eprintln!("holdfast: JSON-RPC firewall on http://{}", listener.local_addr()?);
                let stop = stopped();
                let limits = limits.clone();
                tasks.push(tokio::spawn(async move {
                    if let Err(e) = holdfast_server::firewall::serve(listener, fw, limits, stop).await {
                        tracing::error!(target: "server::firewall", error = %e, "firewall stopped");
                    }
                }));
            }
        }
        if let Some(w) = watch {
            let task = w
                .start(&data_dir, &state, state.gate.clone(), stop_rx_watch.clone())
                .await
                .context("starting the watch")?;
            tasks.push(task);
        }
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("binding {}", args.listen))?;
        eprintln!(
            "holdfast: serving on http://{} (Ctrl-C to stop; SIGHUP reloads intel)",
            listener.local_addr()?
        );
        let served = holdfast_server::serve(listener, state, async move {
            let _ = tokio::signal::ctrl_c().await;
            let _ = stop_tx.send(true);
        })
        .await
        .context("serving");
        for t in tasks {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), t).await;
        }
        served
    })?;
    Ok(ExitCode::SUCCESS)
}
