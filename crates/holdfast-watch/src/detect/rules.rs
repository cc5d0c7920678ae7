//! [`FileRules`]: a watch file's rules as the engine runs them ([`crate::engine::Rules`]):
//! detectors 1–5 over each block with intel as it is now and the wallet's past, and the
//! `trace` responses' plans.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use holdfast_chain::BlockDetail;

use super::{Context, DetectorState, Detectors, EarlyStorage, EarlyTarget, History};
use crate::alert::{Alert, DetectorKind};
use crate::config::{Response, WatchConfig};
use crate::engine::{IntelView, Rules};
use crate::follow::{ChainInfo, TracePlan};

pub struct FileRules {
    detectors: Detectors,
    intel: Arc<dyn IntelView>,
    history: Arc<dyn History>,
    /// Per chain: the typed state behind the JSON the last block returned, with the stamp
    /// written into that JSON. The engine hands the JSON back for the next block; when its
    /// stamp matches, the typed state is used as it is instead of decoding megabytes of
    /// JSON every block (any other JSON — a checkpoint reloaded, an unwind — is decoded).
    cache: Mutex<HashMap<String, (String, DetectorState)>>,
    instance: u64,
    produced: AtomicU64,
}

/// The key of the stamp in the state's JSON (ignored when the state is decoded).
pub const STATE_STAMP: &str = "stamp";
/// Marks a state JSON that is only a stamp (the typed state is held by the rules).
pub const STATE_PENDING: &str = "pending";

impl std::fmt::Debug for FileRules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileRules")
            .field("rules", &self.detectors.config().rules.len())
            .finish_non_exhaustive()
    }
}

impl FileRules {
    pub fn new(config: &WatchConfig, intel: Arc<dyn IntelView>, history: Arc<dyn History>) -> Self {
        let instance = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ (std::process::id() as u64).rotate_left(32);
        let detectors = Detectors::new(config);
        history.track(&detectors.static_members());
        FileRules {
            detectors,
            intel,
            history,
            cache: Mutex::new(HashMap::new()),
            instance,
            produced: AtomicU64::new(0),
        }
    }

    pub fn detectors(&self) -> &Detectors {
        &self.detectors
    }

    /// One block, with the errors: a history the seam could not read, a state that does not
    /// decode. `state` is changed only on success.
    pub fn try_detect(
        &self,
        chain: &ChainInfo,
        block: &BlockDetail,
        state: &mut serde_json::Value,
    ) -> Result<Vec<Alert>, RulesError> {
        let stamp = state.get(STATE_STAMP).and_then(|v| v.as_str());
        let cached = self
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&chain.name)
            .filter(|(s, _)| Some(s.as_str()) == stamp);
        let (old_stamp, mut st) = match cached {
            Some((s, st)) => (Some(s), st),
            None if state.is_null() => (None, DetectorState::default()),
            None if state.get(STATE_PENDING).is_some() => {
                // A stamp this instance no longer holds: never decode it as an empty state.
                return Err(RulesError::Pending);
            }
            None => (
                None,
                serde_json::from_value(state.clone()).map_err(RulesError::State)?,
            ),
        };
        let index = self.intel.index();
        let cx = Context {
            chain: &chain.name,
            confirmations: 0,
            labels: &*index,
            history: &*self.history,
        };
        let alerts = match self.detectors.run(block, &mut st, &cx) {
            Ok(a) => a,
            Err(e) => {
                // The state is as it was: keep it for the retry.
                if let Some(s) = old_stamp {
                    self.cache
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(chain.name.clone(), (s, st));
                }
                return Err(e.into());
            }
        };
        self.history.observe(
            chain.chain_id,
            block.block().number,
            &block.transfers.transfers,
        );
        // The typed state stays here; the JSON handed back is only its stamp until the engine
        // needs the whole of it for a checkpoint (`flush_state`): a replay over thousands of
        // blocks encodes it never, not once per block.
        let stamp = format!(
            "{:016x}-{}",
            self.instance,
            self.produced.fetch_add(1, Ordering::Relaxed)
        );
        *state = serde_json::json!({ STATE_STAMP: stamp.clone(), STATE_PENDING: true });
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(chain.name.clone(), (stamp, st));
        Ok(alerts)
    }
}

impl FileRules {
    /// `f` of the typed state `state` stands for: the one held for its stamp, or decoded.
    fn with_state<T>(
        &self,
        chain: &ChainInfo,
        state: &serde_json::Value,
        f: impl FnOnce(&DetectorState) -> T,
    ) -> Result<T, RulesError> {
        let stamp = state.get(STATE_STAMP).and_then(|v| v.as_str());
        let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, st)) = cache
            .get(&chain.name)
            .filter(|(s, _)| Some(s.as_str()) == stamp)
        {
            return Ok(f(st));
        }
        drop(cache);
        if state.is_null() {
            Ok(f(&DetectorState::default()))
        } else if state.get(STATE_PENDING).is_some() {
            Err(RulesError::Pending)
        } else {
            Ok(f(
                &serde_json::from_value(state.clone()).map_err(RulesError::State)?
            ))
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error(transparent)]
    Detect(#[from] super::DetectError),
    #[error("the detectors' state does not decode: {0}")]
    State(serde_json::Error),
    #[error(
        "the detectors' state was never written out (a stamp the rules no longer hold): a checkpoint must hold the flushed state"
    )]
    Pending,
}

impl Rules for FileRules {
    fn detect(
        &self,
        chain: &ChainInfo,
        block: &BlockDetail,
        state: &mut serde_json::Value,
    ) -> Result<Vec<Alert>, RulesError> {
        self.try_detect(chain, block, state)
    }

    fn flush_state(
        &self,
        chain: &ChainInfo,
        state: &mut serde_json::Value,
    ) -> Result<(), RulesError> {
        let Some(stamp) = state
            .get(STATE_STAMP)
            .and_then(|v| v.as_str())
            .map(str::to_owned)
        else {
            return Ok(());
        };
        if state.get(STATE_PENDING).is_none() {
            return Ok(());
        }
        let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        let Some((held, st)) = cache.get(&chain.name).filter(|(s, _)| *s == stamp) else {
            return Err(RulesError::Pending);
        };
        let mut value = serde_json::to_value(st).map_err(RulesError::State)?;
        if let Some(o) = value.as_object_mut() {
            o.insert(STATE_STAMP.into(), serde_json::Value::String(held.clone()));
        }
        *state = value;
        Ok(())
    }

    fn early_targets(
        &self,
        chain: &ChainInfo,
        block: &BlockDetail,
        state: &serde_json::Value,
    ) -> Result<Vec<EarlyTarget>, RulesError> {
        self.with_state(chain, state, |st| {
            self.detectors.early_targets(block, st, &chain.name)
        })
    }

    fn preview(
        &self,
        chain: &ChainInfo,
        block: &BlockDetail,
        state: &serde_json::Value,
        early: &EarlyStorage,
    ) -> Result<Vec<Alert>, RulesError> {
        // On a copy: the block is run for real when its full detail comes.
        let mut st = self.with_state(chain, state, DetectorState::clone)?;
        let index = self.intel.index();
        let cx = Context {
            chain: &chain.name,
            confirmations: 0,
            labels: &*index,
            history: &*self.history,
        };
        Ok(self.detectors.preview(block, &mut st, &cx, early)?)
    }

    fn trace_plan(&self, rule: &str) -> Option<TracePlan> {
        let config = self.detectors.config();
        let r = config.rule(rule)?;
        let (policies, hops, deposit_rule) = r.responses.iter().find_map(|x| match x {
            Response::Trace {
                policies,
                hops,
                deposit_rule,
            } => Some((policies, *hops, deposit_rule)),
            _ => None,
        })?;
        let deposits: Vec<_> = config
            .rules
            .iter()
            .filter(|x| x.detector == DetectorKind::TaintedDeposit)
            .collect();
        let target = match deposit_rule {
            Some(name) => config.rule(name).unwrap_or(r),
            None if deposits.len() == 1 => deposits[0],
            None => r,
        };
        Some(TracePlan {
            policies: policies.clone(),
            max_hops: hops,
            deposit_rule: target.name.clone(),
            severity: target.severity,
            responses: target
                .response_names()
                .into_iter()
                .filter(|n| n != "trace")
                .collect(),
        })
    }
}
