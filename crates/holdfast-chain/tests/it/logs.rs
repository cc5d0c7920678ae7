//! `ChainSource::logs_split` against a real anvil behind a proxy that refuses `eth_getLogs`
//! ranges the way a hosted provider does, in words of its own: the logs come whole and in
//! chain order, and a node that refuses everything fails after a few calls.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use alloy_primitives::{B256, keccak256};
use axum::Json;
use axum::extract::State;
use holdfast_chain::logs::MAX_SPLIT_CALLS;
use holdfast_chain::{ChainError, ChainSource};
use holdfast_testkit::{Anvil, Scenario};
use serde_json::{Value, json};

use crate::detail::source;

/// Forwards JSON-RPC to anvil, but answers an error to `eth_getLogs` over more than `limit`
/// blocks (0: to every `eth_getLogs`), counting the refusals.
struct Proxy {
    upstream: String,
    limit: AtomicU64,
    refused: AtomicUsize,
    client: reqwest::Client,
}

fn block_arg(v: &Value) -> Option<u64> {
    u64::from_str_radix(v.as_str()?.trim_start_matches("0x"), 16).ok()
}

async fn handle(State(p): State<Arc<Proxy>>, Json(req): Json<Value>) -> Json<Value> {
    if req["method"] == "eth_getLogs" {
        let f = &req["params"][0];
        let (from, to) = (block_arg(&f["fromBlock"]), block_arg(&f["toBlock"]));
        let limit = p.limit.load(Ordering::SeqCst);
        if let (Some(from), Some(to)) = (from, to)
            && (limit == 0 || to - from + 1 > limit)
        {
            p.refused.fetch_add(1, Ordering::SeqCst);
            // Words no list of "too many"/"limit" phrases would know.
            return Json(json!({
                "jsonrpc": "2.0",
                "id": req["id"],
                "error": {"code": -32602, "message": "please narrow your query window"}
            }));
        }
    }
    let answer = p
        .client
        .post(&p.upstream)
        .json(&req)
        .send()
        .await
        .expect("anvil answers")
        .json::<Value>()
        .await
        .expect("anvil's JSON");
    Json(answer)
}

async fn proxy(node: &Anvil, limit: u64) -> (String, Arc<Proxy>) {
    let p = Arc::new(Proxy {
        upstream: node.http_url(),
        limit: AtomicU64::new(limit),
        refused: AtomicUsize::new(0),
        client: reqwest::Client::new(),
    });
    let app = axum::Router::new()
        .route("/", axum::routing::post(handle))
        .with_state(p.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, p)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_range_is_halved_whatever_the_nodes_words() {
    let node = Anvil::spawn().await.expect("anvil");
    Scenario::new(&node).run().await.expect("scenario");
    let transfer = keccak256("Transfer(address,address,uint256)");
    let direct = source(&node.http_url(), holdfast_chain::TraceMode::Parity).await;
    let head = direct.head_number().await.expect("head");
    let want = direct
        .logs_of(&[], 0, head, &[transfer])
        .await
        .expect("anvil answers the whole range");
    assert!(
        want.len() >= 3,
        "the scenario emits transfers: {}",
        want.len()
    );

    let (url, p) = proxy(&node, 3).await;
    let limited: ChainSource = source(&url, holdfast_chain::TraceMode::Parity).await;
    let e = limited
        .logs_of(&[], 0, head, &[transfer])
        .await
        .expect_err("the whole range is refused");
    assert!(matches!(e, ChainError::Rpc { .. }), "{e}");
    let got = limited
        .logs_split(&[], 0, head, &[transfer])
        .await
        .expect("split until answered");
    assert_eq!(got, want, "every log, in chain order");
    assert!(p.refused.load(Ordering::SeqCst) > 1);

    // A node that refuses every range: the error, after about log2(range) calls.
    p.limit.store(0, Ordering::SeqCst);
    p.refused.store(0, Ordering::SeqCst);
    let e = limited
        .logs_split(&[], 0, 1023, &[B256::repeat_byte(1)])
        .await
        .expect_err("refused down to one block");
    assert!(e.to_string().contains("please narrow"), "{e}");
    assert_eq!(
        p.refused.load(Ordering::SeqCst),
        11,
        "1024 blocks halved ten times"
    );

    // A node that answers single blocks only: bounded, then its refusal is the error.
    node.mine(2_048).await.expect("mine");
    p.limit.store(1, Ordering::SeqCst);
    p.refused.store(0, Ordering::SeqCst);
    let e = limited
        .logs_split(&[], 0, 2_047, &[B256::repeat_byte(1)])
        .await
        .expect_err("more calls than the bound");
    assert!(e.to_string().contains("please narrow"), "{e}");
    assert!(
        p.refused.load(Ordering::SeqCst) <= MAX_SPLIT_CALLS,
        "{} refusals",
        p.refused.load(Ordering::SeqCst)
    );
}
