//! Sending transactions for the guard service's hot-wallet gateway: the pending nonce, fee
//! suggestions, gas estimates, `eth_sendRawTransaction`, receipts.

use alloy_primitives::{Address, B256, Bytes, U64, U256};
use serde::Deserialize;
use serde_json::json;

use crate::source::{ChainError, ChainSource};

/// What the node suggests paying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fees {
    pub base_fee: u128,
    pub priority_fee: u128,
}

/// A transaction's receipt, as far as the gateway needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inclusion {
    pub block_number: u64,
    pub success: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RpcReceipt {
    block_number: Option<U64>,
    status: Option<U64>,
}

impl ChainSource {
    /// The account's next nonce counting pending transactions.
    pub async fn pending_nonce(&self, address: Address) -> Result<u64, ChainError> {
        let n: U64 = self
            .call("eth_getTransactionCount", (address, "pending"), None)
            .await?;
        Ok(n.to())
    }

    /// The latest base fee and the node's priority-fee suggestion.
    pub async fn fees(&self) -> Result<Fees, ChainError> {
        let h = self.header(None).await?;
        let tip: U256 = self
            .call("eth_maxPriorityFeePerGas", (), None)
            .await
            .unwrap_or(U256::from(1_000_000_000u64));
        Ok(Fees {
            base_fee: u128::from(h.base_fee),
            priority_fee: u128::try_from(tip).unwrap_or(u128::MAX),
        })
    }

    /// The node's gas estimate for a call from `from`.
    pub async fn estimate_gas(
        &self,
        from: Address,
        to: Option<Address>,
        value: U256,
        data: &Bytes,
    ) -> Result<u64, ChainError> {
        let mut tx = json!({"from": from, "value": value, "data": data});
        if let Some(to) = to {
            tx["to"] = json!(to);
        }
        let g: U64 = self.call("eth_estimateGas", (tx,), None).await?;
        Ok(g.to())
    }

    /// Sends a signed transaction; a node that already has it is not an error.
    pub async fn send_raw(&self, raw: &Bytes, hash: B256) -> Result<B256, ChainError> {
        match self
            .call::<_, B256>("eth_sendRawTransaction", (raw,), None)
            .await
        {
            Ok(h) => Ok(h),
            Err(ChainError::Rpc { source, .. })
                if source
                    .to_string()
                    .to_ascii_lowercase()
                    .contains("already known") =>
            {
                Ok(hash)
            }
            Err(e) => Err(e),
        }
    }

    /// `eth_sendTransaction`: the node signs with an account it holds and sends.
    pub async fn send_transaction(&self, tx: &serde_json::Value) -> Result<B256, ChainError> {
        self.call("eth_sendTransaction", (tx,), None).await
    }

    /// Any other method, its answer as JSON (the demo's `anvil_*` calls, `eth_sign` of an
    /// unlocked development account).
    pub async fn raw(
        &self,
        method: &'static str,
        params: serde_json::Value,
    ) -> Result<serde_json::Value, ChainError> {
        self.call(method, params, None).await
    }

    /// The address a contract creation made, once mined.
    pub async fn created_address(&self, hash: B256) -> Result<Option<Address>, ChainError> {
        let r: Option<serde_json::Value> = self
            .call("eth_getTransactionReceipt", (hash,), None)
            .await?;
        Ok(r.and_then(|r| serde_json::from_value(r.get("contractAddress")?.clone()).ok()))
    }

    /// The transaction's inclusion, `None` while it is pending.
    pub async fn inclusion(&self, hash: B256) -> Result<Option<Inclusion>, ChainError> {
        let r: Option<RpcReceipt> = self
            .call("eth_getTransactionReceipt", (hash,), None)
            .await?;
        Ok(r.and_then(|r| {
            Some(Inclusion {
                block_number: r.block_number?.to(),
                success: r.status.is_none_or(|s| s == U64::from(1)),
            })
        }))
    }
}
