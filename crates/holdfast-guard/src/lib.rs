//! Holdfast's guard engine: decides on the exact bytes to be signed, before they are signed.
//!
//! - [`request`]: what it is asked about (a transaction request, a raw signed transaction, a
//!   Safe Transaction Service multisig transaction as it is, a hot-wallet withdrawal), parsed
//!   and validated once.
//! - [`decode`]: exact, recursive decoding of the payload into calls (ERC-20/721/1155,
//!   permits, Permit2, Safe executions and MultiSend batches, Safe configuration changes,
//!   proxy upgrades, DELEGATECALL); unknown selectors are reported as unknown.
//! - [`safe`]: the safeTxHash per Safe version, and what attached signatures really are.
//! - [`simulate`]: revm on a cached fork of the node's state; asset deltas, critical-slot
//!   writes, calls, creations, revert reasons; failure and time-outs are facts, not allows.
//! - [`facts`]: everything established about one request, the policy's input.
//! - [`policy`]: the policy file (TOML, validated with file/line/key errors) and its pure
//!   evaluation: first matching rule wins, default deny.
//! - [`approval`]: EIP-712 approvals bound to the payload hash.
//! - [`check`]: [`Guard::check`], one decision end to end.
//! - [`cases`]: a policy's own unit tests (`holdfast policy test`).
//! - [`refund`]: Safe gas refunds and the most they can pay.
//! - [`rpc`]: the simulator's state over JSON-RPC (through `holdfast-chain`).
//!
//! Decoding and policy evaluation do no I/O and read no environment.

pub mod abi;
pub mod approval;
pub mod cases;
pub mod check;
pub mod decode;
pub mod facts;
pub mod known;
pub mod policy;
pub mod refund;
pub mod request;
pub mod rpc;
pub mod safe;
pub mod simulate;
pub mod units;

pub use check::{CheckError, CheckOptions, Guard, Report, RootCall};
pub use policy::{Policy, PolicyError};
pub use request::{Envelope, Request, RequestError};
