//! Amounts in token units (`12.5 ETH`, `1000000 USDC`) and explorer links, for alerts a
//! responder reads.

use std::collections::HashMap;

use alloy_primitives::{Address, B256, U256};
use holdfast_primitives::Asset;

use crate::alert::Link;
use crate::follow::ChainInfo;

/// Symbols and decimals of the assets alerts mention.
#[derive(Debug, Clone, Default)]
pub struct Units {
    native: HashMap<u64, String>,
    tokens: HashMap<(u64, Address), (String, u8)>,
}

impl Units {
    pub fn new() -> Self {
        Units::default()
    }

    /// The native asset's symbol on `chain_id` (default `ETH`, 18 decimals).
    pub fn with_native(mut self, chain_id: u64, symbol: impl Into<String>) -> Self {
        self.native.insert(chain_id, symbol.into());
        self
    }

    pub fn add_token(
        &mut self,
        chain_id: u64,
        token: Address,
        symbol: impl Into<String>,
        decimals: u8,
    ) {
        self.tokens
            .insert((chain_id, token), (symbol.into(), decimals));
    }

    /// `1.5 ETH`; a token without known decimals shows its smallest units and address; an
    /// NFT shows its id.
    pub fn format(&self, chain_id: u64, asset: &Asset, amount: U256) -> String {
        match asset {
            Asset::Native => format!(
                "{} {}",
                decimal(amount, 18),
                self.native.get(&chain_id).map_or("ETH", String::as_str)
            ),
            Asset::Erc20 { token } => match self.tokens.get(&(chain_id, *token)) {
                Some((symbol, decimals)) => format!("{} {symbol}", decimal(amount, *decimals)),
                None => format!("{amount} units of token {token}"),
            },
            Asset::Erc721 { token, id } => format!("NFT {token} #{id}"),
            Asset::Erc1155 { token, id } => format!("{amount} × {token} #{id}"),
        }
    }
}

/// `amount / 10^decimals` exactly, without trailing zeros.
pub fn decimal(amount: U256, decimals: u8) -> String {
    let s = amount.to_string();
    let d = usize::from(decimals);
    if d == 0 {
        return s;
    }
    let (int, frac) = if s.len() > d {
        let (i, f) = s.split_at(s.len() - d);
        (i.to_owned(), f.to_owned())
    } else {
        ("0".to_owned(), format!("{}{s}", "0".repeat(d - s.len())))
    };
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        int
    } else {
        format!("{int}.{frac}")
    }
}

/// Links to the block and transaction on the chain's explorer, when one is configured.
pub fn links(chain: &ChainInfo, tx: Option<B256>, block: u64) -> Vec<Link> {
    let Some(base) = chain.explorer.as_deref() else {
        return Vec::new();
    };
    let base = base.trim_end_matches('/');
    let mut links = vec![Link {
        name: "block".into(),
        url: format!("{base}/block/{block}"),
    }];
    if let Some(tx) = tx {
        links.push(Link {
            name: "transaction".into(),
            url: format!("{base}/tx/{tx}"),
        });
    }
    links
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_exact() {
        assert_eq!(
            decimal(U256::from(1_500_000_000_000_000_000u128), 18),
            "1.5"
        );
        assert_eq!(decimal(U256::from(1u8), 18), "0.000000000000000001");
        assert_eq!(decimal(U256::from(0u8), 6), "0");
        assert_eq!(decimal(U256::from(2_000_000u64), 6), "2");
        assert_eq!(decimal(U256::MAX, 0), U256::MAX.to_string());
    }
}
