//! Unit tests of detectors 1–5 on hand-built blocks: each occurrence raises one alert, the
//! decoys beside it none.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::Mutex;

use alloy_primitives::{Address, B256, Bytes, U256, keccak256};
use holdfast_chain::CallKind;
use holdfast_guard::safe::{eip1967, mapping_slot, slots};
use holdfast_primitives::{Asset, Category};

use super::context::{AddressLabel, HistoryError};
use super::safes::topic;
use super::testing::*;
use super::{DetectorState, History, NoHistory, NoLabels, looks_like};
use crate::alert::{Alert, Place};

fn calldata(sig: &str, words: &[B256]) -> Bytes {
    let mut v = keccak256(sig.as_bytes())[..4].to_vec();
    for w in words {
        v.extend_from_slice(w.as_slice());
    }
    v.into()
}

fn num(n: U256) -> B256 {
    B256::from(n)
}

fn only(alerts: &[Alert]) -> &Alert {
    assert_eq!(
        alerts.len(),
        1,
        "{:#?}",
        alerts.iter().map(|a| &a.title).collect::<Vec<_>>()
    );
    &alerts[0]
}

const SAFE: u8 = 0x5a;
const ATTACKER: u8 = 0xa7;

fn storage_config(extra: &str) -> crate::config::WatchConfig {
    config(&format!(
        r#"
[[set]]
name = "treasury"
addresses = ["{}"]

[[rule]]
name = "treasury-config"
detector = "critical_storage"
targets = ["treasury"]
severity = "critical"
responses = ["freeze", "trace"]
{extra}
"#,
        addr(SAFE)
    ))
}

/// The Bybit shape: the owners' execTransaction runs a DELEGATECALL into the attacker's code,
/// which overwrites slot 0; no event.
fn bybit_block(number: u64, safe: Address) -> holdfast_chain::BlockDetail {
    let (singleton, swap, sweeper) = (addr(0x11), addr(0x22), addr(0x33));
    let mut b = block(number);
    let tx = b.tx(
        addr(ATTACKER),
        safe,
        U256::ZERO,
        calldata("execTransaction()", &[]),
    );
    b.call(
        tx,
        &[0],
        CallKind::DelegateCall,
        safe,
        singleton,
        U256::ZERO,
        Bytes::new(),
    )
    .call(
        tx,
        &[0, 0],
        CallKind::DelegateCall,
        safe,
        swap,
        U256::ZERO,
        Bytes::new(),
    )
    .slot(tx, safe, slots::SINGLETON, word(singleton), word(sweeper))
    .slot(
        tx,
        safe,
        num(U256::from(5)),
        num(U256::from(1)),
        num(U256::from(2)),
    );
    b.build()
}

#[test]
fn a_singleton_replaced_inside_a_delegatecall_is_one_critical_alert() {
    let cfg = storage_config("");
    let mut b = block(100);
    b.d = bybit_block(100, addr(SAFE));
    // A decoy: the same takeover on a Safe nobody watches.
    let other = bybit_block(100, addr(0x5b));
    let mut decoy = other.clone();
    for c in &mut decoy.calls {
        c.tx_index = 1;
    }
    for s in decoy.state.as_mut().unwrap() {
        s.tx_index = 1;
    }
    let mut tx = decoy.txs[0].clone();
    tx.index = 1;
    b.d.txs.push(tx);
    b.d.calls.extend(decoy.calls);
    b.d.state.as_mut().unwrap().extend(decoy.state.unwrap());
    let alerts = run(&cfg, &b.build(), &mut DetectorState::default());
    let a = only(&alerts);
    assert_eq!(a.severity, crate::Severity::Critical);
    assert!(
        a.title.contains("DELEGATECALL into 0x2222…2222"),
        "{}",
        a.title
    );
    assert!(a.title.contains("with no event"), "{}", a.title);
    assert!(a.title.contains("→ 0x3333…3333"), "{}", a.title);
    assert!(
        a.addresses
            .iter()
            .any(|n| n.role == "new singleton" && n.address == addr(0x33))
    );
    assert!(
        a.addresses
            .iter()
            .any(|n| n.role == "DELEGATECALL target" && n.address == addr(0x22))
    );
    assert!(
        a.facts.iter().any(|f| f.value.contains("[0,0]")),
        "{:?}",
        a.facts
    );
    assert!(matches!(a.place, Place::Storage { slot, .. } if slot == slots::SINGLETON));
    assert_eq!(a.evidence["change"], "singleton");
    assert_eq!(a.evidence["silent"], true);
    assert_eq!(
        a.evidence["delegatecall"]["trace_address"],
        serde_json::json!([0, 0])
    );
    assert_eq!(a.evidence["new_address"], serde_json::json!(addr(0x33)));
    assert_eq!(a.responses, vec!["freeze", "trace"]);
    assert!(
        a.links
            .iter()
            .any(|l| l.url.starts_with("https://etherscan.io/tx/0x"))
    );
}

#[test]
fn an_upgrade_seen_as_event_and_write_is_one_alert() {
    let cfg = storage_config("");
    let (proxy, new_impl) = (addr(SAFE), addr(0x77));
    let mut b = block(7);
    let tx = b.tx(
        addr(1),
        proxy,
        U256::ZERO,
        calldata("upgradeTo(address)", &[word(new_impl)]),
    );
    b.slot(
        tx,
        proxy,
        eip1967::IMPLEMENTATION,
        word(addr(0x76)),
        word(new_impl),
    );
    b.log(
        tx,
        proxy,
        vec![topic("Upgraded(address)"), word(new_impl)],
        vec![],
    );
    let alerts = run(&cfg, &b.build(), &mut DetectorState::default());
    let a = only(&alerts);
    assert!(
        a.title.contains("proxy implementation → 0x7777…7777"),
        "{}",
        a.title
    );
    assert!(!a.title.contains("no event"));
    assert_eq!(
        a.facts
            .iter()
            .filter(|f| f.name == "storage write" || f.name == "event")
            .count(),
        2
    );
}

#[test]
fn ownership_transferred_alerts_but_not_in_the_constructor() {
    let cfg = storage_config("");
    let c = addr(SAFE);
    let mut b = block(8);
    let tx = b.tx(
        addr(1),
        c,
        U256::ZERO,
        calldata("transferOwnership(address)", &[word(addr(9))]),
    );
    b.log(
        tx,
        c,
        vec![
            topic("OwnershipTransferred(address,address)"),
            word(addr(1)),
            word(addr(9)),
        ],
        vec![],
    );
    // An Ownable's owner variable at slot 3 is no Safe "owner count": the contract is not a
    // Safe (no Safe event, no proxy forwarding to its slot 0).
    b.slot(tx, c, num(U256::from(3)), word(addr(1)), word(addr(9)));
    let a = run(&cfg, &b.build(), &mut DetectorState::default());
    assert!(
        only(&a).title.contains("owner (Ownable) → 0x0909…0909"),
        "{}",
        a[0].title
    );

    let mut b = block(8);
    let tx = b.tx(addr(1), addr(2), U256::ZERO, Bytes::new());
    b.d.txs[0].created = Some(c);
    b.log(
        tx,
        c,
        vec![
            topic("OwnershipTransferred(address,address)"),
            word(Address::ZERO),
            word(addr(1)),
        ],
        vec![],
    );
    assert!(run(&cfg, &b.build(), &mut DetectorState::default()).is_empty());
}

#[test]
fn an_added_owner_is_decoded_from_the_owners_list() {
    let cfg = storage_config("");
    let (safe, old, new) = (addr(SAFE), addr(0x0a), addr(0x0b));
    let sentinel = Address::with_last_byte(1);
    let mut b = block(9);
    let tx = b.tx(addr(1), safe, U256::ZERO, Bytes::new());
    b.slot(
        tx,
        safe,
        mapping_slot(new, slots::OWNERS_MAPPING),
        B256::ZERO,
        word(old),
    )
    .slot(
        tx,
        safe,
        mapping_slot(sentinel, slots::OWNERS_MAPPING),
        word(old),
        word(new),
    )
    .slot(
        tx,
        safe,
        num(U256::from(3)),
        num(U256::from(1)),
        num(U256::from(2)),
    );
    b.log(
        tx,
        safe,
        vec![topic("AddedOwner(address)")],
        word(new).to_vec(),
    );
    let alerts = run(&cfg, &b.build(), &mut DetectorState::default());
    let a = only(&alerts);
    assert!(
        a.facts.iter().any(|f| f
            .value
            .contains(&format!("owner {} added", new.to_checksum(None)))),
        "{:#?}",
        a.facts
    );
    assert!(
        a.facts
            .iter()
            .any(|f| f.value.contains("owner count (slot 3): 1 → 2"))
    );
    // A rule restricted to the singleton stays quiet.
    let cfg = storage_config("changes = [\"singleton\"]");
    assert!(run(&cfg, &b.build(), &mut DetectorState::default()).is_empty());
}

#[test]
fn a_safe_owned_by_a_watched_owner_joins_its_set() {
    let owner = addr(0x0e);
    let cfg = config(&format!(
        r#"
[[set]]
name = "ours"
safes_owned_by = ["{owner}"]

[[rule]]
name = "ours-config"
detector = "critical_storage"
targets = ["ours"]
"#
    ));
    let safe = addr(0x5c);
    let mut state = DetectorState::default();
    let mut b = block(10);
    let tx = b.tx(addr(1), addr(2), U256::ZERO, Bytes::new());
    b.slot(
        tx,
        safe,
        mapping_slot(owner, slots::OWNERS_MAPPING),
        B256::ZERO,
        word(Address::with_last_byte(1)),
    );
    b.d.state.as_mut().unwrap()[0].code_changed = true;
    assert!(
        run(&cfg, &b.build(), &mut state).is_empty(),
        "its setup is no alert"
    );
    assert!(state.chains["eth"].is_dynamic_member("ours", safe));
    let alerts = run(&cfg, &bybit_block(11, safe), &mut state);
    assert_eq!(only(&alerts).addresses[0].address, safe);

    // Without a state diff: SafeSetup names the owner.
    let mut state = DetectorState::default();
    let mut b = block(10);
    b.d.state = None;
    let tx = b.tx(addr(1), addr(2), U256::ZERO, Bytes::new());
    let mut data = Vec::new();
    for w in [
        num(U256::from(128)),
        num(U256::from(1)),
        B256::ZERO,
        B256::ZERO,
        num(U256::from(1)),
        word(owner),
    ] {
        data.extend_from_slice(w.as_slice());
    }
    b.log(
        tx,
        safe,
        vec![
            topic("SafeSetup(address,address[],uint256,address,address)"),
            word(addr(1)),
        ],
        data,
    );
    run(&cfg, &b.build(), &mut state);
    assert!(state.chains["eth"].is_dynamic_member("ours", safe));
}

fn outflow_config(params: &str) -> crate::config::WatchConfig {
    config(&format!(
        r#"
[[set]]
name = "hot"
addresses = ["{}"]

[[rule]]
name = "hot-out"
detector = "outflow"
targets = ["hot"]
severity = "high"
{params}
"#,
        addr(0x01)
    ))
}

#[test]
fn a_large_payment_to_a_new_destination_is_one_alert_with_both_reasons() {
    let cfg =
        outflow_config("amount_above = { ETH = \"100\", USDC = \"1000\" }\nnew_destination = true");
    let (w, d) = (addr(0x01), addr(0xd1));
    let mut b = block(20);
    let tx = b.tx(w, d, eth(150), Bytes::new());
    b.transfer(tx, call_pos(&[]), w, d, Asset::Native, eth(150));
    let tx = b.tx(w, USDC, U256::ZERO, Bytes::new());
    b.transfer(
        tx,
        log_pos(0),
        w,
        d,
        Asset::Erc20 { token: USDC },
        U256::from(500_000_000u64),
    );
    let mut state = DetectorState::default();
    let alerts = run(&cfg, &b.build(), &mut state);
    let a = only(&alerts);
    assert!(a.title.contains("150 ETH"), "{}", a.title);
    assert!(
        a.title.contains("more than 100 ETH") && a.title.contains("first payment"),
        "{}",
        a.title
    );
    // The same destination later is known (the history seam: the store holds block 20), and
    // 500 USDC is below 1000.
    let mut h = history();
    h.paid.push((w, d));
    let mut b = block(21);
    let tx = b.tx(w, d, eth(1), Bytes::new());
    b.transfer(tx, call_pos(&[]), w, d, Asset::Native, eth(1));
    assert!(run_with(&cfg, &b.build(), &mut state, &NoLabels, &h).is_empty());
}

struct FakeHistory {
    paid: Vec<(Address, Address)>,
    balances: HashMap<(Address, u64), U256>,
    counterparties: Vec<Address>,
    calls: Mutex<usize>,
}

impl History for FakeHistory {
    fn has_paid(&self, _: u64, from: Address, to: Address, _: u64) -> Result<bool, HistoryError> {
        *self.calls.lock().unwrap() += 1;
        Ok(self.paid.contains(&(from, to)))
    }
    fn counterparties(
        &self,
        _: u64,
        _: Address,
        _: u64,
        _: usize,
    ) -> Result<Vec<Address>, HistoryError> {
        Ok(self.counterparties.clone())
    }
    fn token_balance(
        &self,
        _: u64,
        holder: Address,
        _: Address,
        block: u64,
    ) -> Result<Option<U256>, HistoryError> {
        Ok(self.balances.get(&(holder, block)).copied())
    }
}

fn history() -> FakeHistory {
    FakeHistory {
        paid: Vec::new(),
        balances: HashMap::new(),
        counterparties: Vec::new(),
        calls: Mutex::new(0),
    }
}

#[test]
fn a_destination_the_store_knows_is_not_new() {
    let cfg = outflow_config("new_destination = true");
    let (w, d) = (addr(0x01), addr(0xd1));
    let mut h = history();
    h.paid.push((w, d));
    let mut b = block(20);
    let tx = b.tx(w, d, eth(1), Bytes::new());
    b.transfer(tx, call_pos(&[]), w, d, Asset::Native, eth(1));
    assert!(
        run_with(
            &cfg,
            &b.build(),
            &mut DetectorState::default(),
            &NoLabels,
            &h
        )
        .is_empty()
    );
}

#[test]
fn velocity_alerts_once_per_episode() {
    let cfg = outflow_config(
        "velocity = { window = \"1h\", count_above = 2, amount_above = { ETH = \"10\" } }",
    );
    let w = addr(0x01);
    let mut state = DetectorState::default();
    let mut fired = Vec::new();
    for n in 30..36u64 {
        let mut b = block(n);
        let to = addr(0x80 + n as u8);
        let tx = b.tx(w, to, eth(1), Bytes::new());
        b.transfer(tx, call_pos(&[]), w, to, Asset::Native, eth(1));
        fired.push(run(&cfg, &b.build(), &mut state).len());
    }
    assert_eq!(
        fired,
        vec![0, 0, 1, 0, 0, 0],
        "the third outflow within an hour, once"
    );
    // Far later the window is empty again: the episode closes, a new burst alerts again.
    let mut fired = Vec::new();
    for n in 1000..1003u64 {
        let mut b = block(n);
        let tx = b.tx(w, addr(2), eth(1), Bytes::new());
        b.transfer(tx, call_pos(&[]), w, addr(2), Asset::Native, eth(1));
        fired.push(run(&cfg, &b.build(), &mut state).len());
    }
    assert_eq!(fired, vec![0, 0, 1]);
}

#[test]
fn a_drain_of_the_native_balance_is_one_alert_and_a_decoy_loss_none() {
    let cfg = outflow_config("drain = { percent = 50, blocks = 10 }\nwhole_balance = true");
    let (w, thief) = (addr(0x01), addr(0xbb));
    let mut state = DetectorState::default();
    let mut b = block(40);
    let tx = b.tx(w, thief, eth(4000), Bytes::new());
    b.transfer(tx, call_pos(&[]), w, thief, Asset::Native, eth(4000));
    b.balance(tx, w, eth(10_000), eth(6_000));
    assert!(
        run(&cfg, &b.build(), &mut state).is_empty(),
        "40 % is not more than 50 %"
    );
    let mut b = block(41);
    let tx = b.tx(w, thief, eth(6000), Bytes::new());
    b.transfer(tx, call_pos(&[]), w, thief, Asset::Native, eth(6000));
    b.balance(tx, w, eth(6_000), U256::ZERO);
    let alerts = run(&cfg, &b.build(), &mut state);
    assert_eq!(
        alerts.len(),
        2,
        "{:#?}",
        alerts.iter().map(|a| &a.title).collect::<Vec<_>>()
    );
    let drain = alerts.iter().find(|a| a.title.contains("drained")).unwrap();
    assert!(
        drain.title.contains("10000 ETH lost (100.00 %)"),
        "{}",
        drain.title
    );
    assert!(drain.addresses.iter().any(|n| n.address == thief));
    assert!(
        alerts
            .iter()
            .any(|a| a.title.contains("whole balance left (10000 ETH)")
                || a.title.contains("whole balance left (6000 ETH)"))
    );
    // Still drained next block: the same episode, no new alert.
    let mut b = block(42);
    let tx = b.tx(addr(7), w, eth(1), Bytes::new());
    b.balance(tx, w, U256::ZERO, eth(1));
    assert!(run(&cfg, &b.build(), &mut state).is_empty());
}

#[test]
fn an_erc20_drain_uses_the_history_balances() {
    let cfg = outflow_config("drain = { percent = 90, blocks = 5, assets = [\"USDC\"] }");
    let (w, thief) = (addr(0x01), addr(0xbb));
    let mut h = history();
    h.balances.insert((w, 45), U256::from(1_000_000_000u64));
    h.balances.insert((w, 50), U256::from(1_000_000u64));
    let mut b = block(50);
    let tx = b.tx(w, USDC, U256::ZERO, Bytes::new());
    b.transfer(
        tx,
        log_pos(0),
        w,
        thief,
        Asset::Erc20 { token: USDC },
        U256::from(999_000_000u64),
    );
    let alerts = run_with(
        &cfg,
        &b.build(),
        &mut DetectorState::default(),
        &NoLabels,
        &h,
    );
    assert!(
        only(&alerts).title.contains("999 USDC lost (99.90 %)"),
        "{}",
        alerts[0].title
    );
}

#[test]
fn any_nft_leaving_alerts() {
    let cfg = outflow_config("any_nft = true");
    let w = addr(0x01);
    let nft = addr(0x9f);
    let mut b = block(60);
    let tx = b.tx(w, nft, U256::ZERO, Bytes::new());
    b.transfer(
        tx,
        log_pos(0),
        w,
        addr(2),
        Asset::Erc721 {
            token: nft,
            id: U256::from(42),
        },
        U256::from(1),
    );
    assert!(
        only(&run(&cfg, &b.build(), &mut DetectorState::default()))
            .title
            .contains("NFT #42")
    );
}

fn grant_config(extra: &str) -> crate::config::WatchConfig {
    config(&format!(
        r#"
[[set]]
name = "wallets"
addresses = ["{}", "{}"]

[[set]]
name = "routers"
addresses = ["{}"]

[[rule]]
name = "grants"
detector = "grant"
targets = ["wallets"]
allowlist = ["routers"]
{extra}
"#,
        addr(0x01),
        addr(SAFE),
        addr(0x70)
    ))
}

fn approval_log(
    b: &mut BlockBuilder,
    tx: u32,
    token: Address,
    owner: Address,
    spender: Address,
    amount: U256,
) {
    b.log(
        tx,
        token,
        vec![
            topic("Approval(address,address,uint256)"),
            word(owner),
            word(spender),
        ],
        num(amount).to_vec(),
    );
}

#[test]
fn an_unlimited_approval_is_one_alert_and_allowlisted_or_revoked_ones_none() {
    let cfg = grant_config("");
    let (w, spender, router) = (addr(0x01), addr(0xbe), addr(0x70));
    let mut b = block(70);
    for (s, amount) in [
        (spender, U256::MAX),
        (router, U256::MAX),
        (spender, U256::ZERO),
    ] {
        let tx = b.tx(
            w,
            USDC,
            U256::ZERO,
            calldata("approve(address,uint256)", &[word(s), num(amount)]),
        );
        approval_log(&mut b, tx, USDC, w, s, amount);
    }
    let alerts = run(&cfg, &b.build(), &mut DetectorState::default());
    let a = only(&alerts);
    assert!(
        a.title
            .contains("unlimited grant of UNLIMITED USDC to unknown spender 0xBEbe…bebe"),
        "{}",
        a.title
    );
    assert!(
        matches!(&a.place, Place::Call { tx_index: 0, trace_address } if trace_address.is_empty())
    );
    assert_eq!(a.evidence["grants"][0]["unlimited"], true);
    assert_eq!(a.evidence["spender"], serde_json::json!(spender));

    // Without traces: the payload and the event still make one alert.
    let mut b2 = b.build();
    b2.calls.clear();
    b2.calls_complete = false;
    let alerts = run(&cfg, &b2, &mut DetectorState::default());
    assert!(
        matches!(
            only(&alerts).place,
            Place::Log {
                tx_index: 0,
                log_index: 0
            }
        ),
        "{:?}",
        alerts[0].place
    );
}

#[test]
fn a_permit_submitted_by_a_relayer_names_the_owner() {
    let cfg = grant_config("");
    let (w, spender, relayer) = (addr(0x01), addr(0xbe), addr(0x99));
    let mut b = block(71);
    let input = calldata(
        "permit(address,address,uint256,uint256,uint8,bytes32,bytes32)",
        &[
            word(w),
            word(spender),
            num(U256::from(5_000_000u64)),
            num(U256::from(9_999_999_999u64)),
            num(U256::from(27)),
            B256::repeat_byte(1),
            B256::repeat_byte(2),
        ],
    );
    let tx = b.tx(relayer, USDC, U256::ZERO, input);
    approval_log(&mut b, tx, USDC, w, spender, U256::from(5_000_000u64));
    let alerts = run(&cfg, &b.build(), &mut DetectorState::default());
    let a = only(&alerts);
    assert!(a.title.contains("grant of 5 USDC"), "{}", a.title);
    assert!(
        a.facts
            .iter()
            .any(|f| f.value.starts_with("EIP-2612 permit")),
        "{:?}",
        a.facts
    );
    // unlimited_only: a bounded permit is not reported.
    let cfg = grant_config("unlimited_only = true");
    assert!(run(&cfg, &b.build(), &mut DetectorState::default()).is_empty());
}

#[test]
fn a_safe_frame_approving_and_set_approval_for_all_alert() {
    let cfg = grant_config("");
    let (safe, spender, nft) = (addr(SAFE), addr(0xbe), addr(0x9f));
    let mut b = block(72);
    let tx = b.tx(
        addr(0x02),
        safe,
        U256::ZERO,
        calldata("execTransaction()", &[]),
    );
    b.call(
        tx,
        &[0],
        CallKind::DelegateCall,
        safe,
        addr(0x11),
        U256::ZERO,
        Bytes::new(),
    );
    b.call(
        tx,
        &[0, 0],
        CallKind::Call,
        safe,
        nft,
        U256::ZERO,
        calldata(
            "setApprovalForAll(address,bool)",
            &[word(spender), num(U256::from(1))],
        ),
    );
    let alerts = run(&cfg, &b.build(), &mut DetectorState::default());
    assert!(
        only(&alerts).title.contains("every token of"),
        "{}",
        alerts[0].title
    );
}

#[test]
fn an_approval_event_from_spending_an_allowance_is_no_grant() {
    let cfg = grant_config("");
    let (w, spender) = (addr(0x01), addr(0xbe));
    let mut b = block(73);
    b.d.calls_complete = false;
    let tx = b.tx(
        spender,
        USDC,
        U256::ZERO,
        calldata(
            "transferFrom(address,address,uint256)",
            &[word(w), word(spender), num(U256::from(1))],
        ),
    );
    b.d.calls.clear();
    b.log(
        tx,
        USDC,
        vec![
            topic("Transfer(address,address,uint256)"),
            word(w),
            word(spender),
        ],
        num(U256::from(1)).to_vec(),
    );
    approval_log(&mut b, tx, USDC, w, spender, U256::from(99));
    assert!(run(&cfg, &b.build(), &mut DetectorState::default()).is_empty());
}

fn counterparty_config(extra: &str) -> crate::config::WatchConfig {
    config(&format!(
        r#"
[[set]]
name = "hot"
addresses = ["{}"]

[[rule]]
name = "bad-company"
detector = "counterparty"
targets = ["hot"]
severity = "high"
{extra}
"#,
        addr(0x01)
    ))
}

fn sdn() -> AddressLabel {
    AddressLabel {
        category: Category::Sanctioned,
        text: "ofac-sdn: LAZARUS GROUP (sanctioned)".into(),
    }
}

#[test]
fn a_payment_to_a_sanctioned_address_alerts_once_and_labels_added_later_count() {
    let cfg = counterparty_config("");
    let (w, bad, fine) = (addr(0x01), addr(0x66), addr(0x67));
    let mut b = block(80);
    let tx = b.tx(w, bad, eth(1), Bytes::new());
    b.transfer(tx, call_pos(&[]), w, bad, Asset::Native, eth(1));
    let tx = b.tx(w, fine, eth(1), Bytes::new());
    b.transfer(tx, call_pos(&[]), w, fine, Asset::Native, eth(1));
    let block = b.build();
    assert!(
        run(&cfg, &block, &mut DetectorState::default()).is_empty(),
        "no labels yet"
    );
    let labels: HashMap<Address, Vec<AddressLabel>> = [(bad, vec![sdn()])].into();
    let alerts = run_with(
        &cfg,
        &block,
        &mut DetectorState::default(),
        &labels,
        &NoHistory,
    );
    let a = only(&alerts);
    assert!(
        a.title.contains("sent to sanctioned address 0x6666…6666"),
        "{}",
        a.title
    );
    assert!(a.addresses[1].labels == vec!["ofac-sdn: LAZARUS GROUP (sanctioned)".to_owned()]);
    // Direction `in` ignores what the wallet sends.
    let cfg = counterparty_config("direction = \"in\"");
    assert!(
        run_with(
            &cfg,
            &block,
            &mut DetectorState::default(),
            &labels,
            &NoHistory
        )
        .is_empty()
    );
}

fn poisoning_config() -> crate::config::WatchConfig {
    config(&format!(
        r#"
[[set]]
name = "hot"
addresses = ["{}"]

[[rule]]
name = "poison"
detector = "poisoning"
targets = ["hot"]
"#,
        addr(0x01)
    ))
}

#[test]
fn zero_value_and_fake_token_transfers_the_wallet_did_not_make_alert() {
    let cfg = poisoning_config();
    let (w, poisoner, fake) = (addr(0x01), addr(0xf0), addr(0xfa));
    let mut b = block(90);
    let tx = b.tx(poisoner, USDC, U256::ZERO, Bytes::new());
    b.transfer(
        tx,
        log_pos(0),
        w,
        addr(0xf1),
        Asset::Erc20 { token: USDC },
        U256::ZERO,
    );
    let tx = b.tx(poisoner, fake, U256::ZERO, Bytes::new());
    b.transfer(
        tx,
        log_pos(1),
        w,
        addr(0xf2),
        Asset::Erc20 { token: fake },
        U256::from(1000),
    );
    // Decoy: the wallet's own zero transfer.
    let tx = b.tx(w, USDC, U256::ZERO, Bytes::new());
    b.transfer(
        tx,
        log_pos(2),
        w,
        addr(0xf3),
        Asset::Erc20 { token: USDC },
        U256::ZERO,
    );
    let alerts = run(&cfg, &b.build(), &mut DetectorState::default());
    assert_eq!(
        alerts.len(),
        2,
        "{:#?}",
        alerts.iter().map(|a| &a.title).collect::<Vec<_>>()
    );
    assert!(alerts[0].title.contains("zero-value"));
    assert!(alerts[1].title.contains("fake token"));
}

#[test]
fn a_look_alike_of_a_past_counterparty_alerts() {
    let cfg = poisoning_config();
    let w = addr(0x01);
    let real: Address = "0xabcd000000000000000000000000000000001234"
        .parse()
        .unwrap();
    let fake: Address = "0xabcd999999999999999999999999999999991234"
        .parse()
        .unwrap();
    let mut b = block(96);
    let tx = b.tx(fake, w, U256::from(1), Bytes::new());
    b.transfer(tx, call_pos(&[]), fake, w, Asset::Native, U256::from(1));
    let tx = b.tx(addr(0x44), w, U256::from(1), Bytes::new());
    b.transfer(
        tx,
        call_pos(&[]),
        addr(0x44),
        w,
        Asset::Native,
        U256::from(1),
    );
    // Without a past, nothing looks like anything.
    assert!(run(&cfg, &b.build(), &mut DetectorState::default()).is_empty());
    // The wallet paid `real` before (the history seam): `fake` imitates it, 0x4444… does not.
    let mut h = history();
    h.counterparties.push(real);
    let alerts = run_with(
        &cfg,
        &b.build(),
        &mut DetectorState::default(),
        &NoLabels,
        &h,
    );
    assert!(
        only(&alerts).title.contains("looks like"),
        "{}",
        alerts[0].title
    );
}

#[test]
fn running_a_block_twice_gives_the_same_alerts_and_state() {
    let cfg =
        outflow_config("velocity = { window = \"1h\", count_above = 1 }\nnew_destination = true");
    let w = addr(0x01);
    let mut state = DetectorState::default();
    let mut b = block(30);
    let tx = b.tx(w, addr(2), eth(1), Bytes::new());
    b.transfer(tx, call_pos(&[]), w, addr(2), Asset::Native, eth(1));
    run(&cfg, &b.build(), &mut state);
    let mut b = block(31);
    let tx = b.tx(w, addr(3), eth(1), Bytes::new());
    b.transfer(tx, call_pos(&[]), w, addr(3), Asset::Native, eth(1));
    let before = state.clone();
    let first = run(&cfg, &b.build(), &mut state);
    let after = state.clone();
    let again = run(&cfg, &b.build(), &mut state);
    assert_eq!(first, again);
    assert_eq!(state, after);
    assert_ne!(before, after);
    assert_eq!(first.len(), 2, "velocity and a new destination");
}

#[test]
fn a_replayed_block_without_transactions_raises_no_poisoning_it_cannot_know() {
    // Replay from the store has transfers only: who made a transfer is unknown, so a
    // zero-value transfer "from" the wallet is not called poisoning there.
    let cfg = poisoning_config();
    let w = addr(0x01);
    let mut b = block(90);
    b.d.calls_complete = false;
    b.d.state = None;
    b.transfer(
        0,
        log_pos(0),
        w,
        addr(0xf1),
        Asset::Erc20 { token: USDC },
        U256::ZERO,
    );
    assert!(run(&cfg, &b.build(), &mut DetectorState::default()).is_empty());
}

#[test]
fn trace_plans_follow_the_deposit_rule() {
    use crate::engine::Rules;
    let cfg = config(&format!(
        r#"
[[set]]
name = "hot"
addresses = ["{}"]

[[rule]]
name = "drain"
detector = "outflow"
targets = ["hot"]
severity = "critical"
drain = {{ percent = 50, blocks = 10 }}
responses = ["freeze", "trace"]
trace = {{ policies = ["fifo", "haircut"], hops = 12 }}

[[rule]]
name = "deposits"
detector = "tainted_deposit"
severity = "high"
responses = ["notify", "label"]
"#,
        addr(1)
    ));
    let intel: std::sync::Arc<dyn crate::engine::IntelView> = std::sync::Arc::new(
        arc_swap::ArcSwap::from_pointee(holdfast_intel::IndexBuilder::with_capacity(0).finish()),
    );
    let rules = super::FileRules::new(&cfg, intel, std::sync::Arc::new(NoHistory));
    let plan = rules.trace_plan("drain").unwrap();
    assert_eq!(plan.deposit_rule, "deposits");
    assert_eq!(plan.max_hops, 12);
    assert_eq!(
        plan.policies,
        vec![
            holdfast_trace::Policy::Fifo,
            holdfast_trace::Policy::Haircut
        ]
    );
    assert_eq!(plan.responses, vec!["notify", "label"]);
    assert_eq!(plan.severity, crate::Severity::High);
    assert!(rules.trace_plan("deposits").is_none());

    // Through the engine's seam: the state round-trips as JSON.
    let chain = crate::follow::ChainInfo {
        chain_id: 1,
        name: "eth".into(),
        explorer: None,
    };
    let mut b = block(41);
    let tx = b.tx(addr(1), addr(0xbb), eth(6000), Bytes::new());
    b.transfer(
        tx,
        call_pos(&[]),
        addr(1),
        addr(0xbb),
        Asset::Native,
        eth(6000),
    );
    b.balance(tx, addr(1), eth(6000), U256::ZERO);
    let mut state = serde_json::Value::Null;
    let alerts = rules
        .detect(&chain, &b.build(), &mut state)
        .expect("detects");
    assert_eq!(alerts.len(), 1);
    // Until flushed, the JSON is only a handle on the state the rules hold.
    assert_eq!(state[super::STATE_PENDING], true);
    rules.flush_state(&chain, &mut state).expect("flush");
    assert_eq!(state["chains"]["eth"]["last_block"], 41);
}

struct Down;

impl History for Down {
    fn has_paid(&self, _: u64, _: Address, _: Address, _: u64) -> Result<bool, HistoryError> {
        Err(HistoryError {
            message: "database down".into(),
            outage: Some(super::Outage::Store),
        })
    }
    fn counterparties(
        &self,
        _: u64,
        _: Address,
        _: u64,
        _: usize,
    ) -> Result<Vec<Address>, HistoryError> {
        Ok(Vec::new())
    }
    fn token_balance(
        &self,
        _: u64,
        _: Address,
        _: Address,
        _: u64,
    ) -> Result<Option<U256>, HistoryError> {
        Ok(None)
    }
}

#[test]
fn a_history_that_fails_leaves_the_state_as_it_was() {
    // Velocity (state written before the history is asked) and a new destination (the
    // history fails): the block fails whole.
    let cfg = outflow_config(
        "velocity = { window = \"1h\", count_above = 0 }\nnew_destination = true\ndrain = { percent = 10, blocks = 5 }",
    );
    let w = addr(0x01);
    let mut state = DetectorState::default();
    let mut b = block(30);
    let tx = b.tx(w, addr(2), eth(1), Bytes::new());
    b.transfer(tx, call_pos(&[]), w, addr(2), Asset::Native, eth(1));
    b.balance(tx, w, eth(10), eth(9));
    run(&cfg, &b.build(), &mut state);
    let before = state.clone();
    let mut b = block(31);
    let tx = b.tx(w, addr(3), eth(8), Bytes::new());
    b.transfer(tx, call_pos(&[]), w, addr(3), Asset::Native, eth(8));
    b.balance(tx, w, eth(9), eth(1));
    let d = super::Detectors::new(&cfg);
    let cx = super::Context {
        chain: "eth",
        confirmations: 0,
        labels: &NoLabels,
        history: &Down,
    };
    let e = d.run(&b.build(), &mut state, &cx).unwrap_err();
    assert!(e.to_string().contains("database down"), "{e}");
    let cs = &state.chains["eth"];
    let was = &before.chains["eth"];
    assert_eq!(cs.last_block, was.last_block);
    assert_eq!(cs.velocity, was.velocity);
    assert_eq!(cs.episodes, was.episodes);
    // Balance samples of the failed block are gone; the one at its parent is a fact either way.
    assert!(cs.balances[&w].iter().all(|(b, _)| *b <= 30));
    // The same block succeeds once the history is back, with its alerts (the velocity episode
    // opened at block 30 is still open: no second velocity alert).
    let alerts = run(&cfg, &b.build(), &mut state);
    assert_eq!(
        alerts.len(),
        2,
        "{:#?}",
        alerts.iter().map(|a| &a.title).collect::<Vec<_>>()
    );
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    /// One generated block: native payments `(from wallet index, to index, amount)` with the
    /// balance changes they make, and now and then an approve from a wallet.
    fn blocks() -> impl Strategy<Value = Vec<Vec<(u8, u8, u64, bool)>>> {
        prop::collection::vec(
            prop::collection::vec((0u8..3, 0u8..6, 1u64..400, any::<bool>()), 0..4),
            1..12,
        )
    }

    fn build(
        n: u64,
        pays: &[(u8, u8, u64, bool)],
        balances: &mut [u64; 3],
    ) -> holdfast_chain::BlockDetail {
        let mut b = block(n);
        for (from, to, amount, approve) in pays {
            let (w, d) = (addr(0x01 + from), addr(0xd0 + to));
            let amount = (*amount).min(balances[*from as usize]);
            let input = if *approve {
                calldata("approve(address,uint256)", &[word(d), num(U256::MAX)])
            } else {
                Bytes::new()
            };
            let tx = b.tx(
                w,
                if *approve { USDC } else { d },
                U256::from(amount),
                input,
            );
            if !*approve && amount > 0 {
                b.transfer(tx, call_pos(&[]), w, d, Asset::Native, U256::from(amount));
                let before = balances[*from as usize];
                balances[*from as usize] -= amount;
                b.balance(
                    tx,
                    w,
                    U256::from(before),
                    U256::from(balances[*from as usize]),
                );
            }
        }
        b.build()
    }

    fn cfg() -> crate::config::WatchConfig {
        config(&format!(
            r#"
[[set]]
name = "w"
addresses = ["{}", "{}", "{}"]

[[rule]]
name = "out"
detector = "outflow"
targets = ["w"]
amount_above = {{ ETH = "0.0000000000000002" }}
velocity = {{ window = "1m", count_above = 2 }}
drain = {{ percent = 30, blocks = 3 }}
whole_balance = true

[[rule]]
name = "grants"
detector = "grant"
targets = ["w"]
"#,
            addr(1),
            addr(2),
            addr(3)
        ))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// A reorg unwinds the state exactly: running blocks 1..=n, unwinding above k and
        /// running k+1..=n again gives the same alerts and the same state as running them
        /// once; and running any block twice in a row changes nothing.
        #[test]
        fn unwind_then_rerun_is_the_same_as_running_once(chain in blocks(), k in 0usize..12) {
            let cfg = cfg();
            let mut balances = [1000u64; 3];
            let details: Vec<_> = chain
                .iter()
                .enumerate()
                .map(|(i, p)| build(i as u64 + 1, p, &mut balances))
                .collect();
            let k = k.min(details.len());
            let mut straight = DetectorState::default();
            let mut alerts = Vec::new();
            for d in &details {
                alerts.push(run(&cfg, d, &mut straight));
            }
            let mut state = DetectorState::default();
            for d in &details {
                run(&cfg, d, &mut state);
            }
            state.unwind_above("eth", k as u64);
            for (i, d) in details.iter().enumerate().skip(k) {
                let again = run(&cfg, d, &mut state);
                prop_assert_eq!(&again, &alerts[i]);
                let twice = run(&cfg, d, &mut state);
                prop_assert_eq!(&twice, &alerts[i]);
            }
            prop_assert_eq!(state, straight);
        }
    }
}

#[test]
fn file_rules_reuse_the_typed_state_only_for_the_json_they_returned() {
    use crate::engine::Rules;
    let cfg = outflow_config("drain = { percent = 50, blocks = 10 }");
    let intel: std::sync::Arc<dyn crate::engine::IntelView> = std::sync::Arc::new(
        arc_swap::ArcSwap::from_pointee(holdfast_intel::IndexBuilder::with_capacity(0).finish()),
    );
    let rules = super::FileRules::new(&cfg, intel, std::sync::Arc::new(NoHistory));
    let chain = crate::follow::ChainInfo {
        chain_id: 1,
        name: "eth".into(),
        explorer: None,
    };
    let w = addr(1);
    let drained = |n: u64, before: u64, after: u64| {
        let mut b = block(n);
        let tx = b.tx(w, addr(0xbb), eth(before - after), Bytes::new());
        b.transfer(
            tx,
            call_pos(&[]),
            w,
            addr(0xbb),
            Asset::Native,
            eth(before - after),
        );
        b.balance(tx, w, eth(before), eth(after));
        b.build()
    };
    let mut state = serde_json::Value::Null;
    assert_eq!(
        rules
            .detect(&chain, &drained(41, 100, 40), &mut state)
            .unwrap()
            .len(),
        1
    );
    let mut after_41 = state.clone();
    rules.flush_state(&chain, &mut after_41).expect("flush");
    assert!(after_41[super::STATE_STAMP].is_string());
    assert!(after_41.get(super::STATE_PENDING).is_none(), "flushed");
    // The drain episode is open: no second alert, whether the typed state is reused...
    assert!(
        rules
            .detect(&chain, &drained(42, 40, 30), &mut state)
            .unwrap()
            .is_empty()
    );
    // ...or the JSON is decoded (a checkpoint reloaded: another stamp).
    let mut reloaded = after_41.clone();
    reloaded[super::STATE_STAMP] = serde_json::json!("from-disk");
    assert!(
        rules
            .detect(&chain, &drained(42, 40, 30), &mut reloaded)
            .unwrap()
            .is_empty()
    );
    // A JSON other than the one the rules returned (another stamp) is decoded: here a state
    // without the episode, so the drain alerts again.
    let mut edited = reloaded.clone();
    rules.flush_state(&chain, &mut edited).expect("flush");
    edited["chains"]["eth"]["episodes"] = serde_json::json!({});
    edited[super::STATE_STAMP] = serde_json::json!("edited");
    assert_eq!(
        rules
            .detect(&chain, &drained(43, 30, 10), &mut edited)
            .unwrap()
            .len(),
        1
    );
    // A handle this instance does not hold is refused, never decoded as an empty state.
    let mut stranger = after_41.clone();
    stranger[super::STATE_PENDING] = serde_json::json!(true);
    stranger[super::STATE_STAMP] = serde_json::json!("another-process");
    assert!(matches!(
        rules.detect(&chain, &drained(42, 40, 30), &mut stranger),
        Err(super::RulesError::Pending)
    ));
}

/// `looks_like` on bytes says what the hex strings say (lower-case hex: checksum case plays
/// no part), for random pairs that share some leading and trailing characters.
#[test]
fn looks_like_matches_the_hex_strings() {
    let reference = |a: Address, b: Address, p: usize, s: usize| {
        let (x, y) = (hex::encode(a), hex::encode(b));
        a != b && x[..p] == y[..p] && x[40 - s..] == y[40 - s..]
    };
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let (mut yes, mut no) = (0, 0);
    for _ in 0..20_000 {
        let a = Address::from_slice(&keccak256(next().to_be_bytes())[..20]);
        let mut b = a;
        // Change a few nibbles (sometimes none, sometimes at the ends).
        for _ in 0..next() % 4 {
            let i = (next() % 20) as usize;
            b[i] ^= if next() % 2 == 0 { 0x0f } else { 0xf0 };
        }
        let (p, s) = ((next() % 41) as usize, (next() % 41) as usize);
        let want = reference(a, b, p, s);
        assert_eq!(
            looks_like(a, b, p as u32, s as u32),
            want,
            "{a} {b} {p} {s}"
        );
        if want { yes += 1 } else { no += 1 }
    }
    assert!(
        yes > 1_000 && no > 1_000,
        "both answers exercised: {yes} / {no}"
    );
}
