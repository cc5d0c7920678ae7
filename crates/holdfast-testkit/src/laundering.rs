//! A Lazarus-style laundering on a local anvil, for the tracer's end-to-end test: a theft,
//! three tranches through fresh addresses, a peel chain, a mule that already held clean
//! funds, a Uniswap V2 swap through the router, a WETH wrap and unwrap, deposits into
//! addresses the test labels as exchanges, and decoys (an address-poisoning look-alike
//! receiving a zero-value `transferFrom` "from" the thief, a fake token, dust from
//! unrelated senders).
//!
//! Fresh addresses are impersonated (`anvil_impersonateAccount`): they pay their gas from what
//! they received, which the transfer record does not show, so every sender keeps change.
//! The amounts each exchange deposit must carry under FIFO and haircut are computed here
//! from the scenario's own numbers ([`Laundering::expected`]), not read from the chain; the
//! swap's output is the constant-product formula's, checked against the router's quote.

use std::collections::BTreeMap;

use alloy::sol_types::SolCall;
use alloy_primitives::{Address, B256, U256, keccak256};
use holdfast_primitives::Asset;
use serde_json::json;

use crate::deploy::{self, UniswapV2};
use crate::{Anvil, TestkitError, dev_account};

mod abi {
    alloy::sol! {
        function mint(address to, uint256 amount) external;
        function approve(address spender, uint256 amount) external returns (bool);
        function transfer(address to, uint256 amount) external returns (bool);
        function transferFrom(address from, address to, uint256 amount) external returns (bool);
        function deposit() external payable;
        function withdraw(uint256 wad) external;
        function addLiquidityETH(address token, uint256 amountTokenDesired, uint256 amountTokenMin, uint256 amountETHMin, address to, uint256 deadline) external payable returns (uint256 amountToken, uint256 amountETH, uint256 liquidity);
        function swapExactETHForTokens(uint256 amountOutMin, address[] path, address to, uint256 deadline) external payable returns (uint256[] amounts);
        function getAmountsOut(uint256 amountIn, address[] path) external view returns (uint256[] amounts);
    }
}

/// Thousandths of an ether, in wei.
pub fn milli(m: u64) -> U256 {
    U256::from(m) * U256::from(1_000_000_000_000_000u64)
}

/// A fresh address for a role (no key; impersonated on anvil).
pub fn fresh(role: &str) -> Address {
    Address::from_slice(&keccak256(format!("holdfast laundering {role}"))[12..])
}

/// What the laundering did.
#[derive(Debug, Clone)]
pub struct Laundering {
    pub uniswap: UniswapV2,
    pub weth: Address,
    pub token: Address,
    pub fake_token: Address,
    pub victim: Address,
    pub thief: Address,
    /// The theft transaction (victim → thief).
    pub theft: B256,
    pub theft_amount: U256,
    /// Exchange deposit addresses by exchange name.
    pub deposits: BTreeMap<&'static str, Address>,
    /// The look-alike of the Binance deposit (address poisoning).
    pub look_alike: Address,
    /// Token received from the swap (constant product, equal to the router's quote).
    pub swapped: U256,
    /// Last block of the scenario.
    pub last_block: u64,
}

/// One haircut step: `v` leaves an account holding `taint` of `balance`.
fn haircut(v: U256, taint: U256, balance: U256) -> (U256, U256, U256) {
    let base = balance.max(taint);
    let out = v.min(base);
    let take = taint * out / base;
    (take, taint - take, balance.saturating_sub(v))
}

impl Laundering {
    /// Deploys WETH, Uniswap V2 and a token with ETH liquidity, then launders.
    pub async fn run(node: &Anvil) -> Result<Laundering, TestkitError> {
        let deployer = dev_account(0);
        let victim = dev_account(1);
        let bystander = dev_account(5);
        let duster = dev_account(6);
        let poisoner = dev_account(7);
        let weth = deploy::weth(node, deployer).await?;
        let uniswap = deploy::uniswap_v2(node, deployer, weth).await?;
        let token = deploy::erc20(node, deployer, "Tether-ish", "TKN").await?;
        let fake_token = deploy::erc20(node, poisoner, "Tether USD", "USDT").await?;

        // Liquidity: 100 ETH against 200,000 TKN.
        let liquidity_token = milli(200_000_000);
        let liquidity_eth = milli(100_000);
        let mint = abi::mintCall {
            to: deployer,
            amount: liquidity_token,
        };
        node.call_ok(deployer, token, U256::ZERO, mint.abi_encode().into())
            .await?;
        let approve = abi::approveCall {
            spender: uniswap.router,
            amount: U256::MAX,
        };
        node.call_ok(deployer, token, U256::ZERO, approve.abi_encode().into())
            .await?;
        let add = abi::addLiquidityETHCall {
            token,
            amountTokenDesired: liquidity_token,
            amountTokenMin: U256::ZERO,
            amountETHMin: U256::ZERO,
            to: deployer,
            deadline: U256::MAX,
        };
        node.call_ok(
            deployer,
            uniswap.router,
            liquidity_eth,
            add.abi_encode().into(),
        )
        .await?;

        let thief = fresh("thief");
        let (t1, t2, t3) = (fresh("tranche 1"), fresh("tranche 2"), fresh("tranche 3"));
        let (p1, p2, p3) = (fresh("peel 1"), fresh("peel 2"), fresh("peel 3"));
        let mule = fresh("mule");
        let unwrapper = fresh("unwrapper");
        let deposits: BTreeMap<&'static str, Address> = [
            ("Binance", fresh("binance deposit")),
            ("Kraken", fresh("kraken deposit")),
            ("OKX", fresh("okx deposit")),
            ("Huobi", fresh("huobi deposit")),
        ]
        .into_iter()
        .collect();
        let binance = deposits["Binance"];
        // Same first and last bytes as the Binance deposit.
        let mut look = binance.0.0;
        look[4..16].copy_from_slice(&keccak256("poison")[..12]);
        let look_alike = Address::from(look);
        for a in [thief, t1, t2, t3, p1, p2, p3, mule, unwrapper] {
            node.rpc("anvil_impersonateAccount", json!([a])).await?;
        }
        let send = |from: Address, to: Address, m: u64| async move {
            node.call_ok(from, to, milli(m), Default::default()).await
        };

        // The mule holds clean funds before it is used.
        send(bystander, mule, 10_000).await?;
        // The theft, then tranches.
        let theft_amount = milli(100_000);
        let theft = node
            .call_ok(victim, thief, theft_amount, Default::default())
            .await?;
        send(thief, t1, 30_000).await?;
        send(thief, t2, 30_000).await?;
        send(thief, t3, 39_000).await?;
        // Peel chain: small deposits peeled off at each hop, the rest moves on.
        send(t1, p1, 29_900).await?;
        send(p1, binance, 2_000).await?;
        send(p1, p2, 27_800).await?;
        send(p2, deposits["Kraken"], 3_000).await?;
        send(p2, p3, 24_700).await?;
        send(duster, p3, 1).await?; // dust from an unrelated sender
        send(p3, binance, 24_600).await?;
        // The mule mixes the tranche with its clean funds and deposits twice.
        send(t2, mule, 29_900).await?;
        send(mule, deposits["OKX"], 20_000).await?;
        send(mule, deposits["OKX"], 15_000).await?;
        // Swap 10 ETH for the token through the router (WETH wrapped inside).
        let in_eth = milli(10_000);
        let in_fee = in_eth * U256::from(997);
        let swapped = in_fee * liquidity_token / (liquidity_eth * U256::from(1000) + in_fee);
        let quote = abi::getAmountsOutCall {
            amountIn: in_eth,
            path: vec![weth, token],
        };
        let q = node.call(uniswap.router, quote.abi_encode().into()).await?;
        let q = abi::getAmountsOutCall::abi_decode_returns(&q).map_err(|e| TestkitError::Rpc {
            method: "getAmountsOut".into(),
            message: e.to_string(),
        })?;
        if q.last() != Some(&swapped) {
            return Err(TestkitError::Tx {
                tx: B256::ZERO,
                what: format!("router quotes {q:?}, the constant product gives {swapped}"),
            });
        }
        let swap = abi::swapExactETHForTokensCall {
            amountOutMin: swapped,
            path: vec![weth, token],
            to: t3,
            deadline: U256::MAX,
        };
        node.call_ok(t3, uniswap.router, in_eth, swap.abi_encode().into())
            .await?;
        let to_huobi = abi::transferCall {
            to: deposits["Huobi"],
            amount: swapped,
        };
        node.call_ok(t3, token, U256::ZERO, to_huobi.abi_encode().into())
            .await?;
        // Wrap 20 ETH, hand the WETH to a fresh address, unwrap there, deposit.
        node.call_ok(
            t3,
            weth,
            milli(20_000),
            abi::depositCall {}.abi_encode().into(),
        )
        .await?;
        let hand = abi::transferCall {
            to: unwrapper,
            amount: milli(20_000),
        };
        node.call_ok(t3, weth, U256::ZERO, hand.abi_encode().into())
            .await?;
        send(duster, unwrapper, 50).await?; // dust that pays the unwrapper's gas
        let unwrap = abi::withdrawCall { wad: milli(20_000) };
        node.call_ok(unwrapper, weth, U256::ZERO, unwrap.abi_encode().into())
            .await?;
        send(unwrapper, binance, 19_900).await?;

        // Decoys: a zero-value transferFrom "from" the thief to the look-alike (anyone may
        // move zero tokens of anyone's), a fake token sent to the thief's tranche and on to
        // the look-alike, dust to the look-alike.
        let zero = abi::transferFromCall {
            from: thief,
            to: look_alike,
            amount: U256::ZERO,
        };
        node.call_ok(poisoner, token, U256::ZERO, zero.abi_encode().into())
            .await?;
        let fake = abi::mintCall {
            to: t1,
            amount: milli(1_000_000),
        };
        node.call_ok(poisoner, fake_token, U256::ZERO, fake.abi_encode().into())
            .await?;
        let fake_on = abi::transferCall {
            to: look_alike,
            amount: milli(1_000_000),
        };
        node.call_ok(t1, fake_token, U256::ZERO, fake_on.abi_encode().into())
            .await?;
        send(poisoner, look_alike, 1).await?;

        Ok(Laundering {
            uniswap,
            weth,
            token,
            fake_token,
            victim,
            thief,
            theft,
            theft_amount,
            deposits,
            look_alike,
            swapped,
            last_block: node.block_number().await?,
        })
    }

    /// Tainted amounts each exchange deposit must receive, by exchange, for "fifo" or
    /// "haircut" (anything else: `None`).
    pub fn expected(&self, policy: &str) -> Option<BTreeMap<&'static str, Vec<(Asset, U256)>>> {
        let token = Asset::Erc20 { token: self.token };
        let mut m: BTreeMap<&'static str, Vec<(Asset, U256)>> = BTreeMap::new();
        match policy {
            // Fresh addresses hold only stolen funds; the exceptions are the mule (10 ETH
            // clean first) and the unwrapper (0.05 ETH dust first), whose first outflows
            // take the clean funds.
            "fifo" => {
                let binance = milli(2_000) + milli(24_600) + (milli(19_900) - milli(50));
                m.insert("Binance", vec![(Asset::Native, binance)]);
                m.insert("Kraken", vec![(Asset::Native, milli(3_000))]);
                m.insert(
                    "OKX",
                    vec![(
                        Asset::Native,
                        (milli(20_000) - milli(10_000)) + milli(15_000),
                    )],
                );
            }
            "haircut" => {
                // p3 holds 24.7 stolen of 24.701 after the dust.
                let (p3, _, _) = haircut(milli(24_600), milli(24_700), milli(24_701));
                // The unwrapper holds 20 stolen of 20.05.
                let (u, _, _) = haircut(milli(19_900), milli(20_000), milli(20_050));
                m.insert("Binance", vec![(Asset::Native, milli(2_000) + p3 + u)]);
                m.insert("Kraken", vec![(Asset::Native, milli(3_000))]);
                // The mule: 29.9 stolen of 39.9, then 20 and 15 leave.
                let (a, t, b) = haircut(milli(20_000), milli(29_900), milli(39_900));
                let (c, _, _) = haircut(milli(15_000), t, b);
                m.insert("OKX", vec![(Asset::Native, a + c)]);
            }
            _ => return None,
        }
        m.insert("Huobi", vec![(token, self.swapped)]);
        Some(m)
    }
}
