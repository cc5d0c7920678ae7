use std::fmt;
use std::str::FromStr;

/// A network Holdfast knows addresses for.
///
/// The set is closed on purpose: every chain has an address format in `holdfast-intel`, and
/// adding one means teaching the parser its format. Names and tickers both parse
/// (`ethereum`/`eth`, `bitcoin`/`btc`/`xbt`, `tron`/`trx`, ...).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Chain {
    // EVM chains: one address format, shared.
    Ethereum,
    EthereumClassic,
    Bsc,
    Polygon,
    Arbitrum,
    Optimism,
    Base,
    Avalanche,
    Fantom,
    Gnosis,
    // Bitcoin and its forks.
    Bitcoin,
    BitcoinCash,
    BitcoinSv,
    BitcoinGold,
    Litecoin,
    Dogecoin,
    Dash,
    Zcash,
    Verge,
    // Others present in the OFAC list.
    Tron,
    Monero,
    Ripple,
    Solana,
    /// BNB Beacon Chain (BEP2, `bnb1...` bech32), retired in 2024 but still on the OFAC list.
    BnbBeacon,
}

/// Chains that share an address format, so that one address string is the same identity on
/// all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChainFamily {
    Evm,
    Utxo,
    Tron,
    Monero,
    Ripple,
    Solana,
    BnbBeacon,
}

/// A chain name or ticker that Holdfast does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown chain {input:?}: expected one of {}", Chain::ALL.iter().map(|c| c.name()).collect::<Vec<_>>().join(", "))]
pub struct UnknownChain {
    pub input: String,
}

impl Chain {
    pub const ALL: [Chain; 24] = [
        Chain::Ethereum,
        Chain::EthereumClassic,
        Chain::Bsc,
        Chain::Polygon,
        Chain::Arbitrum,
        Chain::Optimism,
        Chain::Base,
        Chain::Avalanche,
        Chain::Fantom,
        Chain::Gnosis,
        Chain::Bitcoin,
        Chain::BitcoinCash,
        Chain::BitcoinSv,
        Chain::BitcoinGold,
        Chain::Litecoin,
        Chain::Dogecoin,
        Chain::Dash,
        Chain::Zcash,
        Chain::Verge,
        Chain::Tron,
        Chain::Monero,
        Chain::Ripple,
        Chain::Solana,
        Chain::BnbBeacon,
    ];

    /// The EVM chain with this EIP-155 chain id, if Holdfast knows it (`None` for test
    /// networks such as anvil's 31337: every EVM label then applies).
    pub const fn from_evm_chain_id(id: u64) -> Option<Chain> {
        Some(match id {
            1 => Chain::Ethereum,
            61 => Chain::EthereumClassic,
            56 => Chain::Bsc,
            137 => Chain::Polygon,
            42161 => Chain::Arbitrum,
            10 => Chain::Optimism,
            8453 => Chain::Base,
            43114 => Chain::Avalanche,
            250 => Chain::Fantom,
            100 => Chain::Gnosis,
            _ => return None,
        })
    }

    /// The canonical name, as used in the API path and in output.
    pub const fn name(self) -> &'static str {
        match self {
            Chain::Ethereum => "ethereum",
            Chain::EthereumClassic => "ethereum-classic",
            Chain::Bsc => "bsc",
            Chain::Polygon => "polygon",
            Chain::Arbitrum => "arbitrum",
            Chain::Optimism => "optimism",
            Chain::Base => "base",
            Chain::Avalanche => "avalanche",
            Chain::Fantom => "fantom",
            Chain::Gnosis => "gnosis",
            Chain::Bitcoin => "bitcoin",
            Chain::BitcoinCash => "bitcoin-cash",
            Chain::BitcoinSv => "bitcoin-sv",
            Chain::BitcoinGold => "bitcoin-gold",
            Chain::Litecoin => "litecoin",
            Chain::Dogecoin => "dogecoin",
            Chain::Dash => "dash",
            Chain::Zcash => "zcash",
            Chain::Verge => "verge",
            Chain::Tron => "tron",
            Chain::Monero => "monero",
            Chain::Ripple => "ripple",
            Chain::Solana => "solana",
            Chain::BnbBeacon => "bnb-beacon",
        }
    }

    /// The ticker (OFAC's "Digital Currency Address - XXX" uses these; XBT is Bitcoin).
    pub const fn ticker(self) -> &'static str {
        match self {
            Chain::Ethereum => "ETH",
            Chain::EthereumClassic => "ETC",
            Chain::Bsc => "BSC",
            Chain::Polygon => "MATIC",
            Chain::Arbitrum => "ARB",
            Chain::Optimism => "OP",
            Chain::Base => "BASE",
            Chain::Avalanche => "AVAX",
            Chain::Fantom => "FTM",
            Chain::Gnosis => "GNO",
            Chain::Bitcoin => "BTC",
            Chain::BitcoinCash => "BCH",
            Chain::BitcoinSv => "BSV",
            Chain::BitcoinGold => "BTG",
            Chain::Litecoin => "LTC",
            Chain::Dogecoin => "DOGE",
            Chain::Dash => "DASH",
            Chain::Zcash => "ZEC",
            Chain::Verge => "XVG",
            Chain::Tron => "TRX",
            Chain::Monero => "XMR",
            Chain::Ripple => "XRP",
            Chain::Solana => "SOL",
            Chain::BnbBeacon => "BEP2",
        }
    }

    pub const fn family(self) -> ChainFamily {
        match self {
            Chain::Ethereum
            | Chain::EthereumClassic
            | Chain::Bsc
            | Chain::Polygon
            | Chain::Arbitrum
            | Chain::Optimism
            | Chain::Base
            | Chain::Avalanche
            | Chain::Fantom
            | Chain::Gnosis => ChainFamily::Evm,
            Chain::Bitcoin
            | Chain::BitcoinCash
            | Chain::BitcoinSv
            | Chain::BitcoinGold
            | Chain::Litecoin
            | Chain::Dogecoin
            | Chain::Dash
            | Chain::Zcash
            | Chain::Verge => ChainFamily::Utxo,
            Chain::Tron => ChainFamily::Tron,
            Chain::Monero => ChainFamily::Monero,
            Chain::Ripple => ChainFamily::Ripple,
            Chain::Solana => ChainFamily::Solana,
            Chain::BnbBeacon => ChainFamily::BnbBeacon,
        }
    }

    pub const fn is_evm(self) -> bool {
        matches!(self.family(), ChainFamily::Evm)
    }

    /// A dense index in `0..Chain::ALL.len()`, for bit sets.
    pub const fn index(self) -> u8 {
        self as u8
    }
}

impl fmt::Display for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Chain {
    type Err = UnknownChain;

    /// Accepts the canonical name, the ticker, and common aliases, case-insensitively.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        let chain = match lower.as_str() {
            "ethereum" | "eth" | "mainnet" => Chain::Ethereum,
            "ethereum-classic" | "etc" => Chain::EthereumClassic,
            "bsc" | "bnb" | "binance-smart-chain" | "bnb-smart-chain" => Chain::Bsc,
            "polygon" | "matic" | "pol" => Chain::Polygon,
            "arbitrum" | "arb" | "arbitrum-one" => Chain::Arbitrum,
            "optimism" | "op" => Chain::Optimism,
            "base" => Chain::Base,
            "avalanche" | "avax" | "avalanche-c" => Chain::Avalanche,
            "fantom" | "ftm" => Chain::Fantom,
            "gnosis" | "gno" | "xdai" => Chain::Gnosis,
            "bitcoin" | "btc" | "xbt" => Chain::Bitcoin,
            "bitcoin-cash" | "bch" | "bitcoincash" => Chain::BitcoinCash,
            "bitcoin-sv" | "bsv" => Chain::BitcoinSv,
            "bitcoin-gold" | "btg" => Chain::BitcoinGold,
            "litecoin" | "ltc" => Chain::Litecoin,
            "dogecoin" | "doge" => Chain::Dogecoin,
            "dash" => Chain::Dash,
            "zcash" | "zec" => Chain::Zcash,
            "verge" | "xvg" => Chain::Verge,
            "tron" | "trx" => Chain::Tron,
            "monero" | "xmr" => Chain::Monero,
            "ripple" | "xrp" | "xrpl" => Chain::Ripple,
            "solana" | "sol" => Chain::Solana,
            "bnb-beacon" | "bep2" | "bnb-beacon-chain" | "binance-chain" => Chain::BnbBeacon,
            _ => {
                return Err(UnknownChain {
                    input: s.to_owned(),
                });
            }
        };
        Ok(chain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_tickers_round_trip() {
        for chain in Chain::ALL {
            assert_eq!(chain.name().parse::<Chain>(), Ok(chain));
            assert_eq!(chain.ticker().parse::<Chain>(), Ok(chain));
            assert_eq!(
                usize::from(chain.index()),
                Chain::ALL.iter().position(|c| *c == chain).unwrap_or(99)
            );
        }
    }

    #[test]
    fn unknown_chain_names_input_and_choices() {
        let err = "dogechain".parse::<Chain>().unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("\"dogechain\""), "{msg}");
        assert!(msg.contains("ethereum"), "{msg}");
    }

    #[test]
    fn serde_uses_kebab_names() {
        let json = serde_json::to_string(&Chain::BitcoinCash).unwrap_or_default();
        assert_eq!(json, "\"bitcoin-cash\"");
    }
}
