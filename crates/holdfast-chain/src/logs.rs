//! Logs over a block range by topic, and many `eth_call`s at one block in one batch: what
//! discovering contracts by their events needs (the watch finds every Safe an owner holds
//! this way).

use alloy::rpc::types::Log;
use alloy::transports::TransportError;
use alloy_primitives::{Address, B256, Bytes};
use serde_json::json;

use crate::source::{ChainError, ChainSource};

/// The most logs one [`ChainSource::logs`] answer may hold (ask for a shorter range).
pub const MAX_LOGS: usize = 50_000;
/// The most `eth_getLogs` calls one [`ChainSource::logs_split`] makes.
pub const MAX_SPLIT_CALLS: usize = 1_024;
/// The most calls one [`ChainSource::calls_at`] batch sends.
pub const MAX_CALLS: usize = 1_000;

/// One log of [`ChainSource::logs`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeLog {
    pub block_number: u64,
    pub tx_hash: B256,
    pub address: Address,
    pub topics: Vec<B256>,
    pub data: Bytes,
}

/// The method an answer of more than [`MAX_LOGS`] logs is reported under (told apart from
/// other malformed answers without reading its words).
const METHOD_TOO_MANY_LOGS: &str = "eth_getLogs (too many logs)";

/// Whether `e` is the node refusing an `eth_getLogs` range (an error answer, not a transport
/// failure or a timeout) or our own [`MAX_LOGS`] bound: a shorter range may be answered.
fn refused_range(e: &ChainError) -> bool {
    match e {
        ChainError::Rpc { source, .. } => matches!(source, TransportError::ErrorResp(_)),
        ChainError::Malformed { method, .. } => *method == METHOD_TOO_MANY_LOGS,
        _ => false,
    }
}

impl ChainSource {
    /// The logs of blocks `from..=to` whose first topic is one of `topics0`, any address, in
    /// chain order. More than [`MAX_LOGS`] is an error naming the range (ask for less).
    pub async fn logs(
        &self,
        from: u64,
        to: u64,
        topics0: &[B256],
    ) -> Result<Vec<RangeLog>, ChainError> {
        self.logs_of(&[], from, to, topics0).await
    }

    /// [`Self::logs_of`] over `from..=to`, halving any range the node refuses with an error
    /// answer — whatever its words: providers cap `eth_getLogs` by block range, result count
    /// or response size, and each says so differently — or that holds more than
    /// [`MAX_LOGS`], down to single blocks; the error of a single block is the error. In
    /// chain order. A node that refuses every range costs about log2(to - from) calls before
    /// the error is returned; one that answers only tiny ranges is given at most
    /// [`MAX_SPLIT_CALLS`] calls per search, then its refusal is the error.
    pub async fn logs_split(
        &self,
        addresses: &[Address],
        from: u64,
        to: u64,
        topics0: &[B256],
    ) -> Result<Vec<RangeLog>, ChainError> {
        let mut out = Vec::new();
        // Depth first, left half first: the logs come in chain order.
        let mut ranges = vec![(from, to)];
        let mut calls = 0;
        while let Some((a, b)) = ranges.pop() {
            calls += 1;
            match self.logs_of(addresses, a, b, topics0).await {
                Ok(logs) => out.extend(logs),
                Err(e) if a < b && refused_range(&e) && calls < MAX_SPLIT_CALLS => {
                    let mid = a + (b - a) / 2;
                    ranges.push((mid + 1, b));
                    ranges.push((a, mid));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// [`Self::logs`] emitted by one of `addresses` (all of them when empty).
    pub async fn logs_of(
        &self,
        addresses: &[Address],
        from: u64,
        to: u64,
        topics0: &[B256],
    ) -> Result<Vec<RangeLog>, ChainError> {
        let mut filter = json!({
            "fromBlock": format!("{from:#x}"),
            "toBlock": format!("{to:#x}"),
            "topics": [topics0],
        });
        if !addresses.is_empty() {
            filter["address"] = json!(addresses);
        }
        let filter = json!([filter]);
        let logs: Vec<Log> = self.call("eth_getLogs", filter, Some(from)).await?;
        if logs.len() > MAX_LOGS {
            return Err(ChainError::Malformed {
                method: METHOD_TOO_MANY_LOGS,
                block: Some(from),
                reason: format!(
                    "{} logs in blocks {from}..={to}, more than {MAX_LOGS}: ask for a shorter range",
                    logs.len()
                ),
            });
        }
        logs.into_iter()
            .map(|l| {
                Ok(RangeLog {
                    block_number: l.block_number.ok_or_else(|| ChainError::Malformed {
                        method: "eth_getLogs",
                        block: Some(from),
                        reason: "a log has no blockNumber".into(),
                    })?,
                    tx_hash: l.transaction_hash.ok_or_else(|| ChainError::Malformed {
                        method: "eth_getLogs",
                        block: Some(from),
                        reason: "a log has no transactionHash".into(),
                    })?,
                    address: l.address(),
                    topics: l.topics().to_vec(),
                    data: l.data().data.clone(),
                })
            })
            .collect()
    }

    /// `eth_call` of each `(to, data)` at block `number`, in one batch: each call's output,
    /// or its revert message (a revert is an answer, not a failure of the batch; any other
    /// error answer — an unknown block, state the node pruned — fails the batch). At most
    /// [`MAX_CALLS`].
    pub async fn calls_at(
        &self,
        calls: &[(Address, Bytes)],
        number: u64,
    ) -> Result<Vec<Result<Bytes, String>>, ChainError> {
        if calls.len() > MAX_CALLS {
            return Err(ChainError::Malformed {
                method: "eth_call",
                block: Some(number),
                reason: format!("{} calls in one batch; at most {MAX_CALLS}", calls.len()),
            });
        }
        if calls.is_empty() {
            return Ok(Vec::new());
        }
        let tag = format!("{number:#x}");
        let mut attempt = 0;
        loop {
            self.acquire(calls.len() as u32).await;
            let mut batch = self.client().new_batch();
            let add = ChainSource::batch_add_failed(number);
            let mut waiters = Vec::with_capacity(calls.len());
            for (to, data) in calls {
                waiters.push(
                    batch
                        .add_call::<_, Bytes>(
                            "eth_call",
                            &(json!({"to": to, "data": data}), tag.clone()),
                        )
                        .map_err(&add)?,
                );
            }
            let result = tokio::time::timeout(self.config().timeout, async {
                batch.send().await?;
                let mut out = Vec::with_capacity(waiters.len());
                for w in waiters {
                    out.push(match w.await {
                        Ok(b) => Ok(b),
                        // A revert (code 3, or a node that says so in words) is the
                        // call's answer; any other error (unknown block, pruned state)
                        // fails the batch, never passes for "this contract said no".
                        Err(TransportError::ErrorResp(e))
                            if e.code == 3 || e.message.to_lowercase().contains("revert") =>
                        {
                            Err(e.message.to_string())
                        }
                        Err(e) => return Err(e),
                    });
                }
                Ok::<_, TransportError>(out)
            })
            .await;
            let error = match result {
                Ok(Ok(out)) => return Ok(out),
                Ok(Err(e)) => Some(e),
                Err(_) => None,
            };
            let Some(delay) = self.retry_delay(error.as_ref(), attempt) else {
                return Err(self.batch_failed("eth_call", number, attempt, error));
            };
            attempt += 1;
            tokio::time::sleep(delay).await;
        }
    }
}
