//! holdfast-trace's integration tests: hand-computed graphs per policy, properties, the
//! store loader on both backends, output formats, a laundering on anvil end to end.

mod fixture;
mod laundering;
mod outputs;
mod policies;
mod props;
mod store;
mod utxo;
