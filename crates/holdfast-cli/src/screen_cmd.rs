//! `holdfast screen`.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use holdfast_intel::cluster::{ClusterScreen, ClusterSource};
use holdfast_intel::{DataDir, IntelIndex, ScreenOptions, Verdict};
use holdfast_primitives::{Chain, Date, RiskLevel};
use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::{BatchFormat, ScreenArgs};

pub fn run(
    data_dir: &DataDir,
    store: &crate::chain_cmd::StoreArgs,
    args: &ScreenArgs,
) -> anyhow::Result<ExitCode> {
    let options = ScreenOptions {
        chain: args.chain,
        as_of: args.as_of.unwrap_or_else(Date::today),
    };
    let inputs: Vec<(String, String)> = match &args.file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            holdfast_intel::sources::csv_list::parse(&text, &path.display().to_string())?
                .into_iter()
                .map(|l| (format!("{}:{}", path.display(), l.line), l.address))
                .collect()
        }
        None => args
            .addresses
            .iter()
            .map(|a| (String::new(), a.clone()))
            .collect(),
    };
    // Validate everything first: on any error, print no verdict at all (exit 2), so that
    // nothing can be mistaken for a clean result.
    let bad: Vec<String> = inputs
        .iter()
        .filter_map(|(where_, a)| {
            holdfast_intel::address::parse(a, options.chain)
                .err()
                .map(|e| {
                    if where_.is_empty() {
                        format!("{e}")
                    } else {
                        format!("{where_}: {e}")
                    }
                })
        })
        .collect();
    if !bad.is_empty() {
        for b in bad.iter().take(20) {
            eprintln!("error: {b}");
        }
        if bad.len() > 20 {
            eprintln!("error: ... and {} more invalid addresses", bad.len() - 20);
        }
        eprintln!(
            "holdfast: {} invalid address(es); no verdict printed",
            bad.len()
        );
        return Ok(ExitCode::from(2));
    }
    let loaded = holdfast_intel::load(Some(data_dir)).context("loading intel")?;
    // Shipped labels on chains without an address format (Avalanche X-chain, ...) or with
    // broken checksums are skipped; `holdfast intel stats --json` lists them.
    for r in &loaded.report.rejected {
        tracing::debug!(target: "intel::load", "skipped label: {r}");
    }
    let index = loaded.index;
    // A Bitcoin or Litecoin address gets its cluster in the UTXO index, if one is configured
    // (opened only then), one by one or in a batch.
    let bitcoin = inputs.iter().any(|(_, a)| {
        holdfast_intel::address::parse(a, options.chain).is_ok_and(|p| {
            p.chains
                .iter()
                .any(|c| matches!(c, Chain::Bitcoin | Chain::Litecoin))
        })
    });
    let clusters: Option<Box<dyn ClusterSource>> = if !bitcoin {
        None
    } else {
        match crate::bitcoin_clusters::UtxoClusters::configured(data_dir, store) {
            Ok(c) => c.map(|c| Box::new(c) as Box<dyn ClusterSource>),
            // An explicit --store that cannot be opened is an error; the embedded index held
            // by another process (a follower) is a note in each verdict.
            Err(e) if store.store.is_some() => return Err(e),
            Err(e) => Some(Box::new(crate::bitcoin_clusters::Unreadable(format!(
                "{e:#}"
            )))),
        }
    };
    let clusters = clusters.as_deref();
    let worst = match &args.file {
        Some(_) => screen_file(&index, &inputs, &options, clusters, args)?,
        None => screen_args(&index, &inputs, &options, clusters, args.json)?,
    };
    Ok(if worst >= args.fail_on && worst > RiskLevel::None {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn screen_args(
    index: &IntelIndex,
    inputs: &[(String, String)],
    options: &ScreenOptions,
    clusters: Option<&dyn ClusterSource>,
    json: bool,
) -> anyhow::Result<RiskLevel> {
    let mut out = std::io::stdout().lock();
    let mut worst = RiskLevel::None;
    for (_, a) in inputs {
        let v = index.screen_clustered(a, options, clusters)?;
        worst = worst.max(v.risk);
        if json {
            serde_json::to_writer(&mut out, &v)?;
            writeln!(out)?;
        } else {
            print_human(&mut out, &v)?;
        }
    }
    Ok(worst)
}

fn print_human(out: &mut impl Write, v: &Verdict) -> std::io::Result<()> {
    let chains = if v.chains.len() > 3 {
        format!(
            "{} chains ({}, {}, ...)",
            v.chains.len(),
            v.chains[0],
            v.chains[1]
        )
    } else {
        v.chains
            .iter()
            .map(|c| c.name())
            .collect::<Vec<_>>()
            .join(", ")
    };
    writeln!(
        out,
        "{}  {}  [{}; {}]",
        v.address,
        v.risk.name().to_uppercase(),
        v.format.name(),
        chains
    )?;
    if let Some(ClusterScreen::Clustered(c)) = &v.cluster {
        writeln!(
            out,
            "  cluster {} on {}: {} addresses{} ({})",
            c.root,
            c.network,
            c.size,
            if c.complete {
                String::new()
            } else {
                format!(", {} screened", c.screened)
            },
            c.heuristic
        )?;
    }
    for r in &v.reasons {
        writeln!(out, "  - {r}")?;
    }
    Ok(())
}

fn screen_file(
    index: &IntelIndex,
    inputs: &[(String, String)],
    options: &ScreenOptions,
    clusters: Option<&dyn ClusterSource>,
    args: &ScreenArgs,
) -> anyhow::Result<RiskLevel> {
    let sink: Box<dyn Write> = match &args.output {
        Some(p) => {
            Box::new(std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?)
        }
        None => Box::new(std::io::stdout().lock()),
    };
    let out = std::io::BufWriter::new(sink);
    let bar = ProgressBar::new(inputs.len() as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} screening [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut sink = match args.format {
        BatchFormat::Csv => {
            let mut w = csv::Writer::from_writer(out);
            w.write_record([
                "input",
                "address",
                "risk",
                "categories",
                "sources",
                "names",
                "reason",
                "cluster",
            ])?;
            Sink::Csv(Box::new(w))
        }
        BatchFormat::Jsonl => Sink::Jsonl(out),
    };
    let mut worst = RiskLevel::None;
    let mut counts = std::collections::BTreeMap::<RiskLevel, usize>::new();
    for (i, (_, a)) in inputs.iter().enumerate() {
        let v = index.screen_clustered(a, options, clusters)?;
        worst = worst.max(v.risk);
        *counts.entry(v.risk).or_default() += 1;
        match &mut sink {
            Sink::Csv(w) => {
                let active: Vec<_> = v.labels.iter().filter(|l| l.active).collect();
                let join = |f: &dyn Fn(&holdfast_intel::LabelView) -> Option<String>| {
                    let mut xs: Vec<String> = active.iter().filter_map(|l| f(l)).collect();
                    xs.sort();
                    xs.dedup();
                    xs.join("; ")
                };
                w.write_record([
                    v.input.as_str(),
                    v.address.as_str(),
                    v.risk.name(),
                    &join(&|l| Some(l.category.name().to_owned())),
                    &join(&|l| Some(l.source.clone())),
                    &join(&|l| l.name.clone()),
                    v.reasons.first().map_or("", String::as_str),
                    &cluster_cell(v.cluster.as_ref()),
                ])?;
            }
            Sink::Jsonl(out) => {
                serde_json::to_writer(&mut *out, &v)?;
                writeln!(out)?;
            }
        }
        if i % 1024 == 0 {
            bar.set_position(i as u64);
        }
    }
    match sink {
        Sink::Csv(mut w) => w.flush()?,
        Sink::Jsonl(mut out) => out.flush()?,
    }
    bar.finish_and_clear();
    let summary: Vec<String> = counts
        .iter()
        .rev()
        .map(|(r, n)| format!("{n} {r}"))
        .collect();
    eprintln!(
        "holdfast: screened {} addresses: {}",
        inputs.len(),
        summary.join(", ")
    );
    Ok(worst)
}

enum Sink {
    Csv(Box<csv::Writer<std::io::BufWriter<Box<dyn Write>>>>),
    Jsonl(std::io::BufWriter<Box<dyn Write>>),
}

/// The CSV batch's `cluster` column: the cluster and what it makes the address, in words
/// (empty for an address of a chain without clusters).
fn cluster_cell(c: Option<&ClusterScreen>) -> String {
    match c {
        None => String::new(),
        Some(ClusterScreen::Unavailable { note }) => format!("unavailable: {note}"),
        Some(ClusterScreen::Clustered(c)) => {
            let mut cell = format!("{} on {} ({} addresses)", c.root, c.network, c.size);
            for i in &c.inherited {
                cell.push_str(&format!(
                    "; inherits {} ({}) from member {}",
                    i.label.category.name(),
                    i.label.name.as_deref().unwrap_or(&i.label.source),
                    i.member
                ));
            }
            cell
        }
    }
}
