//! Threat intelligence for Holdfast: who is behind an address.
//!
//! - [`address`]: address parsing and validation per chain, normalized keys.
//! - [`sources`]: the datasets (OFAC SDN, FBI DPRK attributions, GraphSense TagPacks, Forta,
//!   Etherscan labels) turned into [`LabelRecord`]s; the shipped copies are embedded.
//! - [`index`]: the compact read-only [`IntelIndex`] built from records.
//! - [`screen`]: [`IntelIndex::screen`] → [`Verdict`] (risk level, every label, reasons).
//! - [`cluster`]: [`IntelIndex::screen_clustered`]: the labels an address inherits from its
//!   cluster, given by a [`cluster::ClusterSource`] (the caller's UTXO index).
//! - [`datadir`]: imports and SDN updates persisted in the data directory; [`load`].
//! - [`import`]: `intel import` of TagPacks and CSV lists.
//!
//! No network I/O and no environment variables: callers pass paths and options.

pub mod address;
pub mod cluster;
pub mod datadir;
pub mod import;
pub mod index;
pub mod record;
pub mod screen;
pub mod sources;

pub use datadir::{DataDir, IntelError, LoadReport, Loaded, SdnUpdate, load};
pub use index::{IndexBuilder, IntelIndex, IntelStats, Label};
pub use record::LabelRecord;
pub use screen::{LabelView, ScreenOptions, Verdict};
