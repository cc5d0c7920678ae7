//! Simulation: the payload run with revm on a fork of the chain's current state.
//!
//! A Safe transaction is executed through the Safe's own `execTransaction`, as it will be
//! once signed: the owners' approvals are planted in the Safe's `approvedHashes` (the
//! "approved hash" signature form, `v = 1`) and the Safe's nonce is set to the
//! transaction's, so the real signature check, guard, nonce increment and inner call all run.
//! The report says what changed: asset deltas per address (native from balances, tokens
//! from `Transfer`/`Deposit`/`Withdrawal`/ERC-1155 events), writes to critical storage slots
//! (a Safe's singleton, owners, threshold, modules, guard, fallback handler; any EIP-1967
//! implementation, admin or beacon slot), contracts created, every call frame with its kind,
//! and the revert reason.
//!
//! A simulation that cannot run (node unreachable, not a Safe, budget exceeded) is a
//! [`SimStatus`] other than `Ran`: a fact the policy sees, never an allow.

mod fork;
mod inspector;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use alloy::primitives::{Address, B256, Bytes, I256, Log, TxKind, U256};
use alloy::sol_types::{SolCall, SolError, SolEvent};
use revm::context::result::{ExecutionResult, Output};
use revm::context::{Context, TxEnv};
use revm::database::CacheDB;
use revm::primitives::hardfork::SpecId;
use revm::state::EvmState;
use revm::{Database, DatabaseCommit, DatabaseRef, InspectEvm, MainBuilder, MainContext};
use serde::Serialize;

pub use fork::{AccountState, BlockInfo, Fork, ForkDb, MemoryState, StateError, StateSource};
pub use inspector::{FrameKind, SimCall};

use crate::abi::{erc20, erc1155, safe as safe_abi, weth};
use crate::safe::{
    SafeTx, approved_hash_signatures, approved_hash_slot, eip1967, mapping_slot, slots,
};
use holdfast_primitives::Asset;

/// Gas for a simulated transaction when the request names none: the Osaka per-transaction
/// cap (EIP-7825).
pub const DEFAULT_GAS: u64 = 1 << 24;

/// How long a simulation may take, and its gas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimOptions {
    /// Fetching state and executing, together.
    pub budget: Duration,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            budget: Duration::from_secs(5),
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub enum Plan<'a> {
    /// A transaction from `from` (an EOA or a contract account).
    Tx {
        from: Address,
        to: Option<Address>,
        value: U256,
        data: &'a Bytes,
        gas: Option<u64>,
        /// `tx.gasprice` (wei): the sender is credited what the gas costs, so only a Safe's
        /// gas refund (which reads it) changes balances; 0 for a transaction that pays none.
        gas_price: u128,
    },
    /// A Safe transaction, executed through `execTransaction` as if its owners had signed,
    /// by an executor that sends it at `gas_price` (non-zero: a refund is paid at
    /// `min(gasPrice, tx.gasprice)`, so the refund's own `gasPrice` shows the most it pays).
    Safe {
        safe: Address,
        tx: &'a SafeTx,
        gas_price: u128,
    },
}

/// The account that sends a simulated Safe execution: no owner, so every approval is the
/// planted one; `tx.origin`, so a refund to a zero `refundReceiver` is paid to it.
pub fn executor() -> Address {
    Address::from_word(alloy::primitives::keccak256(
        b"holdfast.simulation.executor",
    ))
}

/// The gas price of a simulated Safe execution when no refund names a higher one: real
/// executions never run at 0 (1 gwei).
pub const MIN_GAS_PRICE: u128 = 1_000_000_000;

/// How the execution ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    Success,
    Reverted { reason: String },
    Halted { reason: String },
}

/// A change of an address's balance of one asset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AssetDelta {
    pub holder: Address,
    pub asset: Asset,
    /// Signed, in the asset's smallest unit.
    pub delta: I256,
}

/// What a critical slot is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CriticalSlot {
    /// A Safe's slot 0: the singleton (`masterCopy`) its proxy delegates every call to.
    SafeSingleton,
    SafeOwners,
    SafeOwnerCount,
    SafeThreshold,
    SafeModules,
    SafeGuard,
    SafeModuleGuard,
    SafeFallbackHandler,
    Eip1967Implementation,
    Eip1967Admin,
    Eip1967Beacon,
}

impl CriticalSlot {
    pub const fn describe(self) -> &'static str {
        match self {
            CriticalSlot::SafeSingleton => {
                "the Safe's singleton (slot 0, masterCopy: the code every call runs)"
            }
            CriticalSlot::SafeOwners => "the Safe's owners",
            CriticalSlot::SafeOwnerCount => "the Safe's owner count",
            CriticalSlot::SafeThreshold => "the Safe's threshold",
            CriticalSlot::SafeModules => "the Safe's modules",
            CriticalSlot::SafeGuard => "the Safe's transaction guard",
            CriticalSlot::SafeModuleGuard => "the Safe's module guard",
            CriticalSlot::SafeFallbackHandler => "the Safe's fallback handler",
            CriticalSlot::Eip1967Implementation => "an EIP-1967 proxy implementation",
            CriticalSlot::Eip1967Admin => "an EIP-1967 proxy admin",
            CriticalSlot::Eip1967Beacon => "an EIP-1967 proxy beacon",
        }
    }
}

/// One write to a critical slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CriticalWrite {
    pub account: Address,
    pub slot: B256,
    pub what: CriticalSlot,
    pub before: B256,
    pub after: B256,
}

/// A Safe's configuration, read through its own views.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SafeState {
    pub version: Option<String>,
    pub singleton: Address,
    pub owners: Vec<Address>,
    pub threshold: U256,
    pub nonce: U256,
    pub modules: Vec<Address>,
    pub guard: Address,
    pub fallback_handler: Address,
}

/// The Safe side of a simulation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SafeSimulation {
    pub before: SafeState,
    /// `None` when the execution did not succeed (nothing changed) or the Safe no longer
    /// answers its views afterwards (its code was replaced).
    pub after: Option<SafeState>,
    /// The hash the Safe's own `getTransactionHash` gives for the transaction.
    pub contract_hash: B256,
    /// Whether `execTransaction` reported the inner call as failed (`ExecutionFailure`).
    pub inner_failed: bool,
}

/// What a simulation found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Simulation {
    /// The block whose state it ran on (as the next block).
    pub block: u64,
    pub outcome: Outcome,
    pub gas_used: u64,
    pub calls: Vec<SimCall>,
    pub created: Vec<Address>,
    pub deltas: Vec<AssetDelta>,
    pub critical_writes: Vec<CriticalWrite>,
    /// Other storage slots written (count), for the record.
    pub other_writes: usize,
    /// Every address the execution touched.
    pub touched: Vec<Address>,
    pub safe: Option<SafeSimulation>,
    /// State reads that went to the node (0 when the state was warm).
    pub fetches: u64,
    pub elapsed_us: u64,
}

/// The simulation as the policy sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum SimStatus {
    Ran(Box<Simulation>),
    /// No node was given: nothing was simulated.
    Unavailable,
    /// It could not run: the node failed, the target is not what the request says, ...
    Failed {
        error: String,
    },
    /// It ran past its time budget.
    TimedOut {
        budget_ms: u64,
    },
}

impl SimStatus {
    pub fn simulation(&self) -> Option<&Simulation> {
        match self {
            SimStatus::Ran(s) => Some(s),
            _ => None,
        }
    }
}

/// Runs plans against one fork. Cheap to share; the fork's cache makes repeated
/// simulations on the same state warm.
#[derive(Debug)]
pub struct Simulator {
    fork: Fork,
    options: SimOptions,
}

type Db<'a> = CacheDB<ForkDb<'a>>;

#[derive(Debug)]
enum SimError {
    State(StateError),
    Other(String),
}

impl From<StateError> for SimError {
    fn from(e: StateError) -> Self {
        SimError::State(e)
    }
}

impl Simulator {
    pub fn new(fork: Fork, options: SimOptions) -> Self {
        Simulator { fork, options }
    }

    pub const fn fork(&self) -> &Fork {
        &self.fork
    }

    /// Runs `plan`. Never panics on its input; every failure is a [`SimStatus`].
    pub fn run(&self, plan: &Plan<'_>) -> SimStatus {
        let started = Instant::now();
        let deadline = started + self.options.budget;
        let fetches_before = self.fork.fetches();
        let mut db = CacheDB::new(self.fork.until(deadline));
        let result = match plan {
            Plan::Tx {
                from,
                to,
                value,
                data,
                gas,
                gas_price,
            } => {
                let tx = self.tx_env(*from, *to, *value, (*data).clone(), *gas, *gas_price);
                self.fund_gas(&mut db, &tx)
                    .map_err(SimError::from)
                    .and_then(|()| self.execute(&mut db, tx, deadline, None))
                    .map(|(sim, _)| sim)
            }
            Plan::Safe {
                safe,
                tx,
                gas_price,
            } => self.run_safe(&mut db, *safe, tx, *gas_price, deadline),
        };
        match result {
            Ok(mut sim) => {
                sim.fetches = self.fork.fetches() - fetches_before;
                sim.elapsed_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                SimStatus::Ran(Box::new(sim))
            }
            Err(SimError::State(StateError::Deadline { .. })) | Err(SimError::Other(_))
                if Instant::now() >= deadline =>
            {
                SimStatus::TimedOut {
                    budget_ms: u64::try_from(self.options.budget.as_millis()).unwrap_or(u64::MAX),
                }
            }
            Err(SimError::State(e)) => SimStatus::Failed {
                error: e.to_string(),
            },
            Err(SimError::Other(e)) => SimStatus::Failed { error: e },
        }
    }

    fn tx_env(
        &self,
        from: Address,
        to: Option<Address>,
        value: U256,
        data: Bytes,
        gas: Option<u64>,
        gas_price: u128,
    ) -> TxEnv {
        TxEnv {
            caller: from,
            gas_limit: gas.unwrap_or(DEFAULT_GAS).min(DEFAULT_GAS),
            gas_price,
            kind: to.map_or(TxKind::Create, TxKind::Call),
            value,
            data,
            nonce: 0,
            chain_id: Some(self.fork.block().chain_id),
            ..TxEnv::default()
        }
    }

    /// Credits the sender what `tx`'s gas can cost, so that a price the account could not
    /// pay does not fail the simulation; [`Simulator::execute`] takes the fee out of the
    /// deltas again.
    fn fund_gas(&self, db: &mut Db<'_>, tx: &TxEnv) -> Result<(), StateError> {
        if tx.gas_price == 0 {
            return Ok(());
        }
        let mut info = db.basic(tx.caller)?.unwrap_or_default();
        info.balance = info
            .balance
            .saturating_add(U256::from(tx.gas_limit) * U256::from(tx.gas_price));
        db.insert_account_info(tx.caller, info);
        Ok(())
    }

    fn context<'a, 'b>(&self, db: &'b mut Db<'a>) -> revm::handler::MainnetContext<&'b mut Db<'a>> {
        let block = *self.fork.block();
        Context::mainnet()
            .with_db(db)
            .modify_cfg_chained(|c| {
                c.spec = SpecId::OSAKA;
                c.chain_id = block.chain_id;
                c.disable_nonce_check = true;
                c.disable_eip3607 = true;
                c.disable_base_fee = true;
            })
            .modify_block_chained(|b| {
                b.number = U256::from(block.number + 1);
                b.timestamp = U256::from(block.timestamp + 12);
                b.gas_limit = block.gas_limit.max(DEFAULT_GAS);
                b.basefee = 0;
                b.beneficiary = block.coinbase;
                b.prevrandao = Some(block.prevrandao);
            })
    }

    /// Executes without committing; returns the result, the state diff and the recorder.
    fn transact(
        &self,
        db: &mut Db<'_>,
        tx: TxEnv,
        deadline: Instant,
    ) -> Result<(ExecutionResult, EvmState, inspector::Recorder), SimError> {
        let recorder = inspector::Recorder::new(deadline);
        let mut evm = self.context(db).build_mainnet_with_inspector(recorder);
        let out = evm.inspect_tx(tx).map_err(|e| match e {
            revm::context::result::EVMError::Database(s) => SimError::State(s),
            other => SimError::Other(format!("the transaction is invalid for the EVM: {other}")),
        })?;
        let recorder = std::mem::replace(&mut evm.inspector, inspector::Recorder::new(deadline));
        if recorder.timed_out {
            return Err(SimError::Other("time budget exceeded".into()));
        }
        Ok((out.result, out.state, recorder))
    }

    /// A read-only call (views of the Safe before and after).
    fn view(
        &self,
        db: &mut Db<'_>,
        to: Address,
        data: Vec<u8>,
        deadline: Instant,
    ) -> Result<Bytes, SimError> {
        let tx = self.tx_env(
            Address::ZERO,
            Some(to),
            U256::ZERO,
            data.into(),
            Some(5_000_000),
            0,
        );
        let (result, _, _) = self.transact(db, tx, deadline)?;
        match result {
            ExecutionResult::Success {
                output: Output::Call(b),
                ..
            } => Ok(b),
            ExecutionResult::Success { .. } => Ok(Bytes::new()),
            ExecutionResult::Revert { output, .. } => Err(SimError::Other(format!(
                "reverted: {}",
                revert_reason(&output)
            ))),
            ExecutionResult::Halt { reason, .. } => {
                Err(SimError::Other(format!("halted: {reason:?}")))
            }
        }
    }

    fn view_as<C: SolCall>(
        &self,
        db: &mut Db<'_>,
        to: Address,
        call: C,
        deadline: Instant,
    ) -> Result<C::Return, SimError> {
        let out = self.view(db, to, call.abi_encode(), deadline)?;
        C::abi_decode_returns(&out).map_err(|e| SimError::Other(format!("{}: {e}", C::SIGNATURE)))
    }

    fn safe_state(
        &self,
        db: &mut Db<'_>,
        safe: Address,
        deadline: Instant,
    ) -> Result<SafeState, SimError> {
        let not_safe = |what: &str, e: SimError| match e {
            SimError::Other(m) => SimError::Other(format!(
                "{safe} does not answer {what} ({m}): not a Safe, or not deployed at block {}",
                self.fork.block().number
            )),
            s => s,
        };
        let owners = self
            .view_as(db, safe, safe_abi::getOwnersCall {}, deadline)
            .map_err(|e| not_safe("getOwners()", e))?;
        let threshold = self
            .view_as(db, safe, safe_abi::getThresholdCall {}, deadline)
            .map_err(|e| not_safe("getThreshold()", e))?;
        let nonce = self
            .view_as(db, safe, safe_abi::nonceCall {}, deadline)
            .map_err(|e| not_safe("nonce()", e))?;
        let version = self
            .view_as(db, safe, safe_abi::VERSIONCall {}, deadline)
            .ok();
        let modules = self
            .view_as(
                db,
                safe,
                safe_abi::getModulesPaginatedCall {
                    start: Address::with_last_byte(1),
                    pageSize: U256::from(100),
                },
                deadline,
            )
            .map(|r| r.array)
            .unwrap_or_default();
        let word = |db: &mut Db<'_>, slot: B256| -> Result<Address, SimError> {
            let v = db.storage(safe, slot.into())?;
            Ok(Address::from_word(v.into()))
        };
        Ok(SafeState {
            version,
            singleton: word(db, slots::SINGLETON)?,
            owners,
            threshold,
            nonce,
            modules,
            guard: word(db, slots::GUARD)?,
            fallback_handler: word(db, slots::FALLBACK_HANDLER)?,
        })
    }

    fn run_safe(
        &self,
        db: &mut Db<'_>,
        safe: Address,
        tx: &SafeTx,
        gas_price: u128,
        deadline: Instant,
    ) -> Result<Simulation, SimError> {
        let before = self.safe_state(db, safe, deadline)?;
        let contract_hash = self.view_as(db, safe, tx.hash_call(), deadline)?;
        let threshold = usize::try_from(before.threshold).unwrap_or(usize::MAX);
        if threshold == 0 || threshold > before.owners.len() {
            return Err(SimError::Other(format!(
                "Safe {safe} has threshold {} with {} owners: not set up",
                before.threshold,
                before.owners.len()
            )));
        }
        // Plant the approvals of the first `threshold` owners (ascending, as the Safe checks
        // them) and the transaction's nonce; the signatures are the approved-hash form.
        let mut owners = before.owners.clone();
        owners.sort();
        owners.truncate(threshold);
        for owner in &owners {
            db.insert_account_storage(
                safe,
                approved_hash_slot(*owner, contract_hash).into(),
                U256::from(1),
            )?;
        }
        db.insert_account_storage(safe, U256::from(slots::NONCE), tx.nonce)?;
        let call = tx.exec_call(approved_hash_signatures(&owners));
        let env = self.tx_env(
            executor(),
            Some(safe),
            U256::ZERO,
            call.abi_encode().into(),
            None,
            gas_price.max(MIN_GAS_PRICE),
        );
        self.fund_gas(db, &env)?;
        let (mut sim, logs) = self.execute(db, env, deadline, Some(safe))?;
        let failure_topic = alloy::primitives::keccak256("ExecutionFailure(bytes32,uint256)");
        let inner_failed = matches!(sim.outcome, Outcome::Success)
            && logs
                .iter()
                .any(|l| l.address == safe && l.topics().first() == Some(&failure_topic));
        let after = if matches!(sim.outcome, Outcome::Success) {
            self.safe_state(db, safe, deadline).ok()
        } else {
            None
        };
        sim.safe = Some(SafeSimulation {
            before,
            after,
            contract_hash,
            inner_failed,
        });
        Ok(sim)
    }

    /// Executes `tx`, reads what changed, and commits it to `db` (the simulation's own
    /// layer) when it succeeded, so views afterwards see the post-state.
    fn execute(
        &self,
        db: &mut Db<'_>,
        tx: TxEnv,
        deadline: Instant,
        safe: Option<Address>,
    ) -> Result<(Simulation, Vec<Log>), SimError> {
        let (caller, gas_price) = (tx.caller, tx.gas_price);
        let (result, state, recorder) = self.transact(db, tx, deadline)?;
        let (outcome, gas_used, logs) = match result {
            ExecutionResult::Success { gas, logs, .. } => {
                (Outcome::Success, gas.tx_gas_used(), logs)
            }
            ExecutionResult::Revert { gas, output, .. } => (
                Outcome::Reverted {
                    reason: revert_reason(&output),
                },
                gas.tx_gas_used(),
                Vec::new(),
            ),
            ExecutionResult::Halt { reason, gas, .. } => (
                Outcome::Halted {
                    reason: format!("{reason:?}"),
                },
                gas.tx_gas_used(),
                Vec::new(),
            ),
        };
        let mut deltas: BTreeMap<(Address, Asset), I256> = BTreeMap::new();
        let mut critical_writes = Vec::new();
        let mut other_writes: usize = 0;
        let mut touched: Vec<Address> = state.keys().copied().collect();
        touched.sort();
        if matches!(outcome, Outcome::Success) {
            for (address, account) in &state {
                let before = db
                    .basic_ref(*address)?
                    .map(|i| i.balance)
                    .unwrap_or_default();
                let after = account.info.balance;
                if before != after {
                    let d = signed(after).saturating_sub(signed(before));
                    *deltas.entry((*address, Asset::Native)).or_default() += d;
                }
                for (slot, value) in account.changed_storage_slots() {
                    let slot = B256::from(*slot);
                    match classify_slot(*address, slot, safe) {
                        Some(what) => critical_writes.push(CriticalWrite {
                            account: *address,
                            slot,
                            what,
                            before: value.original_value.into(),
                            after: value.present_value.into(),
                        }),
                        None => other_writes += 1,
                    }
                }
            }
            // The fee: the sender paid it to the block's beneficiary (the base fee is 0 here).
            // It is the executor's own cost, not a movement of the request.
            if gas_price > 0 {
                let fee = signed(U256::from(gas_used) * U256::from(gas_price));
                *deltas.entry((caller, Asset::Native)).or_default() += fee;
                *deltas
                    .entry((self.fork.block().coinbase, Asset::Native))
                    .or_default() -= fee;
            }
            token_deltas(&logs, &mut deltas);
        }
        // Mapping writes (owners, modules) are recognised from the keys the Safe's views know.
        if let Some(safe) = safe
            && let Some(account) = state.get(&safe)
        {
            for (slot, value) in account.changed_storage_slots() {
                let slot = B256::from(*slot);
                if classify_slot(safe, slot, Some(safe)).is_some() {
                    continue;
                }
                let key = mapping_key(slot, &touched, &recorder.calls);
                if let Some(what) = key {
                    other_writes = other_writes.saturating_sub(1);
                    critical_writes.push(CriticalWrite {
                        account: safe,
                        slot,
                        what,
                        before: value.original_value.into(),
                        after: value.present_value.into(),
                    });
                }
            }
        }
        critical_writes.sort_by_key(|w| (w.account, w.what, w.slot));
        let created = recorder
            .created
            .iter()
            .copied()
            .filter(|a| state.get(a).is_some_and(|acc| acc.is_created()))
            .collect();
        if matches!(outcome, Outcome::Success) {
            db.commit(state);
        }
        let sim = Simulation {
            block: self.fork.block().number,
            outcome,
            gas_used,
            calls: recorder.calls,
            created,
            deltas: deltas
                .into_iter()
                .filter(|(_, d)| !d.is_zero())
                .map(|((holder, asset), delta)| AssetDelta {
                    holder,
                    asset,
                    delta,
                })
                .collect(),
            critical_writes,
            other_writes,
            touched,
            safe: None,
            fetches: 0,
            elapsed_us: 0,
        };
        Ok((sim, logs))
    }
}

fn signed(v: U256) -> I256 {
    I256::try_from(v).unwrap_or(I256::MAX)
}

/// Which critical slot `slot` of `account` is, for the fixed slots (mappings are recognised
/// by [`mapping_key`]).
fn classify_slot(account: Address, slot: B256, safe: Option<Address>) -> Option<CriticalSlot> {
    match slot {
        s if s == eip1967::IMPLEMENTATION => return Some(CriticalSlot::Eip1967Implementation),
        s if s == eip1967::ADMIN => return Some(CriticalSlot::Eip1967Admin),
        s if s == eip1967::BEACON => return Some(CriticalSlot::Eip1967Beacon),
        _ => {}
    }
    if safe != Some(account) {
        return None;
    }
    let n = U256::from_be_bytes(slot.0);
    match slot {
        s if s == slots::SINGLETON => Some(CriticalSlot::SafeSingleton),
        s if s == slots::GUARD => Some(CriticalSlot::SafeGuard),
        s if s == slots::MODULE_GUARD => Some(CriticalSlot::SafeModuleGuard),
        s if s == slots::FALLBACK_HANDLER => Some(CriticalSlot::SafeFallbackHandler),
        _ if n == U256::from(slots::OWNER_COUNT) => Some(CriticalSlot::SafeOwnerCount),
        _ if n == U256::from(slots::THRESHOLD) => Some(CriticalSlot::SafeThreshold),
        _ => None,
    }
}

/// Whether `slot` is an entry of the owners or modules linked list for an address the
/// execution touched or called (the sentinel 0x1 included).
fn mapping_key(slot: B256, touched: &[Address], calls: &[SimCall]) -> Option<CriticalSlot> {
    let sentinel = Address::with_last_byte(1);
    let mut keys: Vec<Address> = touched.to_vec();
    keys.push(sentinel);
    keys.extend(calls.iter().flat_map(|c| [c.from, c.code, c.context]));
    keys.into_iter().find_map(|k| {
        if mapping_slot(k, slots::OWNERS_MAPPING) == slot {
            Some(CriticalSlot::SafeOwners)
        } else if mapping_slot(k, slots::MODULES_MAPPING) == slot {
            Some(CriticalSlot::SafeModules)
        } else {
            None
        }
    })
}

fn token_deltas(logs: &[Log], deltas: &mut BTreeMap<(Address, Asset), I256>) {
    let mut add = |holder: Address, asset: Asset, d: I256| {
        *deltas.entry((holder, asset)).or_default() += d;
    };
    for log in logs {
        let topics = log.topics();
        let Some(t0) = topics.first() else { continue };
        let token = log.address;
        if *t0 == erc20::Transfer::SIGNATURE_HASH {
            match topics.len() {
                3 if log.data.data.len() == 32 => {
                    let amount = signed(U256::from_be_slice(&log.data.data));
                    let asset = Asset::Erc20 { token };
                    add(Address::from_word(topics[1]), asset, -amount);
                    add(Address::from_word(topics[2]), asset, amount);
                }
                4 => {
                    let asset = Asset::Erc721 {
                        token,
                        id: U256::from_be_bytes(topics[3].0),
                    };
                    add(Address::from_word(topics[1]), asset, I256::MINUS_ONE);
                    add(Address::from_word(topics[2]), asset, I256::ONE);
                }
                _ => {}
            }
        } else if *t0 == weth::Deposit::SIGNATURE_HASH
            && topics.len() == 2
            && log.data.data.len() == 32
        {
            add(
                Address::from_word(topics[1]),
                Asset::Erc20 { token },
                signed(U256::from_be_slice(&log.data.data)),
            );
        } else if *t0 == weth::Withdrawal::SIGNATURE_HASH
            && topics.len() == 2
            && log.data.data.len() == 32
        {
            add(
                Address::from_word(topics[1]),
                Asset::Erc20 { token },
                -signed(U256::from_be_slice(&log.data.data)),
            );
        } else if *t0 == erc1155::TransferSingle::SIGNATURE_HASH {
            if let Ok(e) = erc1155::TransferSingle::decode_log_data(&log.data) {
                let asset = Asset::Erc1155 { token, id: e.id };
                add(e.from, asset, -signed(e.value));
                add(e.to, asset, signed(e.value));
            }
        } else if *t0 == erc1155::TransferBatch::SIGNATURE_HASH
            && let Ok(e) = erc1155::TransferBatch::decode_log_data(&log.data)
        {
            for (id, v) in e.ids.iter().zip(&e.values) {
                let asset = Asset::Erc1155 { token, id: *id };
                add(e.from, asset, -signed(*v));
                add(e.to, asset, signed(*v));
            }
        }
    }
}

/// A revert's reason in words: `Error(string)`, `Panic(uint256)`, a Safe error code, or the
/// raw bytes of a custom error.
pub fn revert_reason(output: &[u8]) -> String {
    if output.is_empty() {
        return "no reason given".into();
    }
    if let Ok(s) = alloy::sol_types::Revert::abi_decode(output) {
        return match safe_error(&s.reason) {
            Some(meaning) => format!("{} ({meaning})", s.reason),
            None => s.reason,
        };
    }
    if let Ok(p) = alloy::sol_types::Panic::abi_decode(output) {
        return format!("panic {:#x}", p.code);
    }
    format!(
        "custom error {}",
        alloy::primitives::hex::encode_prefixed(&output[..output.len().min(68)])
    )
}

/// The Safe's error codes (1.3.0 and later) that matter to a signer.
fn safe_error(code: &str) -> Option<&'static str> {
    Some(match code {
        "GS010" => "not enough gas to execute the Safe transaction",
        "GS011" => "could not pay gas costs with ether",
        "GS012" => "could not pay gas costs with token",
        "GS013" => "the Safe transaction's call failed (safeTxGas and gasPrice are 0)",
        "GS020" => "signatures data too short",
        "GS021" => "invalid contract signature location: inside static part",
        "GS022" => "invalid contract signature location: length not present",
        "GS023" => "invalid contract signature location: data not complete",
        "GS024" => "invalid contract signature provided",
        "GS025" => "hash has not been approved",
        "GS026" => "invalid owner provided",
        "GS030" => "only owners can approve a hash",
        "GS031" => "method can only be called from this contract",
        "GS104" => "method can only be called from an enabled module",
        "GS201" => "threshold cannot exceed owner count",
        "GS202" => "threshold needs to be greater than 0",
        "GS203" => "invalid owner address provided",
        "GS204" => "address is already an owner",
        "GS205" => "invalid prevOwner, owner pair provided",
        "GS300" => "guard does not implement IERC165",
        _ => return None,
    })
}
