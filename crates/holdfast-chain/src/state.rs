//! Account state at a block, for simulations (the guard's fork): balance, nonce and code of
//! an account in one batch, storage slots, block headers; and storage slots at blocks named
//! by hash, many in one batch (the watch's first look at a head).

use alloy::transports::TransportError;
use alloy_primitives::{Address, B256, Bytes, U64, U256};
use serde::Deserialize;

use crate::source::{ChainError, ChainSource};

/// A block header's fields a simulation needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub number: u64,
    pub hash: B256,
    pub timestamp: u64,
    pub gas_limit: u64,
    pub base_fee: u64,
    pub coinbase: Address,
    pub mix_hash: B256,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RpcHeader {
    number: U64,
    hash: B256,
    timestamp: U64,
    gas_limit: U64,
    base_fee_per_gas: Option<U64>,
    miner: Address,
    mix_hash: Option<B256>,
}

/// An account at a block.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Account {
    pub balance: U256,
    pub nonce: u64,
    pub code: Bytes,
}

impl ChainSource {
    /// The header of block `number`, or of the latest block.
    pub async fn header(&self, number: Option<u64>) -> Result<Header, ChainError> {
        let tag = number.map_or_else(|| "latest".to_owned(), |n| format!("{n:#x}"));
        let h: Option<RpcHeader> = self
            .call("eth_getBlockByNumber", (tag, false), number)
            .await?;
        let h = h.ok_or(ChainError::NoSuchBlock(number.unwrap_or_default()))?;
        Ok(Header {
            number: h.number.to(),
            hash: h.hash,
            timestamp: h.timestamp.to(),
            gas_limit: h.gas_limit.to(),
            base_fee: h.base_fee_per_gas.map_or(0, |b| b.to()),
            coinbase: h.miner,
            mix_hash: h.mix_hash.unwrap_or_default(),
        })
    }

    /// Balance, nonce and code of `address` at block `number`, in one batched request.
    pub async fn account(&self, address: Address, number: u64) -> Result<Account, ChainError> {
        let tag = format!("{number:#x}");
        let mut attempt = 0;
        loop {
            self.acquire(3).await;
            let mut batch = self.client().new_batch();
            let add = ChainSource::batch_add_failed(number);
            let bal = batch
                .add_call::<_, U256>("eth_getBalance", &(address, tag.clone()))
                .map_err(&add)?;
            let nonce = batch
                .add_call::<_, U64>("eth_getTransactionCount", &(address, tag.clone()))
                .map_err(&add)?;
            let code = batch
                .add_call::<_, Bytes>("eth_getCode", &(address, tag.clone()))
                .map_err(&add)?;
            let result = tokio::time::timeout(self.config().timeout, async {
                batch.send().await.map_err(|e| ("batch", e))?;
                let balance = bal.await.map_err(|e| ("eth_getBalance", e))?;
                let nonce = nonce.await.map_err(|e| ("eth_getTransactionCount", e))?;
                let code = code.await.map_err(|e| ("eth_getCode", e))?;
                Ok::<_, (&'static str, TransportError)>(Account {
                    balance,
                    nonce: nonce.to(),
                    code,
                })
            })
            .await;
            let (method, error) = match result {
                Ok(Ok(a)) => return Ok(a),
                Ok(Err((method, e))) => (method, Some(e)),
                Err(_) => ("batch", None),
            };
            let Some(delay) = self.retry_delay(error.as_ref(), attempt) else {
                return Err(self.batch_failed(method, number, attempt, error));
            };
            attempt += 1;
            tokio::time::sleep(delay).await;
        }
    }

    /// Storage slot `slot` of `address` at block `number`.
    pub async fn storage(
        &self,
        address: Address,
        slot: U256,
        number: u64,
    ) -> Result<U256, ChainError> {
        self.call(
            "eth_getStorageAt",
            (address, B256::from(slot), format!("{number:#x}")),
            Some(number),
        )
        .await
    }

    /// Storage slots at blocks named by hash (EIP-1898, so a reorg between the block and
    /// the read is an error, never another block's value), in one batched request: for each
    /// block in `blocks`, the value of each `(address, slot)` of `reads`, in order. At most
    /// [`MAX_STORAGE_READS`] reads in all; `number` names the block in errors.
    pub async fn storage_at(
        &self,
        reads: &[(Address, B256)],
        blocks: &[B256],
        number: u64,
    ) -> Result<Vec<Vec<B256>>, ChainError> {
        let total = reads.len() * blocks.len();
        if total > MAX_STORAGE_READS {
            return Err(ChainError::Malformed {
                method: "eth_getStorageAt",
                block: Some(number),
                reason: format!(
                    "{total} storage reads asked for in one batch; at most {MAX_STORAGE_READS}"
                ),
            });
        }
        if total == 0 {
            return Ok(vec![Vec::new(); blocks.len()]);
        }
        let mut attempt = 0;
        loop {
            self.acquire(total as u32).await;
            let mut batch = self.client().new_batch();
            let add = ChainSource::batch_add_failed(number);
            let mut waiters = Vec::with_capacity(total);
            for hash in blocks {
                let at = serde_json::json!({ "blockHash": hash });
                for (address, slot) in reads {
                    waiters.push(
                        batch
                            .add_call::<_, B256>("eth_getStorageAt", &(address, slot, at.clone()))
                            .map_err(&add)?,
                    );
                }
            }
            let result = tokio::time::timeout(self.config().timeout, async {
                batch.send().await.map_err(|e| ("batch", e))?;
                let mut values = Vec::with_capacity(total);
                for w in waiters {
                    values.push(w.await.map_err(|e| ("eth_getStorageAt", e))?);
                }
                Ok::<_, (&'static str, TransportError)>(values)
            })
            .await;
            let (method, error) = match result {
                Ok(Ok(values)) => {
                    return Ok(values.chunks(reads.len()).map(<[B256]>::to_vec).collect());
                }
                Ok(Err((method, e))) => (method, Some(e)),
                Err(_) => ("batch", None),
            };
            let Some(delay) = self.retry_delay(error.as_ref(), attempt) else {
                return Err(self.batch_failed(method, number, attempt, error));
            };
            attempt += 1;
            tokio::time::sleep(delay).await;
        }
    }
}

/// The most storage reads [`ChainSource::storage_at`] sends in one batch.
pub const MAX_STORAGE_READS: usize = 4096;
