//! [`Network`]: which Bitcoin-family chain a block belongs to, and how that chain writes its
//! addresses.
//!
//! A node is identified by its genesis block hash ([`Network::from_genesis`]), never by the
//! name it reports: Litecoin Core says `"regtest"` exactly as Bitcoin Core does, but its
//! addresses differ (`rltc1…`, `Q…`) and so does every block it makes.

use std::fmt;
use std::str::FromStr;

use bitcoin::BlockHash;
use holdfast_primitives::Chain;

/// A Bitcoin-family network whose blocks this crate decodes and whose addresses it renders.
/// Closed: a node on any other genesis is refused at connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Network {
    /// Bitcoin mainnet.
    Bitcoin,
    /// Bitcoin testnet3.
    BitcoinTestnet,
    /// Bitcoin testnet4 (BIP94).
    BitcoinTestnet4,
    /// Bitcoin's default signet.
    BitcoinSignet,
    /// Bitcoin Core `-regtest`.
    BitcoinRegtest,
    /// Litecoin mainnet.
    Litecoin,
    /// Litecoin testnet4.
    LitecoinTestnet,
    /// Litecoin Core `-regtest` (the test node: Debian's `litecoind`).
    LitecoinRegtest,
}

/// How a network writes addresses: the base58check version bytes and the bech32 human-readable
/// part (BIP173/BIP350).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressParams {
    /// Version byte of pay-to-pubkey-hash addresses.
    pub p2pkh: u8,
    /// Version byte of pay-to-script-hash addresses (Litecoin's `SCRIPT_ADDRESS2`, the one its
    /// node writes: `M…` on mainnet, `Q…` on its testnet and regtest).
    pub p2sh: u8,
    /// Human-readable part of segwit addresses.
    pub hrp: &'static str,
}

impl Network {
    /// Every network, in a fixed order.
    pub const ALL: [Network; 8] = [
        Network::Bitcoin,
        Network::BitcoinTestnet,
        Network::BitcoinTestnet4,
        Network::BitcoinSignet,
        Network::BitcoinRegtest,
        Network::Litecoin,
        Network::LitecoinTestnet,
        Network::LitecoinRegtest,
    ];

    /// The coin's unit as people write amounts (`BTC`, `LTC`; 10^8 of the smallest unit).
    pub const fn unit(self) -> &'static str {
        match self {
            Network::Bitcoin
            | Network::BitcoinTestnet
            | Network::BitcoinTestnet4
            | Network::BitcoinSignet
            | Network::BitcoinRegtest => "BTC",
            Network::Litecoin | Network::LitecoinTestnet | Network::LitecoinRegtest => "LTC",
        }
    }

    /// The name used on the command line and in messages.
    pub const fn name(self) -> &'static str {
        match self {
            Network::Bitcoin => "bitcoin",
            Network::BitcoinTestnet => "bitcoin-testnet",
            Network::BitcoinTestnet4 => "bitcoin-testnet4",
            Network::BitcoinSignet => "bitcoin-signet",
            Network::BitcoinRegtest => "bitcoin-regtest",
            Network::Litecoin => "litecoin",
            Network::LitecoinTestnet => "litecoin-testnet",
            Network::LitecoinRegtest => "litecoin-regtest",
        }
    }

    /// The chain whose coins this network carries (test networks map to their main chain's
    /// family: labels and screening know no test networks).
    pub const fn chain(self) -> Chain {
        match self {
            Network::Bitcoin
            | Network::BitcoinTestnet
            | Network::BitcoinTestnet4
            | Network::BitcoinSignet
            | Network::BitcoinRegtest => Chain::Bitcoin,
            Network::Litecoin | Network::LitecoinTestnet | Network::LitecoinRegtest => {
                Chain::Litecoin
            }
        }
    }

    /// Whether rust-bitcoin knows this network (its addresses are then rendered by
    /// rust-bitcoin itself).
    pub const fn rust_bitcoin(self) -> Option<bitcoin::Network> {
        match self {
            Network::Bitcoin => Some(bitcoin::Network::Bitcoin),
            Network::BitcoinTestnet | Network::BitcoinTestnet4 => Some(bitcoin::Network::Testnet),
            Network::BitcoinSignet => Some(bitcoin::Network::Signet),
            Network::BitcoinRegtest => Some(bitcoin::Network::Regtest),
            Network::Litecoin | Network::LitecoinTestnet | Network::LitecoinRegtest => None,
        }
    }

    /// Address version bytes and bech32 prefix (Bitcoin Core's and Litecoin Core's
    /// `chainparams.cpp`).
    pub const fn address_params(self) -> AddressParams {
        match self {
            Network::Bitcoin => AddressParams {
                p2pkh: 0x00,
                p2sh: 0x05,
                hrp: "bc",
            },
            Network::BitcoinTestnet | Network::BitcoinTestnet4 | Network::BitcoinSignet => {
                AddressParams {
                    p2pkh: 0x6f,
                    p2sh: 0xc4,
                    hrp: "tb",
                }
            }
            Network::BitcoinRegtest => AddressParams {
                p2pkh: 0x6f,
                p2sh: 0xc4,
                hrp: "bcrt",
            },
            Network::Litecoin => AddressParams {
                p2pkh: 0x30,
                p2sh: 0x32,
                hrp: "ltc",
            },
            Network::LitecoinTestnet => AddressParams {
                p2pkh: 0x6f,
                p2sh: 0x3a,
                hrp: "tltc",
            },
            Network::LitecoinRegtest => AddressParams {
                p2pkh: 0x6f,
                p2sh: 0x3a,
                hrp: "rltc",
            },
        }
    }

    /// The genesis block hash, in the usual (reversed, display) hex.
    pub const fn genesis_hex(self) -> &'static str {
        match self {
            Network::Bitcoin => "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f",
            Network::BitcoinTestnet => {
                "000000000933ea01ad0ee984209779baaec3ced90fa3f408719526f8d77f4943"
            }
            Network::BitcoinTestnet4 => {
                "00000000da84f2bafbbc53dee25a72ae507ff4914b867c565be350b0da8bf043"
            }
            Network::BitcoinSignet => {
                "00000008819873e925422c1ff0f99f7cc9bbb232af63a077a480a3633bee1ef6"
            }
            Network::BitcoinRegtest => {
                "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206"
            }
            Network::Litecoin => "12a765e31ffd4059bada1e25190f6e98c99d9714d334efa41a195a7e7e04bfe2",
            Network::LitecoinTestnet => {
                "4966625a4b2851d9fdee139e56211a0d88575f59ed816ff5e6a63deb4e3e29a0"
            }
            Network::LitecoinRegtest => {
                "530827f38f93b43ed12af0b3ad25a288dc02ed74d6d7857862df51fc56c416f9"
            }
        }
    }

    /// The network whose genesis block is `hash`.
    pub fn from_genesis(hash: &BlockHash) -> Option<Network> {
        let hex = hash.to_string();
        Network::ALL.into_iter().find(|n| n.genesis_hex() == hex)
    }

    /// The chain id under which the UTXO store keeps this network's history imported from an
    /// export without a UTXO set (bitcoin-etl), apart from the index built from a node.
    pub const fn import_id(self) -> u64 {
        1_000 + self.index_id()
    }

    /// The chain id under which the UTXO index keeps this network (stable: never reuse or
    /// change one).
    pub const fn index_id(self) -> u64 {
        match self {
            Network::Bitcoin => 1,
            Network::BitcoinTestnet => 2,
            Network::BitcoinTestnet4 => 3,
            Network::BitcoinSignet => 4,
            Network::BitcoinRegtest => 5,
            Network::Litecoin => 11,
            Network::LitecoinTestnet => 12,
            Network::LitecoinRegtest => 13,
        }
    }

    /// The four bytes that open each block in the node's `blk*.dat` files (and its P2P
    /// messages).
    pub const fn magic(self) -> [u8; 4] {
        match self {
            Network::Bitcoin => [0xf9, 0xbe, 0xb4, 0xd9],
            Network::BitcoinTestnet => [0x0b, 0x11, 0x09, 0x07],
            Network::BitcoinTestnet4 => [0x1c, 0x16, 0x3f, 0x28],
            Network::BitcoinSignet => [0x0a, 0x03, 0xcf, 0x40],
            Network::BitcoinRegtest | Network::LitecoinRegtest => [0xfa, 0xbf, 0xb5, 0xda],
            Network::Litecoin => [0xfb, 0xc0, 0xb6, 0xdb],
            Network::LitecoinTestnet => [0xfd, 0xd2, 0xc8, 0xf1],
        }
    }

    /// The most coins that can ever exist, in the smallest unit: an output above it is
    /// malformed (Bitcoin Core's `MAX_MONEY`; Litecoin's is four times Bitcoin's).
    pub const fn max_money(self) -> u64 {
        const COIN: u64 = 100_000_000;
        match self.chain() {
            Chain::Litecoin => 84_000_000 * COIN,
            _ => 21_000_000 * COIN,
        }
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A network name that is not one of [`Network::ALL`]'s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown network {0:?}: expected one of bitcoin, bitcoin-testnet, bitcoin-testnet4, bitcoin-signet, bitcoin-regtest, litecoin, litecoin-testnet, litecoin-regtest"
)]
pub struct UnknownNetwork(pub String);

impl FromStr for Network {
    type Err = UnknownNetwork;

    fn from_str(s: &str) -> Result<Network, UnknownNetwork> {
        let lower = s.trim().to_ascii_lowercase();
        Network::ALL
            .into_iter()
            .find(|n| n.name() == lower)
            .ok_or_else(|| UnknownNetwork(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitcoin_genesis_hashes_are_rust_bitcoins() {
        for n in Network::ALL {
            if n == Network::BitcoinTestnet4 {
                continue; // rust-bitcoin 0.32's `Testnet` is testnet3
            }
            if let Some(rb) = n.rust_bitcoin() {
                let genesis = bitcoin::constants::genesis_block(rb).block_hash();
                assert_eq!(genesis.to_string(), n.genesis_hex(), "{n}");
                assert_eq!(Network::from_genesis(&genesis), Some(n));
            }
        }
    }

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for n in Network::ALL {
            assert_eq!(n.name().parse::<Network>(), Ok(n));
        }
        let e = "dogecoin".parse::<Network>().unwrap_err();
        assert!(e.to_string().contains("\"dogecoin\""), "{e}");
    }

    #[test]
    fn genesis_hashes_and_index_ids_are_distinct() {
        let mut all: Vec<_> = Network::ALL.iter().map(|n| n.genesis_hex()).collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), Network::ALL.len());
        let mut ids: Vec<_> = Network::ALL.iter().map(|n| n.index_id()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), Network::ALL.len());
    }
}
