//! A gate on a real anvil, with the shipped intel and a policy over anvil's addresses.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolCall;
use holdfast_gate::signer::LocalKeySigner;
use holdfast_gate::{Gate, GateConfig, Principal, Role};
use holdfast_guard::safe::{Operation, SafeTx};
use holdfast_guard::{Guard, Policy};
use holdfast_intel::IntelIndex;
use holdfast_store::gate::{EmbeddedGateStore, GateStore};
use holdfast_testkit::Anvil;

pub type R<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

pub fn intel() -> Arc<IntelIndex> {
    static I: OnceLock<Arc<IntelIndex>> = OnceLock::new();
    I.get_or_init(|| Arc::new(holdfast_intel::load(None).expect("intel").index))
        .clone()
}

pub fn eth(n: u64) -> U256 {
    U256::from(n) * U256::from(10u64).pow(U256::from(18))
}

pub fn who(name: &str, roles: &[Role]) -> Principal {
    Principal {
        name: name.into(),
        roles: roles.to_vec(),
        address: None,
    }
}

/// A gate over `node` with `policy`, Holdfast signing with `key`, state in `store`.
pub async fn gate(
    node: &Anvil,
    policy: &str,
    key: PrivateKeySigner,
    store: Arc<dyn GateStore>,
) -> R<Arc<Gate>> {
    let policy = Policy::parse("test-policy.toml", policy)?;
    let guard = Guard::new(Arc::new(policy), intel());
    let chain = Arc::new(
        holdfast_chain::ChainSource::connect(holdfast_guard::rpc::source_config(&node.http_url()))
            .await?,
    );
    let config = GateConfig {
        rpc: Some(node.http_url()),
        // Every decision on fresh state: the tests change the chain between steps.
        fork_max_age: Duration::ZERO,
        release_interval: Duration::from_millis(200),
        unfreeze_group: Some("approvers".into()),
        unfreeze_approvals: 2,
        ..GateConfig::default()
    };
    Ok(Arc::new(Gate::new(
        store,
        guard,
        Some(chain),
        Some(Arc::new(LocalKeySigner::new(key))),
        config,
    )))
}

pub fn embedded(dir: &std::path::Path) -> Arc<dyn GateStore> {
    Arc::new(EmbeddedGateStore::open(&dir.join("gate")).expect("open"))
}

/// A Safe transaction with no refund fields, at `nonce`.
pub fn safe_tx(to: Address, value: U256, data: Bytes, operation: Operation, nonce: U256) -> SafeTx {
    SafeTx {
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
    }
}

/// The Transaction Service JSON of `tx` on `safe`.
pub fn sts(safe: Address, chain_id: u64, tx: &SafeTx) -> Vec<u8> {
    serde_json::json!({
        "safe": safe, "chainId": chain_id, "to": tx.to, "value": tx.value.to_string(), "data": tx.data,
        "operation": tx.operation.as_u8(), "nonce": tx.nonce.to_string(), "safeTxGas": 0, "baseGas": 0, "gasPrice": "0",
    })
    .to_string()
    .into_bytes()
}

/// Executes `tx` on `safe` with the owners' signatures: Holdfast's (given) and the
/// others' (signed here), in ascending owner order.
pub async fn execute(
    node: &Anvil,
    safe: Address,
    tx: &SafeTx,
    hash: B256,
    holdfast: (Address, Bytes),
    others: &[PrivateKeySigner],
) -> R<B256> {
    let mut sigs: Vec<(Address, Vec<u8>)> = vec![(holdfast.0, holdfast.1.to_vec())];
    for o in others {
        sigs.push((
            o.address(),
            holdfast_testkit::safe::sign(hash, std::slice::from_ref(o))?.to_vec(),
        ));
    }
    sigs.sort_by_key(|(a, _)| *a);
    let blob: Vec<u8> = sigs.into_iter().flat_map(|(_, s)| s).collect();
    let call = tx.exec_call(blob.into()).abi_encode();
    Ok(node
        .call_ok(others[0].address(), safe, U256::ZERO, call.into())
        .await?)
}

/// Waits until the background task has moved request `id` out of `state`.
pub async fn wait_until(
    gate: &Gate,
    id: &str,
    mut done: impl FnMut(&holdfast_gate::Outcome) -> bool,
    within: Duration,
) -> R<holdfast_gate::Outcome> {
    let start = std::time::Instant::now();
    loop {
        gate.tick().await?;
        let o = gate.status(id).await?;
        if done(&o) {
            return Ok(o);
        }
        if start.elapsed() > within {
            return Err(format!("request {id} still {:?} after {within:?}", o.state).into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
