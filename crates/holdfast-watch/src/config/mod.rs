//! The watch file (`docs/WATCH.md`, "The watch file and the detectors"): chains, assets,
//! address sets, rules and sinks, in TOML with the conventions of guard policies: raw serde
//! types with `deny_unknown_fields` and spans ([`file`]) are validated once into a
//! [`WatchConfig`] ([`validate`]); every error and warning names the file, the line and the
//! key.
//!
//! Validation refuses what would make the watch silently wrong: unknown detectors, responses,
//! sets, chains or assets; addresses with a bad EIP-55 checksum; duplicate names; a rule that
//! can never fire (no targets, an empty set, a threshold no amount can exceed, a window of 0,
//! a drain of 100 %). What is legal but suspect (a look-alike match on very few characters, a
//! set no rule uses) is a warning.

mod file;
mod rules;
mod validate;

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use alloy_primitives::{Address, U256};
use holdfast_guard::policy::AssetKey;
use holdfast_primitives::{AssetKind, Category};
use serde::Serialize;

use crate::alert::{DetectorKind, Severity};
use crate::sink::SinkSpec;

pub use validate::{parse_address, validate};

/// Confirmations after which an alert is confirmed, when `[[chain]]` does not say.
pub const DEFAULT_CONFIRMATIONS: u64 = 12;
/// Largest watch file (and address file) read.
pub const MAX_WATCH_BYTES: usize = 16 << 20;
/// Most characters a look-alike match may compare (prefix + suffix).
pub const MAX_LOOKALIKE_CHARS: u32 = 20;
/// Longest drain window, in blocks (the state keeps a balance sample per block of it).
pub const MAX_DRAIN_BLOCKS: u64 = 100_000;

/// One error or warning about a watch file, with where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub file: String,
    pub line: Option<usize>,
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        if let Some(k) = &self.key {
            write!(f, ": key `{k}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// A watch file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", .errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid {
        errors: Vec<Diagnostic>,
        /// Warnings found before giving up, for `holdfast watch check`.
        warnings: Vec<Diagnostic>,
    },
}

impl ConfigError {
    /// The errors (one for a read failure).
    pub fn diagnostics(&self) -> Vec<Diagnostic> {
        match self {
            ConfigError::Read { path, source } => vec![Diagnostic {
                file: path.display().to_string(),
                line: None,
                key: None,
                message: source.to_string(),
            }],
            ConfigError::Invalid { errors, .. } => errors.clone(),
        }
    }
}

/// A validated watch file and what in it is legal but suspect.
#[derive(Debug, Clone)]
pub struct Validated {
    pub config: WatchConfig,
    pub warnings: Vec<Diagnostic>,
}

/// Reads and validates a watch file; address files are read relative to its folder.
pub fn load(path: &Path) -> Result<Validated, ConfigError> {
    let text = read_bounded(path)?;
    let base = path.parent().unwrap_or(Path::new("."));
    validate(&path.display().to_string(), &text, base)
}

pub(crate) fn read_bounded(path: &Path) -> Result<String, ConfigError> {
    let read = |source| ConfigError::Read {
        path: path.to_owned(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read)?;
    if meta.len() > MAX_WATCH_BYTES as u64 {
        return Err(read(std::io::Error::other(format!(
            "{} bytes: the limit is {MAX_WATCH_BYTES}",
            meta.len()
        ))));
    }
    std::fs::read_to_string(path).map_err(read)
}

/// A validated watch file.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchConfig {
    /// The file it came from, for messages.
    pub source: String,
    pub chains: Vec<ChainConfig>,
    pub assets: Vec<AssetConfig>,
    pub sets: Vec<AddressSet>,
    pub rules: Vec<Rule>,
    pub sinks: Vec<SinkSpec>,
}

impl WatchConfig {
    pub fn chain(&self, name: &str) -> Option<&ChainConfig> {
        self.chains.iter().find(|c| c.name == name)
    }

    /// The asset a chain's transfer moves, when the file declares it.
    pub fn asset(&self, chain: &str, key: AssetKey) -> Option<&AssetConfig> {
        self.assets
            .iter()
            .find(|a| a.chain == chain && a.key == key)
    }

    pub fn set(&self, name: &str) -> Option<&AddressSet> {
        self.sets.iter().find(|s| s.name == name)
    }

    pub fn rule(&self, name: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.name == name)
    }
}

/// How a chain's node is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    Http,
    WebSocket,
}

/// One `[[chain]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainConfig {
    pub name: String,
    /// The node's URL (may hold an API key: log it with `holdfast_chain::redact`).
    pub rpc: String,
    pub transport: Transport,
    /// When set, the node must answer this chain id.
    pub chain_id: Option<u64>,
    /// Alerts are raised at the head (0 confirmations) and confirmed (a `confirmed` event)
    /// once their block is this deep; 0: final as raised, no `confirmed` events. Default 12.
    pub confirmations: u64,
    /// The first block to watch (default: the head when the watch starts with no checkpoint).
    pub start_block: Option<u64>,
    /// Explorer base URL (`https://etherscan.io`), for links; no trailing slash.
    pub explorer: Option<String>,
    /// Look at each new head without state diffs first and raise what that shows at once
    /// (docs/WATCH.md, "First look"). Default true; off for a node whose `trace_block`
    /// re-executes the block (it would then run each head twice).
    pub first_look: bool,
}

/// One `[[asset]]`: amounts of it in alerts and thresholds are in its units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetConfig {
    pub symbol: String,
    pub chain: String,
    pub kind: AssetKind,
    pub key: AssetKey,
    pub decimals: u8,
}

/// One `[[set]]` of addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressSet {
    pub name: String,
    pub line: usize,
    /// From `addresses` and `files`.
    pub addresses: BTreeSet<Address>,
    /// Safes naming one of these as owner join the set while the watch runs (dynamic members
    /// are kept in the detectors' state).
    pub safes_owned_by: BTreeSet<Address>,
    /// Where the search for the Safes `safes_owned_by` already hold starts (at the watch's
    /// start, on every chain: `discover`). `None`: only Safes that gain the owner while the
    /// watch runs join.
    pub safes_from_block: Option<u64>,
}

/// One `[[rule]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub name: String,
    pub line: usize,
    pub description: Option<String>,
    pub detector: DetectorKind,
    /// Indexes into [`WatchConfig::sets`].
    pub targets: Vec<usize>,
    /// The chains it applies to; `None`: every chain.
    pub chains: Option<Vec<String>>,
    pub severity: Severity,
    pub responses: Vec<Response>,
    pub params: Params,
}

impl Rule {
    pub fn applies_to_chain(&self, chain: &str) -> bool {
        self.chains
            .as_ref()
            .is_none_or(|c| c.iter().any(|n| n == chain))
    }

    /// The names of its responses, as alerts carry them.
    pub fn response_names(&self) -> Vec<String> {
        self.responses.iter().map(|r| r.name().to_owned()).collect()
    }
}

/// What a rule starts when it fires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// The guard service's emergency freeze of the wallet.
    Freeze,
    /// Follow the theft from the alert's transaction; its deposits raise alerts under
    /// `deposit_rule` (a `tainted_deposit` rule; `None`: the file's only one, else this
    /// rule).
    Trace {
        policies: Vec<holdfast_trace::Policy>,
        hops: u32,
        deposit_rule: Option<String>,
    },
    /// `tainted` labels for the thief's addresses.
    Label,
    /// A freeze-request payload per exchange reached.
    Notify,
}

impl Response {
    pub const NAMES: [&'static str; 4] = ["freeze", "trace", "label", "notify"];

    pub const fn name(&self) -> &'static str {
        match self {
            Response::Freeze => "freeze",
            Response::Trace { .. } => "trace",
            Response::Label => "label",
            Response::Notify => "notify",
        }
    }
}

/// The default `trace` response: haircut (the policy the laundering test's amounts use),
/// eight hops.
pub const DEFAULT_TRACE_HOPS: u32 = 8;

/// A detector's own parameters.
#[derive(Debug, Clone, PartialEq)]
pub enum Params {
    CriticalStorage(StorageParams),
    Outflow(OutflowParams),
    Grant(GrantParams),
    Counterparty(CounterpartyParams),
    Poisoning(PoisoningParams),
    /// Detector 6 (the engine's): no parameters of its own yet.
    TaintedDeposit,
}

/// What a critical-storage rule looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CriticalChange {
    /// A Safe's singleton (`masterCopy`, slot 0); `ChangedMasterCopy`.
    Singleton,
    /// A Safe's owners (mapping at slot 2, count at slot 3); `AddedOwner`, `RemovedOwner`.
    Owners,
    /// A Safe's threshold (slot 4); `ChangedThreshold`.
    Threshold,
    /// A Safe's modules (mapping at slot 1); `EnabledModule`, `DisabledModule`.
    Modules,
    /// A Safe's transaction guard; `ChangedGuard`.
    Guard,
    /// A Safe's fallback handler; `ChangedFallbackHandler`.
    FallbackHandler,
    /// A Safe 1.5.0 module guard; `ChangedModuleGuard`.
    ModuleGuard,
    /// EIP-1967 implementation slot; `Upgraded`.
    Implementation,
    /// EIP-1967 admin slot; `AdminChanged`.
    Admin,
    /// EIP-1967 beacon slot; `BeaconUpgraded`.
    Beacon,
    /// `OwnershipTransferred`.
    Ownership,
    /// `RoleGranted`.
    Roles,
}

impl CriticalChange {
    pub const ALL: [CriticalChange; 12] = [
        CriticalChange::Singleton,
        CriticalChange::Owners,
        CriticalChange::Threshold,
        CriticalChange::Modules,
        CriticalChange::Guard,
        CriticalChange::FallbackHandler,
        CriticalChange::ModuleGuard,
        CriticalChange::Implementation,
        CriticalChange::Admin,
        CriticalChange::Beacon,
        CriticalChange::Ownership,
        CriticalChange::Roles,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            CriticalChange::Singleton => "singleton",
            CriticalChange::Owners => "owners",
            CriticalChange::Threshold => "threshold",
            CriticalChange::Modules => "modules",
            CriticalChange::Guard => "guard",
            CriticalChange::FallbackHandler => "fallback_handler",
            CriticalChange::ModuleGuard => "module_guard",
            CriticalChange::Implementation => "implementation",
            CriticalChange::Admin => "admin",
            CriticalChange::Beacon => "beacon",
            CriticalChange::Ownership => "ownership",
            CriticalChange::Roles => "roles",
        }
    }

    pub fn parse(s: &str) -> Option<CriticalChange> {
        CriticalChange::ALL.into_iter().find(|c| c.name() == s)
    }

    /// In words, for alert titles.
    pub const fn words(self) -> &'static str {
        match self {
            CriticalChange::Singleton => "singleton (masterCopy)",
            CriticalChange::Owners => "owners",
            CriticalChange::Threshold => "signature threshold",
            CriticalChange::Modules => "modules",
            CriticalChange::Guard => "transaction guard",
            CriticalChange::FallbackHandler => "fallback handler",
            CriticalChange::ModuleGuard => "module guard",
            CriticalChange::Implementation => "proxy implementation",
            CriticalChange::Admin => "proxy admin",
            CriticalChange::Beacon => "proxy beacon",
            CriticalChange::Ownership => "owner (Ownable)",
            CriticalChange::Roles => "roles (AccessControl)",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageParams {
    pub changes: BTreeSet<CriticalChange>,
}

/// An amount of one asset of one chain, in its smallest unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Threshold {
    pub chain: String,
    pub asset: AssetKey,
    pub symbol: String,
    pub amount: U256,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Velocity {
    /// Seconds of block time.
    pub window_secs: u64,
    pub amount_above: Vec<Threshold>,
    /// More outflows than this (any asset) within the window.
    pub count_above: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drain {
    /// Loss that fires, in hundredths of a percent (5000 = 50 %), exclusive.
    pub basis_points: u32,
    pub blocks: u64,
    /// `(chain, asset)`; the native coin of every chain of the rule by default.
    pub native: bool,
    pub tokens: Vec<(String, Address)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OutflowParams {
    /// A single transfer of more than this.
    pub amount_above: Vec<Threshold>,
    /// Any NFT (ERC-721, ERC-1155) leaving.
    pub any_nft: bool,
    pub velocity: Option<Velocity>,
    pub drain: Option<Drain>,
    /// The first payment to an address the wallet never paid before.
    pub new_destination: bool,
    /// The wallet's whole balance of an asset leaving (the native coin from the state diff;
    /// tokens through the history seam's balances).
    pub whole_balance: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GrantParams {
    /// Sets of spenders that may be granted without an alert.
    pub allowlist: Vec<usize>,
    pub unlimited_only: bool,
}

/// Which transfers of a watched address a counterparty rule looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    In,
    Out,
    Both,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterpartyParams {
    pub categories: Vec<Category>,
    pub direction: Direction,
}

/// The categories a counterparty rule uses by default.
pub const DEFAULT_COUNTERPARTY_CATEGORIES: [Category; 4] = [
    Category::Sanctioned,
    Category::DprkAttributed,
    Category::Mixer,
    Category::Tainted,
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoisoningParams {
    /// Leading hex characters (after `0x`) a look-alike shares with a real counterparty.
    pub prefix: u32,
    /// Trailing hex characters it shares.
    pub suffix: u32,
    pub zero_value: bool,
    pub fake_tokens: bool,
    pub lookalike: bool,
}

/// Default look-alike match: 4 leading and 4 trailing hex characters (what wallets show).
pub const DEFAULT_LOOKALIKE: (u32, u32) = (4, 4);

#[cfg(test)]
mod tests;
