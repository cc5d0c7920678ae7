//! `holdfast trace`: load the transfers around the seeds from the store, trace them, print the
//! freeze targets (or JSON, CSV, DOT, GraphML), optionally label the launderers in intel and
//! keep following as new blocks are stored.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use alloy_primitives::{Address, U256};
use anyhow::Context;
use clap::{Args, ValueEnum};
use holdfast_intel::DataDir;
use holdfast_store::Store;
use holdfast_trace::output::{self, Format};
use holdfast_trace::{LoadOptions, Policy, Seed, Trace, TraceOptions};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PolicyArg {
    Poison,
    Haircut,
    Fifo,
    Lifo,
    Tiho,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    Text,
    Json,
    Csv,
    Dot,
    Graphml,
}

#[derive(Debug, Args)]
pub struct TraceArgs {
    /// A theft transaction (0x + 64 hex: exactly what it moved is tainted) or the thief's
    /// address (0x + 40 hex: its outflows from --from-block on). Repeat for several thefts.
    /// Bitcoin-family (--chain bitcoin): a txid (64 hex, every output), an output
    /// (txid:vout) or an address (every output it received from --from-block on).
    #[arg(long, required = true, value_name = "ADDRESS_OR_TX")]
    pub seed: Vec<String>,
    /// Only this asset of the seeds: native/eth, or an ERC-20 token address.
    #[arg(long, value_name = "ASSET")]
    pub asset: Option<String>,
    /// At most this much per seed, in the asset's smallest unit (wei; satoshis for an output
    /// seed with --chain bitcoin).
    #[arg(long, value_name = "AMOUNT")]
    pub amount: Option<String>,
    /// Address seeds: their outflows from this block on.
    #[arg(long, default_value_t = 0)]
    pub from_block: u64,
    /// Which funds an address's outgoing transfers carry (definitions: docs/TRACE.md).
    #[arg(long, value_enum, default_value_t = PolicyArg::Haircut)]
    pub policy: PolicyArg,
    /// Most transfers between a seed and a tainted address (Bitcoin: transactions between a
    /// seed output and a tainted output).
    #[arg(long, alias = "hops", default_value_t = 10)]
    pub max_hops: u32,
    /// `evm` (the transfer store) or `bitcoin` (the UTXO index); default: the seeds' form.
    #[arg(long, value_enum)]
    pub chain: Option<crate::chain_cmd::ChainKind>,
    /// With --chain bitcoin: the network (bitcoin, litecoin-regtest, …); default: the one the
    /// index holds (and the address seeds allow).
    #[arg(long)]
    pub network: Option<String>,
    /// With --chain bitcoin: most tainted outputs kept (the trace stops growing and says so).
    #[arg(long, default_value_t = 1_000_000)]
    pub max_outputs: usize,
    /// An address that sent more transfers of an asset than this is a super-node for that
    /// asset: taint of it there is reported (capped), not followed. With --chain bitcoin: a
    /// transaction with more outputs.
    #[arg(long, default_value_t = 10_000)]
    pub fan_out_cap: usize,
    /// Most outgoing transfers read from one address to count them per asset; an address
    /// that sent more is a super-node for every asset (raise it if a hop was flooded).
    #[arg(long, default_value_t = holdfast_trace::LoadOptions::default().max_outflows_read)]
    pub max_outflows_read: usize,
    /// Haircut: drop taint shares below this many millionths of a transfer.
    #[arg(long, default_value_t = 0)]
    pub cutoff_ppm: u32,
    /// Follow taint through mixers (default: mark them and stop).
    #[arg(long)]
    pub through_mixers: bool,
    /// Follow taint through bridges (default: record the cross-chain exit and stop).
    #[arg(long)]
    pub through_bridges: bool,
    /// Chain id of the stored transfers (1 = Ethereum mainnet, 31337 = anvil); default: the
    /// only chain the store holds (an error naming them when it holds several).
    #[arg(long)]
    pub chain_id: Option<u64>,
    /// Print the whole trace as JSON (same as --format json).
    #[arg(long)]
    pub json: bool,
    #[arg(long, value_enum, default_value_t = FormatArg::Text)]
    pub format: FormatArg,
    /// Write the output here instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Store `tainted` labels for the addresses reached (trace id, policy, amounts) in the
    /// data directory's intel, so screening and the guard flag them.
    #[arg(long)]
    pub label: bool,
    /// Keep tracing as new blocks are stored (by `holdfast ingest --follow` against the same
    /// --store), printing a line the moment taint reaches a new service (with --rpc, also
    /// each payout, refund and service reached across bridges). Ctrl-C stops.
    #[arg(long)]
    pub follow: bool,
    /// With --follow: seconds between looks at the store.
    #[arg(long, default_value_t = 2)]
    pub interval: u64,
    /// An EVM node of the traced chain: the receipts of the transactions that moved taint
    /// into a bridge are read from it, THORChain deposits decoded, and the trace continued on
    /// the UTXO index in the same store (`holdfast ingest --chain bitcoin`) from THORChain's
    /// payouts. Text or JSON output.
    #[arg(long, value_name = "URL")]
    pub rpc: Option<String>,
}

impl TraceArgs {
    pub(crate) fn options(&self) -> TraceOptions {
        TraceOptions {
            policy: match self.policy {
                PolicyArg::Poison => Policy::Poison,
                PolicyArg::Haircut => Policy::Haircut,
                PolicyArg::Fifo => Policy::Fifo,
                PolicyArg::Lifo => Policy::Lifo,
                PolicyArg::Tiho => Policy::Tiho,
            },
            max_hops: self.max_hops,
            fan_out_cap: self.fan_out_cap,
            haircut_cutoff_ppm: self.cutoff_ppm,
            through_mixers: self.through_mixers,
            through_bridges: self.through_bridges,
            ..TraceOptions::default()
        }
    }

    fn seeds(&self) -> anyhow::Result<Vec<Seed>> {
        let asset = self
            .asset
            .as_deref()
            .map(holdfast_trace::parse_asset)
            .transpose()?;
        let amount = match self.amount.as_deref() {
            Some(a) => Some(a.parse::<U256>().map_err(|_| {
                anyhow::anyhow!(
                    "--amount {a:?}: expected a whole number in the asset's smallest unit (wei)"
                )
            })?),
            None => None,
        };
        self.seed
            .iter()
            .map(|s| {
                let mut seed = Seed::parse(s)?.from_block(self.from_block);
                seed.asset = asset;
                seed.amount = amount;
                Ok(seed)
            })
            .collect()
    }
}

pub fn run(
    data_dir: &DataDir,
    (store, store_args): (Arc<dyn Store>, &crate::chain_cmd::StoreArgs),
    args: &TraceArgs,
    quiet: bool,
) -> anyhow::Result<ExitCode> {
    let seeds = args.seeds()?;
    let options = args.options();
    options.validate()?;
    // Following, the chain may not be stored yet: a given chain id is taken as it is.
    let chain_id = match args.chain_id {
        Some(id) if args.follow => id,
        given => crate::chain_cmd::stored_chain(store.as_ref(), given)?,
    };
    let intel = holdfast_intel::load(Some(data_dir))
        .context("loading intel")?
        .index;
    let format = if args.json {
        FormatArg::Json
    } else {
        args.format
    };
    if args.rpc.is_some() && !args.follow && !matches!(format, FormatArg::Text | FormatArg::Json) {
        anyhow::bail!(
            "--format {format:?} with --rpc: a trace across chains is written as text or json"
        );
    }
    let bar = if quiet || args.follow {
        ProgressBar::hidden()
    } else {
        ProgressBar::new_spinner()
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} {elapsed} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    let mut seen: Vec<Address> = Vec::new();
    // Following across bridges: one node connection for every round; what crossed is
    // printed once.
    let mut reader = match (&args.rpc, args.follow) {
        (Some(rpc), true) => Some(crate::exit_reader::ExitReader::connect(
            rpc, chain_id, true,
        )?),
        _ => None,
    };
    let mut crossed: std::collections::BTreeSet<String> = Default::default();
    // The UTXO index the crossings continue on, opened once (the first round it exists).
    let mut utxo_index: Option<std::sync::Arc<dyn holdfast_store::utxo::UtxoStore>> = None;
    loop {
        let load = LoadOptions {
            max_outflows_read: args.max_outflows_read,
            ..LoadOptions::default()
        };
        let t = match trace_once(
            store.as_ref(),
            chain_id,
            &seeds,
            (&options, &load),
            &intel,
            &bar,
        ) {
            Ok(t) => t,
            // Following: the theft may not be stored yet.
            Err(e)
                if args.follow
                    && matches!(
                        e.downcast_ref::<holdfast_trace::TraceError>(),
                        Some(holdfast_trace::TraceError::UnknownSeed { .. })
                    ) =>
            {
                std::thread::sleep(Duration::from_secs(args.interval.max(1)));
                continue;
            }
            Err(e) => return Err(e),
        };
        bar.finish_and_clear();
        if args.follow {
            for target in t.targets.iter().chain(&t.exits).chain(&t.mixers) {
                if !seen.contains(&target.deposit) {
                    seen.push(target.deposit);
                    println!(
                        "holdfast: taint reached {} ({}) deposit {} in tx {} block {}: {}",
                        target.service.name,
                        target.service.category,
                        target.deposit,
                        target.first_tx,
                        target.first_block,
                        amounts(&target.amounts)
                    );
                    let _ = std::io::stdout().flush();
                }
            }
            let mut labels = args.label.then(|| t.tainted_labels());
            if let Some(reader) = reader.as_mut() {
                let mut utxo_options = options.clone();
                utxo_options.max_addresses = args.max_outputs;
                // A node or index that does not answer this round (an outage, a restart) is
                // asked again next round; what the EVM side found is printed regardless.
                let round = match &utxo_index {
                    Some(_) => Ok(()),
                    None => crate::crosschain_trace::open_index(data_dir, store_args)
                        .map(|ix| utxo_index = ix),
                }
                .and_then(|()| {
                    crate::crosschain_trace::follow(
                        (store.as_ref(), utxo_index.as_ref()),
                        reader,
                        t,
                        &intel,
                        &utxo_options,
                    )
                });
                match round {
                    Ok(x) => {
                        for line in crate::crosschain_trace::new_lines(&x, &mut crossed)? {
                            println!("{line}");
                        }
                        let _ = std::io::stdout().flush();
                        if let Some(l) = labels.as_mut() {
                            for c in &x.continued {
                                l.extend(c.tainted_labels());
                            }
                        }
                    }
                    Err(e) => {
                        eprintln!(
                            "holdfast: following across bridges failed this round (retrying in {} s): {e:#}",
                            args.interval.max(1)
                        );
                        // Opened again next round (a restarted database, a moved index).
                        utxo_index = None;
                    }
                }
            }
            if let Some(l) = labels {
                data_dir.add_imported(&l)?;
            }
            std::thread::sleep(Duration::from_secs(args.interval.max(1)));
            continue;
        }
        let mut labels = args.label.then(|| t.tainted_labels());
        let id = t.id.clone();
        match args.rpc.as_deref() {
            Some(rpc) => {
                let mut utxo_options = options.clone();
                utxo_options.max_addresses = args.max_outputs;
                bar.finish_and_clear();
                let mut reader = crate::exit_reader::ExitReader::connect(rpc, chain_id, quiet)?;
                let index = crate::crosschain_trace::open_index(data_dir, store_args)?;
                let x = crate::crosschain_trace::follow(
                    (store.as_ref(), index.as_ref()),
                    &mut reader,
                    t,
                    &intel,
                    &utxo_options,
                )?;
                // The launderers' addresses on the far side are labelled too.
                if let Some(l) = labels.as_mut() {
                    for c in &x.continued {
                        l.extend(c.tainted_labels());
                    }
                }
                let mut out = open_output(args.output.as_ref())?;
                if format == FormatArg::Json {
                    serde_json::to_writer_pretty(&mut out, &x)?;
                    writeln!(out)?;
                } else {
                    text(&x.evm, &mut out)?;
                    crate::crosschain_trace::text(&x, &mut out)?;
                }
                out.flush()?;
            }
            None => emit(&t, format, args.output.as_ref())?,
        }
        if let Some(labels) = labels {
            let new = data_dir.add_imported(&labels)?;
            eprintln!(
                "holdfast: {} tainted labels for trace {} ({new} new) stored in the data directory's intel",
                labels.len(),
                id
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
}

fn trace_once(
    store: &dyn Store,
    chain_id: u64,
    seeds: &[Seed],
    (options, load): (&TraceOptions, &LoadOptions),
    intel: &holdfast_intel::IntelIndex,
    bar: &ProgressBar,
) -> anyhow::Result<Trace> {
    bar.set_message("loading transfers around the seeds");
    let (graph, stats) =
        holdfast_trace::load_graph(store, chain_id, seeds, options, load, intel, &mut |s| {
            bar.set_message(format!(
                "loading: {} addresses, {} transfers, {} conversions",
                s.addresses_expanded, s.transfers, s.conversions
            ))
        })?;
    if stats.truncated {
        bar.suspend(|| {
            eprintln!("holdfast: the load stopped at its transfer limit: the trace is partial")
        });
    }
    if !stats.outflows_cut.is_empty() {
        let list = stats.outflows_cut_text();
        bar.suspend(|| {
            eprintln!(
                "holdfast: {} time(s) an address sent more than --fan-out-cap {} transfers of an asset, not read (taint of that asset there is reported capped; a seed's are not followed: give --from-block): {}",
                stats.outflows_cut.len(),
                options.fan_out_cap,
                list
            )
        });
    }
    let t = holdfast_trace::trace_with_progress(&graph, seeds, options, intel, &mut |n| {
        bar.set_message(format!(
            "tracing ({} policy): {n} transfers",
            options.policy
        ))
    })?;
    Ok(t)
}

fn amounts(v: &[holdfast_trace::Amount]) -> String {
    v.iter()
        .map(|a| format!("{} {} (seed {})", a.amount, a.asset, a.source))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The output file, or standard output.
pub(crate) fn open_output(path: Option<&PathBuf>) -> anyhow::Result<Box<dyn Write>> {
    Ok(match path {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => Box::new(std::io::stdout().lock()),
    })
}

fn emit(t: &Trace, format: FormatArg, path: Option<&PathBuf>) -> anyhow::Result<()> {
    let mut out = open_output(path)?;
    let f = match format {
        FormatArg::Text => return text(t, &mut out),
        FormatArg::Json => Format::Json,
        FormatArg::Csv => Format::Csv,
        FormatArg::Dot => Format::Dot,
        FormatArg::Graphml => Format::GraphMl,
    };
    output::write(t, f, &mut out)?;
    out.flush()?;
    Ok(())
}

fn text(t: &Trace, out: &mut dyn Write) -> anyhow::Result<()> {
    writeln!(
        out,
        "trace {} ({} policy, chain {}): {} addresses reached, {} transfers looked at",
        t.id, t.policy, t.chain_id, t.stats.addresses_reached, t.stats.edges_processed
    )?;
    writeln!(out, "seeded: {}", amounts(&t.seeded))?;
    if t.targets.is_empty() {
        writeln!(out, "no labelled service reached")?;
    }
    for (kind, list) in [
        ("freeze target", &t.targets),
        ("bridge exit (destination unknown on this chain)", &t.exits),
        ("mixer", &t.mixers),
    ] {
        for x in list {
            writeln!(
                out,
                "{kind}: {} ({}) deposit {}: {}; first tx {} block {}; path of {} hops",
                x.service.name,
                x.service.category,
                x.deposit,
                amounts(&x.amounts),
                x.first_tx,
                x.first_block,
                x.path.len()
            )?;
            for h in &x.path {
                writeln!(out, "{}", hop_line(h))?;
            }
        }
    }
    for a in t
        .addresses
        .iter()
        .filter(|a| a.role == holdfast_trace::Role::Capped)
    {
        writeln!(
            out,
            "super-node (not followed, {} outgoing transfers): {}: {}",
            a.out_degree,
            a.address,
            amounts(&a.received)
        )?;
    }
    for a in t
        .addresses
        .iter()
        .filter(|a| a.role == holdfast_trace::Role::Intermediate && !a.capped_assets.is_empty())
    {
        let assets: Vec<String> = a.capped_assets.iter().map(ToString::to_string).collect();
        writeln!(
            out,
            "super-node for {} (that taint not followed; the other assets' is): {}: holds {}",
            assets.join(", "),
            a.address,
            amounts(&a.held)
        )?;
    }
    if !t.stats.beyond_hops.is_empty() {
        writeln!(out, "beyond --max-hops: {}", amounts(&t.stats.beyond_hops))?;
    }
    if t.stats.truncated {
        writeln!(out, "the trace reached its address limit: partial")?;
    }
    out.flush()?;
    Ok(())
}

/// One hop of an evidence path, as the text report lists it.
pub(crate) fn hop_line(h: &holdfast_trace::Hop) -> String {
    format!(
        "    block {} tx {} {} -> {} {} {} (tainted {})",
        h.block, h.tx_hash, h.from, h.to, h.amount, h.asset, h.tainted
    )
}
