//! THORChain's router on EVM chains (version 5.0; `contracts/src/THORChain_Router.sol`):
//! an inbound is `deposit`/`depositWithExpiry`, which forwards ETH to the vault (or keeps an
//! ERC-20 for it) and emits `Deposit(to = vault, asset, amount, memo)`; THORChain pays out on
//! an EVM chain with `transferOut`, emitting `TransferOut(vault, to, asset, amount, memo)`
//! with `OUT:<inbound id>`. The events, not the call, are decoded: a deposit made through
//! an aggregator or a contract still emits one, and the amount is what the router really
//! forwarded (`msg.value` for ETH).

use alloy::sol_types::SolEvent;
use alloy_primitives::{Address, Log, U256};
use serde::Serialize;

use super::memo::{Memo, MemoError};

mod abi {
    alloy::sol! {
        event Deposit(address indexed to, address indexed asset, uint amount, string memo);
        event TransferOut(address indexed vault, address indexed to, address asset, uint amount, string memo);
    }
}

/// The first topic of the router's `TransferOut` event (its payouts and refunds on an EVM
/// chain), for searching a router's events by range.
pub const TRANSFER_OUT_TOPIC: alloy_primitives::B256 = abi::TransferOut::SIGNATURE_HASH;

/// An inbound: `amount` of `asset` (`None`: the chain's native coin) sent to THORChain's
/// vault `vault` through the router at `router`, with `memo`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deposit {
    pub router: Address,
    pub vault: Address,
    pub asset: Option<Address>,
    pub amount: U256,
    /// The memo as sent (bounded by the log's size, not by THORChain's limit).
    pub memo: String,
}

/// A payout on an EVM chain: `amount` of `asset` from `vault` to `to`, with `memo`
/// (`OUT:<inbound id>` or `REFUND:<inbound id>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TransferOut {
    pub router: Address,
    pub vault: Address,
    pub to: Address,
    pub asset: Option<Address>,
    pub amount: U256,
    pub memo: String,
}

/// One of the router's events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum RouterEvent {
    Deposit(Deposit),
    TransferOut(TransferOut),
}

fn asset(a: Address) -> Option<Address> {
    (a != Address::ZERO).then_some(a)
}

impl RouterEvent {
    /// The router event `log` is, if it is one (by its signature; the caller decides which
    /// emitters are THORChain's routers — anyone can emit an event with this signature).
    /// `Err`: the signature matches but the data does not decode.
    pub fn decode(log: &Log) -> Option<Result<RouterEvent, alloy::sol_types::Error>> {
        let topic = *log.topics().first()?;
        if topic == abi::Deposit::SIGNATURE_HASH {
            Some(abi::Deposit::decode_log(log).map(|e| {
                RouterEvent::Deposit(Deposit {
                    router: log.address,
                    vault: e.to,
                    asset: asset(e.asset),
                    amount: e.amount,
                    memo: e.data.memo.clone(),
                })
            }))
        } else if topic == abi::TransferOut::SIGNATURE_HASH {
            Some(abi::TransferOut::decode_log(log).map(|e| {
                RouterEvent::TransferOut(TransferOut {
                    router: log.address,
                    vault: e.vault,
                    to: e.to,
                    asset: asset(e.data.asset),
                    amount: e.data.amount,
                    memo: e.data.memo.clone(),
                })
            }))
        } else {
            None
        }
    }

    /// The event's memo, parsed.
    pub fn memo(&self) -> Result<Memo, MemoError> {
        match self {
            RouterEvent::Deposit(d) => Memo::parse(&d.memo),
            RouterEvent::TransferOut(t) => Memo::parse(&t.memo),
        }
    }
}
