//! Cancel: an operator stops a held request or one awaiting approvals; it is never signed.

use holdfast_store::gate::{AuditKind, Change, RequestState};
use serde_json::json;

use super::{Gate, GateError, Outcome, require};
use crate::config::{Principal, Role};

impl Gate {
    /// Cancels a held request or one awaiting approvals: it is never signed.
    pub async fn cancel(
        &self,
        id: &str,
        reason: &str,
        who: &Principal,
    ) -> Result<Outcome, GateError> {
        require(who, Role::Operator)?;
        let entries =
            vec![
                self.cx
                    .audit(AuditKind::Cancel, id, &who.name, json!({"reason": reason})),
            ];
        let change = Change {
            state: Some(RequestState::Cancelled),
            ..Change::default()
        };
        match self
            .cx
            .transition(
                id,
                &[RequestState::Held, RequestState::AwaitingApprovals],
                change,
                entries,
            )
            .await?
        {
            Some(r) => {
                tracing::info!(target: "gate::cancel", request_id = %id, by = %who.name, "cancelled");
                self.outcome(&r).await
            }
            None => {
                let r = self.cx.get(id).await?;
                Err(GateError::Conflict(format!(
                    "request {id} is {}: only held requests and requests awaiting approvals can be cancelled",
                    r.state.name()
                )))
            }
        }
    }
}
