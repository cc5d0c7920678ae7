//! `holdfast watch cursors` and `holdfast watch forget-sink`: the sinks' stored delivery
//! cursors against a watch file (`holdfast_watch::cursors`).

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use holdfast_intel::DataDir;
use holdfast_store::watch::WatchStore;

use super::{load, open_watch_store};
use crate::chain_cmd::StoreArgs;

/// The watch store for `cursors` and `forget-sink`: the embedded one is locked by a
/// running watch, which the error says.
fn open_for_cursors(data_dir: &DataDir, store: &StoreArgs) -> anyhow::Result<Arc<dyn WatchStore>> {
    let opened = open_watch_store(data_dir, store);
    if store.store.is_some() {
        return opened;
    }
    opened.context("the embedded watch store is opened by one process at a time: stop the watch (or `holdfast serve --watch-config`) using this data directory first")
}

pub(super) fn cursors(
    data_dir: &DataDir,
    store: &StoreArgs,
    file: &std::path::Path,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let config = load(file)?;
    let watch = open_for_cursors(data_dir, store)?;
    let report = holdfast_watch::cursors::report(
        watch.as_ref(),
        &holdfast_watch::cursors::served_sinks(&config),
    )
    .context("reading the stored sink cursors")?;
    let stale = report.stale().count();
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("outbox head {}", report.head);
        println!(
            "{:<32} {:>12} {:>10}  in the watch file",
            "sink", "position", "backlog"
        );
        for c in &report.cursors {
            let standing = match c.standing {
                holdfast_watch::cursors::Standing::Configured => "yes",
                holdfast_watch::cursors::Standing::Responder => "yes (the responder)",
                holdfast_watch::cursors::Standing::Stale => "NO: stale, holds pruning back",
            };
            println!(
                "{:<32} {:>12} {:>10}  {standing}",
                c.sink, c.position, c.backlog
            );
        }
        for s in &report.not_stored {
            println!(
                "{s:<32} {:>12} {:>10}  yes (no cursor stored yet)",
                "-", "-"
            );
        }
        if stale > 0 {
            println!(
                "{stale} stale cursor{}: once no instance serves {}, remove {} with `holdfast watch forget-sink {} NAME`",
                if stale == 1 { "" } else { "s" },
                if stale == 1 {
                    "that sink"
                } else {
                    "those sinks"
                },
                if stale == 1 { "it" } else { "each" },
                file.display()
            );
        }
    }
    // The store's last handle is dropped here, outside any runtime.
    drop(watch);
    Ok(if stale == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

pub(super) fn forget_sink(
    data_dir: &DataDir,
    store: &StoreArgs,
    file: &std::path::Path,
    name: &str,
) -> anyhow::Result<ExitCode> {
    let config = load(file)?;
    let watch = open_for_cursors(data_dir, store)?;
    let at = holdfast_watch::cursors::forget_stale(
        watch.as_ref(),
        &holdfast_watch::cursors::served_sinks(&config),
        name,
    )
    .with_context(|| format!("{}: cannot forget sink {name:?}", file.display()))?;
    println!(
        "forgot the cursor of sink {name} (it stood at {at}): the outbox is pruned past it from the next prune"
    );
    Ok(ExitCode::SUCCESS)
}
