//! [`ChainSource`]: one EVM JSON-RPC node over HTTP or WebSocket, read block by block.
//!
//! Every block is fetched in one batched request (header with transactions, receipts,
//! traces), checked for consistency, and extracted. Requests are rate-limited, time out, and
//! are retried with exponential backoff only when the error is retryable (transport
//! failures, rate limits, null answers); a bad request or a method the node lacks fails at
//! once with the method and block named. Node URLs are never logged beyond scheme and host
//! (they often embed API keys).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use alloy::rpc::client::{ClientBuilder, RpcClient};
use alloy::rpc::types::Log;
use alloy::transports::layers::{RateLimitRetryPolicy, RetryPolicy};
use alloy::transports::{TransportError, TransportErrorKind};
use alloy_primitives::{Address, B256, Bytes, U64, U256};
use holdfast_primitives::{BlockRef, Conversion, Transfer};
use serde::Deserialize;
use serde_json::json;

use crate::extract::{self, BlockContext, ExtractError, GethFrame, PairTokens, Traces, TxMeta};

/// Which call-trace method to use for internal transfers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TraceMode {
    /// `debug_traceBlockByNumber` with geth's `callTracer`.
    Geth,
    /// `trace_block` (parity/OpenEthereum, Erigon, Reth, anvil).
    Parity,
    /// No traces: top-level transfers only; internal ETH transfers are missing.
    None,
}

impl TraceMode {
    pub const fn name(self) -> &'static str {
        match self {
            TraceMode::Geth => "debug_traceBlockByNumber",
            TraceMode::Parity => "trace_block",
            TraceMode::None => "none",
        }
    }
}

/// The default bound on one answer of the node: 256 MiB. The largest answers are a busy
/// mainnet block's receipts and call traces, a few tens of MB.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 256 << 20;

/// How to talk to the node.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// `http(s)://...` or `ws(s)://...`.
    pub url: String,
    /// `None`: detect (prefer `debug_traceBlockByNumber`, then `trace_block`).
    pub trace_mode: Option<TraceMode>,
    /// Most requests per second sent (a batch counts as its number of calls).
    pub requests_per_second: u32,
    /// Per request (a batch is one request).
    pub timeout: Duration,
    /// Retries of a retryable failure before giving up.
    pub max_retries: u32,
    /// How often to poll for a new head when the transport has no subscriptions.
    pub poll_interval: Duration,
    /// Largest answer read from the node (an HTTP body, a WebSocket message), bytes. A
    /// larger one is an error naming the method and block, not retried.
    pub max_response_bytes: usize,
}

impl SourceConfig {
    pub fn new(url: impl Into<String>) -> Self {
        SourceConfig {
            url: url.into(),
            trace_mode: None,
            requests_per_second: 200,
            timeout: Duration::from_secs(30),
            max_retries: 8,
            poll_interval: Duration::from_millis(500),
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }
}

/// What went wrong reading the chain. Each names the method and, where there is one, the
/// block.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error("cannot connect to the node at {endpoint}: {source}")]
    Connect {
        endpoint: String,
        source: TransportError,
    },
    #[error("{method}{}: {source}{}", at(*block), if *retries > 0 { format!(" (after {retries} retries)") } else { String::new() })]
    Rpc {
        method: &'static str,
        block: Option<u64>,
        retries: u32,
        source: TransportError,
    },
    #[error("{method}{}: no answer within {timeout:?} (after {retries} retries)", at(*block))]
    Timeout {
        method: &'static str,
        block: Option<u64>,
        timeout: Duration,
        retries: u32,
    },
    #[error("{method}{}: the node's answer is inconsistent: {reason}", at(*block))]
    Inconsistent {
        method: &'static str,
        block: Option<u64>,
        reason: String,
    },
    #[error("block {0} does not exist on the node yet")]
    NoSuchBlock(u64),
    #[error("trace mode {requested} was requested but the node does not serve {method}: {reason}")]
    TracesUnavailable {
        requested: &'static str,
        method: &'static str,
        reason: String,
    },
    #[error(transparent)]
    Extract(#[from] ExtractError),
}

fn at(block: Option<u64>) -> String {
    block.map_or_else(String::new, |b| format!(" for block {b}"))
}

impl ChainError {
    /// Whether waiting and trying again may succeed (node down, block not there yet, a reorg
    /// between two reads of one block).
    pub fn is_transient(&self) -> bool {
        match self {
            ChainError::Connect { .. }
            | ChainError::Timeout { .. }
            | ChainError::NoSuchBlock(_)
            | ChainError::Inconsistent { .. } => true,
            // The node could not be reached or kept failing in a retryable way: it may come back.
            ChainError::Rpc {
                retries, source, ..
            } => {
                !crate::transport::is_too_large(source)
                    && (*retries > 0
                        || matches!(
                            source,
                            alloy::transports::RpcError::Transport(_)
                                | alloy::transports::RpcError::NullResp
                        ))
            }
            ChainError::TracesUnavailable { .. } | ChainError::Extract(_) => false,
        }
    }
}

/// A block's transfers and conversions, ready to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockTransfers {
    pub chain_id: u64,
    pub block: BlockRef,
    pub transfers: Vec<Transfer>,
    pub conversions: Vec<Conversion>,
    /// Value-moving frames the node described without their parties.
    pub incomplete: usize,
    /// Token events whose layout did not decode, and swaps whose pair did not answer.
    pub undecodable: usize,
}

/// The scheme and host of a URL, for messages (paths and queries often hold API keys).
pub fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or("");
            let host = host.rsplit('@').next().unwrap_or(host);
            format!("{scheme}://{host}")
        }
        None => "<node>".to_owned(),
    }
}

/// Spaces requests evenly: at most `per_second`.
#[derive(Debug)]
struct RateLimiter {
    interval: Duration,
    next: tokio::sync::Mutex<Instant>,
}

impl RateLimiter {
    fn new(per_second: u32) -> Self {
        RateLimiter {
            interval: Duration::from_secs(1) / per_second.max(1),
            next: tokio::sync::Mutex::new(Instant::now()),
        }
    }

    async fn acquire(&self, calls: u32) {
        let wait_until = {
            let mut next = self.next.lock().await;
            let now = Instant::now();
            let slot = (*next).max(now);
            *next = slot + self.interval * calls.max(1);
            slot
        };
        tokio::time::sleep_until(wait_until.into()).await;
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RpcBlock {
    number: U64,
    hash: B256,
    parent_hash: B256,
    timestamp: U64,
    transactions: Vec<RpcTx>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RpcTx {
    Full { hash: B256, value: U256 },
    Hash(B256),
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RpcReceipt {
    transaction_hash: B256,
    transaction_index: U64,
    block_hash: B256,
    from: Address,
    to: Option<Address>,
    contract_address: Option<Address>,
    /// Absent before Byzantium.
    status: Option<U64>,
    logs: Vec<Log>,
}

#[derive(Debug, Deserialize)]
struct GethTxTrace {
    result: Option<GethFrame>,
    error: Option<String>,
}

/// One node.
#[derive(Debug)]
pub struct ChainSource {
    client: RpcClient,
    endpoint: String,
    chain_id: u64,
    trace_mode: TraceMode,
    config: SourceConfig,
    limiter: RateLimiter,
    pairs: Mutex<HashMap<Address, Option<PairTokens>>>,
}

/// An RPC client for `config.url` whose answers are bounded by `max_response_bytes`: HTTP
/// through [`BoundedHttp`](crate::transport), WebSocket with tungstenite's message and frame
/// limits at the same figure.
async fn connect_bounded(config: &SourceConfig) -> Result<RpcClient, TransportError> {
    let max = config.max_response_bytes;
    let url = config.url.trim();
    if url.starts_with("ws://") || url.starts_with("wss://") {
        let ws = alloy::transports::ws::WsConnect::new(url).with_config(
            alloy::transports::ws::WebSocketConfig::default()
                .max_message_size(Some(max))
                .max_frame_size(Some(max)),
        );
        return ClientBuilder::default().ws(ws).await;
    }
    if url.starts_with("http://") || url.starts_with("https://") {
        let parsed = url
            .parse()
            .map_err(|e| TransportErrorKind::custom_str(&format!("not a URL: {e}")))?;
        let local = alloy::transports::utils::guess_local_url(url);
        return Ok(ClientBuilder::default()
            .transport(crate::transport::BoundedHttp::new(parsed, max), local));
    }
    // IPC paths and anything else: alloy's own connector.
    ClientBuilder::default().connect(url).await
}

impl ChainSource {
    /// Connects, reads the chain id and settles the trace mode (detecting it unless
    /// configured; a configured mode the node does not serve is an error).
    pub async fn connect(config: SourceConfig) -> Result<ChainSource, ChainError> {
        let endpoint = redact(&config.url);
        let client = tokio::time::timeout(config.timeout, connect_bounded(&config))
            .await
            .map_err(|_| ChainError::Timeout {
                method: "connect",
                block: None,
                timeout: config.timeout,
                retries: 0,
            })?
            .map_err(|source| ChainError::Connect {
                endpoint: endpoint.clone(),
                source,
            })?;
        let mut source = ChainSource {
            client,
            endpoint,
            chain_id: 0,
            trace_mode: TraceMode::None,
            limiter: RateLimiter::new(config.requests_per_second),
            config,
            pairs: Mutex::new(HashMap::new()),
        };
        let id: U64 = source.call("eth_chainId", (), None).await?;
        source.chain_id = id.to();
        source.trace_mode = match source.config.trace_mode {
            Some(mode) => {
                if let Err(reason) = source.probe(mode).await {
                    return Err(ChainError::TracesUnavailable {
                        requested: mode.name(),
                        method: mode.name(),
                        reason,
                    });
                }
                mode
            }
            None => source.detect().await,
        };
        if source.trace_mode == TraceMode::None && source.config.trace_mode.is_none() {
            tracing::warn!(target: "chain::source", endpoint = %source.endpoint, "the node serves neither debug_traceBlockByNumber (callTracer) nor trace_block: internal ETH transfers will be MISSING; only top-level transfers and token events are recorded");
        } else {
            tracing::info!(target: "chain::source", endpoint = %source.endpoint, chain_id = source.chain_id, traces = source.trace_mode.name(), "connected");
        }
        Ok(source)
    }

    pub const fn chain_id(&self) -> u64 {
        self.chain_id
    }

    pub const fn trace_mode(&self) -> TraceMode {
        self.trace_mode
    }

    /// Scheme and host of the node, safe to show.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    async fn detect(&self) -> TraceMode {
        for mode in [TraceMode::Geth, TraceMode::Parity] {
            match self.probe(mode).await {
                Ok(()) => return mode,
                Err(reason) => {
                    tracing::debug!(target: "chain::source", method = mode.name(), %reason, "trace method unavailable")
                }
            }
        }
        TraceMode::None
    }

    /// Traces the latest block with `mode`'s method.
    async fn probe(&self, mode: TraceMode) -> Result<(), String> {
        let head = self.head_number().await.map_err(|e| e.to_string())?;
        let tag = format!("{head:#x}");
        let result = match mode {
            TraceMode::Geth => {
                self.call::<_, serde_json::Value>(
                    "debug_traceBlockByNumber",
                    (tag, json!({"tracer": "callTracer"})),
                    Some(head),
                )
                .await
            }
            TraceMode::Parity => {
                self.call::<_, serde_json::Value>("trace_block", (tag,), Some(head))
                    .await
            }
            TraceMode::None => return Ok(()),
        };
        match result {
            Ok(v) if v.is_array() => Ok(()),
            Ok(v) => Err(format!("unexpected answer {}", truncate(&v.to_string()))),
            Err(e) => Err(e.to_string()),
        }
    }

    /// One call with rate limit, timeout and retries.
    pub(crate) async fn call<P, R>(
        &self,
        method: &'static str,
        params: P,
        block: Option<u64>,
    ) -> Result<R, ChainError>
    where
        P: alloy::rpc::json_rpc::RpcSend + Clone,
        R: alloy::rpc::json_rpc::RpcRecv,
    {
        let mut attempt = 0;
        loop {
            self.limiter.acquire(1).await;
            let outcome = tokio::time::timeout(
                self.config.timeout,
                self.client.request::<P, R>(method, params.clone()),
            )
            .await;
            let error = match outcome {
                Ok(Ok(r)) => return Ok(r),
                Ok(Err(e))
                    if attempt < self.config.max_retries
                        && RateLimitRetryPolicy::default().should_retry(&e) =>
                {
                    Some(RateLimitRetryPolicy::default().backoff_hint(&e))
                }
                Ok(Err(source)) => {
                    return Err(ChainError::Rpc {
                        method,
                        block,
                        retries: attempt,
                        source,
                    });
                }
                Err(_) if attempt < self.config.max_retries => None,
                Err(_) => {
                    return Err(ChainError::Timeout {
                        method,
                        block,
                        timeout: self.config.timeout,
                        retries: attempt,
                    });
                }
            };
            attempt += 1;
            let delay = error.flatten().unwrap_or_else(|| backoff(attempt));
            tracing::debug!(target: "chain::source", method, ?block, attempt, ?delay, "retrying");
            tokio::time::sleep(delay).await;
        }
    }

    pub(crate) fn client(&self) -> &RpcClient {
        &self.client
    }

    pub(crate) fn config(&self) -> &SourceConfig {
        &self.config
    }

    pub(crate) async fn acquire(&self, calls: u32) {
        self.limiter.acquire(calls).await;
    }

    /// How long to wait before retrying a failed batch (`None`: give up): only retryable
    /// errors and time-outs (`error` `None`) are retried, at most `max_retries` times.
    pub(crate) fn retry_delay(
        &self,
        error: Option<&TransportError>,
        attempt: u32,
    ) -> Option<Duration> {
        let retryable = error.is_none_or(|e| RateLimitRetryPolicy::default().should_retry(e));
        if !retryable || attempt >= self.config.max_retries {
            return None;
        }
        Some(
            error
                .and_then(|e| RateLimitRetryPolicy::default().backoff_hint(e))
                .unwrap_or_else(|| backoff(attempt + 1)),
        )
    }

    /// The error of a batch for block `number` that failed for good (`error` `None`: it
    /// timed out).
    pub(crate) fn batch_failed(
        &self,
        method: &'static str,
        number: u64,
        retries: u32,
        error: Option<TransportError>,
    ) -> ChainError {
        match error {
            Some(source) => ChainError::Rpc {
                method,
                block: Some(number),
                retries,
                source,
            },
            None => ChainError::Timeout {
                method,
                block: Some(number),
                timeout: self.config.timeout,
                retries,
            },
        }
    }

    /// The latest block number.
    pub async fn head_number(&self) -> Result<u64, ChainError> {
        let n: U64 = self.call("eth_blockNumber", (), None).await?;
        Ok(n.to())
    }

    /// The header of block `number` (for following the chain and checking for reorgs).
    pub async fn block_ref(&self, number: u64) -> Result<BlockRef, ChainError> {
        let b: Option<RpcBlock> = self
            .call(
                "eth_getBlockByNumber",
                (format!("{number:#x}"), false),
                Some(number),
            )
            .await?;
        let b = b.ok_or(ChainError::NoSuchBlock(number))?;
        Ok(block_ref(&b))
    }

    /// Waits until the head is above `number` and returns it. Over WebSocket it subscribes
    /// to new heads (`eth_subscribe newHeads`); otherwise, or if the subscription fails or
    /// goes quiet, it polls `eth_blockNumber` at the configured interval.
    pub async fn wait_for_head_above(&self, number: u64) -> Result<u64, ChainError> {
        let head = self.head_number().await?;
        if head > number {
            return Ok(head);
        }
        if self.config.url.starts_with("ws") {
            use alloy::providers::Provider;
            let provider = alloy::providers::RootProvider::<alloy::network::Ethereum>::new(
                self.client.clone(),
            );
            match provider.subscribe_blocks().await {
                Ok(mut sub) => loop {
                    // A new head, or a timeout after which polling confirms (a subscription
                    // can silently stall behind a proxy).
                    match tokio::time::timeout(self.config.poll_interval * 20, sub.recv()).await {
                        Ok(Ok(header)) if header.number > number => return Ok(header.number),
                        Ok(Ok(_)) => {}
                        Ok(Err(_)) | Err(_) => break,
                    }
                },
                Err(e) => {
                    tracing::debug!(target: "chain::source", error = %e, "no newHeads subscription; polling")
                }
            }
        }
        loop {
            let head = self.head_number().await?;
            if head > number {
                return Ok(head);
            }
            tokio::time::sleep(self.config.poll_interval).await;
        }
    }

    /// Fetches block `number` with its receipts and traces in one batch, checks that they
    /// describe the same block, and extracts its transfers and conversions.
    pub async fn fetch_block(&self, number: u64) -> Result<BlockTransfers, ChainError> {
        let (block, receipts, traces) = self.fetch_raw(number).await?;
        let ctx = BlockContext {
            chain_id: self.chain_id,
            block: block_ref(&block),
        };
        if receipts.len() != block.transactions.len() {
            return Err(ChainError::Inconsistent {
                method: "eth_getBlockReceipts",
                block: Some(number),
                reason: format!(
                    "{} receipts for {} transactions",
                    receipts.len(),
                    block.transactions.len()
                ),
            });
        }
        let mut txs = Vec::with_capacity(receipts.len());
        let mut logs = Vec::new();
        for (i, (tx, r)) in block.transactions.iter().zip(receipts).enumerate() {
            let (hash, value) = match tx {
                RpcTx::Full { hash, value } => (*hash, *value),
                RpcTx::Hash(hash) => (*hash, U256::ZERO),
            };
            if r.transaction_hash != hash
                || r.block_hash != ctx.block.hash
                || r.transaction_index.to::<usize>() != i
            {
                return Err(ChainError::Inconsistent {
                    method: "eth_getBlockReceipts",
                    block: Some(number),
                    reason: format!(
                        "receipt {i} is for tx {} in block {}, expected tx {hash} in block {} (a reorg between reads?)",
                        r.transaction_hash, r.block_hash, ctx.block.hash
                    ),
                });
            }
            txs.push(TxMeta {
                hash,
                index: u32::try_from(i).unwrap_or(u32::MAX),
                from: r.from,
                to: r.to.or(r.contract_address),
                value,
                success: r.status.is_none_or(|s| s == U64::from(1)),
            });
            logs.extend(r.logs);
        }
        let native = match &traces {
            RawTracesOk::None => extract::native_transfers(&ctx, &txs, Traces::None)?,
            RawTracesOk::Geth(frames) => {
                extract::native_transfers(&ctx, &txs, Traces::Geth(frames))?
            }
            RawTracesOk::Parity(flat) => {
                extract::native_transfers(&ctx, &txs, Traces::Parity(flat))?
            }
        };
        let from_logs = extract::token_transfers(&ctx, &logs)?;
        let mut transfers = native.transfers;
        transfers.extend(from_logs.transfers);
        let mut conversions = from_logs.conversions;
        let mut undecodable = from_logs.undecodable;
        for swap in &from_logs.swaps {
            match self.pair_tokens(swap.pair, number).await? {
                Some(tokens) => conversions.extend(swap.conversion(&ctx, tokens)),
                None => undecodable += 1,
            }
        }
        transfers.sort_by(|a, b| a.order_key().cmp(&b.order_key()));
        conversions.sort_by_key(|c| (c.tx_index, c.log_index));
        Ok(BlockTransfers {
            chain_id: self.chain_id,
            block: ctx.block,
            transfers,
            conversions,
            incomplete: native.incomplete,
            undecodable,
        })
    }

    async fn fetch_raw(
        &self,
        number: u64,
    ) -> Result<(RpcBlock, Vec<RpcReceipt>, RawTracesOk), ChainError> {
        let tag = format!("{number:#x}");
        let calls = if self.trace_mode == TraceMode::None {
            2
        } else {
            3
        };
        let mut attempt = 0;
        loop {
            self.limiter.acquire(calls).await;
            let mut batch = self.client.new_batch();
            let add = |e: TransportError| ChainError::Rpc {
                method: "batch",
                block: Some(number),
                retries: 0,
                source: e,
            };
            let block_w = batch
                .add_call::<_, Option<RpcBlock>>(
                    "eth_getBlockByNumber",
                    &(tag.clone(), self.trace_mode == TraceMode::None),
                )
                .map_err(add)?;
            let receipts_w = batch
                .add_call::<_, Option<Vec<RpcReceipt>>>("eth_getBlockReceipts", &(tag.clone(),))
                .map_err(add)?;
            let geth_w = match self.trace_mode {
                TraceMode::Geth => Some(
                    batch
                        .add_call::<_, Vec<GethTxTrace>>(
                            "debug_traceBlockByNumber",
                            &(tag.clone(), json!({"tracer": "callTracer"})),
                        )
                        .map_err(add)?,
                ),
                _ => None,
            };
            let parity_w = match self.trace_mode {
                TraceMode::Parity => Some(batch.add_call::<_, Vec<alloy::rpc::types::trace::parity::LocalizedTransactionTrace>>("trace_block", &(tag.clone(),)).map_err(add)?),
                _ => None,
            };
            let result = tokio::time::timeout(self.config.timeout, async {
                batch.send().await.map_err(|e| ("batch", e))?;
                let block = block_w.await.map_err(|e| ("eth_getBlockByNumber", e))?;
                if block.is_none() {
                    // Not there yet: the other answers are errors or nulls about a missing block.
                    return Ok((None, None, RawTraces::None));
                }
                let receipts = receipts_w.await.map_err(|e| ("eth_getBlockReceipts", e))?;
                let traces = match (geth_w, parity_w) {
                    (Some(w), _) => RawTraces::Geth(
                        w.await
                            .map_err(|e| ("debug_traceBlockByNumber", e))?
                            .into_iter()
                            .map(|t| t.result.ok_or(t.error.unwrap_or_default()))
                            .collect(),
                    ),
                    (_, Some(w)) => RawTraces::Parity(w.await.map_err(|e| ("trace_block", e))?),
                    _ => RawTraces::None,
                };
                Ok::<_, (&'static str, TransportError)>((block, receipts, traces))
            })
            .await;
            let (method, error) = match result {
                Ok(Ok((Some(block), Some(receipts), traces))) => {
                    let traces = traces.settle(number)?;
                    return Ok((block, receipts, traces));
                }
                Ok(Ok((None, _, _))) => return Err(ChainError::NoSuchBlock(number)),
                Ok(Ok((Some(_), None, _))) => {
                    return Err(ChainError::Inconsistent {
                        method: "eth_getBlockReceipts",
                        block: Some(number),
                        reason: "no receipts for an existing block".into(),
                    });
                }
                Ok(Err((method, e))) => (method, Some(e)),
                Err(_) => ("batch", None),
            };
            let Some(delay) = self.retry_delay(error.as_ref(), attempt) else {
                return Err(self.batch_failed(method, number, attempt, error));
            };
            attempt += 1;
            tracing::debug!(target: "chain::source", block = number, method, attempt, ?delay, "retrying block fetch");
            tokio::time::sleep(delay).await;
        }
    }

    /// A Uniswap V2 pair's tokens, by `eth_call` of `token0()`/`token1()`, cached.
    async fn pair_tokens(
        &self,
        pair: Address,
        number: u64,
    ) -> Result<Option<PairTokens>, ChainError> {
        if let Some(known) = self.pairs.lock().map_err(|_| poisoned())?.get(&pair) {
            return Ok(*known);
        }
        let tag = format!("{number:#x}");
        let mut tokens = [Address::ZERO; 2];
        for (slot, selector) in tokens.iter_mut().zip(["0x0dfe1681", "0xd21220a7"]) {
            let r: Result<Bytes, _> = self
                .call(
                    "eth_call",
                    (json!({"to": pair, "data": selector}), tag.clone()),
                    Some(number),
                )
                .await;
            match r {
                Ok(word) if word.len() == 32 && word[..12].iter().all(|b| *b == 0) => {
                    *slot = Address::from_slice(&word[12..])
                }
                Ok(_) | Err(ChainError::Rpc { retries: 0, .. }) => {
                    self.pairs
                        .lock()
                        .map_err(|_| poisoned())?
                        .insert(pair, None);
                    return Ok(None);
                }
                Err(e) => return Err(e),
            }
        }
        let tokens = Some(PairTokens {
            token0: tokens[0],
            token1: tokens[1],
        });
        self.pairs
            .lock()
            .map_err(|_| poisoned())?
            .insert(pair, tokens);
        Ok(tokens)
    }
}

fn poisoned() -> ChainError {
    ChainError::Inconsistent {
        method: "eth_call",
        block: None,
        reason: "pair cache lock poisoned".into(),
    }
}

/// Traces as the batch returned them.
enum RawTraces {
    None,
    Geth(Vec<Result<GethFrame, String>>),
    Parity(Vec<alloy::rpc::types::trace::parity::LocalizedTransactionTrace>),
}

impl RawTraces {
    fn settle(self, number: u64) -> Result<RawTracesOk, ChainError> {
        Ok(match self {
            RawTraces::None => RawTracesOk::None,
            RawTraces::Parity(p) => RawTracesOk::Parity(p),
            RawTraces::Geth(frames) => RawTracesOk::Geth(
                frames
                    .into_iter()
                    .enumerate()
                    .map(|(i, f)| {
                        f.map_err(|e| ChainError::Inconsistent {
                            method: "debug_traceBlockByNumber",
                            block: Some(number),
                            reason: format!(
                                "the tracer failed on transaction {i}: {}",
                                truncate(&e)
                            ),
                        })
                    })
                    .collect::<Result<_, _>>()?,
            ),
        })
    }
}

/// Traces ready for extraction.
enum RawTracesOk {
    None,
    Geth(Vec<GethFrame>),
    Parity(Vec<alloy::rpc::types::trace::parity::LocalizedTransactionTrace>),
}

fn block_ref(b: &RpcBlock) -> BlockRef {
    BlockRef {
        number: b.number.to(),
        hash: b.hash,
        parent_hash: b.parent_hash,
        timestamp: b.timestamp.to(),
    }
}

/// Exponential backoff with a cap: 250 ms, 500 ms, 1 s, ... 10 s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(250u64.saturating_mul(1 << attempt.min(6).saturating_sub(1)))
        .min(Duration::from_secs(10))
}

fn truncate(s: &str) -> String {
    s.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted_to_scheme_and_host() {
        assert_eq!(
            redact("https://mainnet.infura.io/v3/SECRETKEY"),
            "https://mainnet.infura.io"
        );
        assert_eq!(
            redact("wss://user:pass@node.example:8546/ws?key=abc"),
            "wss://node.example:8546"
        );
        assert_eq!(redact("http://127.0.0.1:8545"), "http://127.0.0.1:8545");
        assert_eq!(redact("garbage"), "<node>");
    }

    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(backoff(1), Duration::from_millis(250));
        assert_eq!(backoff(2), Duration::from_millis(500));
        assert_eq!(backoff(20), Duration::from_secs(8));
    }
}

/// Malformed and inconsistent node answers, from a scripted JSON-RPC server (a fake node:
/// a real one does not misbehave on demand).
#[cfg(test)]
mod misbehaving_node {
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
                        let body: Value = serde_json::from_slice(&buf[end + 4..end + 4 + len])
                            .unwrap_or(Value::Null);
                        buf.drain(..end + 4 + len);
                        let one = |req: &Value| {
                            let result =
                                answer(req["method"].as_str().unwrap_or(""), &req["params"]);
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
}
