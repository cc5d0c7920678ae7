//! The watch store's keys and values as bytes (docs in the parent module's table).

use alloy_primitives::Address;

use super::super::{AlertEventKind, AlertStatus, Lease, OutboxEvent, StoredAlert};
use crate::StoreError;
use crate::codec::{Reader, corrupt};

pub(super) fn block_key(chain_id: u64, number: u64) -> Vec<u8> {
    [chain_id.to_be_bytes(), number.to_be_bytes()].concat()
}

pub(super) fn by_block_key(chain_id: u64, number: u64, id: &str) -> Vec<u8> {
    [&block_key(chain_id, number)[..], id.as_bytes()].concat()
}

pub(super) fn cursor_key(sink: &str) -> Vec<u8> {
    [&b"s"[..], sink.as_bytes()].concat()
}

pub(super) fn search_key(chain_id: u64, owners: &[Address]) -> Vec<u8> {
    [
        &b"d"[..],
        &chain_id.to_be_bytes(),
        super::super::safes::owners_key(owners).as_slice(),
    ]
    .concat()
}

pub(super) fn lease_key(chain_id: u64) -> Vec<u8> {
    [&b"l"[..], &chain_id.to_be_bytes()].concat()
}

pub(super) fn u64_of(v: &[u8], what: &str) -> Result<u64, StoreError> {
    let a: [u8; 8] = v.try_into().map_err(|_| corrupt(what))?;
    Ok(u64::from_be_bytes(a))
}

pub(super) fn status_byte(s: AlertStatus) -> u8 {
    match s {
        AlertStatus::Open => 0,
        AlertStatus::Retracted => 1,
    }
}

pub(super) fn status_of(b: u8) -> Result<AlertStatus, StoreError> {
    match b {
        0 => Ok(AlertStatus::Open),
        1 => Ok(AlertStatus::Retracted),
        _ => Err(corrupt("watch alert status")),
    }
}

pub(super) fn kind_byte(k: AlertEventKind) -> u8 {
    match k {
        AlertEventKind::Raised => 0,
        AlertEventKind::Retracted => 1,
        AlertEventKind::Confirmed => 2,
    }
}

pub(super) fn kind_of(b: u8) -> Result<AlertEventKind, StoreError> {
    match b {
        0 => Ok(AlertEventKind::Raised),
        1 => Ok(AlertEventKind::Retracted),
        2 => Ok(AlertEventKind::Confirmed),
        _ => Err(corrupt("watch outbox event kind")),
    }
}

/// A name of at most [`super::MAX_NAME_BYTES`] (checked before) with its length byte.
pub(super) fn put_name(s: &str, out: &mut Vec<u8>) {
    out.push(u8::try_from(s.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(s.as_bytes());
}

pub(super) fn read_name(r: &mut Reader<'_>) -> Result<String, StoreError> {
    let n = usize::from(r.u8()?);
    String::from_utf8(r.take(n)?.to_vec()).map_err(|_| corrupt("watch name"))
}

pub(super) fn encode_alert(a: &StoredAlert, rank: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(80 + a.rule.len() + a.body.len());
    v.extend_from_slice(&a.chain_id.to_be_bytes());
    v.extend_from_slice(&a.block_number.to_be_bytes());
    v.extend_from_slice(a.block_hash.as_slice());
    v.extend_from_slice(&rank.to_be_bytes());
    v.extend_from_slice(&a.raised_at_ms.to_be_bytes());
    v.push(a.severity);
    v.push(status_byte(a.status));
    v.push(u8::from(a.confirmed));
    put_name(&a.rule, &mut v);
    match &a.acknowledged {
        Some((who, at)) => {
            v.push(1);
            v.extend_from_slice(&at.to_be_bytes());
            put_name(who, &mut v);
        }
        None => v.push(0),
    }
    v.extend_from_slice(&a.body);
    v
}

pub(super) fn decode_alert(id: &str, v: &[u8]) -> Result<(StoredAlert, u64), StoreError> {
    let mut r = Reader(v);
    let chain_id = r.u64()?;
    let block_number = r.u64()?;
    let block_hash = r.b256()?;
    let rank = r.u64()?;
    let raised_at_ms = r.u64()?;
    let severity = r.u8()?;
    let status = status_of(r.u8()?)?;
    let confirmed = r.u8()? == 1;
    let rule = read_name(&mut r)?;
    let acknowledged = match r.u8()? {
        0 => None,
        _ => {
            let at = r.u64()?;
            Some((read_name(&mut r)?, at))
        }
    };
    Ok((
        StoredAlert {
            id: id.to_owned(),
            chain_id,
            block_number,
            block_hash,
            rule,
            severity,
            raised_at_ms,
            status,
            confirmed,
            acknowledged,
            body: r.0.to_vec(),
        },
        rank,
    ))
}

/// The rank index's value: the fields [`AlertQuery`] filters by, then the id.
pub(super) fn rank_value(a: &StoredAlert) -> Vec<u8> {
    let mut v = Vec::with_capacity(12 + a.rule.len() + a.id.len());
    v.extend_from_slice(&a.chain_id.to_be_bytes());
    v.push(a.severity);
    v.push(status_byte(a.status));
    v.push(u8::from(a.acknowledged.is_some()));
    put_name(&a.rule, &mut v);
    v.extend_from_slice(a.id.as_bytes());
    v
}

pub(super) fn encode_event(kind: AlertEventKind, a: &StoredAlert) -> Vec<u8> {
    let mut v = Vec::with_capacity(2 + a.id.len() + a.body.len());
    v.push(kind_byte(kind));
    put_name(&a.id, &mut v);
    v.extend_from_slice(&a.body);
    v
}

pub(super) fn decode_event(seq: u64, v: &[u8]) -> Result<OutboxEvent, StoreError> {
    let mut r = Reader(v);
    let kind = kind_of(r.u8()?)?;
    let alert_id = read_name(&mut r)?;
    Ok(OutboxEvent {
        seq,
        alert_id,
        kind,
        body: r.0.to_vec(),
    })
}

pub(super) fn encode_lease(l: &Lease) -> Vec<u8> {
    [
        &l.expires_at_ms.to_be_bytes()[..],
        &l.token.to_be_bytes(),
        l.owner.as_deref().unwrap_or_default().as_bytes(),
    ]
    .concat()
}

pub(super) fn decode_lease(chain_id: u64, v: &[u8]) -> Result<Lease, StoreError> {
    let mut r = Reader(v);
    let expires_at_ms = r.u64()?;
    let token = r.u64()?;
    let owner = String::from_utf8(r.0.to_vec()).map_err(|_| corrupt("watch lease owner"))?;
    Ok(Lease {
        chain_id,
        owner: (!owner.is_empty()).then_some(owner),
        expires_at_ms,
        token,
    })
}
