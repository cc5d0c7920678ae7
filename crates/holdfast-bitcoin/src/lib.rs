//! Bitcoin-family chain access for Holdfast (Bitcoin, and Litecoin for the regtest node the
//! tests run).
//!
//! - [`network`]: [`Network`], the closed set of networks, identified by genesis hash, with
//!   their address parameters, magic and money supply.
//! - [`decode`]: raw block bytes → `bitcoin::Block` (rust-bitcoin's consensus decoding), with
//!   errors naming the block, the transaction, the field and the byte offset.
//! - [`block`]: the model the store will hold: [`Block`], [`Tx`], [`Input`], [`Output`]; the
//!   header's commitments checked; inputs resolved from the block itself and a lookup; fees.
//! - [`script`]: [`ScriptKind`] (Bitcoin Core's templates) and addresses per network.
//! - [`address`]: reading a typed address: its networks, script and canonical form.
//! - [`blkfile`]: Bitcoin Core's `blk*.dat` framing; [`blkdir`]: a node's blocks directory as
//!   its best chain, block by height.
//! - [`utxo`]: connecting and disconnecting blocks against a UTXO set ([`utxo::connect`],
//!   [`utxo::BlockChanges`] with its undo, [`utxo::MemoryUtxoSet`]), Core's coin rules.
//! - [`rpc`]: [`RpcSource`], a Bitcoin Core-compatible JSON-RPC node: bounded answers,
//!   retries only when retryable, errors naming method and block, cookie or user/password
//!   authentication, URLs logged without credentials.
//!
//! Only this crate depends on rust-bitcoin; everything above it sees the model.

pub mod address;
pub mod blkdir;
pub mod blkfile;
pub mod block;
pub mod decode;
pub mod network;
pub mod rpc;
pub mod script;
pub mod utxo;

pub use address::AddressError;
pub use block::{Block, BlockError, Input, Output, Overspend, Tx};
pub use decode::{DecodeError, Place, decode_block};
pub use network::{AddressParams, Network, UnknownNetwork};
pub use rpc::{BlockId, ChainInfo, RpcAuth, RpcConfig, RpcError, RpcSource};
pub use script::ScriptKind;

/// rust-bitcoin, as this crate uses it (hashes, outpoints, scripts in the model's fields).
pub use bitcoin;
