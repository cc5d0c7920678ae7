//! `holdfast trace --chain bitcoin`: UTXO taint over the UTXO index (`holdfast-trace`'s
//! `utxo`), seeded by a txid, an output (`txid:vout`) or an address; freeze targets are
//! outputs at labelled services or at clusters carrying a service label (intel joined with the
//! index's clusters, as `holdfast screen` does). Which chain a seed is for: `--chain`, else its
//! form (`0x…` is EVM; `txid:vout` and Bitcoin-family addresses are Bitcoin; 64 bare hex
//! digits are either, and refused until `--chain` says which).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use holdfast_bitcoin::{Network, address};
use holdfast_intel::ScreenOptions;
use holdfast_store::utxo::UtxoStore;
use holdfast_trace::output::Format;
use holdfast_trace::utxo::{ClusteredIntel, UtxoFinding, UtxoSeedAt, UtxoTrace, trace_utxo};

use crate::chain_cmd::{ChainKind, StoreArgs};
use crate::trace_cmd::{FormatArg, TraceArgs};

/// What a seed's form says about its chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    Evm,
    Bitcoin,
    /// 64 hex digits without `0x`: a Bitcoin txid, or an EVM transaction hash.
    Either,
    Unknown,
}

fn form(seed: &str) -> Form {
    let t = seed.trim();
    let hex64 = |s: &str| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit());
    if t.starts_with("0x") || t.starts_with("0X") {
        return Form::Evm;
    }
    if let Some((txid, vout)) = t.split_once(':')
        && hex64(txid)
        && vout.parse::<u32>().is_ok()
    {
        return Form::Bitcoin;
    }
    if hex64(t) {
        return Form::Either;
    }
    if address::networks(t).is_ok() {
        return Form::Bitcoin;
    }
    Form::Unknown
}

/// The chain the trace is on: `--chain`, else the seeds' forms, which must agree.
pub fn chain_of(args: &TraceArgs) -> anyhow::Result<ChainKind> {
    if let Some(c) = args.chain {
        return Ok(c);
    }
    let mut found = None;
    for s in &args.seed {
        let c = match form(s) {
            Form::Evm | Form::Unknown => ChainKind::Evm,
            Form::Bitcoin => ChainKind::Bitcoin,
            Form::Either => anyhow::bail!(
                "--seed {s:?}: 64 hex digits are a Bitcoin txid or an EVM transaction hash: say which with --chain bitcoin (a txid as Bitcoin shows it) or --chain evm (an EVM hash is written 0x…)"
            ),
        };
        match found {
            Some(f) if f != c => anyhow::bail!(
                "--seed: the seeds mix EVM and Bitcoin forms ({s:?} is {}): trace one chain at a time",
                if c == ChainKind::Bitcoin {
                    "Bitcoin-family"
                } else {
                    "EVM"
                }
            ),
            _ => found = Some(c),
        }
    }
    Ok(found.unwrap_or(ChainKind::Evm))
}

fn names(list: &[Network]) -> String {
    list.iter().map(|n| n.name()).collect::<Vec<_>>().join(", ")
}

/// Where a network's history is in the index: built from a node (with its UTXO set), or
/// imported from a bitcoin-etl export (transactions and spends, no coins).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    Node,
    Imported,
}

impl Source {
    pub(crate) fn id(self, n: Network) -> u64 {
        match self {
            Source::Node => n.index_id(),
            Source::Imported => n.import_id(),
        }
    }
}

/// The history the index holds of `n`: the node-built index if any, else imported history.
pub(crate) fn source_of(index: &dyn UtxoStore, n: Network) -> anyhow::Result<Option<Source>> {
    Ok(if index.head(n.index_id())?.is_some() {
        Some(Source::Node)
    } else if index.head(n.import_id())?.is_some() {
        Some(Source::Imported)
    } else {
        None
    })
}

/// The network to trace on: `--network`, else the one the address seeds allow among those the
/// index holds, else the only one the index holds; and which of its histories.
fn network_of(
    index: &dyn UtxoStore,
    args: &TraceArgs,
    addresses: &[&str],
) -> anyhow::Result<(Network, Source)> {
    if let Some(name) = &args.network {
        let n: Network = name
            .parse()
            .map_err(|e| anyhow::anyhow!("--network: {e}"))?;
        let source = source_of(index, n)?.ok_or_else(|| {
            anyhow::anyhow!(
                "--network {name}: the UTXO index holds no blocks of it: run `holdfast ingest --chain bitcoin` on such a node, or import a bitcoin-etl export"
            )
        })?;
        return Ok((n, source));
    }
    let mut held = Vec::new();
    for n in Network::ALL {
        if let Some(s) = source_of(index, n)? {
            held.push((n, s));
        }
    }
    for a in addresses {
        let allowed = address::networks(a).map_err(|e| {
            anyhow::anyhow!(
                "--seed {a:?}: expected a txid (64 hex digits), an output (txid:vout) or a Bitcoin-family address: {e}"
            )
        })?;
        held.retain(|(n, _)| allowed.contains(n));
        if held.is_empty() {
            anyhow::bail!(
                "--seed {a:?} is an address of {}, and the UTXO index holds none of their blocks: run `holdfast ingest --chain bitcoin` on such a node first",
                names(&allowed)
            );
        }
    }
    match held[..] {
        [one] => Ok(one),
        [] => anyhow::bail!(
            "the UTXO index holds no Bitcoin-family blocks: run `holdfast ingest --chain bitcoin` first (or import a bitcoin-etl export)"
        ),
        _ => anyhow::bail!(
            "the UTXO index holds {}: say which with --network",
            names(&held.iter().map(|(n, _)| *n).collect::<Vec<_>>())
        ),
    }
}

fn seeds(args: &TraceArgs, network: Network) -> anyhow::Result<Vec<UtxoSeedAt>> {
    if args.asset.is_some() {
        anyhow::bail!(
            "--asset {:?}: a Bitcoin-family trace follows the chain's own coin; omit --asset",
            args.asset.as_deref().unwrap_or_default()
        );
    }
    let amount = args
        .amount
        .as_deref()
        .map(|a| {
            a.parse::<u64>().map_err(|_| {
                anyhow::anyhow!(
                    "--amount {a:?}: expected a whole number of the smallest unit ({} has 8 decimals), at most {}",
                    network.unit(),
                    u64::MAX
                )
            })
        })
        .transpose()?;
    args.seed
        .iter()
        .map(|s| {
            let t = s.trim();
            let seed = if t.contains(':') {
                UtxoSeedAt::Output {
                    outpoint: holdfast_trace::utxo::parse_outpoint(t)?,
                    amount,
                }
            } else if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
                UtxoSeedAt::Tx(holdfast_trace::utxo::parse_txid(t)?)
            } else {
                let (_, canonical) = address::parse(t, network).map_err(|e| {
                    anyhow::anyhow!(
                        "--seed {s:?}: expected a txid (64 hex digits), an output (txid:vout) or a {network} address: {e}"
                    )
                })?;
                UtxoSeedAt::Address {
                    address: canonical,
                    from_height: args.from_block,
                }
            };
            if amount.is_some() && !matches!(seed, UtxoSeedAt::Output { .. }) {
                anyhow::bail!(
                    "--amount: only an output seed (txid:vout) takes an amount; {s:?} is not one"
                );
            }
            Ok(seed)
        })
        .collect()
}

/// Runs a Bitcoin-family trace.
pub fn run(
    data_dir: &holdfast_intel::DataDir,
    store: &StoreArgs,
    args: &TraceArgs,
) -> anyhow::Result<ExitCode> {
    if args.chain_id.is_some() {
        anyhow::bail!(
            "--chain-id: a Bitcoin-family chain is named by its network (--network), not a chain id"
        );
    }
    let index = crate::bitcoin_cmd::open_index(data_dir, store)?;
    let addresses: Vec<&str> = args
        .seed
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.contains(':') && s.len() != 64)
        .collect();
    let (network, source) = network_of(&*index, args, &addresses)?;
    let seeds = seeds(args, network)?;
    let mut options = args.options();
    options.max_addresses = args.max_outputs;
    let intel = holdfast_intel::load(Some(data_dir))
        .context("loading intel")?
        .index;
    let clusters = crate::bitcoin_clusters::UtxoClusters {
        index: index.clone(),
    };
    let classifier = ClusteredIntel {
        intel: &intel,
        clusters: Some(&clusters),
        options: ScreenOptions::today(),
    };
    if args.follow {
        return follow(
            data_dir,
            args,
            (&*index, source, network),
            &classifier,
            &seeds,
            &options,
        );
    }
    let t = trace_utxo(
        &*index,
        &classifier,
        source.id(network),
        network.name(),
        &seeds,
        &options,
    )?;
    let format = if args.json {
        FormatArg::Json
    } else {
        args.format
    };
    emit(&t, network, format, args.output.as_ref())?;
    if source == Source::Imported {
        eprintln!(
            "holdfast: traced over imported {} history (no UTXO set): an output not spent within the imported blocks is counted as spender-unknown, not at rest",
            network.name()
        );
    }
    if args.label {
        let labels = t.tainted_labels();
        let new = data_dir.add_imported(&labels)?;
        eprintln!(
            "holdfast: {} tainted labels for trace {} ({new} new) stored in the data directory's intel",
            labels.len(),
            t.id
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `--follow`: the trace again every `--interval` seconds over what the index holds then
/// (`holdfast ingest --chain bitcoin --follow` writing it beside, on a shared store), with a
/// line the first time taint reaches each service, mixer or exit; with `--label`, the
/// launderers' addresses labelled each round. Until the seed is in the index, it waits for it.
fn follow(
    data_dir: &holdfast_intel::DataDir,
    args: &TraceArgs,
    (index, source, network): (&dyn UtxoStore, Source, Network),
    classifier: &ClusteredIntel<'_>,
    seeds: &[UtxoSeedAt],
    options: &holdfast_trace::TraceOptions,
) -> anyhow::Result<ExitCode> {
    let mut seen: std::collections::BTreeSet<(String, String)> = Default::default();
    loop {
        let t = match trace_utxo(
            index,
            classifier,
            source.id(network),
            network.name(),
            seeds,
            options,
        ) {
            Ok(t) => t,
            // The theft may not be in the index yet.
            Err(holdfast_trace::TraceError::UnknownSeed { .. }) => {
                std::thread::sleep(std::time::Duration::from_secs(args.interval.max(1)));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        for (kind, list) in [
            ("taint reached", &t.targets),
            ("taint reached a mixer:", &t.mixers),
            ("taint left by", &t.exits),
        ] {
            for x in list {
                if !seen.insert((kind.to_owned(), x.at.clone())) {
                    continue;
                }
                let service = x
                    .service
                    .as_ref()
                    .map(|s| format!("{} ({}) ", s.name, s.category))
                    .unwrap_or_default();
                println!(
                    "holdfast: {kind} {service}{} at {} block {}: {} tainted",
                    x.address.as_deref().unwrap_or("(no address)"),
                    x.at,
                    x.height,
                    coins(x.tainted, network)
                );
            }
        }
        let _ = std::io::stdout().flush();
        if args.label {
            data_dir.add_imported(&t.tainted_labels())?;
        }
        std::thread::sleep(std::time::Duration::from_secs(args.interval.max(1)));
    }
}

fn emit(
    t: &UtxoTrace,
    network: Network,
    format: FormatArg,
    path: Option<&PathBuf>,
) -> anyhow::Result<()> {
    let mut out = crate::trace_cmd::open_output(path)?;
    let f = match format {
        FormatArg::Text => return text(t, network, &mut out),
        FormatArg::Json => Format::Json,
        FormatArg::Csv => Format::Csv,
        FormatArg::Dot => Format::Dot,
        FormatArg::Graphml => Format::GraphMl,
    };
    holdfast_trace::utxo::write_utxo(t, f, &mut out)?;
    out.flush()?;
    Ok(())
}

pub(crate) fn coins(v: u64, network: Network) -> String {
    format!(
        "{}.{:08} {}",
        v / 100_000_000,
        v % 100_000_000,
        network.unit()
    )
}

/// One output of a UTXO evidence path, as the text report lists it.
pub(crate) fn utxo_hop_line(h: &holdfast_trace::utxo::UtxoHop, network: Network) -> String {
    format!(
        "    block {} {} {} {} (tainted {})",
        h.height,
        h.outpoint,
        h.address.as_deref().unwrap_or("(no address)"),
        coins(h.value, network),
        coins(h.tainted, network)
    )
}

pub(crate) fn text(t: &UtxoTrace, network: Network, out: &mut dyn Write) -> anyhow::Result<()> {
    let c = |v| coins(v, network);
    writeln!(
        out,
        "trace {} ({} policy, {} up to block {}): {} tainted outputs, {} transactions",
        t.id, t.policy, t.network, t.head_height, t.stats.outputs, t.stats.transactions
    )?;
    writeln!(out, "seeded: {}", c(t.seeded))?;
    if t.targets.is_empty() {
        writeln!(out, "no labelled service reached")?;
    }
    let finding = |out: &mut dyn Write, kind: &str, x: &UtxoFinding| -> anyhow::Result<()> {
        let service = x
            .service
            .as_ref()
            .map(|s| format!("{} ({}) ", s.name, s.category))
            .unwrap_or_default();
        let via = x
            .via_member
            .as_ref()
            .map(|m| format!(" (in the cluster of {m}, which carries the label)"))
            .unwrap_or_default();
        writeln!(
            out,
            "{kind}: {service}{} {}{via}: {} tainted; block {}; path of {} outputs",
            x.at,
            x.address.as_deref().unwrap_or(""),
            c(x.tainted),
            x.height,
            x.path.len()
        )?;
        for h in &x.path {
            writeln!(out, "{}", utxo_hop_line(h, network))?;
        }
        Ok(())
    };
    for x in &t.targets {
        finding(out, "freeze target", x)?;
    }
    for x in &t.exits {
        finding(out, "bridge exit", x)?;
    }
    for x in &t.mixers {
        finding(out, "mixer (not followed)", x)?;
    }
    for x in &t.capped {
        finding(out, "fan-out over the cap (not followed)", x)?;
    }
    let s = &t.stats;
    writeln!(
        out,
        "lost to fees {}; unspent (at rest) {}; beyond --max-hops {}; burned (OP_RETURN) {}",
        c(s.lost_to_fees),
        c(s.at_rest),
        c(s.beyond_hops),
        c(s.burned)
    )?;
    if s.spender_unknown > 0 {
        writeln!(
            out,
            "{} on spent outputs whose spender the index does not hold (rebuild an index written before the spent-by index)",
            c(s.spender_unknown)
        )?;
    }
    if s.truncated {
        writeln!(
            out,
            "the trace reached its output limit (--max-outputs): partial; {} not followed",
            c(s.truncated_taint)
        )?;
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_forms() {
        let txid = "a".repeat(64);
        assert_eq!(form(&format!("0x{txid}")), Form::Evm);
        assert_eq!(form(&format!("{txid}:1")), Form::Bitcoin);
        assert_eq!(form(&txid), Form::Either);
        assert_eq!(
            form("bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq"),
            Form::Bitcoin
        );
        assert_eq!(form("1BoatSLRHtKNngkdXEeobR76b53LETtpyT"), Form::Bitcoin);
        assert_eq!(form("nonsense"), Form::Unknown);
    }
}
