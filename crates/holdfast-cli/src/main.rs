//! `holdfast`: parses arguments, sets up logging, calls the library, maps outcomes to exit
//! codes. Nothing here decides anything.

// mimalloc: ingestion and traces allocate many small values; glibc's malloc cost a third of
// the UTXO index's write time (docs/BENCHMARKS.md, "Bitcoin: the UTXO index").
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod bitcoin_clusters;
mod bitcoin_cmd;
mod bitcoin_trace;
mod chain_cmd;
mod cli;
mod clusters_cmd;
mod crosschain_trace;
mod demo_cmd;
mod demo_watch;
mod exit_reader;
mod gate_cmd;
mod guard_cmd;
mod intel_cmd;
mod screen_cmd;
mod trace_cmd;
mod watch_cmd;

use std::process::ExitCode;

use clap::Parser;

/// Raises the soft open-file limit to the hard one (a server holds one file per connection)
/// and returns the soft limit now in force.
fn raise_open_file_limit() -> u64 {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let Rlimit { current, maximum } = getrlimit(Resource::Nofile);
    // Linux refuses an unlimited number of open files: ask for a large finite one then.
    let target = maximum.unwrap_or(1 << 20);
    match current {
        Some(soft) if soft < target => {
            let raised = Rlimit {
                current: Some(target),
                maximum,
            };
            match setrlimit(Resource::Nofile, raised) {
                Ok(()) => {
                    tracing::info!(target: "serve", from = soft, to = target, "raised the open-file limit");
                    target
                }
                Err(e) => {
                    tracing::warn!(target: "serve", limit = soft, error = %e, "could not raise the open-file limit");
                    soft
                }
            }
        }
        Some(soft) => soft,
        None => u64::MAX,
    }
}

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("HOLDFAST_LOG").unwrap_or_else(|_| {
        // The demo prints its own story; its components' logs would bury it.
        let demo = matches!(args.command, cli::Command::Demo);
        // The storage engine's own recovery messages are noise to an operator.
        tracing_subscriber::EnvFilter::new(if args.quiet {
            "error"
        } else if demo {
            // The watch's alerts and the freeze are in the story already.
            "warn,watch=error,gate::freeze=error"
        } else {
            "info,fjall=warn,lsm_tree=warn"
        })
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(true)
        .init();
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
