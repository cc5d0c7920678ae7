//! Bridge exits: what a transaction into a bridge says about where the funds go.
//!
//! A theft leaves an EVM chain through a bridge; the trace must continue on the other side.
//! This crate decodes what each bridge records about the destination, without I/O: the
//! caller (the tracer, the watch) hands it logs and memos it read elsewhere.
//!
//! - [`thorchain`]: THORChain. An inbound on an EVM chain is a call to THORChain's router,
//!   whose `Deposit` event carries the vault, the asset, the amount and a memo naming the
//!   destination chain, asset and address (`SWAP:BTC.BTC:bc1…`, `=:b:…`, …); THORChain's
//!   outbound on the destination chain carries `OUT:<inbound tx id>` (an OP_RETURN on
//!   Bitcoin, the router's `TransferOut` memo on EVM chains), which links the two.
//!
//! - [`evm`]: other EVM bridges (Multichain, Celer cBridge, Across): the exit event names the
//!   destination chain and recipient, which the trace records (it does not follow them: no
//!   index holds those chains yet).
//!
//! Other bridges slot in as sibling modules with the same shape: an event or call decoder
//! that yields a destination (chain, address, asset) and, where the bridge has one, the id
//! that links the payout to the deposit.

pub mod evm;
pub mod thorchain;
