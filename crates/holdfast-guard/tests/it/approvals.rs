//! An approval is an EIP-712 signature over the exact payload hash: it counts for that
//! payload only, once per distinct group member, never for another destination or amount.

use alloy::primitives::{B256, Bytes};
use holdfast_guard::approval::{ApprovalAction, SignedApproval};
use holdfast_guard::policy::Decision;
use holdfast_testkit::{dev_account, dev_signer};

use crate::support::{self, R, call, check, eth, sts_json};

#[tokio::test(flavor = "multi_thread")]
async fn an_approval_counts_only_for_the_payload_it_signs() -> R {
    let safe = dev_account(9);
    let (dest, other) = (dev_account(5), dev_account(6));
    let approvers = [dev_account(2), dev_account(3), dev_account(4)];
    let guard = support::guard(&support::anvil_policy(
        safe,
        &[dest, other],
        &approvers,
        dev_account(8),
    ));
    let request = |to, amount| {
        let mut j = sts_json(
            safe,
            31337,
            &call(to, eth(amount), Bytes::new()),
            alloy::primitives::U256::from(4),
        );
        j["version"] = "1.4.1".into();
        support::env(&j)
    };
    let approved = request(dest, 60);
    let first = check(&guard, &approved, None, vec![]).await?;
    assert!(
        matches!(&first.evaluation.decision, Decision::RequireApprovals { need: 2, have, .. } if have.is_empty()),
        "{:?}",
        first.evaluation
    );
    let payload = first.payload_hash;
    assert_eq!(
        Some(payload),
        first.safe.as_ref().map(|s| s.safe_tx_hash),
        "approvals bind to the safeTxHash"
    );

    let sign = |i: usize, hash: B256, chain: u64| -> R<_> {
        Ok(SignedApproval::sign(
            &dev_signer(i)?,
            hash,
            hash,
            chain,
            ApprovalAction::Approve,
            1_790_000_000,
        )?
        .verify(1_780_000_000)?)
    };
    let two = vec![sign(2, payload, 31337)?, sign(3, payload, 31337)?];
    let r = check(&guard, &approved, None, two.clone()).await?;
    assert_eq!(r.evaluation.decision, Decision::Allow, "{:?}", r.evaluation);
    assert!(
        r.evaluation
            .reasons
            .iter()
            .any(|x| x.contains("approved by 2")),
        "{:?}",
        r.evaluation.reasons
    );

    // Another destination, another amount: the same approvals do not count.
    for altered in [request(other, 60), request(dest, 61)] {
        let r = check(&guard, &altered, None, two.clone()).await?;
        assert!(
            matches!(&r.evaluation.decision, Decision::RequireApprovals { have, .. } if have.is_empty()),
            "{:?}",
            r.evaluation
        );
        assert_ne!(r.payload_hash, payload);
    }
    // One approver twice is one approval; a non-member and another chain do not count.
    let r = check(
        &guard,
        &approved,
        None,
        vec![sign(2, payload, 31337)?, sign(2, payload, 31337)?],
    )
    .await?;
    assert!(
        matches!(&r.evaluation.decision, Decision::RequireApprovals { have, .. } if have.len() == 1),
        "{:?}",
        r.evaluation
    );
    let r = check(
        &guard,
        &approved,
        None,
        vec![sign(2, payload, 31337)?, sign(7, payload, 31337)?],
    )
    .await?;
    assert!(
        matches!(&r.evaluation.decision, Decision::RequireApprovals { have, .. } if have.len() == 1)
    );
    let r = check(
        &guard,
        &approved,
        None,
        vec![sign(2, payload, 31337)?, sign(3, payload, 1)?],
    )
    .await?;
    assert!(
        matches!(&r.evaluation.decision, Decision::RequireApprovals { have, .. } if have.len() == 1)
    );
    // The initiator cannot approve their own request.
    let mut mine = approved.clone();
    mine.initiator = Some(dev_account(2).to_string());
    let r = check(&guard, &mine, None, two).await?;
    assert!(
        matches!(&r.evaluation.decision, Decision::RequireApprovals { have, .. } if have.len() == 1),
        "{:?}",
        r.evaluation
    );
    Ok(())
}
