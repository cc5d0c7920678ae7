//! Shared set-up: the shipped intel (loaded once), guards over policies, simulators on a
//! real anvil, Safe requests in the Transaction Service's JSON.

use std::sync::{Arc, OnceLock};

use alloy::primitives::{Address, Bytes, U256};
use holdfast_guard::approval::VerifiedApproval;
use holdfast_guard::facts::History;
use holdfast_guard::rpc::RpcState;
use holdfast_guard::simulate::{Fork, SimOptions, Simulator};
use holdfast_guard::{CheckOptions, Envelope, Guard, Policy, Report};
use holdfast_intel::IntelIndex;
use holdfast_testkit::Anvil;
use holdfast_testkit::safe::SafeTx;
use serde_json::{Value, json};

pub type R<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

pub fn intel() -> Arc<IntelIndex> {
    static I: OnceLock<Arc<IntelIndex>> = OnceLock::new();
    I.get_or_init(|| {
        Arc::new(
            holdfast_intel::load(None)
                .expect("shipped intel loads")
                .index,
        )
    })
    .clone()
}

pub fn policy_file(name: &str) -> String {
    let path = holdfast_testkit::workspace_root()
        .join("policies")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn guard(text: &str) -> Guard {
    let policy = Policy::parse("test.toml", text).unwrap_or_else(|e| panic!("{e}"));
    Guard::new(Arc::new(policy), intel())
}

pub fn default_guard() -> Guard {
    Guard::new(
        Arc::new(Policy::default_policy().expect("default")),
        intel(),
    )
}

pub fn eth(n: u64) -> U256 {
    U256::from(n) * U256::from(10u64).pow(U256::from(18))
}

/// A simulator pinned to the node's latest block.
pub async fn simulator(node: &Anvil) -> R<Simulator> {
    let state = RpcState::connect(&node.http_url(), None).await?;
    Ok(Simulator::new(
        Fork::new(Arc::new(state))?,
        SimOptions::default(),
    ))
}

/// Runs a check on a blocking thread (the simulator blocks on the node).
pub async fn check(
    guard: &Guard,
    env: &Envelope,
    sim: Option<Arc<Simulator>>,
    approvals: Vec<VerifiedApproval>,
) -> R<Report> {
    let (guard, env) = (guard.clone(), env.clone());
    let report = tokio::task::spawn_blocking(move || {
        let opts = CheckOptions {
            simulator: sim.as_deref(),
            approvals: &approvals,
            now: 1_780_000_000,
            history: History::default(),
            ..Default::default()
        };
        guard.check(&env, &opts)
    })
    .await??;
    Ok(report)
}

/// A Safe transaction as the Safe Transaction Service returns it.
pub fn sts_json(safe: Address, chain_id: u64, tx: &SafeTx, nonce: U256) -> Value {
    json!({
        "safe": safe,
        "chainId": chain_id,
        "to": tx.to,
        "value": tx.value.to_string(),
        "data": tx.data,
        "operation": tx.operation as u8,
        "gasToken": Address::ZERO,
        "safeTxGas": tx.safe_tx_gas.to_string(),
        "baseGas": 0,
        "gasPrice": "0",
        "refundReceiver": Address::ZERO,
        "nonce": nonce.to_string(),
        "submissionDate": "2026-06-01T10:00:00Z",
        "isExecuted": false,
        "trusted": true,
    })
}

pub fn env(v: &Value) -> Envelope {
    holdfast_guard::request::from_value(v).unwrap_or_else(|e| panic!("{e}: {v}"))
}

pub fn call(to: Address, value: U256, data: impl Into<Bytes>) -> SafeTx {
    SafeTx::call(to, value, data.into())
}

/// A policy for a wallet on anvil: allowlisted destinations and delegatecall targets,
/// approvers (two of them needed, or all if fewer), limits in ETH.
pub fn anvil_policy(
    wallet: Address,
    allowed: &[Address],
    approvers: &[Address],
    multisend: Address,
) -> String {
    let need = approvers.len().min(2);
    let list = |v: &[Address]| {
        v.iter()
            .map(|a| format!("\"{a}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        r#"
[policy]
name = "anvil-treasury"

[wallets.treasury]
address = "{wallet}"
safe_version = "1.4.1"

[assets.ETH]
native = true
decimals = 18
usd = "3000"

[lists]
destinations = [{dest}]
delegatecall-targets = ["safe:multisend-call-only", "{multisend}"]

[groups.signers]
members = [{approvers}]

[[rule]]
name = "request integrity"
when = {{ finding = ["safe_tx_hash_mismatch", "contract_hash_mismatch", "bad_signature", "wrong_chain", "code_hash_mismatch", "stale_nonce", "undecodable"] }}
action = "deny"

[[rule]]
name = "screening"
when = {{ counterparty_risk = "high" }}
action = "deny"

[[rule]]
name = "foreign delegatecall"
when = {{ delegatecall_to_unlisted = "delegatecall-targets" }}
action = "deny"

[[rule]]
name = "hidden critical write"
when = {{ hidden_critical_write = true }}
action = "deny"

[[rule]]
name = "simulation failed"
when = {{ simulation = ["failed", "timed_out", "reverted", "inner_failed"] }}
action = "deny"

[[rule]]
name = "configuration"
when = {{ call = ["safe_config_change", "upgrade", "admin_change"] }}
action = "require_approvals"
approvals = {need}
group = "signers"

[[rule]]
name = "over 50 ETH"
when = {{ asset_in = ["ETH"], amount_above = "50" }}
action = "require_approvals"
approvals = {need}
group = "signers"

[[rule]]
name = "allowlisted"
when = {{ destination_in = "destinations", no_call = ["unknown_call", "approval", "unlimited_approval", "permit", "set_approval_for_all", "contract_creation"] }}
action = "allow"
"#,
        dest = list(allowed),
        approvers = list(approvers),
    )
}
