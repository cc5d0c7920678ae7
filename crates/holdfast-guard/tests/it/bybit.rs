//! The Bybit theft (2025-02-21) reproduced on a real Gnosis Safe 1.1.1: owners are shown a
//! token `transfer`, the operation is DELEGATECALL into a contract whose `transfer` writes
//! its first argument into slot 0, the Safe's masterCopy. Holdfast must deny it before
//! anything is signed, whatever the inner data, and its simulation must show the write.

use std::sync::Arc;

use alloy::primitives::{Address, Bytes, U256};
use alloy::sol_types::SolCall;
use holdfast_guard::abi::erc20;
use holdfast_guard::decode::pack_multisend;
use holdfast_guard::policy::Decision;
use holdfast_guard::safe::{Operation as GuardOp, SafeVersion};
use holdfast_guard::simulate::{CriticalSlot, Outcome};
use holdfast_testkit::safe::{self, Operation, SafeTx};
use holdfast_testkit::{Anvil, deploy, dev_account};

use crate::support::{self, R, check, eth, sts_json};

#[tokio::test(flavor = "multi_thread")]
async fn bybit_delegatecall_is_denied_and_the_simulation_shows_the_master_copy_write() -> R {
    let node = Anvil::spawn().await?;
    let (a, b, attacker) = (dev_account(0), dev_account(1), dev_account(9));
    let infra = deploy::safe_111(&node, a).await?;
    let safe = infra.create_safe(&node, a, &[a, b], 2).await?;
    node.call_ok(a, safe, eth(1000), Bytes::new()).await?;
    let swap = deploy::holdfast(&node, attacker, "MasterCopySwap").await?;
    let sweeper = deploy::holdfast(&node, attacker, "SweeperImpl").await?;
    let chain_id = node.chain_id().await?;
    let shown_as_transfer: Bytes = erc20::transferCall {
        to: sweeper,
        amount: U256::ZERO,
    }
    .abi_encode()
    .into();
    let tx = SafeTx::delegatecall(swap, shown_as_transfer.clone());
    let nonce = safe::nonce(&node, safe).await?;
    let mut json = sts_json(safe, chain_id, &tx, nonce);
    json["dataDecoded"] = serde_json::json!({"method": "transfer", "parameters": []});
    let request = support::env(&json);

    // With the node: the default policy and the cold-wallet policy both deny, and the
    // simulation shows slot 0 going from the 1.1.1 singleton to the attacker's code.
    let sim = Arc::new(support::simulator(&node).await?);
    for guard in [
        support::default_guard(),
        support::guard(&support::policy_file("safe-cold-wallet.toml")),
    ] {
        let r = check(&guard, &request, Some(sim.clone()), vec![]).await?;
        assert_eq!(r.evaluation.decision, Decision::Deny, "{:#?}", r.evaluation);
        let rule = r.evaluation.rule.as_deref().unwrap_or_default();
        assert!(rule.contains("DELEGATECALL"), "decided by {rule:?}");
        assert!(
            r.evaluation
                .reasons
                .iter()
                .any(|x| x.contains(&swap.to_string())),
            "the reason names the target: {:?}",
            r.evaluation.reasons
        );
        let s = r.safe.as_ref().expect("a Safe report");
        assert_eq!(s.version, SafeVersion::V1_1_1);
        assert_eq!(s.version_source, "node");
        // Holdfast's own safeTxHash is the one the contract computes.
        assert_eq!(
            s.safe_tx_hash,
            safe::transaction_hash(&node, safe, &tx, nonce).await?
        );
        assert_eq!(s.contract_hash, Some(s.safe_tx_hash));
        let simulation = r.simulation.simulation().expect("simulated");
        assert_eq!(simulation.outcome, Outcome::Success);
        let write = simulation
            .critical_writes
            .iter()
            .find(|w| w.what == CriticalSlot::SafeSingleton)
            .expect("the masterCopy write is shown");
        assert_eq!(write.account, safe);
        assert_eq!(Address::from_word(write.before), infra.singleton);
        assert_eq!(Address::from_word(write.after), sweeper);
        assert!(
            simulation
                .calls
                .iter()
                .any(|c| c.code == swap && c.context == safe),
            "the DELEGATECALL frame into the attacker's contract is recorded"
        );
    }

    // Without a node, on decoding alone, whatever the inner data looks like.
    let guard = support::default_guard();
    let inner_datas: Vec<Bytes> = vec![
        Bytes::new(),
        shown_as_transfer,
        erc20::approveCall {
            spender: attacker,
            amount: U256::from(1),
        }
        .abi_encode()
        .into(),
        pack_multisend(&[(GuardOp::Call, b, U256::from(1), Bytes::new())]),
        Bytes::from_static(&[0x12, 0x34, 0x56, 0x78]),
    ];
    for data in inner_datas {
        let tx = SafeTx::delegatecall(swap, data.clone());
        let mut j = sts_json(safe, chain_id, &tx, nonce);
        j["version"] = "1.1.1".into();
        let r = check(&guard, &support::env(&j), None, vec![]).await?;
        assert_eq!(
            r.evaluation.decision,
            Decision::Deny,
            "inner data {data}: {:#?}",
            r.evaluation
        );
        assert_eq!(
            r.evaluation.rule.as_deref(),
            Some("DELEGATECALL outside the allowlist")
        );
    }

    // What Holdfast refused is what then happens on chain: the owners sign it and the
    // masterCopy becomes the attacker's.
    safe::exec(
        &node,
        safe,
        &[a, b],
        swap,
        U256::ZERO,
        tx.data.clone(),
        Operation::DelegateCall,
    )
    .await?;
    assert_eq!(safe::master_copy(&node, safe).await?, sweeper);
    Ok(())
}

/// Issue 13, item 5: the Transaction Service's JSON of the executed Bybit transaction, as
/// published (both `confirmations` and the packed `signatures`, no chain id). Offline, with
/// the owners unknown, it was denied as "request integrity" with the false statement that
/// its signatures are not by owners; it is denied for the DELEGATECALL, and every signature
/// recovers to the owner its confirmation names over the hash Holdfast computes, which is
/// the published safeTxHash.
#[test]
fn the_published_executed_bybit_transaction_is_denied_for_the_delegatecall() {
    let path =
        holdfast_testkit::workspace_root().join("policies/requests/bybit-2025-02-21-executed.json");
    let bytes = std::fs::read(&path).expect("request");
    let env = holdfast_guard::request::parse(&bytes).expect("parses as published");
    let opts = holdfast_guard::CheckOptions {
        now: 1_780_000_000,
        ..Default::default()
    };
    let guard = support::guard(&support::policy_file("safe-cold-wallet.toml"));
    let r = guard.check(&env, &opts).expect("checks");
    assert_eq!(r.evaluation.decision, Decision::Deny);
    assert_eq!(
        r.evaluation.rule.as_deref(),
        Some("DELEGATECALL outside Safe's libraries"),
        "{:#?}",
        r.evaluation
    );
    assert!(r.findings.is_empty(), "{:#?}", r.findings);
    let s = r.safe.as_ref().expect("a Safe report");
    assert_eq!(
        s.safe_tx_hash.to_string(),
        "0xb3476d061aeb8fc1d605a873c483a2402d88a68a9cdd1a8b47655dd55ba004f8"
    );
    assert_eq!(
        s.signatures.len(),
        3,
        "the packed copies are the confirmations' signatures"
    );
    for sig in &s.signatures {
        assert_eq!(sig.valid, Some(true), "{sig:?}");
        assert_eq!(sig.claimed_owner, Some(sig.signer));
        assert_eq!(sig.ownership, holdfast_guard::safe::Ownership::Unknown);
    }

    // With the owners in the policy, the same signatures are owners'; with one of them
    // missing from the list, that one is named as not an owner, and nothing else is claimed.
    let owners = [
        "0x1F4EB0a903619ac168b19A82F1a6e2e426522211",
        "0x3Cc3A225769900e003E264dd4CB43E90896BC21A",
        "0xe3dF2cCEAc61B1aFA311372ecC5B40A3A6585a9E",
    ];
    let with_owners = |list: &[&str]| {
        support::policy_file("safe-cold-wallet.toml").replace(
            "safe_version = \"1.1.1\"",
            &format!(
                "safe_version = \"1.1.1\"\nowners = [{}]",
                list.iter()
                    .map(|o| format!("\"{o}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    };
    let r = support::guard(&with_owners(&owners))
        .check(&env, &opts)
        .expect("checks");
    assert!(r.findings.is_empty(), "{:#?}", r.findings);
    let s = r.safe.as_ref().expect("a Safe report");
    assert!(
        s.signatures
            .iter()
            .all(|x| x.ownership == holdfast_guard::safe::Ownership::Owner)
    );
    let r = support::guard(&with_owners(&owners[..2]))
        .check(&env, &opts)
        .expect("checks");
    assert_eq!(r.evaluation.rule.as_deref(), Some("request integrity"));
    assert_eq!(r.findings.len(), 1, "{:#?}", r.findings);
    assert!(
        r.findings[0].message.contains(owners[2]) && r.findings[0].message.contains("not an owner"),
        "{}",
        r.findings[0].message
    );
}
