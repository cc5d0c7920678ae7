//! One trace across chains: an EVM trace's exits into a bridge followed to the destination
//! chain (docs/TRACE.md, "Across chains").
//!
//! THORChain first. Every tainted transfer into a bridge ([`FreezeTarget::arrivals`]) is one
//! exit. Its transaction's receipt (read by the caller from a node: the transfer store keeps
//! no logs) must hold a `Deposit` event emitted **by the bridge address itself** (the address
//! intel labels a bridge, so a look-alike event from another contract is never taken); the
//! event's memo names the asset and the address funds leave THORChain to. On a UTXO chain the
//! index holds, THORChain's payouts of that inbound (`OUT:<inbound tx>` in an OP_RETURN,
//! [`thorchain_payouts`]) are found among the transactions paying that address, and the trace
//! continues from their outputs with the share of what arrived that was tainted on the way in
//! ([`payout_seeds`]). More than one payout naming the same inbound means someone planted a
//! decoy: all are followed and the crossing says so. Exits that cannot be followed are kept
//! with what is known and why they stop (an EVM destination, a chain the index does not
//! hold, no payout yet, a memo that does not leave THORChain or does not parse).
//!
//! A swap THORChain could not make (a bad memo, a price limit, a halted chain) is refunded on
//! the source chain: the router's `TransferOut` with `REFUND:<inbound tx>`, found by the caller
//! among the router's events after the deposit ([`ExitReceipt::refunds`]). Such a crossing is
//! `refunded`, naming the refund's transaction and recipient — where the taint went instead.
//!
//! The result's freeze targets on the far side carry the whole evidence path: the EVM hops
//! from the seed into the bridge, the crossing (inbound transaction, memo, payout), and the
//! UTXO outputs from the payout to the service.

use std::collections::BTreeMap;

use alloy_primitives::{Address, B256, Log, U256};
use holdfast_bridge::thorchain::{Memo, RouterEvent, TransferOut};
use holdfast_primitives::Asset;
use holdfast_store::utxo::show_txid;

use crate::TraceError;
use crate::labels::{Service, ServiceKind};
use crate::policy::TraceOptions;
use crate::result::{FreezeTarget, Hop, Trace};
use crate::utxo::{
    UtxoClassifier, UtxoHop, UtxoSeedAt, UtxoSource, UtxoTrace, payout_seeds, thorchain_payouts,
    trace_utxo,
};

/// A mined transaction's receipt, as far as a crossing needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitReceipt {
    pub block_number: u64,
    /// The block the node has the transaction in.
    pub block_hash: B256,
    /// The hash the store holds for block `block_number` (`None`: not checked). A different
    /// one means the node and the store are on different forks: the trace's evidence is not
    /// the node's chain, and the crossing is not followed.
    pub stored_block_hash: Option<B256>,
    /// `status` 1 (or a receipt from before status existed).
    pub success: bool,
    pub logs: Vec<Log>,
    /// The router events after the transaction whose memo is `REFUND:<this tx>` (the caller
    /// searches the bridge's events; empty when it did not or found none).
    pub refunds: Vec<RefundEvent>,
}

pub use holdfast_bridge::thorchain::TRANSFER_OUT_TOPIC;

/// The refund `log` is, if it is one: a router `TransferOut` (by its signature; the caller
/// asks only the bridge's own events) whose memo is `REFUND:<inbound>`, an EVM transaction.
pub fn refund_of(log: &Log) -> Option<(B256, TransferOut)> {
    let Some(Ok(RouterEvent::TransferOut(event))) = RouterEvent::decode(log) else {
        return None;
    };
    match Memo::parse(&event.memo) {
        Ok(Memo::Refund { inbound }) => Some((inbound.hash()?, event)),
        _ => None,
    }
}

/// A router's `TransferOut` event, with where it was emitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundEvent {
    pub tx_hash: B256,
    pub block: u64,
    pub event: TransferOut,
}

/// A refund of a crossing on its source chain: THORChain's router paid `amount` of `token`
/// (`None`: the native coin) to `to`, with the memo `REFUND:<inbound tx>`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EvmRefund {
    pub tx_hash: B256,
    pub block: u64,
    pub vault: Address,
    pub to: Address,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<Address>,
    #[serde(serialize_with = "decimal")]
    pub amount: U256,
    /// Paid by the vault the deposit went to. Anyone may call the router's `transferOut`
    /// with any memo, so a refund from another address may be a decoy (or THORChain rotated
    /// its vaults in between): it is listed, and marked.
    pub from_deposit_vault: bool,
    /// The paying address's labels in intel, filled by the caller that holds intel: the
    /// depositor names the vault, so only a `bridge` label from THORChain's own list (its
    /// `/inbound_addresses`, imported) says the vault is THORChain's; any other label (a
    /// `tainted` one written by `trace --label`, say) is shown, and vouches for nothing.
    /// Empty: not labelled.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub vault_labels: Vec<PayerLabel>,
}

/// One intel label of a paying address.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PayerLabel {
    pub name: String,
    pub category: holdfast_primitives::Category,
}

impl EvmRefund {
    /// Whether intel labels the paying address a bridge (THORChain's vaults, once imported).
    pub fn vault_is_bridge(&self) -> bool {
        self.vault_labels
            .iter()
            .any(|l| l.category == holdfast_primitives::Category::Bridge)
    }
}

/// Where the receipts of exit transactions come from (a node; a map in tests).
pub trait ExitReceipts {
    /// The receipt of `tx` (`None`: the node does not know it).
    fn receipt(&self, tx: B256) -> Result<Option<ExitReceipt>, TraceError>;
}

impl ExitReceipts for BTreeMap<B256, ExitReceipt> {
    fn receipt(&self, tx: B256) -> Result<Option<ExitReceipt>, TraceError> {
        Ok(self.get(&tx).cloned())
    }
}

/// A UTXO chain the crossing can continue on: its index, its services, and the chain code
/// THORChain's memos give it (`BTC`, `LTC`, `DOGE`, `BCH`).
pub struct UtxoChain<'a, S: UtxoSource + ?Sized> {
    pub thorchain_chain: &'a str,
    pub chain_id: u64,
    /// The network's name (`bitcoin`, `litecoin-regtest`).
    pub network: &'a str,
    pub src: &'a S,
    pub classifier: &'a dyn UtxoClassifier,
    /// Whether an address is one of this network's (a memo's `BTC` address may be for
    /// mainnet or a test network the index also holds).
    pub address_ok: &'a dyn Fn(&str) -> bool,
}

impl<S: UtxoSource + ?Sized> std::fmt::Debug for UtxoChain<'_, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UtxoChain")
            .field("thorchain_chain", &self.thorchain_chain)
            .field("chain_id", &self.chain_id)
            .field("network", &self.network)
            .finish_non_exhaustive()
    }
}

/// Where a crossing ended up.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum CrossingOutcome {
    /// Payouts found; the trace continues from them (more than one: a decoy is among them,
    /// every one is followed).
    Followed { payouts: usize },
    /// The memo's chain is in the index but no payout naming this inbound is (yet): THORChain
    /// pays out within minutes to hours; ingest further and trace again.
    PayoutNotFound,
    /// The memo leaves THORChain to a chain this trace has no index of (EVM chains, Cosmos,
    /// or a UTXO chain not ingested): the destination is the lead.
    ChainNotIndexed { chain: String },
    /// The memo does not take funds out of THORChain (liquidity, bond, a THOR.RUNE swap…).
    NotAnExit { function: String },
    /// The memo does not parse: names the field, the value and what was expected.
    BadMemo { error: String },
    /// The transaction holds no `Deposit` event from the bridge (a plain transfer to it, or a
    /// bridge other than THORChain: its exit is recorded without a destination).
    NoDepositEvent,
    /// The transaction reverted on the node (nothing crossed).
    Reverted,
    /// The memo's destination has more receipts in the index than one search reads: not
    /// searched (a payout past the limit would look missing); the address is the lead.
    DestinationTooBusy { limit: usize },
    /// The node does not know the transaction, or has it in another block than the store
    /// (a reorg since ingestion: ingest again).
    NotOnTheNode { detail: String },
    /// Another bridge's exit event (Multichain, Celer cBridge, Across; emitted by the bridge
    /// address itself) names the destination chain and recipient ([`Crossing::destination`],
    /// the chain as `eip155:<id>`): recorded, not followed — the recipient is the lead.
    /// `amount` is what the event says left, in the token's smallest unit.
    OtherBridge { bridge: String, amount: String },
    /// A known bridge's exit event that does not decode (names the transaction and why).
    BadExitEvent { error: String },
    /// No payout followed, and the router refunded the inbound on the source chain
    /// ([`Crossing::refunds`]): the refund's recipient is where the taint went.
    Refunded { refunds: usize },
}

/// One payout found for a crossing.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PayoutFound {
    /// As Bitcoin shows it.
    pub txid: String,
    /// The outputs to the destination: (vout, value).
    pub outputs: Vec<(u32, u64)>,
    /// What arrived at the destination, in the chain's smallest unit.
    pub amount: u64,
    /// Of which tainted (the tainted share of the inbound, applied to what arrived).
    pub tainted: u64,
    /// The addresses its inputs spent from, distinct, in input order (at most
    /// [`MAX_PAYERS`]): THORChain's vault for a real payout. Anyone can write `OUT:<inbound>`
    /// into a transaction of his own, so a decoy is told by who paid it.
    pub paid_by: Vec<String>,
    /// The first of `paid_by` labelled a bridge (THORChain's vaults, once imported as
    /// `bridge` labels); `None`: no payer is. Other labels vouch for nothing here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payer_service: Option<Service>,
}

/// Most payer addresses kept per payout.
pub const MAX_PAYERS: usize = 20;

/// A tainted transfer into a bridge, and what became of it on the far side.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Crossing {
    pub bridge: Service,
    /// The bridge contract (THORChain's router).
    pub router: Address,
    pub tx_hash: B256,
    pub block: u64,
    pub asset: Asset,
    /// What the transfer into the bridge moved, and how much of it was tainted.
    #[serde(serialize_with = "decimal")]
    pub amount: U256,
    #[serde(serialize_with = "decimal")]
    pub tainted: U256,
    /// Seed to the bridge, every hop (the last is the transfer into it).
    pub path: Vec<Hop>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memo: Option<String>,
    /// The asset and address the memo sends the funds out to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<Destination>,
    pub outcome: CrossingOutcome,
    pub payouts: Vec<PayoutFound>,
    /// Refunds naming this inbound on the source chain (a decoy among them is marked).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub refunds: Vec<EvmRefund>,
}

fn decimal<S: serde::Serializer>(v: &U256, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Destination {
    /// THORChain's notation (`LTC.LTC`).
    pub asset: String,
    pub chain: String,
    pub address: String,
}

/// A freeze target on the far side, with the evidence path across the chains.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CrossTarget {
    pub network: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<Service>,
    /// The output at the service (`txid:vout`) and its address.
    pub at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    pub tainted: u64,
    /// The EVM part: seed to the bridge.
    pub evm_path: Vec<Hop>,
    /// The inbound transaction on the EVM chain and THORChain's payout on the far side.
    pub inbound: B256,
    pub payout: String,
    /// How many payouts named the inbound: more than one means a decoy is among them (the
    /// destination's owner can pay it himself with the same `OUT:` memo), so this target may
    /// come from the decoy's coins rather than the stolen funds; every one is followed with
    /// the inbound's tainted share, so their sum can exceed what crossed.
    pub payouts_naming_inbound: usize,
    /// The UTXO part: the payout's output to the service's.
    pub utxo_path: Vec<UtxoHop>,
}

/// The whole trace: the EVM trace, its crossings, the traces continued on the far side, and
/// the freeze targets reached across chains.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CrossChainTrace {
    pub evm: Trace,
    pub crossings: Vec<Crossing>,
    pub continued: Vec<UtxoTrace>,
    pub targets: Vec<CrossTarget>,
}

/// Parts per billion of `amount` that `tainted` is (`None`: all of it).
fn share_ppb(tainted: U256, amount: U256) -> Option<u64> {
    if amount.is_zero() || tainted >= amount {
        return None;
    }
    let ppb = tainted.saturating_mul(U256::from(1_000_000_000u64)) / amount;
    Some(u64::try_from(ppb).unwrap_or(1_000_000_000))
}

/// The deposit events of `receipt` emitted by `router` that match the transfer `hop` (same
/// asset and amount); when none matches exactly, every deposit event of the router in the
/// transaction (several: each is followed).
fn deposits_for(hop: &Hop, router: Address, receipt: &ExitReceipt) -> Vec<Deposited> {
    let all: Vec<(Option<Address>, Deposited)> = receipt
        .logs
        .iter()
        .filter(|l| l.address == router)
        .filter_map(|l| match RouterEvent::decode(l) {
            Some(Ok(RouterEvent::Deposit(d))) => Some((
                d.asset,
                Deposited {
                    memo: d.memo,
                    amount: d.amount,
                    vault: d.vault,
                },
            )),
            _ => None,
        })
        .collect();
    let asset = match hop.asset {
        Asset::Native => Some(None),
        Asset::Erc20 { token } => Some(Some(token)),
        _ => None,
    };
    let exact: Vec<Deposited> = all
        .iter()
        .filter(|(a, d)| Some(*a) == asset && d.amount == hop.amount)
        .map(|(_, d)| d.clone())
        .collect();
    if !exact.is_empty() {
        return exact;
    }
    all.into_iter().map(|(_, d)| d).collect()
}

/// A router `Deposit` event of an exit's transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Deposited {
    memo: String,
    amount: U256,
    vault: Address,
}

/// The refunds among `receipt.refunds` that THORChain's router `router` paid for the inbound
/// `inbound` (the memo is checked again here: `REFUND:<inbound>`, emitted by the router).
fn refunds_of(
    receipt: &ExitReceipt,
    router: Address,
    inbound: B256,
    vault: Address,
) -> Vec<EvmRefund> {
    receipt
        .refunds
        .iter()
        .filter(|r| r.event.router == router)
        .filter(|r| {
            matches!(Memo::parse(&r.event.memo), Ok(Memo::Refund { inbound: id }) if id.hash() == Some(inbound))
        })
        .map(|r| EvmRefund {
            tx_hash: r.tx_hash,
            block: r.block,
            vault: r.event.vault,
            to: r.event.to,
            token: r.event.asset,
            amount: r.event.amount,
            from_deposit_vault: r.event.vault == vault,
            vault_labels: Vec::new(),
        })
        .collect()
}

/// Follows every exit of `evm` into a bridge across to `chains`, then traces on from the
/// payouts found (one UTXO trace per chain, seeded with all its payouts).
pub fn follow_exits<S: UtxoSource + ?Sized>(
    evm: Trace,
    receipts: &dyn ExitReceipts,
    chains: &[UtxoChain<'_, S>],
    utxo_options: &TraceOptions,
) -> Result<CrossChainTrace, TraceError> {
    let mut crossings = Vec::new();
    for exit in &evm.exits {
        for path in &exit.arrivals {
            let Some(hop) = path.last() else {
                continue;
            };
            crossings.extend(cross(exit, hop, path, receipts, chains)?);
        }
    }
    // One continued trace per chain, seeded with every payout found on it.
    let mut continued = Vec::new();
    let mut targets = Vec::new();
    for chain in chains {
        let mut seeds: Vec<UtxoSeedAt> = Vec::new();
        // payout txid (as shown) → the crossing it came from
        let mut origin: BTreeMap<String, usize> = BTreeMap::new();
        for (i, c) in crossings.iter().enumerate() {
            let on_chain = c
                .destination
                .as_ref()
                .is_some_and(|d| d.chain == chain.thorchain_chain);
            if !on_chain || !matches!(c.outcome, CrossingOutcome::Followed { .. }) {
                continue;
            }
            let share = share_ppb(c.tainted, c.amount);
            for p in &c.payouts {
                // Two deposits in one transaction share its hash, the inbound id `OUT:` names,
                // so both find the same payouts: the walk takes an output seeded twice as the
                // union of its tainted intervals, never their sum.
                origin.entry(p.txid.clone()).or_insert(i);
                let id = crate::utxo::parse_txid(&p.txid)?;
                seeds.extend(payout_seeds(
                    &holdfast_bridge::thorchain::Payout {
                        id,
                        outputs: p.outputs.clone(),
                        amount: p.amount,
                        refund: false,
                    },
                    share,
                ));
            }
        }
        if seeds.is_empty() {
            continue;
        }
        seeds.truncate(crate::policy::MAX_SEEDS);
        let t = trace_utxo(
            chain.src,
            chain.classifier,
            chain.chain_id,
            chain.network,
            &seeds,
            utxo_options,
        )?;
        for f in &t.targets {
            let payout = f
                .path
                .first()
                .and_then(|h| h.outpoint.split_once(':'))
                .map(|(txid, _)| txid.to_owned())
                .unwrap_or_default();
            let Some(c) = origin.get(&payout).and_then(|&i| crossings.get(i)) else {
                continue;
            };
            targets.push(CrossTarget {
                network: chain.network.to_owned(),
                service: f.service.clone(),
                at: f.at.clone(),
                address: f.address.clone(),
                tainted: f.tainted,
                evm_path: c.path.clone(),
                inbound: c.tx_hash,
                payout,
                payouts_naming_inbound: c.payouts.len(),
                utxo_path: f.path.clone(),
            });
        }
        continued.push(t);
    }
    Ok(CrossChainTrace {
        evm,
        crossings,
        continued,
        targets,
    })
}

/// The crossings of one transfer into a bridge (one per deposit event it matches).
fn cross<S: UtxoSource + ?Sized>(
    exit: &FreezeTarget,
    hop: &Hop,
    path: &[Hop],
    receipts: &dyn ExitReceipts,
    chains: &[UtxoChain<'_, S>],
) -> Result<Vec<Crossing>, TraceError> {
    let base = |outcome: CrossingOutcome| Crossing {
        bridge: exit.service.clone(),
        router: exit.deposit,
        tx_hash: hop.tx_hash,
        block: hop.block,
        asset: hop.asset,
        amount: hop.amount,
        tainted: hop.tainted,
        path: path.to_vec(),
        memo: None,
        destination: None,
        outcome,
        payouts: Vec::new(),
        refunds: Vec::new(),
    };
    let receipt = match receipts.receipt(hop.tx_hash)? {
        Some(r) if r.block_number != hop.block => {
            return Ok(vec![base(CrossingOutcome::NotOnTheNode {
                detail: format!(
                    "the node has tx {} in block {}, the store in block {}: a reorg since ingestion (ingest again)",
                    hop.tx_hash, r.block_number, hop.block
                ),
            })]);
        }
        Some(r) if r.stored_block_hash.is_some_and(|h| h != r.block_hash) => {
            return Ok(vec![base(CrossingOutcome::NotOnTheNode {
                detail: format!(
                    "the node has tx {} in block {} with hash {}, the store holds that block with hash {}: the node and the store are on different forks (ingest again from a node on the store's chain, or check the node)",
                    hop.tx_hash,
                    r.block_number,
                    r.block_hash,
                    r.stored_block_hash.unwrap_or_default()
                ),
            })]);
        }
        Some(r) => r,
        None => {
            return Ok(vec![base(CrossingOutcome::NotOnTheNode {
                detail: format!("the node does not know tx {}", hop.tx_hash),
            })]);
        }
    };
    if !receipt.success {
        return Ok(vec![base(CrossingOutcome::Reverted)]);
    }
    let deposits = deposits_for(hop, exit.deposit, &receipt);
    if deposits.is_empty() {
        // Another bridge: its exit event, emitted by the bridge itself, names where the funds
        // went (recorded, not followed).
        let exits: Vec<Crossing> = receipt
            .logs
            .iter()
            .filter(|l| l.address == exit.deposit)
            .filter_map(holdfast_bridge::evm::decode_exit)
            .map(|x| {
                let mut c = base(CrossingOutcome::NoDepositEvent);
                match x {
                    Ok(x) => {
                        c.destination = Some(Destination {
                            asset: x
                                .token
                                .map_or_else(|| "native".to_owned(), |t| t.to_string()),
                            chain: format!("eip155:{}", x.chain_id),
                            address: x.recipient,
                        });
                        c.outcome = CrossingOutcome::OtherBridge {
                            bridge: x.bridge.name().to_owned(),
                            amount: x.amount.to_string(),
                        };
                    }
                    Err(e) => {
                        c.outcome = CrossingOutcome::BadExitEvent {
                            error: format!("tx {}: {e}", hop.tx_hash),
                        };
                    }
                }
                c
            })
            .collect();
        if !exits.is_empty() {
            return Ok(exits);
        }
        return Ok(vec![base(CrossingOutcome::NoDepositEvent)]);
    }
    let mut out = Vec::new();
    for deposit in deposits {
        let memo = deposit.memo;
        let mut c = base(CrossingOutcome::NoDepositEvent);
        c.memo = Some(memo.clone());
        c.refunds = refunds_of(&receipt, exit.deposit, hop.tx_hash, deposit.vault);
        let parsed = match Memo::parse(&memo) {
            Ok(m) => m,
            Err(e) => {
                c.outcome = CrossingOutcome::BadMemo {
                    error: format!("tx {}: memo {e}", hop.tx_hash),
                };
                out.push(refunded(c));
                continue;
            }
        };
        let Some((asset, address)) = parsed.exit() else {
            c.outcome = CrossingOutcome::NotAnExit {
                function: memo.split(':').next().unwrap_or_default().to_owned(),
            };
            out.push(refunded(c));
            continue;
        };
        c.destination = Some(Destination {
            asset: asset.to_string(),
            chain: asset.chain.clone(),
            address: address.to_owned(),
        });
        let Some(chain) = chains
            .iter()
            .find(|ch| ch.thorchain_chain == asset.chain && (ch.address_ok)(address))
        else {
            c.outcome = CrossingOutcome::ChainNotIndexed {
                chain: asset.chain.clone(),
            };
            out.push(refunded(c));
            continue;
        };
        let payouts = match thorchain_payouts(chain.src, chain.chain_id, hop.tx_hash, address, 0) {
            Ok(p) => p,
            Err(TraceError::TooLarge { limit, .. }) => {
                c.outcome = CrossingOutcome::DestinationTooBusy { limit };
                out.push(refunded(c));
                continue;
            }
            Err(e) => return Err(e),
        };
        let share = share_ppb(hop.tainted, hop.amount);
        let payouts: Vec<_> = payouts.iter().filter(|p| !p.refund).collect();
        let ids: Vec<B256> = payouts.iter().map(|p| p.id).collect();
        // Each payout's payers, by txid (a transaction the index lacks has none).
        let mut payers: BTreeMap<B256, Vec<String>> = BTreeMap::new();
        for chunk in ids.chunks(holdfast_store::utxo::MAX_READ_BATCH) {
            for (_, _, tx) in chain
                .src
                .transactions(chain.chain_id, chunk)?
                .into_iter()
                .filter_map(|placed| placed.into_iter().next())
            {
                let paid_by = payers.entry(tx.txid).or_default();
                for a in tx.inputs.iter().filter_map(|i| i.address.as_ref()) {
                    if paid_by.len() < MAX_PAYERS && !paid_by.contains(a) {
                        paid_by.push(a.clone());
                    }
                }
            }
        }
        c.payouts = Vec::with_capacity(payouts.len());
        for p in &payouts {
            let paid_by = payers.remove(&p.id).unwrap_or_default();
            let mut payer_service = None;
            for a in &paid_by {
                if let Some(s) = chain.classifier.classify(a)?
                    && s.service.kind == ServiceKind::Bridge
                {
                    payer_service = Some(s.service);
                    break;
                }
            }
            c.payouts.push(PayoutFound {
                txid: show_txid(&p.id),
                outputs: p.outputs.clone(),
                amount: p.amount,
                tainted: share.map_or(p.amount, |ppb| {
                    u64::try_from(u128::from(p.amount) * u128::from(ppb) / 1_000_000_000)
                        .unwrap_or(p.amount)
                }),
                paid_by,
                payer_service,
            });
        }
        c.outcome = if c.payouts.is_empty() {
            CrossingOutcome::PayoutNotFound
        } else {
            CrossingOutcome::Followed {
                payouts: c.payouts.len(),
            }
        };
        out.push(refunded(c));
    }
    Ok(out)
}

/// A crossing with refunds and no payout followed is `refunded` (a bad memo, a failed swap:
/// THORChain sent the funds back on the source chain).
fn refunded(mut c: Crossing) -> Crossing {
    if !c.refunds.is_empty() && !matches!(c.outcome, CrossingOutcome::Followed { .. }) {
        c.outcome = CrossingOutcome::Refunded {
            refunds: c.refunds.len(),
        };
    }
    c
}

#[cfg(test)]
mod tests;
