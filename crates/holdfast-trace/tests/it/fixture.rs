//! Small graphs written by hand: one transfer per transaction unless grouped.

use std::collections::BTreeMap;

use alloy_primitives::{Address, B256, U256, keccak256};
use holdfast_primitives::{Asset, Category, Conversion, ConversionKind, Position, Transfer};
use holdfast_trace::{Graph, GraphBuilder, Service, ServiceKind};

pub const CHAIN: u64 = 1;

pub fn addr(n: u8) -> Address {
    Address::repeat_byte(n)
}

pub fn token(n: u8) -> Asset {
    Asset::Erc20 {
        token: Address::repeat_byte(0xE0 | n),
    }
}

#[derive(Debug, Default)]
pub struct Net {
    pub transfers: Vec<Transfer>,
    pub conversions: Vec<Conversion>,
    pub services: BTreeMap<Address, Service>,
    next_tx: u64,
}

pub fn tx_hash(n: u64) -> B256 {
    keccak256(n.to_be_bytes())
}

impl Net {
    pub fn new() -> Self {
        Net::default()
    }

    /// A native transfer in its own transaction at `block`; returns the tx hash.
    pub fn send(&mut self, block: u64, from: u8, to: u8, amount: u64) -> B256 {
        self.send_asset(block, from, to, Asset::Native, amount)
    }

    pub fn send_asset(&mut self, block: u64, from: u8, to: u8, asset: Asset, amount: u64) -> B256 {
        self.batch(block, &[(from, to, asset, amount)])
    }

    /// Several transfers in one transaction, in order.
    pub fn batch(&mut self, block: u64, legs: &[(u8, u8, Asset, u64)]) -> B256 {
        self.next_tx += 1;
        let tx = tx_hash(self.next_tx);
        for (i, &(from, to, asset, amount)) in legs.iter().enumerate() {
            self.transfers.push(Transfer {
                chain_id: CHAIN,
                block_number: block,
                block_hash: B256::ZERO,
                timestamp: block * 12,
                tx_hash: tx,
                tx_index: self.next_tx as u32,
                position: Position::Log {
                    log_index: i as u32,
                    item: 0,
                },
                from: addr(from),
                to: addr(to),
                asset,
                amount: U256::from(amount),
            });
        }
        tx
    }

    /// `account` swaps at the Uniswap V2 pair `0x50` in one transaction: its input to the
    /// pair, the pair's output back to it, and the conversion.
    pub fn swap(&mut self, block: u64, account: u8, input: (Asset, u64), output: (Asset, u64)) {
        let tx = self.batch(
            block,
            &[
                (account, 0x50, input.0, input.1),
                (0x50, account, output.0, output.1),
            ],
        );
        self.conversion(
            tx,
            block,
            ConversionKind::UniswapV2Swap,
            0x50,
            account,
            account,
            input,
            output,
        );
    }

    /// `a` wraps `amount` of ETH at the WETH contract `0x57` in block 5, sends the WETH to `b`
    /// in block 6, and `b` unwraps it in block 7: the conversions as ingestion records them.
    pub fn wrap_pass_unwrap(&mut self, weth: Asset, a: u8, b: u8, amount: u64) {
        let wrap = self.batch(5, &[(a, 0x57, Asset::Native, amount)]);
        self.conversion(
            wrap,
            5,
            ConversionKind::Wrap,
            0x57,
            a,
            a,
            (Asset::Native, amount),
            (weth, amount),
        );
        self.send_asset(6, a, b, weth, amount);
        let unwrap = self.batch(7, &[(0x57, b, Asset::Native, amount)]);
        self.conversion(
            unwrap,
            7,
            ConversionKind::Unwrap,
            0x57,
            b,
            b,
            (weth, amount),
            (Asset::Native, amount),
        );
    }

    #[allow(clippy::too_many_arguments)]
    pub fn conversion(
        &mut self,
        tx: B256,
        block: u64,
        kind: ConversionKind,
        venue: u8,
        account: u8,
        recipient: u8,
        (asset_in, amount_in): (Asset, u64),
        (asset_out, amount_out): (Asset, u64),
    ) {
        let tx_index = self
            .transfers
            .iter()
            .find(|t| t.tx_hash == tx)
            .map(|t| t.tx_index)
            .unwrap_or(9999);
        self.conversions.push(Conversion {
            chain_id: CHAIN,
            block_number: block,
            block_hash: B256::ZERO,
            tx_hash: tx,
            tx_index,
            log_index: 100 + self.conversions.len() as u32,
            kind,
            venue: addr(venue),
            account: addr(account),
            recipient: addr(recipient),
            asset_in,
            amount_in: U256::from(amount_in),
            asset_out,
            amount_out: U256::from(amount_out),
        });
    }

    pub fn exchange(&mut self, a: u8, name: &str) {
        self.service(a, ServiceKind::Custodial, Category::Exchange, name);
    }

    pub fn service(&mut self, a: u8, kind: ServiceKind, category: Category, name: &str) {
        self.services.insert(
            addr(a),
            Service {
                kind,
                category,
                name: name.into(),
            },
        );
    }

    pub fn graph(&self) -> Graph {
        let mut b = GraphBuilder::new(CHAIN);
        b.add_transfers(self.transfers.clone()).expect("one chain");
        b.add_conversions(self.conversions.clone())
            .expect("one chain");
        b.build()
    }
}

pub fn u(n: u64) -> U256 {
    U256::from(n)
}
