//! What the policy decides on: everything the decoding, the simulation, the screening and
//! the wallet's history established about one request, in one plain structure.
//!
//! Built by [`crate::check`]; pure data, so policy evaluation is a pure function of it.

use std::collections::BTreeMap;

use alloy::primitives::{Address, B256, U256};
use holdfast_primitives::{Asset, Category, RiskLevel};
use serde::Serialize;

use crate::decode::{Action, CallKind, DecodedCall};
use crate::simulate::SimStatus;

/// Which kind of request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestKind {
    Transaction,
    SignedTransaction,
    Safe,
    Withdrawal,
}

impl RequestKind {
    pub const fn name(self) -> &'static str {
        match self {
            RequestKind::Transaction => "transaction",
            RequestKind::SignedTransaction => "signed",
            RequestKind::Safe => "safe",
            RequestKind::Withdrawal => "withdrawal",
        }
    }
}

/// Where a fact came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The payload's bytes say so.
    Decoded,
    /// The simulation shows it.
    Simulated,
}

/// Value leaving the wallet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Movement {
    /// Who receives it; zero for a Safe gas refund to an executor not known before
    /// execution ([`Movement::to_unknown`]).
    pub to: Address,
    pub asset: Asset,
    /// For a gas refund, the most it can be (everything, `2^256 - 1`, when unbounded).
    pub amount: U256,
    pub source: Source,
    /// A Safe gas refund (`gasPrice`, `baseGas`, `refundReceiver`), not a call's transfer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub gas_refund: bool,
}

impl Movement {
    /// A gas refund to whoever executes: the receiver is not known before execution.
    pub fn to_unknown(&self) -> bool {
        self.gas_refund && self.to.is_zero()
    }

    /// The receiver in words.
    pub fn receiver(&self) -> String {
        match (self.gas_refund, self.to_unknown()) {
            (_, true) => "the executor (tx.origin, not known before execution)".to_owned(),
            (true, false) => format!("{} (gas refund)", self.to),
            (false, false) => self.to.to_string(),
        }
    }
}

/// A permission to move the wallet's assets granted to someone else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Grant {
    pub spender: Address,
    /// The token contract (`None`: every token of an NFT collection, `setApprovalForAll`).
    pub token: Address,
    pub amount: U256,
    /// Effectively unlimited (at least 2^128, or every NFT of a collection).
    pub unlimited: bool,
    pub how: &'static str,
}

/// A call the policy has a name for.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum CallFact {
    Delegatecall,
    SafeConfigChange,
    Upgrade,
    AdminChange,
    Approval,
    UnlimitedApproval,
    SetApprovalForAll,
    Permit,
    UnknownCall,
    MalformedCall,
    ContractCreation,
    Eip7702Delegation,
    NestedSafeExec,
    Multisend,
    NativeTransfer,
    TokenTransfer,
    /// A Safe transaction with `gasPrice > 0`: the Safe pays for the gas of its own
    /// execution, to its refund receiver or its executor.
    SafeGasRefund,
}

impl CallFact {
    pub const fn describe(self) -> &'static str {
        match self {
            CallFact::Delegatecall => {
                "a DELEGATECALL (the target's code runs with the wallet's storage and funds)"
            }
            CallFact::SafeConfigChange => "a change of the Safe's configuration",
            CallFact::Upgrade => "a contract upgrade (the implementation is replaced)",
            CallFact::AdminChange => "a change of admin or owner",
            CallFact::Approval => "a token approval",
            CallFact::UnlimitedApproval => "an unlimited token approval",
            CallFact::SetApprovalForAll => "an approval of a whole NFT collection",
            CallFact::Permit => "a signed permit",
            CallFact::UnknownCall => "a call Holdfast cannot decode",
            CallFact::MalformedCall => "a call whose arguments are malformed",
            CallFact::ContractCreation => "a contract creation",
            CallFact::Eip7702Delegation => "an EIP-7702 delegation (an account's code is replaced)",
            CallFact::NestedSafeExec => "a nested Safe execution",
            CallFact::Multisend => "a MultiSend batch",
            CallFact::NativeTransfer => "a native coin transfer",
            CallFact::TokenTransfer => "a token transfer",
            CallFact::SafeGasRefund => {
                "a Safe gas refund (the Safe pays for the gas of its own execution, at a price the executor picks up to gasPrice)"
            }
        }
    }
}

/// Something wrong with the request itself.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// The safeTxHash supplied with the request is not the one Holdfast computed.
    SafeTxHashMismatch,
    /// The Safe's own `getTransactionHash` disagrees with Holdfast's computation (the
    /// version is not what was assumed).
    ContractHashMismatch,
    /// The method the Transaction Service shows signers is not what the bytes do.
    ShownMethodMismatch,
    /// A signature is not over the computed hash by an owner.
    BadSignature,
    /// The Safe nonce is already used.
    StaleNonce,
    /// The request is for another chain than the node's or the wallet's.
    WrongChain,
    /// The Safe version is unknown: the hash cannot be computed with certainty.
    VersionUnknown,
    /// An allowlisted target holds other code than the listed deployment.
    CodeHashMismatch,
    /// The payload could not be decoded within bounds.
    Undecodable,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub kind: FindingKind,
    pub message: String,
}

/// An address the request deals with, and what intel says of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Counterparty {
    pub address: Address,
    /// How the request involves it ("destination", "call target", "spender", ...).
    pub roles: Vec<&'static str>,
    pub risk: RiskLevel,
    pub categories: Vec<Category>,
    /// Intel's reasons (one per label).
    pub reasons: Vec<String>,
}

/// A past outflow of the wallet (velocity, first use of a destination).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PastOutflow {
    pub to: Address,
    pub asset: Asset,
    pub amount: U256,
    /// Unix seconds.
    pub at: u64,
}

/// What is known of the wallet's past, if anything.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct History {
    /// Whether the caller had history to give: without it velocity counts only this
    /// request and every destination counts as new.
    pub known: bool,
    /// Outflows of the window the policy looks back over (newest last).
    pub outflows: Vec<PastOutflow>,
    /// The window held more outflows than the caller reads: `outflows` is incomplete, so
    /// every velocity limit counts as exceeded (fail closed).
    #[serde(default)]
    pub truncated: bool,
    /// When the wallet first paid each of this request's destinations, where the caller
    /// keeps that apart from `outflows` (older than their window); a destination in neither
    /// was never paid.
    #[serde(default)]
    pub first_paid: Vec<(Address, u64)>,
}

/// Everything the policy sees.
#[derive(Debug, Clone, Serialize)]
pub struct Facts {
    pub kind: RequestKind,
    pub chain_id: Option<u64>,
    /// The wallet whose funds or configuration are at stake, and its name in the policy.
    pub wallet: Address,
    pub wallet_name: Option<String>,
    pub initiator: Option<String>,
    pub payload_hash: B256,
    pub calls: Vec<DecodedCall>,
    pub movements: Vec<Movement>,
    /// Safe gas refunds the request pays (its own and nested `execTransaction`s').
    pub refunds: Vec<crate::refund::GasRefund>,
    pub grants: Vec<Grant>,
    pub call_facts: Vec<(CallFact, usize)>,
    pub counterparties: Vec<Counterparty>,
    pub simulation: SimStatus,
    pub findings: Vec<Finding>,
    pub history: History,
    /// Unix seconds.
    pub now: u64,
}

impl Facts {
    /// Total leaving the wallet per asset: per asset the larger of what the bytes say and
    /// what the simulation shows.
    pub fn outflow_by_asset(&self) -> BTreeMap<Asset, U256> {
        let mut decoded: BTreeMap<Asset, U256> = BTreeMap::new();
        let mut simulated: BTreeMap<Asset, U256> = BTreeMap::new();
        for m in &self.movements {
            let e = match m.source {
                Source::Decoded => decoded.entry(m.asset).or_default(),
                Source::Simulated => simulated.entry(m.asset).or_default(),
            };
            *e = e.saturating_add(m.amount);
        }
        for (asset, s) in simulated {
            let e = decoded.entry(asset).or_default();
            *e = (*e).max(s);
        }
        decoded
    }

    /// Every distinct destination of value leaving the wallet.
    pub fn destinations(&self) -> Vec<Address> {
        let mut d: Vec<Address> = self.movements.iter().map(|m| m.to).collect();
        d.sort();
        d.dedup();
        d
    }

    /// DELEGATECALL targets: decoded ones, and frames of the simulation that ran foreign
    /// code in the wallet's context.
    pub fn delegatecall_targets(&self) -> Vec<(Address, Source)> {
        let mut out: Vec<(Address, Source)> = self
            .calls
            .iter()
            .filter(|c| c.kind == CallKind::DelegateCall)
            .map(|c| (c.to, Source::Decoded))
            .collect();
        if let Some(sim) = self.simulation.simulation() {
            let singletons = sim
                .safe
                .as_ref()
                .map(|s| vec![s.before.singleton])
                .unwrap_or_default();
            for c in &sim.calls {
                // A Safe proxy delegates every call to its singleton: that is how it works,
                // not a DELEGATECALL the request makes.
                if c.kind == crate::simulate::FrameKind::DelegateCall
                    && c.context == self.wallet
                    && !singletons.contains(&c.code)
                {
                    out.push((c.code, Source::Simulated));
                }
            }
        }
        out.sort();
        out.dedup_by_key(|(a, _)| *a);
        out
    }

    pub fn has(&self, fact: CallFact) -> bool {
        self.call_facts.iter().any(|(f, _)| *f == fact)
    }
}

/// The call facts of decoded calls.
pub fn call_facts(calls: &[DecodedCall]) -> Vec<(CallFact, usize)> {
    let mut out = Vec::new();
    for (i, c) in calls.iter().enumerate() {
        if c.kind == CallKind::DelegateCall {
            out.push((CallFact::Delegatecall, i));
        }
        if c.kind == CallKind::Create {
            out.push((CallFact::ContractCreation, i));
        }
        if !c.value.is_zero() {
            out.push((CallFact::NativeTransfer, i));
        }
        let fact = match &c.action {
            Action::NativeTransfer | Action::Create => None,
            Action::Transfer { .. }
            | Action::TransferFrom { .. }
            | Action::NftSafeTransferFrom { .. }
            | Action::Erc1155Transfer { .. }
            | Action::Permit2TransferFrom { .. } => Some(CallFact::TokenTransfer),
            Action::Approve { amount, .. } | Action::IncreaseAllowance { added: amount, .. } => {
                if unlimited(*amount) {
                    out.push((CallFact::UnlimitedApproval, i));
                }
                Some(CallFact::Approval)
            }
            Action::Permit { value, .. } => {
                if unlimited(*value) {
                    out.push((CallFact::UnlimitedApproval, i));
                }
                Some(CallFact::Permit)
            }
            Action::Permit2Approve { amount, .. } => {
                if unlimited(*amount) {
                    out.push((CallFact::UnlimitedApproval, i));
                }
                Some(CallFact::Approval)
            }
            Action::Permit2Permit { tokens, .. } => {
                if tokens.iter().any(|(_, a)| unlimited(*a)) {
                    out.push((CallFact::UnlimitedApproval, i));
                }
                Some(CallFact::Permit)
            }
            Action::SetApprovalForAll { approved, .. } => {
                approved.then_some(CallFact::SetApprovalForAll)
            }
            // A Safe executing another Safe's transaction (the request's own execution is not).
            Action::SafeExec { .. } => c.parent.is_some().then_some(CallFact::NestedSafeExec),
            Action::MultiSend => Some(CallFact::Multisend),
            Action::SafeConfig(change) => {
                // Replacing the singleton replaces the Safe's code: an upgrade as well.
                if matches!(change, crate::decode::SafeChange::ChangeMasterCopy { .. }) {
                    out.push((CallFact::Upgrade, i));
                }
                Some(CallFact::SafeConfigChange)
            }
            Action::Upgrade { .. } => Some(CallFact::Upgrade),
            Action::ChangeAdmin { .. } => Some(CallFact::AdminChange),
            Action::Malformed { .. } => Some(CallFact::MalformedCall),
            Action::Unknown => Some(CallFact::UnknownCall),
        };
        if let Some(f) = fact {
            out.push((f, i));
        }
    }
    out
}

/// An allowance this large is treated as unlimited (2^128 and above: no real balance is
/// near it; wallets send `type(uint256).max`).
pub fn unlimited(amount: U256) -> bool {
    amount >= U256::from(1u8) << 128
}
