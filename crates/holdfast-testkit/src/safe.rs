//! Gnosis Safe on anvil: the singleton, proxy factory and multisend of Safe 1.4.1 (current,
//! also its L2 singleton) and 1.1.1 (the version Bybit ran), Safes created through the
//! factory, and `execTransaction` approved by owners.
//!
//! Owners approve a Safe transaction by its hash (EIP-712 `safeTxHash`, as the contract's
//! `getTransactionHash` computes it; [`safe_tx_hash`] computes the same locally, which is
//! what a signer should check). Two ways:
//! - [`exec_signed`]: owners' ECDSA signatures over the hash, from their private keys, sorted
//!   by owner address: what Safe{Wallet} collects from hardware wallets.
//! - [`exec`]: the Safe's "approved hash" form (v = 1): every owner but the sender calls
//!   `approveHash` on chain, the sender's approval is implicit.
//!
//! `baseGas`, `gasPrice`, `gasToken` and `refundReceiver` are always zero in these helpers (no
//! refunds); [`send_at_gas_price`] sends an `execTransaction` that signs refund fields at the
//! gas price the executor picks.

use std::borrow::Cow;

use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{Eip712Domain, SolCall, SolStruct, SolValue};
use alloy_primitives::{Address, B256, Bytes, U256};
use serde_json::json;

use crate::{Anvil, Artifact, TestkitError};

mod abi {
    alloy::sol! {
        function setup(address[] owners, uint256 threshold, address to, bytes data, address fallbackHandler, address paymentToken, uint256 payment, address paymentReceiver) external;
        function createProxyWithNonce(address singleton, bytes initializer, uint256 saltNonce) external returns (address proxy);
        function createProxy(address masterCopy, bytes data) external returns (address proxy);
        function nonce() external view returns (uint256);
        function getTransactionHash(address to, uint256 value, bytes data, uint8 operation, uint256 safeTxGas, uint256 baseGas, uint256 gasPrice, address gasToken, address refundReceiver, uint256 nonce) external view returns (bytes32);
        function approveHash(bytes32 hashToApprove) external;
        function execTransaction(address to, uint256 value, bytes data, uint8 operation, uint256 safeTxGas, uint256 baseGas, uint256 gasPrice, address gasToken, address refundReceiver, bytes signatures) external payable returns (bool success);
        function VERSION() external view returns (string);
        function multiSend(bytes transactions) external payable;
        function setFallbackHandler(address handler) external;
    }
}

mod eip712 {
    alloy::sol! {
        /// The Safe's EIP-712 transaction type (same in 1.1.1 and 1.4.1).
        struct SafeTx {
            address to;
            uint256 value;
            bytes data;
            uint8 operation;
            uint256 safeTxGas;
            uint256 baseGas;
            uint256 gasPrice;
            address gasToken;
            address refundReceiver;
            uint256 nonce;
        }
    }
}

/// Which Safe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SafeVersion {
    /// Safe 1.4.1: `Safe`, `SafeProxyFactory`, `MultiSendCallOnly`.
    V1_4_1,
    /// Safe 1.4.1 with the `SafeL2` singleton (emits every execution's parameters).
    V1_4_1L2,
    /// Gnosis Safe 1.1.1: `GnosisSafe`, `ProxyFactory`, `MultiSend`.
    V1_1_1,
}

/// A Safe version's contracts, deployed.
#[derive(Debug, Clone, Copy)]
pub struct SafeInfra {
    pub version: SafeVersion,
    pub singleton: Address,
    pub factory: Address,
    pub multisend: Address,
}

/// `execTransaction`'s operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Call = 0,
    DelegateCall = 1,
}

/// What owners approve: one Safe transaction (without its nonce, read from the Safe).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafeTx {
    pub to: Address,
    pub value: U256,
    pub data: Bytes,
    pub operation: Operation,
    /// Gas for the inner call. Zero: all there is, and (1.3.0 and later) `execTransaction`
    /// reverts if the inner call fails. Non-zero: a failing inner call leaves
    /// `execTransaction` successful (`ExecutionFailure`), a reverted frame.
    pub safe_tx_gas: U256,
}

impl SafeTx {
    pub fn call(to: Address, value: U256, data: Bytes) -> SafeTx {
        SafeTx {
            to,
            value,
            data,
            operation: Operation::Call,
            safe_tx_gas: U256::ZERO,
        }
    }

    pub fn delegatecall(to: Address, data: Bytes) -> SafeTx {
        SafeTx {
            to,
            value: U256::ZERO,
            data,
            operation: Operation::DelegateCall,
            safe_tx_gas: U256::ZERO,
        }
    }
}

impl SafeInfra {
    /// Deploys the singleton, the proxy factory and the multisend library.
    pub async fn deploy(
        node: &Anvil,
        version: SafeVersion,
        from: Address,
    ) -> Result<SafeInfra, TestkitError> {
        let (pkg, names) = match version {
            SafeVersion::V1_4_1 => (
                "safe-1.4.1",
                ["Safe", "SafeProxyFactory", "MultiSendCallOnly"],
            ),
            SafeVersion::V1_4_1L2 => (
                "safe-1.4.1",
                ["SafeL2", "SafeProxyFactory", "MultiSendCallOnly"],
            ),
            SafeVersion::V1_1_1 => ("safe-1.1.1", ["GnosisSafe", "ProxyFactory", "MultiSend"]),
        };
        let mut at = [Address::ZERO; 3];
        for (slot, name) in at.iter_mut().zip(names) {
            *slot = node
                .deploy(from, &Artifact::load(pkg, name)?.bytecode, &[])
                .await?;
        }
        Ok(SafeInfra {
            version,
            singleton: at[0],
            factory: at[1],
            multisend: at[2],
        })
    }

    /// Creates a Safe proxy with `owners` and `threshold` through the factory.
    pub async fn create_safe(
        &self,
        node: &Anvil,
        from: Address,
        owners: &[Address],
        threshold: u64,
    ) -> Result<Address, TestkitError> {
        let init: Bytes = abi::setupCall {
            owners: owners.to_vec(),
            threshold: U256::from(threshold),
            to: Address::ZERO,
            data: Bytes::new(),
            fallbackHandler: Address::ZERO,
            paymentToken: Address::ZERO,
            payment: U256::ZERO,
            paymentReceiver: Address::ZERO,
        }
        .abi_encode()
        .into();
        let call: Bytes = match self.version {
            SafeVersion::V1_4_1 | SafeVersion::V1_4_1L2 => {
                // CREATE2: the sender's nonce keeps two Safes of the same owners apart.
                let sender_nonce = node
                    .rpc("eth_getTransactionCount", json!([from, "latest"]))
                    .await?;
                abi::createProxyWithNonceCall {
                    singleton: self.singleton,
                    initializer: init,
                    saltNonce: U256::from(crate::anvil::hex_u64(
                        &sender_nonce,
                        "eth_getTransactionCount",
                    )?),
                }
                .abi_encode()
                .into()
            }
            SafeVersion::V1_1_1 => abi::createProxyCall {
                masterCopy: self.singleton,
                data: init,
            }
            .abi_encode()
            .into(),
        };
        // The address the creation will return, then the creation itself.
        let predicted = node
            .rpc(
                "eth_call",
                json!([{"from": from, "to": self.factory, "data": call}, "latest"]),
            )
            .await?;
        let word: Bytes =
            serde_json::from_value(predicted).map_err(|e| TestkitError::Artifact(e.to_string()))?;
        let safe = Address::abi_decode(&word)
            .map_err(|e| TestkitError::Scenario(format!("factory returned {word}: {e}")))?;
        node.call_ok(from, self.factory, U256::ZERO, call).await?;
        Ok(safe)
    }

    /// `execTransaction` data for a batch of CALLs through the multisend library (to be
    /// DELEGATECALLed by the Safe, as Safe{Wallet} batches): each `(to, value, data)` runs
    /// as a call from the Safe.
    pub fn multisend(&self, calls: &[(Address, U256, Bytes)]) -> SafeTx {
        let mut packed = Vec::new();
        for (to, value, data) in calls {
            packed.push(Operation::Call as u8);
            packed.extend_from_slice(to.as_slice());
            packed.extend_from_slice(&value.to_be_bytes::<32>());
            packed.extend_from_slice(&U256::from(data.len()).to_be_bytes::<32>());
            packed.extend_from_slice(data);
        }
        SafeTx::delegatecall(
            self.multisend,
            abi::multiSendCall {
                transactions: packed.into(),
            }
            .abi_encode()
            .into(),
        )
    }
}

/// The Safe's current nonce.
pub async fn nonce(node: &Anvil, safe: Address) -> Result<U256, TestkitError> {
    let out = node
        .call(safe, abi::nonceCall {}.abi_encode().into())
        .await?;
    U256::abi_decode(&out).map_err(|e| TestkitError::Scenario(format!("nonce of {safe}: {e}")))
}

/// The hash owners approve, as the Safe computes it (`getTransactionHash`).
pub async fn transaction_hash(
    node: &Anvil,
    safe: Address,
    tx: &SafeTx,
    nonce: U256,
) -> Result<B256, TestkitError> {
    let call = abi::getTransactionHashCall {
        to: tx.to,
        value: tx.value,
        data: tx.data.clone(),
        operation: tx.operation as u8,
        safeTxGas: tx.safe_tx_gas,
        baseGas: U256::ZERO,
        gasPrice: U256::ZERO,
        gasToken: Address::ZERO,
        refundReceiver: Address::ZERO,
        nonce,
    };
    let out = node.call(safe, call.abi_encode().into()).await?;
    B256::abi_decode(&out)
        .map_err(|e| TestkitError::Scenario(format!("getTransactionHash of {safe}: {e}")))
}

/// The same hash computed locally (EIP-712): the domain is the Safe's address, plus the
/// chain id from 1.3.0 on (1.1.1's domain has no chain id).
pub fn safe_tx_hash(
    version: SafeVersion,
    chain_id: u64,
    safe: Address,
    tx: &SafeTx,
    nonce: U256,
) -> B256 {
    let chain = match version {
        SafeVersion::V1_1_1 => None,
        SafeVersion::V1_4_1 | SafeVersion::V1_4_1L2 => Some(U256::from(chain_id)),
    };
    let domain = Eip712Domain::new(None::<Cow<'static, str>>, None, chain, Some(safe), None);
    eip712::SafeTx {
        to: tx.to,
        value: tx.value,
        data: tx.data.clone(),
        operation: tx.operation as u8,
        safeTxGas: tx.safe_tx_gas,
        baseGas: U256::ZERO,
        gasPrice: U256::ZERO,
        gasToken: Address::ZERO,
        refundReceiver: Address::ZERO,
        nonce,
    }
    .eip712_signing_hash(&domain)
}

/// Owners' ECDSA signatures over `hash` (the raw hash, v = 27/28), concatenated in
/// ascending owner order as `checkSignatures` requires.
pub fn sign(hash: B256, owners: &[PrivateKeySigner]) -> Result<Bytes, TestkitError> {
    let mut sigs = owners
        .iter()
        .map(|o| {
            o.sign_hash_sync(&hash)
                .map(|s| (o.address(), s.as_bytes()))
                .map_err(|e| TestkitError::Sign(format!("{} over {hash}: {e}", o.address())))
        })
        .collect::<Result<Vec<_>, _>>()?;
    sigs.sort_by_key(|(owner, _)| *owner);
    Ok(sigs
        .iter()
        .flat_map(|(_, sig)| sig.iter().copied())
        .collect::<Vec<u8>>()
        .into())
}

/// Runs `tx` on `safe` with `owners`' signatures (enough for the threshold), sent by
/// `sender` (anyone). Returns the transaction hash; it must succeed.
pub async fn exec_signed(
    node: &Anvil,
    safe: Address,
    tx: &SafeTx,
    owners: &[PrivateKeySigner],
    sender: Address,
) -> Result<B256, TestkitError> {
    let nonce = nonce(node, safe).await?;
    let hash = transaction_hash(node, safe, tx, nonce).await?;
    let signatures = sign(hash, owners)?;
    send_exec(node, sender, safe, tx, signatures).await
}

/// Runs `execTransaction` on `safe`, approved by `signers` (owners, enough for the
/// threshold) with on-chain `approveHash`, sent by `signers[0]`.
pub async fn exec(
    node: &Anvil,
    safe: Address,
    signers: &[Address],
    to: Address,
    value: U256,
    data: Bytes,
    operation: Operation,
) -> Result<B256, TestkitError> {
    let tx = SafeTx {
        to,
        value,
        data,
        operation,
        safe_tx_gas: U256::ZERO,
    };
    let nonce = nonce(node, safe).await?;
    let hash = transaction_hash(node, safe, &tx, nonce).await?;
    let (sender, others) = signers
        .split_first()
        .ok_or_else(|| TestkitError::Scenario("no signer".into()))?;
    for owner in others {
        node.call_ok(
            *owner,
            safe,
            U256::ZERO,
            abi::approveHashCall {
                hashToApprove: hash,
            }
            .abi_encode()
            .into(),
        )
        .await?;
    }
    send_exec(node, *sender, safe, &tx, prevalidated(signers)).await
}

/// Pre-validated signatures of `owners` (`r` = the owner, `v` = 1): valid when the owner
/// sends `execTransaction` or has approved the hash on chain. Sorted by owner, as the Safe
/// wants them.
pub fn prevalidated(owners: &[Address]) -> Bytes {
    let mut sorted = owners.to_vec();
    sorted.sort();
    let mut signatures = Vec::with_capacity(65 * sorted.len());
    for owner in &sorted {
        signatures.extend_from_slice(&owner.into_word().0);
        signatures.extend_from_slice(&[0u8; 32]);
        signatures.push(1);
    }
    signatures.into()
}

/// `setFallbackHandler(handler)` calldata (a Safe calls it on itself).
pub fn set_fallback_handler(handler: Address) -> Bytes {
    abi::setFallbackHandlerCall { handler }.abi_encode().into()
}

async fn send_exec(
    node: &Anvil,
    sender: Address,
    safe: Address,
    tx: &SafeTx,
    signatures: Bytes,
) -> Result<B256, TestkitError> {
    node.call_ok(sender, safe, U256::ZERO, exec_data(tx, signatures))
        .await
}

/// `execTransaction` calldata for `tx` with `signatures` (no gas refund).
pub fn exec_data(tx: &SafeTx, signatures: Bytes) -> Bytes {
    abi::execTransactionCall {
        to: tx.to,
        value: tx.value,
        data: tx.data.clone(),
        operation: tx.operation as u8,
        safeTxGas: tx.safe_tx_gas,
        baseGas: U256::ZERO,
        gasPrice: U256::ZERO,
        gasToken: Address::ZERO,
        refundReceiver: Address::ZERO,
        signatures,
    }
    .abi_encode()
    .into()
}

/// The Safe's `VERSION()`.
pub async fn version(node: &Anvil, safe: Address) -> Result<String, TestkitError> {
    let out = node
        .call(safe, abi::VERSIONCall {}.abi_encode().into())
        .await?;
    String::abi_decode(&out).map_err(|e| TestkitError::Scenario(format!("VERSION of {safe}: {e}")))
}

/// Storage slot 0 of a Safe proxy: its masterCopy (singleton).
pub async fn master_copy(node: &Anvil, safe: Address) -> Result<Address, TestkitError> {
    let v = node
        .rpc("eth_getStorageAt", json!([safe, "0x0", "latest"]))
        .await?;
    let w: B256 = serde_json::from_value(v).map_err(|e| TestkitError::Rpc {
        method: "eth_getStorageAt".into(),
        message: e.to_string(),
    })?;
    Ok(Address::from_word(w))
}

/// Sends `data` (an `execTransaction` call, with whatever refund fields it signs) from the
/// unlocked dev account `from` to `to` at `gas_price` wei per gas with `gas`: the price a
/// Safe's gas refund in ETH is capped by (`min(gasPrice, tx.gasprice)`). Returns the receipt,
/// successful or not.
pub async fn send_at_gas_price(
    node: &Anvil,
    from: Address,
    to: Address,
    data: Bytes,
    gas: u64,
    gas_price: u128,
) -> Result<serde_json::Value, TestkitError> {
    let tx = json!({
        "from": from, "to": to, "data": data,
        "gas": format!("{gas:#x}"), "gasPrice": format!("{gas_price:#x}"),
    });
    let hash: B256 = serde_json::from_value(node.rpc("eth_sendTransaction", json!([tx])).await?)
        .map_err(|e| TestkitError::Rpc {
            method: "eth_sendTransaction".into(),
            message: e.to_string(),
        })?;
    let started = std::time::Instant::now();
    loop {
        let r = node.rpc("eth_getTransactionReceipt", json!([hash])).await?;
        if !r.is_null() {
            return Ok(r);
        }
        if started.elapsed() > std::time::Duration::from_secs(30) {
            return Err(TestkitError::Tx {
                tx: hash,
                what: "no receipt after 30 s".into(),
            });
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
