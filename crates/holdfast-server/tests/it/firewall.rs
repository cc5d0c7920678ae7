//! The JSON-RPC firewall in front of a real anvil: allowed transactions go through, denied
//! ones get a JSON-RPC error that says why, held ones are sent when released, cancelled ones
//! never; every other method passes through unchanged.

use std::sync::Arc;
use std::time::Duration;

use alloy::consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy::eips::eip2718::Encodable2718;
use alloy::primitives::{Address, B256, Bytes, TxKind, U256, address};
use alloy::signers::SignerSync;
use holdfast_gate::{Gate, GateConfig, Principal, Role};
use holdfast_guard::{Guard, Policy};
use holdfast_server::guard::{Firewall, REFUSED, firewall_router};
use holdfast_store::gate::EmbeddedGateStore;
use holdfast_testkit::{Anvil, dev_account, dev_signer};
use serde_json::{Value, json};

const LAZARUS: Address = address!("0x098B716B8Aaf21512996dC57EB0615e2383E2f96");

fn milli(n: u64) -> U256 {
    U256::from(n) * U256::from(10u64).pow(U256::from(15))
}

fn raw(
    key: &alloy::signers::local::PrivateKeySigner,
    chain_id: u64,
    nonce: u64,
    to: Address,
    value: U256,
) -> (String, B256) {
    let tx = TxEip1559 {
        chain_id,
        nonce,
        gas_limit: 21_000,
        max_fee_per_gas: 20_000_000_000,
        max_priority_fee_per_gas: 1_000_000_000,
        to: TxKind::Call(to),
        value,
        access_list: Default::default(),
        input: Bytes::new(),
    };
    let sig = key.sign_hash_sync(&tx.signature_hash()).expect("sign");
    let env: TxEnvelope = tx.into_signed(sig).into();
    (
        alloy::primitives::hex::encode_prefixed(env.encoded_2718()),
        *env.tx_hash(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_firewall_decides_on_sends_and_passes_everything_else() {
    let node = Anvil::spawn().await.expect("anvil");
    let key = dev_signer(6).expect("key");
    let chain_id = node.chain_id().await.expect("chain id");
    let friend = dev_account(5);
    let policy = format!(
        "[policy]\nname = \"fw\"\n[assets.ETH]\nnative = true\ndecimals = 18\n[lists]\nok = [\"{friend}\", \"{}\"]\n\
         [[rule]]\nname = \"screening\"\nwhen = {{ counterparty_risk = \"high\" }}\naction = \"deny\"\n\
         [[rule]]\nname = \"medium\"\nwhen = {{ asset_in = [\"ETH\"], amount_above = \"1\" }}\naction = \"hold\"\nhold = \"1s\"\n\
         [[rule]]\nname = \"ok\"\nwhen = {{ destination_in = \"ok\" }}\naction = \"allow\"\n",
        dev_account(4)
    );
    let intel = Arc::new(holdfast_intel::load(None).expect("intel").index);
    let guard = Guard::new(
        Arc::new(Policy::parse("fw.toml", &policy).expect("policy")),
        intel,
    );
    let chain = Arc::new(
        holdfast_chain::ChainSource::connect(holdfast_guard::rpc::source_config(&node.http_url()))
            .await
            .expect("chain"),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(EmbeddedGateStore::open(&dir.path().join("gate")).expect("store"));
    let config = GateConfig {
        rpc: Some(node.http_url()),
        simulate: false,
        ..GateConfig::default()
    };
    let gate = Arc::new(Gate::new(store, guard, Some(chain), None, config));
    let fw = Firewall {
        gate: gate.clone(),
        upstream: node.http_url(),
        client: reqwest::Client::new(),
        principal: Principal {
            name: "firewall".into(),
            roles: vec![Role::Initiator],
            address: None,
        },
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, firewall_router(fw)).await });
    let client = reqwest::Client::new();
    let rpc = |method: &str, params: Value| {
        let (client, url) = (client.clone(), url.clone());
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        async move {
            client
                .post(&url)
                .json(&body)
                .send()
                .await
                .expect("send")
                .json::<Value>()
                .await
                .expect("json")
        }
    };
    let receipt = |h: B256| {
        let node = &node;
        async move {
            node.rpc("eth_getTransactionReceipt", json!([h]))
                .await
                .expect("receipt")
        }
    };
    // A sent transaction's receipt, waited for (up to 10 s): on a loaded machine the node
    // can answer the send before the receipt is there.
    let mined = |h: B256| {
        let receipt = &receipt;
        async move {
            for _ in 0..100 {
                let r = receipt(h).await;
                if !r.is_null() {
                    return r;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Value::Null
        }
    };

    // Everything else passes through unchanged.
    let n = rpc("eth_blockNumber", json!([])).await;
    assert_eq!(
        n["result"],
        node.rpc("eth_blockNumber", json!([]))
            .await
            .expect("direct")
    );
    let bal = rpc("eth_getBalance", json!([friend, "latest"])).await;
    assert!(bal["result"].is_string(), "{bal}");

    // Allowed: forwarded, mined.
    let (tx, h) = raw(&key, chain_id, 0, friend, milli(500));
    let r = rpc("eth_sendRawTransaction", json!([tx])).await;
    assert_eq!(r["result"], json!(h), "{r}");
    assert!(!mined(h).await.is_null());

    // Denied: a JSON-RPC error that says why; never sent.
    let (tx, h) = raw(&key, chain_id, 1, LAZARUS, milli(10));
    let r = rpc("eth_sendRawTransaction", json!([tx])).await;
    assert_eq!(r["error"]["code"], json!(REFUSED), "{r}");
    let msg = r["error"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("denied by Holdfast") && msg.contains("screening") && msg.contains("LAZARUS"),
        "{msg}"
    );
    assert!(receipt(h).await.is_null());

    // Held: refused for now, sent on release.
    let (tx, held) = raw(&key, chain_id, 1, friend, milli(1500));
    let r = rpc("eth_sendRawTransaction", json!([tx])).await;
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("held by Holdfast"),
        "{r}"
    );
    let held_id = r["error"]["data"]["request_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(receipt(held).await.is_null());
    // Held and cancelled: never sent.
    let (tx, cancelled) = raw(&key, chain_id, 2, friend, milli(1600));
    let r = rpc("eth_sendRawTransaction", json!([tx])).await;
    let cancel_id = r["error"]["data"]["request_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let ops = Principal {
        name: "ops".into(),
        roles: vec![Role::Operator],
        address: None,
    };
    gate.cancel(&cancel_id, "drill", &ops)
        .await
        .expect("cancel");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    gate.tick().await.expect("tick");
    for _ in 0..50 {
        if !receipt(held).await.is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !receipt(held).await.is_null(),
        "the held transaction was sent on release ({held_id})"
    );
    assert!(
        receipt(cancelled).await.is_null(),
        "the cancelled one never"
    );

    // eth_sendTransaction for an account the node holds: decided, then the node signs.
    let r = rpc(
        "eth_sendTransaction",
        json!([{"from": dev_account(3), "to": dev_account(4), "value": "0x1"}]),
    )
    .await;
    let h: B256 = serde_json::from_value(r["result"].clone()).unwrap_or_else(|_| panic!("{r}"));
    assert!(!mined(h).await.is_null());
    let r = rpc(
        "eth_sendTransaction",
        json!([{"from": dev_account(3), "to": LAZARUS, "value": "0x1"}]),
    )
    .await;
    assert_eq!(r["error"]["code"], json!(REFUSED), "{r}");
    // A batch: each call answered in order.
    let body = json!([
        {"jsonrpc": "2.0", "id": 7, "method": "eth_chainId", "params": []},
        {"jsonrpc": "2.0", "id": 8, "method": "eth_sendRawTransaction", "params": ["0x00"]}
    ]);
    let v: Value = client
        .post(&url)
        .json(&body)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(v[0]["id"], 7);
    assert!(v[0]["result"].is_string());
    assert!(
        v[1]["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("raw"),
        "{v}"
    );
}
