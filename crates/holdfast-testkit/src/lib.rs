//! Test support: a real `anvil` ([`Anvil`]), real contracts (`contracts/artifacts/`), and
//! [`Scenario`], which produces realistic activity on the node and records what a correct
//! ingestion must find.
//!
//! anvil comes from the npm package `@foundry-rs/anvil` (`scripts/install-node-tools`), or
//! from `HOLDFAST_ANVIL`.

mod anvil;
pub mod safe;
mod scenario;

pub use anvil::{Anvil, TestkitError, dev_account};
pub use scenario::{Expected, SafeHeist, Scenario};

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
        serde_json::from_str(&text)
            .map_err(|e| TestkitError::Artifact(format!("{}: {e}", path.display())))
    }
}
