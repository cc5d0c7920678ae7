//! Hand-built blocks and watch files for the detectors' unit tests.

#![allow(clippy::unwrap_used)]

use alloy_primitives::{Address, B256, Bytes, U256};
use holdfast_chain::{
    BlockDetail, BlockTransfers, CallDetail, CallKind, LogDetail, SlotChange, StateDiff, TxDetail,
};
use holdfast_primitives::{Asset, BlockRef, Position, Transfer};

use super::{Context, DetectorState, Detectors, History, Labels, NoHistory, NoLabels};
use crate::alert::Alert;
use crate::config::{WatchConfig, validate};

pub const USDC: Address = Address::new([0xcc; 20]);

/// A chain, the native coin and USDC (6 decimals), then `rest`.
pub fn config(rest: &str) -> WatchConfig {
    let text = format!(
        r#"
[[chain]]
name = "eth"
rpc = "http://127.0.0.1:8545"
explorer = "https://etherscan.io"

[[asset]]
symbol = "ETH"
chain = "eth"
kind = "native"

[[asset]]
symbol = "USDC"
chain = "eth"
token = "{USDC}"
decimals = 6
{rest}"#
    );
    match validate("watch.toml", &text, std::path::Path::new(".")) {
        Ok(v) => v.config,
        Err(e) => panic!("{e}"),
    }
}

pub fn addr(n: u8) -> Address {
    Address::repeat_byte(n)
}

pub fn eth(n: u64) -> U256 {
    U256::from(n) * U256::from(10u64.pow(18))
}

pub fn word(a: Address) -> B256 {
    a.into_word()
}

pub struct BlockBuilder {
    pub d: BlockDetail,
}

pub fn block(number: u64) -> BlockBuilder {
    BlockBuilder {
        d: BlockDetail {
            transfers: BlockTransfers {
                chain_id: 1,
                block: BlockRef {
                    number,
                    hash: B256::left_padding_from(&number.to_be_bytes()),
                    parent_hash: B256::left_padding_from(&(number - 1).to_be_bytes()),
                    timestamp: 1_700_000_000 + number * 12,
                },
                transfers: Vec::new(),
                conversions: Vec::new(),
                incomplete: 0,
                undecodable: 0,
            },
            txs: Vec::new(),
            logs: Vec::new(),
            calls: Vec::new(),
            calls_complete: true,
            state: Some(Vec::new()),
        },
    }
}

impl BlockBuilder {
    /// A transaction and its top call frame; returns its index.
    pub fn tx(&mut self, from: Address, to: Address, value: U256, input: Bytes) -> u32 {
        let index = self.d.txs.len() as u32;
        self.d.txs.push(TxDetail {
            hash: B256::repeat_byte(0x40 + index as u8),
            index,
            from,
            to: Some(to),
            created: None,
            value,
            input: input.clone(),
            success: true,
        });
        self.call(index, &[], CallKind::Call, from, to, value, input);
        index
    }

    #[allow(clippy::too_many_arguments)]
    pub fn call(
        &mut self,
        tx: u32,
        trace: &[u32],
        kind: CallKind,
        from: Address,
        to: Address,
        value: U256,
        input: Bytes,
    ) -> &mut Self {
        self.d.calls.push(CallDetail {
            tx_index: tx,
            trace_address: trace.to_vec(),
            kind,
            from,
            to,
            value,
            input_len: input.len(),
            input,
            reverted: false,
        });
        self
    }

    pub fn log(&mut self, tx: u32, address: Address, topics: Vec<B256>, data: Vec<u8>) -> u32 {
        let log_index = self.d.logs.len() as u32;
        self.d.logs.push(LogDetail {
            tx_index: tx,
            log_index,
            address,
            topics,
            data: data.into(),
        });
        log_index
    }

    fn diff(&mut self, tx: u32, address: Address) -> &mut StateDiff {
        let state = self.d.state.as_mut().unwrap();
        if let Some(i) = state
            .iter()
            .position(|d| d.tx_index == tx && d.address == address)
        {
            return &mut state[i];
        }
        state.push(StateDiff {
            tx_index: tx,
            address,
            balance: None,
            code_changed: false,
            storage: Vec::new(),
        });
        state.last_mut().unwrap()
    }

    pub fn slot(
        &mut self,
        tx: u32,
        address: Address,
        slot: B256,
        before: B256,
        after: B256,
    ) -> &mut Self {
        self.diff(tx, address).storage.push(SlotChange {
            slot,
            before,
            after,
        });
        self
    }

    pub fn balance(&mut self, tx: u32, address: Address, before: U256, after: U256) -> &mut Self {
        self.diff(tx, address).balance = Some((before, after));
        self
    }

    pub fn transfer(
        &mut self,
        tx: u32,
        position: Position,
        from: Address,
        to: Address,
        asset: Asset,
        amount: U256,
    ) -> &mut Self {
        let b = self.d.transfers.block;
        self.d.transfers.transfers.push(Transfer {
            chain_id: 1,
            block_number: b.number,
            block_hash: b.hash,
            timestamp: b.timestamp,
            tx_hash: B256::repeat_byte(0x40 + tx as u8),
            tx_index: tx,
            position,
            from,
            to,
            asset,
            amount,
        });
        self
    }

    pub fn build(&self) -> BlockDetail {
        self.d.clone()
    }
}

pub fn log_pos(i: u32) -> Position {
    Position::Log {
        log_index: i,
        item: 0,
    }
}

pub fn call_pos(trace: &[u16]) -> Position {
    Position::Call {
        trace_address: trace.to_vec(),
    }
}

pub fn run_with(
    config: &WatchConfig,
    block: &BlockDetail,
    state: &mut DetectorState,
    labels: &dyn Labels,
    history: &dyn History,
) -> Vec<Alert> {
    let d = Detectors::new(config);
    let cx = Context {
        chain: "eth",
        confirmations: 0,
        labels,
        history,
    };
    d.run(block, state, &cx).unwrap()
}

pub fn run(config: &WatchConfig, block: &BlockDetail, state: &mut DetectorState) -> Vec<Alert> {
    run_with(config, block, state, &NoLabels, &NoHistory)
}
