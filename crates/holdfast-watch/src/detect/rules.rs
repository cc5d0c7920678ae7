//! [`FileRules`]: a watch file's rules as the engine runs them ([`crate::engine::Rules`]):
//! detectors 1–5 over each block with intel as it is now and the wallet's past, and the
//! `trace` responses' plans.

use std::sync::Arc;

use holdfast_chain::BlockDetail;

use super::{Context, DetectorState, Detectors, History};
use crate::alert::{Alert, DetectorKind};
use crate::config::{Response, WatchConfig};
use crate::engine::{IntelView, Rules};
use crate::follow::{ChainInfo, TracePlan};

pub struct FileRules {
    detectors: Detectors,
    intel: Arc<dyn IntelView>,
    history: Arc<dyn History>,
}

impl std::fmt::Debug for FileRules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileRules")
            .field("rules", &self.detectors.config().rules.len())
            .finish_non_exhaustive()
    }
}

impl FileRules {
    pub fn new(config: &WatchConfig, intel: Arc<dyn IntelView>, history: Arc<dyn History>) -> Self {
        FileRules {
            detectors: Detectors::new(config),
            intel,
            history,
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
        let mut st: DetectorState = if state.is_null() {
            DetectorState::default()
        } else {
            serde_json::from_value(state.clone()).map_err(RulesError::State)?
        };
        let index = self.intel.index();
        let cx = Context {
            chain: &chain.name,
            confirmations: 0,
            labels: &*index,
            history: &*self.history,
        };
        let alerts = self.detectors.run(block, &mut st, &cx)?;
        *state = serde_json::to_value(&st).map_err(RulesError::State)?;
        Ok(alerts)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error(transparent)]
    Detect(#[from] super::DetectError),
    #[error("the detectors' state does not decode: {0}")]
    State(serde_json::Error),
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
