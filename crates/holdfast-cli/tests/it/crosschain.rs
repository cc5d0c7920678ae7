//! One trace from an Ethereum theft to a Litecoin exchange deposit, across THORChain, on real
//! nodes and the real ingest paths: anvil (THORChain's real router v5.0, labelled a bridge in
//! intel) ingested with `holdfast ingest`, litecoind ingested with `holdfast ingest --chain
//! bitcoin`, then `holdfast trace --seed <theft> --rpc <anvil>`.
//!
//! The thief (dev account 3) receives 10 ETH stolen from the victim and 10 ETH of his own,
//! then deposits 4 ETH into the router with the memo `=:l:<rltc1 address>` (swap to LTC.LTC):
//! under haircut half of it is tainted. He also deposits 2 ETH to a Bitcoin address (a chain
//! the index does not hold), which THORChain refunds through the router (1.98 ETH back to him,
//! `REFUND:<deposit>`; a second "refund" of 0.01 ETH with the same memo comes from his other
//! account calling the router's `transferOut`: a decoy), and 1 ETH with a memo whose price limit does not parse. On litecoind he plants
//! a decoy (0.1 LTC to the destination with the same `OUT:<deposit>` memo) before THORChain's
//! payout of 1 LTC; then spends the payout to an exchange deposit (0.999 LTC, fee 0.001).
//!
//! By hand (haircut): the deposit is 2 of 4 ETH tainted → share 1/2; the payout's output is
//! seeded with 50,000,000 of its 100,000,000 litoshis; the spend to the exchange keeps the
//! share: 99,900,000 · 1/2 = 49,950,000 litoshis tainted at the exchange, 50,000 to the fee.

use alloy::sol_types::SolCall;
use alloy_primitives::{Address, U256, hex};
use holdfast_testkit::{Anvil, Litecoind, deploy, dev_account};
use serde_json::{Value, json};

use crate::bitcoin_trace::spend_exactly;
use crate::{holdfast, stderr, stdout};

alloy::sol! {
    function depositWithExpiry(address vault, address asset, uint amount, string memo, uint expiration);
    function mint(address to, uint256 amount);
    function transfer(address to, uint256 amount);
    function approve(address spender, uint256 amount);
    function transferOut(address to, address asset, uint amount, string memo);
}

fn eth(n: u64) -> U256 {
    U256::from(n) * U256::from(10u64).pow(U256::from(18u64))
}

fn ok(out: &std::process::Output) {
    assert!(out.status.success(), "{}\n{}", stdout(out), stderr(out));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trace_seeded_on_ethereum_ends_at_a_litecoin_exchange_deposit() {
    let ltc = Litecoind::spawn().await.expect("litecoind");
    ltc.create_wallet("w").await.expect("wallet");
    let miner = ltc.new_address("w", "bech32").await.expect("address");
    let dest = ltc.new_address("w", "bech32").await.expect("address");
    let exchange = ltc.new_address("w", "bech32").await.expect("address");
    ltc.mine(101, &miner).await.expect("mine");

    let node = Anvil::spawn().await.expect("anvil");
    let router = deploy::holdfast(&node, dev_account(0), "THORChain_Router")
        .await
        .expect("router");
    let (victim, thief, own, vault) = (
        dev_account(2),
        dev_account(3),
        dev_account(4),
        dev_account(5),
    );
    let (theft, _) = node
        .send(victim, Some(thief), eth(10), Default::default(), None)
        .await
        .expect("theft");
    node.send(own, Some(thief), eth(10), Default::default(), None)
        .await
        .expect("clean funds");
    let deposit = |amount: u64, memo: String| {
        let node = &node;
        async move {
            let call = depositWithExpiryCall {
                vault,
                asset: Address::ZERO,
                amount: U256::ZERO,
                memo,
                expiration: U256::from(u64::MAX),
            };
            node.send(
                thief,
                Some(router),
                eth(amount),
                call.abi_encode().into(),
                None,
            )
            .await
            .expect("deposit")
            .0
        }
    };
    let to_ltc = deposit(4, format!("=:l:{dest}")).await;
    let to_btc = deposit(2, "=:b:bc1q3a2le4lazts64u8mqte5vuxvug25z5w6rhs95g".into()).await;
    let garbled = deposit(1, format!("=:l:{dest}:lots")).await;
    // THORChain refunds the BTC swap from its vault; the thief's other account plants a decoy.
    let refund = |from: Address, wei: U256| {
        let node = &node;
        async move {
            let call = transferOutCall {
                to: thief,
                asset: Address::ZERO,
                amount: U256::ZERO,
                memo: format!("REFUND:{}", hex::encode_upper(to_btc)),
            };
            node.send(from, Some(router), wei, call.abi_encode().into(), None)
                .await
                .expect("transferOut")
                .0
        }
    };
    let btc_refund = refund(vault, eth(198) / U256::from(100u64)).await;
    let decoy_refund = refund(own, eth(1) / U256::from(100u64)).await;

    // A stolen ERC-20 too: the router keeps tokens (transferFrom thief → router) and emits
    // the Deposit with the token's address; 600 of the 1,000 stolen go to LTC at `dest2`.
    let dest2 = ltc.new_address("w", "bech32").await.expect("address");
    let token = deploy::erc20(&node, dev_account(0), "Tether USD", "USDT")
        .await
        .expect("token");
    let call = |data: Vec<u8>, from: Address| {
        let node = &node;
        async move {
            node.send(from, Some(token), U256::ZERO, data.into(), None)
                .await
                .expect("token call")
                .0
        }
    };
    call(
        mintCall {
            to: victim,
            amount: eth(1_000),
        }
        .abi_encode(),
        dev_account(0),
    )
    .await;
    let token_theft = call(
        transferCall {
            to: thief,
            amount: eth(1_000),
        }
        .abi_encode(),
        victim,
    )
    .await;
    call(
        approveCall {
            spender: router,
            amount: eth(600),
        }
        .abi_encode(),
        thief,
    )
    .await;
    let token_call = depositWithExpiryCall {
        vault,
        asset: token,
        amount: eth(600),
        memo: format!("=:l:{dest2}"),
        expiration: U256::from(u64::MAX),
    };
    let (to_ltc_token, _) = node
        .send(
            thief,
            Some(router),
            U256::ZERO,
            token_call.abi_encode().into(),
            None,
        )
        .await
        .expect("token deposit");

    // The far side: a decoy planted first, THORChain's payout, the spend to the exchange.
    let out_memo = format!("OUT:{}", hex::encode_upper(to_ltc));
    let (decoy, _) = ltc
        .send_with_data("w", &dest, "0.1", out_memo.as_bytes())
        .await
        .expect("decoy");
    ltc.mine(1, &miner).await.expect("mine");
    let (payout, vout) = ltc
        .send_with_data("w", &dest, "1.0", out_memo.as_bytes())
        .await
        .expect("payout");
    ltc.mine(1, &miner).await.expect("mine");
    spend_exactly(
        &ltc,
        &[(payout.clone(), u64::from(vout))],
        json!([{exchange.clone(): 0.999}]),
    )
    .await;
    ltc.mine(1, &miner).await.expect("mine");

    let (token_payout, _) = ltc
        .send_with_data(
            "w",
            &dest2,
            "0.3",
            format!("OUT:{}", hex::encode_upper(to_ltc_token)).as_bytes(),
        )
        .await
        .expect("token payout");
    ltc.mine(1, &miner).await.expect("mine");

    // Both chains ingested by the real ingest paths; the router and the exchange labelled.
    let data = tempfile::tempdir().expect("tempdir");
    ok(&holdfast(
        data.path(),
        &["--quiet", "ingest", "--rpc", &node.http_url()],
    ));
    let (user, password) = ltc.user_password().expect("user/password");
    let ltc_url = ltc
        .rpc_url()
        .replace("http://", &format!("http://{user}:{password}@"));
    ok(&holdfast(
        data.path(),
        &["--quiet", "ingest", "--chain", "bitcoin", "--rpc", &ltc_url],
    ));
    for (list, address, category, name) in [
        (
            "routers.txt",
            router.to_string(),
            "bridge",
            "THORChain Router",
        ),
        (
            "exchange.txt",
            exchange.clone(),
            "exchange",
            "Exchange LTC deposits",
        ),
        // THORChain's vault, as its /inbound_addresses lists it (the thief's own is not).
        ("vaults.txt", vault.to_string(), "bridge", "THORChain vault"),
        // The thief's own "vault" with a label that is no bridge's (as `trace --label` writes
        // for the launderers): shown, and vouching for nothing.
        ("tainted.txt", own.to_string(), "tainted", "Earlier trace"),
    ] {
        let file = data.path().join(list);
        std::fs::write(&file, format!("{address}\n")).expect("write");
        ok(&holdfast(
            data.path(),
            &[
                "intel",
                "import",
                file.to_str().expect("utf8"),
                "--category",
                category,
                "--name",
                name,
            ],
        ));
    }

    let theft_hex = theft.to_string();
    let token_theft_hex = token_theft.to_string();
    let out = holdfast(
        data.path(),
        &[
            "--quiet",
            "trace",
            "--seed",
            &theft_hex,
            "--seed",
            &token_theft_hex,
            "--rpc",
            &node.http_url(),
            "--json",
        ],
    );
    ok(&out);
    let x: Value = serde_json::from_str(&stdout(&out)).expect("one JSON document");

    let crossings = x["crossings"].as_array().expect("crossings");
    let of = |tx: alloy_primitives::B256| -> &Value {
        crossings
            .iter()
            .find(|c| c["tx_hash"] == tx.to_string())
            .unwrap_or_else(|| panic!("a crossing for {tx}: {crossings:?}"))
    };
    let ltc_crossing = of(to_ltc);
    assert_eq!(ltc_crossing["memo"], format!("=:l:{dest}"));
    assert_eq!(ltc_crossing["destination"]["asset"], "LTC.LTC");
    assert_eq!(ltc_crossing["destination"]["address"], dest);
    assert_eq!(
        ltc_crossing["tainted"],
        eth(2).to_string(),
        "haircut: half of 4 ETH"
    );
    assert_eq!(
        ltc_crossing["outcome"],
        json!({"kind": "followed", "payouts": 2}),
        "the decoy and the payout both name the inbound: both followed"
    );
    let payouts: Vec<&str> = ltc_crossing["payouts"]
        .as_array()
        .expect("payouts")
        .iter()
        .map(|p| p["txid"].as_str().expect("txid"))
        .collect();
    assert_eq!(payouts, [decoy.as_str(), payout.as_str()], "in chain order");
    assert_eq!(
        ltc_crossing["path"]
            .as_array()
            .expect("path")
            .first()
            .expect("hop")["tx_hash"],
        theft_hex,
        "the EVM evidence starts at the theft"
    );
    // The token exit: the asset is the token, all 600 tainted, THORChain's payout followed.
    let token_crossing = of(to_ltc_token);
    assert_eq!(
        token_crossing["asset"],
        json!({"kind": "erc20", "token": token.to_string().to_lowercase()}),
        "{token_crossing}"
    );
    assert_eq!(token_crossing["tainted"], eth(600).to_string());
    assert_eq!(
        token_crossing["outcome"],
        json!({"kind": "followed", "payouts": 1})
    );
    assert_eq!(token_crossing["payouts"][0]["txid"], token_payout);
    assert_eq!(token_crossing["payouts"][0]["tainted"], 30_000_000);
    assert_eq!(
        token_crossing["path"][0]["tx_hash"], token_theft_hex,
        "the token's evidence starts at its theft"
    );
    // The BTC swap was refunded on Ethereum: the recipient is the lead; the decoy is marked.
    assert_eq!(
        of(to_btc)["outcome"],
        json!({"kind": "refunded", "refunds": 2}),
        "{}",
        of(to_btc)
    );
    let refunds = of(to_btc)["refunds"].as_array().expect("refunds");
    assert_eq!(refunds[0]["tx_hash"], btc_refund.to_string());
    assert_eq!(refunds[0]["to"], thief.to_string().to_lowercase());
    assert_eq!(refunds[0]["amount"], "1980000000000000000");
    assert_eq!(refunds[0]["from_deposit_vault"], true);
    assert_eq!(
        refunds[0]["vault_labels"],
        json!([{"name": "THORChain vault", "category": "bridge"}])
    );
    assert_eq!(refunds[1]["tx_hash"], decoy_refund.to_string());
    assert_eq!(refunds[1]["vault"], own.to_string().to_lowercase());
    assert_eq!(refunds[1]["from_deposit_vault"], false);
    assert_eq!(
        refunds[1]["vault_labels"],
        json!([{"name": "Earlier trace", "category": "tainted"}]),
        "labelled, but no bridge"
    );
    assert_eq!(
        of(to_btc)["destination"]["address"],
        "bc1q3a2le4lazts64u8mqte5vuxvug25z5w6rhs95g"
    );
    // Who paid each payout: the real one's payers, labelled as THORChain's vault below,
    // tell it from a decoy in the text report.
    let payout_json = &ltc_crossing["payouts"][1];
    let paid_by: Vec<String> = payout_json["paid_by"]
        .as_array()
        .expect("paid_by")
        .iter()
        .map(|a| a.as_str().expect("address").to_owned())
        .collect();
    assert!(!paid_by.is_empty(), "{payout_json}");
    assert_eq!(
        payout_json["payer_service"],
        Value::Null,
        "not labelled yet"
    );
    let bad = &of(garbled)["outcome"];
    assert_eq!(bad["kind"], "bad-memo", "{bad}");
    let error = bad["error"].as_str().expect("error");
    assert!(
        error.contains(&garbled.to_string()),
        "names the transaction: {error}"
    );
    assert!(error.contains("limit"), "names the memo's field: {error}");

    // Across: the exchange deposit, with the evidence from the theft to it.
    let targets = x["targets"].as_array().expect("targets");
    let [target] = targets.as_slice() else {
        panic!("one freeze target across chains: {targets:?}")
    };
    assert_eq!(target["address"], exchange);
    assert_eq!(target["network"], "litecoin-regtest");
    assert_eq!(target["service"]["name"], "Exchange LTC deposits");
    assert_eq!(target["tainted"], 49_950_000, "litoshis, by hand above");
    assert_eq!(target["inbound"], to_ltc.to_string());
    assert_eq!(target["payout"], payout);
    assert_eq!(
        target["payouts_naming_inbound"], 2,
        "the decoy named the same inbound: the target says so"
    );
    assert_eq!(target["evm_path"][0]["tx_hash"], theft_hex);
    assert_eq!(
        target["utxo_path"][0]["outpoint"],
        format!("{payout}:{vout}"),
        "the UTXO evidence starts at the payout's output"
    );
    let continued = x["continued"].as_array().expect("continued");
    assert_eq!(continued.len(), 1);
    assert_eq!(continued[0]["stats"]["lost_to_fees"], 50_000);

    // The same in words.
    // THORChain's Litecoin vault, as its /inbound_addresses would list it: the payout's payers.
    let vaults = data.path().join("ltc-vaults.txt");
    std::fs::write(&vaults, paid_by.join("\n")).expect("write");
    ok(&holdfast(
        data.path(),
        &[
            "intel",
            "import",
            vaults.to_str().expect("utf8"),
            "--category",
            "bridge",
            "--name",
            "THORChain LTC vault",
        ],
    ));
    let out = holdfast(
        data.path(),
        &[
            "--quiet",
            "trace",
            "--seed",
            &theft_hex,
            "--rpc",
            &node.http_url(),
        ],
    );
    ok(&out);
    let text = stdout(&out);
    assert!(
        text.contains("2 payouts name this inbound (a decoy is among them): all followed"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "payout {payout}: 100000000 arrived, 50000000 of it tainted; paid by {} (labelled THORChain LTC vault (bridge))",
            paid_by.join(", ")
        )),
        "{text}"
    );
    assert!(
        text.contains("2 refunds name this inbound")
            && text.contains(&format!(
                "refund tx {btc_refund} block {}: 1980000000000000000 to {thief}, from {vault}, the vault the deposit went to (labelled THORChain vault (bridge); the depositor names the vault)",
                refunds[0]["block"]
            ))
            && text.contains(&format!(
                "from {own}, not the deposit's vault (not labelled a bridge (its labels: Earlier trace (tainted)): import THORChain's vaults"
            ))
            && text.contains("this one may be a decoy"),
        "{text}"
    );
    assert!(
        text.contains("freeze target across chains: Exchange LTC deposits")
            && text.contains("on litecoin-regtest: 0.49950000 LTC tainted; evidence:")
            && text.contains(&format!(
                "THORChain: inbound {to_ltc} paid out by {payout} (2 payouts name this inbound: this one may be a decoy)"
            )),
        "{text}"
    );

    // --label marks the launderers on both chains: the thief's Ethereum address and his
    // Litecoin destination (the exchange deposit stays a freeze target).
    let out = holdfast(
        data.path(),
        &[
            "--quiet",
            "trace",
            "--seed",
            &theft_hex,
            "--rpc",
            &node.http_url(),
            "--label",
        ],
    );
    ok(&out);
    for address in [thief.to_string(), dest.clone()] {
        let out = holdfast(data.path(), &["screen", &address, "--json"]);
        let v: Value = serde_json::from_str(stdout(&out).trim()).expect("verdict");
        assert!(
            v["labels"].to_string().contains("tainted"),
            "{address}: {v}"
        );
    }

    // A node that cannot be reached: an error naming it, no half report on stdout.
    let out = holdfast(
        data.path(),
        &[
            "--quiet",
            "trace",
            "--seed",
            &theft_hex,
            "--rpc",
            "http://127.0.0.1:1",
            "--json",
        ],
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("127.0.0.1:1"), "{}", stderr(&out));
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));

    // Formats without a place for the crossings are refused, not silently cut.
    let out = holdfast(
        data.path(),
        &[
            "--quiet",
            "trace",
            "--seed",
            &theft_hex,
            "--rpc",
            &node.http_url(),
            "--format",
            "csv",
        ],
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("text or json"), "{}", stderr(&out));
}

/// `trace --rpc --follow` against a store that ingestion keeps writing (PostgreSQL, shared by
/// the processes): nothing has crossed when it starts; then THORChain pays the LTC swap out,
/// the coins reach an exchange, and THORChain refunds the BTC swap on Ethereum. Once both
/// chains are ingested again, the running trace prints the payout, the refund and the freeze
/// target across chains, each once.
#[tokio::test(flavor = "multi_thread")]
async fn following_across_the_bridge_prints_the_payout_the_refund_and_the_exchange_once() {
    let ltc = Litecoind::spawn().await.expect("litecoind");
    ltc.create_wallet("w").await.expect("wallet");
    let miner = ltc.new_address("w", "bech32").await.expect("address");
    let dest = ltc.new_address("w", "bech32").await.expect("address");
    let exchange = ltc.new_address("w", "bech32").await.expect("address");
    ltc.mine(101, &miner).await.expect("mine");
    let node = Anvil::spawn().await.expect("anvil");
    let router = deploy::holdfast(&node, dev_account(0), "THORChain_Router")
        .await
        .expect("router");
    let (victim, thief, vault) = (dev_account(2), dev_account(3), dev_account(5));
    let (theft, _) = node
        .send(victim, Some(thief), eth(10), Default::default(), None)
        .await
        .expect("theft");
    let deposit = |amount: u64, memo: String| {
        let node = &node;
        async move {
            let call = depositWithExpiryCall {
                vault,
                asset: Address::ZERO,
                amount: U256::ZERO,
                memo,
                expiration: U256::from(u64::MAX),
            };
            node.send(
                thief,
                Some(router),
                eth(amount),
                call.abi_encode().into(),
                None,
            )
            .await
            .expect("deposit")
            .0
        }
    };
    let to_ltc = deposit(4, format!("=:l:{dest}")).await;
    let to_btc = deposit(2, "=:b:bc1q3a2le4lazts64u8mqte5vuxvug25z5w6rhs95g".into()).await;

    let pg = holdfast_store::testing::TempPostgres::start(false).expect("PostgreSQL");
    let data = tempfile::tempdir().expect("tempdir");
    let store = ["--store", pg.url()];
    let (user, password) = ltc.user_password().expect("user/password");
    let ltc_url = ltc
        .rpc_url()
        .replace("http://", &format!("http://{user}:{password}@"));
    let ingest_both = || {
        ok(&holdfast(
            data.path(),
            &[
                &store[..],
                &["--quiet", "ingest", "--rpc", &node.http_url()],
            ]
            .concat(),
        ));
        ok(&holdfast(
            data.path(),
            &[
                &store[..],
                &["--quiet", "ingest", "--chain", "bitcoin", "--rpc", &ltc_url],
            ]
            .concat(),
        ));
    };
    ingest_both();
    for (list, address, category, name) in [
        (
            "routers.txt",
            router.to_string(),
            "bridge",
            "THORChain Router",
        ),
        (
            "exchange.txt",
            exchange.clone(),
            "exchange",
            "Exchange LTC deposits",
        ),
    ] {
        let file = data.path().join(list);
        std::fs::write(&file, format!("{address}\n")).expect("write");
        ok(&holdfast(
            data.path(),
            &[
                "intel",
                "import",
                file.to_str().expect("utf8"),
                "--category",
                category,
                "--name",
                name,
            ],
        ));
    }

    let theft_hex = theft.to_string();
    let node_url = node.http_url();
    let mut f = crate::Follower::spawn(
        data.path(),
        &[
            &store[..],
            &[
                "trace",
                "--seed",
                &theft_hex,
                "--rpc",
                &node_url,
                "--follow",
                "--interval",
                "1",
            ],
        ]
        .concat(),
    );
    // Rounds run; the router is reached (an EVM exit line) but nothing has crossed yet.
    f.collect(std::time::Duration::from_secs(3), None);
    assert!(
        f.lines
            .iter()
            .all(|l| !l.contains("crossed") && !l.contains("refunded")),
        "nothing crossed yet: {:?}",
        f.lines
    );

    // THORChain's payout of the LTC swap, spent to the exchange; its refund of the BTC swap.
    let out_memo = format!("OUT:{}", hex::encode_upper(to_ltc));
    let (payout, vout) = ltc
        .send_with_data("w", &dest, "1.0", out_memo.as_bytes())
        .await
        .expect("payout");
    ltc.mine(1, &miner).await.expect("mine");
    spend_exactly(
        &ltc,
        &[(payout.clone(), u64::from(vout))],
        json!([{exchange.clone(): 0.999}]),
    )
    .await;
    ltc.mine(1, &miner).await.expect("mine");
    let refund = transferOutCall {
        to: thief,
        asset: Address::ZERO,
        amount: U256::ZERO,
        memo: format!("REFUND:{}", hex::encode_upper(to_btc)),
    };
    let (refund_tx, _) = node
        .send(
            vault,
            Some(router),
            eth(198) / U256::from(100u64),
            refund.abi_encode().into(),
            None,
        )
        .await
        .expect("refund");
    ingest_both();

    let wanted = [
        format!("taint crossed THORChain Router in tx {to_ltc}"),
        format!("paid out by {payout}"),
        format!(
            "refunded tx {to_btc} on this chain: 1980000000000000000 to {thief} in tx {refund_tx}"
        ),
        format!(
            "taint reached Exchange LTC deposits (exchange) deposit {exchange} on litecoin-regtest"
        ),
    ];
    let wanted: Vec<&str> = wanted.iter().map(String::as_str).collect();
    f.collect(std::time::Duration::from_secs(60), Some(&wanted));
    // A few more rounds: nothing is printed twice.
    f.collect(std::time::Duration::from_secs(3), None);
    for w in &wanted {
        assert_eq!(f.count(w), 1, "once: {w}\n{:#?}", f.lines);
    }
    let reached = f
        .lines
        .iter()
        .find(|l| l.contains("taint reached Exchange LTC deposits"))
        .expect("target line");
    assert!(reached.contains("0.99900000 LTC tainted"), "{reached}");
}
