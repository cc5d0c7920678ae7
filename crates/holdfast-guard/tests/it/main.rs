//! holdfast-guard integration tests: real anvil, real Safe 1.1.1 and 1.4.1 contracts, the
//! shipped intel, the example policies.

mod approvals;
mod bybit;
mod corpus;
mod fail_closed;
mod policies;
mod refund;
mod safe_ops;
mod screening;
mod support;
