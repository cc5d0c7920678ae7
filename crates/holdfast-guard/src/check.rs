//! One decision, end to end: decode the exact payload, simulate it if a node is there,
//! establish the facts (movements, grants, counterparties screened against intel,
//! findings about the request itself), evaluate the policy.
//!
//! Decoding, screening and evaluation are pure; the only I/O is the simulator's state
//! fetches, through its [`StateSource`](crate::simulate::StateSource).

use std::sync::Arc;

use alloy::primitives::{Address, B256, Bytes, U256, keccak256};
use alloy::sol_types::{SolCall, SolValue};
use holdfast_intel::{IntelIndex, ScreenOptions};
use holdfast_primitives::{Asset, Chain, Date};
use revm::DatabaseRef;
use serde::Serialize;

use crate::abi::erc20;
use crate::approval::VerifiedApproval;
use crate::decode::{self, Action, CallKind, DecodedCall, SafeChange};
use crate::facts::{
    self, CallFact, Counterparty, Facts, Finding, FindingKind, Grant, History, Movement,
    RequestKind, Source,
};
use crate::known;
use crate::policy::{AssetKey, Evaluation, Policy, evaluate};
use crate::refund::GasRefund;
use crate::request::{Envelope, Request};
use crate::safe::{
    SafeVersion, SignatureCheck, SignatureSource, check_signature, check_signatures,
};
use crate::simulate::{Plan, SimStatus, Simulator};
use crate::units::parse_units;

/// A request the guard cannot evaluate at all (the caller gets an error, nothing is
/// signed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    #[error("withdrawal: wallet {0:?} is not a wallet of the policy (by name or address)")]
    UnknownWallet(String),
    #[error(
        "withdrawal: asset {0:?} is not an asset of the policy (by symbol, `native`, or token address with its decimals under [assets])"
    )]
    UnknownAsset(String),
    #[error("withdrawal: amount {amount:?}: {reason}")]
    Amount { amount: String, reason: String },
    #[error(
        "Safe {safe}: its version is unknown, so the safeTxHash cannot be computed{}: pass --rpc (the node's VERSION()), --safe-version, or set safe_version for the wallet in the policy",
        .node_error.as_ref().map(|e| format!(" (the node could not tell: {e})")).unwrap_or_default()
    )]
    SafeVersionUnknown {
        safe: Address,
        node_error: Option<String>,
    },
    #[error(
        "Safe {safe}: the chain id is unknown, so the safeTxHash of Safe {version} (whose hash covers the chain) cannot be computed: give chainId in the request, --chain-id, --rpc, or chain_id for the wallet in the policy"
    )]
    ChainUnknown { safe: Address, version: SafeVersion },
}

/// Inputs of one check besides the request.
#[derive(Debug, Clone, Default)]
pub struct CheckOptions<'a> {
    /// `None`: no simulation (the policy sees `unavailable`).
    pub simulator: Option<&'a Simulator>,
    /// `--safe-version`: used when neither the node nor the policy says.
    pub safe_version: Option<SafeVersion>,
    pub history: History,
    pub approvals: &'a [VerifiedApproval],
    /// Unix seconds.
    pub now: u64,
    /// Why there is no simulator although one was asked for (the node could not be
    /// reached): the policy then sees a failed simulation, not an unavailable one.
    pub sim_failure: Option<String>,
}

impl<'a> CheckOptions<'a> {
    /// The inputs of one decision, as the guard service and `holdfast guard check` both
    /// build them: the simulator, or why there is none although one was asked for (`Err`:
    /// the policy then sees a failed simulation, never an unavailable one); the wallet's
    /// history; the approvals; the time.
    pub fn deciding(
        simulation: Result<Option<&'a Simulator>, String>,
        history: History,
        approvals: &'a [VerifiedApproval],
        now: u64,
    ) -> CheckOptions<'a> {
        let (simulator, sim_failure) = match simulation {
            Ok(s) => (s, None),
            Err(e) => (None, Some(e)),
        };
        CheckOptions {
            simulator,
            safe_version: None,
            history,
            approvals,
            now,
            sim_failure,
        }
    }
}

/// The Safe-specific part of a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SafeReport {
    pub safe: Address,
    /// The hash Holdfast computed: what owners (and Holdfast as co-signer) sign.
    pub safe_tx_hash: B256,
    /// Its two parts, as hardware wallets show them before an EIP-712 signature: the
    /// Safe's domain separator ("domain hash") and the SafeTx struct hash ("message hash");
    /// `safe_tx_hash = keccak256(0x1901 ‖ domain_hash ‖ message_hash)`.
    pub domain_hash: B256,
    pub message_hash: B256,
    pub version: SafeVersion,
    /// Where the version came from: `node`, `policy` or `request`.
    pub version_source: &'static str,
    /// The chain the hash is for; `None` before 1.3.0 when no chain is known (the hash
    /// does not depend on it: the signature is valid for this Safe address on every chain).
    pub chain_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claimed_hash: Option<B256>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contract_hash: Option<B256>,
    pub signatures: Vec<SignatureCheck>,
    pub owners: Option<Vec<Address>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<U256>,
}

/// Everything `guard check` prints.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    #[serde(flatten)]
    pub evaluation: Evaluation,
    pub policy: String,
    pub kind: RequestKind,
    pub chain_id: Option<u64>,
    pub wallet: Address,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wallet_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initiator: Option<String>,
    /// What approvals bind to: the safeTxHash for Safe transactions, the transaction hash for
    /// signed ones, otherwise a hash of every field of the request.
    pub payload_hash: B256,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub safe: Option<SafeReport>,
    /// What the request does, in words.
    pub summary: Vec<String>,
    pub decoded: Vec<DecodedCall>,
    pub movements: Vec<Movement>,
    /// Safe gas refunds the request pays, each at most its `max_amount`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub refunds: Vec<GasRefund>,
    pub grants: Vec<Grant>,
    pub counterparties: Vec<Counterparty>,
    pub findings: Vec<Finding>,
    pub simulation: SimStatus,
}

/// The guard engine: a policy and the intel it screens with.
#[derive(Debug, Clone)]
pub struct Guard {
    policy: Arc<Policy>,
    intel: Arc<IntelIndex>,
}

/// The call a request makes, before decoding: what a hot-wallet gateway signs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootCall {
    pub from: Address,
    /// `None`: a contract creation.
    pub to: Option<Address>,
    pub kind: CallKind,
    pub value: U256,
    pub data: Bytes,
}

impl Guard {
    pub fn new(policy: Arc<Policy>, intel: Arc<IntelIndex>) -> Self {
        Guard { policy, intel }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Decides on one request.
    pub fn check(&self, env: &Envelope, opts: &CheckOptions<'_>) -> Result<Report, CheckError> {
        let policy = &*self.policy;
        let mut findings = Vec::new();
        let (kind, root, wallet) = self.root_call(env)?;
        let decoded = match decode::decode(root.from, root.to, root.kind, root.value, &root.data) {
            Ok(d) => d.calls,
            Err(e) => {
                findings.push(Finding {
                    kind: FindingKind::Undecodable,
                    message: format!("the payload cannot be decoded: {e}"),
                });
                vec![DecodedCall {
                    parent: None,
                    depth: 0,
                    from: root.from,
                    to: root.to.unwrap_or_default(),
                    kind: root.kind,
                    value: root.value,
                    selector: None,
                    function: None,
                    action: Action::Malformed {
                        function: "(payload)",
                        reason: e.to_string(),
                    },
                    data: root.data.clone(),
                }]
            }
        };
        let wallet_def = policy.wallet(wallet);
        let node_chain = opts.simulator.map(|s| s.fork().block().chain_id);
        let chain_id = env
            .request
            .chain_id()
            .or(wallet_def.and_then(|w| w.chain_id))
            .or(node_chain);
        for (what, c) in [
            ("the node's", node_chain),
            ("the wallet's (policy)", wallet_def.and_then(|w| w.chain_id)),
        ] {
            if let (Some(c), Some(r)) = (c, env.request.chain_id())
                && c != r
            {
                findings.push(Finding {
                    kind: FindingKind::WrongChain,
                    message: format!("the request is for chain {r} but {what} chain is {c}"),
                });
            }
        }

        let refunds = crate::refund::of_request(&env.request, &decoded);
        // Executions are simulated at the highest price a refund names, so that the
        // simulation pays the most the refund can (a Safe execution never at 0).
        let refund_price = refunds
            .iter()
            .map(|r| u128::try_from(r.gas_price).unwrap_or(u128::MAX))
            .max()
            .unwrap_or(0);

        // Simulate.
        let simulation = match opts.simulator {
            None => match &opts.sim_failure {
                Some(error) => SimStatus::Failed {
                    error: error.clone(),
                },
                None => SimStatus::Unavailable,
            },
            Some(sim) => match &env.request {
                Request::Safe(s) => sim.run(&Plan::Safe {
                    safe: s.safe,
                    tx: &s.tx,
                    gas_price: refund_price,
                }),
                Request::Transaction(t) => sim.run(&Plan::Tx {
                    from: t.from,
                    to: t.to,
                    value: t.value,
                    data: &t.data,
                    gas: t.gas,
                    gas_price: refund_price,
                }),
                Request::Withdrawal(_) => sim.run(&Plan::Tx {
                    from: root.from,
                    to: root.to,
                    value: root.value,
                    data: &root.data,
                    gas: None,
                    gas_price: 0,
                }),
            },
        };

        // The Safe's hash, version and signatures.
        let mut safe_report = None;
        let payload_hash = match &env.request {
            Request::Safe(s) => {
                let sim_safe = simulation.simulation().and_then(|x| x.safe.as_ref());
                let node_version = sim_safe
                    .and_then(|x| x.before.version.as_deref())
                    .and_then(|v| v.parse::<SafeVersion>().ok());
                let (version, version_source) = match (
                    node_version,
                    wallet_def.and_then(|w| w.safe_version),
                    s.version.or(opts.safe_version),
                ) {
                    (Some(v), _, _) => (v, "node"),
                    (None, Some(v), _) => (v, "policy"),
                    (None, None, Some(v)) => (v, "request"),
                    (None, None, None) => {
                        return Err(CheckError::SafeVersionUnknown {
                            safe: s.safe,
                            node_error: match &simulation {
                                SimStatus::Failed { error } => Some(error.clone()),
                                SimStatus::TimedOut { budget_ms } => Some(format!(
                                    "the simulation ran past its {budget_ms} ms budget"
                                )),
                                SimStatus::Ran(_) | SimStatus::Unavailable => None,
                            },
                        });
                    }
                };
                // Before 1.3.0 the domain has no chain id: the hash is the same on every chain.
                let chain = match chain_id {
                    Some(c) => Some(c),
                    None if !version.domain_has_chain_id() => None,
                    None => {
                        return Err(CheckError::ChainUnknown {
                            safe: s.safe,
                            version,
                        });
                    }
                };
                let hash =
                    s.tx.safe_tx_hash(version, chain.unwrap_or_default(), s.safe);
                let on_chain = chain.map_or_else(
                    || "any chain: its hash has no chain id".to_owned(),
                    |c| format!("chain {c}"),
                );
                if let Some(claimed) = s.claimed_hash.filter(|c| *c != hash) {
                    findings.push(Finding {
                        kind: FindingKind::SafeTxHashMismatch,
                        message: format!(
                            "the request's safeTxHash {claimed} is not the hash of its fields: Holdfast computed {hash} (Safe {version}, {on_chain}); the request was altered or belongs to another transaction"
                        ),
                    });
                }
                let contract_hash = sim_safe.map(|x| x.contract_hash);
                if let Some(ch) = contract_hash.filter(|c| *c != hash) {
                    findings.push(Finding {
                        kind: FindingKind::ContractHashMismatch,
                        message: format!("the Safe's own getTransactionHash gives {ch}, Holdfast computed {hash} for version {version}"),
                    });
                }
                if let Some(sim) = sim_safe
                    && sim.before.nonce > s.tx.nonce
                {
                    findings.push(Finding {
                            kind: FindingKind::StaleNonce,
                            message: format!("Safe nonce {} is already used (the Safe is at {}): this transaction can never execute, or replays an old one", s.tx.nonce, sim.before.nonce),
                        });
                }
                let owners: Option<Vec<Address>> =
                    sim_safe.map(|x| x.before.owners.clone()).or_else(|| {
                        wallet_def
                            .filter(|w| !w.owners.is_empty())
                            .map(|w| w.owners.clone())
                    });
                let mut signatures = Vec::new();
                for (i, c) in s.confirmations.iter().enumerate() {
                    match check_signature(hash, &c.signature, i, c.owner, owners.as_deref()) {
                        Ok(chk) => signatures.push(chk),
                        Err(e) => findings.push(Finding {
                            kind: FindingKind::BadSignature,
                            message: format!("confirmation {i}: {e}"),
                        }),
                    }
                }
                if let Some(blob) = &s.signatures {
                    let confirmations: Vec<(Option<Address>, &[u8])> = s
                        .confirmations
                        .iter()
                        .map(|c| (c.owner, c.signature.as_ref()))
                        .collect();
                    match check_signatures(hash, blob, owners.as_deref(), &confirmations) {
                        // A packed signature with the very bytes of its confirmation is that
                        // signature, checked once.
                        Ok(v) => signatures.extend(v.into_iter().filter(|p| {
                            p.confirmation.is_none_or(|m| {
                                let part = match p.source {
                                    SignatureSource::Packed(i) => blob.get(i * 65..i * 65 + 65),
                                    SignatureSource::Confirmation(_) => None,
                                };
                                part != Some(confirmations[m].1)
                            })
                        })),
                        Err(e) => findings.push(Finding {
                            kind: FindingKind::BadSignature,
                            message: format!("signatures: {e}"),
                        }),
                    }
                }
                for problem in signatures.iter().filter_map(SignatureCheck::problem) {
                    findings.push(Finding {
                        kind: FindingKind::BadSignature,
                        message: problem,
                    });
                }
                if let Some(shown) = &s.shown_method {
                    let ours = decoded.first().and_then(|c| c.function);
                    if ours != Some(shown.as_str()) {
                        findings.push(Finding {
                            kind: FindingKind::ShownMethodMismatch,
                            message: format!(
                                "signers are shown {shown:?} but the bytes call {}",
                                ours.unwrap_or("an unknown function")
                            ),
                        });
                    }
                }
                safe_report = Some(SafeReport {
                    safe: s.safe,
                    safe_tx_hash: hash,
                    domain_hash: crate::safe::domain_separator(
                        version,
                        chain.unwrap_or_default(),
                        s.safe,
                    ),
                    message_hash: s.tx.struct_hash(version),
                    version,
                    version_source,
                    chain_id: chain,
                    claimed_hash: s.claimed_hash,
                    contract_hash,
                    signatures,
                    threshold: sim_safe.map(|x| x.before.threshold),
                    owners,
                });
                hash
            }
            Request::Transaction(t) => match &t.signed {
                Some(signed) => signed.hash,
                None => keccak256(
                    (
                        keccak256("holdfast.tx.v1"),
                        U256::from(chain_id.unwrap_or_default()),
                        t.from,
                        t.to.unwrap_or_default(),
                        t.value,
                        keccak256(&t.data),
                        U256::from(t.gas.unwrap_or_default()),
                        U256::from(t.nonce.unwrap_or(u64::MAX)),
                    )
                        .abi_encode(),
                ),
            },
            Request::Withdrawal(w) => keccak256(
                (
                    keccak256("holdfast.withdrawal.v1"),
                    U256::from(chain_id.unwrap_or_default()),
                    wallet,
                    root.to.unwrap_or_default(),
                    root.value,
                    keccak256(&root.data),
                    keccak256(w.id.as_deref().unwrap_or_default()),
                )
                    .abi_encode(),
            ),
        };

        // Allowlisted code that is not the listed code.
        if let Some(sim) = opts.simulator {
            let db = sim
                .fork()
                .until(std::time::Instant::now() + std::time::Duration::from_secs(2));
            let mut seen = Vec::new();
            for c in decoded.iter().filter(|c| c.kind == CallKind::DelegateCall) {
                if seen.contains(&c.to) {
                    continue;
                }
                seen.push(c.to);
                if let Some(k) = known::known(&c.to) {
                    let actual = db.basic_ref(c.to).ok().flatten().map(|i| i.code_hash);
                    if actual != Some(k.code_hash) {
                        findings.push(Finding {
                            kind: FindingKind::CodeHashMismatch,
                            message: format!(
                                "{} is the address of Safe's {} {} but holds other code on this chain (code hash {}, expected {})",
                                c.to,
                                k.name,
                                k.version,
                                actual.map_or_else(|| "none".to_owned(), |h| h.to_string()),
                                k.code_hash
                            ),
                        });
                    }
                }
            }
        }

        let mut call_facts = facts::call_facts(&decoded);
        if matches!(env.request, Request::Safe(_))
            && let Some(c) = decoded
                .first()
                .filter(|c| matches!(c.action, Action::SafeExec { .. }))
        {
            let _ = c;
            call_facts.push((CallFact::NestedSafeExec, 0));
        }
        if let Request::Transaction(t) = &env.request
            && !t.delegations.is_empty()
        {
            call_facts.push((CallFact::Eip7702Delegation, 0));
        }
        for r in &refunds {
            call_facts.push((CallFact::SafeGasRefund, r.call.unwrap_or(0)));
        }
        let movements = movements(wallet, &decoded, &refunds, &simulation);
        let grants = grants(wallet, &decoded);
        let counterparties = self.counterparties(
            env,
            wallet,
            &decoded,
            &movements,
            &refunds,
            &grants,
            &simulation,
            chain_id,
            opts.now,
        );
        let summary = decoded
            .iter()
            .map(|c| describe(policy, c, wallet))
            .chain(refunds.iter().map(|r| r.summary(policy)))
            .collect();
        let facts = Facts {
            kind,
            chain_id,
            wallet,
            wallet_name: wallet_def.map(|w| w.name.clone()),
            initiator: env.initiator.clone(),
            payload_hash,
            calls: decoded,
            movements,
            refunds,
            grants,
            call_facts,
            counterparties,
            simulation,
            findings,
            history: opts.history.clone(),
            now: opts.now,
        };
        let evaluation = evaluate(policy, &facts, opts.approvals);
        Ok(Report {
            evaluation,
            policy: policy.name.clone(),
            kind: facts.kind,
            chain_id: facts.chain_id,
            wallet: facts.wallet,
            wallet_name: facts.wallet_name,
            initiator: facts.initiator,
            payload_hash,
            safe: safe_report,
            summary,
            decoded: facts.calls,
            movements: facts.movements,
            refunds: facts.refunds,
            grants: facts.grants,
            counterparties: facts.counterparties,
            findings: facts.findings,
            simulation: facts.simulation,
        })
    }

    /// The destinations the request's bytes pay (without a simulation): what a caller
    /// looks up first payments for.
    pub fn decoded_destinations(&self, env: &Envelope) -> Result<Vec<Address>, CheckError> {
        let (_, root, wallet) = self.root_call(env)?;
        let calls = decode::decode(root.from, root.to, root.kind, root.value, &root.data)
            .map(|d| d.calls)
            .unwrap_or_default();
        let refunds = crate::refund::of_request(&env.request, &calls);
        let mut out: Vec<Address> = movements(wallet, &calls, &refunds, &SimStatus::Unavailable)
            .into_iter()
            .map(|m| m.to)
            .collect();
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// The request's own call, its kind, and the wallet at stake (for a Safe transaction,
    /// the call the Safe makes).
    pub fn root_call(
        &self,
        env: &Envelope,
    ) -> Result<(RequestKind, RootCall, Address), CheckError> {
        Ok(match &env.request {
            Request::Safe(s) => (
                RequestKind::Safe,
                RootCall {
                    from: s.safe,
                    to: Some(s.tx.to),
                    kind: s.tx.operation.into(),
                    value: s.tx.value,
                    data: s.tx.data.clone(),
                },
                s.safe,
            ),
            Request::Transaction(t) => {
                let kind = if t.signed.is_some() {
                    RequestKind::SignedTransaction
                } else {
                    RequestKind::Transaction
                };
                // An owner executing a Safe transaction: the Safe's funds are at stake.
                let executes_safe = t.to.is_some()
                    && t.data.len() >= 4
                    && t.data[..4] == crate::abi::safe::execTransactionCall::SELECTOR;
                let wallet = if executes_safe {
                    t.to.unwrap_or(t.from)
                } else {
                    t.from
                };
                (
                    kind,
                    RootCall {
                        from: t.from,
                        to: t.to,
                        kind: if t.to.is_some() {
                            CallKind::Call
                        } else {
                            CallKind::Create
                        },
                        value: t.value,
                        data: t.data.clone(),
                    },
                    wallet,
                )
            }
            Request::Withdrawal(w) => {
                let policy = &*self.policy;
                let wallet = policy
                    .wallet_by_name(&w.wallet)
                    .map(|x| x.address)
                    .or_else(|| crate::request::parse_address(&w.wallet))
                    .ok_or_else(|| CheckError::UnknownWallet(w.wallet.clone()))?;
                let asset = policy
                    .asset_by_name(&w.asset)
                    .or_else(|| {
                        crate::request::parse_address(&w.asset)
                            .and_then(|a| policy.asset(AssetKey::Token(a)).cloned())
                    })
                    .ok_or_else(|| CheckError::UnknownAsset(w.asset.clone()))?;
                let amount =
                    parse_units(&w.amount, asset.decimals).map_err(|e| CheckError::Amount {
                        amount: w.amount.clone(),
                        reason: format!("{} for {} ({} decimals)", e, asset.symbol, asset.decimals),
                    })?;
                let root = match asset.key {
                    AssetKey::Native => RootCall {
                        from: wallet,
                        to: Some(w.destination),
                        kind: CallKind::Call,
                        value: amount,
                        data: Bytes::new(),
                    },
                    AssetKey::Token(token) => RootCall {
                        from: wallet,
                        to: Some(token),
                        kind: CallKind::Call,
                        value: U256::ZERO,
                        data: erc20::transferCall {
                            to: w.destination,
                            amount,
                        }
                        .abi_encode()
                        .into(),
                    },
                };
                (RequestKind::Withdrawal, root, wallet)
            }
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn counterparties(
        &self,
        env: &Envelope,
        wallet: Address,
        calls: &[DecodedCall],
        movements: &[Movement],
        refunds: &[GasRefund],
        grants: &[Grant],
        simulation: &SimStatus,
        chain_id: Option<u64>,
        now: u64,
    ) -> Vec<Counterparty> {
        let mut roles: Vec<(Address, &'static str)> = Vec::new();
        for m in movements {
            roles.push((m.to, "destination"));
        }
        for r in refunds {
            if let Some(receiver) = r.receiver {
                roles.push((receiver, "gas refund receiver"));
            }
            if let Some(token) = r.asset.token() {
                roles.push((token, "gas token (the Safe calls its transfer)"));
            }
        }
        for g in grants {
            roles.push((g.spender, "spender"));
        }
        for c in calls {
            roles.push((
                c.to,
                match c.kind {
                    CallKind::DelegateCall => "delegatecall target",
                    _ => "call target",
                },
            ));
            match &c.action {
                Action::SafeConfig(change) => match change {
                    SafeChange::AddOwner { owner, .. } => roles.push((*owner, "new owner")),
                    SafeChange::SwapOwner { new_owner, .. } => {
                        roles.push((*new_owner, "new owner"))
                    }
                    SafeChange::EnableModule { module } => roles.push((*module, "new module")),
                    SafeChange::SetGuard { guard } | SafeChange::SetModuleGuard { guard } => {
                        roles.push((*guard, "new guard"))
                    }
                    SafeChange::SetFallbackHandler { handler } => {
                        roles.push((*handler, "new fallback handler"))
                    }
                    SafeChange::ChangeMasterCopy { master_copy } => {
                        roles.push((*master_copy, "new singleton"))
                    }
                    SafeChange::RemoveOwner { .. }
                    | SafeChange::ChangeThreshold { .. }
                    | SafeChange::DisableModule { .. } => {}
                },
                Action::Upgrade { implementation, .. } => {
                    roles.push((*implementation, "new implementation"))
                }
                Action::ChangeAdmin { new_admin } => roles.push((*new_admin, "new admin or owner")),
                Action::TransferFrom { from, .. } if *from != wallet => {
                    roles.push((*from, "token source"))
                }
                _ => {}
            }
        }
        if let Request::Transaction(t) = &env.request {
            for d in &t.delegations {
                roles.push((d.delegate, "EIP-7702 delegate"));
            }
        }
        if let Some(sim) = simulation.simulation() {
            for c in &sim.calls {
                roles.push((c.code, "called in the simulation"));
            }
            for a in &sim.created {
                roles.push((*a, "created in the simulation"));
            }
            for d in &sim.deltas {
                roles.push((d.holder, "balance changed in the simulation"));
            }
        }
        let executor = crate::simulate::executor();
        roles.retain(|(a, _)| *a != wallet && !a.is_zero() && !is_precompile(a) && *a != executor);
        roles.sort();
        roles.dedup();
        let options = ScreenOptions {
            chain: chain_id.and_then(Chain::from_evm_chain_id),
            as_of: Date::from_unix_days(i64::try_from(now / 86_400).unwrap_or(i64::MAX)),
        };
        let mut out: Vec<Counterparty> = Vec::new();
        for (address, role) in roles {
            if let Some(last) = out.last_mut().filter(|c| c.address == address) {
                last.roles.push(role);
                continue;
            }
            let v = self.intel.screen_evm(&address, &options);
            let mut categories: Vec<_> = v
                .labels
                .iter()
                .filter(|l| l.active)
                .map(|l| l.category)
                .collect();
            categories.sort();
            categories.dedup();
            let (risk, reasons) = if v.labels.is_empty() {
                (v.risk, Vec::new())
            } else {
                (v.risk, v.reasons)
            };
            out.push(Counterparty {
                address,
                roles: vec![role],
                risk,
                categories,
                reasons,
            });
        }
        out
    }
}

fn is_precompile(a: &Address) -> bool {
    a[..19].iter().all(|b| *b == 0) && a[19] <= 0x11
}

/// Value leaving `wallet`: what its calls say, the gas refunds it pays (at most), and what
/// the simulation shows reaching others.
fn movements(
    wallet: Address,
    calls: &[DecodedCall],
    refunds: &[GasRefund],
    simulation: &SimStatus,
) -> Vec<Movement> {
    let mut out = Vec::new();
    let decoded = |to: Address, asset: Asset, amount: U256| Movement {
        to,
        asset,
        amount,
        source: Source::Decoded,
        gas_refund: false,
    };
    for r in refunds.iter().filter(|r| r.payer == wallet) {
        out.push(Movement {
            to: r.receiver.unwrap_or(Address::ZERO),
            asset: r.asset,
            amount: r.counted_amount(),
            source: Source::Decoded,
            gas_refund: true,
        });
    }
    for c in calls.iter().filter(|c| c.from == wallet) {
        if c.kind == CallKind::Call && !c.value.is_zero() {
            out.push(decoded(c.to, Asset::Native, c.value));
        }
        if c.kind != CallKind::Call {
            continue;
        }
        let token = c.to;
        match &c.action {
            Action::Transfer { to, amount } => {
                out.push(decoded(*to, Asset::Erc20 { token }, *amount))
            }
            Action::TransferFrom { from, to, amount } if *from == wallet => {
                out.push(decoded(*to, Asset::Erc20 { token }, *amount));
            }
            Action::NftSafeTransferFrom { from, to, id } if *from == wallet => {
                out.push(decoded(
                    *to,
                    Asset::Erc721 { token, id: *id },
                    U256::from(1),
                ));
            }
            Action::Erc1155Transfer {
                from,
                to,
                ids,
                amounts,
            } if *from == wallet => {
                for (id, amount) in ids.iter().zip(amounts) {
                    out.push(decoded(*to, Asset::Erc1155 { token, id: *id }, *amount));
                }
            }
            Action::Permit2TransferFrom { transfers } => {
                for t in transfers.iter().filter(|t| t.from == wallet) {
                    out.push(decoded(t.to, Asset::Erc20 { token: t.token }, t.amount));
                }
            }
            _ => {}
        }
    }
    // Transfers by someone else out of the wallet (an allowance) are outflows too.
    for c in calls
        .iter()
        .filter(|c| c.from != wallet && c.kind == CallKind::Call)
    {
        if let Action::TransferFrom { from, to, amount } = &c.action
            && *from == wallet
        {
            out.push(decoded(*to, Asset::Erc20 { token: c.to }, *amount));
        }
    }
    if let Some(sim) = simulation.simulation() {
        let lost: Vec<&Asset> = sim
            .deltas
            .iter()
            .filter(|d| d.holder == wallet && d.delta.is_negative())
            .map(|d| &d.asset)
            .collect();
        let executor = crate::simulate::executor();
        for d in sim
            .deltas
            .iter()
            .filter(|d| d.holder != wallet && d.delta.is_positive() && lost.contains(&&d.asset))
        {
            // The simulation's executor stands for whoever executes: a refund to tx.origin.
            let to_executor = d.holder == executor;
            out.push(Movement {
                to: if to_executor { Address::ZERO } else { d.holder },
                asset: d.asset,
                amount: d.delta.unsigned_abs(),
                source: Source::Simulated,
                gas_refund: to_executor,
            });
        }
    }
    out
}

/// Permissions over the wallet's assets that the calls grant.
fn grants(wallet: Address, calls: &[DecodedCall]) -> Vec<Grant> {
    let mut out = Vec::new();
    for c in calls {
        let by_wallet = c.from == wallet && c.kind == CallKind::Call;
        let g = |spender: Address, token: Address, amount: U256, how: &'static str| Grant {
            spender,
            token,
            amount,
            unlimited: facts::unlimited(amount),
            how,
        };
        match &c.action {
            Action::Approve { spender, amount } if by_wallet => {
                out.push(g(*spender, c.to, *amount, "approve"))
            }
            Action::IncreaseAllowance { spender, added } if by_wallet => {
                out.push(g(*spender, c.to, *added, "increaseAllowance"));
            }
            Action::Permit {
                owner,
                spender,
                value,
                ..
            } if *owner == wallet => {
                out.push(g(*spender, c.to, *value, "permit"));
            }
            Action::Permit2Approve {
                token,
                spender,
                amount,
                ..
            } if by_wallet => {
                out.push(g(*spender, *token, *amount, "Permit2 approve"));
            }
            Action::Permit2Permit {
                owner,
                spender,
                tokens,
            } if *owner == wallet => {
                for (token, amount) in tokens {
                    out.push(g(*spender, *token, *amount, "Permit2 permit"));
                }
            }
            Action::SetApprovalForAll {
                operator,
                approved: true,
            } if by_wallet => out.push(Grant {
                spender: *operator,
                token: c.to,
                amount: U256::MAX,
                unlimited: true,
                how: "setApprovalForAll",
            }),
            _ => {}
        }
    }
    out
}

/// One call in words.
pub fn describe(policy: &Policy, c: &DecodedCall, wallet: Address) -> String {
    use crate::policy::describe_amount;
    let who = if c.from == wallet {
        policy.wallet(wallet).map_or_else(
            || format!("{}", c.from),
            |w| format!("{} ({})", w.name, c.from),
        )
    } else {
        c.from.to_string()
    };
    let how = match c.kind {
        CallKind::Call => "calls",
        CallKind::DelegateCall => "DELEGATECALLs (runs its code as itself)",
        CallKind::Create => "creates a contract",
    };
    let value = if c.value.is_zero() {
        String::new()
    } else {
        format!(" with {}", describe_amount(policy, &Asset::Native, c.value))
    };
    let what = match &c.action {
        Action::NativeTransfer => "(no data)".to_owned(),
        Action::Transfer { to, amount } => format!(
            "transfer {} to {to}",
            describe_amount(policy, &Asset::Erc20 { token: c.to }, *amount)
        ),
        Action::TransferFrom { from, to, amount } => format!(
            "transferFrom {from} to {to}: {}",
            describe_amount(policy, &Asset::Erc20 { token: c.to }, *amount)
        ),
        Action::Approve { spender, amount } => format!(
            "approve {spender} to spend {}",
            if facts::unlimited(*amount) {
                "an unlimited amount".to_owned()
            } else {
                describe_amount(policy, &Asset::Erc20 { token: c.to }, *amount)
            }
        ),
        Action::IncreaseAllowance { spender, added } => {
            format!("increaseAllowance of {spender} by {added}")
        }
        Action::Permit {
            owner,
            spender,
            value,
            ..
        } => format!("permit: {owner} lets {spender} spend {value}"),
        Action::Permit2Approve {
            token,
            spender,
            amount,
            ..
        } => format!("Permit2 approve {spender} for {amount} of {token}"),
        Action::Permit2Permit {
            owner,
            spender,
            tokens,
        } => format!(
            "Permit2 permit: {owner} lets {spender} spend {} token(s)",
            tokens.len()
        ),
        Action::Permit2TransferFrom { transfers } => {
            format!("Permit2 transferFrom ({} transfer(s))", transfers.len())
        }
        Action::NftSafeTransferFrom { from, to, id } => {
            format!("safeTransferFrom NFT #{id} from {from} to {to}")
        }
        Action::Erc1155Transfer { from, to, ids, .. } => format!(
            "ERC-1155 transfer of {} id(s) from {from} to {to}",
            ids.len()
        ),
        Action::SetApprovalForAll { operator, approved } => {
            format!("setApprovalForAll({operator}, {approved})")
        }
        Action::SafeExec { tx, .. } => format!(
            "execTransaction: the Safe {} {} {}",
            if tx.operation == crate::safe::Operation::DelegateCall {
                "DELEGATECALLs"
            } else {
                "calls"
            },
            tx.to,
            if tx.data.is_empty() {
                "(no data)".to_owned()
            } else {
                format!("with {} bytes of data", tx.data.len())
            }
        ),
        Action::MultiSend => "multiSend batch".to_owned(),
        Action::SafeConfig(ch) => format!(
            "Safe configuration change: {}",
            serde_json::to_string(ch).unwrap_or_default()
        ),
        Action::Upgrade {
            proxy,
            implementation,
        } => format!("upgrade proxy {proxy} to implementation {implementation}"),
        Action::ChangeAdmin { new_admin } => format!("hand admin/ownership to {new_admin}"),
        Action::Create => format!("{} bytes of creation code", c.data.len()),
        Action::Malformed { function, reason } => {
            format!("{function} with malformed arguments: {reason}")
        }
        Action::Unknown => format!(
            "unknown function {} ({} bytes of data)",
            c.selector.map(|s| s.to_string()).unwrap_or_default(),
            c.data.len()
        ),
    };
    let indent = "  ".repeat(usize::from(c.depth));
    match c.kind {
        CallKind::Create => format!("{indent}{who} {how}{value}: {what}"),
        _ => format!("{indent}{who} {how} {}{value}: {what}", c.to),
    }
}
