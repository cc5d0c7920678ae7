//! The background task: every round moves each non-final state that can move — due holds
//! released, interrupted signing resumed, signed transactions sent again, quorums stored
//! but not decided decided, inclusions recorded.

use std::sync::Arc;
use std::time::Duration;

use holdfast_guard::approval::counted;
use holdfast_store::gate::{AuditKind, Change, RequestMode, RequestState};
use serde_json::json;

use super::{Gate, GateError, SIGNING_LEASE, approve, sign};

impl Gate {
    /// One round of the background task: release due holds, resume interrupted signing,
    /// re-send signed transactions, record inclusions. Returns how many requests it moved.
    pub async fn tick(&self) -> Result<usize, GateError> {
        let mut moved = 0;
        let t = self.cx.now();
        let due = self.cx.db(move |store| store.due_holds(t, 256)).await?;
        for r in due {
            let wallet = r.wallet;
            if self.cx.db(move |store| store.frozen(wallet)).await? {
                continue;
            }
            let entries = vec![self.cx.audit(
                AuditKind::Release,
                &r.id,
                "holdfast",
                json!({"release_at": r.release_at}),
            )];
            let change = Change {
                state: Some(RequestState::Signing),
                ..Change::default()
            };
            if self
                .cx
                .transition(&r.id, &[RequestState::Held], change, entries)
                .await?
                .is_some()
            {
                tracing::info!(target: "gate::release", request_id = %r.id, "hold expired uncancelled: released");
                sign::sign(&self.cx, &self.guard, &r.id).await?;
                moved += 1;
            }
        }
        for (state, age) in [
            (RequestState::Signing, SIGNING_LEASE),
            (RequestState::Signed, Duration::from_secs(5)),
        ] {
            let stale = self.cx.db(move |store| store.in_state(state, 256)).await?;
            for r in stale
                .into_iter()
                .filter(|r| self.cx.now().saturating_sub(r.updated_at) >= age.as_secs())
            {
                match state {
                    RequestState::Signing => {
                        sign::sign(&self.cx, &self.guard, &r.id).await?;
                    }
                    _ if r.kind == RequestMode::Forward && r.tx_hash.is_none() => {
                        // Claimed and then interrupted: whether the node sent it is unknown.
                        self.cx.fail(&r.id, &[RequestState::Signed], "interrupted while forwarding: check the node for a transaction from this account before submitting again".into()).await?;
                    }
                    _ => {
                        sign::broadcast(&self.cx, &r.id).await?;
                    }
                }
                moved += 1;
            }
        }
        // Requests whose stored approvals already reach their quorum but were not decided
        // again (the process died between storing the last approval and deciding).
        let waiting = self
            .cx
            .db(move |store| store.in_state(RequestState::AwaitingApprovals, 256))
            .await?;
        for r in waiting {
            // Fewer stored than needed: nothing to decide, no signature to check.
            let need = r.need_approvals as usize;
            let verified = self.cx.verified_approvals_if(&r.id, need).await?;
            if verified.len() < need {
                continue;
            }
            let t = self.cx.now();
            let members = approve::members(&self.guard, &r);
            if counted(&verified, &approve::quorum(&r, &members, t)).len() < need {
                continue;
            }
            tracing::info!(target: "gate::approve", request_id = %r.id, "quorum stored but not decided: deciding again");
            if self.decide_approvals(r).await?.state != RequestState::AwaitingApprovals {
                moved += 1;
            }
        }
        if let Some(chain) = self.cx.chain.clone() {
            let sent = self
                .cx
                .db(move |store| store.in_state(RequestState::Broadcast, 256))
                .await?;
            for r in sent {
                let Some(hash) = r.tx_hash else { continue };
                if let Ok(Some(inc)) = chain.inclusion(hash).await {
                    let entries = vec![self.cx.audit(
                        AuditKind::Broadcast,
                        &r.id,
                        "holdfast",
                        json!({"included_in": inc.block_number, "success": inc.success}),
                    )];
                    let change = Change {
                        state: Some(RequestState::Included),
                        error: (!inc.success).then(|| "the transaction reverted".to_owned()),
                        ..Change::default()
                    };
                    if self
                        .cx
                        .transition(&r.id, &[RequestState::Broadcast], change, entries)
                        .await?
                        .is_some()
                    {
                        moved += 1;
                    }
                }
            }
        }
        Ok(moved)
    }

    /// Runs [`Gate::tick`] every `release_interval` until `shutdown` resolves.
    pub async fn run(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut interval = tokio::time::interval(self.config.release_interval);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut shutdown => return,
                _ = interval.tick() => {
                    if let Err(e) = self.tick().await {
                        tracing::error!(target: "gate::release", error = %e, "background round failed; retrying next round");
                    }
                }
            }
        }
    }
}
