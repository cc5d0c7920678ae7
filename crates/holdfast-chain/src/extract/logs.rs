//! Token transfers and conversions from receipt logs.

use alloy::rpc::types::Log;
use alloy::sol_types::SolEvent;
use alloy_primitives::{Address, B256, U256};
use holdfast_primitives::{Asset, Conversion, ConversionKind, Position, Transfer};

use super::{BlockContext, ExtractError};

mod events {
    alloy::sol! {
    event Transfer(address indexed from, address indexed to, uint256 value);
    event TransferSingle(address indexed operator, address indexed from, address indexed to, uint256 id, uint256 value);
    event TransferBatch(address indexed operator, address indexed from, address indexed to, uint256[] ids, uint256[] values);
    event Deposit(address indexed dst, uint256 wad);
    event Withdrawal(address indexed src, uint256 wad);
    event Swap(address indexed sender, uint256 amount0In, uint256 amount1In, uint256 amount0Out, uint256 amount1Out, address indexed to);
    }
}
use events::{Deposit, Swap, TransferBatch, TransferSingle, Withdrawal};

/// Most items of one ERC-1155 batch turned into transfers; a batch is bounded by gas anyway,
/// and positions number items with 16 bits.
const MAX_BATCH_ITEMS: usize = 4096;

/// A Uniswap V2 pair's `Swap`, waiting for the pair's tokens (`token0()`, `token1()`) to
/// become a [`Conversion`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwapEvent {
    pub pair: Address,
    pub tx_hash: B256,
    pub tx_index: u32,
    pub log_index: u32,
    pub sender: Address,
    pub to: Address,
    pub amount0_in: U256,
    pub amount1_in: U256,
    pub amount0_out: U256,
    pub amount1_out: U256,
}

/// A pair's two tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PairTokens {
    pub token0: Address,
    pub token1: Address,
}

impl SwapEvent {
    /// The swap as a conversion: the token paid in to the token paid out. `None` for a swap
    /// that pays out what it takes in (a flash loan repaid in kind) or moves nothing.
    pub fn conversion(&self, ctx: &BlockContext, tokens: PairTokens) -> Option<Conversion> {
        let (asset_in, amount_in) = match (self.amount0_in.is_zero(), self.amount1_in.is_zero()) {
            (false, _) => (tokens.token0, self.amount0_in),
            (true, false) => (tokens.token1, self.amount1_in),
            (true, true) => return None,
        };
        let (asset_out, amount_out) = match (self.amount0_out.is_zero(), self.amount1_out.is_zero())
        {
            (false, _) => (tokens.token0, self.amount0_out),
            (true, false) => (tokens.token1, self.amount1_out),
            (true, true) => return None,
        };
        (asset_in != asset_out).then_some(Conversion {
            chain_id: ctx.chain_id,
            block_number: ctx.block.number,
            block_hash: ctx.block.hash,
            tx_hash: self.tx_hash,
            tx_index: self.tx_index,
            log_index: self.log_index,
            kind: ConversionKind::UniswapV2Swap,
            venue: self.pair,
            account: self.sender,
            recipient: self.to,
            asset_in: Asset::Erc20 { token: asset_in },
            amount_in,
            asset_out: Asset::Erc20 { token: asset_out },
            amount_out,
        })
    }
}

/// What a block's logs yield.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogOutput {
    pub transfers: Vec<Transfer>,
    /// WETH-style wraps and unwraps.
    pub conversions: Vec<Conversion>,
    /// Uniswap V2 swaps, to be completed with their pairs' tokens.
    pub swaps: Vec<SwapEvent>,
    /// Logs with a known event signature whose layout does not decode (any contract can emit
    /// any event): skipped, counted.
    pub undecodable: usize,
}

/// Token transfers, wraps/unwraps and swaps from the block's logs (in log order).
pub fn token_transfers(ctx: &BlockContext, logs: &[Log]) -> Result<LogOutput, ExtractError> {
    let mut out = LogOutput::default();
    for log in logs.iter().filter(|l| !l.removed) {
        let Some(&topic0) = log.topics().first() else {
            continue;
        };
        let (tx_hash, tx_index, log_index) = match (
            log.transaction_hash,
            log.transaction_index,
            log.log_index,
        ) {
            (Some(h), Some(i), Some(l)) => (h, i, l),
            _ => {
                return Err(ExtractError::BadLog {
                    block: ctx.block.number,
                    tx: log.transaction_hash.unwrap_or_default(),
                    log_index: log.log_index.unwrap_or_default(),
                    reason: "the node returned a log without its transaction hash, transaction index or log index".into(),
                });
            }
        };
        let (Ok(tx_index), Ok(log_index)) = (u32::try_from(tx_index), u32::try_from(log_index))
        else {
            return Err(ExtractError::BadLog {
                block: ctx.block.number,
                tx: tx_hash,
                log_index,
                reason: "index out of range".into(),
            });
        };
        let at = At {
            ctx,
            tx_hash,
            tx_index,
            log_index,
            venue: log.address(),
        };
        let decoded = match topic0 {
            events::Transfer::SIGNATURE_HASH => at.erc20_or_721(log, &mut out),
            TransferSingle::SIGNATURE_HASH => at.erc1155_single(log, &mut out),
            TransferBatch::SIGNATURE_HASH => at.erc1155_batch(log, &mut out),
            Deposit::SIGNATURE_HASH => Deposit::decode_raw_log(log.topics(), &log.data().data)
                .ok()
                .map(|d| {
                    out.conversions
                        .push(at.wrap(ConversionKind::Wrap, d.dst, d.wad));
                }),
            Withdrawal::SIGNATURE_HASH => {
                Withdrawal::decode_raw_log(log.topics(), &log.data().data)
                    .ok()
                    .map(|w| {
                        out.conversions
                            .push(at.wrap(ConversionKind::Unwrap, w.src, w.wad));
                    })
            }
            Swap::SIGNATURE_HASH => Swap::decode_raw_log(log.topics(), &log.data().data)
                .ok()
                .map(|s| {
                    out.swaps.push(SwapEvent {
                        pair: at.venue,
                        tx_hash,
                        tx_index,
                        log_index,
                        sender: s.sender,
                        to: s.to,
                        amount0_in: s.amount0In,
                        amount1_in: s.amount1In,
                        amount0_out: s.amount0Out,
                        amount1_out: s.amount1Out,
                    });
                }),
            _ => Some(()),
        };
        if decoded.is_none() {
            tracing::debug!(target: "chain::extract", block = ctx.block.number, %tx_hash, log_index, "undecodable token event skipped");
            out.undecodable += 1;
        }
    }
    Ok(out)
}

/// Where a log sits, for building records from it.
struct At<'a> {
    ctx: &'a BlockContext,
    tx_hash: B256,
    tx_index: u32,
    log_index: u32,
    venue: Address,
}

impl At<'_> {
    fn push(
        &self,
        out: &mut LogOutput,
        item: u16,
        from: Address,
        to: Address,
        asset: Asset,
        amount: U256,
    ) {
        out.transfers.push(Transfer {
            chain_id: self.ctx.chain_id,
            block_number: self.ctx.block.number,
            block_hash: self.ctx.block.hash,
            timestamp: self.ctx.block.timestamp,
            tx_hash: self.tx_hash,
            tx_index: self.tx_index,
            position: Position::Log {
                log_index: self.log_index,
                item,
            },
            from,
            to,
            asset,
            amount,
        });
    }

    /// `Transfer(address,address,uint256)`: ERC-20 with three topics and one data word (or
    /// the pre-standard layouts with arguments moved into data), ERC-721 with four topics.
    fn erc20_or_721(&self, log: &Log, out: &mut LogOutput) -> Option<()> {
        let topics = log.topics();
        let data = &log.data().data;
        if data.len() % 32 != 0 {
            return None;
        }
        let words: Vec<B256> = topics[1..]
            .iter()
            .copied()
            .chain(data.chunks_exact(32).map(B256::from_slice))
            .collect();
        let [from, to, value] = words.as_slice() else {
            return None;
        };
        let (from, to, value) = (
            word_address(from),
            word_address(to),
            U256::from_be_bytes(value.0),
        );
        let asset = if topics.len() == 4 {
            Asset::Erc721 {
                token: self.venue,
                id: value,
            }
        } else {
            Asset::Erc20 { token: self.venue }
        };
        let amount = if topics.len() == 4 {
            U256::from(1)
        } else {
            value
        };
        self.push(out, 0, from, to, asset, amount);
        Some(())
    }

    fn erc1155_single(&self, log: &Log, out: &mut LogOutput) -> Option<()> {
        let e = TransferSingle::decode_raw_log(log.topics(), &log.data().data).ok()?;
        self.push(
            out,
            0,
            e.from,
            e.to,
            Asset::Erc1155 {
                token: self.venue,
                id: e.id,
            },
            e.value,
        );
        Some(())
    }

    fn erc1155_batch(&self, log: &Log, out: &mut LogOutput) -> Option<()> {
        let e = TransferBatch::decode_raw_log(log.topics(), &log.data().data).ok()?;
        if e.ids.len() != e.values.len() || e.ids.len() > MAX_BATCH_ITEMS {
            return None;
        }
        for (item, (id, value)) in e.ids.iter().zip(&e.values).enumerate() {
            let item = u16::try_from(item).ok()?;
            self.push(
                out,
                item,
                e.from,
                e.to,
                Asset::Erc1155 {
                    token: self.venue,
                    id: *id,
                },
                *value,
            );
        }
        Some(())
    }

    fn wrap(&self, kind: ConversionKind, account: Address, amount: U256) -> Conversion {
        let weth = Asset::Erc20 { token: self.venue };
        let (asset_in, asset_out) = match kind {
            ConversionKind::Wrap => (Asset::Native, weth),
            _ => (weth, Asset::Native),
        };
        Conversion {
            chain_id: self.ctx.chain_id,
            block_number: self.ctx.block.number,
            block_hash: self.ctx.block.hash,
            tx_hash: self.tx_hash,
            tx_index: self.tx_index,
            log_index: self.log_index,
            kind,
            venue: self.venue,
            account,
            recipient: account,
            asset_in,
            amount_in: amount,
            asset_out,
            amount_out: amount,
        }
    }
}

/// The address in the low 20 bytes of a 32-byte word.
fn word_address(w: &B256) -> Address {
    Address::from_slice(&w[12..])
}
