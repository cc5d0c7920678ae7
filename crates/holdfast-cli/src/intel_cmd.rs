//! `holdfast intel ...`.

use std::process::ExitCode;

use anyhow::Context;
use holdfast_intel::DataDir;
use holdfast_intel::import::{ImportFormat, ImportOptions, import_file, update_sdn};

use crate::cli::{ImportFormatArg, IntelCommand};

pub fn run(data_dir: &DataDir, cmd: IntelCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        IntelCommand::Import(a) => {
            let opts = ImportOptions {
                format: a.format.map(|f| match f {
                    ImportFormatArg::Tagpack => ImportFormat::TagPack,
                    ImportFormatArg::Csv => ImportFormat::Csv,
                }),
                source: a.source,
                category: a.category,
                actor: a.actor,
                chain: a.chain,
                confidence: a.confidence,
                name: a.name,
                reference: a.reference,
            };
            let report = import_file(data_dir, &a.file, &opts)?;
            let cats: Vec<String> = report
                .by_category
                .iter()
                .map(|(c, n)| format!("{n} {c}"))
                .collect();
            println!(
                "imported {} labels ({} new) from {} as source {:?}: {}",
                report.labels,
                report.new,
                report.path.display(),
                report.source,
                cats.join(", ")
            );
            for (cur, n) in &report.unsupported {
                println!("skipped {n} tags on {cur}: no address format for that chain in Holdfast");
            }
            println!(
                "stored in {}; a running server picks it up on SIGHUP or POST /v1/admin/reload",
                data_dir.imported_path().display()
            );
        }
        IntelCommand::Update(a) => {
            let report = update_sdn(data_dir, &a.sdn_xml)?;
            let per: Vec<String> = report
                .by_currency
                .iter()
                .map(|(c, n)| format!("{n} {c}"))
                .collect();
            println!(
                "SDN list of {}: {} digital currency addresses ({})",
                report.date_of_issue,
                report.addresses,
                per.join(", ")
            );
            println!("stored in {}", data_dir.sdn_update_path().display());
        }
        IntelCommand::Stats { json } => {
            let loaded = holdfast_intel::load(Some(data_dir)).context("loading intel")?;
            let stats = loaded.index.stats();
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({ "stats": stats, "load": loaded.report })
                    )?
                );
            } else {
                println!("{} labels on {} addresses", stats.labels, stats.addresses);
                for (source, cats) in &stats.by_source {
                    let total: usize = cats.values().sum();
                    let parts: Vec<String> = cats.iter().map(|(c, n)| format!("{c} {n}")).collect();
                    println!("  {source:<44} {total:>6}  {}", parts.join(", "));
                }
                if let Some(d) = loaded.report.sdn_update {
                    println!("sanctions: SDN update of {d} in use");
                }
                if !loaded.report.rejected.is_empty() {
                    println!(
                        "{} labels skipped (address invalid for its chain); first: {}",
                        loaded.report.rejected.len(),
                        loaded.report.rejected[0]
                    );
                }
                for (source, per) in &loaded.report.unsupported {
                    let parts: Vec<String> = per.iter().map(|(c, n)| format!("{c} {n}")).collect();
                    println!(
                        "  not indexed ({source}, chains without an address format): {}",
                        parts.join(", ")
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
