//! Gnosis Safe on anvil: the singleton, proxy factory and multisend of Safe 1.4.1 (current)
//! and 1.1.1 (the version Bybit ran), Safes created through the factory, and
//! `execTransaction` signed by owners.
//!
//! Owners are anvil's unlocked dev accounts, so signatures use the Safe's own
//! "approved hash" form (v = 1): every signer but the sender first calls `approveHash`, the
//! sender's approval is implicit. The Safe checks them in `checkSignatures` like any other.

use alloy::sol_types::{SolCall, SolValue};
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
    }
}

/// Which Safe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SafeVersion {
    /// Safe 1.4.1: `Safe`, `SafeProxyFactory`, `MultiSendCallOnly`.
    V1_4_1,
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
            SafeVersion::V1_4_1 => abi::createProxyWithNonceCall {
                singleton: self.singleton,
                initializer: init,
                saltNonce: U256::from(owners.len() as u64 * 1000 + threshold),
            }
            .abi_encode()
            .into(),
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
        if word.len() < 32 {
            return Err(TestkitError::Artifact(format!("factory returned {word}")));
        }
        let safe = Address::from_slice(&word[12..32]);
        node.call_ok(from, self.factory, U256::ZERO, call).await?;
        Ok(safe)
    }
}

/// Runs `execTransaction` on `safe`, approved by `signers` (owners, enough for the
/// threshold), sent by `signers[0]`.
pub async fn exec(
    node: &Anvil,
    safe: Address,
    signers: &[Address],
    to: Address,
    value: U256,
    data: Bytes,
    operation: Operation,
) -> Result<B256, TestkitError> {
    let call = |data: Vec<u8>| json!([{"to": safe, "data": Bytes::from(data)}, "latest"]);
    let word = |v: serde_json::Value| -> Result<B256, TestkitError> {
        let b: Bytes =
            serde_json::from_value(v).map_err(|e| TestkitError::Artifact(e.to_string()))?;
        (b.len() >= 32)
            .then(|| B256::from_slice(&b[..32]))
            .ok_or_else(|| TestkitError::Artifact(format!("short answer {b}")))
    };
    let nonce = U256::from_be_bytes(
        word(
            node.rpc("eth_call", call(abi::nonceCall {}.abi_encode()))
                .await?,
        )?
        .0,
    );
    let hash = word(
        node.rpc(
            "eth_call",
            call(
                abi::getTransactionHashCall {
                    to,
                    value,
                    data: data.clone(),
                    operation: operation as u8,
                    safeTxGas: U256::ZERO,
                    baseGas: U256::ZERO,
                    gasPrice: U256::ZERO,
                    gasToken: Address::ZERO,
                    refundReceiver: Address::ZERO,
                    nonce,
                }
                .abi_encode(),
            ),
        )
        .await?,
    )?;
    let (sender, others) = signers
        .split_first()
        .ok_or_else(|| TestkitError::Artifact("no signer".into()))?;
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
    let mut sorted = signers.to_vec();
    sorted.sort();
    let mut signatures = Vec::with_capacity(65 * sorted.len());
    for owner in &sorted {
        signatures.extend_from_slice(&owner.into_word().0);
        signatures.extend_from_slice(&[0u8; 32]);
        signatures.push(1);
    }
    let exec = abi::execTransactionCall {
        to,
        value,
        data,
        operation: operation as u8,
        safeTxGas: U256::ZERO,
        baseGas: U256::ZERO,
        gasPrice: U256::ZERO,
        gasToken: Address::ZERO,
        refundReceiver: Address::ZERO,
        signatures: signatures.into(),
    };
    node.call_ok(*sender, safe, U256::ZERO, exec.abi_encode().into())
        .await
}

/// The Safe's `VERSION()`.
pub async fn version(node: &Anvil, safe: Address) -> Result<String, TestkitError> {
    let out = node
        .rpc(
            "eth_call",
            json!([{"to": safe, "data": Bytes::from(abi::VERSIONCall {}.abi_encode())}, "latest"]),
        )
        .await?;
    let b: Bytes =
        serde_json::from_value(out).map_err(|e| TestkitError::Artifact(e.to_string()))?;
    String::abi_decode(&b).map_err(|e| TestkitError::Artifact(e.to_string()))
}

/// Storage slot 0 of a Safe proxy: its masterCopy (singleton).
pub async fn master_copy(node: &Anvil, safe: Address) -> Result<Address, TestkitError> {
    let v = node
        .rpc("eth_getStorageAt", json!([safe, "0x0", "latest"]))
        .await?;
    let w: B256 = serde_json::from_value(v).map_err(|e| TestkitError::Artifact(e.to_string()))?;
    Ok(Address::from_word(w))
}
