//! Value movements on EVM chains, as every reader of the chain (store, guard, watch, trace)
//! sees them: one [`Transfer`] per movement, and [`Conversion`]s where one asset turned into
//! another inside a transaction (so taint can follow across assets).

use std::cmp::Ordering;
use std::fmt;

use alloy_primitives::{Address, B256, U256};
use serde::{Deserialize, Serialize};

/// What moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Asset {
    /// The chain's native coin (ETH on Ethereum), in wei.
    Native,
    /// An ERC-20 token, in its smallest unit.
    Erc20 { token: Address },
    /// One ERC-721 token; the amount is always 1.
    Erc721 { token: Address, id: U256 },
    /// An ERC-1155 token id, with an amount.
    Erc1155 { token: Address, id: U256 },
}

impl Asset {
    /// The token contract, `None` for the native coin.
    pub const fn token(&self) -> Option<Address> {
        match self {
            Asset::Native => None,
            Asset::Erc20 { token } | Asset::Erc721 { token, .. } | Asset::Erc1155 { token, .. } => {
                Some(*token)
            }
        }
    }

    /// The token id of an NFT, `None` for fungible assets.
    pub const fn token_id(&self) -> Option<U256> {
        match self {
            Asset::Erc721 { id, .. } | Asset::Erc1155 { id, .. } => Some(*id),
            Asset::Native | Asset::Erc20 { .. } => None,
        }
    }

    pub const fn kind(&self) -> AssetKind {
        match self {
            Asset::Native => AssetKind::Native,
            Asset::Erc20 { .. } => AssetKind::Erc20,
            Asset::Erc721 { .. } => AssetKind::Erc721,
            Asset::Erc1155 { .. } => AssetKind::Erc1155,
        }
    }

    /// Rebuilds an asset from its stored parts; `None` if they do not fit together.
    pub fn from_parts(kind: AssetKind, token: Option<Address>, id: Option<U256>) -> Option<Asset> {
        match (kind, token, id) {
            (AssetKind::Native, None, None) => Some(Asset::Native),
            (AssetKind::Erc20, Some(token), None) => Some(Asset::Erc20 { token }),
            (AssetKind::Erc721, Some(token), Some(id)) => Some(Asset::Erc721 { token, id }),
            (AssetKind::Erc1155, Some(token), Some(id)) => Some(Asset::Erc1155 { token, id }),
            _ => None,
        }
    }
}

impl fmt::Display for Asset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Asset::Native => f.write_str("native"),
            Asset::Erc20 { token } => write!(f, "erc20:{token}"),
            Asset::Erc721 { token, id } => write!(f, "erc721:{token}:{id}"),
            Asset::Erc1155 { token, id } => write!(f, "erc1155:{token}:{id}"),
        }
    }
}

/// The closed set of asset kinds, for storage columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AssetKind {
    Native = 0,
    Erc20 = 1,
    Erc721 = 2,
    Erc1155 = 3,
}

impl AssetKind {
    pub const fn from_u8(v: u8) -> Option<AssetKind> {
        match v {
            0 => Some(AssetKind::Native),
            1 => Some(AssetKind::Erc20),
            2 => Some(AssetKind::Erc721),
            3 => Some(AssetKind::Erc1155),
            _ => None,
        }
    }
}

/// Where in its transaction a transfer happened; with the tx hash, the transfer's identity.
///
/// Orders as the EVM executed: calls by trace address (a call before its sub-calls), logs by
/// index. Within a transaction, calls and logs interleave in execution, which neither source
/// records; calls sort first.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Position {
    /// A value-carrying call frame: `[]` is the transaction's own call, `[0, 2]` the third
    /// sub-call of its first sub-call.
    Call { trace_address: Vec<u16> },
    /// A token event: the log's index in the block, and the item within an ERC-1155 batch.
    Log { log_index: u32, item: u16 },
}

impl Ord for Position {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Position::Call { trace_address: a }, Position::Call { trace_address: b }) => a.cmp(b),
            (Position::Call { .. }, Position::Log { .. }) => Ordering::Less,
            (Position::Log { .. }, Position::Call { .. }) => Ordering::Greater,
            (
                Position::Log {
                    log_index: a,
                    item: i,
                },
                Position::Log {
                    log_index: b,
                    item: j,
                },
            ) => (a, i).cmp(&(b, j)),
        }
    }
}

impl PartialOrd for Position {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::Call { trace_address } if trace_address.is_empty() => f.write_str("call"),
            Position::Call { trace_address } => {
                f.write_str("call:")?;
                for (i, a) in trace_address.iter().enumerate() {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    write!(f, "{a}")?;
                }
                Ok(())
            }
            Position::Log { log_index, item: 0 } => write!(f, "log:{log_index}"),
            Position::Log { log_index, item } => write!(f, "log:{log_index}.{item}"),
        }
    }
}

/// The block a transfer is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BlockRef {
    pub number: u64,
    pub hash: B256,
    pub parent_hash: B256,
    /// Seconds since the Unix epoch.
    pub timestamp: u64,
}

/// One movement of value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Transfer {
    pub chain_id: u64,
    pub block_number: u64,
    pub block_hash: B256,
    pub timestamp: u64,
    pub tx_hash: B256,
    /// The transaction's index in its block.
    pub tx_index: u32,
    pub position: Position,
    pub from: Address,
    pub to: Address,
    pub asset: Asset,
    pub amount: U256,
}

impl Transfer {
    /// Block order: block, transaction, position.
    pub fn order_key(&self) -> (u64, u32, &Position) {
        (self.block_number, self.tx_index, &self.position)
    }
}

/// Kinds of in-transaction asset conversion Holdfast records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConversionKind {
    /// WETH `Deposit`: native in, WETH out.
    Wrap,
    /// WETH `Withdrawal`: WETH in, native out.
    Unwrap,
    /// Uniswap V2 pair `Swap`: one token in, the other out.
    UniswapV2Swap,
}

/// One asset turned into another inside a transaction, with both legs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Conversion {
    pub chain_id: u64,
    pub block_number: u64,
    pub block_hash: B256,
    pub tx_hash: B256,
    pub tx_index: u32,
    pub log_index: u32,
    pub kind: ConversionKind,
    /// The contract that converted (the WETH contract, the pair).
    pub venue: Address,
    /// Who gave the input (the WETH depositor, the swap's `sender`).
    pub account: Address,
    /// Who received the output (the WETH depositor, the swap's `to`).
    pub recipient: Address,
    pub asset_in: Asset,
    pub amount_in: U256,
    pub asset_out: Asset,
    pub amount_out: U256,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_order_calls_then_logs() {
        let call = |t: &[u16]| Position::Call {
            trace_address: t.to_vec(),
        };
        let log = |i, item| Position::Log { log_index: i, item };
        let mut v = vec![
            log(3, 1),
            call(&[0, 1]),
            log(3, 0),
            call(&[]),
            call(&[0]),
            log(1, 0),
            call(&[1]),
        ];
        v.sort();
        assert_eq!(
            v,
            vec![
                call(&[]),
                call(&[0]),
                call(&[0, 1]),
                call(&[1]),
                log(1, 0),
                log(3, 0),
                log(3, 1)
            ]
        );
        assert_eq!(call(&[0, 2]).to_string(), "call:0.2");
        assert_eq!(log(7, 2).to_string(), "log:7.2");
    }

    #[test]
    fn asset_parts_round_trip() {
        let token = Address::repeat_byte(0x11);
        for a in [
            Asset::Native,
            Asset::Erc20 { token },
            Asset::Erc721 {
                token,
                id: U256::from(7),
            },
            Asset::Erc1155 {
                token,
                id: U256::from(9),
            },
        ] {
            assert_eq!(
                Asset::from_parts(a.kind(), a.token(), a.token_id()),
                Some(a)
            );
            assert_eq!(AssetKind::from_u8(a.kind() as u8), Some(a.kind()));
        }
        assert_eq!(
            Asset::from_parts(AssetKind::Native, Some(token), None),
            None
        );
        let json = serde_json::to_string(&Asset::Erc20 { token }).expect("json");
        assert!(json.starts_with(r#"{"kind":"erc20","token":"0x"#), "{json}");
        assert_eq!(
            serde_json::from_str::<Asset>(&json).expect("back"),
            Asset::Erc20 { token }
        );
    }
}
