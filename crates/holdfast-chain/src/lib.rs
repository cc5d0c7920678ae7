//! EVM chain access for Holdfast.
//!
//! - [`extract`]: blocks, receipts' logs and call traces → [`Transfer`]s and [`Conversion`]s
//!   (pure, tested on recorded mainnet responses).
//!
//! This is the only crate that speaks JSON-RPC; everything above it sees normalized records.
//!
//! [`Transfer`]: holdfast_primitives::Transfer
//! [`Conversion`]: holdfast_primitives::Conversion

pub mod extract;
