//! Realistic activity on an anvil, with the transfers and conversions a correct extraction
//! must find (and the ones it must not).
//!
//! - [`Scenario::run`] (here): ETH, WETH, internal transfers through `Forwarder`, a failed
//!   transaction, a reverted inner call, a Uniswap V2 pair driven directly, NFTs.
//! - `uniswap`: [`Scenario::uniswap_router`], Uniswap V2 through its router (liquidity,
//!   ETH to token, token to token, a two-hop swap to ETH, a swap failing on slippage).
//! - `safe`: [`Scenario::safe_heist`] and [`Scenario::safe_activity`], Safe executions and
//!   the Bybit mechanism.

mod safe;
mod uniswap;

pub use safe::{SafeActivity, SafeHeist};
pub use uniswap::UniswapActivity;

use alloy::sol_types::{SolCall, SolValue};
use alloy_primitives::{Address, B256, Bytes, U256};
use holdfast_primitives::{Asset, ConversionKind};

use crate::{Anvil, Artifact, TestkitError, dev_account};

alloy::sol! {
    function deposit() external payable;
    function withdraw(uint256 wad) external;
    function transfer(address to, uint256 amount) external returns (bool);
    function mint(address to, uint256 amount) external;
    function forward(address to) external payable;
    function forwardAndSwallowRevert(address to) external payable;
    function split(address a, address via, address b) external payable;
    function fail() external payable;
    function createPair(address tokenA, address tokenB) external returns (address pair);
    function getPair(address tokenA, address tokenB) external view returns (address pair);
    function swap(uint256 amount0Out, uint256 amount1Out, address to, bytes data) external;
    function transferFrom(address from, address to, uint256 tokenId) external;
    function safeTransferFrom(address from, address to, uint256 id, uint256 amount, bytes data) external;
    function mintBatch(address to, uint256[] ids, uint256[] amounts, bytes data) external;
}

mod erc721 {
    alloy::sol! {
        function mint(address to) external;
    }
}

mod erc1155 {
    alloy::sol! {
        function mint(address to, uint256 id, uint256 amount, bytes data) external;
    }
}

mod pair {
    alloy::sol! {
        function mint(address to) external returns (uint256 liquidity);
    }
}

/// One expected transfer: (tx, from, to, asset, amount).
pub type ExpectedTransfer = (B256, Address, Address, Asset, U256);

/// One expected conversion: (tx, kind, venue, account, amount in). The account is who gave
/// the input: the WETH depositor or withdrawer, the swap's `sender` (the router, for
/// router swaps).
pub type ExpectedConversion = (B256, ConversionKind, Address, Address, U256);

/// A native movement inside a frame that reverted in a successful transaction:
/// (tx, from, to, amount). It must not be extracted.
pub type RevertedFrame = (B256, Address, Address, U256);

/// What a scenario step moved, and what it tried to move but must not count.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    /// Transfers that must be extracted, each exactly once, in the order they happened.
    pub transfers: Vec<ExpectedTransfer>,
    pub conversions: Vec<ExpectedConversion>,
    /// Transactions that failed (status 0): nothing of them may be extracted.
    pub failed: Vec<B256>,
    pub reverted_frames: Vec<RevertedFrame>,
}

/// What the scenario did.
#[derive(Debug, Clone, Default)]
pub struct Expected {
    /// Transfers that must be extracted (each exactly once).
    pub transfers: Vec<ExpectedTransfer>,
    /// Conversions that must be recorded.
    pub conversions: Vec<ExpectedConversion>,
    /// Transactions that failed: nothing of them may be extracted.
    pub failed: Vec<B256>,
    /// Native movements in frames that reverted inside successful transactions.
    pub reverted_frames: Vec<RevertedFrame>,
    /// Transfers of the pair's LP token at its first `mint` (not listed in `transfers`:
    /// their amounts come from the pair's square-root arithmetic).
    pub lp_mint_transfers: usize,
    pub weth: Address,
    pub token: Address,
    pub pair: Address,
    /// The last block the scenario produced.
    pub last_block: u64,
}

/// `milli` thousandths of an ether (or of an 18-decimal token), in wei.
fn eth(milli: u64) -> U256 {
    U256::from(milli) * U256::from(10u64).pow(U256::from(15))
}

/// Builds activity on a node.
#[derive(Debug)]
pub struct Scenario<'a> {
    node: &'a Anvil,
}

impl<'a> Scenario<'a> {
    pub fn new(node: &'a Anvil) -> Self {
        Scenario { node }
    }

    /// ETH sends, WETH wraps/unwraps and transfers, internal and nested internal ETH
    /// transfers, a reverted internal call in a successful transaction, a failed
    /// transaction, an ERC-20 with a Uniswap V2 pair (liquidity and a swap), ERC-721 and
    /// ERC-1155 (single and batch) transfers.
    pub async fn run(&self) -> Result<Expected, TestkitError> {
        let n = self.node;
        let (a, b, c) = (dev_account(0), dev_account(1), dev_account(2));
        let mut x = Expected::default();
        let native = Asset::Native;

        // Plain ETH send.
        let tx = n.call_ok(a, b, eth(1000), Bytes::new()).await?;
        x.transfers.push((tx, a, b, native, eth(1000)));

        // WETH: wrap, transfer, unwrap (the unwrap pays ETH out in an internal call).
        let weth = n
            .deploy(
                a,
                &Artifact::load("uniswap-v2-periphery", "WETH9")?.bytecode,
                &[],
            )
            .await?;
        x.weth = weth;
        let weth_asset = Asset::Erc20 { token: weth };
        let tx = n
            .call_ok(a, weth, eth(5000), depositCall {}.abi_encode().into())
            .await?;
        x.transfers.push((tx, a, weth, native, eth(5000)));
        x.conversions
            .push((tx, ConversionKind::Wrap, weth, a, eth(5000)));
        let tx = n
            .call_ok(
                a,
                weth,
                U256::ZERO,
                transferCall {
                    to: b,
                    amount: eth(2000),
                }
                .abi_encode()
                .into(),
            )
            .await?;
        x.transfers.push((tx, a, b, weth_asset, eth(2000)));
        let tx = n
            .call_ok(
                b,
                weth,
                U256::ZERO,
                withdrawCall { wad: eth(1000) }.abi_encode().into(),
            )
            .await?;
        x.transfers.push((tx, weth, b, native, eth(1000)));
        x.conversions
            .push((tx, ConversionKind::Unwrap, weth, b, eth(1000)));

        // Internal transfers through our Forwarder.
        let fwd_code = Artifact::load("holdfast", "Forwarder")?.bytecode;
        let f1 = n.deploy(a, &fwd_code, &[]).await?;
        let f2 = n.deploy(a, &fwd_code, &[]).await?;
        let tx = n
            .call_ok(a, f1, eth(300), forwardCall { to: c }.abi_encode().into())
            .await?;
        x.transfers.push((tx, a, f1, native, eth(300)));
        x.transfers.push((tx, f1, c, native, eth(300)));
        let tx = n
            .call_ok(
                a,
                f1,
                eth(200),
                forwardAndSwallowRevertCall { to: c }.abi_encode().into(),
            )
            .await?;
        x.transfers.push((tx, a, f1, native, eth(200)));
        x.reverted_frames.push((tx, f1, f1, eth(200)));
        x.reverted_frames.push((tx, f1, c, eth(200)));
        let tx = n
            .call_ok(
                a,
                f1,
                eth(1000),
                splitCall {
                    a: b,
                    via: f2,
                    b: c,
                }
                .abi_encode()
                .into(),
            )
            .await?;
        x.transfers.push((tx, a, f1, native, eth(1000)));
        x.transfers.push((tx, f1, b, native, eth(500)));
        x.transfers.push((tx, f1, f2, native, eth(500)));
        x.transfers.push((tx, f2, c, native, eth(500)));
        // A failed transaction (mined with a fixed gas limit): its value does not move.
        let (tx, r) = n
            .send(
                a,
                Some(f1),
                eth(100),
                failCall {}.abi_encode().into(),
                Some(100_000),
            )
            .await?;
        if r["status"] != serde_json::json!("0x0") {
            return Err(TestkitError::Tx {
                tx,
                what: "expected to fail".into(),
            });
        }
        x.failed.push(tx);

        // An ERC-20, a Uniswap V2 pair with liquidity, and a swap WETH -> token.
        let token_code =
            Artifact::load("openzeppelin-contracts", "ERC20PresetMinterPauser")?.bytecode;
        let token = n
            .deploy(
                a,
                &token_code,
                &("Holdfast Test Token".to_owned(), "HFT".to_owned()).abi_encode_params(),
            )
            .await?;
        x.token = token;
        let token_asset = Asset::Erc20 { token };
        let tx = n
            .call_ok(
                a,
                token,
                U256::ZERO,
                mintCall {
                    to: a,
                    amount: eth(1_000_000),
                }
                .abi_encode()
                .into(),
            )
            .await?;
        x.transfers
            .push((tx, Address::ZERO, a, token_asset, eth(1_000_000)));
        let factory = n
            .deploy(
                a,
                &Artifact::load("uniswap-v2-core", "UniswapV2Factory")?.bytecode,
                &a.abi_encode(),
            )
            .await?;
        n.call_ok(
            a,
            factory,
            U256::ZERO,
            createPairCall {
                tokenA: weth,
                tokenB: token,
            }
            .abi_encode()
            .into(),
        )
        .await?;
        let pair: Address = {
            let out = n.rpc("eth_call", serde_json::json!([{"to": factory, "data": Bytes::from(getPairCall { tokenA: weth, tokenB: token }.abi_encode())}, "latest"])).await?;
            let bytes: Bytes =
                serde_json::from_value(out).map_err(|e| TestkitError::Artifact(e.to_string()))?;
            Address::from_slice(&bytes[12..32])
        };
        x.pair = pair;
        let tx = n
            .call_ok(a, weth, eth(2000), depositCall {}.abi_encode().into())
            .await?;
        x.transfers.push((tx, a, weth, native, eth(2000)));
        x.conversions
            .push((tx, ConversionKind::Wrap, weth, a, eth(2000)));
        let tx = n
            .call_ok(
                a,
                weth,
                U256::ZERO,
                transferCall {
                    to: pair,
                    amount: eth(1000),
                }
                .abi_encode()
                .into(),
            )
            .await?;
        x.transfers.push((tx, a, pair, weth_asset, eth(1000)));
        let tx = n
            .call_ok(
                a,
                token,
                U256::ZERO,
                transferCall {
                    to: pair,
                    amount: eth(100_000),
                }
                .abi_encode()
                .into(),
            )
            .await?;
        x.transfers.push((tx, a, pair, token_asset, eth(100_000)));
        n.call_ok(
            a,
            pair,
            U256::ZERO,
            pair::mintCall { to: a }.abi_encode().into(),
        )
        .await?;
        // MINIMUM_LIQUIDITY to the zero address, the rest to `a`.
        x.lp_mint_transfers = 2;
        // Swap 0.1 WETH in for tokens out (constant product with the 0.3% fee).
        let amount_in = eth(100);
        let (reserve_in, reserve_out) = (eth(1000), eth(100_000));
        let fee_in = amount_in * U256::from(997);
        let amount_out = fee_in * reserve_out / (reserve_in * U256::from(1000) + fee_in);
        let tx = n
            .call_ok(
                a,
                weth,
                U256::ZERO,
                transferCall {
                    to: pair,
                    amount: amount_in,
                }
                .abi_encode()
                .into(),
            )
            .await?;
        x.transfers.push((tx, a, pair, weth_asset, amount_in));
        let weth_is_token0 = weth < token;
        let (out0, out1) = if weth_is_token0 {
            (U256::ZERO, amount_out)
        } else {
            (amount_out, U256::ZERO)
        };
        let tx = n
            .call_ok(
                a,
                pair,
                U256::ZERO,
                swapCall {
                    amount0Out: out0,
                    amount1Out: out1,
                    to: b,
                    data: Bytes::new(),
                }
                .abi_encode()
                .into(),
            )
            .await?;
        x.transfers.push((tx, pair, b, token_asset, amount_out));
        x.conversions
            .push((tx, ConversionKind::UniswapV2Swap, pair, a, amount_in));

        // NFTs: ERC-721 mint and transfer, ERC-1155 single and batch.
        let nft = n
            .deploy(
                a,
                &Artifact::load("openzeppelin-contracts", "ERC721PresetMinterPauserAutoId")?
                    .bytecode,
                &(
                    "Holdfast NFT".to_owned(),
                    "HFN".to_owned(),
                    "https://example.invalid/".to_owned(),
                )
                    .abi_encode_params(),
            )
            .await?;
        let tx = n
            .call_ok(
                a,
                nft,
                U256::ZERO,
                erc721::mintCall { to: a }.abi_encode().into(),
            )
            .await?;
        x.transfers.push((
            tx,
            Address::ZERO,
            a,
            Asset::Erc721 {
                token: nft,
                id: U256::ZERO,
            },
            U256::from(1),
        ));
        let tx = n
            .call_ok(
                a,
                nft,
                U256::ZERO,
                transferFromCall {
                    from: a,
                    to: c,
                    tokenId: U256::ZERO,
                }
                .abi_encode()
                .into(),
            )
            .await?;
        x.transfers.push((
            tx,
            a,
            c,
            Asset::Erc721 {
                token: nft,
                id: U256::ZERO,
            },
            U256::from(1),
        ));
        let multi = n
            .deploy(
                a,
                &Artifact::load("openzeppelin-contracts", "ERC1155PresetMinterPauser")?.bytecode,
                &("https://example.invalid/{id}".to_owned(),).abi_encode_params(),
            )
            .await?;
        let tx = n
            .call_ok(
                a,
                multi,
                U256::ZERO,
                erc1155::mintCall {
                    to: a,
                    id: U256::from(7),
                    amount: U256::from(50),
                    data: Bytes::new(),
                }
                .abi_encode()
                .into(),
            )
            .await?;
        x.transfers.push((
            tx,
            Address::ZERO,
            a,
            Asset::Erc1155 {
                token: multi,
                id: U256::from(7),
            },
            U256::from(50),
        ));
        let tx = n
            .call_ok(
                a,
                multi,
                U256::ZERO,
                safeTransferFromCall {
                    from: a,
                    to: b,
                    id: U256::from(7),
                    amount: U256::from(20),
                    data: Bytes::new(),
                }
                .abi_encode()
                .into(),
            )
            .await?;
        x.transfers.push((
            tx,
            a,
            b,
            Asset::Erc1155 {
                token: multi,
                id: U256::from(7),
            },
            U256::from(20),
        ));
        let tx = n
            .call_ok(
                a,
                multi,
                U256::ZERO,
                mintBatchCall {
                    to: c,
                    ids: vec![U256::from(1), U256::from(2)],
                    amounts: vec![U256::from(3), U256::from(4)],
                    data: Bytes::new(),
                }
                .abi_encode()
                .into(),
            )
            .await?;
        x.transfers.push((
            tx,
            Address::ZERO,
            c,
            Asset::Erc1155 {
                token: multi,
                id: U256::from(1),
            },
            U256::from(3),
        ));
        x.transfers.push((
            tx,
            Address::ZERO,
            c,
            Asset::Erc1155 {
                token: multi,
                id: U256::from(2),
            },
            U256::from(4),
        ));

        x.last_block = n.block_number().await?;
        Ok(x)
    }

    /// `count` more plain ETH sends between dev accounts (dense activity for backfills),
    /// `per_block` per block.
    pub async fn eth_sends(&self, count: usize) -> Result<Vec<ExpectedTransfer>, TestkitError> {
        let mut out = Vec::with_capacity(count);
        for i in 0..count {
            let (from, to) = (dev_account(3 + i % 3), dev_account(6 + i % 4));
            let amount = U256::from(1_000_000_000u64 + i as u64);
            let tx = self.node.call_ok(from, to, amount, Bytes::new()).await?;
            out.push((tx, from, to, Asset::Native, amount));
        }
        Ok(out)
    }
}
