//! Malformed and inconsistent node answers, from a scripted JSON-RPC server (a fake node:
//! a real one does not misbehave on demand).

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

/// Serves JSON-RPC over HTTP, answering each call with `answer(method, params)`.
async fn serve(answer: fn(&str, &Value) -> Value) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let mut chunk = [0u8; 65536];
                    let Ok(n) = sock.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    if buf.len() < end + 4 + len {
                        continue;
                    }
                    let body: Value =
                        serde_json::from_slice(&buf[end + 4..end + 4 + len]).unwrap_or(Value::Null);
                    buf.drain(..end + 4 + len);
                    let one = |req: &Value| {
                        let result = answer(req["method"].as_str().unwrap_or(""), &req["params"]);
                        if result.get("__error").is_some() {
                            json!({"jsonrpc": "2.0", "id": req["id"], "error": {"code": -32601, "message": "method not found"}})
                        } else {
                            json!({"jsonrpc": "2.0", "id": req["id"], "result": result})
                        }
                    };
                    let reply = match &body {
                        Value::Array(reqs) => Value::Array(reqs.iter().map(one).collect()),
                        req => one(req),
                    };
                    let text = reply.to_string();
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{text}",
                        text.len()
                    );
                    if sock.write_all(resp.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    url
}

fn block(tx_count: usize) -> Value {
    json!({
        "number": "0x5", "hash": format!("0x{}", "55".repeat(32)), "parentHash": format!("0x{}", "44".repeat(32)), "timestamp": "0x10",
        "transactions": (0..tx_count).map(|i| format!("0x{:064x}", i + 1)).collect::<Vec<_>>(),
    })
}

fn receipt(i: usize, block_hash: &str) -> Value {
    json!({
        "transactionHash": format!("0x{:064x}", i + 1), "transactionIndex": format!("{i:#x}"), "blockHash": block_hash,
        "from": format!("0x{}", "11".repeat(20)), "to": format!("0x{}", "22".repeat(20)), "contractAddress": null, "status": "0x1", "logs": [],
    })
}

fn common(method: &str) -> Option<Value> {
    match method {
        "eth_chainId" => Some(json!("0x1")),
        "eth_blockNumber" => Some(json!("0x5")),
        "debug_traceBlockByNumber" | "trace_block" => Some(json!({"__error": true})),
        _ => None,
    }
}

async fn fetch(answer: fn(&str, &Value) -> Value) -> ChainError {
    let url = serve(answer).await;
    let mut config = SourceConfig::new(url);
    config.max_retries = 1;
    let source = ChainSource::connect(config).await.expect("connects");
    assert_eq!(
        source.trace_mode(),
        TraceMode::None,
        "neither trace method: warned, not fatal"
    );
    source.fetch_block(5).await.expect_err("must refuse")
}

#[tokio::test]
async fn missing_receipt_is_an_error_naming_block_and_method() {
    let err = fetch(|m, _| {
        common(m).unwrap_or_else(|| match m {
            "eth_getBlockByNumber" => block(2),
            "eth_getBlockReceipts" => json!([receipt(0, &format!("0x{}", "55".repeat(32)))]),
            _ => json!(null),
        })
    })
    .await;
    let msg = err.to_string();
    assert!(
        matches!(err, ChainError::Inconsistent { block: Some(5), .. }),
        "{msg}"
    );
    assert!(
        msg.contains("eth_getBlockReceipts")
            && msg.contains("block 5")
            && msg.contains("1 receipts for 2 transactions"),
        "{msg}"
    );
}

#[tokio::test]
async fn receipts_of_another_block_are_an_error() {
    let err = fetch(|m, _| {
        common(m).unwrap_or_else(|| match m {
            "eth_getBlockByNumber" => block(1),
            "eth_getBlockReceipts" => json!([receipt(0, &format!("0x{}", "66".repeat(32)))]),
            _ => json!(null),
        })
    })
    .await;
    assert!(err.to_string().contains("a reorg between reads"), "{err}");
    assert!(err.is_transient(), "refetching may succeed");
}

#[tokio::test]
async fn an_answer_over_the_bound_is_an_error_naming_block_and_method_and_not_retried() {
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let url = serve(|m, _| {
        common(m).unwrap_or_else(|| match m {
            "eth_getBlockByNumber" => {
                CALLS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                // About 200 KB: 3 000 transaction hashes.
                block(3000)
            }
            "eth_getBlockReceipts" => json!([]),
            _ => json!(null),
        })
    })
    .await;
    let mut config = SourceConfig::new(url);
    config.max_response_bytes = 64 << 10;
    let source = ChainSource::connect(config).await.expect("connects");
    let err = source.fetch_block(5).await.expect_err("must refuse");
    let msg = err.to_string();
    assert!(
        msg.contains("larger than 65536 bytes") && msg.contains("block 5"),
        "{msg}"
    );
    assert!(
        !err.is_transient(),
        "the same answer would come again: {msg}"
    );
    assert_eq!(
        CALLS.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "not retried"
    );
    // Under the bound, the same node answers.
    let mut config = SourceConfig::new(
        serve(|m, _| {
            common(m).unwrap_or_else(|| match m {
                "eth_getBlockByNumber" => block(0),
                "eth_getBlockReceipts" => json!([]),
                _ => json!(null),
            })
        })
        .await,
    );
    config.max_response_bytes = 64 << 10;
    let source = ChainSource::connect(config).await.expect("connects");
    assert_eq!(
        source.fetch_block(5).await.expect("fetches").block.number,
        5
    );
}

#[tokio::test]
async fn garbage_block_is_an_error_naming_the_method() {
    let err = fetch(|m, _| {
        common(m).unwrap_or_else(|| match m {
            "eth_getBlockByNumber" => json!({"number": "not a number"}),
            "eth_getBlockReceipts" => json!([]),
            _ => json!(null),
        })
    })
    .await;
    let msg = err.to_string();
    assert!(
        msg.contains("eth_getBlockByNumber") && msg.contains("block 5"),
        "{msg}"
    );
    assert!(
        !err.is_transient(),
        "a malformed answer is not waited out: {msg}"
    );
}

/// A block of `tx_count` full transactions (what `fetch_detail` asks for).
fn full_block(tx_count: usize) -> Value {
    let mut b = block(0);
    b["transactions"] = (0..tx_count)
        .map(|i| {
            json!({
                "hash": format!("0x{:064x}", i + 1), "from": format!("0x{}", "11".repeat(20)),
                "to": format!("0x{}", "22".repeat(20)), "value": "0x0", "input": "0x", "nonce": format!("{i:#x}"),
            })
        })
        .collect();
    b
}

fn call_frame(tx: usize) -> Value {
    json!({"txHash": format!("0x{:064x}", tx), "result": {
        "type": "CALL", "from": format!("0x{}", "11".repeat(20)), "to": format!("0x{}", "22".repeat(20)), "value": "0x0", "input": "0x",
    }})
}

/// Connects in `mode` to a fake node answering with `answer`.
async fn connect(mode: TraceMode, answer: fn(&str, &Value) -> Value) -> ChainSource {
    let mut config = SourceConfig::new(serve(answer).await);
    config.max_retries = 1;
    config.trace_mode = Some(mode);
    ChainSource::connect(config).await.expect("connects")
}

fn is_prestate(params: &Value) -> bool {
    params[1]["tracer"] == json!("prestateTracer")
}

#[tokio::test]
async fn a_call_trace_of_another_transaction_is_an_error() {
    // Regression: the callTracer's `txHash` was not compared with the block's transaction,
    // so a trace of another transaction gave its transfers to this one.
    let src = connect(TraceMode::Geth, |m, p| match m {
        "eth_chainId" => json!("0x1"),
        "eth_blockNumber" => json!("0x5"),
        "eth_getBlockByNumber" => full_block(1),
        "eth_getBlockReceipts" => json!([receipt(0, &format!("0x{}", "55".repeat(32)))]),
        "debug_traceBlockByNumber" if is_prestate(p) => json!({"__error": true}),
        "debug_traceBlockByNumber" => json!([call_frame(0x99)]),
        _ => json!(null),
    })
    .await;
    assert!(
        !src.serves_state_diff(),
        "prestateTracer refused: no state diffs"
    );
    for err in [
        src.fetch_block(5).await.expect_err("refused"),
        src.fetch_detail(5).await.expect_err("refused"),
    ] {
        let msg = err.to_string();
        assert!(
            msg.contains("debug_traceBlockByNumber")
                && msg.contains("block 5")
                && msg.contains("trace 0 is for tx 0x0000000000000000000000000000000000000000000000000000000000000099"),
            "{msg}"
        );
        assert!(err.is_transient(), "a reorg between reads: refetch");
    }
}

#[tokio::test]
async fn a_state_diff_missing_for_a_transaction_is_an_error_naming_the_tracer() {
    let src = connect(TraceMode::Geth, |m, p| match m {
        "eth_chainId" => json!("0x1"),
        "eth_blockNumber" => json!("0x5"),
        "eth_getBlockByNumber" => full_block(2),
        "eth_getBlockReceipts" => json!([
            receipt(0, &format!("0x{}", "55".repeat(32))),
            receipt(1, &format!("0x{}", "55".repeat(32)))
        ]),
        "debug_traceBlockByNumber" if is_prestate(p) => {
            json!([{"txHash": format!("0x{:064x}", 1), "result": {"pre": {}, "post": {}}}])
        }
        "debug_traceBlockByNumber" => json!([call_frame(1), call_frame(2)]),
        _ => json!(null),
    })
    .await;
    assert!(src.serves_state_diff());
    src.fetch_block(5)
        .await
        .expect("fetch_block reads no state diff");
    let msg = src.fetch_detail(5).await.expect_err("refused").to_string();
    assert!(
        msg.contains("prestateTracer")
            && msg.contains("block 5")
            && msg.contains("1 traces for 2 transactions"),
        "{msg}"
    );
}

#[tokio::test]
async fn replay_results_that_do_not_fit_the_block_are_errors_naming_the_method() {
    let src = connect(TraceMode::Parity, |m, _| match m {
        "eth_chainId" => json!("0x1"),
        "eth_blockNumber" => json!("0x5"),
        "eth_getBlockByNumber" => full_block(1),
        "eth_getBlockReceipts" => json!([receipt(0, &format!("0x{}", "55".repeat(32)))]),
        "trace_block" => json!([]),
        // A result without its state diff.
        "trace_replayBlockTransactions" => {
            json!([{"transactionHash": format!("0x{:064x}", 1), "output": "0x", "trace": [], "stateDiff": null}])
        }
        _ => json!(null),
    })
    .await;
    assert!(src.serves_state_diff());
    let msg = src.fetch_detail(5).await.expect_err("refused").to_string();
    assert!(
        msg.contains("trace_replayBlockTransactions")
            && msg.contains("block 5")
            && msg.contains("no stateDiff for transaction 0"),
        "{msg}"
    );
}
