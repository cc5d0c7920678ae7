//! Detectors 1–5 on anvil with real contracts, each block fetched with
//! `ChainSource::fetch_detail` (call traces and state diff): the Bybit takeover of a Safe
//! 1.1.1 and its sweep, a drained hot key, an unlimited approval and a permit to unknown
//! spenders, an `OwnershipTransferred`, a payment to an OFAC-listed address from the shipped
//! intel. Each raises its alert exactly once; the decoys beside them none.

use alloy_primitives::{Address, B256, Bytes, U256, keccak256};
use holdfast_chain::{ChainSource, SourceConfig};
use holdfast_testkit::Scenario;
use holdfast_testkit::{Anvil, deploy, dev_account, dev_signer};
use holdfast_watch::alert::{Alert, DetectorKind};
use holdfast_watch::config::validate;
use holdfast_watch::detect::{
    Context, DetectorState, Detectors, EarlyStorage, Labels, NoHistory, NoLabels,
};

/// Runs the detectors of a watch file over every block of the node, in order.
async fn watch_all(node: &Anvil, rest: &str, labels: &dyn Labels) -> Vec<Alert> {
    watch_all_early(node, rest, labels).await.0
}

/// [`watch_all`], and the alerts the first look at each block raised.
async fn watch_all_early(
    node: &Anvil,
    rest: &str,
    labels: &dyn Labels,
) -> (Vec<Alert>, Vec<Alert>) {
    let text = format!(
        "[[chain]]\nname = \"anvil\"\nrpc = \"{}\"\nexplorer = \"https://explorer.example\"\n\n\
         [[asset]]\nsymbol = \"ETH\"\nchain = \"anvil\"\nkind = \"native\"\n{rest}",
        node.http_url()
    );
    let config = match validate("watch.toml", &text, std::path::Path::new(".")) {
        Ok(v) => v.config,
        Err(e) => panic!("{e}"),
    };
    let source = ChainSource::connect(SourceConfig::new(node.http_url()))
        .await
        .expect("node");
    let detectors = Detectors::new(&config);
    let cx = Context {
        chain: "anvil",
        confirmations: 0,
        labels,
        history: &NoHistory,
    };
    let mut state = DetectorState::default();
    let mut alerts = Vec::new();
    let mut first_look = Vec::new();
    let head = node.block_number().await.expect("head");
    for n in 1..=head {
        let detail = source.fetch_detail(n).await.expect("block detail");
        assert!(detail.calls_complete, "anvil serves call traces");
        assert!(detail.state.is_some(), "anvil serves state diffs");
        // The first look: the block without state diffs, with the critical slots of the
        // watched contracts it touched read by block hash, on a copy of the state. Every
        // alert it raises is one the full block raises, word for word.
        let first = source
            .fetch_detail_without_state(n)
            .await
            .expect("detail without state");
        let targets = detectors.early_targets(&first, &state, "anvil");
        let block = *first.block();
        let values = source
            .storage_at(
                &EarlyStorage::reads(&targets),
                &[block.parent_hash, block.hash],
                n,
            )
            .await
            .expect("critical slots");
        let reads = EarlyStorage::from_reads(&targets, &values[0], &values[1]);
        let early = detectors
            .preview(&first, &mut state.clone(), &cx, &reads)
            .expect("detectors on the first look");
        let full = detectors.run(&detail, &mut state, &cx).expect("detectors");
        for a in &early {
            assert!(
                full.contains(a),
                "block {n}: the first look raised {} ({}), which the full block does not hold as such",
                a.id,
                a.title
            );
        }
        first_look.extend(early);
        alerts.extend(full);
    }
    // Running the whole chain again from a fresh state gives the same alerts (ids included).
    let mut again = Vec::new();
    let mut state = DetectorState::default();
    for n in 1..=head {
        let detail = source.fetch_detail(n).await.expect("block detail");
        again.extend(detectors.run(&detail, &mut state, &cx).expect("detectors"));
    }
    assert_eq!(alerts, again);
    (alerts, first_look)
}

async fn block_of(node: &Anvil, tx: B256) -> u64 {
    let r = node
        .rpc("eth_getTransactionReceipt", serde_json::json!([tx]))
        .await
        .expect("receipt");
    u64::from_str_radix(
        r["blockNumber"]
            .as_str()
            .expect("mined")
            .trim_start_matches("0x"),
        16,
    )
    .expect("block number")
}

fn of(alerts: &[Alert], detector: DetectorKind) -> Vec<&Alert> {
    alerts.iter().filter(|a| a.detector == detector).collect()
}

fn titles(alerts: &[&Alert]) -> Vec<String> {
    alerts.iter().map(|a| a.title.clone()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_bybit_takeover_is_one_critical_alert_naming_the_delegatecall_and_the_sweep_a_drain() {
    let node = Anvil::spawn().await.expect("anvil");
    let heist = Scenario::new(&node).safe_heist().await.expect("heist");
    let rest = format!(
        r#"
[[set]]
name = "treasury"
addresses = ["{}", "{}"]

[[rule]]
name = "takeover"
detector = "critical_storage"
targets = ["treasury"]
severity = "critical"
responses = ["freeze", "trace"]

[[rule]]
name = "drain"
detector = "outflow"
targets = ["treasury"]
severity = "critical"
drain = {{ percent = 50, blocks = 10 }}
whole_balance = true
"#,
        heist.safe_111, heist.safe_141
    );
    let (alerts, early) = watch_all_early(&node, &rest, &NoLabels).await;

    let critical = of(&alerts, DetectorKind::CriticalStorage);
    assert_eq!(critical.len(), 1, "{:#?}", titles(&critical));
    let a = critical[0];
    // The singleton swap is seen at the first look (the slot read by block hash), not only
    // after the replay with state diffs.
    assert_eq!(
        of(&early, DetectorKind::CriticalStorage),
        vec![a],
        "the first look raises the takeover alert"
    );
    assert_eq!(a.block_number, block_of(&node, heist.delegatecall_tx).await);
    assert_eq!(a.tx_hash, Some(heist.delegatecall_tx));
    assert_eq!(a.addresses[0].address, heist.safe_111);
    assert!(a.title.contains("singleton (masterCopy)"), "{}", a.title);
    assert!(
        a.title.contains("inside a DELEGATECALL into"),
        "{}",
        a.title
    );
    assert!(
        a.addresses
            .iter()
            .any(|n| n.role == "new singleton" && n.address == heist.sweeper),
        "{:#?}",
        a.addresses
    );
    let target = a
        .addresses
        .iter()
        .find(|n| n.role == "DELEGATECALL target")
        .expect("the DELEGATECALL target is named");
    assert_ne!(
        target.address, heist.sweeper,
        "the swap contract ran, the sweeper was installed"
    );
    assert!(a.summary.contains("DELEGATECALL"), "{}", a.summary);
    assert_eq!(a.responses, vec!["freeze", "trace"]);

    let outflows = of(&alerts, DetectorKind::Outflow);
    assert_eq!(outflows.len(), 2, "{:#?}", titles(&outflows));
    let sweep_block = block_of(&node, heist.sweep_tx).await;
    for a in &outflows {
        assert_eq!(a.block_number, sweep_block);
        assert_eq!(a.addresses[0].address, heist.safe_111);
        assert!(a.addresses.iter().any(|n| n.address == heist.attacker));
    }
    assert!(
        outflows
            .iter()
            .any(|a| a.title.contains("drained: ") && a.title.contains("(100.00 %)")),
        "{:#?}",
        titles(&outflows)
    );
    assert!(
        outflows
            .iter()
            .any(|a| a.title.contains("whole balance left (9 ETH)")),
        "{:#?}",
        titles(&outflows)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_drained_hot_key_raises_one_velocity_and_one_drain_alert() {
    let node = Anvil::spawn().await.expect("anvil");
    let hot = dev_account(2);
    let start = node.balance(hot).await.expect("balance");
    // A burst of withdrawals to fresh addresses, each worth a fifth of the balance.
    let fifth = start / U256::from(5);
    for i in 0..4u8 {
        node.call_ok(hot, Address::repeat_byte(0xe0 + i), fifth, Bytes::new())
            .await
            .expect("withdrawal");
    }
    // A decoy: another dev account pays twice.
    node.call_ok(dev_account(3), dev_account(4), U256::from(1), Bytes::new())
        .await
        .expect("pay");
    let rest = format!(
        r#"
[[set]]
name = "hot"
addresses = ["{hot}", "{}"]

[[rule]]
name = "burst"
detector = "outflow"
targets = ["hot"]
velocity = {{ window = "1h", count_above = 2 }}

[[rule]]
name = "drained"
detector = "outflow"
targets = ["hot"]
severity = "critical"
drain = {{ percent = 50, blocks = 20 }}
"#,
        dev_account(3)
    );
    let alerts = watch_all(&node, &rest, &NoLabels).await;
    let burst: Vec<&Alert> = alerts.iter().filter(|a| a.rule == "burst").collect();
    let drained: Vec<&Alert> = alerts.iter().filter(|a| a.rule == "drained").collect();
    assert_eq!(burst.len(), 1, "{:#?}", titles(&burst));
    assert_eq!(drained.len(), 1, "{:#?}", titles(&drained));
    assert!(burst[0].title.contains("3 outflows"), "{}", burst[0].title);
    assert!(drained[0].title.contains("drained"), "{}", drained[0].title);
    assert_eq!(alerts.len(), 2);
}

fn word(a: Address) -> [u8; 32] {
    a.into_word().0
}

fn calldata(sig: &str, words: &[[u8; 32]]) -> Bytes {
    let mut v = keccak256(sig.as_bytes())[..4].to_vec();
    for w in words {
        v.extend_from_slice(w);
    }
    v.into()
}

fn num(n: U256) -> [u8; 32] {
    n.to_be_bytes()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unlimited_approval_a_permit_and_an_ownership_transfer_alert_once_each() {
    let node = Anvil::spawn().await.expect("anvil");
    let (owner, wallet, router, spender, permitted, relayer, new_owner) = (
        dev_account(0),
        dev_account(1),
        dev_account(4),
        dev_account(5),
        dev_account(6),
        dev_account(7),
        dev_account(8),
    );
    let token = deploy::permit_token(&node, owner, "Permit Token", "PMT")
        .await
        .expect("token");
    let e18 = U256::from(10u64).pow(U256::from(18));
    node.call_ok(
        owner,
        token,
        U256::ZERO,
        calldata(
            "mint(address,uint256)",
            &[word(wallet), num(U256::from(1000) * e18)],
        ),
    )
    .await
    .expect("mint");
    let approve =
        |s: Address, amount: U256| calldata("approve(address,uint256)", &[word(s), num(amount)]);
    let unlimited_tx = node
        .call_ok(wallet, token, U256::ZERO, approve(spender, U256::MAX))
        .await
        .expect("approve");
    // Decoys: the allowlisted router, a revocation.
    node.call_ok(wallet, token, U256::ZERO, approve(router, U256::MAX))
        .await
        .expect("approve router");
    node.call_ok(wallet, token, U256::ZERO, approve(spender, U256::ZERO))
        .await
        .expect("revoke");

    // EIP-2612 permit signed by the wallet, submitted by a relayer.
    let domain = node
        .call(token, calldata("DOMAIN_SEPARATOR()", &[]))
        .await
        .expect("domain");
    let value = U256::from(250) * e18;
    let deadline = U256::from(u64::MAX);
    let typehash = keccak256(
        "Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)",
    );
    let mut enc = typehash.to_vec();
    for w in [
        word(wallet),
        word(permitted),
        num(value),
        num(U256::ZERO),
        num(deadline),
    ] {
        enc.extend_from_slice(&w);
    }
    let mut digest = vec![0x19, 0x01];
    digest.extend_from_slice(&domain);
    digest.extend_from_slice(keccak256(&enc).as_slice());
    let sig = holdfast_testkit::safe::sign(keccak256(&digest), &[dev_signer(1).expect("key")])
        .expect("sign");
    let (r, s, v) = (&sig[..32], &sig[32..64], sig[64]);
    let input = calldata(
        "permit(address,address,uint256,uint256,uint8,bytes32,bytes32)",
        &[
            word(wallet),
            word(permitted),
            num(value),
            num(deadline),
            num(U256::from(v)),
            r.try_into().unwrap(),
            s.try_into().unwrap(),
        ],
    );
    let permit_tx = node
        .call_ok(relayer, token, U256::ZERO, input)
        .await
        .expect("permit");
    // Decoy: the permitted spender spends part of it (an `Approval` with what is left).
    node.call_ok(
        permitted,
        token,
        U256::ZERO,
        calldata(
            "transferFrom(address,address,uint256)",
            &[word(wallet), word(permitted), num(e18)],
        ),
    )
    .await
    .expect("transferFrom");
    let ownership_tx = node
        .call_ok(
            owner,
            token,
            U256::ZERO,
            calldata("transferOwnership(address)", &[word(new_owner)]),
        )
        .await
        .expect("transferOwnership");

    let rest = format!(
        r#"
[[asset]]
symbol = "PMT"
chain = "anvil"
token = "{token}"
decimals = 18

[[set]]
name = "wallets"
addresses = ["{wallet}"]

[[set]]
name = "routers"
addresses = ["{router}"]

[[set]]
name = "protocol"
addresses = ["{token}"]

[[rule]]
name = "grants"
detector = "grant"
targets = ["wallets"]
allowlist = ["routers"]
severity = "high"

[[rule]]
name = "admin"
detector = "critical_storage"
targets = ["protocol"]
severity = "critical"
"#
    );
    let (alerts, early) = watch_all_early(&node, &rest, &NoLabels).await;
    let grants = of(&alerts, DetectorKind::Grant);
    assert_eq!(grants.len(), 2, "{:#?}", titles(&grants));
    assert_eq!(grants[0].tx_hash, Some(unlimited_tx));
    assert!(
        grants[0].title.contains("unlimited grant of UNLIMITED PMT"),
        "{}",
        grants[0].title
    );
    assert!(
        grants[0]
            .addresses
            .iter()
            .any(|n| n.role == "spender" && n.address == spender)
    );
    assert_eq!(grants[1].tx_hash, Some(permit_tx));
    assert!(
        grants[1].title.contains("grant of 250 PMT"),
        "{}",
        grants[1].title
    );
    assert_eq!(
        grants[1].addresses[0].address, wallet,
        "the owner, not the relayer"
    );
    assert!(
        grants[1]
            .facts
            .iter()
            .any(|f| f.value.starts_with("EIP-2612 permit"))
    );

    let admin = of(&alerts, DetectorKind::CriticalStorage);
    assert_eq!(admin.len(), 1, "{:#?}", titles(&admin));
    assert_eq!(admin[0].tx_hash, Some(ownership_tx));
    assert!(
        admin[0].title.contains("owner (Ownable) →"),
        "{}",
        admin[0].title
    );
    assert!(admin[0].addresses.iter().any(|n| n.address == new_owner));
    assert_eq!(
        of(&early, DetectorKind::CriticalStorage),
        admin,
        "an ownership event is whole at the first look"
    );
    assert_eq!(alerts.len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_payment_to_an_ofac_listed_address_alerts_once() {
    let intel = holdfast_intel::load(None).expect("shipped intel").index;
    let shipped = holdfast_intel::sources::shipped().expect("shipped");
    let sanctioned: Address = shipped
        .records
        .iter()
        .filter(|r| r.category == holdfast_primitives::Category::Sanctioned)
        .find_map(|r| r.address.parse::<Address>().ok())
        .expect("an OFAC-listed EVM address");
    let node = Anvil::spawn().await.expect("anvil");
    let wallet = dev_account(1);
    let pay = node
        .call_ok(wallet, sanctioned, U256::from(10u64.pow(18)), Bytes::new())
        .await
        .expect("pay");
    // Decoys: an ordinary payment, and someone else paying the sanctioned address.
    node.call_ok(wallet, dev_account(9), U256::from(1), Bytes::new())
        .await
        .expect("pay");
    node.call_ok(dev_account(3), sanctioned, U256::from(1), Bytes::new())
        .await
        .expect("pay");
    let rest = format!(
        "\n[[set]]\nname = \"hot\"\naddresses = [\"{wallet}\"]\n\n[[rule]]\nname = \"bad-company\"\ndetector = \"counterparty\"\ntargets = [\"hot\"]\nseverity = \"high\"\n"
    );
    let alerts = watch_all(&node, &rest, &intel).await;
    assert_eq!(
        alerts.len(),
        1,
        "{:#?}",
        alerts.iter().map(|a| &a.title).collect::<Vec<_>>()
    );
    let a = &alerts[0];
    assert_eq!(a.tx_hash, Some(pay));
    assert!(
        a.title.contains("sent to sanctioned address"),
        "{}",
        a.title
    );
    let labels = &a.addresses[1].labels;
    assert!(
        labels.iter().any(|l| l.contains("(sanctioned)")),
        "{labels:?}"
    );
    assert!(
        a.facts.iter().any(|f| f.value.contains("1 ETH")),
        "{:#?}",
        a.facts
    );
}
