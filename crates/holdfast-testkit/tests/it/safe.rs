//! Safe 1.1.1 and 1.4.1 on a real node: versions, hashes, signatures, the Bybit mechanism.

use alloy_primitives::{Address, Bytes, U256, keccak256};
use holdfast_testkit::safe::{
    SafeInfra, SafeTx, SafeVersion, exec_signed, master_copy, safe_tx_hash, transaction_hash,
    version,
};
use holdfast_testkit::{Anvil, Scenario, deploy, dev_account, dev_signer};
use serde_json::json;

use crate::{eth, token_balance};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn safe_versions_and_the_bybit_mechanism() {
    let node = Anvil::spawn().await.expect("anvil");
    let heist = Scenario::new(&node).safe_heist().await.expect("heist");
    // The drained Safe now runs the attacker's code, which has no VERSION(); a fresh one
    // answers like the one Bybit ran.
    assert!(version(&node, heist.safe_111).await.is_err());
    let infra = SafeInfra::deploy(&node, SafeVersion::V1_1_1, dev_account(0))
        .await
        .expect("deploy");
    let fresh = infra
        .create_safe(&node, dev_account(0), &[dev_account(0)], 1)
        .await
        .expect("create");
    assert_eq!(version(&node, fresh).await.expect("VERSION"), "1.1.1");
    assert_eq!(
        version(&node, heist.safe_141).await.expect("VERSION"),
        "1.4.1"
    );
    assert_eq!(
        master_copy(&node, heist.safe_111).await.expect("slot 0"),
        heist.sweeper,
        "the DELEGATECALL replaced the masterCopy"
    );
    assert_eq!(
        node.balance(heist.safe_111).await.expect("balance"),
        U256::ZERO,
        "swept"
    );
    let infra = SafeInfra::deploy(&node, SafeVersion::V1_4_1, dev_account(0))
        .await
        .expect("deploy");
    let safe = infra
        .create_safe(&node, dev_account(0), &[dev_account(0), dev_account(1)], 2)
        .await
        .expect("create");
    assert_eq!(
        master_copy(&node, safe).await.expect("slot 0"),
        infra.singleton
    );
}

/// What owners sign can be computed without trusting the contract: the local EIP-712 hash
/// equals `getTransactionHash` on every version (1.1.1's domain has no chain id).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_safe_tx_hash_equals_the_contracts() {
    let node = Anvil::spawn().await.unwrap();
    let a = dev_account(0);
    let chain_id = node.chain_id().await.unwrap();
    let txs = [
        SafeTx::call(dev_account(3), eth(1500), Bytes::new()),
        SafeTx::delegatecall(dev_account(4), Bytes::from(vec![0xa9, 0x05, 0x9c, 0xbb, 7])),
        SafeTx {
            safe_tx_gas: U256::from(77_000),
            ..SafeTx::call(dev_account(5), U256::ZERO, Bytes::from(vec![1, 2, 3]))
        },
    ];
    for v in [
        SafeVersion::V1_1_1,
        SafeVersion::V1_4_1,
        SafeVersion::V1_4_1L2,
    ] {
        let infra = SafeInfra::deploy(&node, v, a).await.unwrap();
        let safe = infra
            .create_safe(&node, a, &[a, dev_account(1)], 2)
            .await
            .unwrap();
        for tx in &txs {
            for nonce in [U256::ZERO, U256::from(41)] {
                assert_eq!(
                    safe_tx_hash(v, chain_id, safe, tx, nonce),
                    transaction_hash(&node, safe, tx, nonce).await.unwrap(),
                    "{v:?} {tx:?} nonce {nonce}"
                );
            }
        }
        // Another chain id is another hash, except on 1.1.1.
        let elsewhere = safe_tx_hash(v, 1, safe, &txs[0], U256::ZERO);
        let here = safe_tx_hash(v, chain_id, safe, &txs[0], U256::ZERO);
        assert_eq!(elsewhere == here, v == SafeVersion::V1_1_1, "{v:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signature_of_a_non_owner_is_refused() {
    let node = Anvil::spawn().await.unwrap();
    let a = dev_account(0);
    let infra = deploy::safe_141(&node, a).await.unwrap();
    let safe = infra
        .create_safe(&node, a, &[a, dev_account(1)], 2)
        .await
        .unwrap();
    node.call_ok(a, safe, eth(5000), Bytes::new())
        .await
        .unwrap();
    let pay = SafeTx::call(dev_account(7), eth(1000), Bytes::new());
    let stranger = [dev_signer(0).unwrap(), dev_signer(7).unwrap()];
    assert!(
        exec_signed(&node, safe, &pay, &stranger, dev_account(8))
            .await
            .is_err()
    );
    let owners = [dev_signer(1).unwrap(), dev_signer(0).unwrap()];
    exec_signed(&node, safe, &pay, &owners, dev_account(8))
        .await
        .unwrap();
    assert_eq!(node.balance(safe).await.unwrap(), eth(4000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_executions_and_the_one_contract_takeover() {
    let node = Anvil::spawn().await.unwrap();
    let s = Scenario::new(&node).safe_activity().await.unwrap();
    let token = s.token;
    assert_eq!(version(&node, s.safe_141).await.unwrap(), "1.4.1");
    // 20 in, 1 and 2 paid out; the 3 of the failed inner call stayed.
    assert_eq!(node.balance(s.safe_141).await.unwrap(), eth(17_000));
    assert_eq!(node.balance(s.reverter).await.unwrap(), U256::ZERO);
    assert_eq!(token_balance(&node, token, s.safe_141).await, eth(850_000));
    assert_eq!(
        token_balance(&node, token, dev_account(4)).await,
        eth(100_000)
    );
    assert_eq!(
        token_balance(&node, token, dev_account(6)).await,
        eth(50_000)
    );
    assert_eq!(node.balance(dev_account(5)).await.unwrap(), eth(10_002_000));
    // The failed inner call: the transaction succeeded, the Safe logged ExecutionFailure.
    assert!(node.tx_succeeded(s.inner_failure_tx).await.unwrap());
    let receipt = node
        .rpc("eth_getTransactionReceipt", json!([s.inner_failure_tx]))
        .await
        .unwrap();
    let failure = keccak256("ExecutionFailure(bytes32,uint256)");
    assert!(
        receipt["logs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["topics"][0] == json!(failure)),
        "{receipt}"
    );
    // The takeover: one signed DELEGATECALL, then the implant is the masterCopy and both
    // sweeps emptied the Safe.
    assert!(node.tx_succeeded(s.delegatecall_tx).await.unwrap());
    assert_eq!(master_copy(&node, s.safe_111).await.unwrap(), s.bybit_impl);
    assert!(version(&node, s.safe_111).await.is_err());
    assert_eq!(node.balance(s.safe_111).await.unwrap(), U256::ZERO);
    assert_eq!(token_balance(&node, token, s.safe_111).await, U256::ZERO);
    assert_eq!(token_balance(&node, token, s.attacker).await, eth(500_000));
    // The record: every transfer of the Safes, nothing of the failed inner call.
    let out_of = |safe: Address| {
        s.record
            .transfers
            .iter()
            .filter(move |t| t.1 == safe)
            .count()
    };
    assert_eq!(out_of(s.safe_141), 4);
    assert_eq!(out_of(s.safe_111), 3);
    assert_eq!(s.record.reverted_frames.len(), 1);
    assert!(s.record.transfers.iter().all(|t| t.0 != s.inner_failure_tx));
}
