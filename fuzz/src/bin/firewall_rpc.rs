//! The JSON-RPC firewall (`holdfast_server::firewall::Firewall::handle`): single calls and
//! batches, in front of a stub node on loopback that records every call it receives, with a
//! guard service on an embedded store in a temporary directory (no signer).
//!
//! Checks: no panic; bounded memory; every answer is JSON-RPC 2.0 (`result` or an `error`
//! with a numeric code and a message fit for a person); a batch gets one answer per call,
//! in order, each with its call's id when the id is valid; and the security property: the
//! node receives only reads (`Class::Read`) and receipt polls, never a send, a signing
//! method, an administrative or an unknown method.

use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use holdfast_fuzz::{Bound, bounded, check_message, run};
use holdfast_gate::{Gate, GateConfig};
use holdfast_guard::{Guard, Policy};
use holdfast_server::firewall::Firewall;
use holdfast_server::firewall::methods::{Class, ReadMethods};
use holdfast_store::gate::EmbeddedGateStore;
use serde_json::{Value, json};

type Seen = Arc<Mutex<Vec<String>>>;

/// A node that answers every call with `null` (a receipt with a receipt) and remembers the
/// methods.
async fn stub_node(seen: Seen) -> String {
    use axum::routing::post;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let url = format!("http://{}", listener.local_addr().expect("an address"));
    let app = axum::Router::new().route(
        "/",
        post(move |body: axum::body::Bytes| {
            let seen = seen.clone();
            async move {
                let call: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let method = call["method"].as_str().unwrap_or("(none)").to_owned();
                // A receipt at once, so that an allowed `…Sync` send does not wait for one.
                let result = if method == "eth_getTransactionReceipt" {
                    json!({"status": "0x1", "transactionHash": call["params"][0]})
                } else {
                    Value::Null
                };
                seen.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(method);
                axum::Json(json!({"jsonrpc": "2.0", "id": call["id"], "result": result}))
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn check_answer(answer: &Value, call: Option<&Value>) {
    assert_eq!(answer["jsonrpc"], "2.0", "not JSON-RPC 2.0: {answer}");
    let has_result = answer.get("result").is_some();
    match answer.get("error") {
        Some(error) => {
            assert!(!has_result, "both result and error: {answer}");
            assert!(
                error["code"].is_i64(),
                "an error without a numeric code: {answer}"
            );
            let message = error["message"]
                .as_str()
                .unwrap_or_else(|| panic!("an error without a message: {answer}"));
            check_message("firewall", message);
        }
        None => assert!(has_result, "neither result nor error: {answer}"),
    }
    // A body the firewall could not parse (it refuses duplicate keys, which serde_json
    // accepts) is answered with id null: it cannot know the id.
    let parse_error = answer["error"]["code"] == -32_700;
    if let Some(id) = call.and_then(|c| c.get("id"))
        && (id.is_string() || id.is_number())
        && !parse_error
    {
        assert_eq!(
            &answer["id"], id,
            "the answer's id is not its call's: {answer}"
        );
    }
}

/// What each fuzzed process needs of its own (a process forked by AFL must not share a store,
/// a socket or a runtime's threads with its parent).
struct Process {
    rt: tokio::runtime::Runtime,
    fw: Firewall,
    seen: Seen,
    _dir: tempfile::TempDir,
}

fn process(guard: &Guard) -> Process {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let seen: Seen = Arc::default();
    let fw = rt.block_on(async {
        let url = stub_node(seen.clone()).await;
        let store =
            Arc::new(EmbeddedGateStore::open(&dir.path().join("gate")).expect("the store opens"));
        let config = GateConfig {
            rpc: Some(url.clone()),
            simulate: false,
            ..GateConfig::default()
        };
        Firewall::new(
            Arc::new(Gate::new(store, guard.clone(), None, None, config)),
            url,
        )
    });
    Process {
        rt,
        fw,
        seen,
        _dir: dir,
    }
}

static PROCESS: OnceLock<Process> = OnceLock::new();

fn main() {
    // Built once before AFL's fork server: no I/O, no thread.
    let policy = Policy::default_policy().expect("the built-in policy parses");
    let intel = holdfast_intel::load(None).expect("the shipped intel loads");
    let guard = Guard::new(Arc::new(policy), Arc::new(intel.index));
    let reads = ReadMethods::default();
    run(move |data| {
        let Process { rt, fw, seen, .. } = PROCESS.get_or_init(|| process(&guard));
        seen.lock().unwrap_or_else(PoisonError::into_inner).clear();
        let (answer, _) = bounded(Bound::DEFAULT, data, || rt.block_on(fw.handle(data)));
        // What the firewall itself parsed (duplicate keys refused), to match answers to calls.
        match serde_json::from_slice::<Value>(data) {
            Ok(Value::Array(calls)) if !calls.is_empty() && calls.len() <= 100 => match &answer {
                Value::Array(answers) => {
                    assert_eq!(answers.len(), calls.len(), "one answer per call");
                    for (a, c) in answers.iter().zip(&calls) {
                        check_answer(a, Some(c));
                    }
                }
                // The whole body refused (a duplicate key, which serde_json let through).
                a => {
                    check_answer(a, None);
                    assert!(a.get("error").is_some(), "a batch answered with {a}");
                }
            },
            Ok(call @ Value::Object(_)) => match &answer {
                Value::Array(_) => panic!("a single call answered with a batch: {answer}"),
                a => check_answer(a, Some(&call)),
            },
            _ => match &answer {
                Value::Array(answers) => answers.iter().for_each(|a| check_answer(a, None)),
                a => check_answer(a, None),
            },
        }
        for method in seen.lock().unwrap_or_else(PoisonError::into_inner).iter() {
            assert!(
                reads.classify(method) == Class::Read || method == "eth_getTransactionReceipt",
                "the node received {method:?}, which is not a read"
            );
        }
    });
}
