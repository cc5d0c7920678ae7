//! Failures a real node does not produce on demand (a busy work queue, oversized or malformed
//! answers, a block that is not the one asked for, a rotated cookie), from a scripted HTTP
//! server. The real node's behaviour is tested on litecoind (`tests/it/regtest.rs`).

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

/// One HTTP request as the fake node sees it.
struct Request {
    method: String,
    params: Value,
    id: Value,
    authorization: Option<String>,
}

type Answer = dyn Fn(&Request, usize) -> (u16, String) + Send + Sync;

/// Serves one JSON-RPC call per HTTP request (connection closed after each), answering with
/// `answer(request, n)` (`n` counts requests from 0). Returns the URL and the request count.
async fn serve(answer: Arc<Answer>) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let answer = answer.clone();
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let (head, body) = loop {
                    let mut chunk = [0u8; 65536];
                    let n = match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    buf.extend_from_slice(&chunk[..n]);
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_string();
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().to_owned())
                        })
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + len {
                        break (head, buf[end + 4..end + 4 + len].to_vec());
                    }
                };
                let call: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let req = Request {
                    method: call["method"].as_str().unwrap_or("").to_owned(),
                    params: call["params"].clone(),
                    id: call["id"].clone(),
                    authorization: head.lines().find_map(|l| {
                        l.split_once(':')
                            .filter(|(k, _)| k.eq_ignore_ascii_case("authorization"))
                            .map(|(_, v)| v.trim().to_owned())
                    }),
                };
                let n = seen.fetch_add(1, Ordering::SeqCst);
                let (status, text) = answer(&req, n);
                let resp = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
                    text.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
            });
        }
    });
    (url, count)
}

fn ok(req: &Request, result: Value) -> (u16, String) {
    (
        200,
        json!({"result": result, "error": null, "id": req.id}).to_string(),
    )
}

/// A node on Bitcoin regtest: `getblockchaininfo` and `getblockhash 0` answer.
fn regtest(req: &Request) -> Option<(u16, String)> {
    match req.method.as_str() {
        "getblockchaininfo" => Some(ok(
            req,
            json!({"chain": "regtest", "blocks": 0, "headers": 0,
                   "bestblockhash": Network::BitcoinRegtest.genesis_hex()}),
        )),
        "getblockhash" if req.params == json!([0]) => {
            Some(ok(req, json!(Network::BitcoinRegtest.genesis_hex())))
        }
        _ => None,
    }
}

fn config(url: &str) -> RpcConfig {
    let mut c = RpcConfig::new(url, RpcAuth::None);
    c.timeout = Duration::from_secs(5);
    c.max_retries = 3;
    c
}

#[tokio::test]
async fn a_busy_node_is_retried_and_a_bad_request_is_not() {
    let (url, count) = serve(Arc::new(|req: &Request, n| {
        if let Some(a) = regtest(req) {
            return a;
        }
        match (req.method.as_str(), n) {
            ("getblockhash", 2 | 3) => (503, "Work queue depth exceeded".to_owned()),
            ("getblockhash", _) => ok(req, json!(Network::BitcoinRegtest.genesis_hex())),
            _ => (
                404,
                json!({"result": null, "error": {"code": -32601, "message": "Method not found"}, "id": req.id})
                    .to_string(),
            ),
        }
    }))
    .await;
    let source = RpcSource::connect(config(&url)).await.expect("connect");
    assert_eq!(source.network(), Network::BitcoinRegtest);
    let before = count.load(Ordering::SeqCst);
    source.block_hash(5).await.expect("retried past two 503s");
    assert_eq!(count.load(Ordering::SeqCst) - before, 3);

    let before = count.load(Ordering::SeqCst);
    let e = source
        .call::<Value>("getmempoolinfo", json!([]), None)
        .await
        .expect_err("unknown method");
    assert_eq!(count.load(Ordering::SeqCst) - before, 1, "not retried");
    assert!(!e.is_transient());
    assert_eq!(
        e.to_string(),
        "getmempoolinfo: the node answered error -32601: Method not found"
    );
}

#[tokio::test]
async fn an_oversized_answer_is_refused_and_not_retried() {
    let (url, count) = serve(Arc::new(|req: &Request, _| {
        regtest(req).unwrap_or_else(|| ok(req, json!("ab".repeat(10_000))))
    }))
    .await;
    let mut c = config(&url);
    c.max_response_bytes = 4096;
    let source = RpcSource::connect(c).await.expect("connect");
    let hash = source.network().genesis_hex().parse().expect("hash");
    let before = count.load(Ordering::SeqCst);
    let e = source.raw_block(hash).await.expect_err("too large");
    assert!(matches!(e, RpcError::TooLarge { limit: 4096, .. }), "{e}");
    assert!(
        e.to_string().starts_with("getblock for block 0f9188f1"),
        "{e}"
    );
    assert_eq!(count.load(Ordering::SeqCst) - before, 1);
}

#[tokio::test]
async fn a_block_other_than_the_one_asked_for_is_inconsistent() {
    // Whatever is asked, the node sends the regtest genesis block.
    let genesis = bitcoin::consensus::serialize(&bitcoin::constants::genesis_block(
        bitcoin::Network::Regtest,
    ));
    let hex = hex::encode(genesis);
    let (url, _) = serve(Arc::new(move |req: &Request, _| {
        regtest(req).unwrap_or_else(|| ok(req, json!(hex)))
    }))
    .await;
    let source = RpcSource::connect(config(&url)).await.expect("connect");
    let other: BlockHash = "0000000000000000000000000000000000000000000000000000000000000001"
        .parse()
        .expect("hash");
    let e = source.block(other, Some(7)).await.expect_err("mismatch");
    assert!(matches!(e, RpcError::Inconsistent { .. }), "{e}");
    assert!(e.to_string().contains(&other.to_string()), "{e}");
    let genesis = source.network().genesis_hex().parse().expect("hash");
    let b = source.block(genesis, Some(0)).await.expect("genesis");
    assert_eq!(b.txs.len(), 1);
}

#[tokio::test]
async fn malformed_answers_name_method_and_block() {
    let (url, _) = serve(Arc::new(|req: &Request, _| {
        if let Some(a) = regtest(req) {
            return a;
        }
        match req.method.as_str() {
            "getblockhash" => ok(req, json!("not a hash")),
            _ => ok(req, json!("zz")),
        }
    }))
    .await;
    let source = RpcSource::connect(config(&url)).await.expect("connect");
    let e = source.block_hash(9).await.expect_err("bad hash");
    assert!(
        e.to_string()
            .starts_with("getblockhash for block 9: the node's answer is malformed"),
        "{e}"
    );
    let hash = source.network().genesis_hex().parse().expect("hash");
    let e = source.raw_block(hash).await.expect_err("bad hex");
    assert!(e.to_string().contains("not hex"), "{e}");
}

#[tokio::test]
async fn url_credentials_are_sent_and_never_shown() {
    let (url, _) = serve(Arc::new(|req: &Request, _| {
        // "alice:s3cret" in base64
        if req.authorization.as_deref() != Some("Basic YWxpY2U6czNjcmV0") {
            return (401, String::new());
        }
        regtest(req).unwrap_or_else(|| (500, "boom".to_owned()))
    }))
    .await;
    let with_creds = url.replace("http://", "http://alice:s3cret@");
    let source = RpcSource::connect(config(&with_creds))
        .await
        .expect("credentials from the URL");
    assert!(!source.endpoint().contains("s3cret"));
    let e = source.block_hash(1).await.expect_err("500");
    assert!(!e.to_string().contains("s3cret"), "{e}");

    let wrong = url.replace("http://", "http://alice:wrong@");
    let e = RpcSource::connect(config(&wrong)).await.expect_err("401");
    assert!(
        matches!(e, RpcError::Unauthorized { status: 401, .. }),
        "{e}"
    );
    assert!(!e.to_string().contains("wrong"), "{e}");
}

#[tokio::test]
async fn a_rotated_cookie_is_read_again() {
    let dir = std::env::temp_dir().join(format!("hf-cookie-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let cookie = dir.join(".cookie");
    std::fs::write(&cookie, "__cookie__:old").expect("write");
    // The node accepts the old cookie for the two calls of connect, then restarts with a
    // new one.
    let (url, _) = serve(Arc::new(|req: &Request, n| {
        let expected = if n < 2 {
            "Basic X19jb29raWVfXzpvbGQ=" // "__cookie__:old"
        } else {
            "Basic X19jb29raWVfXzpuZXc=" // "__cookie__:new"
        };
        if req.authorization.as_deref() != Some(expected) {
            return (401, String::new());
        }
        regtest(req).unwrap_or_else(|| ok(req, json!(Network::BitcoinRegtest.genesis_hex())))
    }))
    .await;
    let mut c = config(&url);
    c.auth = RpcAuth::Cookie(cookie.clone());
    let source = RpcSource::connect(c.clone()).await.expect("old cookie");
    std::fs::write(&cookie, "__cookie__:new").expect("rewrite");
    source
        .block_hash(3)
        .await
        .expect("the cookie is read again");

    std::fs::remove_file(&cookie).expect("remove");
    let e = RpcSource::connect(c).await.expect_err("no cookie");
    assert!(matches!(e, RpcError::Cookie { .. }), "{e}");
    assert!(e.is_transient());
    let _ = std::fs::remove_dir_all(&dir);
}
