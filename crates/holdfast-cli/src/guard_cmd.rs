//! `holdfast guard check`, `holdfast policy check`, `holdfast policy test`.

use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use holdfast_guard::approval::SignedApproval;
use holdfast_guard::check::SafeReport;
use holdfast_guard::facts::{History, PastOutflow};
use holdfast_guard::policy::{Decision, describe_amount};
use holdfast_guard::request::MAX_REQUEST_BYTES;
use holdfast_guard::rpc::RpcState;
use holdfast_guard::safe::SafeVersion;
use holdfast_guard::simulate::{Fork, Outcome, SimOptions, SimStatus, Simulator};
use holdfast_guard::{CheckOptions, Guard, Policy, Report};
use holdfast_intel::DataDir;

use crate::chain_cmd::{StoreArgs, open_store};

#[derive(Debug, Subcommand)]
pub enum GuardCommand {
    /// Decide on one request before it is signed: decode the exact payload, simulate it
    /// (with --rpc), apply the policy.
    ///
    /// Exit status: 0 allow, 1 deny, 2 error (nothing decided), 3 hold, 4 approvals required.
    Check(CheckArgs),
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The request: a transaction ({from, to, value, data, ...}), a raw signed transaction
    /// ({"raw": "0x..."}), a Safe Transaction Service multisig transaction as it is, or a
    /// withdrawal ({wallet, asset, amount, destination}). `-` reads standard input.
    pub request: PathBuf,
    /// Policy file (TOML). Default: the built-in policy (screening hits and foreign
    /// DELEGATECALLs denied, configuration changes and upgrades need approvals).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// A node to simulate on (http(s) or ws(s) JSON-RPC). Without it nothing is simulated,
    /// and the policy sees that.
    #[arg(long, env = "HOLDFAST_RPC", value_name = "URL")]
    pub rpc: Option<String>,
    /// Simulate on this block's state (default: the latest).
    #[arg(long, requires = "rpc")]
    pub block: Option<u64>,
    /// Time budget of the simulation, state fetches included (e.g. 5s, 1m).
    #[arg(long, default_value = "5s", value_name = "DURATION")]
    pub sim_budget: String,
    /// The Safe's version, when neither the node (VERSION()) nor the policy's wallet says.
    #[arg(long, value_name = "VERSION")]
    pub safe_version: Option<SafeVersion>,
    /// The chain the request is for, when it does not say (the Safe Transaction Service's
    /// JSON carries no chain id); a request naming another chain is an error. A Safe's hash
    /// covers the chain from Safe 1.3.0 on; before, it is the same on every chain.
    #[arg(long, value_name = "ID")]
    pub chain_id: Option<u64>,
    /// Approvals: a JSON array of signed EIP-712 approvals
    /// ({requestId, payloadHash, chainId, action, deadline, signature}).
    #[arg(long, value_name = "FILE")]
    pub approvals: Option<PathBuf>,
    /// Who asks (overrides the request's `initiator`).
    #[arg(long)]
    pub initiator: Option<String>,
    /// Read the wallet's past outflows from the transfer store (`holdfast ingest`) for
    /// velocity limits and new-destination checks (the last 30 days, at most 10 000).
    #[arg(long)]
    pub history: bool,
    /// Print the whole report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate a policy file: exit 0 if it is valid, 2 with the file, line and key if not.
    Check { file: PathBuf },
    /// Run a policy's own test cases (a TOML table of requests and expected decisions):
    /// exit 0 if every case passes, 1 if one fails, 2 on error.
    Test {
        policy: PathBuf,
        cases: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

/// Writes to standard output; a closed pipe (`| head`) is not an error.
fn emit(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn load_policy(path: Option<&Path>) -> anyhow::Result<Policy> {
    match path {
        None => Ok(Policy::default_policy()?),
        Some(p) => {
            let meta =
                std::fs::metadata(p).with_context(|| format!("reading policy {}", p.display()))?;
            if meta.len() > holdfast_guard::policy::MAX_POLICY_BYTES as u64 {
                bail!(
                    "policy {} is {} bytes: the limit is {}",
                    p.display(),
                    meta.len(),
                    holdfast_guard::policy::MAX_POLICY_BYTES
                );
            }
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("reading policy {}", p.display()))?;
            Ok(Policy::parse(&p.display().to_string(), &text)?)
        }
    }
}

fn load_guard(data_dir: &DataDir, policy: Policy) -> anyhow::Result<Guard> {
    let loaded = holdfast_intel::load(Some(data_dir)).context("loading intel")?;
    Ok(Guard::new(Arc::new(policy), Arc::new(loaded.index)))
}

pub fn policy(data_dir: &DataDir, cmd: PolicyCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        PolicyCommand::Check { file } => {
            let p = match load_policy(Some(&file)) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    return Ok(ExitCode::from(2));
                }
            };
            for w in p.warnings() {
                eprintln!("warning: {w}");
            }
            println!(
                "{}: policy {:?} is valid: {} rules, {} wallets, {} assets, {} lists, {} groups",
                file.display(),
                p.name,
                p.rules.len(),
                p.wallets.len(),
                p.assets.len(),
                p.lists.len(),
                p.groups.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Test {
            policy,
            cases,
            json,
        } => {
            let p = load_policy(Some(&policy))?;
            let guard = load_guard(data_dir, p)?;
            let text = std::fs::read_to_string(&cases)
                .with_context(|| format!("reading cases {}", cases.display()))?;
            let results = holdfast_guard::cases::run(&guard, &cases, &text)?;
            let failed = results.iter().filter(|r| !r.pass).count();
            if json {
                println!("{}", serde_json::to_string_pretty(&results)?);
            } else {
                for r in &results {
                    if r.pass {
                        println!("ok    {}  ({})", r.name, r.got);
                    } else {
                        println!(
                            "FAIL  {}: expected {}{}, got {}{}",
                            r.name,
                            r.expected,
                            r.expected_rule
                                .as_ref()
                                .map(|x| format!(" by rule {x:?}"))
                                .unwrap_or_default(),
                            r.got,
                            r.rule
                                .as_ref()
                                .map(|x| format!(" by rule {x:?}"))
                                .unwrap_or_else(|| " by default".into())
                        );
                        for reason in &r.reasons {
                            println!("        - {reason}");
                        }
                    }
                }
                println!(
                    "{} cases, {} passed, {} failed",
                    results.len(),
                    results.len() - failed,
                    failed
                );
            }
            Ok(if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}

fn read_request(path: &Path) -> anyhow::Result<Vec<u8>> {
    let mut buf = Vec::new();
    let limit = MAX_REQUEST_BYTES as u64 + 1;
    if path == Path::new("-") {
        std::io::stdin()
            .take(limit)
            .read_to_end(&mut buf)
            .context("reading the request from standard input")?;
    } else {
        std::fs::File::open(path)
            .with_context(|| format!("reading request {}", path.display()))?
            .take(limit)
            .read_to_end(&mut buf)
            .with_context(|| format!("reading request {}", path.display()))?;
    }
    Ok(buf)
}

fn history(
    data_dir: &DataDir,
    store: &StoreArgs,
    report_wallet: alloy_primitives::Address,
    chain_id: u64,
    now: u64,
) -> anyhow::Result<History> {
    let store = open_store(data_dir, store)?;
    let since = now.saturating_sub(30 * 86_400);
    let rows = store
        .transfers_from(chain_id, report_wallet, 0, holdfast_store::MAX_LIMIT)
        .context("reading the wallet's history from the transfer store")?;
    // Read from the wallet's first transfer on: a full page may have left the newest out,
    // and velocity is then not summed from a partial list (fail closed).
    let truncated = rows.len() >= holdfast_store::MAX_LIMIT;
    Ok(History {
        known: true,
        truncated,
        first_paid: Vec::new(),
        outflows: rows
            .into_iter()
            .filter(|t| t.timestamp >= since)
            .map(|t| PastOutflow {
                to: t.to,
                asset: t.asset,
                amount: t.amount,
                at: t.timestamp,
            })
            .collect(),
    })
}

pub fn check(data_dir: &DataDir, store: &StoreArgs, args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let bytes = read_request(&args.request)?;
    let mut env = holdfast_guard::request::parse(&bytes)
        .with_context(|| format!("request {}", args.request.display()))?;
    if let Some(i) = &args.initiator {
        env.initiator = Some(i.clone());
    }
    if let Some(c) = args.chain_id {
        env.request
            .set_chain_id(c)
            .with_context(|| format!("request {}: --chain-id {c}", args.request.display()))?;
    }
    let budget = holdfast_guard::units::parse_duration(&args.sim_budget).context("--sim-budget")?;
    let policy = load_policy(args.policy.as_deref())?;
    let guard = load_guard(data_dir, policy)?;
    let now = now();
    let approvals = match &args.approvals {
        None => Vec::new(),
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("reading approvals {}", p.display()))?;
            let signed: Vec<SignedApproval> = serde_json::from_str(&text).with_context(|| {
                format!(
                    "approvals {}: expected a JSON array of signed approvals",
                    p.display()
                )
            })?;
            let mut ok = Vec::new();
            for (i, a) in signed.iter().enumerate() {
                match a.verify(now) {
                    Ok(v) => ok.push(v),
                    Err(e) => eprintln!(
                        "warning: approval {i} in {} is not counted: {e}",
                        p.display()
                    ),
                }
            }
            ok
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(2)
        .build()
        .context("starting the async runtime")?;
    let simulator = args.rpc.as_ref().map(|url| {
        rt.block_on(async {
            RpcState::connect(url, args.block)
                .await
                .map_err(|e| {
                    format!(
                        "cannot read the chain from {}: {e}",
                        holdfast_chain::source::redact(url)
                    )
                })
                .and_then(|s| Fork::new(Arc::new(s)).map_err(|e| e.to_string()))
                .map(|fork| Simulator::new(fork, SimOptions { budget }))
        })
    });
    let simulation: Result<Option<Simulator>, String> = simulator.transpose();
    let history = if args.history {
        // The wallet is known once the request is decoded; a first pass without history finds it.
        let probe = guard.check(
            &env,
            &CheckOptions {
                now,
                ..Default::default()
            },
        )?;
        let chain = probe
            .chain_id
            .or(simulation
                .as_ref()
                .ok()
                .and_then(Option::as_ref)
                .map(|s| s.fork().block().chain_id))
            .context(
                "--history needs the request's chain id (chainId, --chain-id, the policy's wallet, or --rpc)",
            )?;
        history(data_dir, store, probe.wallet, chain, now)?
    } else {
        History::default()
    };
    let report = rt.block_on(async {
        let guard = guard.clone();
        let env = env.clone();
        let safe_version = args.safe_version;
        tokio::task::spawn_blocking(move || {
            let opts = CheckOptions {
                safe_version,
                ..CheckOptions::deciding(
                    simulation
                        .as_ref()
                        .map(Option::as_ref)
                        .map_err(Clone::clone),
                    history,
                    &approvals,
                    now,
                )
            };
            guard.check(&env, &opts)
        })
        .await
    })??;
    rt.shutdown_timeout(Duration::from_secs(1));
    let text = if args.json {
        serde_json::to_string_pretty(&report)? + "\n"
    } else {
        let mut out = String::new();
        render_report(&mut out, &guard, &report)?;
        out
    };
    emit(&text)?;
    Ok(ExitCode::from(match report.evaluation.decision {
        Decision::Allow => 0,
        Decision::Deny => 1,
        Decision::Hold { .. } => 3,
        Decision::RequireApprovals { .. } => 4,
    }))
}

fn render_report(out: &mut String, guard: &Guard, r: &Report) -> std::fmt::Result {
    let policy = guard.policy();
    let e = &r.evaluation;
    let head = match &e.decision {
        Decision::Allow => "ALLOW".to_owned(),
        Decision::Deny => "DENY".to_owned(),
        Decision::Hold { hold_seconds } => format!(
            "HOLD for {}",
            holdfast_guard::units::format_duration(Duration::from_secs(*hold_seconds))
        ),
        Decision::RequireApprovals {
            need,
            group,
            members,
            have,
        } => format!(
            "REQUIRE {need} APPROVALS from group {group:?} ({} of {} members have approved{})",
            have.len(),
            members.len(),
            if members.is_empty() {
                "; the group has no members: configure approvers in a policy"
            } else {
                ""
            }
        ),
    };
    match (&e.rule, e.rule_line) {
        (Some(rule), Some(line)) => writeln!(
            out,
            "{head}  by rule {rule:?} (policy {:?}, {}:{line})",
            r.policy, policy.source
        )?,
        _ => writeln!(
            out,
            "{head}  by default (policy {:?}: no rule matched)",
            r.policy
        )?,
    }
    for reason in &e.reasons {
        writeln!(out, "  - {reason}")?;
    }
    writeln!(out)?;
    let wallet = r
        .wallet_name
        .as_ref()
        .map_or_else(|| r.wallet.to_string(), |n| format!("{n} ({})", r.wallet));
    writeln!(
        out,
        "Request: {} on chain {}, wallet {wallet}{}",
        match r.kind {
            holdfast_guard::facts::RequestKind::Transaction => "transaction",
            holdfast_guard::facts::RequestKind::SignedTransaction => "signed transaction",
            holdfast_guard::facts::RequestKind::Safe => "Safe transaction",
            holdfast_guard::facts::RequestKind::Withdrawal => "withdrawal",
        },
        r.chain_id
            .map_or_else(|| "(unknown)".to_owned(), |c| c.to_string()),
        r.initiator
            .as_ref()
            .map(|i| format!(", asked by {i}"))
            .unwrap_or_default()
    )?;
    if let Some(s) = &r.safe {
        render_safe(out, s)?;
    }
    writeln!(
        out,
        "  payload hash {} (approvals bind to it)",
        r.payload_hash
    )?;
    writeln!(out, "What the bytes do:")?;
    for line in &r.summary {
        writeln!(out, "  {line}")?;
    }
    match &r.simulation {
        SimStatus::Unavailable => writeln!(out, "Simulation: none (no --rpc)")?,
        SimStatus::Failed { error } => writeln!(out, "Simulation: FAILED: {error}")?,
        SimStatus::TimedOut { budget_ms } => {
            writeln!(out, "Simulation: TIMED OUT after {budget_ms} ms")?
        }
        SimStatus::Ran(sim) => {
            let outcome = match &sim.outcome {
                Outcome::Success => "succeeds".to_owned(),
                Outcome::Reverted { reason } => format!("REVERTS: {reason}"),
                Outcome::Halted { reason } => format!("HALTS: {reason}"),
            };
            writeln!(
                out,
                "Simulation on block {}: {outcome}, gas {}, {} call frames, {} state reads from the node, {:.1} ms",
                sim.block,
                sim.gas_used,
                sim.calls.len(),
                sim.fetches,
                sim.elapsed_us as f64 / 1000.0
            )?;
            for w in &sim.critical_writes {
                writeln!(
                    out,
                    "  CRITICAL: writes {} of {}: {} -> {}",
                    w.what.describe(),
                    w.account,
                    w.before,
                    w.after
                )?;
            }
            for c in sim
                .calls
                .iter()
                .filter(|c| c.kind == holdfast_guard::simulate::FrameKind::DelegateCall)
            {
                writeln!(
                    out,
                    "  DELEGATECALL from {} into code at {}",
                    c.context, c.code
                )?;
            }
            for a in &sim.created {
                writeln!(out, "  creates contract {a}")?;
            }
            for d in &sim.deltas {
                let sign = if d.delta.is_negative() { "-" } else { "+" };
                writeln!(
                    out,
                    "  {} {sign}{}",
                    d.holder,
                    describe_amount(policy, &d.asset, d.delta.unsigned_abs())
                )?;
            }
        }
    }
    if !r.findings.is_empty() {
        writeln!(out, "Findings:")?;
        for f in &r.findings {
            writeln!(out, "  - {}", f.message)?;
        }
    }
    let flagged: Vec<_> = r
        .counterparties
        .iter()
        .filter(|c| !c.reasons.is_empty())
        .collect();
    if !flagged.is_empty() {
        writeln!(out, "Counterparties with labels:")?;
        for c in flagged {
            writeln!(out, "  {} ({}): {}", c.address, c.roles.join(", "), c.risk)?;
            for reason in c.reasons.iter().take(4) {
                writeln!(out, "    - {reason}")?;
            }
        }
    }
    Ok(())
}

fn render_safe(out: &mut String, s: &SafeReport) -> std::fmt::Result {
    writeln!(
        out,
        "  Safe {} version {} (from the {}), safeTxHash {} (computed by Holdfast)",
        s.safe, s.version, s.version_source, s.safe_tx_hash
    )?;
    if let Some(c) = s.claimed_hash {
        writeln!(
            out,
            "  the request claims safeTxHash {c}{}",
            if c == s.safe_tx_hash {
                " (matches)"
            } else {
                " (DOES NOT MATCH)"
            }
        )?;
    }
    if s.chain_id.is_none() {
        writeln!(
            out,
            "  no chain id: Safe {}'s hash does not cover the chain, so signatures of it are valid for this Safe address on every chain",
            s.version
        )?;
    }
    if let (Some(owners), Some(t)) = (&s.owners, s.threshold) {
        writeln!(out, "  owners {} of {}", t, owners.len())?;
    }
    for sig in &s.signatures {
        use holdfast_guard::safe::Ownership;
        let what = match (sig.valid, sig.ownership) {
            (Some(false), _) => format!("NOT VALID: {}", sig.problem().unwrap_or_default()),
            (Some(true), Ownership::Owner) => "valid, by an owner".to_owned(),
            (Some(true), _) => {
                "valid for this hash, by the owner it names (the Safe's owners are not known here)"
                    .to_owned()
            }
            (None, Ownership::Owner) => "an owner's (checked on chain at execution)".to_owned(),
            (None, _) => {
                "checked on chain at execution (the Safe's owners are not known here)".to_owned()
            }
        };
        writeln!(out, "  signature {:?} by {}: {what}", sig.kind, sig.signer)?;
    }
    Ok(())
}
