//! The chain state a simulation runs on: a fork of the node's state at one pinned block,
//! fetched on demand through a [`StateSource`] and cached, so that the second simulation
//! touching the same accounts does no I/O at all (warm state).

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use alloy::primitives::{Address, B256, Bytes, U256, keccak256};
use revm::DatabaseRef;
use revm::bytecode::Bytecode;
use revm::database_interface::DBErrorMarker;
use revm::state::AccountInfo;

/// An account as the node reports it at the pinned block.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AccountState {
    pub balance: U256,
    pub nonce: u64,
    pub code: Bytes,
}

/// The block a fork is pinned to, and the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockInfo {
    pub chain_id: u64,
    pub number: u64,
    pub hash: B256,
    pub timestamp: u64,
    pub gas_limit: u64,
    pub base_fee: u64,
    pub coinbase: Address,
    pub prevrandao: B256,
}

/// Why state could not be read. The simulation reports it; the policy sees a failed
/// simulation, never an allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("reading {what} from the node failed: {message}")]
    Source { what: String, message: String },
    #[error("the simulation's time budget ran out while reading {what} from the node")]
    Deadline { what: String },
    #[error("state cache lock poisoned")]
    Poisoned,
}

impl DBErrorMarker for StateError {}

/// Where a fork reads state it does not have yet. Implemented over JSON-RPC by
/// [`crate::rpc::RpcState`]; unit tests use an in-memory one.
pub trait StateSource: Send + Sync + fmt::Debug {
    /// The pinned block (read once when the fork is made).
    fn block(&self) -> Result<BlockInfo, StateError>;
    fn account(&self, address: Address) -> Result<AccountState, StateError>;
    fn storage(&self, address: Address, slot: U256) -> Result<U256, StateError>;
    fn block_hash(&self, number: u64) -> Result<B256, StateError>;
}

#[derive(Debug, Default)]
struct Cache {
    accounts: HashMap<Address, Option<AccountInfo>>,
    storage: HashMap<(Address, U256), U256>,
    code: HashMap<B256, Bytecode>,
    hashes: HashMap<u64, B256>,
}

/// A cached fork of one block's state. Shared by every simulation against that block.
pub struct Fork {
    source: Arc<dyn StateSource>,
    block: BlockInfo,
    cache: RwLock<Cache>,
    fetches: AtomicU64,
}

impl fmt::Debug for Fork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fork")
            .field("block", &self.block)
            .field("fetches", &self.fetches.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Fork {
    pub fn new(source: Arc<dyn StateSource>) -> Result<Fork, StateError> {
        let block = source.block()?;
        Ok(Fork {
            source,
            block,
            cache: RwLock::new(Cache::default()),
            fetches: AtomicU64::new(0),
        })
    }

    pub const fn block(&self) -> &BlockInfo {
        &self.block
    }

    /// How many reads went to the source (cache misses) so far.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// A view of the fork that refuses to fetch after `deadline`.
    pub fn until(&self, deadline: Instant) -> ForkDb<'_> {
        ForkDb {
            fork: self,
            deadline,
        }
    }

    fn read<T: Clone>(&self, f: impl FnOnce(&Cache) -> Option<T>) -> Result<Option<T>, StateError> {
        Ok(f(&*self.cache.read().map_err(|_| StateError::Poisoned)?))
    }

    fn write(&self, f: impl FnOnce(&mut Cache)) -> Result<(), StateError> {
        f(&mut *self.cache.write().map_err(|_| StateError::Poisoned)?);
        Ok(())
    }
}

/// A fork read with a deadline for fetches (cached state is always served).
#[derive(Debug, Clone, Copy)]
pub struct ForkDb<'a> {
    fork: &'a Fork,
    deadline: Instant,
}

impl ForkDb<'_> {
    fn fetch<T>(
        &self,
        what: impl Fn() -> String,
        f: impl FnOnce() -> Result<T, StateError>,
    ) -> Result<T, StateError> {
        if Instant::now() >= self.deadline {
            return Err(StateError::Deadline { what: what() });
        }
        self.fork.fetches.fetch_add(1, Ordering::Relaxed);
        f()
    }
}

impl DatabaseRef for ForkDb<'_> {
    type Error = StateError;

    fn basic_ref(&self, address: Address) -> Result<Option<AccountInfo>, StateError> {
        if let Some(hit) = self.fork.read(|c| c.accounts.get(&address).cloned())? {
            return Ok(hit);
        }
        let state = self.fetch(
            || format!("account {address}"),
            || self.fork.source.account(address),
        )?;
        let info = if state.balance.is_zero() && state.nonce == 0 && state.code.is_empty() {
            None
        } else {
            let code_hash = if state.code.is_empty() {
                revm::primitives::KECCAK_EMPTY
            } else {
                keccak256(&state.code)
            };
            let bytecode = Bytecode::new_raw(state.code);
            self.fork.write(|c| {
                c.code.insert(code_hash, bytecode.clone());
            })?;
            Some(AccountInfo::new(
                state.balance,
                state.nonce,
                code_hash,
                bytecode,
            ))
        };
        self.fork.write(|c| {
            c.accounts.insert(address, info.clone());
        })?;
        Ok(info)
    }

    fn code_by_hash_ref(&self, code_hash: B256) -> Result<Bytecode, StateError> {
        // Code arrives with its account; a hash without an account read first is not known.
        Ok(self
            .fork
            .read(|c| c.code.get(&code_hash).cloned())?
            .unwrap_or_default())
    }

    fn storage_ref(&self, address: Address, index: U256) -> Result<U256, StateError> {
        if let Some(v) = self
            .fork
            .read(|c| c.storage.get(&(address, index)).copied())?
        {
            return Ok(v);
        }
        let v = self.fetch(
            || format!("storage slot {index:#x} of {address}"),
            || self.fork.source.storage(address, index),
        )?;
        self.fork.write(|c| {
            c.storage.insert((address, index), v);
        })?;
        Ok(v)
    }

    fn block_hash_ref(&self, number: u64) -> Result<B256, StateError> {
        if let Some(h) = self.fork.read(|c| c.hashes.get(&number).copied())? {
            return Ok(h);
        }
        let h = self.fetch(
            || format!("the hash of block {number}"),
            || self.fork.source.block_hash(number),
        )?;
        self.fork.write(|c| {
            c.hashes.insert(number, h);
        })?;
        Ok(h)
    }
}

/// A state source held in memory (unit tests; accounts set up by hand).
#[derive(Debug, Default)]
pub struct MemoryState {
    pub block: Option<BlockInfo>,
    pub accounts: HashMap<Address, AccountState>,
    pub storage: HashMap<(Address, U256), U256>,
}

impl StateSource for MemoryState {
    fn block(&self) -> Result<BlockInfo, StateError> {
        Ok(self.block.unwrap_or(BlockInfo {
            chain_id: 1,
            number: 1,
            hash: B256::ZERO,
            timestamp: 1_700_000_000,
            gas_limit: 30_000_000,
            base_fee: 0,
            coinbase: Address::ZERO,
            prevrandao: B256::ZERO,
        }))
    }

    fn account(&self, address: Address) -> Result<AccountState, StateError> {
        Ok(self.accounts.get(&address).cloned().unwrap_or_default())
    }

    fn storage(&self, address: Address, slot: U256) -> Result<U256, StateError> {
        Ok(self
            .storage
            .get(&(address, slot))
            .copied()
            .unwrap_or_default())
    }

    fn block_hash(&self, number: u64) -> Result<B256, StateError> {
        Ok(keccak256(number.to_be_bytes()))
    }
}
