//! Emergency freeze, and its lifting by a quorum of EIP-712 unfreeze approvals bound to the
//! freeze they lift.

use alloy::primitives::{Address, B256, keccak256};
use holdfast_guard::approval::{ApprovalAction, Quorum, SignedApproval, VerifiedApproval, counted};
use holdfast_store::gate::{AuditKind, Freeze, NewAudit};
use serde_json::json;

use super::{Gate, GateError, require};
use crate::config::{Principal, Role};

impl Gate {
    /// Stops all signing for `scope` (a wallet) or everything (`None`).
    pub async fn freeze(
        &self,
        scope: Option<Address>,
        reason: &str,
        who: &Principal,
    ) -> Result<(), GateError> {
        if !who.has(Role::Operator) && !who.has(Role::Admin) {
            return Err(GateError::Forbidden {
                who: who.name.clone(),
                role: "operator",
            });
        }
        let entry = NewAudit {
            at: self.cx.now(),
            kind: AuditKind::Freeze,
            request_id: None,
            actor: who.name.clone(),
            details: json!({"scope": scope, "reason": reason}).to_string(),
        };
        self.cx
            .db(move |store| store.set_frozen(scope, true, entry))
            .await?;
        tracing::warn!(target: "gate::freeze", scope = ?scope, by = %who.name, "signing frozen");
        Ok(())
    }

    /// What an unfreeze approval of `scope` signs: bound to the freeze it lifts.
    pub async fn unfreeze_hash(&self, scope: Option<Address>) -> Result<Option<B256>, GateError> {
        let started = self.cx.db(move |store| store.freeze_started(scope)).await?;
        Ok(started.map(|f| unfreeze_hash(scope, &f)))
    }

    /// Lifts a freeze: needs `unfreeze_approvals` distinct members of `unfreeze_group`,
    /// each an EIP-712 approval with action `unfreeze` over [`Gate::unfreeze_hash`].
    pub async fn unfreeze(
        &self,
        scope: Option<Address>,
        approvals: &[SignedApproval],
        who: &Principal,
    ) -> Result<(), GateError> {
        require(who, Role::Admin)?;
        let Some(hash) = self.unfreeze_hash(scope).await? else {
            return Err(GateError::Conflict("that scope is not frozen".into()));
        };
        let group = self.config.unfreeze_group.as_ref().ok_or_else(|| GateError::Conflict("no unfreeze_group is configured: a freeze can only be lifted by a quorum of a policy group".into()))?;
        let members = self
            .guard
            .policy()
            .groups
            .get(group)
            .cloned()
            .unwrap_or_default();
        let t = self.cx.now();
        let verified: Vec<VerifiedApproval> =
            approvals.iter().filter_map(|a| a.verify(t).ok()).collect();
        let approvers = counted(
            &verified,
            &Quorum {
                action: ApprovalAction::Unfreeze,
                request_id: Some(hash),
                payload_hash: hash,
                chain_id: self.chain_id(),
                group,
                members: &members,
                initiator: None,
                now: t,
            },
        );
        if approvers.len() < self.config.unfreeze_approvals as usize {
            return Err(GateError::Forbidden {
                who: format!(
                    "{} valid unfreeze approval(s) from group {group:?}, {} needed",
                    approvers.len(),
                    self.config.unfreeze_approvals
                ),
                role: "approval quorum",
            });
        }
        let entry = NewAudit {
            at: t,
            kind: AuditKind::Unfreeze,
            request_id: None,
            actor: who.name.clone(),
            details: json!({"scope": scope, "approvers": approvers}).to_string(),
        };
        self.cx
            .db(move |store| store.set_frozen(scope, false, entry))
            .await?;
        tracing::warn!(target: "gate::freeze", scope = ?scope, "freeze lifted");
        Ok(())
    }
}

/// The payload an unfreeze approval signs: the scope and the freeze it lifts (when it began
/// and its id, so approvals over one freeze never lift another, even of the same second).
pub fn unfreeze_hash(scope: Option<Address>, freeze: &Freeze) -> B256 {
    keccak256(
        [
            b"holdfast.unfreeze.v2".as_slice(),
            scope.unwrap_or_default().as_slice(),
            &freeze.at.to_be_bytes(),
            freeze.id.as_slice(),
        ]
        .concat(),
    )
}
