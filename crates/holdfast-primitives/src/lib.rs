//! Domain words shared by every Holdfast crate. Pure data, no I/O.
//!
//! - [`Chain`]: the networks Holdfast knows addresses for, parsed from names or tickers.
//! - [`Category`]: what a label says an address is (sanctioned, exchange, mixer, ...).
//! - [`Confidence`]: how much a label's source is trusted, on the GraphSense TagPack scale.
//! - [`RiskLevel`]: the ordered verdict scale, `none` < `low` < `medium` < `high` < `severe`.
//! - [`Date`]: a calendar day, for list and delisting dates and `--as-of` screening.
//! - [`Transfer`], [`Conversion`]: value movements on EVM chains, as the chain readers
//!   produce them and the store, guard, watch and trace consume them.

mod chain;
mod date;
mod label;
mod transfer;

pub use chain::{Chain, ChainFamily, UnknownChain};
pub use date::{Date, DateError};
pub use label::{
    Category, Confidence, RiskLevel, UnknownCategory, UnknownConfidence, UnknownRiskLevel,
};
pub use transfer::{Asset, AssetKind, BlockRef, Conversion, ConversionKind, Position, Transfer};
