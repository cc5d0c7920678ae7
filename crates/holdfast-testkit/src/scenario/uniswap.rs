//! Uniswap V2 through its router, as users trade: liquidity, ETH to token, token to token,
//! a two-hop swap back to ETH, and a swap that fails on slippage.
//!
//! Every amount the scenario expects is computed here with the pair's constant-product
//! formula from reserves tracked locally, and checked against the router's own quote
//! (`getAmountsOut`) before each swap.

use std::collections::BTreeMap;

use alloy::sol_types::SolCall;
use alloy_primitives::{Address, B256, Bytes, U256};
use holdfast_primitives::{Asset, ConversionKind};

use super::{Record, Scenario, eth, mintCall};
use crate::deploy::{self, UniswapV2};
use crate::{Anvil, TestkitError, dev_account};

mod abi {
    alloy::sol! {
        function approve(address spender, uint256 amount) external returns (bool);
        function addLiquidity(address tokenA, address tokenB, uint256 amountADesired, uint256 amountBDesired, uint256 amountAMin, uint256 amountBMin, address to, uint256 deadline) external returns (uint256 amountA, uint256 amountB, uint256 liquidity);
        function addLiquidityETH(address token, uint256 amountTokenDesired, uint256 amountTokenMin, uint256 amountETHMin, address to, uint256 deadline) external payable returns (uint256 amountToken, uint256 amountETH, uint256 liquidity);
        function swapExactETHForTokens(uint256 amountOutMin, address[] path, address to, uint256 deadline) external payable returns (uint256[] amounts);
        function swapExactTokensForTokens(uint256 amountIn, uint256 amountOutMin, address[] path, address to, uint256 deadline) external returns (uint256[] amounts);
        function swapExactTokensForETH(uint256 amountIn, uint256 amountOutMin, address[] path, address to, uint256 deadline) external returns (uint256[] amounts);
        function getAmountsOut(uint256 amountIn, address[] path) external view returns (uint256[] amounts);
        function getPair(address tokenA, address tokenB) external view returns (address pair);
    }
}

/// The pair's permanently locked first liquidity (`MINIMUM_LIQUIDITY`), minted to the zero
/// address.
const MINIMUM_LIQUIDITY: u64 = 1000;

/// What [`Scenario::uniswap_router`] did.
#[derive(Debug, Clone)]
pub struct UniswapActivity {
    pub uniswap: UniswapV2,
    pub token_a: Address,
    pub token_b: Address,
    /// The A/B pair and the WETH/A pair (found by the factory, equal to the router's
    /// CREATE2 computation).
    pub pair_ab: Address,
    pub pair_weth_a: Address,
    /// The liquidity provider and the trader.
    pub provider: Address,
    pub trader: Address,
    /// The successful swaps, in order.
    pub swaps: Vec<B256>,
    pub record: Record,
}

/// Reserves as the pairs hold them, by (pair, token).
#[derive(Debug, Default)]
struct Reserves(BTreeMap<(Address, Address), U256>);

impl Reserves {
    fn add(&mut self, pair: Address, token: Address, amount: U256) {
        *self.0.entry((pair, token)).or_default() += amount;
    }

    fn sub(&mut self, pair: Address, token: Address, amount: U256) {
        let r = self.0.entry((pair, token)).or_default();
        *r = r.saturating_sub(amount);
    }

    /// `UniswapV2Library.getAmountOut`: 0.3% fee on the input.
    fn amount_out(&self, pair: Address, token_in: Address, token_out: Address, in_: U256) -> U256 {
        let r_in = self.0.get(&(pair, token_in)).copied().unwrap_or_default();
        let r_out = self.0.get(&(pair, token_out)).copied().unwrap_or_default();
        let in_with_fee = in_ * U256::from(997);
        in_with_fee * r_out / (r_in * U256::from(1000) + in_with_fee)
    }
}

impl Scenario<'_> {
    /// Tokens A and B, WETH, factory and router; a provider adds A/B and ETH/A liquidity;
    /// a trader swaps ETH for A, A for B, and B for ETH through A and WETH (two hops, the
    /// WETH unwrapped by the router); a last swap demands more than the pool gives and
    /// fails (mined, status 0).
    pub async fn uniswap_router(&self) -> Result<UniswapActivity, TestkitError> {
        let n = self.node;
        let (provider, trader) = (dev_account(4), dev_account(5));
        let mut x = Record::default();
        let mut reserves = Reserves::default();
        let weth = deploy::weth(n, provider).await?;
        let token_a = deploy::erc20(n, provider, "Token A", "TKA").await?;
        let token_b = deploy::erc20(n, provider, "Token B", "TKB").await?;
        let uni = deploy::uniswap_v2(n, provider, weth).await?;
        let router = uni.router;
        let (a, b, w) = (
            Asset::Erc20 { token: token_a },
            Asset::Erc20 { token: token_b },
            Asset::Erc20 { token: weth },
        );
        for (token, to, amount) in [
            (token_a, provider, eth(1_000_000_000)),
            (token_b, provider, eth(1_000_000_000)),
            (token_a, trader, eth(10_000_000)),
            (token_b, trader, eth(10_000_000)),
        ] {
            let tx = n
                .call_ok(
                    provider,
                    token,
                    U256::ZERO,
                    mintCall { to, amount }.abi_encode().into(),
                )
                .await?;
            x.transfers
                .push((tx, Address::ZERO, to, Asset::Erc20 { token }, amount));
        }
        for who in [provider, trader] {
            for token in [token_a, token_b] {
                let approve = abi::approveCall {
                    spender: router,
                    amount: U256::MAX,
                };
                n.call_ok(who, token, U256::ZERO, approve.abi_encode().into())
                    .await?;
            }
        }

        // Liquidity: 4000 A + 1000 B (the router creates the pair), then 10000 A + 100 ETH.
        // Both products are perfect squares, so the LP amounts are exact.
        let (in_a, in_b) = (eth(4_000_000), eth(1_000_000));
        let add = abi::addLiquidityCall {
            tokenA: token_a,
            tokenB: token_b,
            amountADesired: in_a,
            amountBDesired: in_b,
            amountAMin: U256::ZERO,
            amountBMin: U256::ZERO,
            to: provider,
            deadline: U256::MAX,
        };
        let tx = n
            .call_ok(provider, router, U256::ZERO, add.abi_encode().into())
            .await?;
        let pair_ab = found_pair(n, &uni, token_a, token_b).await?;
        x.transfers.push((tx, provider, pair_ab, a, in_a));
        x.transfers.push((tx, provider, pair_ab, b, in_b));
        lp_mint(&mut x, tx, pair_ab, provider, eth(2_000_000));
        reserves.add(pair_ab, token_a, in_a);
        reserves.add(pair_ab, token_b, in_b);

        let (in_a, in_eth) = (eth(10_000_000), eth(100_000));
        let add = abi::addLiquidityETHCall {
            token: token_a,
            amountTokenDesired: in_a,
            amountTokenMin: U256::ZERO,
            amountETHMin: U256::ZERO,
            to: provider,
            deadline: U256::MAX,
        };
        let tx = n
            .call_ok(provider, router, in_eth, add.abi_encode().into())
            .await?;
        let pair_weth_a = found_pair(n, &uni, weth, token_a).await?;
        x.transfers
            .push((tx, provider, router, Asset::Native, in_eth));
        x.transfers.push((tx, provider, pair_weth_a, a, in_a));
        x.transfers.push((tx, router, weth, Asset::Native, in_eth));
        x.conversions
            .push((tx, ConversionKind::Wrap, weth, router, in_eth));
        x.transfers.push((tx, router, pair_weth_a, w, in_eth));
        lp_mint(&mut x, tx, pair_weth_a, provider, eth(1_000_000));
        reserves.add(pair_weth_a, token_a, in_a);
        reserves.add(pair_weth_a, weth, in_eth);

        // ETH -> A: the router wraps the ETH and pays the pair in WETH.
        let mut swaps = Vec::new();
        let in_eth = eth(1000);
        let path = vec![weth, token_a];
        let out_a = reserves.amount_out(pair_weth_a, weth, token_a, in_eth);
        quote(n, router, in_eth, &path, &[in_eth, out_a]).await?;
        let swap = abi::swapExactETHForTokensCall {
            amountOutMin: out_a,
            path,
            to: trader,
            deadline: U256::MAX,
        };
        let tx = n
            .call_ok(trader, router, in_eth, swap.abi_encode().into())
            .await?;
        x.transfers
            .push((tx, trader, router, Asset::Native, in_eth));
        x.transfers.push((tx, router, weth, Asset::Native, in_eth));
        x.conversions
            .push((tx, ConversionKind::Wrap, weth, router, in_eth));
        x.transfers.push((tx, router, pair_weth_a, w, in_eth));
        x.transfers.push((tx, pair_weth_a, trader, a, out_a));
        x.conversions.push((
            tx,
            ConversionKind::UniswapV2Swap,
            pair_weth_a,
            router,
            in_eth,
        ));
        reserves.add(pair_weth_a, weth, in_eth);
        reserves.sub(pair_weth_a, token_a, out_a);
        swaps.push(tx);

        // A -> B.
        let in_a = eth(100_000);
        let path = vec![token_a, token_b];
        let out_b = reserves.amount_out(pair_ab, token_a, token_b, in_a);
        quote(n, router, in_a, &path, &[in_a, out_b]).await?;
        let swap = abi::swapExactTokensForTokensCall {
            amountIn: in_a,
            amountOutMin: out_b,
            path,
            to: trader,
            deadline: U256::MAX,
        };
        let tx = n
            .call_ok(trader, router, U256::ZERO, swap.abi_encode().into())
            .await?;
        x.transfers.push((tx, trader, pair_ab, a, in_a));
        x.transfers.push((tx, pair_ab, trader, b, out_b));
        x.conversions
            .push((tx, ConversionKind::UniswapV2Swap, pair_ab, router, in_a));
        reserves.add(pair_ab, token_a, in_a);
        reserves.sub(pair_ab, token_b, out_b);
        swaps.push(tx);

        // B -> A -> WETH -> ETH: the first pair pays the second directly, the router unwraps.
        let in_b = eth(50_000);
        let path = vec![token_b, token_a, weth];
        let mid_a = reserves.amount_out(pair_ab, token_b, token_a, in_b);
        let out_w = reserves.amount_out(pair_weth_a, token_a, weth, mid_a);
        quote(n, router, in_b, &path, &[in_b, mid_a, out_w]).await?;
        let swap = abi::swapExactTokensForETHCall {
            amountIn: in_b,
            amountOutMin: out_w,
            path,
            to: trader,
            deadline: U256::MAX,
        };
        let tx = n
            .call_ok(trader, router, U256::ZERO, swap.abi_encode().into())
            .await?;
        x.transfers.push((tx, trader, pair_ab, b, in_b));
        x.transfers.push((tx, pair_ab, pair_weth_a, a, mid_a));
        x.conversions
            .push((tx, ConversionKind::UniswapV2Swap, pair_ab, router, in_b));
        x.transfers.push((tx, pair_weth_a, router, w, out_w));
        x.conversions.push((
            tx,
            ConversionKind::UniswapV2Swap,
            pair_weth_a,
            router,
            mid_a,
        ));
        x.transfers.push((tx, weth, router, Asset::Native, out_w));
        x.conversions
            .push((tx, ConversionKind::Unwrap, weth, router, out_w));
        x.transfers.push((tx, router, trader, Asset::Native, out_w));
        reserves.add(pair_ab, token_b, in_b);
        reserves.sub(pair_ab, token_a, mid_a);
        reserves.add(pair_weth_a, token_a, mid_a);
        reserves.sub(pair_weth_a, weth, out_w);
        swaps.push(tx);

        // Slippage: asks for twice what 1 ETH buys; mined with a fixed gas limit, reverts.
        let in_eth = eth(1000);
        let out_a = reserves.amount_out(pair_weth_a, weth, token_a, in_eth);
        let swap = abi::swapExactETHForTokensCall {
            amountOutMin: out_a * U256::from(2),
            path: vec![weth, token_a],
            to: trader,
            deadline: U256::MAX,
        };
        let tx = n
            .send_failing(trader, router, in_eth, swap.abi_encode().into(), 300_000)
            .await?;
        x.failed.push(tx);

        Ok(UniswapActivity {
            uniswap: uni,
            token_a,
            token_b,
            pair_ab,
            pair_weth_a,
            provider,
            trader,
            swaps,
            record: x,
        })
    }
}

/// The LP token transfers of a pair's first `mint`: `MINIMUM_LIQUIDITY` locked at the zero
/// address, the rest (sqrt of the reserves' product, less the locked part) to `to`.
fn lp_mint(x: &mut Record, tx: B256, pair: Address, to: Address, sqrt_k: U256) {
    let lp = Asset::Erc20 { token: pair };
    let locked = U256::from(MINIMUM_LIQUIDITY);
    x.transfers
        .push((tx, Address::ZERO, Address::ZERO, lp, locked));
    x.transfers
        .push((tx, Address::ZERO, to, lp, sqrt_k - locked));
}

/// The factory's pair for `a`/`b`, which must be where the router computes it.
async fn found_pair(
    n: &Anvil,
    uni: &UniswapV2,
    a: Address,
    b: Address,
) -> Result<Address, TestkitError> {
    let call = abi::getPairCall {
        tokenA: a,
        tokenB: b,
    };
    let out = n.call(uni.factory, call.abi_encode().into()).await?;
    let pair = abi::getPairCall::abi_decode_returns(&out)
        .map_err(|e| TestkitError::Scenario(format!("getPair({a}, {b}): {e}")))?;
    let computed = uni.pair_for(a, b);
    if pair == Address::ZERO || pair != computed {
        return Err(TestkitError::Scenario(format!(
            "pair of {a}/{b}: factory says {pair}, the router computes {computed}"
        )));
    }
    Ok(pair)
}

/// The router's quote must be what the scenario computed.
async fn quote(
    n: &Anvil,
    router: Address,
    amount_in: U256,
    path: &[Address],
    want: &[U256],
) -> Result<(), TestkitError> {
    let call = abi::getAmountsOutCall {
        amountIn: amount_in,
        path: path.to_vec(),
    };
    let out: Bytes = n.call(router, call.abi_encode().into()).await?;
    let amounts = abi::getAmountsOutCall::abi_decode_returns(&out)
        .map_err(|e| TestkitError::Scenario(format!("getAmountsOut: {e}")))?;
    if amounts != want {
        return Err(TestkitError::Scenario(format!(
            "router quotes {amounts:?} for {path:?}, the scenario computed {want:?}"
        )));
    }
    Ok(())
}
