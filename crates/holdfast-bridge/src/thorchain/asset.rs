//! THORChain's asset notation: `CHAIN.SYMBOL` for a layer-1 asset (`BTC.BTC`, `ETH.ETH`,
//! `ETH.USDT-0XDAC17F958D2EE523A2206206994597C13D831EC7` with the token's contract), `/` in
//! place of `.` for a synthetic (`BTC/BTC`), `~` for a trade-account asset (`BTC~BTC`), and
//! one-letter short codes for the native assets (`b` = `BTC.BTC`, …; thornode
//! `common/asset.go`, `ShortCode`). Case-insensitive; kept upper-case.

use serde::Serialize;

use super::memo::MemoError;

/// How an asset is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AssetKind {
    /// On its own chain (`.`): a swap to it pays out on that chain.
    Layer1,
    /// A synthetic held on THORChain (`/`): nothing leaves THORChain.
    Synth,
    /// A trade-account balance on THORChain (`~`): nothing leaves THORChain.
    Trade,
}

/// An asset in THORChain's notation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Asset {
    /// `BTC`, `ETH`, `THOR`, … (upper-case).
    pub chain: String,
    /// `BTC`, `USDT`, … (upper-case, without the contract).
    pub symbol: String,
    /// The token's contract, when named (`-0X…`), upper-case as THORChain writes it.
    pub contract: Option<String>,
    pub kind: AssetKind,
}

/// The short codes (thornode `common/asset.go`, `ShortCode`).
const SHORT: [(&str, &str, &str); 10] = [
    ("r", "THOR", "RUNE"),
    ("a", "AVAX", "AVAX"),
    ("b", "BTC", "BTC"),
    ("c", "BCH", "BCH"),
    ("e", "ETH", "ETH"),
    ("g", "GAIA", "ATOM"),
    ("n", "BNB", "BNB"),
    ("s", "BSC", "BNB"),
    ("d", "DOGE", "DOGE"),
    ("l", "LTC", "LTC"),
];

/// Longest asset accepted (a chain, a symbol and a 0x contract fit well inside).
const MAX_ASSET_LEN: usize = 100;

impl Asset {
    /// Parses `s` (the memo's `field`).
    pub fn parse(field: &'static str, s: &str) -> Result<Asset, MemoError> {
        let bad = |expected: &'static str| MemoError::field(field, s, expected);
        if s.is_empty() || s.len() > MAX_ASSET_LEN {
            return Err(bad(
                "an asset such as BTC.BTC, ETH.USDT-0X…, BTC/BTC or a short code (b, e, …)",
            ));
        }
        if let Some((_, chain, symbol)) = SHORT.iter().find(|(c, ..)| c.eq_ignore_ascii_case(s)) {
            return Ok(Asset {
                chain: (*chain).into(),
                symbol: (*symbol).into(),
                contract: None,
                kind: AssetKind::Layer1,
            });
        }
        let (at, kind) = s
            .char_indices()
            .find_map(|(i, c)| match c {
                '.' => Some((i, AssetKind::Layer1)),
                '/' => Some((i, AssetKind::Synth)),
                '~' => Some((i, AssetKind::Trade)),
                _ => None,
            })
            .ok_or_else(|| bad("CHAIN.SYMBOL (or / for a synth, ~ for a trade asset)"))?;
        let (chain, rest) = (&s[..at], &s[at + 1..]);
        let (symbol, contract) = match rest.split_once('-') {
            Some((sym, c)) => (sym, Some(c)),
            None => (rest, None),
        };
        let word = |w: &str| !w.is_empty() && w.chars().all(|c| c.is_ascii_alphanumeric());
        if !word(chain) || !word(symbol) || contract.is_some_and(|c| !word(c)) {
            return Err(bad(
                "CHAIN.SYMBOL with letters and digits, an optional -CONTRACT",
            ));
        }
        Ok(Asset {
            chain: chain.to_ascii_uppercase(),
            symbol: symbol.to_ascii_uppercase(),
            contract: contract.map(str::to_ascii_uppercase),
            kind,
        })
    }

    /// Whether a swap to this asset pays out on another chain than THORChain itself.
    pub fn leaves_thorchain(&self) -> bool {
        self.kind == AssetKind::Layer1 && self.chain != "THOR"
    }
}

impl std::fmt::Display for Asset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sep = match self.kind {
            AssetKind::Layer1 => '.',
            AssetKind::Synth => '/',
            AssetKind::Trade => '~',
        };
        write!(f, "{}{sep}{}", self.chain, self.symbol)?;
        if let Some(c) = &self.contract {
            write!(f, "-{c}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notation_short_codes_synths_trade_assets_and_contracts() {
        let a = |s| Asset::parse("asset", s).expect(s).to_string();
        assert_eq!(a("b"), "BTC.BTC");
        assert_eq!(a("E"), "ETH.ETH");
        assert_eq!(a("s"), "BSC.BNB");
        assert_eq!(a("btc.btc"), "BTC.BTC");
        assert_eq!(a("BTC/BTC"), "BTC/BTC");
        assert_eq!(a("BTC~BTC"), "BTC~BTC");
        assert_eq!(
            a("ETH.USDT-0xdac17f958d2ee523a2206206994597c13d831ec7"),
            "ETH.USDT-0XDAC17F958D2EE523A2206206994597C13D831EC7"
        );
        assert!(Asset::parse("asset", "b").expect("b").leaves_thorchain());
        assert!(!Asset::parse("asset", "r").expect("r").leaves_thorchain());
        assert!(
            !Asset::parse("asset", "BTC/BTC")
                .expect("synth")
                .leaves_thorchain()
        );
        for bad in [
            "",
            "x",
            "BTC",
            ".BTC",
            "BTC.",
            "BTC.B<T",
            "ETH.USDT-",
            &"A".repeat(101),
        ] {
            let e = Asset::parse("asset", bad).expect_err(bad);
            assert_eq!(e.field, "asset", "{bad}");
        }
    }
}
