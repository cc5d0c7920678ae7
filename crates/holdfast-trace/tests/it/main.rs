//! holdfast-trace's integration tests: hand-computed graphs per policy, properties, the
//! store loader on both backends, output formats.

mod fixture;
mod outputs;
mod policies;
mod props;
mod store;
