//! The guard service in `holdfast serve --guard-config`, and `holdfast audit verify|export`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Subcommand};
use holdfast_gate::signer::{LocalKeySigner, Signer};
use holdfast_gate::{Gate, GateConfig};
use holdfast_guard::{Guard, Policy};
use holdfast_intel::DataDir;
use holdfast_store::gate::{AuditEntry, EmbeddedGateStore, GateStore, PgGateStore, verify};

use crate::chain_cmd::StoreArgs;

/// The guard state store: PostgreSQL with `--store postgres://...`, else the embedded one
/// in the data directory.
pub fn open_gate_store(
    data_dir: &DataDir,
    store: &StoreArgs,
) -> anyhow::Result<Arc<dyn GateStore>> {
    Ok(match store.store.as_deref() {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            Arc::new(
                PgGateStore::connect(url, 8).context("connecting the guard state to PostgreSQL")?,
            )
        }
        Some(other) => anyhow::bail!("--store {other:?}: expected a postgres:// URL"),
        None => {
            let path = data_dir.root().join("store").join("gate");
            Arc::new(
                EmbeddedGateStore::open(&path)
                    .with_context(|| format!("opening the guard state at {}", path.display()))?,
            )
        }
    })
}

/// Builds the guard service from its configuration file. Async: connects to the node.
pub async fn build_gate(
    data_dir: &DataDir,
    store: &StoreArgs,
    config_path: &Path,
) -> anyhow::Result<Arc<Gate>> {
    let text = std::fs::read_to_string(config_path)
        .with_context(|| format!("reading {}", config_path.display()))?;
    let config = GateConfig::parse(config_path, &text)?;
    let policy = match &config.policy {
        Some(p) => {
            let t = std::fs::read_to_string(p)
                .with_context(|| format!("reading policy {}", p.display()))?;
            Policy::parse(&p.display().to_string(), &t)?
        }
        None => Policy::default_policy()?,
    };
    for w in policy.warnings() {
        tracing::warn!(target: "gate::config", "{w}");
    }
    let loaded = holdfast_intel::load(Some(data_dir)).context("loading intel")?;
    let guard = Guard::new(Arc::new(policy), Arc::new(loaded.index));
    let chain = match &config.rpc {
        Some(url) => Some(Arc::new(
            holdfast_chain::ChainSource::connect(holdfast_guard::rpc::source_config(url))
                .await
                .with_context(|| {
                    format!(
                        "connecting to the node {}",
                        holdfast_chain::source::redact(url)
                    )
                })?,
        )),
        None => None,
    };
    let signer: Option<Arc<dyn Signer>> = match (&config.keystore, &config.password_file) {
        (Some(k), Some(p)) => Some(Arc::new(LocalKeySigner::from_keystore(k, p)?)),
        _ => None,
    };
    if let Some(s) = &signer {
        tracing::info!(target: "gate::config", signer = %s.address(), "signing key loaded");
    } else {
        tracing::warn!(target: "gate::config", "no [signer] configured: allowed requests will fail to be signed");
    }
    // The PostgreSQL client is synchronous: connect off the async runtime.
    let (dir, args) = (data_dir.clone(), store.clone());
    let store = tokio::task::spawn_blocking(move || open_gate_store(&dir, &args)).await??;
    Ok(Arc::new(Gate::new(store, guard, chain, signer, config)))
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the guard's audit log: every entry's hash and its link to the one before.
    /// Exit 0 if intact; 1 naming the first edited, removed or reordered entry.
    Verify,
    /// Write the audit log as JSON lines.
    Export(ExportArgs),
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Where to write (default: standard output).
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

fn all_entries(store: &dyn GateStore) -> anyhow::Result<Vec<AuditEntry>> {
    let mut out = Vec::new();
    let mut from = 1;
    loop {
        let page = store.audit(from, 10_000).context("reading the audit log")?;
        let n = page.len();
        if let Some(last) = page.last() {
            from = last.seq + 1;
        }
        out.extend(page);
        if n < 10_000 {
            return Ok(out);
        }
    }
}

pub fn audit(
    data_dir: &DataDir,
    store: &StoreArgs,
    cmd: &AuditCommand,
) -> anyhow::Result<ExitCode> {
    let store = open_gate_store(data_dir, store)?;
    let entries = all_entries(&*store)?;
    match cmd {
        AuditCommand::Verify => match verify(&entries) {
            Ok(n) => {
                let head = entries
                    .last()
                    .map(|e| e.hash.to_string())
                    .unwrap_or_else(|| "(empty)".into());
                println!("audit log intact: {n} entries, head {head}");
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                println!("audit log BROKEN: {e}");
                Ok(ExitCode::from(1))
            }
        },
        AuditCommand::Export(args) => {
            let mut w: Box<dyn Write> = match &args.output {
                Some(p) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(p)
                        .with_context(|| format!("creating {}", p.display()))?,
                )),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            for e in &entries {
                match writeln!(w, "{}", serde_json::to_string(e)?) {
                    Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                        return Ok(ExitCode::SUCCESS);
                    }
                    other => other?,
                }
            }
            match w.flush() {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                other => other?,
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
