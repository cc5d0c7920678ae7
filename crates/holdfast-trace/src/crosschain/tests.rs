use alloy_primitives::{Bytes, keccak256};

use super::*;

/// A `Deposit(address indexed to, address indexed asset, uint amount, string memo)` log
/// emitted by `emitter`, ABI-encoded by hand.
fn deposit_log(emitter: Address, amount: u64, memo: &str) -> Log {
    let topic0 = keccak256("Deposit(address,address,uint256,string)");
    let vault = B256::left_padding_from(&[0x55; 20]);
    let eth = B256::ZERO;
    let mut data = Vec::new();
    data.extend_from_slice(&U256::from(amount).to_be_bytes::<32>());
    data.extend_from_slice(&U256::from(64u64).to_be_bytes::<32>());
    data.extend_from_slice(&U256::from(memo.len()).to_be_bytes::<32>());
    let mut m = memo.as_bytes().to_vec();
    m.resize(memo.len().div_ceil(32) * 32, 0);
    data.extend_from_slice(&m);
    Log::new(emitter, vec![topic0, vault, eth], Bytes::from(data)).expect("3 topics")
}

fn hop(to: Address, amount: u64) -> Hop {
    Hop {
        tx_hash: B256::repeat_byte(1),
        block: 7,
        from: Address::repeat_byte(3),
        to,
        asset: Asset::Native,
        amount: U256::from(amount),
        tainted: U256::from(amount),
    }
}

#[test]
fn only_the_bridges_own_deposit_events_are_read() {
    let router = Address::repeat_byte(0xaa);
    let lookalike = Address::repeat_byte(0xbb);
    let receipt = ExitReceipt {
        block_number: 7,
        block_hash: B256::repeat_byte(7),
        stored_block_hash: None,
        refunds: vec![],
        success: true,
        logs: vec![
            // The thief's contract emits a Deposit naming his decoy destination first.
            deposit_log(lookalike, 4, "=:b:bc1qdecoy"),
            deposit_log(router, 4, "=:l:ltc1qreal"),
        ],
    };
    let memos = |r: &ExitReceipt, h: &Hop| -> Vec<(String, U256)> {
        deposits_for(h, router, r)
            .into_iter()
            .map(|d| (d.memo, d.amount))
            .collect()
    };
    assert_eq!(
        memos(&receipt, &hop(router, 4)),
        [("=:l:ltc1qreal".to_owned(), U256::from(4u64))]
    );
    // A transaction with the look-alike event only: no deposit event from the bridge.
    let only_fake = ExitReceipt {
        logs: vec![deposit_log(lookalike, 4, "=:b:bc1qdecoy")],
        ..receipt.clone()
    };
    assert!(deposits_for(&hop(router, 4), router, &only_fake).is_empty());
}

#[test]
fn the_deposit_matching_the_transfer_is_taken_else_every_one() {
    let router = Address::repeat_byte(0xaa);
    let receipt = ExitReceipt {
        block_number: 7,
        block_hash: B256::repeat_byte(7),
        stored_block_hash: None,
        refunds: vec![],
        success: true,
        logs: vec![
            deposit_log(router, 1, "=:l:ltc1qsmall"),
            deposit_log(router, 4, "=:l:ltc1qbig"),
        ],
    };
    let found = deposits_for(&hop(router, 4), router, &receipt);
    assert_eq!(
        (found[0].memo.as_str(), found[0].amount, found.len()),
        ("=:l:ltc1qbig", U256::from(4u64), 1)
    );
    // No deposit of the transfer's amount (a fee-on-transfer token, an aggregator
    // splitting it): every deposit of the router in the transaction is followed.
    assert_eq!(deposits_for(&hop(router, 3), router, &receipt).len(), 2);
}

/// The exit into the bridge `h` pays (named `name` in intel), with `h` as its one arrival.
fn bridge_exit(name: &str, h: &Hop) -> FreezeTarget {
    FreezeTarget {
        service: Service {
            kind: crate::ServiceKind::Bridge,
            category: holdfast_primitives::Category::Bridge,
            name: name.into(),
        },
        deposit: h.to,
        amounts: vec![],
        first_tx: h.tx_hash,
        first_block: h.block,
        path: vec![h.clone()],
        arrivals: vec![vec![h.clone()]],
    }
}

#[test]
fn a_receipt_from_another_fork_than_the_stores_is_not_followed() {
    let router = Address::repeat_byte(0xaa);
    let h = hop(router, 4);
    let exit = bridge_exit("THORChain Router", &h);
    let chains: [UtxoChain<'_, dyn UtxoSource>; 0] = [];
    let node_hash = B256::repeat_byte(7);
    for (stored, other_fork) in [
        (Some(B256::repeat_byte(8)), true),
        (Some(node_hash), false),
        (None, false),
    ] {
        let receipts: BTreeMap<B256, ExitReceipt> = [(
            h.tx_hash,
            ExitReceipt {
                block_number: h.block,
                block_hash: node_hash,
                stored_block_hash: stored,
                refunds: vec![],
                success: true,
                logs: vec![deposit_log(router, 4, "=:l:ltc1qreal")],
            },
        )]
        .into();
        let c = cross(&exit, &h, &exit.path, &receipts, &chains).expect("cross");
        match &c[0].outcome {
            CrossingOutcome::NotOnTheNode { detail } => {
                assert!(other_fork, "{detail}");
                assert!(detail.contains("different forks"), "{detail}");
                assert!(detail.contains(&node_hash.to_string()), "{detail}");
            }
            other => assert!(!other_fork, "followed across forks: {other:?}"),
        }
    }
}

#[test]
fn a_refund_by_the_router_naming_the_inbound_is_where_the_taint_went() {
    let router = Address::repeat_byte(0xaa);
    let vault = Address::repeat_byte(0x55); // the deposit_log's vault
    let h = hop(router, 4);
    let exit = bridge_exit("THORChain Router", &h);
    let inbound_id = alloy_primitives::hex::encode_upper(h.tx_hash);
    let refund = |n: u8, emitter: Address, from: Address, memo: String| RefundEvent {
        tx_hash: B256::repeat_byte(n),
        block: 9,
        event: TransferOut {
            router: emitter,
            vault: from,
            to: Address::repeat_byte(3),
            asset: None,
            amount: U256::from(3u64),
            memo,
        },
    };
    let receipt = |refunds: Vec<RefundEvent>| ExitReceipt {
        block_number: h.block,
        block_hash: B256::repeat_byte(7),
        stored_block_hash: None,
        refunds,
        success: true,
        // A swap to a chain no index holds: `chain-not-indexed` without a refund.
        logs: vec![deposit_log(router, 4, "=:BNB.BNB:bnb1destination")],
    };
    let chains: [UtxoChain<'_, dyn UtxoSource>; 0] = [];
    let outcome = |refunds: Vec<RefundEvent>| {
        let receipts: BTreeMap<B256, ExitReceipt> = [(h.tx_hash, receipt(refunds))].into();
        let mut c = cross(&exit, &h, &exit.path, &receipts, &chains).expect("cross");
        assert_eq!(c.len(), 1);
        c.remove(0)
    };
    assert_eq!(
        outcome(vec![]).outcome,
        CrossingOutcome::ChainNotIndexed {
            chain: "BNB".into()
        }
    );
    let c = outcome(vec![
        // THORChain's refund, from the deposit's vault.
        refund(0x21, router, vault, format!("REFUND:{inbound_id}")),
        // Anyone may call transferOut: a "refund" from the thief's own address.
        refund(
            0x22,
            router,
            Address::repeat_byte(0x66),
            format!("REFUND:{inbound_id}"),
        ),
        // Not this inbound; an outbound, not a refund; another contract's event.
        refund(0x23, router, vault, format!("REFUND:{}", "AB".repeat(32))),
        refund(0x24, router, vault, format!("OUT:{inbound_id}")),
        refund(
            0x25,
            Address::repeat_byte(0xbb),
            vault,
            format!("REFUND:{inbound_id}"),
        ),
    ]);
    assert_eq!(c.outcome, CrossingOutcome::Refunded { refunds: 2 });
    let listed: Vec<(B256, bool)> = c
        .refunds
        .iter()
        .map(|r| (r.tx_hash, r.from_deposit_vault))
        .collect();
    assert_eq!(
        listed,
        [
            (B256::repeat_byte(0x21), true),
            (B256::repeat_byte(0x22), false)
        ]
    );
    assert_eq!(c.refunds[0].to, Address::repeat_byte(3));
    assert_eq!(c.refunds[0].amount, U256::from(3u64));
}

#[test]
fn tainted_share_in_parts_per_billion() {
    let u = U256::from;
    assert_eq!(share_ppb(u(5u64), u(10u64)), Some(500_000_000));
    assert_eq!(share_ppb(u(10u64), u(10u64)), None, "all of it");
    assert_eq!(share_ppb(u(1u64), u(3u64)), Some(333_333_333));
    assert_eq!(share_ppb(u(0u64), u(0u64)), None);
}

/// A Multichain router's `LogAnySwapOut` (token, from, to indexed; amount, fromChainID,
/// toChainID in data), ABI-encoded by hand, emitted by `emitter`.
fn any_swap_out(emitter: Address, to: Address, amount: u64, to_chain: u64) -> Log {
    let topic0 = keccak256("LogAnySwapOut(address,address,address,uint256,uint256,uint256)");
    let topics = vec![
        topic0,
        B256::ZERO,
        B256::left_padding_from(&[3; 20]),
        B256::left_padding_from(to.as_slice()),
    ];
    let mut data = Vec::new();
    for w in [amount, 1, to_chain] {
        data.extend_from_slice(&U256::from(w).to_be_bytes::<32>());
    }
    Log::new(emitter, topics, Bytes::from(data)).expect("4 topics")
}

#[test]
fn another_bridges_exit_event_names_the_destination_when_the_bridge_emitted_it() {
    let router = Address::repeat_byte(0xaa);
    let recipient = Address::repeat_byte(0x77);
    let h = hop(router, 4);
    let exit = bridge_exit("Multichain Router", &h);
    let chains: [UtxoChain<'_, dyn UtxoSource>; 0] = [];
    let crossing = |logs: Vec<Log>| {
        let receipts: BTreeMap<B256, ExitReceipt> = [(
            h.tx_hash,
            ExitReceipt {
                block_number: h.block,
                block_hash: B256::repeat_byte(7),
                stored_block_hash: None,
                refunds: vec![],
                success: true,
                logs,
            },
        )]
        .into();
        cross(&exit, &h, &exit.path, &receipts, &chains).expect("cross")
    };
    let c = crossing(vec![any_swap_out(router, recipient, 4, 56)]);
    assert_eq!(
        c[0].outcome,
        CrossingOutcome::OtherBridge {
            bridge: "Multichain".into(),
            amount: "4".into()
        }
    );
    let d = c[0].destination.as_ref().expect("destination");
    assert_eq!(
        (d.chain.as_str(), d.address.as_str(), d.asset.as_str()),
        ("eip155:56", recipient.to_string().as_str(), "native")
    );
    // The same event from another contract (the thief's) names nothing.
    let c = crossing(vec![any_swap_out(
        Address::repeat_byte(0xbb),
        recipient,
        4,
        56,
    )]);
    assert_eq!(c[0].outcome, CrossingOutcome::NoDepositEvent);
    assert!(c[0].destination.is_none());
    // The bridge's event with its data cut short: an error naming the transaction.
    let mut short = any_swap_out(router, recipient, 4, 56);
    short.data =
        alloy_primitives::LogData::new_unchecked(short.data.topics().to_vec(), Bytes::new());
    let c = crossing(vec![short]);
    match &c[0].outcome {
        CrossingOutcome::BadExitEvent { error } => {
            assert!(error.contains(&h.tx_hash.to_string()), "{error}")
        }
        other => panic!("{other:?}"),
    }
}
