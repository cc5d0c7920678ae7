//! The harness itself, on a real anvil: Safe versions, the Bybit mechanism, the scenario's
//! on-chain effects.

use alloy_primitives::U256;
use holdfast_testkit::safe::{SafeInfra, SafeVersion, master_copy, version};
use holdfast_testkit::{Anvil, Scenario, dev_account};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_effects_on_chain() {
    let node = Anvil::spawn().await.expect("anvil");
    let before = node.balance(dev_account(2)).await.expect("balance");
    let x = Scenario::new(&node).run().await.expect("scenario");
    // c received 0.3 (forward) + 0.5 (nested split) ETH; the swallowed 0.2 did not arrive.
    assert_eq!(
        node.balance(dev_account(2)).await.expect("balance") - before,
        U256::from(800) * U256::from(10u64).pow(U256::from(15))
    );
    assert_eq!(x.failed.len(), 1);
    assert!(x.last_block > 20);
}
