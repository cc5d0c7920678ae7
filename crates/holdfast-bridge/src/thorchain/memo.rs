//! THORChain memos: `FUNCTION:PARAM1:PARAM2:…`, the function case-insensitive and
//! abbreviable (`SWAP`, `s`, `=`), parameters optional from the right and left empty in
//! between (`=:b:bc1…::t:30`). What matters to a trace is where funds go:
//!
//! - a **swap** (`SWAP`/`s`/`=`, and limit orders `limito`/`lo`) pays `ASSET` out to
//!   `DESTADDR` (or back to the sender when it is empty), with an optional refund address
//!   after a `/` (`DEST/REFUND`), a trade limit (`LIM`, in 1e8 units, scientific notation
//!   allowed: `87e7`), streaming (`LIM/INTERVAL/QUANTITY`), an affiliate and its fee in basis
//!   points;
//! - a **loan** opened (`$+`/`LOAN+`) pays the debt asset to `DESTADDR`;
//! - THORChain's own **outbound** (`OUT:<id>`) and **refund** (`REFUND:<id>`) name the inbound
//!   transaction they pay — the link from a Bitcoin payout back to the Ethereum deposit;
//! - every other function (liquidity, savers, bonds, names, trade accounts, internal vault
//!   moves) keeps the funds within THORChain or is internal: recorded by kind.
//!
//! Memos longer than THORChain's 250-byte limit are refused (THORChain ignores them).
//! Sources: dev.thorchain.org "Transaction Memos" and thornode `x/thorchain/memo/`
//! (`memo.go` `stringToTxTypeMap`, `memo_swap.go` `ParseSwapMemoV131`, `memo_outbound.go`).

use alloy_primitives::B256;
use serde::Serialize;

use super::asset::Asset;

/// THORChain ignores memos longer than this (thornode `constants.MaxMemoSize`).
pub const MAX_MEMO_BYTES: usize = 250;
/// Longest address or THORName accepted in a memo.
const MAX_ADDRESS_LEN: usize = 128;

/// A memo that does not parse: which part, what it was, what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[error("THORChain memo: {field} is {value:?}; expected {expected}")]
pub struct MemoError {
    pub field: &'static str,
    pub value: String,
    pub expected: &'static str,
}

impl MemoError {
    pub(crate) fn field(field: &'static str, value: &str, expected: &'static str) -> MemoError {
        // Bounded: a hostile memo is not copied whole into every error.
        let value: String = value.chars().take(MAX_MEMO_BYTES).collect();
        MemoError {
            field,
            value,
            expected,
        }
    }
}

/// The memo's function (thornode `stringToTxTypeMap`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MemoKind {
    Swap,
    LimitOrder,
    Add,
    Withdraw,
    LoanOpen,
    LoanRepay,
    TradeAdd,
    TradeWithdraw,
    Donate,
    Bond,
    Unbond,
    Leave,
    Reserve,
    Outbound,
    Refund,
    Migrate,
    Ragnarok,
    Noop,
    Consolidate,
    Name,
    Switch,
    YggdrasilFund,
    YggdrasilReturn,
}

impl MemoKind {
    fn parse(word: &str) -> Option<MemoKind> {
        Some(match word.to_ascii_lowercase().as_str() {
            "swap" | "s" | "=" => MemoKind::Swap,
            "limito" | "lo" => MemoKind::LimitOrder,
            "add" | "+" | "a" => MemoKind::Add,
            "withdraw" | "wd" | "-" => MemoKind::Withdraw,
            "$+" | "loan+" => MemoKind::LoanOpen,
            "$-" | "loan-" => MemoKind::LoanRepay,
            "trade+" => MemoKind::TradeAdd,
            "trade-" => MemoKind::TradeWithdraw,
            "donate" | "d" => MemoKind::Donate,
            "bond" => MemoKind::Bond,
            "unbond" => MemoKind::Unbond,
            "leave" => MemoKind::Leave,
            "reserve" => MemoKind::Reserve,
            "out" => MemoKind::Outbound,
            "refund" => MemoKind::Refund,
            "migrate" => MemoKind::Migrate,
            "ragnarok" => MemoKind::Ragnarok,
            "noop" => MemoKind::Noop,
            "consolidate" => MemoKind::Consolidate,
            "name" | "n" | "~" => MemoKind::Name,
            "switch" => MemoKind::Switch,
            "yggdrasil+" => MemoKind::YggdrasilFund,
            "yggdrasil-" => MemoKind::YggdrasilReturn,
            _ => return None,
        })
    }
}

/// A transaction id as THORChain writes it (upper-case; for EVM chains the hash's 64 hex
/// digits without `0x`, for Bitcoin the txid as explorers show it).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct TxId(String);

impl TxId {
    fn parse(field: &'static str, s: &str) -> Result<TxId, MemoError> {
        let s = s
            .strip_prefix("0x")
            .or_else(|| s.strip_prefix("0X"))
            .unwrap_or(s);
        if s.is_empty() || s.len() > 128 || !s.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(MemoError::field(
                field,
                s,
                "a transaction id (64 hex digits for Ethereum and Bitcoin)",
            ));
        }
        Ok(TxId(s.to_ascii_uppercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id as a 32-byte hash (an EVM transaction hash), if it is one.
    pub fn hash(&self) -> Option<B256> {
        if self.0.len() != 64 {
            return None;
        }
        alloy_primitives::hex::decode(&self.0)
            .ok()
            .map(|b| B256::from_slice(&b))
    }
}

/// A swap (or limit order): pays `asset` out to `destination`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Swap {
    pub asset: Asset,
    /// `None`: back to the sender's address on the asset's chain.
    pub destination: Option<String>,
    /// Where a refund goes, when the memo names one (`DEST/REFUND`).
    pub refund: Option<String>,
    /// The least output accepted, in THORChain's 1e8 units.
    pub limit: Option<u128>,
    /// Streaming: blocks between sub-swaps, and their number (0: THORChain decides).
    pub interval: Option<u64>,
    pub quantity: Option<u64>,
    pub affiliate: Option<String>,
    pub affiliate_bps: Option<u16>,
    /// A limit order (`limito`) rather than a market swap.
    pub limit_order: bool,
}

/// A parsed memo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Memo {
    Swap(Swap),
    /// A loan opened: the debt in `asset` is paid to `destination`.
    LoanOpen {
        asset: Asset,
        destination: String,
        min_out: Option<u128>,
    },
    /// THORChain's payout for inbound `inbound`.
    Outbound {
        inbound: TxId,
    },
    /// THORChain's refund of inbound `inbound`.
    Refund {
        inbound: TxId,
    },
    /// Any other function: funds stay within THORChain or the move is internal.
    Other {
        function: MemoKind,
    },
}

/// The memo's parts, each optional unless asked for.
struct Parts<'a>(Vec<&'a str>);

impl<'a> Parts<'a> {
    fn get(&self, i: usize) -> Option<&'a str> {
        self.0.get(i).copied().filter(|s| !s.is_empty())
    }

    fn required(
        &self,
        i: usize,
        field: &'static str,
        expected: &'static str,
    ) -> Result<&'a str, MemoError> {
        self.get(i)
            .ok_or_else(|| MemoError::field(field, self.0.get(i).copied().unwrap_or(""), expected))
    }
}

fn address(field: &'static str, s: &str) -> Result<String, MemoError> {
    if s.len() > MAX_ADDRESS_LEN
        || !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '+'))
    {
        return Err(MemoError::field(
            field,
            s,
            "an address or THORName (letters, digits, . - _ +; at most 128)",
        ));
    }
    Ok(s.to_owned())
}

/// A whole number, or `MANTISSAeEXPONENT` (`87e7`).
fn amount(field: &'static str, s: &str) -> Result<u128, MemoError> {
    let bad = || {
        MemoError::field(
            field,
            s,
            "a whole number, or scientific notation such as 87e7",
        )
    };
    let (mantissa, exp) = match s.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<u32>().map_err(|_| bad())?),
        None => (s, 0),
    };
    if mantissa.is_empty() || !mantissa.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let m: u128 = mantissa.parse().map_err(|_| bad())?;
    10u128
        .checked_pow(exp)
        .and_then(|p| m.checked_mul(p))
        .ok_or_else(bad)
}

fn small<T: std::str::FromStr>(
    field: &'static str,
    s: &str,
    expected: &'static str,
) -> Result<T, MemoError> {
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(MemoError::field(field, s, expected));
    }
    s.parse().map_err(|_| MemoError::field(field, s, expected))
}

impl Memo {
    /// Parses a memo given as bytes (an OP_RETURN's data): UTF-8 required.
    pub fn parse_bytes(memo: &[u8]) -> Result<Memo, MemoError> {
        let s = std::str::from_utf8(memo)
            .map_err(|_| MemoError::field("memo", &String::from_utf8_lossy(memo), "UTF-8 text"))?;
        Memo::parse(s)
    }

    pub fn parse(memo: &str) -> Result<Memo, MemoError> {
        if memo.len() > MAX_MEMO_BYTES {
            return Err(MemoError::field(
                "memo",
                memo,
                "at most 250 bytes (THORChain ignores longer memos)",
            ));
        }
        let parts = Parts(memo.split(':').collect());
        let word = parts.0.first().copied().unwrap_or("");
        let function = MemoKind::parse(word).ok_or_else(|| {
            MemoError::field(
                "function",
                word,
                "a THORChain function such as SWAP, =, OUT, REFUND, ADD",
            )
        })?;
        match function {
            MemoKind::Swap | MemoKind::LimitOrder => {
                let asset =
                    Asset::parse("asset", parts.required(1, "asset", "the asset to swap to")?)?;
                let (destination, refund) = match parts.get(2) {
                    Some(d) => match d.split_once('/') {
                        Some((dest, refund)) => (
                            Some(address("destination", dest)?).filter(|s| !s.is_empty()),
                            Some(address("refund address", refund)?).filter(|s| !s.is_empty()),
                        ),
                        None => (Some(address("destination", d)?), None),
                    },
                    None => (None, None),
                };
                if destination.is_none() && refund.is_some() {
                    return Err(MemoError::field(
                        "destination",
                        parts.get(2).unwrap_or(""),
                        "a destination before the refund address",
                    ));
                }
                let (mut limit, mut interval, mut quantity) = (None, None, None);
                if let Some(l) = parts.get(3) {
                    let mut streaming = l.splitn(3, '/');
                    let lim = streaming.next().unwrap_or("");
                    if !lim.is_empty() {
                        limit = Some(amount("trade limit", lim)?);
                    }
                    if let Some(i) = streaming.next().filter(|s| !s.is_empty()) {
                        interval = Some(small("streaming interval", i, "a number of blocks")?);
                    }
                    if let Some(q) = streaming.next().filter(|s| !s.is_empty()) {
                        quantity = Some(small("streaming quantity", q, "a number of sub-swaps")?);
                    }
                }
                let affiliate = parts.get(4).map(|a| address("affiliate", a)).transpose()?;
                let affiliate_bps = parts
                    .get(5)
                    .map(|f| {
                        small::<u16>("affiliate fee", f, "basis points from 0 to 1000").and_then(
                            |b| {
                                if b <= 1000 {
                                    Ok(b)
                                } else {
                                    Err(MemoError::field(
                                        "affiliate fee",
                                        f,
                                        "basis points from 0 to 1000",
                                    ))
                                }
                            },
                        )
                    })
                    .transpose()?;
                Ok(Memo::Swap(Swap {
                    asset,
                    destination,
                    refund,
                    limit,
                    interval,
                    quantity,
                    affiliate,
                    affiliate_bps,
                    limit_order: function == MemoKind::LimitOrder,
                }))
            }
            MemoKind::LoanOpen => Ok(Memo::LoanOpen {
                asset: Asset::parse("asset", parts.required(1, "asset", "the debt asset")?)?,
                destination: address(
                    "destination",
                    parts.required(2, "destination", "the address the debt is paid to")?,
                )?,
                min_out: parts.get(3).map(|m| amount("minimum out", m)).transpose()?,
            }),
            MemoKind::Outbound => Ok(Memo::Outbound {
                inbound: TxId::parse(
                    "inbound id",
                    parts.required(1, "inbound id", "the inbound transaction's id")?,
                )?,
            }),
            MemoKind::Refund => Ok(Memo::Refund {
                inbound: TxId::parse(
                    "inbound id",
                    parts.required(1, "inbound id", "the inbound transaction's id")?,
                )?,
            }),
            other => Ok(Memo::Other { function: other }),
        }
    }

    /// Where the funds go when they leave THORChain: the asset and the address on its chain
    /// (`None`: they stay within THORChain, go back to the sender, or the memo is an
    /// outbound's or refund's).
    pub fn exit(&self) -> Option<(&Asset, &str)> {
        match self {
            Memo::Swap(s) if s.asset.leaves_thorchain() => {
                s.destination.as_deref().map(|d| (&s.asset, d))
            }
            Memo::LoanOpen {
                asset, destination, ..
            } if asset.leaves_thorchain() => Some((asset, destination.as_str())),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn swap(memo: &str) -> Swap {
        match Memo::parse(memo).expect(memo) {
            Memo::Swap(s) => s,
            other => panic!("{memo}: {other:?}"),
        }
    }

    /// The docs' examples and thornode's memo_test.go cases.
    #[test]
    fn swaps_as_the_docs_and_thornode_write_them() {
        let s = swap("SWAP:ETH.ETH:0xe6a30f4f3bad978910e2cbb4d97581f5b5a0ade0:10000000/3/0:t:10");
        assert_eq!(s.asset.to_string(), "ETH.ETH");
        assert_eq!(
            s.destination.as_deref(),
            Some("0xe6a30f4f3bad978910e2cbb4d97581f5b5a0ade0")
        );
        assert_eq!(
            (s.limit, s.interval, s.quantity),
            (Some(10_000_000), Some(3), Some(0))
        );
        assert_eq!(
            (s.affiliate.as_deref(), s.affiliate_bps),
            (Some("t"), Some(10))
        );

        let s = swap("=:b:bc1q3a2le4lazts64u8mqte5vuxvug25z5w6rhs95g:5855757:t:10");
        assert_eq!(s.asset.to_string(), "BTC.BTC");
        let memo = Memo::parse("=:b:bc1q3a2le4lazts64u8mqte5vuxvug25z5w6rhs95g:5855757:t:10")
            .expect("memo");
        let (asset, to) = memo.exit().expect("leaves THORChain");
        assert_eq!(
            (asset.chain.as_str(), to),
            ("BTC", "bc1q3a2le4lazts64u8mqte5vuxvug25z5w6rhs95g")
        );

        assert_eq!(
            swap("s:ETH.ETH:0xe6a30f4f3bad978910e2cbb4d97581f5b5a0ade0:1e6/3/0:t:10").limit,
            Some(1_000_000)
        );
        assert_eq!(
            swap("=:r:bnb1lejrrtta9cgr49fuh7ktu3sddhe0ff7wenlpn6:87e7").limit,
            Some(870_000_000)
        );
        let s = swap("=:b:bnb1lejrrtta9cgr49fuh7ktu3sddhe0ff7wenlpn6/bc1qrefund:87e7");
        assert_eq!(s.refund.as_deref(), Some("bc1qrefund"));
        let s = swap("=:THOR.RUNE:bnb1lejrrtta9cgr49fuh7ktu3sddhe0ff7wenlpn6://");
        assert_eq!((s.limit, s.interval, s.quantity), (None, None, None));
        let s = swap("=:BTC~BTC:thor1g6pnmnyeg48yc3lg796plt0uw50qpp7humfggz:1e6/1/0:dx:10");
        assert!(
            Memo::Swap(s).exit().is_none(),
            "a trade asset stays on THORChain"
        );
        // Swap to the sender: no destination, nothing to follow from the memo.
        let s = swap("=:e");
        assert!(s.destination.is_none());
        assert!(swap("limito:b:bc1qx:100").limit_order);
        // Long affiliate chain and the aggregator fields are accepted (ignored).
        swap(
            "=:THOR.RUNE:bnb1lejrrtta9cgr49fuh7ktu3sddhe0ff7wenlpn6::::123:0x2354234523452345:1425e18",
        );
    }

    #[test]
    fn outbounds_refunds_loans_and_the_rest() {
        let hash = "9F36B2F0E6BB50C4D59CAA9C6FAA1CE39D0B68C8AB0DA6A4B3ECDEAC8A3C5B7D";
        assert_eq!(
            Memo::parse(&format!("OUT:{hash}")).expect("out"),
            Memo::Outbound {
                inbound: TxId(hash.into())
            }
        );
        let lower = Memo::parse(&format!("out:0x{}", hash.to_lowercase())).expect("out");
        let Memo::Outbound { inbound } = lower else {
            panic!("{lower:?}")
        };
        assert_eq!(inbound.as_str(), hash);
        assert_eq!(
            inbound.hash().map(|h| h.to_string()),
            Some(format!("0x{}", hash.to_lowercase()))
        );
        // thornode's own test ids are not hex: kept, but not a hash.
        let Memo::Refund { inbound } =
            Memo::parse("REFUND:MUKVQILIHIAUSEOVAXBFEZAJKYHFJYHRUUYGQJZGFYBYVXCXYNEMUOAIQKFQLLCX")
                .expect("refund")
        else {
            panic!("refund")
        };
        assert!(inbound.hash().is_none());
        let loan = Memo::parse(
            "$+:BTC.BTC:bc1qwqdg6squsna38e46795at95yu9atm8azzmyvckulcc7kytlcckxswvvzej:45e3",
        )
        .expect("loan");
        assert_eq!(
            loan.exit().map(|(a, d)| (a.to_string(), d.len())),
            Some(("BTC.BTC".into(), 62))
        );
        for (memo, function) in [
            ("ADD:BTC.BTC", MemoKind::Add),
            ("+:BTC/BTC::t:10", MemoKind::Add),
            ("-:ETH/ETH:5000", MemoKind::Withdraw),
            ("bond:thor1x", MemoKind::Bond),
            ("noop:novault", MemoKind::Noop),
            ("trade+:thor1x", MemoKind::TradeAdd),
            ("~:name", MemoKind::Name),
        ] {
            assert_eq!(
                Memo::parse(memo).expect(memo),
                Memo::Other { function },
                "{memo}"
            );
        }
    }

    /// Each malformed memo names the part that is wrong.
    #[test]
    fn malformed_memos_name_the_field() {
        for (memo, field) in [
            ("", "function"),
            ("bogus", "function"),
            ("=", "asset"),
            ("=:", "asset"),
            ("=:b:bad<DES:5.6", "destination"),
            ("=:b:bc1qx:five", "trade limit"),
            ("=:b:bc1qx:5.6", "trade limit"),
            ("=:b:bc1qx:1e99", "trade limit"),
            ("=:THOR.RUNE:bnb1x:1200/10/20abc", "streaming quantity"),
            ("=:THOR.RUNE:bnb1x:1200/-10/20", "streaming interval"),
            (
                "=:THOR.RUNE:bnb1x:1200/102103980982304982058230492830429384080/20",
                "streaming interval",
            ),
            ("=:b:/bc1qrefund:87e7", "destination"),
            ("=:b:bc1qx::t:1001", "affiliate fee"),
            ("OUT", "inbound id"),
            ("OUT:not/an/id", "inbound id"),
            ("$+:BTC.BTC", "destination"),
        ] {
            let e = Memo::parse(memo).expect_err(memo);
            assert_eq!(e.field, field, "{memo}: {e}");
            assert!(e.to_string().starts_with("THORChain memo: "), "{e}");
        }
        let long = format!("=:b:bc1q{}", "x".repeat(250));
        assert_eq!(Memo::parse(&long).expect_err("long").field, "memo");
        assert_eq!(
            Memo::parse_bytes(&[0x4f, 0x55, 0x54, 0x3a, 0xff])
                .expect_err("utf8")
                .field,
            "memo"
        );
    }
}
