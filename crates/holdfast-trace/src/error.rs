//! The trace's errors.

use alloy_primitives::B256;

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// Bad input: names the field, the value and what was expected.
    #[error("{field} {value:?}: expected {expected}")]
    Invalid {
        field: &'static str,
        value: String,
        expected: String,
    },
    #[error(
        "seed {seed}: not in the transfers loaded for this trace (ingest or import its block first)"
    )]
    UnknownSeed { seed: String },
    #[error(
        "transfer or conversion of tx {tx_hash} is for chain {found}; this graph holds chain {expected}"
    )]
    MixedChains {
        expected: u64,
        found: u64,
        tx_hash: B256,
    },
    #[error("more than {limit} {what}: narrow the trace (fewer hops, a later start block)")]
    TooLarge { what: &'static str, limit: usize },
    #[error(transparent)]
    Store(#[from] holdfast_store::StoreError),
    #[error("writing the {format} output: {message}")]
    Output {
        format: &'static str,
        message: String,
    },
}
