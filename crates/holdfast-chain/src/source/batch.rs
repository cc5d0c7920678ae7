//! One block in one batched request: the block, its receipts and, as a [`TraceRequest`]
//! asks, its call traces and state diffs; retries of the whole batch; the checks that the
//! answers describe the same block; and the one extraction of transfers and conversions
//! that both [`ChainSource::fetch_block`] and [`ChainSource::fetch_detail`] use (so the
//! watch sees exactly the transfers ingestion stores).

use std::collections::BTreeMap;

use alloy::rpc::types::Log;
use alloy::rpc::types::trace::parity::{LocalizedTransactionTrace, TransactionTrace};
use alloy::transports::TransportError;
use alloy_primitives::{Address, B256, Bytes, U64, U256};
use holdfast_primitives::BlockRef;
use serde::Deserialize;
use serde_json::json;

use super::{BlockTransfers, ChainError, ChainSource, TraceMode, truncate};
use crate::detail::state::{ParityAccountDiff, PrestateDiff};
use crate::extract::{self, BlockContext, GethFrame, Traces, TxMeta};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RpcBlock {
    pub number: U64,
    pub hash: B256,
    pub parent_hash: B256,
    pub timestamp: U64,
    pub transactions: Vec<RpcTx>,
}

/// A transaction as `eth_getBlockByNumber` lists it: in full (asked for when the value or
/// the input is needed), or its hash alone.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum RpcTx {
    Full(Box<FullTx>),
    Hash(B256),
}

#[derive(Debug, Deserialize)]
pub(crate) struct FullTx {
    pub hash: B256,
    pub value: U256,
    pub input: Bytes,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RpcReceipt {
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

/// One transaction's answer of `debug_traceBlockByNumber` (any tracer).
#[derive(Debug, Deserialize)]
struct GethTxTrace<T> {
    #[serde(rename = "txHash", default)]
    tx_hash: Option<B256>,
    result: Option<T>,
    error: Option<String>,
}

/// One transaction's parity `stateDiff`.
pub(crate) type ParityStateDiff = BTreeMap<Address, ParityAccountDiff>;

/// One transaction's answer of `trace_replayBlockTransactions`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReplayTx {
    transaction_hash: B256,
    #[serde(default)]
    trace: Vec<TransactionTrace>,
    #[serde(default)]
    state_diff: Option<ParityStateDiff>,
}

/// Which traces a block's batch asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TraceRequest {
    None,
    /// `debug_traceBlockByNumber` `callTracer`.
    GethCalls,
    /// `callTracer`, and `prestateTracer` in `diffMode`.
    GethCallsAndState,
    /// `trace_block`.
    ParityBlock,
    /// `trace_replayBlockTransactions` `["trace","stateDiff"]`.
    ParityReplay,
}

impl TraceRequest {
    /// How many calls the batch holds.
    const fn calls(self) -> u32 {
        match self {
            TraceRequest::None => 2,
            TraceRequest::GethCalls | TraceRequest::ParityBlock | TraceRequest::ParityReplay => 3,
            TraceRequest::GethCallsAndState => 4,
        }
    }

    /// What `fetch_block` asks for in `mode`.
    pub(crate) const fn for_transfers(mode: TraceMode) -> TraceRequest {
        match mode {
            TraceMode::Geth => TraceRequest::GethCalls,
            TraceMode::Parity => TraceRequest::ParityBlock,
            TraceMode::None => TraceRequest::None,
        }
    }
}

pub(crate) const PRESTATE_METHOD: &str = "debug_traceBlockByNumber prestateTracer";
pub(crate) const REPLAY_METHOD: &str = "trace_replayBlockTransactions";

/// The `prestateTracer` configuration that gives each transaction's changes.
pub(crate) fn prestate_diff_config() -> serde_json::Value {
    json!({"tracer": "prestateTracer", "tracerConfig": {"diffMode": true}})
}

/// Call traces as the batch returned them, checked against the block's transactions.
pub(crate) enum RawTraces {
    None,
    Geth(Vec<GethFrame>),
    /// `trace_block`'s flat traces, or `trace_replayBlockTransactions`' localized to their
    /// transactions: one shape for extraction.
    Parity(Vec<LocalizedTransactionTrace>),
}

impl RawTraces {
    pub(crate) fn as_traces(&self) -> Traces<'_> {
        match self {
            RawTraces::None => Traces::None,
            RawTraces::Geth(frames) => Traces::Geth(frames),
            RawTraces::Parity(flat) => Traces::Parity(flat),
        }
    }
}

/// State diffs as the batch returned them, one per transaction.
pub(crate) enum RawState {
    None,
    Geth(Vec<PrestateDiff>),
    Parity(Vec<ParityStateDiff>),
}

/// One block's answers, checked to fit together.
pub(crate) struct RawBlock {
    pub block: RpcBlock,
    pub ctx: BlockContext,
    pub txs: Vec<TxMeta>,
    /// Each transaction's created contract (from its receipt).
    pub created: Vec<Option<Address>>,
    /// Every receipt's logs, in block order.
    pub logs: Vec<Log>,
    pub traces: RawTraces,
    pub state: RawState,
}

/// The answers before they are checked against each other.
struct Answers {
    block: Option<RpcBlock>,
    receipts: Option<Vec<RpcReceipt>>,
    geth_calls: Option<Vec<GethTxTrace<GethFrame>>>,
    geth_state: Option<Vec<GethTxTrace<PrestateDiff>>>,
    parity_block: Option<Vec<LocalizedTransactionTrace>>,
    replay: Option<Vec<ReplayTx>>,
}

impl ChainSource {
    /// Fetches block `number` with its receipts and traces in one batch, checks that they
    /// describe the same block, and extracts its transfers and conversions.
    pub async fn fetch_block(&self, number: u64) -> Result<BlockTransfers, ChainError> {
        let raw = self
            .fetch_raw(
                number,
                false,
                TraceRequest::for_transfers(self.trace_mode()),
            )
            .await?;
        self.block_transfers(&raw).await
    }

    /// The block's transfers and conversions: the one extraction ingestion and the watch use.
    pub(crate) async fn block_transfers(
        &self,
        raw: &RawBlock,
    ) -> Result<BlockTransfers, ChainError> {
        let ctx = &raw.ctx;
        let native = extract::native_transfers(ctx, &raw.txs, raw.traces.as_traces())?;
        let from_logs = extract::token_transfers(ctx, &raw.logs)?;
        let mut transfers = native.transfers;
        transfers.extend(from_logs.transfers);
        let mut conversions = from_logs.conversions;
        let mut undecodable = from_logs.undecodable;
        for swap in &from_logs.swaps {
            match self.pair_tokens(swap.pair, ctx.block.number).await? {
                Some(tokens) => conversions.extend(swap.conversion(ctx, tokens)),
                None => undecodable += 1,
            }
        }
        transfers.sort_by(|a, b| a.order_key().cmp(&b.order_key()));
        conversions.sort_by_key(|c| (c.tx_index, c.log_index));
        Ok(BlockTransfers {
            chain_id: ctx.chain_id,
            block: ctx.block,
            transfers,
            conversions,
            incomplete: native.incomplete,
            undecodable,
        })
    }

    /// One batch for block `number` (full transactions when `full_txs` or when there are no
    /// traces to read values from), retried as a whole while retryable, then checked.
    pub(crate) async fn fetch_raw(
        &self,
        number: u64,
        full_txs: bool,
        traces: TraceRequest,
    ) -> Result<RawBlock, ChainError> {
        let tag = format!("{number:#x}");
        let full_txs = full_txs || traces == TraceRequest::None;
        let mut attempt = 0;
        loop {
            self.acquire(traces.calls()).await;
            let mut batch = self.client().new_batch();
            let add = ChainSource::batch_add_failed(number);
            let block_w = batch
                .add_call::<_, Option<RpcBlock>>("eth_getBlockByNumber", &(tag.clone(), full_txs))
                .map_err(&add)?;
            let receipts_w = batch
                .add_call::<_, Option<Vec<RpcReceipt>>>("eth_getBlockReceipts", &(tag.clone(),))
                .map_err(&add)?;
            let geth_calls_w = match traces {
                TraceRequest::GethCalls | TraceRequest::GethCallsAndState => Some(
                    batch
                        .add_call::<_, Vec<GethTxTrace<GethFrame>>>(
                            "debug_traceBlockByNumber",
                            &(tag.clone(), json!({"tracer": "callTracer"})),
                        )
                        .map_err(&add)?,
                ),
                _ => None,
            };
            let geth_state_w = match traces {
                TraceRequest::GethCallsAndState => Some(
                    batch
                        .add_call::<_, Vec<GethTxTrace<PrestateDiff>>>(
                            "debug_traceBlockByNumber",
                            &(tag.clone(), prestate_diff_config()),
                        )
                        .map_err(&add)?,
                ),
                _ => None,
            };
            let parity_w = match traces {
                TraceRequest::ParityBlock => Some(
                    batch
                        .add_call::<_, Vec<LocalizedTransactionTrace>>(
                            "trace_block",
                            &(tag.clone(),),
                        )
                        .map_err(&add)?,
                ),
                _ => None,
            };
            let replay_w = match traces {
                TraceRequest::ParityReplay => Some(
                    batch
                        .add_call::<_, Vec<ReplayTx>>(
                            REPLAY_METHOD,
                            &(tag.clone(), ["trace", "stateDiff"]),
                        )
                        .map_err(&add)?,
                ),
                _ => None,
            };
            let result = tokio::time::timeout(self.config().timeout, async {
                batch.send().await.map_err(|e| ("batch", e))?;
                let block = block_w.await.map_err(|e| ("eth_getBlockByNumber", e))?;
                let mut answers = Answers {
                    block: None,
                    receipts: None,
                    geth_calls: None,
                    geth_state: None,
                    parity_block: None,
                    replay: None,
                };
                if block.is_none() {
                    // Not there yet: the other answers are errors or nulls about a missing block.
                    return Ok(answers);
                }
                answers.block = block;
                answers.receipts = receipts_w.await.map_err(|e| ("eth_getBlockReceipts", e))?;
                if let Some(w) = geth_calls_w {
                    answers.geth_calls =
                        Some(w.await.map_err(|e| ("debug_traceBlockByNumber", e))?);
                }
                if let Some(w) = geth_state_w {
                    answers.geth_state = Some(w.await.map_err(|e| (PRESTATE_METHOD, e))?);
                }
                if let Some(w) = parity_w {
                    answers.parity_block = Some(w.await.map_err(|e| ("trace_block", e))?);
                }
                if let Some(w) = replay_w {
                    answers.replay = Some(w.await.map_err(|e| (REPLAY_METHOD, e))?);
                }
                Ok::<_, (&'static str, TransportError)>(answers)
            })
            .await;
            let (method, error) = match result {
                Ok(Ok(answers)) => return self.check(number, answers),
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

    /// The answers fit together: one receipt and one trace per transaction, each for that
    /// transaction, all of the same block.
    fn check(&self, number: u64, answers: Answers) -> Result<RawBlock, ChainError> {
        let Some(block) = answers.block else {
            return Err(ChainError::NoSuchBlock(number));
        };
        let inconsistent = |method: &'static str, reason: String| ChainError::Inconsistent {
            method,
            block: Some(number),
            reason,
        };
        let receipts = answers.receipts.ok_or_else(|| {
            inconsistent(
                "eth_getBlockReceipts",
                "no receipts for an existing block".into(),
            )
        })?;
        let ctx = BlockContext {
            chain_id: self.chain_id(),
            block: block_ref(&block),
        };
        if receipts.len() != block.transactions.len() {
            return Err(inconsistent(
                "eth_getBlockReceipts",
                format!(
                    "{} receipts for {} transactions",
                    receipts.len(),
                    block.transactions.len()
                ),
            ));
        }
        let mut txs = Vec::with_capacity(receipts.len());
        let mut created = Vec::with_capacity(receipts.len());
        let mut logs = Vec::new();
        for (i, (tx, r)) in block.transactions.iter().zip(receipts).enumerate() {
            let (hash, value) = match tx {
                RpcTx::Full(tx) => (tx.hash, tx.value),
                RpcTx::Hash(hash) => (*hash, U256::ZERO),
            };
            if r.transaction_hash != hash
                || r.block_hash != ctx.block.hash
                || r.transaction_index.to::<usize>() != i
            {
                return Err(inconsistent(
                    "eth_getBlockReceipts",
                    format!(
                        "receipt {i} is for tx {} in block {}, expected tx {hash} in block {} (a reorg between reads?)",
                        r.transaction_hash, r.block_hash, ctx.block.hash
                    ),
                ));
            }
            txs.push(TxMeta {
                hash,
                index: u32::try_from(i).unwrap_or(u32::MAX),
                from: r.from,
                to: r.to.or(r.contract_address),
                value,
                success: r.status.is_none_or(|s| s == U64::from(1)),
            });
            created.push(r.contract_address);
            logs.extend(r.logs);
        }
        let hashes: Vec<B256> = txs.iter().map(|t| t.hash).collect();
        let (traces, state) = match (answers.geth_calls, answers.parity_block, answers.replay) {
            (Some(calls), _, _) => (
                RawTraces::Geth(per_tx("debug_traceBlockByNumber", number, &hashes, calls)?),
                match answers.geth_state {
                    Some(diffs) => RawState::Geth(per_tx(PRESTATE_METHOD, number, &hashes, diffs)?),
                    None => RawState::None,
                },
            ),
            (None, Some(flat), _) => (RawTraces::Parity(flat), RawState::None),
            (None, None, Some(replay)) => {
                let (flat, diffs) = split_replay(&ctx, &hashes, replay)?;
                (RawTraces::Parity(flat), RawState::Parity(diffs))
            }
            (None, None, None) => (RawTraces::None, RawState::None),
        };
        Ok(RawBlock {
            block,
            ctx,
            txs,
            created,
            logs,
            traces,
            state,
        })
    }
}

/// One `debug_traceBlockByNumber` result per transaction, each for that transaction (when
/// the node names it) and without a tracer error.
fn per_tx<T>(
    method: &'static str,
    number: u64,
    hashes: &[B256],
    traces: Vec<GethTxTrace<T>>,
) -> Result<Vec<T>, ChainError> {
    let inconsistent = |reason: String| ChainError::Inconsistent {
        method,
        block: Some(number),
        reason,
    };
    if traces.len() != hashes.len() {
        return Err(inconsistent(format!(
            "{} traces for {} transactions",
            traces.len(),
            hashes.len()
        )));
    }
    traces
        .into_iter()
        .zip(hashes)
        .enumerate()
        .map(|(i, (t, hash))| {
            if let Some(got) = t.tx_hash.filter(|got| got != hash) {
                return Err(inconsistent(format!(
                    "trace {i} is for tx {got}, expected tx {hash} (a reorg between reads?)"
                )));
            }
            t.result.ok_or_else(|| {
                inconsistent(format!(
                    "the tracer failed on transaction {i}: {}",
                    truncate(&t.error.unwrap_or_default())
                ))
            })
        })
        .collect()
}

/// `trace_replayBlockTransactions`' answer split into `trace_block`'s shape (for the one
/// extraction) and the state diffs, after checking that there is one result per
/// transaction, each for that transaction, with its state diff.
fn split_replay(
    ctx: &BlockContext,
    hashes: &[B256],
    replay: Vec<ReplayTx>,
) -> Result<(Vec<LocalizedTransactionTrace>, Vec<ParityStateDiff>), ChainError> {
    let inconsistent = |reason: String| ChainError::Inconsistent {
        method: REPLAY_METHOD,
        block: Some(ctx.block.number),
        reason,
    };
    if replay.len() != hashes.len() {
        return Err(inconsistent(format!(
            "{} results for {} transactions",
            replay.len(),
            hashes.len()
        )));
    }
    let mut flat = Vec::new();
    let mut diffs = Vec::with_capacity(replay.len());
    for (i, (r, hash)) in replay.into_iter().zip(hashes).enumerate() {
        if r.transaction_hash != *hash {
            return Err(inconsistent(format!(
                "result {i} is for tx {}, expected tx {hash} (a reorg between reads?)",
                r.transaction_hash
            )));
        }
        diffs.push(
            r.state_diff.ok_or_else(|| {
                inconsistent(format!("no stateDiff for transaction {i} ({hash})"))
            })?,
        );
        flat.extend(r.trace.into_iter().map(|trace| LocalizedTransactionTrace {
            trace,
            block_hash: Some(ctx.block.hash),
            block_number: Some(ctx.block.number),
            transaction_hash: Some(*hash),
            transaction_position: Some(i as u64),
        }));
    }
    Ok((flat, diffs))
}

pub(crate) fn block_ref(b: &RpcBlock) -> BlockRef {
    BlockRef {
        number: b.number.to(),
        hash: b.hash,
        parent_hash: b.parent_hash,
        timestamp: b.timestamp.to(),
    }
}
