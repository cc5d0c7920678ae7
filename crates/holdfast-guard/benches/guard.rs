//! Guard benchmark (docs/BENCHMARKS.md, "Guard engine"):
//!
//! 1. decode + screening + policy without simulation, per request, over the 10 000-request
//!    benign corpus (`support/corpus.rs`) under the three example policies: p50, p99, max,
//!    and the false-deny count;
//! 2. the full check with simulation on warm state from a local anvil (a 1-of-1 Safe 1.4.1
//!    paying ETH, ERC-20 and MultiSendCallOnly batches), and the simulation alone;
//! 3. in the same run, the same payloads with `cast call --trace` (npm
//!    `@foundry-rs/cast`), which forks the node and executes locally: the ratio.
//!
//! `cargo bench -p holdfast-guard --bench guard [-- --quick]`. A plain binary: the loops
//! are long enough that criterion's statistics would add compile time and nothing else.

// The binary's allocator, so that the figures are what `holdfast` runs.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::primitives::{Address, Bytes, U256};
use alloy::sol_types::SolCall;
use holdfast_guard::decode::pack_multisend;
use holdfast_guard::policy::Decision;
use holdfast_guard::rpc::RpcState;
use holdfast_guard::safe::Operation;
use holdfast_guard::safe::{SafeTx, approved_hash_signatures};
use holdfast_guard::simulate::{Fork, Plan, SimOptions, SimStatus, Simulator};
use holdfast_guard::{CheckOptions, Guard, Policy};
use holdfast_testkit::safe;
use holdfast_testkit::{Anvil, dev_account, workspace_root};
use serde_json::json;

#[path = "support/corpus.rs"]
mod corpus;

use corpus::{MSCO, Rng, eth, transfer};

type R<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn summary(name: &str, mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    let (p50, p99) = (percentile(&v, 0.5), percentile(&v, 0.99));
    println!(
        "{name}: n={} p50={:.1} µs p90={:.1} µs p99={:.1} µs max={:.1} µs",
        v.len(),
        us(p50),
        us(percentile(&v, 0.9)),
        us(p99),
        us(*v.last().unwrap_or(&Duration::ZERO))
    );
    (p50, p99)
}

fn guard(file: &str) -> R<Guard> {
    let text = std::fs::read_to_string(workspace_root().join("policies").join(file))?;
    let intel = holdfast_intel::load(None)?.index;
    Ok(Guard::new(
        Arc::new(Policy::parse(file, &text)?),
        Arc::new(intel),
    ))
}

fn decode_and_policy(quick: bool) -> R {
    let names = [
        "exchange-hot-wallet.toml",
        "defi-treasury.toml",
        "safe-cold-wallet.toml",
    ];
    let guards: Vec<(&str, Guard)> = names
        .iter()
        .map(|n| Ok::<_, Box<dyn std::error::Error + Send + Sync>>((*n, guard(n)?)))
        .collect::<Result<_, _>>()?;
    let n = if quick { 2_000 } else { 10_000 };
    let requests: Vec<_> = corpus::corpus(n, 7)
        .into_iter()
        .map(|(name, json)| {
            let g = guards.iter().position(|(x, _)| *x == name).unwrap_or(0);
            (g, json)
        })
        .collect();
    let opts = CheckOptions {
        now: 1_780_000_000,
        ..Default::default()
    };
    // The request arrives as JSON bytes: parsing is part of the work.
    let bytes: Vec<(usize, Vec<u8>)> = requests
        .iter()
        .map(|(g, j)| (*g, serde_json::to_vec(j).unwrap_or_default()))
        .collect();
    let mut times = Vec::with_capacity(bytes.len() * 3);
    let mut denied = 0;
    for pass in 0..3 {
        for (g, b) in &bytes {
            let t = Instant::now();
            let env = holdfast_guard::request::parse(b)?;
            let r = guards[*g].1.check(&env, &opts)?;
            let dt = t.elapsed();
            if pass > 0 {
                times.push(dt);
            }
            if pass == 0 && r.evaluation.decision == Decision::Deny {
                denied += 1;
            }
        }
    }
    println!(
        "corpus: {n} benign requests, {denied} denied (false-deny rate {:.4}%)",
        100.0 * denied as f64 / n as f64
    );
    summary(
        "decode+screen+policy (parse JSON, decode, screen every counterparty, evaluate)",
        times,
    );
    Ok(())
}

fn cast_bin() -> PathBuf {
    std::env::var_os("HOLDFAST_CAST")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            workspace_root().join("node_modules/@foundry-rs/cast-linux-amd64/bin/cast")
        })
}

async fn with_simulation(quick: bool) -> R {
    let node = Anvil::spawn().await?;
    let owner = dev_account(0);
    let (safe_addr, token) = corpus::funded_safe(&node, &[owner], 1).await?;
    let chain_id = node.chain_id().await?;
    let nonce = safe::nonce(&node, safe_addr).await?;
    let mut rng = Rng(3);
    let dests: Vec<Address> = (0..50).map(|_| rng.address()).collect();
    let safe_tx = |to: Address, value: U256, data: Bytes, operation: Operation| SafeTx {
        to,
        value,
        data,
        operation,
        safe_tx_gas: U256::ZERO,
        base_gas: U256::ZERO,
        gas_price: U256::ZERO,
        gas_token: Address::ZERO,
        refund_receiver: Address::ZERO,
        nonce,
    };
    let kinds = 60;
    let payloads: Vec<(&str, SafeTx)> = (0..kinds)
        .map(|i| {
            let d = dests[i % dests.len()];
            match i % 3 {
                0 => (
                    "ETH payout",
                    safe_tx(d, eth(1 + (i as u64 % 7)), Bytes::new(), Operation::Call),
                ),
                1 => (
                    "ERC-20 payout",
                    safe_tx(
                        token,
                        U256::ZERO,
                        transfer(d, eth(10 + i as u64)),
                        Operation::Call,
                    ),
                ),
                _ => (
                    "MultiSendCallOnly batch of 3",
                    safe_tx(
                        MSCO,
                        U256::ZERO,
                        pack_multisend(&[
                            (Operation::Call, token, U256::ZERO, transfer(d, eth(5))),
                            (
                                Operation::Call,
                                dests[(i + 1) % dests.len()],
                                eth(1),
                                Bytes::new(),
                            ),
                            (
                                Operation::Call,
                                token,
                                U256::ZERO,
                                transfer(dests[(i + 2) % dests.len()], eth(6)),
                            ),
                        ]),
                        Operation::DelegateCall,
                    ),
                ),
            }
        })
        .collect();
    let list: Vec<String> = dests.iter().map(|a| format!("\"{a}\"")).collect();
    let policy = format!(
        "[policy]\nname = \"bench\"\n[wallets.t]\naddress = \"{safe_addr}\"\nsafe_version = \"1.4.1\"\n[lists]\nd = [{}]\nms = [\"safe:multisend-call-only\"]\n\
         [[rule]]\nname = \"screening\"\nwhen = {{ counterparty_risk = \"high\" }}\naction = \"deny\"\n\
         [[rule]]\nname = \"foreign delegatecall\"\nwhen = {{ delegatecall_to_unlisted = \"ms\" }}\naction = \"deny\"\n\
         [[rule]]\nname = \"hidden\"\nwhen = {{ hidden_critical_write = true }}\naction = \"deny\"\n\
         [[rule]]\nname = \"sim\"\nwhen = {{ simulation = [\"failed\", \"timed_out\", \"reverted\", \"inner_failed\"] }}\naction = \"deny\"\n\
         [[rule]]\nname = \"ok\"\nwhen = {{ destination_in = \"d\" }}\naction = \"allow\"\n",
        list.join(", ")
    );
    let intel = holdfast_intel::load(None)?.index;
    let guard = Guard::new(
        Arc::new(Policy::parse("bench.toml", &policy)?),
        Arc::new(intel),
    );
    let state = RpcState::connect(&node.http_url(), None).await?;
    let sim = Arc::new(Simulator::new(
        Fork::new(Arc::new(state))?,
        SimOptions::default(),
    ));
    let envs: Vec<_> = payloads
        .iter()
        .map(|(_, tx)| {
            holdfast_guard::request::from_value(&json!({
                "safe": safe_addr, "chainId": chain_id, "to": tx.to, "value": tx.value.to_string(), "data": tx.data,
                "operation": tx.operation.as_u8(), "nonce": nonce.to_string(),
            }))
        })
        .collect::<Result<_, _>>()?;
    let rounds = if quick { 5 } else { 30 };
    let (g, s, e) = (guard.clone(), sim.clone(), envs.clone());
    let txs: Vec<SafeTx> = payloads.iter().map(|(_, t)| t.clone()).collect();
    let (check_times, sim_times, fetches_cold, fetches_warm) =
        tokio::task::spawn_blocking(move || -> R<_> {
            let opts = CheckOptions {
                simulator: Some(&s),
                now: 1_780_000_000,
                ..Default::default()
            };
            // Warm-up: the first round fetches the state from the node.
            for env in &e {
                let r = g.check(env, &opts)?;
                if r.evaluation.decision != Decision::Allow {
                    return Err(format!(
                        "benchmark payload not allowed: {:?} {:?}",
                        r.evaluation, r.simulation
                    )
                    .into());
                }
            }
            let cold = s.fork().fetches();
            let mut check_times = Vec::new();
            let mut sim_times = Vec::new();
            for _ in 0..rounds {
                for (env, tx) in e.iter().zip(&txs) {
                    let t = Instant::now();
                    let r = g.check(env, &opts)?;
                    check_times.push(t.elapsed());
                    if !matches!(r.simulation, SimStatus::Ran(_)) {
                        return Err("simulation did not run".into());
                    }
                    let t = Instant::now();
                    let out = s.run(&Plan::Safe {
                        safe: safe_addr,
                        tx,
                        gas_price: 0,
                    });
                    sim_times.push(t.elapsed());
                    if !matches!(out, SimStatus::Ran(_)) {
                        return Err("simulation did not run".into());
                    }
                }
            }
            Ok((check_times, sim_times, cold, s.fork().fetches() - cold))
        })
        .await??;
    println!(
        "warm state: {fetches_cold} node reads to warm {} payloads, {fetches_warm} during the timed rounds",
        payloads.len()
    );
    let (check_p50, _) = summary(
        "full check with simulation, warm (decode, simulate execTransaction, read Safe state before/after, screen, policy)",
        check_times,
    );
    let (sim_p50, _) = summary("simulation alone, warm", sim_times);

    // cast call --trace on the same payloads: execTransaction from the owner with its
    // approved-hash signature (v = 1, msg.sender is the owner), forked from the same node.
    let cast = cast_bin();
    let sig = approved_hash_signatures(&[owner]);
    let mut cast_times = Vec::new();
    let cast_runs = if quick { 6 } else { 30 };
    for (i, (_, tx)) in payloads.iter().enumerate().take(cast_runs) {
        let data = tx.exec_call(sig.clone()).abi_encode();
        let t = Instant::now();
        let out = Command::new(&cast)
            .args([
                "call",
                "--trace",
                "--rpc-url",
                &node.http_url(),
                "--from",
                &owner.to_string(),
                &safe_addr.to_string(),
            ])
            .arg(alloy::primitives::hex::encode_prefixed(&data))
            .output()?;
        let dt = t.elapsed();
        if !out.status.success() {
            return Err(format!(
                "cast call --trace failed on payload {i}: {}",
                String::from_utf8_lossy(&out.stderr)
            )
            .into());
        }
        let text = String::from_utf8_lossy(&out.stdout);
        if !text.contains("Success") && !text.contains("[Stop]") && !text.contains("[Return]") {
            return Err(format!("cast trace of payload {i} shows no success: {text}").into());
        }
        cast_times.push(dt);
    }
    let (cast_p50, _) = summary(
        "cast call --trace (a process per payload: fork from the node, execute, print the trace)",
        cast_times,
    );
    println!(
        "ratio (median): cast call --trace / Holdfast full check = {:.0}x; / Holdfast simulation alone = {:.0}x",
        cast_p50.as_secs_f64() / check_p50.as_secs_f64(),
        cast_p50.as_secs_f64() / sim_p50.as_secs_f64()
    );
    Ok(())
}

fn main() -> R {
    let quick = std::env::args().any(|a| a == "--quick");
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "load average at start: {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    decode_and_policy(quick)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(2)
        .build()?;
    rt.block_on(with_simulation(quick))?;
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "load average at end: {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    Ok(())
}
