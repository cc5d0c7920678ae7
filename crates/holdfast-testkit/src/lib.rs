//! Test support: a real `anvil` ([`Anvil`]), real contracts ([`Artifact`], from
//! `contracts/artifacts/`, deployed by [`deploy`] and driven by [`safe`]), and [`Scenario`],
//! which produces realistic activity on the node and records what a correct extraction must
//! find.
//!
//! - `litecoind`: [`Litecoind`], a Litecoin Core regtest node (Debian's `litecoind`,
//!   installed by `scripts/install-litecoind`, or `HOLDFAST_LITECOIND`), the real
//!   Bitcoin-family node of `holdfast-bitcoin`'s tests.
//! - `anvil`: the node process (the npm package's binary, installed by
//!   `scripts/install-node-tools`, or `HOLDFAST_ANVIL`), the dev accounts and their keys.
//! - [`deploy`]: one function per contract the tests use (ERC-20, WETH9, Uniswap V2, Safe
//!   1.4.1 and 1.1.1, ours).
//! - [`safe`]: Safe proxies, Safe transaction hashes (EIP-712, from the contract and
//!   computed locally), owners' signatures, `execTransaction`.
//! - `scenario`: ETH, tokens, WETH, Uniswap V2 through the pair and through the router, Safe
//!   executions and the Bybit mechanism, internal transfers, failures; each step returns
//!   what moved.

mod anvil;
pub mod deploy;
mod error;
pub mod laundering;
mod litecoind;
pub mod safe;
mod scenario;

pub use anvil::{Anvil, AnvilOptions, dev_account, dev_key, dev_signer};
pub use error::TestkitError;
pub use litecoind::{Litecoind, LitecoindOptions, MWEB_OFF};
pub use scenario::{
    Expected, ExpectedConversion, ExpectedTransfer, Record, RevertedFrame, SafeActivity, SafeHeist,
    Scenario, UniswapActivity,
};

use std::path::{Path, PathBuf};

/// The workspace root (for `node_modules/` and `contracts/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A compiled contract from `contracts/artifacts/<package>/<name>.json`.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Artifact {
    #[serde(rename = "contractName")]
    pub name: String,
    /// The ABI as published (for tests that inspect it; calls are encoded with `sol!`).
    pub abi: serde_json::Value,
    /// Creation bytecode.
    pub bytecode: alloy_primitives::Bytes,
}

impl Artifact {
    pub fn load(package: &str, name: &str) -> Result<Artifact, TestkitError> {
        let path = workspace_root()
            .join("contracts/artifacts")
            .join(package)
            .join(format!("{name}.json"));
        let text = std::fs::read_to_string(&path)
            .map_err(|e| TestkitError::Artifact(format!("{}: {e}", path.display())))?;
        let artifact: Artifact = serde_json::from_str(&text)
            .map_err(|e| TestkitError::Artifact(format!("{}: {e}", path.display())))?;
        if artifact.bytecode.is_empty() {
            return Err(TestkitError::Artifact(format!(
                "{}: empty bytecode",
                path.display()
            )));
        }
        Ok(artifact)
    }
}
