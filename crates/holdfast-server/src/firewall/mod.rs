//! The JSON-RPC firewall: in front of a node, every method is classified
//! ([`methods::Class`]) and fails closed:
//!
//! - sends (`eth_sendRawTransaction`, `eth_sendTransaction` and their EIP-7966 `…Sync`
//!   variants) are decided by the guard; a denied one gets a JSON-RPC error that says why, a
//!   held one is kept and sent on release (a cancelled one never); an allowed `…Sync` send is
//!   answered with its receipt, waited for here;
//! - reads on the allowlist are forwarded unchanged;
//! - everything else — methods that make the node sign, send without a decision, or change
//!   its state, and every unknown method — is refused with an error naming the method and why.
//!
//! A batch is decided element by element, in order: each element gets its own answer with its
//! own id, and a refused element does not stop the others.

pub mod methods;
mod strict;

use std::sync::Arc;
use std::time::Duration;

use alloy_primitives::B256;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use holdfast_gate::{Gate, Outcome, Principal, Role};
use holdfast_store::gate::RequestState;
use serde_json::{Value, json};

use crate::body::{BodyError, read_body};
use methods::{Class, ReadMethods, Refusal, SendMethod};

/// JSON-RPC error code for a send Holdfast denied or is holding (EIP-1474 "transaction
/// rejected").
pub const REFUSED: i64 = -32_003;
/// JSON-RPC error code for a method the firewall does not forward (EIP-1474 "method not
/// supported").
pub const METHOD_REFUSED: i64 = -32_004;
/// EIP-7966: an allowed `…Sync` send was sent but its receipt did not come within the wait.
pub const SYNC_TIMEOUT: i64 = 4;
const PARSE_ERROR: i64 = -32_700;
const INVALID_REQUEST: i64 = -32_600;
const INVALID_PARAMS: i64 = -32_602;
const INTERNAL: i64 = -32_603;

/// Most calls in one batch.
pub const MAX_BATCH_CALLS: usize = 100;
/// Largest JSON-RPC body (one call or a batch): the guard's own request limit.
pub const MAX_BODY_BYTES: usize = holdfast_guard::request::MAX_REQUEST_BYTES;
/// How long a `…Sync` send waits for its receipt when the caller names no timeout.
pub const DEFAULT_RECEIPT_WAIT: Duration = Duration::from_secs(10);
/// The longest a caller may ask a `…Sync` send to wait.
pub const MAX_RECEIPT_WAIT: Duration = Duration::from_secs(60);
/// How long the node may take to answer one forwarded call.
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(30);

/// The firewall in front of one node.
#[derive(Debug, Clone)]
pub struct Firewall {
    gate: Arc<Gate>,
    upstream: String,
    client: reqwest::Client,
    principal: Principal,
    reads: ReadMethods,
    body_timeout: Duration,
    receipt_poll: Duration,
}

impl Firewall {
    /// A firewall deciding through `gate` in front of the node at `upstream`, submitting as
    /// the initiator `json-rpc-firewall`, forwarding the built-in reads only.
    pub fn new(gate: Arc<Gate>, upstream: impl Into<String>) -> Firewall {
        Firewall {
            gate,
            upstream: upstream.into(),
            client: reqwest::Client::new(),
            principal: Principal {
                name: "json-rpc-firewall".into(),
                roles: vec![Role::Initiator],
                address: None,
            },
            reads: ReadMethods::default(),
            body_timeout: crate::serve::Limits::default().body_timeout,
            receipt_poll: Duration::from_millis(100),
        }
    }

    /// Submits as `principal` (it needs the initiator role).
    pub fn with_principal(mut self, principal: Principal) -> Firewall {
        self.principal = principal;
        self
    }

    /// Forwards these reads too ([`ReadMethods::with_extra`]).
    pub fn with_reads(mut self, reads: ReadMethods) -> Firewall {
        self.reads = reads;
        self
    }

    /// The longest a request body may take to arrive.
    pub fn with_body_timeout(mut self, t: Duration) -> Firewall {
        self.body_timeout = t;
        self
    }

    /// Answers a JSON-RPC body (one call or a batch).
    pub async fn handle(&self, body: &[u8]) -> Value {
        match strict::parse(body) {
            Ok(Value::Array(calls)) if calls.is_empty() => rpc_error(
                &Value::Null,
                INVALID_REQUEST,
                "invalid request: empty batch",
            ),
            Ok(Value::Array(calls)) if calls.len() > MAX_BATCH_CALLS => rpc_error(
                &Value::Null,
                INVALID_REQUEST,
                &format!(
                    "invalid request: a batch of {} calls; at most {MAX_BATCH_CALLS}",
                    calls.len()
                ),
            ),
            Ok(Value::Array(calls)) => {
                let mut out = Vec::with_capacity(calls.len());
                for c in calls {
                    out.push(self.one(c).await);
                }
                Value::Array(out)
            }
            Ok(call) => self.one(call).await,
            Err(e) => rpc_error(&Value::Null, PARSE_ERROR, &format!("parse error: {e}")),
        }
    }

    async fn one(&self, call: Value) -> Value {
        let Value::Object(call) = call else {
            return rpc_error(
                &Value::Null,
                INVALID_REQUEST,
                "invalid request: a call is a JSON object",
            );
        };
        let id = call.get("id").cloned().unwrap_or(Value::Null);
        if !matches!(id, Value::Null | Value::String(_) | Value::Number(_)) {
            return rpc_error(
                &Value::Null,
                INVALID_REQUEST,
                "invalid request: id must be a string, a number or null",
            );
        }
        let Some(method) = call.get("method").and_then(Value::as_str) else {
            return rpc_error(
                &id,
                INVALID_REQUEST,
                "invalid request: method must be a string",
            );
        };
        let params = call.get("params");
        match self.reads.classify(method) {
            Class::Read => self.forward(&id, method, params).await,
            Class::Send(kind) => self.send(&id, method, kind, params).await,
            Class::Refused(why) => {
                tracing::warn!(target: "server::firewall", method, refused = why.name(), "method refused");
                refused(&id, method, why)
            }
        }
    }

    /// Forwards a read as a call built from its parts (nothing else of the caller's object).
    async fn forward(&self, id: &Value, method: &str, params: Option<&Value>) -> Value {
        let mut call = json!({"jsonrpc": "2.0", "id": id, "method": method});
        if let Some(p) = params {
            call["params"] = p.clone();
        }
        match self.upstream(&call).await {
            Ok(Value::Object(mut answer)) => {
                answer.insert("id".into(), id.clone());
                Value::Object(answer)
            }
            Ok(_) => rpc_error(id, INTERNAL, "the node's answer is not a JSON-RPC response"),
            Err(e) => rpc_error(id, INTERNAL, &e),
        }
    }

    async fn upstream(&self, call: &Value) -> Result<Value, String> {
        let r = self
            .client
            .post(&self.upstream)
            .timeout(UPSTREAM_TIMEOUT)
            .json(call)
            .send()
            .await
            .map_err(|e| format!("the node cannot be reached: {}", e.without_url()))?;
        r.json::<Value>()
            .await
            .map_err(|e| format!("the node's answer is not JSON: {}", e.without_url()))
    }

    /// A send: decided by the guard, answered with the hash (or the receipt for `…Sync`).
    async fn send(
        &self,
        id: &Value,
        method: &str,
        kind: SendMethod,
        params: Option<&Value>,
    ) -> Value {
        let args = match params {
            Some(Value::Array(a)) => a.as_slice(),
            _ => {
                return rpc_error(
                    id,
                    INVALID_PARAMS,
                    &format!("invalid params: {method} takes its parameters as an array"),
                );
            }
        };
        let most = if kind.waits_for_receipt() { 2 } else { 1 };
        if args.is_empty() || args.len() > most {
            let what = match kind {
                SendMethod::Raw => "[signed transaction]",
                SendMethod::RawSync => "[signed transaction, timeout in ms (optional)]",
                SendMethod::Node => "[transaction object]",
                SendMethod::NodeSync => "[transaction object, timeout in ms (optional)]",
            };
            return rpc_error(
                id,
                INVALID_PARAMS,
                &format!(
                    "invalid params: {method} takes {what}; {} given",
                    args.len()
                ),
            );
        }
        let body = match (kind, &args[0]) {
            (SendMethod::Raw | SendMethod::RawSync, Value::String(raw)) => json!({ "raw": raw }),
            (SendMethod::Node | SendMethod::NodeSync, tx @ Value::Object(_)) => tx.clone(),
            (SendMethod::Raw | SendMethod::RawSync, _) => {
                return rpc_error(
                    id,
                    INVALID_PARAMS,
                    &format!(
                        "invalid params: {method}'s first parameter is the signed transaction as a hex string"
                    ),
                );
            }
            (SendMethod::Node | SendMethod::NodeSync, _) => {
                return rpc_error(
                    id,
                    INVALID_PARAMS,
                    &format!(
                        "invalid params: {method}'s first parameter is the transaction object"
                    ),
                );
            }
        };
        let wait = match args.get(1) {
            None | Some(Value::Null) => DEFAULT_RECEIPT_WAIT,
            Some(t) => match receipt_wait(t) {
                Ok(w) => w,
                Err(e) => {
                    return rpc_error(id, INVALID_PARAMS, &format!("invalid params: {e}"));
                }
            },
        };
        let bytes = body.to_string().into_bytes();
        let out = match kind {
            SendMethod::Node | SendMethod::NodeSync => {
                self.gate.submit_forward(&bytes, &self.principal).await
            }
            SendMethod::Raw | SendMethod::RawSync => {
                self.gate.submit(&bytes, &self.principal).await
            }
        };
        let o = match out {
            Ok(o) => o,
            Err(e) => {
                return rpc_error(id, REFUSED, &format!("Holdfast could not decide: {e}"));
            }
        };
        let hash = match sent_hash(&o) {
            Ok(h) => h,
            Err(message) => return rpc_error_data(id, &message, &o),
        };
        if kind.waits_for_receipt() {
            self.receipt(id, hash, wait).await
        } else {
            json!({"jsonrpc": "2.0", "id": id, "result": hash})
        }
    }

    /// Waits for the receipt of a sent transaction (EIP-7966's answer).
    async fn receipt(&self, id: &Value, hash: B256, wait: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + wait;
        let call = json!({"jsonrpc": "2.0", "id": 1, "method": "eth_getTransactionReceipt", "params": [hash]});
        loop {
            if let Ok(answer) = self.upstream(&call).await
                && let Some(r) = answer.get("result").filter(|r| !r.is_null())
            {
                return json!({"jsonrpc": "2.0", "id": id, "result": r});
            }
            if tokio::time::Instant::now() + self.receipt_poll > deadline {
                return json!({"jsonrpc": "2.0", "id": id, "error": {
                    "code": SYNC_TIMEOUT,
                    "message": format!("allowed by Holdfast and sent as {hash}, but not in a block within {} ms; poll eth_getTransactionReceipt", wait.as_millis()),
                    "data": hash,
                }});
            }
            tokio::time::sleep(self.receipt_poll).await;
        }
    }
}

/// The hash of a transaction Holdfast sent, or why it did not.
fn sent_hash(o: &Outcome) -> Result<B256, String> {
    match (o.state, o.tx_hash) {
        (RequestState::Broadcast | RequestState::Included | RequestState::Signed, Some(h)) => Ok(h),
        (RequestState::Held, _) => Err(format!(
            "held by Holdfast until {} (request {}): it will be sent then unless an operator cancels it",
            o.release_at.unwrap_or_default(),
            o.id
        )),
        (RequestState::AwaitingApprovals, _) => Err(format!(
            "Holdfast needs approvals (request {}): it will be sent once they are in",
            o.id
        )),
        (RequestState::Denied, _) => Err(format!(
            "denied by Holdfast{}: {}",
            o.rule
                .as_ref()
                .map(|r| format!(" (rule {r:?})"))
                .unwrap_or_default(),
            o.reasons.join("; ")
        )),
        (RequestState::Failed, _) => Err(format!(
            "allowed by Holdfast but not sent (request {}): {}",
            o.id,
            o.error.as_deref().unwrap_or("the node refused it")
        )),
        (state, _) => Err(format!(
            "not sent (request {} is {}): ask the guard service for its state",
            o.id,
            state.name()
        )),
    }
}

/// EIP-7966's optional timeout: milliseconds, a number or a hex quantity, at most
/// [`MAX_RECEIPT_WAIT`].
fn receipt_wait(v: &Value) -> Result<Duration, String> {
    let ms = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s
            .strip_prefix("0x")
            .and_then(|h| u64::from_str_radix(h, 16).ok()),
        _ => None,
    }
    .ok_or_else(|| {
        format!("the timeout is {v}; expected milliseconds, a number or a hex quantity")
    })?;
    let d = Duration::from_millis(ms);
    if d.is_zero() {
        return Ok(DEFAULT_RECEIPT_WAIT);
    }
    if d > MAX_RECEIPT_WAIT {
        return Err(format!(
            "the timeout is {ms} ms; at most {} ms",
            MAX_RECEIPT_WAIT.as_millis()
        ));
    }
    Ok(d)
}

fn refused(id: &Value, method: &str, why: Refusal) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {
        "code": METHOD_REFUSED,
        "message": why.explain(method),
        "data": {"method": method, "refused": why.name()},
    }})
}

fn rpc_error(id: &Value, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

fn rpc_error_data(id: &Value, message: &str, o: &Outcome) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": REFUSED, "message": message, "data": {"request_id": o.id, "state": o.state, "decision": o.decision, "rule": o.rule, "reasons": o.reasons}}})
}

/// A JSON-RPC error as a whole HTTP answer (the body could not be read, no such route).
fn http_error(status: StatusCode, code: i64, message: &str) -> Response {
    (status, axum::Json(rpc_error(&Value::Null, code, message))).into_response()
}

/// The body of an answer hyper would send without one (a request head it cannot parse).
pub(crate) fn head_error_body(status: StatusCode) -> Vec<u8> {
    rpc_error(
        &Value::Null,
        INVALID_REQUEST,
        &format!(
            "invalid HTTP request: {}",
            status.canonical_reason().unwrap_or("bad request")
        ),
    )
    .to_string()
    .into_bytes()
}

async fn post_root(
    State(fw): State<Firewall>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    match read_body(&headers, body, MAX_BODY_BYTES, fw.body_timeout).await {
        Ok(bytes) => axum::Json(fw.handle(&bytes).await).into_response(),
        Err(e @ BodyError::TooLarge { .. }) => http_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            INVALID_REQUEST,
            &e.to_string(),
        ),
        Err(e @ BodyError::Timeout(_)) => {
            http_error(StatusCode::REQUEST_TIMEOUT, INVALID_REQUEST, &e.to_string())
        }
        Err(e @ BodyError::Read(_)) => {
            http_error(StatusCode::BAD_REQUEST, PARSE_ERROR, &e.to_string())
        }
    }
}

/// The firewall's router: JSON-RPC `POST /`; anything else is a JSON-RPC error.
pub fn firewall_router(fw: Firewall) -> axum::Router {
    use axum::routing::post;
    axum::Router::new()
        .route("/", post(post_root))
        .method_not_allowed_fallback(|| async {
            http_error(
                StatusCode::METHOD_NOT_ALLOWED,
                INVALID_REQUEST,
                "the firewall answers JSON-RPC in POST requests",
            )
        })
        .fallback(|| async {
            http_error(
                StatusCode::NOT_FOUND,
                INVALID_REQUEST,
                "the firewall answers JSON-RPC at /",
            )
        })
        .with_state(fw)
}

/// Serves the firewall on `listener` with `limits` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    fw: Firewall,
    limits: crate::serve::Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let fw = fw.with_body_timeout(limits.body_timeout);
    crate::serve::serve_router(
        listener,
        firewall_router(fw),
        limits,
        head_error_body,
        shutdown,
    )
    .await
}
