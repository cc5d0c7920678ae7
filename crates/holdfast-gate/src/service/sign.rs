//! Signing, per [`RequestMode`]: the Safe co-signature over Holdfast's own safeTxHash, the
//! hot wallet's transaction (built, signed with a store-allocated nonce, broadcast), a
//! transaction signed elsewhere sent as it is, or an `eth_sendTransaction` forwarded to the
//! node. Each claims the request in the store before it acts and stores the signature
//! before it is returned or sent.

use std::sync::Arc;

use alloy::consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy::eips::eip2718::Encodable2718;
use alloy::primitives::{Bytes, TxKind};
use holdfast_guard::Guard;
use holdfast_store::gate::{AuditKind, Change, GateRequest, NewAudit, RequestMode, RequestState};
use serde_json::json;

use super::{Ctx, GateError};
use crate::signer::Signer;

const NO_KEY: &str = "this service has no signing key configured ([signer] in the configuration)";

/// Signs a request in `signing` (and broadcasts it in gateway mode). Safe to call again
/// on the same request: only one signature is ever stored.
pub(super) async fn sign(cx: &Ctx, guard: &Guard, id: &str) -> Result<GateRequest, GateError> {
    let r = cx.get(id).await?;
    if r.state != RequestState::Signing {
        return Ok(r);
    }
    let wallet = r.wallet;
    if cx.db(move |store| store.frozen(wallet)).await? {
        return cx
            .fail(
                id,
                &[RequestState::Signing],
                "signing is frozen for this wallet; submit again once the freeze is lifted".into(),
            )
            .await;
    }
    match r.kind {
        RequestMode::Safe => match safe_signature(cx, &r) {
            Ok((signature, entry)) => {
                let change = Change {
                    state: Some(RequestState::Signed),
                    signature: Some(signature),
                    ..Change::default()
                };
                match cx
                    .transition(id, &[RequestState::Signing], change, vec![entry])
                    .await?
                {
                    Some(r) => {
                        tracing::info!(target: "gate::sign", request_id = %id, safe = %r.wallet, "co-signed the safeTxHash");
                        Ok(r)
                    }
                    None => cx.get(id).await,
                }
            }
            Err(e) => cx.fail(id, &[RequestState::Signing], e).await,
        },
        RequestMode::Signed => {
            // Signed elsewhere (the firewall): broadcast exactly these bytes.
            let env = holdfast_guard::request::parse(r.request.as_bytes())
                .map_err(|e| GateError::BadRequest(e.to_string()))?;
            let raw = raw_of(&r.request)?;
            let hash = match &env.request {
                holdfast_guard::Request::Transaction(t) => t.signed.as_ref().map(|s| s.hash),
                _ => None,
            };
            let change = Change {
                state: Some(RequestState::Signed),
                signature: Some(raw),
                tx_hash: hash,
                ..Change::default()
            };
            let entries = vec![cx.audit(
                AuditKind::Signature,
                id,
                "holdfast",
                json!({"mode": "firewall", "tx_hash": hash}),
            )];
            match cx
                .transition(id, &[RequestState::Signing], change, entries)
                .await?
            {
                Some(_) => broadcast(cx, id).await,
                None => cx.get(id).await,
            }
        }
        RequestMode::Forward => forward(cx, &r).await,
        RequestMode::Transaction | RequestMode::Withdrawal => match cx.signer.clone() {
            Some(signer) => sign_transaction(cx, guard, &r, signer).await,
            None => cx.fail(id, &[RequestState::Signing], NO_KEY.into()).await,
        },
    }
}

/// Holdfast's co-signature of a Safe transaction: its signature over the safeTxHash it
/// computed itself (the request's payload hash), with the audit entry recording it. Used
/// when a request is recorded already allowed and when a released one is signed.
pub(super) fn safe_signature(cx: &Ctx, r: &GateRequest) -> Result<(Bytes, NewAudit), String> {
    let signer = cx.signer.as_ref().ok_or_else(|| NO_KEY.to_owned())?;
    let sig = signer
        .sign_hash(&r.payload_hash)
        .map_err(|e| e.to_string())?;
    let entry = cx.audit(
        AuditKind::Signature,
        &r.id,
        "holdfast",
        json!({"mode": "safe co-signer", "signer": signer.address(), "safe_tx_hash": r.payload_hash}),
    );
    Ok((sig.as_bytes().to_vec().into(), entry))
}

/// Firewall mode for `eth_sendTransaction`: the node signs. Claimed (signed state, no
/// hash) before it is sent, so that a crash in between is reported, never sent twice.
async fn forward(cx: &Ctx, r: &GateRequest) -> Result<GateRequest, GateError> {
    let id = r.id.as_str();
    let Some(chain) = cx.chain.clone() else {
        return cx
            .fail(
                id,
                &[RequestState::Signing],
                "forwarding needs a node (gate.rpc)".into(),
            )
            .await;
    };
    let claim = Change {
        state: Some(RequestState::Signed),
        ..Change::default()
    };
    if cx
        .transition(id, &[RequestState::Signing], claim, vec![])
        .await?
        .is_none()
    {
        return cx.get(id).await;
    }
    let tx: serde_json::Value =
        serde_json::from_str(&r.request).map_err(|e| GateError::BadRequest(e.to_string()))?;
    match chain.send_transaction(&tx).await {
        Ok(hash) => {
            let entries = vec![cx.audit(
                AuditKind::Broadcast,
                id,
                "holdfast",
                json!({"mode": "firewall forward", "tx_hash": hash}),
            )];
            let change = Change {
                state: Some(RequestState::Broadcast),
                tx_hash: Some(hash),
                ..Change::default()
            };
            Ok(cx
                .transition(id, &[RequestState::Signed], change, entries)
                .await?
                .unwrap_or(r.clone()))
        }
        Err(e) => {
            cx.fail(
                id,
                &[RequestState::Signed],
                format!("the node refused the transaction: {e}"),
            )
            .await
        }
    }
}

/// Gateway mode: build, sign and broadcast the hot wallet's transaction.
async fn sign_transaction(
    cx: &Ctx,
    guard: &Guard,
    r: &GateRequest,
    signer: Arc<dyn Signer>,
) -> Result<GateRequest, GateError> {
    let id = r.id.as_str();
    let Some(chain) = cx.chain.clone() else {
        return cx
            .fail(
                id,
                &[RequestState::Signing],
                "the gateway needs a node (gate.rpc) to send transactions".into(),
            )
            .await;
    };
    if r.wallet != signer.address() {
        return cx.fail(id, &[RequestState::Signing], format!("wallet {} is not the key this service holds ({}): it can only co-sign Safes and send from its own hot wallet", r.wallet, signer.address()))
            .await;
    }
    let env = holdfast_guard::request::parse(r.request.as_bytes())
        .map_err(|e| GateError::BadRequest(e.to_string()))?;
    let (_, call, _) = guard
        .root_call(&env)
        .map_err(|e| GateError::BadRequest(e.to_string()))?;
    let floor = chain
        .pending_nonce(r.wallet)
        .await
        .map_err(|e| GateError::Unavailable(format!("reading the nonce: {e}")))?;
    let Some(r) = cx
        .transition(
            id,
            &[RequestState::Signing],
            Change {
                allocate_nonce: Some(floor),
                ..Change::default()
            },
            vec![],
        )
        .await?
    else {
        return cx.get(id).await;
    };
    let nonce = r.nonce.unwrap_or(floor);
    let gas = match &env.request {
        holdfast_guard::Request::Transaction(t) if t.gas.is_some() => t.gas.unwrap_or_default(),
        _ => {
            let g = chain
                .estimate_gas(r.wallet, call.to, call.value, &call.data)
                .await
                .map_err(|e| GateError::Unavailable(format!("estimating gas: {e}")));
            match g {
                Ok(g) => g + g / 5 + 10_000,
                Err(e) => return cx.fail(id, &[RequestState::Signing], e.to_string()).await,
            }
        }
    };
    let fees = chain
        .fees()
        .await
        .map_err(|e| GateError::Unavailable(format!("reading fees: {e}")))?;
    let tx = TxEip1559 {
        chain_id: r.chain_id,
        nonce,
        gas_limit: gas,
        max_fee_per_gas: fees.base_fee * 2 + fees.priority_fee,
        max_priority_fee_per_gas: fees.priority_fee,
        to: call.to.map_or(TxKind::Create, TxKind::Call),
        value: call.value,
        access_list: Default::default(),
        input: call.data.clone(),
    };
    let sig = match signer.sign_hash(&tx.signature_hash()) {
        Ok(s) => s,
        Err(e) => return cx.fail(id, &[RequestState::Signing], e.to_string()).await,
    };
    let envelope: TxEnvelope = tx.into_signed(sig).into();
    let hash = *envelope.tx_hash();
    let raw: Bytes = envelope.encoded_2718().into();
    let change = Change {
        state: Some(RequestState::Signed),
        signature: Some(raw),
        tx_hash: Some(hash),
        ..Change::default()
    };
    let entries = vec![cx.audit(
        AuditKind::Signature,
        id,
        "holdfast",
        json!({"mode": "hot-wallet gateway", "signer": signer.address(), "nonce": nonce, "tx_hash": hash}),
    )];
    match cx
        .transition(id, &[RequestState::Signing], change, entries)
        .await?
    {
        Some(_) => broadcast(cx, id).await,
        None => cx.get(id).await,
    }
}

/// Sends a signed transaction (idempotent: the same bytes, the same hash).
pub(super) async fn broadcast(cx: &Ctx, id: &str) -> Result<GateRequest, GateError> {
    let r = cx.get(id).await?;
    let (Some(raw), Some(hash), Some(chain)) = (r.signature.clone(), r.tx_hash, cx.chain.clone())
    else {
        return Ok(r);
    };
    if r.state != RequestState::Signed {
        return Ok(r);
    }
    match chain.send_raw(&raw, hash).await {
        Ok(h) => {
            let entries =
                vec![cx.audit(AuditKind::Broadcast, id, "holdfast", json!({"tx_hash": h}))];
            let change = Change {
                state: Some(RequestState::Broadcast),
                ..Change::default()
            };
            Ok(cx
                .transition(id, &[RequestState::Signed], change, entries)
                .await?
                .unwrap_or(r))
        }
        Err(e) => {
            // Stays signed: the background task sends it again.
            tracing::warn!(target: "gate::broadcast", request_id = %id, tx_hash = %hash, error = %e, "broadcast failed; will retry");
            Ok(r)
        }
    }
}

/// The raw transaction of a firewall request.
fn raw_of(request: &str) -> Result<Bytes, GateError> {
    let v: serde_json::Value =
        serde_json::from_str(request).map_err(|e| GateError::BadRequest(e.to_string()))?;
    let hex = v
        .get("raw")
        .or_else(|| v.get("rawTransaction"))
        .and_then(|x| x.as_str())
        .ok_or_else(|| GateError::BadRequest("no raw transaction".into()))?;
    alloy::primitives::hex::decode(hex)
        .map(Bytes::from)
        .map_err(|e| GateError::BadRequest(e.to_string()))
}
