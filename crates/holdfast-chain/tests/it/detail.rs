//! `ChainSource::fetch_detail` against a real anvil: the Bybit takeover's DELEGATECALL and
//! slot-0 change, reverted frames, failed transactions, zeroed slots and destroyed accounts,
//! cut inputs; the same detail from geth and parity traces; the same transfers as
//! `fetch_block`.

use std::time::Duration;

use alloy_primitives::{Address, B256, Bytes, U256};
use holdfast_chain::{
    BlockDetail, CallKind, ChainSource, MAX_INPUT_BYTES, SlotChange, SourceConfig, StateDiff,
    TraceMode,
};
use holdfast_testkit::{Anvil, Scenario, dev_account};
use serde_json::json;

pub(crate) async fn source(url: &str, mode: TraceMode) -> ChainSource {
    let mut config = SourceConfig::new(url);
    config.trace_mode = Some(mode);
    config.poll_interval = Duration::from_millis(50);
    ChainSource::connect(config).await.expect("connects")
}

async fn block_of(node: &Anvil, tx: B256) -> u64 {
    let r = node
        .rpc("eth_getTransactionReceipt", json!([tx]))
        .await
        .expect("receipt");
    u64::from_str_radix(
        r["blockNumber"]
            .as_str()
            .expect("mined")
            .trim_start_matches("0x"),
        16,
    )
    .expect("hex")
}

async fn slot(node: &Anvil, account: Address, slot: u64, block: u64) -> B256 {
    let v = node
        .rpc(
            "eth_getStorageAt",
            json!([account, format!("{slot:#x}"), format!("{block:#x}")]),
        )
        .await
        .expect("storage");
    serde_json::from_value(v).expect("word")
}

fn word(a: Address) -> B256 {
    a.into_word()
}

/// Both trace modes, every block up to the head: the same detail, and each mode's detail
/// carries exactly `fetch_block`'s transfers.
async fn same_detail_both_ways(node: &Anvil) -> Vec<BlockDetail> {
    let geth = source(&node.http_url(), TraceMode::Geth).await;
    let parity = source(&node.http_url(), TraceMode::Parity).await;
    assert!(geth.serves_state_diff() && parity.serves_state_diff());
    let head = node.block_number().await.expect("head");
    let mut out = Vec::new();
    for n in 0..=head {
        let g = geth.fetch_detail(n).await.expect("geth detail");
        let p = parity.fetch_detail(n).await.expect("parity detail");
        assert_eq!(
            g.transfers,
            geth.fetch_block(n).await.expect("geth block"),
            "block {n}: geth detail's transfers are fetch_block's"
        );
        assert_eq!(
            p.transfers,
            parity.fetch_block(n).await.expect("parity block"),
            "block {n}: parity detail's transfers are fetch_block's"
        );
        assert!(g.calls_complete && p.calls_complete);
        assert_eq!(g.txs, p.txs, "block {n}: transactions");
        assert_eq!(g.logs, p.logs, "block {n}: logs");
        assert_eq!(g.calls, p.calls, "block {n}: calls, geth vs parity");
        assert_eq!(g.state, p.state, "block {n}: state, geth vs parity");
        assert_eq!(g.transfers, p.transfers, "block {n}: transfers");
        // The first look (no state diffs) is the detail without its state, in both modes.
        for (source, full) in [(&geth, &g), (&parity, &p)] {
            let first = source
                .fetch_detail_without_state(n)
                .await
                .expect("detail without state");
            assert_eq!(first.state, None, "block {n}: no state diffs asked for");
            let mut whole = full.clone();
            whole.state = None;
            assert_eq!(first, whole, "block {n}: the rest of the detail");
        }
        // Slots read by block hash (the first look's critical-slot reads) are the state
        // diff's values: at the parent, each slot's value before the block's first write; at
        // the block, after its last.
        if n > 0 {
            let mut first: std::collections::BTreeMap<(Address, B256), (B256, B256)> =
                Default::default();
            for d in g.state.iter().flatten() {
                for s in &d.storage {
                    first
                        .entry((d.address, s.slot))
                        .and_modify(|e| e.1 = s.after)
                        .or_insert((s.before, s.after));
                }
            }
            let reads: Vec<(Address, B256)> = first.keys().copied().collect();
            let block = *g.block();
            let values = geth
                .storage_at(&reads, &[block.parent_hash, block.hash], n)
                .await
                .expect("storage by block hash");
            for (i, key) in reads.iter().enumerate() {
                assert_eq!(values[0][i], first[key].0, "block {n}: {key:?} before");
                assert_eq!(values[1][i], first[key].1, "block {n}: {key:?} after");
            }
        }
        // Value and input come from the top call frames: each is the transaction's own.
        for t in &g.txs {
            let full = node
                .rpc("eth_getTransactionByHash", json!([t.hash]))
                .await
                .expect("transaction");
            let field = |k: &str| full[k].clone();
            assert_eq!(
                serde_json::from_value::<U256>(field("value")).expect("value"),
                t.value,
                "block {n}: value of {}",
                t.hash
            );
            assert_eq!(
                serde_json::from_value::<Bytes>(field("input")).expect("input"),
                t.input,
                "block {n}: input of {}",
                t.hash
            );
            assert_eq!(
                serde_json::from_value::<Address>(field("from")).expect("from"),
                t.from
            );
            assert_eq!(
                serde_json::from_value::<Option<Address>>(field("to")).expect("to"),
                t.to,
                "block {n}: to of {} (none for a creation)",
                t.hash
            );
        }
        out.push(g);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_heist_block_shows_the_delegatecall_and_the_singleton_swap() {
    let node = Anvil::spawn().await.expect("anvil");
    let heist = Scenario::new(&node).safe_heist().await.expect("heist");
    let details = same_detail_both_ways(&node).await;
    let n = block_of(&node, heist.delegatecall_tx).await;
    let detail = &details[n as usize];
    assert_eq!(detail.block().number, n);
    let tx = detail
        .txs
        .iter()
        .find(|t| t.hash == heist.delegatecall_tx)
        .expect("the transaction");
    assert!(tx.success);
    assert_eq!(tx.to, Some(heist.safe_111));
    // The attacker deployed the swap contract first, then the sweeper.
    let swap = heist.attacker.create(0);
    assert_eq!(heist.sweeper, heist.attacker.create(1));
    let delegatecalls: Vec<_> = detail
        .calls
        .iter()
        .filter(|c| c.tx_index == tx.index && c.kind == CallKind::DelegateCall)
        .collect();
    let into_swap = delegatecalls
        .iter()
        .find(|c| c.to == swap)
        .unwrap_or_else(|| panic!("a DELEGATECALL into the swap contract: {delegatecalls:#?}"));
    assert_eq!(into_swap.from, heist.safe_111, "runs in the Safe's storage");
    assert!(!into_swap.reverted);
    assert_eq!(
        &into_swap.input[..4],
        &[0xa9, 0x05, 0x9c, 0xbb],
        "looks like transfer(address,uint256)"
    );
    assert!(
        !into_swap.trace_address.is_empty(),
        "inside the Safe's execTransaction"
    );
    let old = slot(&node, heist.safe_111, 0, n - 1).await;
    assert_ne!(old, B256::ZERO);
    assert_ne!(old, word(heist.sweeper));
    let state = detail.state.as_ref().expect("state diff");
    let safe: Vec<&StateDiff> = state
        .iter()
        .filter(|d| d.tx_index == tx.index && d.address == heist.safe_111)
        .collect();
    assert_eq!(safe.len(), 1, "{state:#?}");
    assert!(
        safe[0].storage.contains(&SlotChange {
            slot: B256::ZERO,
            before: old,
            after: word(heist.sweeper),
        }),
        "slot 0 from the old singleton to the sweeper: {:#?}",
        safe[0]
    );
    // The sweep that follows: the Safe's whole balance leaves.
    let sweep = block_of(&node, heist.sweep_tx).await;
    let sweep = &details[sweep as usize];
    let safe_balance = sweep
        .state
        .as_ref()
        .expect("state")
        .iter()
        .find(|d| d.address == heist.safe_111)
        .and_then(|d| d.balance)
        .expect("the Safe's balance changed");
    assert_eq!(safe_balance.1, U256::ZERO);
    assert!(safe_balance.0 > U256::ZERO);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_details_agree_and_mark_reverted_frames_and_failed_transactions() {
    let node = Anvil::spawn().await.expect("anvil");
    let expected = Scenario::new(&node).run().await.expect("scenario");
    let details = same_detail_both_ways(&node).await;
    let find_tx = |hash: B256| {
        details
            .iter()
            .find_map(|d| {
                d.txs
                    .iter()
                    .find(|t| t.hash == hash)
                    .map(|t| (d, t.clone()))
            })
            .expect("the transaction is in a block")
    };
    // Contract creations: no `to`, the created contract from the receipt, a CREATE frame
    // on top whose input is the init code (cut when long, its length kept).
    let mut creations = 0;
    for d in &details {
        for t in d.txs.iter().filter(|t| t.to.is_none()) {
            creations += 1;
            let created = t.created.expect("a creation names its contract");
            let top = d
                .calls
                .iter()
                .find(|c| c.tx_index == t.index && c.trace_address.is_empty())
                .expect("top frame");
            assert_eq!((top.kind, top.to), (CallKind::Create, created), "{top:#?}");
            assert_eq!(top.input_len, t.input.len());
            assert_eq!(
                &top.input[..],
                &t.input[..t.input.len().min(MAX_INPUT_BYTES)]
            );
        }
    }
    assert!(creations > 3, "the scenario deploys contracts");
    // A frame that reverted inside a successful transaction, with its children.
    for (tx, from, to, amount) in &expected.reverted_frames {
        let (d, t) = find_tx(*tx);
        assert!(t.success);
        let frame = d
            .calls
            .iter()
            .find(|c| c.tx_index == t.index && c.from == *from && c.to == *to && c.value == *amount)
            .expect("the reverted frame");
        assert!(frame.reverted, "{frame:#?}");
        let root = d
            .calls
            .iter()
            .find(|c| c.tx_index == t.index && c.trace_address.is_empty())
            .expect("root");
        assert!(!root.reverted);
        for c in d
            .calls
            .iter()
            .filter(|c| c.tx_index == t.index && c.trace_address.starts_with(&frame.trace_address))
        {
            assert!(c.reverted, "under a reverted frame: {c:#?}");
        }
    }
    // A failed transaction: every frame reverted, no logs, and the state it changed is the
    // gas paid (balances only: no storage, no code).
    assert!(!expected.failed.is_empty());
    for tx in &expected.failed {
        let (d, t) = find_tx(*tx);
        assert!(!t.success);
        let frames: Vec<_> = d.calls.iter().filter(|c| c.tx_index == t.index).collect();
        assert!(!frames.is_empty() && frames.iter().all(|c| c.reverted));
        assert!(d.logs.iter().all(|l| l.tx_index != t.index));
        let changed: Vec<_> = d
            .state
            .as_ref()
            .expect("state")
            .iter()
            .filter(|s| s.tx_index == t.index)
            .collect();
        assert!(
            changed.iter().any(|s| s.address == t.from),
            "the sender paid gas"
        );
        assert!(
            changed
                .iter()
                .all(|s| s.storage.is_empty() && !s.code_changed),
            "{changed:#?}"
        );
    }
}

/// Init code that runs `pre` in the constructor, then deploys `runtime`.
fn init_code(pre: &[u8], runtime: &[u8]) -> Bytes {
    let len = u8::try_from(runtime.len()).expect("short runtime");
    let offset = u8::try_from(pre.len() + 12).expect("short constructor");
    let mut code = pre.to_vec();
    code.extend([
        0x60, len, 0x60, offset, 0x60, 0, 0x39, 0x60, len, 0x60, 0, 0xf3,
    ]);
    code.extend(runtime);
    code.into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zeroed_slots_destroyed_accounts_and_long_inputs_are_exact() {
    // Shanghai: SELFDESTRUCT still deletes the account (Cancun keeps it).
    let node = Anvil::spawn_with(&["--hardfork", "shanghai"])
        .await
        .expect("anvil");
    let (a, b) = (dev_account(0), dev_account(1));
    // sstore(calldata[0], calldata[32]); the constructor sets slot 1 to 5.
    let store = node
        .deploy(
            a,
            &init_code(
                &[0x60, 5, 0x60, 1, 0x55],
                &[0x60, 0x20, 0x35, 0x60, 0, 0x35, 0x55, 0],
            ),
            &[],
        )
        .await
        .expect("store");
    // Reads slot 1, then selfdestructs to `b`; the constructor sets slot 1 to 5.
    let mut doomed = vec![0x60, 1, 0x54, 0x50, 0x73];
    doomed.extend(b.as_slice());
    doomed.push(0xff);
    let (_, receipt) = node
        .send(
            a,
            None,
            U256::from(3),
            init_code(&[0x60, 5, 0x60, 1, 0x55], &doomed),
            None,
        )
        .await
        .expect("deploy");
    let doomed: Address = serde_json::from_value(receipt["contractAddress"].clone()).expect("at");
    let mut zero_slot_one = [0u8; 64];
    zero_slot_one[31] = 1;
    // Slot 1 set to zero, with a long input (the contract reads its first 64 bytes).
    let mut long = zero_slot_one.to_vec();
    long.resize(MAX_INPUT_BYTES + 904, 0xab);
    let zero_tx = node
        .call_ok(a, store, U256::ZERO, long.clone().into())
        .await
        .expect("zero");
    let destroy_tx = node
        .call_ok(a, doomed, U256::ZERO, Bytes::new())
        .await
        .expect("destroy");

    for mode in [TraceMode::Geth, TraceMode::Parity] {
        let src = source(&node.http_url(), mode).await;
        let d = src
            .fetch_detail(block_of(&node, zero_tx).await)
            .await
            .expect("detail");
        let top = d
            .calls
            .iter()
            .find(|c| c.trace_address.is_empty())
            .expect("top frame");
        assert_eq!(top.input_len, long.len(), "{mode:?}");
        assert_eq!(&top.input[..], &long[..MAX_INPUT_BYTES], "{mode:?}");
        assert_eq!(
            d.txs[0].input.len(),
            long.len(),
            "the transaction keeps its input"
        );
        let change = d
            .state
            .as_ref()
            .expect("state")
            .iter()
            .find(|s| s.address == store)
            .unwrap_or_else(|| panic!("{mode:?}: {:#?}", d.state));
        assert_eq!(
            change.storage,
            vec![SlotChange {
                slot: B256::with_last_byte(1),
                before: B256::with_last_byte(5),
                after: B256::ZERO,
            }],
            "{mode:?}"
        );

        let d = src
            .fetch_detail(block_of(&node, destroy_tx).await)
            .await
            .expect("detail");
        assert!(
            d.calls
                .iter()
                .any(|c| c.kind == CallKind::SelfDestruct && c.from == doomed && c.to == b),
            "{mode:?}: {:#?}",
            d.calls
        );
        let gone = d
            .state
            .as_ref()
            .expect("state")
            .iter()
            .find(|s| s.address == doomed)
            .unwrap_or_else(|| panic!("{mode:?}: {:#?}", d.state));
        assert_eq!(gone.balance, Some((U256::from(3), U256::ZERO)), "{mode:?}");
        // The node lists only the slots the transaction touched (here none: the read
        // of slot 1 is not a change); each listed slot of a destroyed account is zero after.
        assert!(
            gone.storage.iter().all(|s| s.after == B256::ZERO),
            "{gone:#?}"
        );
        // geth's diff leaves a destroyed account out of `post`: its code is gone. anvil's
        // parity `stateDiff` reports the code as unchanged (`=`), so there the destruction
        // shows only as the balance leaving (docs/CHAIN.md).
        assert_eq!(
            gone.code_changed,
            mode == TraceMode::Geth,
            "{mode:?}: {gone:#?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_traces_the_detail_says_so() {
    let node = Anvil::spawn().await.expect("anvil");
    let tx = node
        .call_ok(dev_account(0), dev_account(1), U256::from(9), Bytes::new())
        .await
        .expect("send");
    let src = source(&node.http_url(), TraceMode::None).await;
    assert!(!src.serves_state_diff());
    let d = src
        .fetch_detail(block_of(&node, tx).await)
        .await
        .expect("detail");
    assert!(d.calls.is_empty() && !d.calls_complete && d.state.is_none());
    assert_eq!(d.txs.len(), 1);
    assert_eq!(d.txs[0].value, U256::from(9));
    assert_eq!(
        d.transfers,
        src.fetch_block(d.block().number).await.expect("block")
    );
}

/// A block hash the node does not know (a block reorged away between the head and the read)
/// is an error naming the method, never another block's value; too many reads at once are
/// refused before anything is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_by_block_hash_refuses_unknown_blocks_and_oversized_batches() {
    let node = Anvil::spawn().await.expect("anvil");
    let src = source(&node.http_url(), TraceMode::Parity).await;
    let genesis = src.block_ref(0).await.expect("genesis");
    let reads = [(dev_account(0), B256::ZERO)];
    let ok = src
        .storage_at(&reads, &[genesis.hash], 0)
        .await
        .expect("known block");
    assert_eq!(ok, vec![vec![B256::ZERO]]);
    let err = src
        .storage_at(&reads, &[B256::repeat_byte(0xab)], 7)
        .await
        .expect_err("unknown block hash");
    let text = err.to_string();
    assert!(
        text.contains("eth_getStorageAt") && text.contains('7'),
        "{text}"
    );
    let many = vec![(dev_account(0), B256::ZERO); holdfast_chain::state::MAX_STORAGE_READS + 1];
    let err = src
        .storage_at(&many, &[genesis.hash], 0)
        .await
        .expect_err("oversized batch");
    assert!(err.to_string().contains("at most"), "{err}");
}

/// Batched `eth_call`s: a revert is that call's answer; an error that is no revert (a block
/// the node does not have) fails the batch instead of passing for "the contract said no".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_calls_tell_a_revert_from_a_node_error() {
    let node = Anvil::spawn().await.expect("anvil");
    let token = holdfast_testkit::deploy::erc20(&node, dev_account(0), "T", "T")
        .await
        .expect("token");
    let src = source(&node.http_url(), TraceMode::Parity).await;
    let head = node.block_number().await.expect("head");
    let selector = |sig: &str| alloy_primitives::keccak256(sig)[..4].to_vec();
    let mut balance = selector("balanceOf(address)");
    balance.extend_from_slice(dev_account(0).into_word().as_slice());
    // From the zero address (no `from`), an ERC-20 transfer reverts.
    let mut transfer = selector("transfer(address,uint256)");
    transfer.extend_from_slice(dev_account(1).into_word().as_slice());
    transfer.extend_from_slice(&U256::from(1).to_be_bytes::<32>());
    let answers = src
        .calls_at(
            &[(token, balance.clone().into()), (token, transfer.into())],
            head,
        )
        .await
        .expect("one batch");
    assert_eq!(answers[0].as_ref().map(|b| b.len()), Ok(32));
    assert!(
        answers[1].is_err(),
        "the transfer reverts: {:?}",
        answers[1]
    );
    let err = src
        .calls_at(&[(token, balance.into())], head + 1_000)
        .await
        .expect_err("a block the node does not have");
    assert!(err.to_string().contains("eth_call"), "{err}");
}
