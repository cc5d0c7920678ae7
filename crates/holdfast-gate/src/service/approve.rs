//! Approvals: an EIP-712 approval is checked against the one rule of when an approval
//! counts ([`counts_for`]), stored, and the request decided again with every approval
//! stored for it; a quorum stored but not decided (a crash in between) is decided by a
//! replay or by the background task.

use alloy::primitives::Address;
use holdfast_guard::Envelope;
use holdfast_guard::Guard;
use holdfast_guard::approval::{ApprovalAction, Quorum, SignedApproval, counts_for};
use holdfast_guard::policy::Decision;
use holdfast_store::gate::{
    ApprovalKind, AuditKind, Change, GateRequest, RequestState, StoredApproval,
};
use serde_json::json;

use super::{Gate, GateError, Outcome, require, sign};
use crate::config::{Principal, Role};

/// What an approval of request `r` must match to count, at `now`.
pub(super) fn quorum<'a>(r: &'a GateRequest, members: &'a [Address], now: u64) -> Quorum<'a> {
    Quorum {
        action: ApprovalAction::Approve,
        request_id: Some(r.id.parse().unwrap_or_default()),
        payload_hash: r.payload_hash,
        chain_id: Some(r.chain_id),
        group: r.group.as_deref().unwrap_or_default(),
        members,
        initiator: r.initiator.parse::<Address>().ok(),
        now,
    }
}

/// The members of the group request `r` waits on.
pub(super) fn members(guard: &Guard, r: &GateRequest) -> Vec<Address> {
    r.group
        .as_ref()
        .and_then(|g| guard.policy().groups.get(g))
        .cloned()
        .unwrap_or_default()
}

impl Gate {
    /// Adds a signed approval; signs once the policy is satisfied. An approver who already
    /// approved gets the request decided again (which resumes a decision a crash
    /// interrupted) and a conflict if it still waits: an approval counts once. An expired
    /// approval is replaced by its approver's new one.
    pub async fn approve(
        &self,
        id: &str,
        approval: SignedApproval,
        who: &Principal,
    ) -> Result<Outcome, GateError> {
        require(who, Role::Approver)?;
        let r = self.cx.get(id).await?;
        let reject = |reason: String| async move {
            let entry = self.cx.audit(
                AuditKind::ApprovalRejected,
                id,
                &who.name,
                json!({"reason": reason}),
            );
            let _ = self
                .cx
                .db(move |store| store.append_audit(vec![entry]))
                .await;
            reason
        };
        if r.state != RequestState::AwaitingApprovals {
            return Err(GateError::Conflict(format!(
                "request {id} is {}: it takes no approvals",
                r.state.name()
            )));
        }
        let t = self.cx.now();
        let v = match approval.verify(t) {
            Ok(v) => v,
            Err(e) => {
                return Err(GateError::BadRequest(
                    reject(format!("approval rejected: {e}")).await,
                ));
            }
        };
        let members = members(&self.guard, &r);
        if let Err(why) = counts_for(&v, &quorum(&r, &members, t)) {
            return Err(GateError::Forbidden {
                who: reject(format!("approval rejected: {why}")).await,
                role: "member of the approving group",
            });
        }
        // The approver's earlier approval, if it still counts, stands; if it expired, this
        // one replaces it.
        let rid = r.id.clone();
        let stored = self.cx.db(move |store| store.approvals(&rid)).await?;
        let earlier = stored
            .iter()
            .filter(|a| a.action == ApprovalKind::Approve && a.approver == v.approver)
            .filter_map(|a| serde_json::from_str::<SignedApproval>(&a.approval).ok())
            .any(|a| {
                a.verify(t)
                    .is_ok_and(|e| counts_for(&e, &quorum(&r, &members, t)).is_ok())
            });
        if !earlier {
            let stored = StoredApproval {
                request_id: r.id.clone(),
                approver: v.approver,
                action: ApprovalKind::Approve,
                approval: serde_json::to_string(&approval).unwrap_or_default(),
                at: t,
            };
            let entry = self.cx.audit(
                AuditKind::Approval,
                id,
                &who.name,
                json!({"approver": v.approver, "payload_hash": v.payload_hash, "deadline": v.deadline}),
            );
            self.cx
                .db(move |store| store.add_approval(&stored, entry, true))
                .await?;
        }
        let r = self.decide_approvals(r).await?;
        if earlier && r.state == RequestState::AwaitingApprovals {
            return Err(GateError::Conflict(format!(
                "{} has already approved request {id} (a replayed approval counts once)",
                v.approver
            )));
        }
        self.outcome(&r).await
    }

    /// Decides request `r` (awaiting approvals) again with every approval stored for it,
    /// and signs it if that allows it. Returns the request as it then is.
    pub(super) async fn decide_approvals(&self, r: GateRequest) -> Result<GateRequest, GateError> {
        let id = r.id.clone();
        let verified = self.cx.verified_approvals(&r.id).await?;
        let env = holdfast_guard::request::parse(r.request.as_bytes())
            .map_err(|e| GateError::BadRequest(e.to_string()))?;
        let env = Envelope {
            initiator: Some(r.initiator.clone()),
            ..env
        };
        let report = self.decide_again(&env, verified, &r.id).await?;
        if report.payload_hash != r.payload_hash {
            return Err(GateError::Conflict(
                "the request decodes to another payload than when it was submitted".into(),
            ));
        }
        let (state, decision) = match &report.evaluation.decision {
            Decision::Allow => (RequestState::Signing, "allow"),
            Decision::Deny => (RequestState::Denied, "deny"),
            Decision::Hold { .. } | Decision::RequireApprovals { .. } => {
                return self.cx.get(&id).await;
            }
        };
        let entries = vec![self.cx.audit(
            AuditKind::Decision,
            &id,
            "policy",
            json!({"decision": decision, "rule": report.evaluation.rule, "reasons": report.evaluation.reasons}),
        )];
        let change = Change {
            state: Some(state),
            ..Change::default()
        };
        match self
            .cx
            .transition(&id, &[RequestState::AwaitingApprovals], change, entries)
            .await?
        {
            Some(_) if state == RequestState::Signing => {
                sign::sign(&self.cx, &self.guard, &id).await
            }
            _ => self.cx.get(&id).await,
        }
    }
}
