//! [`RpcSource`]: one Bitcoin Core-compatible node (Bitcoin Core, Litecoin Core, …) over its
//! JSON-RPC HTTP interface, read block by block.
//!
//! The same guarantees as `holdfast-chain`'s EVM source: every answer is read in chunks up to
//! `max_response_bytes` and refused past it; a call times out; it is retried with capped
//! exponential backoff only when asking again may succeed (the node unreachable, a time-out,
//! HTTP 502/503/504 — Core's work queue full —, Core's "warming up" error −28, a stale cookie
//! after the node restarted); every error names the method and, where there is one, the block;
//! node URLs are logged and shown as scheme, host and port only (credentials in a URL are
//! moved to the `Authorization` header and never printed).
//!
//! Blocks are read raw (`getblock <hash> 0`) and decoded here with rust-bitcoin; the decoded
//! block must hash to the hash asked for and match its header's commitments
//! ([`Block::from_raw`]). The network is identified at connect by the genesis block hash.

use std::fmt;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bitcoin::BlockHash;
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::block::{Block, BlockError};
use crate::network::Network;

/// The default bound on one answer: 32 MiB. The largest answer read is a raw block in hex,
/// at most 8 MB for Bitcoin's 4 MB blocks.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 32 << 20;

/// How to authenticate to the node.
#[derive(Clone, PartialEq, Eq)]
pub enum RpcAuth {
    /// No `Authorization` header (or the user and password given in the URL).
    None,
    /// `-rpcuser`/`-rpcpassword` (or `-rpcauth`).
    UserPass { user: String, password: String },
    /// The node's cookie file (`<datadir>/[<network>/].cookie`, `__cookie__:<hex>`), read at
    /// connect and again whenever the node refuses it (it changes at every restart).
    Cookie(PathBuf),
}

impl fmt::Debug for RpcAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RpcAuth::None => f.write_str("None"),
            RpcAuth::UserPass { user, .. } => write!(f, "UserPass {{ user: {user:?}, .. }}"),
            RpcAuth::Cookie(path) => write!(f, "Cookie({path:?})"),
        }
    }
}

/// How to talk to the node.
#[derive(Clone)]
pub struct RpcConfig {
    /// `http://host:port` (a path such as `/wallet/w` is kept; `user:password@` is taken as
    /// the credentials).
    pub url: String,
    pub auth: RpcAuth,
    /// The network the node must be on; `None`: whatever its genesis block says.
    pub network: Option<Network>,
    /// Per call (connect, send, read the answer).
    pub timeout: Duration,
    /// Retries of a retryable failure before giving up.
    pub max_retries: u32,
    /// Largest answer read, bytes; a larger one is an error naming method and block, not
    /// retried.
    pub max_response_bytes: usize,
}

impl fmt::Debug for RpcConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RpcConfig")
            .field("url", &redact(&self.url))
            .field("auth", &self.auth)
            .field("network", &self.network)
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .field("max_response_bytes", &self.max_response_bytes)
            .finish()
    }
}

impl RpcConfig {
    pub fn new(url: impl Into<String>, auth: RpcAuth) -> Self {
        RpcConfig {
            url: url.into(),
            auth,
            network: None,
            timeout: Duration::from_secs(30),
            max_retries: 8,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }
}

/// A block named by height or hash, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockId {
    Height(u64),
    Hash(BlockHash),
}

impl fmt::Display for BlockId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlockId::Height(h) => write!(f, "block {h}"),
            BlockId::Hash(h) => write!(f, "block {h}"),
        }
    }
}

fn at(block: &Option<BlockId>) -> String {
    block.map_or_else(String::new, |b| format!(" for {b}"))
}

fn after(retries: u32) -> String {
    if retries > 0 {
        format!(" (after {retries} retries)")
    } else {
        String::new()
    }
}

/// What went wrong reading the node. Each names the method and, where there is one, the block.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("{method}{}: cannot reach the node at {endpoint}: {reason}{}", at(block), after(*retries))]
    Transport {
        method: &'static str,
        block: Option<BlockId>,
        endpoint: String,
        reason: String,
        retries: u32,
    },
    #[error("{method}{}: no answer within {timeout:?}{}", at(block), after(*retries))]
    Timeout {
        method: &'static str,
        block: Option<BlockId>,
        timeout: Duration,
        retries: u32,
    },
    #[error("{method}: the node at {endpoint} refused the credentials (HTTP {status})")]
    Unauthorized {
        method: &'static str,
        endpoint: String,
        status: u16,
    },
    #[error("{method}{}: HTTP {status}: {body}{}", at(block), after(*retries))]
    Http {
        method: &'static str,
        block: Option<BlockId>,
        status: u16,
        body: String,
        retries: u32,
    },
    #[error("{method}{}: the node answered error {code}: {message}{}", at(block), after(*retries))]
    Rpc {
        method: &'static str,
        block: Option<BlockId>,
        code: i64,
        message: String,
        retries: u32,
    },
    #[error("{method}: {block} is not on the node (yet)")]
    NoSuchBlock {
        method: &'static str,
        block: BlockId,
    },
    #[error(
        "{method}{}: the node's answer is larger than {limit} bytes",
        at(block)
    )]
    TooLarge {
        method: &'static str,
        block: Option<BlockId>,
        limit: usize,
    },
    #[error("{method}{}: the node's answer is malformed: {reason}", at(block))]
    Malformed {
        method: &'static str,
        block: Option<BlockId>,
        reason: String,
    },
    #[error("{method}{}: the node's answers are inconsistent: {reason}", at(block))]
    Inconsistent {
        method: &'static str,
        block: Option<BlockId>,
        reason: String,
    },
    #[error("getblock: {0}")]
    Block(#[from] BlockError),
    #[error("cannot read the node's cookie file {path}: {reason}")]
    Cookie { path: PathBuf, reason: String },
    #[error("the node at {endpoint} is on {found}, not {expected}")]
    WrongNetwork {
        endpoint: String,
        expected: Network,
        found: Network,
    },
    #[error(
        "the node at {endpoint} (chain {chain:?}) has genesis block {genesis}, which is no network Holdfast knows"
    )]
    UnknownNetwork {
        endpoint: String,
        chain: String,
        genesis: BlockHash,
    },
    #[error("node URL: {0}")]
    Url(String),
}

impl RpcError {
    /// Whether waiting and trying again may succeed: the node down or busy, a block not there
    /// yet, a reorg between two reads, a cookie being rewritten.
    pub fn is_transient(&self) -> bool {
        match self {
            RpcError::Transport { .. }
            | RpcError::Timeout { .. }
            | RpcError::NoSuchBlock { .. }
            | RpcError::Inconsistent { .. }
            | RpcError::Cookie { .. } => true,
            RpcError::Http { status, .. } => matches!(status, 502..=504),
            RpcError::Rpc { code, .. } => *code == RPC_IN_WARMUP,
            RpcError::Unauthorized { .. }
            | RpcError::TooLarge { .. }
            | RpcError::Malformed { .. }
            | RpcError::Block(_)
            | RpcError::WrongNetwork { .. }
            | RpcError::UnknownNetwork { .. }
            | RpcError::Url(_) => false,
        }
    }

    fn retried(mut self, n: u32) -> RpcError {
        match &mut self {
            RpcError::Transport { retries, .. }
            | RpcError::Timeout { retries, .. }
            | RpcError::Http { retries, .. }
            | RpcError::Rpc { retries, .. } => *retries = n,
            _ => {}
        }
        self
    }
}

/// Core's "Loading block index…" / "Verifying blocks…" at start.
const RPC_IN_WARMUP: i64 = -28;
/// Core's `RPC_INVALID_PARAMETER` (`getblockhash`: "Block height out of range").
const RPC_INVALID_PARAMETER: i64 = -8;
/// Core's `RPC_INVALID_ADDRESS_OR_KEY` (`getblock`: "Block not found").
const RPC_INVALID_ADDRESS_OR_KEY: i64 = -5;

/// What `getblockchaininfo` says (the fields Holdfast reads).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainInfo {
    /// `main`, `test`, `regtest`, `signet` (the node's name; the network is known by genesis).
    pub chain: String,
    /// Height of the best block.
    pub blocks: u64,
    pub headers: u64,
    pub best_block_hash: BlockHash,
    pub initial_block_download: bool,
    pub pruned: bool,
}

#[derive(serde::Deserialize)]
struct RawChainInfo {
    chain: String,
    blocks: u64,
    headers: u64,
    bestblockhash: String,
    #[serde(default)]
    initialblockdownload: bool,
    #[serde(default)]
    pruned: bool,
}

/// One node.
#[derive(Debug)]
pub struct RpcSource {
    http: reqwest::Client,
    url: reqwest::Url,
    endpoint: String,
    auth: RpcAuth,
    /// The credentials sent (from the URL, the config, or the cookie file as last read).
    credentials: Mutex<Option<(String, String)>>,
    network: Network,
    config: RpcConfig,
    next_id: AtomicU64,
}

/// The scheme, host and port of a URL, for messages (a URL may carry credentials or keys).
pub fn redact(url: &str) -> String {
    match reqwest::Url::parse(url.trim()) {
        Ok(u) => match (u.host_str(), u.port()) {
            (Some(h), Some(p)) => format!("{}://{h}:{p}", u.scheme()),
            (Some(h), None) => format!("{}://{h}", u.scheme()),
            _ => "<node>".to_owned(),
        },
        Err(_) => "<node>".to_owned(),
    }
}

impl RpcSource {
    /// Connects: reads the credentials, asks `getblockchaininfo` and the genesis block's hash,
    /// and settles the network (an unknown genesis, or another network than configured, is
    /// an error).
    pub async fn connect(config: RpcConfig) -> Result<RpcSource, RpcError> {
        let endpoint = redact(&config.url);
        let mut url = reqwest::Url::parse(config.url.trim())
            .map_err(|e| RpcError::Url(format!("{endpoint}: {e}")))?;
        if url.scheme() != "http" {
            return Err(RpcError::Url(format!(
                "{endpoint}: only http:// is supported (a node's RPC port speaks plain HTTP)"
            )));
        }
        let in_url = (!url.username().is_empty()).then(|| {
            (
                url.username().to_owned(),
                url.password().unwrap_or_default().to_owned(),
            )
        });
        let _ = url.set_username("");
        let _ = url.set_password(None);
        let credentials = match &config.auth {
            RpcAuth::None => in_url,
            RpcAuth::UserPass { user, password } => Some((user.clone(), password.clone())),
            RpcAuth::Cookie(path) => Some(read_cookie(path)?),
        };
        let http = reqwest::Client::builder()
            .connect_timeout(config.timeout)
            .build()
            .map_err(|e| RpcError::Url(format!("{endpoint}: {}", describe(e))))?;
        let mut source = RpcSource {
            http,
            url,
            endpoint,
            auth: config.auth.clone(),
            credentials: Mutex::new(credentials),
            network: config.network.unwrap_or(Network::Bitcoin),
            config,
            next_id: AtomicU64::new(1),
        };
        let info = source.chain_info().await?;
        let genesis = source.block_hash(0).await?;
        let found = Network::from_genesis(&genesis).ok_or_else(|| RpcError::UnknownNetwork {
            endpoint: source.endpoint.clone(),
            chain: info.chain.clone(),
            genesis,
        })?;
        if let Some(expected) = source.config.network
            && expected != found
        {
            return Err(RpcError::WrongNetwork {
                endpoint: source.endpoint.clone(),
                expected,
                found,
            });
        }
        source.network = found;
        tracing::info!(target: "bitcoin::rpc", endpoint = %source.endpoint, network = %found, tip = info.blocks, "connected");
        Ok(source)
    }

    pub const fn network(&self) -> Network {
        self.network
    }

    /// Scheme, host and port of the node, safe to show.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// `getblockchaininfo`.
    pub async fn chain_info(&self) -> Result<ChainInfo, RpcError> {
        const METHOD: &str = "getblockchaininfo";
        let raw: RawChainInfo = self.call(METHOD, json!([]), None).await?;
        let best_block_hash = raw.bestblockhash.parse().map_err(|e| RpcError::Malformed {
            method: METHOD,
            block: None,
            reason: format!("bestblockhash {:?}: {e}", raw.bestblockhash),
        })?;
        Ok(ChainInfo {
            chain: raw.chain,
            blocks: raw.blocks,
            headers: raw.headers,
            best_block_hash,
            initial_block_download: raw.initialblockdownload,
            pruned: raw.pruned,
        })
    }

    /// The hash of the block at `height` on the node's best chain (`getblockhash`); a height
    /// above the tip is [`RpcError::NoSuchBlock`].
    pub async fn block_hash(&self, height: u64) -> Result<BlockHash, RpcError> {
        const METHOD: &str = "getblockhash";
        let block = Some(BlockId::Height(height));
        let hex: String = self.call(METHOD, json!([height]), block).await?;
        hex.parse().map_err(|e| RpcError::Malformed {
            method: METHOD,
            block,
            reason: format!("block hash {:?}: {e}", crate::rpc::truncate(&hex)),
        })
    }

    /// The block's consensus-serialized bytes (`getblock <hash> 0`).
    pub async fn raw_block(&self, hash: BlockHash) -> Result<Vec<u8>, RpcError> {
        const METHOD: &str = "getblock";
        let block = Some(BlockId::Hash(hash));
        let hex: String = self
            .call(METHOD, json!([hash.to_string(), 0]), block)
            .await?;
        hex::decode(hex.trim()).map_err(|e| RpcError::Malformed {
            method: METHOD,
            block,
            reason: format!("not hex: {e}"),
        })
    }

    /// The block `hash`, decoded into the model; `height`, when known, is recorded in it. The
    /// bytes must hash to `hash`.
    pub async fn block(&self, hash: BlockHash, height: Option<u64>) -> Result<Block, RpcError> {
        let bytes = self.raw_block(hash).await?;
        let block = Block::from_raw(self.network, &bytes, height)?;
        if block.hash != hash {
            return Err(RpcError::Inconsistent {
                method: "getblock",
                block: Some(BlockId::Hash(hash)),
                reason: format!("asked for {hash}, the node sent block {}", block.hash),
            });
        }
        Ok(block)
    }

    /// The block at `height` on the node's best chain (`getblockhash`, then `getblock`).
    pub async fn block_at(&self, height: u64) -> Result<Block, RpcError> {
        let hash = self.block_hash(height).await?;
        self.block(hash, Some(height)).await
    }

    /// One call with a time-out and retries of retryable failures; the answer's `result`
    /// deserialized as `R`.
    pub async fn call<R: DeserializeOwned>(
        &self,
        method: &'static str,
        params: Value,
        block: Option<BlockId>,
    ) -> Result<R, RpcError> {
        let mut attempt = 0;
        let mut cookie_reread = false;
        loop {
            let outcome =
                tokio::time::timeout(self.config.timeout, self.send(method, &params, block)).await;
            let error = match outcome {
                Ok(Ok(v)) => {
                    return serde_json::from_value(v).map_err(|e| RpcError::Malformed {
                        method,
                        block,
                        reason: format!("unexpected result: {e}"),
                    });
                }
                Ok(Err(e)) => e,
                Err(_) => RpcError::Timeout {
                    method,
                    block,
                    timeout: self.config.timeout,
                    retries: attempt,
                },
            };
            let retry = match &error {
                // The node restarted and wrote a new cookie: read it once more.
                RpcError::Unauthorized { .. } if !cookie_reread => match &self.auth {
                    RpcAuth::Cookie(path) => {
                        cookie_reread = true;
                        let fresh = read_cookie(path)?;
                        *self.credentials.lock().map_err(|_| poisoned(method))? = Some(fresh);
                        true
                    }
                    _ => false,
                },
                RpcError::Transport { .. } | RpcError::Timeout { .. } => true,
                RpcError::Http { status, .. } => matches!(status, 502..=504),
                RpcError::Rpc { code, .. } => *code == RPC_IN_WARMUP,
                _ => false,
            };
            if !retry || attempt >= self.config.max_retries {
                return Err(error.retried(attempt));
            }
            attempt += 1;
            let delay = backoff(attempt);
            tracing::debug!(target: "bitcoin::rpc", method, block = ?block, attempt, ?delay, error = %error, "retrying");
            tokio::time::sleep(delay).await;
        }
    }

    /// One HTTP request; the answer read up to the size bound.
    async fn send(
        &self,
        method: &'static str,
        params: &Value,
        block: Option<BlockId>,
    ) -> Result<Value, RpcError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let body = json!({"jsonrpc": "1.0", "id": id, "method": method, "params": params});
        let mut request = self.http.post(self.url.clone()).json(&body);
        let credentials = self
            .credentials
            .lock()
            .map_err(|_| poisoned(method))?
            .clone();
        if let Some((user, password)) = credentials {
            request = request.basic_auth(user, Some(password));
        }
        let transport = |e: reqwest::Error| RpcError::Transport {
            method,
            block,
            endpoint: self.endpoint.clone(),
            reason: describe(e),
            retries: 0,
        };
        let mut response = request.send().await.map_err(transport)?;
        let status = response.status();
        if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            return Err(RpcError::Unauthorized {
                method,
                endpoint: self.endpoint.clone(),
                status: status.as_u16(),
            });
        }
        let limit = self.config.max_response_bytes;
        let too_large = || RpcError::TooLarge {
            method,
            block,
            limit,
        };
        if response.content_length().is_some_and(|n| n > limit as u64) {
            return Err(too_large());
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if bytes.len() + chunk.len() > limit {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        let answer: Option<Value> = serde_json::from_slice(&bytes).ok();
        let answer = match answer {
            Some(Value::Object(o)) if o.contains_key("result") || o.contains_key("error") => o,
            _ if !status.is_success() => {
                return Err(RpcError::Http {
                    method,
                    block,
                    status: status.as_u16(),
                    body: truncate(&String::from_utf8_lossy(&bytes)),
                    retries: 0,
                });
            }
            _ => {
                return Err(RpcError::Malformed {
                    method,
                    block,
                    reason: format!(
                        "not a JSON-RPC answer: {}",
                        truncate(&String::from_utf8_lossy(&bytes))
                    ),
                });
            }
        };
        if answer.get("id") != Some(&json!(id)) {
            return Err(RpcError::Malformed {
                method,
                block,
                reason: format!("answer id {:?}, request id {id}", answer.get("id")),
            });
        }
        match answer.get("error") {
            None | Some(Value::Null) => {}
            Some(e) => {
                let code = e.get("code").and_then(Value::as_i64).unwrap_or(0);
                let message = e
                    .get("message")
                    .and_then(Value::as_str)
                    .map_or_else(|| truncate(&e.to_string()), truncate);
                return Err(match (code, block) {
                    (RPC_INVALID_PARAMETER, Some(b @ BlockId::Height(_)))
                    | (RPC_INVALID_ADDRESS_OR_KEY, Some(b @ BlockId::Hash(_))) => {
                        RpcError::NoSuchBlock { method, block: b }
                    }
                    _ => RpcError::Rpc {
                        method,
                        block,
                        code,
                        message,
                        retries: 0,
                    },
                });
            }
        }
        Ok(answer.get("result").cloned().unwrap_or(Value::Null))
    }
}

fn poisoned(method: &'static str) -> RpcError {
    RpcError::Malformed {
        method,
        block: None,
        reason: "credentials lock poisoned".into(),
    }
}

/// `user:password` from a cookie file (one line; Core writes `__cookie__:<64 hex>`).
fn read_cookie(path: &std::path::Path) -> Result<(String, String), RpcError> {
    let fail = |reason: String| RpcError::Cookie {
        path: path.to_owned(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
    let line = text.lines().next().unwrap_or("").trim();
    let (user, password) = line
        .split_once(':')
        .ok_or_else(|| fail("expected one line `user:password`".into()))?;
    Ok((user.to_owned(), password.to_owned()))
}

/// A reqwest error and its causes, without the URL (it may carry credentials).
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Exponential backoff with a cap: 250 ms, 500 ms, 1 s, ... 8 s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(250u64.saturating_mul(1 << attempt.clamp(1, 6).saturating_sub(1)))
}

pub(crate) fn truncate(s: &str) -> String {
    s.chars().take(200).collect()
}

#[cfg(test)]
mod misbehaving_node;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted_to_scheme_host_and_port() {
        assert_eq!(
            redact("http://u:secret@127.0.0.1:8332/wallet/w"),
            "http://127.0.0.1:8332"
        );
        assert_eq!(
            redact("http://node.example/?key=abc"),
            "http://node.example"
        );
        assert_eq!(redact("garbage"), "<node>");
    }

    #[test]
    fn credentials_are_not_debug_printed() {
        let auth = RpcAuth::UserPass {
            user: "u".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{auth:?}").contains("hunter2"));
        let config = RpcConfig::new("http://u:pw2@x:1/", auth);
        let text = format!("{config:?}");
        assert!(!text.contains("hunter2") && !text.contains("pw2"), "{text}");
    }

    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(backoff(1), Duration::from_millis(250));
        assert_eq!(backoff(2), Duration::from_millis(500));
        assert_eq!(backoff(30), Duration::from_secs(8));
    }
}
