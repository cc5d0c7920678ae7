//! The JSON-RPC firewall in front of a real anvil: allowed transactions go through, denied
//! ones get a JSON-RPC error that says why, held ones are sent when released, cancelled ones
//! never; reads pass through; every method that sends is decided (the EIP-7966 `…Sync`
//! variants like their plain twins) and every method that signs, sends unsigned or
//! administers the node is refused — checked by balances on the node, not only by answers.

use std::sync::Arc;
use std::time::Duration;

use alloy::consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy::eips::eip2718::Encodable2718;
use alloy::primitives::{Address, B256, Bytes, TxKind, U256, address};
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use holdfast_gate::{Gate, GateConfig, Principal, Role};
use holdfast_guard::{Guard, Policy};
use holdfast_server::Limits;
use holdfast_server::firewall::methods::ReadMethods;
use holdfast_server::firewall::{Firewall, METHOD_REFUSED, REFUSED};
use holdfast_store::gate::EmbeddedGateStore;
use holdfast_testkit::{Anvil, dev_account, dev_signer};
use serde_json::{Value, json};

const LAZARUS: Address = address!("0x098B716B8Aaf21512996dC57EB0615e2383E2f96");

fn milli(n: u64) -> U256 {
    U256::from(n) * U256::from(10u64).pow(U256::from(15))
}

fn raw(
    key: &PrivateKeySigner,
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

/// anvil, a gate deciding with a small policy (deny high-risk counterparties, hold over
/// 1 ETH, allow two friends, deny the rest), and the firewall on a real socket.
struct Setup {
    node: Anvil,
    gate: Arc<Gate>,
    url: String,
    client: reqwest::Client,
    chain_id: u64,
    _dir: tempfile::TempDir,
}

impl Setup {
    async fn start(reads: ReadMethods) -> Setup {
        let node = Anvil::spawn().await.expect("anvil");
        let chain_id = node.chain_id().await.expect("chain id");
        let policy = format!(
            "[policy]\nname = \"fw\"\n[assets.ETH]\nnative = true\ndecimals = 18\n[lists]\nok = [\"{}\", \"{}\"]\n\
             [[rule]]\nname = \"screening\"\nwhen = {{ counterparty_risk = \"high\" }}\naction = \"deny\"\n\
             [[rule]]\nname = \"medium\"\nwhen = {{ asset_in = [\"ETH\"], amount_above = \"1\" }}\naction = \"hold\"\nhold = \"1s\"\n\
             [[rule]]\nname = \"ok\"\nwhen = {{ destination_in = \"ok\" }}\naction = \"allow\"\n",
            dev_account(5),
            dev_account(4)
        );
        let intel = Arc::new(holdfast_intel::load(None).expect("intel").index);
        let guard = Guard::new(
            Arc::new(Policy::parse("fw.toml", &policy).expect("policy")),
            intel,
        );
        let chain = Arc::new(
            holdfast_chain::ChainSource::connect(holdfast_guard::rpc::source_config(
                &node.http_url(),
            ))
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
        let fw = Firewall::new(gate.clone(), node.http_url()).with_reads(reads);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(holdfast_server::firewall::serve(
            listener,
            fw,
            Limits::default(),
            std::future::pending(),
        ));
        Setup {
            node,
            gate,
            url,
            client: reqwest::Client::new(),
            chain_id,
            _dir: dir,
        }
    }

    async fn post(&self, body: &Value) -> Value {
        self.post_text(&body.to_string()).await
    }

    async fn post_text(&self, body: &str) -> Value {
        self.client
            .post(&self.url)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .expect("send")
            .json::<Value>()
            .await
            .expect("json")
    }

    async fn rpc(&self, method: &str, params: Value) -> Value {
        self.post(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
            .await
    }

    async fn direct(&self, method: &str, params: Value) -> Value {
        self.node.rpc(method, params).await.expect("direct")
    }

    async fn balance(&self, a: Address) -> U256 {
        serde_json::from_value(self.direct("eth_getBalance", json!([a, "latest"])).await)
            .expect("balance")
    }

    async fn nonce(&self, a: Address) -> u64 {
        let n: U256 = serde_json::from_value(
            self.direct("eth_getTransactionCount", json!([a, "pending"]))
                .await,
        )
        .expect("nonce");
        n.to::<u64>()
    }

    async fn receipt(&self, h: B256) -> Value {
        self.direct("eth_getTransactionReceipt", json!([h])).await
    }

    /// A sent transaction's receipt, waited for (up to 10 s): on a loaded machine the node
    /// can answer the send before the receipt is there.
    async fn mined(&self, h: B256) -> Value {
        for _ in 0..100 {
            let r = self.receipt(h).await;
            if !r.is_null() {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Value::Null
    }
}

fn message(v: &Value) -> &str {
    v["error"]["message"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_firewall_decides_on_sends_and_forwards_reads() {
    let s = Setup::start(ReadMethods::default()).await;
    let key = dev_signer(6).expect("key");
    let friend = dev_account(5);

    // Reads pass through unchanged.
    let n = s.rpc("eth_blockNumber", json!([])).await;
    assert_eq!(n["result"], s.direct("eth_blockNumber", json!([])).await);
    let bal = s.rpc("eth_getBalance", json!([friend, "latest"])).await;
    assert!(bal["result"].is_string(), "{bal}");

    // Allowed: forwarded, mined.
    let (tx, h) = raw(&key, s.chain_id, 0, friend, milli(500));
    let r = s.rpc("eth_sendRawTransaction", json!([tx])).await;
    assert_eq!(r["result"], json!(h), "{r}");
    assert!(!s.mined(h).await.is_null());

    // Denied: a JSON-RPC error that says why; never sent.
    let (tx, h) = raw(&key, s.chain_id, 1, LAZARUS, milli(10));
    let r = s.rpc("eth_sendRawTransaction", json!([tx])).await;
    assert_eq!(r["error"]["code"], json!(REFUSED), "{r}");
    let msg = message(&r);
    assert!(
        msg.contains("denied by Holdfast") && msg.contains("screening") && msg.contains("LAZARUS"),
        "{msg}"
    );
    assert!(s.receipt(h).await.is_null());

    // Held: refused for now, sent on release.
    let (tx, held) = raw(&key, s.chain_id, 1, friend, milli(1500));
    let r = s.rpc("eth_sendRawTransaction", json!([tx])).await;
    assert!(message(&r).contains("held by Holdfast"), "{r}");
    let held_id = r["error"]["data"]["request_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(s.receipt(held).await.is_null());
    // Held and cancelled: never sent.
    let (tx, cancelled) = raw(&key, s.chain_id, 2, friend, milli(1600));
    let r = s.rpc("eth_sendRawTransaction", json!([tx])).await;
    let cancel_id = r["error"]["data"]["request_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let ops = Principal {
        name: "ops".into(),
        roles: vec![Role::Operator],
        address: None,
    };
    s.gate
        .cancel(&cancel_id, "drill", &ops)
        .await
        .expect("cancel");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    s.gate.tick().await.expect("tick");
    assert!(
        !s.mined(held).await.is_null(),
        "the held transaction was sent on release ({held_id})"
    );
    assert!(
        s.receipt(cancelled).await.is_null(),
        "the cancelled one never"
    );

    // eth_sendTransaction for an account the node holds: decided, then the node signs.
    let r = s
        .rpc(
            "eth_sendTransaction",
            json!([{"from": dev_account(3), "to": dev_account(4), "value": "0x1"}]),
        )
        .await;
    let h: B256 = serde_json::from_value(r["result"].clone()).unwrap_or_else(|_| panic!("{r}"));
    assert!(!s.mined(h).await.is_null());
    let r = s
        .rpc(
            "eth_sendTransaction",
            json!([{"from": dev_account(3), "to": LAZARUS, "value": "0x1"}]),
        )
        .await;
    assert_eq!(r["error"]["code"], json!(REFUSED), "{r}");

    // The …Sync variants, allowed: decided like their twins, answered with the receipt.
    let nonce = s.nonce(key.address()).await;
    let (tx, h) = raw(&key, s.chain_id, nonce, friend, milli(7));
    let r = s.rpc("eth_sendRawTransactionSync", json!([tx, 5000])).await;
    assert_eq!(r["result"]["transactionHash"], json!(h), "{r}");
    assert_eq!(r["result"]["status"], "0x1", "{r}");
    let r = s
        .rpc(
            "eth_sendTransactionSync",
            json!([{"from": dev_account(3), "to": friend, "value": "0x2"}]),
        )
        .await;
    assert_eq!(r["result"]["status"], "0x1", "{r}");
    assert_eq!(
        r["result"]["to"],
        json!(friend.to_string().to_lowercase()),
        "{r}"
    );
    // A timeout that is not milliseconds is refused before anything is decided.
    let r = s
        .rpc("eth_sendRawTransactionSync", json!([tx, "soon"]))
        .await;
    assert_eq!(r["error"]["code"], -32602, "{r}");
}

/// The bypass found on trial: every way anvil offers to move value, aimed at Lazarus.
/// Before the fix the `…Sync` sends and `eth_sendUnsignedTransaction` were forwarded
/// unchanged and moved the value the firewall had just denied.
#[tokio::test(flavor = "multi_thread")]
async fn no_method_moves_value_to_lazarus_without_a_decision() {
    let s = Setup::start(ReadMethods::default()).await;
    let key = dev_signer(6).expect("key");
    let before = s.balance(LAZARUS).await;
    let node_account = dev_account(3);

    let nonce = s.nonce(key.address()).await;
    let (tx, tx_hash) = raw(&key, s.chain_id, nonce, LAZARUS, milli(10));
    let to_lazarus = json!({"from": node_account, "to": LAZARUS, "value": "0xde0b6b3a7640000"});
    // (method, params, expected error code)
    let attempts: Vec<(&str, Value, i64)> = vec![
        ("eth_sendRawTransaction", json!([tx]), REFUSED),
        ("eth_sendRawTransactionSync", json!([tx]), REFUSED),
        ("eth_sendRawTransactionSync", json!([tx, 2000]), REFUSED),
        ("eth_sendTransaction", json!([to_lazarus]), REFUSED),
        ("eth_sendTransactionSync", json!([to_lazarus]), REFUSED),
        (
            "eth_sendUnsignedTransaction",
            json!([to_lazarus]),
            METHOD_REFUSED,
        ),
        ("eth_signTransaction", json!([to_lazarus]), METHOD_REFUSED),
        (
            "eth_sign",
            json!([node_account, "0xdeadbeef"]),
            METHOD_REFUSED,
        ),
        (
            "personal_sign",
            json!(["0xdeadbeef", node_account]),
            METHOD_REFUSED,
        ),
        (
            "eth_signTypedData_v4",
            json!([node_account, {}]),
            METHOD_REFUSED,
        ),
        (
            "anvil_setBalance",
            json!([LAZARUS, "0xde0b6b3a7640000"]),
            METHOD_REFUSED,
        ),
        (
            "hardhat_setBalance",
            json!([LAZARUS, "0xde0b6b3a7640000"]),
            METHOD_REFUSED,
        ),
        (
            "anvil_impersonateAccount",
            json!([node_account]),
            METHOD_REFUSED,
        ),
        (
            "anvil_autoImpersonateAccount",
            json!([true]),
            METHOD_REFUSED,
        ),
        ("anvil_setCode", json!([LAZARUS, "0x00"]), METHOD_REFUSED),
        ("evm_mine", json!([]), METHOD_REFUSED),
        (
            "wallet_sendTransaction",
            json!([to_lazarus]),
            METHOD_REFUSED,
        ),
        ("eth_fillTransaction", json!([to_lazarus]), METHOD_REFUSED),
        ("eth_SendRawTransaction", json!([tx]), METHOD_REFUSED),
        ("no_such_method", json!([]), METHOD_REFUSED),
    ];
    for (method, params, code) in &attempts {
        let r = s.rpc(method, params.clone()).await;
        assert_eq!(
            s.balance(LAZARUS).await,
            before,
            "{method} moved value to Lazarus: {r}"
        );
        assert_eq!(r["error"]["code"], json!(code), "{method}: {r}");
        assert!(r.get("result").is_none(), "{method}: {r}");
        if *code == METHOD_REFUSED {
            assert!(message(&r).contains(method), "{method}: {r}");
            assert_eq!(r["error"]["data"]["method"], json!(method), "{r}");
        } else {
            assert!(message(&r).contains("denied by Holdfast"), "{method}: {r}");
        }
    }
    // The same in a batch, with a read and an allowed send among them: each element gets
    // its own answer and id, in order; a refused one does not stop the others.
    let friend = dev_account(5);
    let (ok_tx, ok_hash) = raw(&key, s.chain_id, nonce, friend, milli(3));
    let batch = json!([
        {"jsonrpc": "2.0", "id": "a", "method": "eth_sendUnsignedTransaction", "params": [to_lazarus]},
        {"jsonrpc": "2.0", "id": 2, "method": "eth_sendRawTransactionSync", "params": [tx]},
        {"jsonrpc": "2.0", "id": 3, "method": "eth_chainId", "params": []},
        {"jsonrpc": "2.0", "id": 4, "method": "anvil_setBalance", "params": [LAZARUS, "0x1"]},
        {"jsonrpc": "2.0", "id": 5, "method": "eth_sendRawTransactionSync", "params": [ok_tx]},
        7,
        {"jsonrpc": "2.0", "id": null, "method": "eth_sendTransaction", "params": [to_lazarus]},
    ]);
    let v = s.post(&batch).await;
    let answers = v.as_array().unwrap_or_else(|| panic!("{v}"));
    assert_eq!(answers.len(), 7, "{v}");
    assert_eq!(answers[0]["id"], "a");
    assert_eq!(answers[0]["error"]["code"], json!(METHOD_REFUSED), "{v}");
    assert_eq!(answers[1]["id"], 2);
    assert_eq!(answers[1]["error"]["code"], json!(REFUSED), "{v}");
    assert_eq!(answers[2]["id"], 3);
    assert_eq!(
        answers[2]["result"],
        s.direct("eth_chainId", json!([])).await
    );
    assert_eq!(answers[3]["error"]["code"], json!(METHOD_REFUSED), "{v}");
    assert_eq!(answers[4]["id"], 5);
    assert_eq!(
        answers[4]["result"]["transactionHash"],
        json!(ok_hash),
        "{v}"
    );
    assert_eq!(answers[5]["error"]["code"], -32600, "{v}");
    assert_eq!(answers[6]["id"], Value::Null);
    assert_eq!(answers[6]["error"]["code"], json!(REFUSED), "{v}");

    // On the node: nothing reached Lazarus, the denied transaction is not there, and the
    // node's account sent nothing.
    s.direct("evm_mine", json!([])).await;
    assert_eq!(s.balance(LAZARUS).await, before, "value moved to Lazarus");
    assert!(s.receipt(tx_hash).await.is_null());
    assert_eq!(
        s.nonce(node_account).await,
        0,
        "the node's account sent something"
    );
    assert_eq!(
        s.nonce(key.address()).await,
        nonce + 1,
        "only the allowed send"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn reads_are_forwarded_and_malformed_bodies_refused() {
    let s =
        Setup::start(ReadMethods::with_extra(["debug_traceTransaction"]).expect("a read")).await;
    let key = dev_signer(7).expect("key");
    let friend = dev_account(5);
    let (tx, h) = raw(&key, s.chain_id, 0, friend, milli(1));
    let r = s.rpc("eth_sendRawTransaction", json!([tx])).await;
    assert_eq!(r["result"], json!(h), "{r}");
    assert!(!s.mined(h).await.is_null());
    for (method, params) in [
        ("eth_chainId", json!([])),
        ("net_version", json!([])),
        ("eth_getBalance", json!([friend, "latest"])),
        ("eth_getTransactionCount", json!([key.address(), "latest"])),
        ("eth_getTransactionReceipt", json!([h])),
        ("eth_getTransactionByHash", json!([h])),
        ("eth_getBlockByNumber", json!(["0x1", false])),
        ("eth_getCode", json!([friend, "latest"])),
        ("eth_call", json!([{"to": friend, "data": "0x"}, "latest"])),
        (
            "eth_estimateGas",
            json!([{"from": friend, "to": LAZARUS, "value": "0x1"}]),
        ),
        ("eth_accounts", json!([])),
        (
            "eth_getLogs",
            json!([{"fromBlock": "0x0", "toBlock": "latest"}]),
        ),
        (
            "debug_traceTransaction",
            json!([h, {"tracer": "callTracer"}]),
        ),
    ] {
        let through = s.rpc(method, params.clone()).await;
        assert_eq!(
            through["result"],
            s.direct(method, params).await,
            "{method}: {through}"
        );
    }
    // eth_estimateGas to Lazarus sent nothing.
    assert_eq!(s.nonce(friend).await, 0);
    // Tracing is a read only when the operator adds it.
    let other = Setup::start(ReadMethods::default()).await;
    let r = other.rpc("debug_traceTransaction", json!([h])).await;
    assert_eq!(r["error"]["code"], json!(METHOD_REFUSED), "{r}");

    // Malformed: each a JSON-RPC error, nothing forwarded.
    let dup = r#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId","method":"eth_sendUnsignedTransaction","params":[]}"#;
    let r = s.post_text(dup).await;
    assert_eq!(r["error"]["code"], -32700, "{r}");
    assert!(message(&r).contains("duplicate key \"method\""), "{r}");
    let r = s.post_text("[]").await;
    assert_eq!(r["error"]["code"], -32600, "{r}");
    let big: Vec<Value> = (0..101)
        .map(|i| json!({"jsonrpc": "2.0", "id": i, "method": "eth_chainId"}))
        .collect();
    let r = s.post(&Value::Array(big)).await;
    assert_eq!(r["error"]["code"], -32600, "{r}");
    assert!(message(&r).contains("at most 100"), "{r}");
    let r = s.rpc("eth_sendRawTransaction", json!({"tx": tx})).await;
    assert_eq!(r["error"]["code"], -32602, "{r}");
    let r = s.rpc("eth_sendRawTransaction", json!([tx, 1])).await;
    assert_eq!(r["error"]["code"], -32602, "{r}");
    let r = s.post_text("{not json").await;
    assert_eq!(r["error"]["code"], -32700, "{r}");
    // Another path or method: a JSON-RPC error too.
    let resp = s.client.get(&s.url).send().await.expect("get");
    assert_eq!(resp.status(), 405);
    let v: Value = resp.json().await.expect("json");
    assert_eq!(v["error"]["code"], -32600, "{v}");
}
