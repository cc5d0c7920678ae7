//! What a trace is asked: the taint policy, the seeds, the bounds and where it stops.

use std::fmt;
use std::str::FromStr;

use alloy_primitives::{Address, B256, U256};
use holdfast_primitives::Asset;

use crate::TraceError;

/// How taint leaving an address is chosen among the funds it holds (docs/TRACE.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// Every transfer out of a tainted address is wholly tainted (Möser, Böhme, Breuker).
    Poison,
    /// Every transfer out carries the holder's tainted share of its balance (Möser et al.);
    /// shares below the cut-off are dropped.
    Haircut,
    /// First in, first out: the oldest funds received leave first (Clayton's case, as in
    /// Anderson et al.).
    Fifo,
    /// Last in, first out.
    Lifo,
    /// Taint in, highest out: the tainted funds of a transaction go to its largest outputs
    /// first (Tironsakkul et al.).
    Tiho,
}

impl Policy {
    pub const ALL: [Policy; 5] = [
        Policy::Poison,
        Policy::Haircut,
        Policy::Fifo,
        Policy::Lifo,
        Policy::Tiho,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Policy::Poison => "poison",
            Policy::Haircut => "haircut",
            Policy::Fifo => "fifo",
            Policy::Lifo => "lifo",
            Policy::Tiho => "tiho",
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Policy {
    type Err = TraceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Policy::ALL
            .into_iter()
            .find(|p| p.name() == s.trim().to_ascii_lowercase())
            .ok_or_else(|| TraceError::Invalid {
                field: "policy",
                value: s.to_owned(),
                expected: "one of poison, haircut, fifo, lifo, tiho".into(),
            })
    }
}

/// Where the stolen funds start.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum SeedAt {
    /// The theft transaction: exactly what it moved is tainted.
    Tx { tx_hash: B256 },
    /// The thief's address: its outflows from `from_block` on are tainted.
    Address { address: Address },
}

/// One theft to trace.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Seed {
    pub at: SeedAt,
    /// Only this asset (default: every asset).
    pub asset: Option<Asset>,
    /// At most this much (in the asset's smallest unit; default: all).
    pub amount: Option<U256>,
    /// Address seeds: outflows from this block on (default 0).
    pub from_block: u64,
    /// The theft this seed belongs to: seeds with the same number are traced as one source
    /// (a theft spread over several addresses). Default: the seed's own position.
    pub theft: Option<u16>,
}

impl Seed {
    pub fn tx(tx_hash: B256) -> Self {
        Seed {
            at: SeedAt::Tx { tx_hash },
            asset: None,
            amount: None,
            from_block: 0,
            theft: None,
        }
    }

    pub fn address(address: Address) -> Self {
        Seed {
            at: SeedAt::Address { address },
            asset: None,
            amount: None,
            from_block: 0,
            theft: None,
        }
    }

    pub fn with_asset(mut self, asset: Asset) -> Self {
        self.asset = Some(asset);
        self
    }

    pub fn with_amount(mut self, amount: U256) -> Self {
        self.amount = Some(amount);
        self
    }

    /// Counts this seed's taint as theft number `theft` (see [`Seed::theft`]).
    pub fn in_theft(mut self, theft: u16) -> Self {
        self.theft = Some(theft);
        self
    }

    pub fn from_block(mut self, block: u64) -> Self {
        self.from_block = block;
        self
    }

    /// Parses `0x` + 64 hex digits as a transaction, `0x` + 40 as an address.
    pub fn parse(s: &str) -> Result<Self, TraceError> {
        let t = s.trim();
        let invalid = || TraceError::Invalid {
            field: "seed",
            value: s.to_owned(),
            expected: "a transaction hash (0x + 64 hex digits) or an address (0x + 40 hex digits)"
                .into(),
        };
        match t.len() {
            66 => t.parse::<B256>().map(Seed::tx).map_err(|_| invalid()),
            42 => t
                .parse::<Address>()
                .map(Seed::address)
                .map_err(|_| invalid()),
            _ => Err(invalid()),
        }
    }
}

/// Parses an asset: `native` / `eth`, `erc20:0x...`, or a bare token address (ERC-20).
pub fn parse_asset(s: &str) -> Result<Asset, TraceError> {
    let t = s.trim();
    let invalid = || TraceError::Invalid {
        field: "asset",
        value: s.to_owned(),
        expected: "native, eth, erc20:0x<token> or a token address".into(),
    };
    match t.to_ascii_lowercase().as_str() {
        "native" | "eth" => return Ok(Asset::Native),
        _ => {}
    }
    let token = t.strip_prefix("erc20:").unwrap_or(t);
    token
        .parse::<Address>()
        .map(|token| Asset::Erc20 { token })
        .map_err(|_| invalid())
}

/// Where the trace stops and how far it goes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TraceOptions {
    pub policy: Policy,
    /// Most transfers between a seed and a tainted address (1..=[`MAX_HOPS`]).
    pub max_hops: u32,
    /// An address with more outgoing transfers than this (after it is tainted) is a
    /// super-node: its taint is reported and not followed.
    pub fan_out_cap: usize,
    /// Haircut: shares of a transfer below this many millionths are dropped (0 keeps all).
    pub haircut_cutoff_ppm: u32,
    /// Follow taint through addresses labelled as mixers (default: stop and mark).
    pub through_mixers: bool,
    /// Follow taint through addresses labelled as bridges (default: record the exit).
    pub through_bridges: bool,
    /// Most tainted addresses kept (the trace stops growing past it and says so).
    pub max_addresses: usize,
}

/// Largest `max_hops`.
pub const MAX_HOPS: u32 = 64;
/// Most seeds of one trace (sources are numbered in a `u16`).
pub const MAX_SEEDS: usize = 1024;

impl Default for TraceOptions {
    fn default() -> Self {
        TraceOptions {
            policy: Policy::Haircut,
            max_hops: 10,
            fan_out_cap: 10_000,
            haircut_cutoff_ppm: 0,
            through_mixers: false,
            through_bridges: false,
            max_addresses: 1_000_000,
        }
    }
}

impl TraceOptions {
    pub fn with_policy(policy: Policy) -> Self {
        TraceOptions {
            policy,
            ..TraceOptions::default()
        }
    }

    pub fn validate(&self) -> Result<(), TraceError> {
        if self.max_hops == 0 || self.max_hops > MAX_HOPS {
            return Err(TraceError::Invalid {
                field: "max_hops",
                value: self.max_hops.to_string(),
                expected: format!("1 to {MAX_HOPS}"),
            });
        }
        if self.fan_out_cap == 0 {
            return Err(TraceError::Invalid {
                field: "fan_out_cap",
                value: "0".into(),
                expected: "at least 1".into(),
            });
        }
        if self.haircut_cutoff_ppm > 1_000_000 {
            return Err(TraceError::Invalid {
                field: "haircut_cutoff_ppm",
                value: self.haircut_cutoff_ppm.to_string(),
                expected: "0 to 1000000".into(),
            });
        }
        if self.max_addresses == 0 {
            return Err(TraceError::Invalid {
                field: "max_addresses",
                value: "0".into(),
                expected: "at least 1".into(),
            });
        }
        Ok(())
    }
}
