//! The one error type of the testkit.

use std::path::PathBuf;

use alloy_primitives::B256;

#[derive(Debug, thiserror::Error)]
pub enum TestkitError {
    #[error(
        "anvil binary not found at {0}: run scripts/install-node-tools (or set HOLDFAST_ANVIL)"
    )]
    NoAnvil(PathBuf),
    #[error(
        "litecoind not found at {0}: run scripts/install-litecoind (or set HOLDFAST_LITECOIND)"
    )]
    NoLitecoind(PathBuf),
    #[error("starting the node: {0}")]
    Start(String),
    #[error("{method}: {message}")]
    Rpc { method: String, message: String },
    #[error("artifact {0}")]
    Artifact(String),
    #[error("transaction {tx}: {what}")]
    Tx { tx: B256, what: String },
    /// The chain did not do what the scenario expected (a quote, an address, a slot).
    #[error("scenario: {0}")]
    Scenario(String),
    #[error("signing: {0}")]
    Sign(String),
}
