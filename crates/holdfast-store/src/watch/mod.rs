//! The watch's durable state: per chain, the checkpoint (the last block whose alerts are
//! recorded, with the detectors' state) and the blocks processed above the finality depth
//! (to find and unwind a reorg); the alerts, each with its status; and the **outbox**, an
//! append-only sequence of alert events (raised, retracted, confirmed) that the sinks
//! deliver, each sink from its own cursor.
//!
//! The one rule that makes "nothing lost, nothing duplicated" hold: a block's alerts and
//! their outbox events are written in the **same atomic commit** as the checkpoint that moves
//! past the block ([`WatchStore::commit_block`]), and a reorg's retractions in the same commit
//! as the checkpoint that moves back ([`WatchStore::unwind_above`]). A crash at any instant
//! leaves either the block with all its alerts, or neither; the watch resumes from the
//! checkpoint and redoes exactly what was not committed. Delivery reads the outbox after the
//! cursor and moves the cursor only after the sink accepted (at-least-once, idempotency key
//! = the event's key).
//!
//! With several instances on PostgreSQL, a chain is owned through a **lease**
//! ([`WatchStore::acquire_lease`]): the owner holds a fencing token, and every commit and
//! unwind carries it and is refused when another instance has taken the chain over since.
//!
//! Outbox sequence numbers are assigned in **commit order**: an event that becomes visible
//! later has a higher number than every event visible before it, so a reader that remembers
//! the last number it read ([`WatchStore::outbox_since`], a sink's cursor) never skips one.
//! Both backends serialize the append (the embedded store's writer lock; PostgreSQL's outbox
//! head row, locked until commit), and the embedded store shows readers of the outbox only
//! events already fsynced, so a number is never shown and then reused after a crash.
//!
//! Backends: [`EmbeddedWatchStore`] (fjall, one process) and [`PgWatchStore`] (shared by
//! several instances); one behaviour suite runs on both. Design: `docs/STORE.md`.
//!
//! Also kept: what the searches for the Safes some owners hold found (module `safes`), so
//! that a restart searches only the blocks after them.

mod embedded;
mod pg;
mod safes;

use alloy_primitives::{Address, B256};
use holdfast_primitives::BlockRef;
use serde::{Deserialize, Serialize};

pub use embedded::EmbeddedWatchStore;
pub use pg::PgWatchStore;
pub use safes::{MAX_SEARCH_OWNERS, MAX_SEARCH_SAFES, SafeSearch};

use crate::StoreError;

/// The largest detector state a checkpoint carries (bytes).
pub const MAX_STATE_BYTES: usize = 16 << 20;
/// The largest alert body (bytes).
pub const MAX_ALERT_BYTES: usize = 1 << 20;
/// Most outbox events one [`WatchStore::prune_outbox`] deletes.
pub const MAX_PRUNE: usize = 10_000;
/// The longest alert id, rule, sink, lease owner or acknowledger name (bytes).
pub const MAX_NAME_BYTES: usize = 200;
/// Severity names by level (0 to 4), as `holdfast_watch::Severity` names them.
pub const SEVERITY_NAMES: [&str; 5] = ["info", "low", "medium", "high", "critical"];

/// Where the watch of one chain stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchCheckpoint {
    pub chain_id: u64,
    /// The last block whose alerts are committed.
    pub block: BlockRef,
    /// The detectors' state after that block (opaque to the store, at most
    /// [`MAX_STATE_BYTES`]).
    pub state: Vec<u8>,
}

/// An alert's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    /// Raised in a block that is still on the chain.
    Open,
    /// Its block was unwound by a reorg.
    Retracted,
}

/// What happened to an alert: one outbox event each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertEventKind {
    Raised,
    Retracted,
    /// Its block reached the configured confirmations.
    Confirmed,
}

impl AlertEventKind {
    pub const fn name(self) -> &'static str {
        match self {
            AlertEventKind::Raised => "raised",
            AlertEventKind::Retracted => "retracted",
            AlertEventKind::Confirmed => "confirmed",
        }
    }
}

/// An alert to record with its block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAlert {
    /// Deterministic: the same block gives the same ids, live and in replay.
    pub id: String,
    pub rule: String,
    /// 0 (info) to 4 (critical).
    pub severity: u8,
    /// Unix milliseconds when the watch raised it.
    pub raised_at_ms: u64,
    /// The alert as JSON (at most [`MAX_ALERT_BYTES`]).
    pub body: Vec<u8>,
}

/// A stored alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAlert {
    pub id: String,
    pub chain_id: u64,
    pub block_number: u64,
    pub block_hash: B256,
    pub rule: String,
    pub severity: u8,
    pub raised_at_ms: u64,
    pub status: AlertStatus,
    /// The block reached the configured confirmations (a `confirmed` event was written).
    pub confirmed: bool,
    /// Who acknowledged it and when (unix ms).
    pub acknowledged: Option<(String, u64)>,
    pub body: Vec<u8>,
}

impl StoredAlert {
    /// `alert` as stored when `block` raises it (open, not confirmed), keeping an earlier
    /// acknowledgement of the same id (a re-raise after a retraction).
    pub(crate) fn raised(
        alert: &NewAlert,
        chain_id: u64,
        block: &BlockRef,
        acknowledged: Option<(String, u64)>,
    ) -> StoredAlert {
        StoredAlert {
            id: alert.id.clone(),
            chain_id,
            block_number: block.number,
            block_hash: block.hash,
            rule: alert.rule.clone(),
            severity: alert.severity,
            raised_at_ms: alert.raised_at_ms,
            status: AlertStatus::Open,
            confirmed: false,
            acknowledged,
            body: alert.body.clone(),
        }
    }
}

/// One outbox event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEvent {
    /// Assigned by the store: strictly increasing, no gaps reused.
    pub seq: u64,
    pub alert_id: String,
    pub kind: AlertEventKind,
    /// The alert's body at the time of the event.
    pub body: Vec<u8>,
}

impl OutboxEvent {
    /// The idempotency key receivers dedup by: the alert id for a raise, `<id>:retracted` and
    /// `<id>:confirmed` for the others.
    pub fn key(&self) -> String {
        match self.kind {
            AlertEventKind::Raised => self.alert_id.clone(),
            k => format!("{}:{}", self.alert_id, k.name()),
        }
    }
}

/// One block's outcome, committed atomically with the checkpoint moving to `block`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockCommit {
    pub chain_id: u64,
    /// Must be the child of the current checkpoint (or any block when there is none).
    pub block: BlockRef,
    /// The detectors' state after the block.
    pub state: Vec<u8>,
    /// The block's alerts: each stored (an id already stored and open is left as it is; one
    /// stored retracted is reopened) and a `raised` event appended.
    pub alerts: Vec<NewAlert>,
    /// Alerts of earlier blocks now confirmed: each marked and a `confirmed` event appended
    /// (ids unknown or already confirmed or retracted are skipped).
    pub confirm: Vec<String>,
    /// Processed blocks below this number are forgotten (past the reorg depth); 0 forgets
    /// nothing.
    pub forget_below: u64,
    /// The lease's fencing token ([`WatchStore::acquire_lease`]); `None` when not leased.
    pub fence: Option<u64>,
}

/// A sink's stored delivery cursor ([`WatchStore::cursors`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkCursor {
    pub sink: String,
    /// The last outbox sequence number the sink delivered (or skipped).
    pub seq: u64,
}

/// Filter for [`WatchStore::alerts`]. Newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertQuery {
    pub chain_id: Option<u64>,
    pub rule: Option<String>,
    pub status: Option<AlertStatus>,
    pub min_severity: Option<u8>,
    pub acknowledged: Option<bool>,
    /// Only alerts raised before this one (paging: pass the last id of the previous page).
    pub before_id: Option<String>,
    /// At most [`crate::MAX_LIMIT`].
    pub limit: usize,
}

/// The lease on one chain ([`WatchStore::lease`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub chain_id: u64,
    /// Who holds it; `None` when released (or never taken).
    pub owner: Option<String>,
    /// Unix ms after which another owner may take it.
    pub expires_at_ms: u64,
    /// The fencing token: increases whenever the owner changes (0: never taken).
    pub token: u64,
}

impl AlertStatus {
    pub const fn name(self) -> &'static str {
        match self {
            AlertStatus::Open => "open",
            AlertStatus::Retracted => "retracted",
        }
    }

    pub fn from_name(name: &str) -> Option<AlertStatus> {
        [AlertStatus::Open, AlertStatus::Retracted]
            .into_iter()
            .find(|s| s.name() == name)
    }
}

impl AlertEventKind {
    pub fn from_name(name: &str) -> Option<AlertEventKind> {
        [
            AlertEventKind::Raised,
            AlertEventKind::Retracted,
            AlertEventKind::Confirmed,
        ]
        .into_iter()
        .find(|k| k.name() == name)
    }
}

/// Durable state of the watch. Implementations: [`EmbeddedWatchStore`] (one process) and
/// [`PgWatchStore`] (shared by several instances). Synchronous; async callers use
/// `spawn_blocking`.
pub trait WatchStore: Send + Sync + std::fmt::Debug {
    fn checkpoint(&self, chain_id: u64) -> Result<Option<WatchCheckpoint>, StoreError>;

    /// The processed block at `number`, if still remembered (at or above the last `forget_below`).
    fn processed_block(&self, chain_id: u64, number: u64) -> Result<Option<BlockRef>, StoreError>;

    /// Records a block's alerts and outbox events and moves the checkpoint to it, atomically.
    /// Errors (nothing written): the block is not the checkpoint's child
    /// ([`StoreError::ParentMismatch`], or [`StoreError::Invalid`] when its number does not
    /// follow), the fence is stale or missing on a leased chain ([`StoreError::LeaseLost`]),
    /// a body is too large or not JSON, an id or rule is empty or too long, a severity is
    /// above 4 ([`StoreError::Invalid`]).
    ///
    /// The block's open alerts are afterwards exactly `commit.alerts`: one raised early for
    /// this block number ([`Self::raise_early`]) that the commit does not raise again — a
    /// first look the full block did not confirm, or a block replaced by a reorg before its
    /// commit — is retracted with a `retracted` event in the same write.
    fn commit_block(&self, commit: &BlockCommit) -> Result<(), StoreError>;

    /// Alerts of `block`, the checkpoint's child, raised before the block is committed (the
    /// watch's first look at a new head, before its state diffs are read): each alert not
    /// already open is stored with a `raised` event, atomically; the checkpoint does not
    /// move. The block's [`Self::commit_block`] keeps those it raises again and retracts the
    /// others; an unwind retracts them like any alert above its block. Returns how many were
    /// raised now. Errors as for [`Self::commit_block`].
    fn raise_early(
        &self,
        chain_id: u64,
        block: &BlockRef,
        alerts: &[NewAlert],
        fence: Option<u64>,
    ) -> Result<usize, StoreError>;

    /// A reorg: forgets the processed blocks above `number`, marks their open alerts
    /// retracted with a `retracted` event each, and moves the checkpoint to block `number`
    /// (which must be remembered, or be the checkpoint) with `state`, atomically. Returns the
    /// retracted alerts (with their new status), oldest raised first. The fence as for
    /// [`Self::commit_block`].
    fn unwind_above(
        &self,
        chain_id: u64,
        number: u64,
        state: &[u8],
        fence: Option<u64>,
    ) -> Result<Vec<StoredAlert>, StoreError>;

    fn alert(&self, id: &str) -> Result<Option<StoredAlert>, StoreError>;

    /// Alerts matching `query`, newest raised first (an alert raised again after a
    /// retraction counts from its last raise). An unknown `before_id` is an error
    /// ([`StoreError::Argument`]).
    fn alerts(&self, query: &AlertQuery) -> Result<Vec<StoredAlert>, StoreError>;

    /// Marks an alert acknowledged by `who` (the first acknowledgement stays). `None` if
    /// there is no such alert.
    fn acknowledge(
        &self,
        id: &str,
        who: &str,
        at_ms: u64,
    ) -> Result<Option<StoredAlert>, StoreError>;

    /// Outbox events after `sink`'s cursor, oldest first, at most `limit`. A sink never seen
    /// before starts at the beginning of the outbox.
    fn outbox_after_cursor(&self, sink: &str, limit: usize)
    -> Result<Vec<OutboxEvent>, StoreError>;

    /// Moves `sink`'s cursor to `seq` (never backwards; a `seq` above the outbox head is an
    /// error, [`StoreError::Argument`]).
    fn advance_cursor(&self, sink: &str, seq: u64) -> Result<(), StoreError>;

    /// `sink`'s cursor: the last sequence number it delivered (0 when never seen).
    fn cursor(&self, sink: &str) -> Result<u64, StoreError>;

    /// Every stored sink cursor, ordered by sink name (bytewise): each sink some instance
    /// has served (a served sink is registered by its first prune) and not forgotten since.
    /// Every one of them bounds [`Self::prune_outbox`].
    fn cursors(&self) -> Result<Vec<SinkCursor>, StoreError>;

    /// Removes `sink`'s stored cursor in one atomic write and returns where it stood;
    /// `None` when none is stored (nothing is written). For a sink no instance serves any
    /// more (removed from the watch file, or renamed): its cursor would otherwise hold every
    /// prune at its position for ever. A sink still being served is registered again at 0
    /// by its instance's next prune, and a restart sends it again every event still in the
    /// outbox: the caller checks first that no watch file names it.
    fn forget_cursor(&self, sink: &str) -> Result<Option<u64>, StoreError>;

    /// Outbox events after `after_seq`, oldest first, at most `limit` (≤ [`crate::MAX_LIMIT`]):
    /// a reader that passes the last number it read never skips an event (numbers are
    /// assigned in commit order) and never sees one twice.
    fn outbox_since(&self, after_seq: u64, limit: usize) -> Result<Vec<OutboxEvent>, StoreError>;

    /// The highest outbox sequence number written (0 when empty).
    fn outbox_head(&self) -> Result<u64, StoreError>;

    /// Deletes the outbox events every sink has delivered, oldest first, at most
    /// [`MAX_PRUNE`]: those at or below the lowest cursor of `sinks` (the sinks being
    /// served; one without a cursor is registered at 0, so it keeps everything, also from
    /// other instances' prunes) and of every sink with a stored cursor (another instance's
    /// sinks), and not among the newest `keep`
    /// (kept for readers without a cursor: the API's live stream resuming after a
    /// disconnection). One atomic write; the outbox head stays, so sequence numbers are
    /// never reused. Returns how many were deleted. A sink seen for the first time after a
    /// prune starts at the oldest event left.
    fn prune_outbox(&self, sinks: &[&str], keep: u64) -> Result<u64, StoreError>;

    /// Takes or renews the lease on `chain_id` for `owner` until `now_ms + ttl_ms`. Returns
    /// the fencing token if `owner` holds the lease now (the token changes whenever the owner
    /// changes), `None` if another owner's lease has not expired.
    fn acquire_lease(
        &self,
        chain_id: u64,
        owner: &str,
        now_ms: u64,
        ttl_ms: u64,
    ) -> Result<Option<u64>, StoreError>;

    /// Gives the lease up (on a clean shutdown) so another instance need not wait it out.
    /// Nothing happens if `owner` does not hold it. A later acquire, by anyone, gets a new
    /// token.
    fn release_lease(&self, chain_id: u64, owner: &str) -> Result<(), StoreError>;

    /// The lease on `chain_id`, if it was ever taken.
    fn lease(&self, chain_id: u64) -> Result<Option<Lease>, StoreError>;

    /// The kept search for the Safes of `owners` (sorted, no duplicates) on `chain_id`.
    fn safe_search(
        &self,
        chain_id: u64,
        owners: &[Address],
    ) -> Result<Option<SafeSearch>, StoreError>;

    /// Keeps `search` in place of the one of the same chain and owners, in one write.
    /// Errors ([`StoreError::Argument`], nothing written): owners empty, unsorted, duplicated
    /// or more than [`MAX_SEARCH_OWNERS`]; Safes unsorted, duplicated or more than
    /// [`MAX_SEARCH_SAFES`]; `to` below `from`.
    fn put_safe_search(&self, search: &SafeSearch) -> Result<(), StoreError>;
}

/// Checks the state an unwind restores before anything is read or written.
fn check_unwind_state(chain_id: u64, number: u64, state: &[u8]) -> Result<(), StoreError> {
    if state.len() > MAX_STATE_BYTES {
        return Err(StoreError::Invalid {
            chain_id,
            number,
            what: format!(
                "the detectors' state is {} bytes, above the maximum of {MAX_STATE_BYTES}",
                state.len()
            ),
        });
    }
    Ok(())
}

/// Checks what a commit carries before anything is read or written.
fn check_commit(c: &BlockCommit) -> Result<(), StoreError> {
    let invalid = |what: String| StoreError::Invalid {
        chain_id: c.chain_id,
        number: c.block.number,
        what,
    };
    if c.state.len() > MAX_STATE_BYTES {
        return Err(invalid(format!(
            "the detectors' state is {} bytes, above the maximum of {MAX_STATE_BYTES}",
            c.state.len()
        )));
    }
    for a in &c.alerts {
        check_name("alert id", &a.id).map_err(|e| invalid(e.to_string()))?;
        check_name("rule", &a.rule).map_err(|e| invalid(format!("alert {}: {e}", a.id)))?;
        if usize::from(a.severity) >= SEVERITY_NAMES.len() {
            return Err(invalid(format!(
                "alert {}: severity {} is above 4 (critical)",
                a.id, a.severity
            )));
        }
        if a.body.len() > MAX_ALERT_BYTES {
            return Err(invalid(format!(
                "alert {}: body is {} bytes, above the maximum of {MAX_ALERT_BYTES}",
                a.id,
                a.body.len()
            )));
        }
        if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(&a.body) {
            return Err(invalid(format!("alert {}: body is not JSON ({e})", a.id)));
        }
    }
    for id in &c.confirm {
        check_name("confirmed alert id", id).map_err(|e| invalid(e.to_string()))?;
    }
    Ok(())
}

/// Whether `block` may follow `checkpoint` (any block may start a chain's watch).
fn check_child(
    chain_id: u64,
    checkpoint: Option<&BlockRef>,
    block: &BlockRef,
) -> Result<(), StoreError> {
    let Some(cp) = checkpoint else {
        return Ok(());
    };
    if cp.number.checked_add(1) != Some(block.number) {
        return Err(StoreError::Invalid {
            chain_id,
            number: block.number,
            what: format!(
                "the block does not follow the watch's checkpoint, block {} ({})",
                cp.number, cp.hash
            ),
        });
    }
    if block.parent_hash != cp.hash {
        return Err(StoreError::ParentMismatch {
            chain_id,
            number: block.number,
            parent: block.parent_hash,
            below: cp.number,
            stored: cp.hash,
        });
    }
    Ok(())
}

/// Whether a write carrying `fence` may write `chain_id`, whose lease is `lease`: with a
/// token, only while it is the lease's token and the lease is held; without one, only while
/// nobody holds the lease.
fn check_fence(chain_id: u64, lease: Option<&Lease>, fence: Option<u64>) -> Result<(), StoreError> {
    let (holder, token) = lease.map_or((None, 0), |l| (l.owner.clone(), l.token));
    let ok = match fence {
        Some(f) => holder.is_some() && f == token,
        None => holder.is_none(),
    };
    if ok {
        Ok(())
    } else {
        Err(StoreError::LeaseLost {
            chain_id,
            fence,
            holder,
            token,
        })
    }
}

/// The lease after `owner` asks for it at `now_ms` for `ttl_ms`, or `None` if another
/// owner's lease has not expired. The token increases whenever the owner changes (a released
/// lease has no owner, so even its last owner gets a new token).
fn next_lease(
    chain_id: u64,
    current: Option<&Lease>,
    owner: &str,
    now_ms: u64,
    ttl_ms: u64,
) -> Option<Lease> {
    // Within a BIGINT, as PostgreSQL stores it.
    let expires_at_ms = now_ms.saturating_add(ttl_ms).min(i64::MAX as u64);
    match current {
        Some(l) if l.owner.as_deref() == Some(owner) => Some(Lease {
            expires_at_ms,
            ..l.clone()
        }),
        Some(l) if l.owner.is_some() && l.expires_at_ms > now_ms => None,
        _ => Some(Lease {
            chain_id,
            owner: Some(owner.to_owned()),
            expires_at_ms,
            token: current.map_or(0, |l| l.token) + 1,
        }),
    }
}

/// An id or name the store keys by: 1 to [`MAX_NAME_BYTES`] bytes of printable ASCII (no
/// spaces or control characters).
fn check_name(field: &'static str, value: &str) -> Result<(), StoreError> {
    if value.is_empty()
        || value.len() > MAX_NAME_BYTES
        || !value.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(StoreError::Argument {
            field,
            value: value.chars().take(MAX_NAME_BYTES + 1).collect(),
            expected: format!("1 to {MAX_NAME_BYTES} printable ASCII characters without spaces"),
        });
    }
    Ok(())
}

/// A display name for an acknowledger: 1 to [`MAX_NAME_BYTES`] bytes without control
/// characters (spaces allowed: it is shown, not keyed by).
fn check_who(who: &str) -> Result<(), StoreError> {
    if who.trim().is_empty() || who.len() > MAX_NAME_BYTES || who.chars().any(char::is_control) {
        return Err(StoreError::Argument {
            field: "acknowledged by",
            value: who.chars().take(MAX_NAME_BYTES + 1).collect(),
            expected: format!("1 to {MAX_NAME_BYTES} bytes without control characters"),
        });
    }
    Ok(())
}

fn check_query(q: &AlertQuery) -> Result<(), StoreError> {
    crate::check_limit(q.limit)?;
    if let Some(r) = &q.rule {
        check_name("rule", r)?;
    }
    if let Some(id) = &q.before_id {
        check_name("before", id)?;
    }
    if q.min_severity
        .is_some_and(|s| usize::from(s) >= SEVERITY_NAMES.len())
    {
        return Err(StoreError::Argument {
            field: "min_severity",
            value: q.min_severity.unwrap_or_default().to_string(),
            expected: "0 (info) to 4 (critical)".into(),
        });
    }
    Ok(())
}

fn unknown_before(id: &str) -> StoreError {
    StoreError::Argument {
        field: "before",
        value: id.to_owned(),
        expected: "the id of a stored alert".into(),
    }
}

fn past_head(seq: u64, head: u64) -> StoreError {
    StoreError::Argument {
        field: "cursor",
        value: seq.to_string(),
        expected: format!("at most the outbox head, {head}"),
    }
}

/// Whether `alert` passes `q`'s filters (not `before_id` nor `limit`).
fn passes(
    q: &AlertQuery,
    chain_id: u64,
    rule: &str,
    severity: u8,
    status: AlertStatus,
    acked: bool,
) -> bool {
    q.chain_id.is_none_or(|c| c == chain_id)
        && q.rule.as_deref().is_none_or(|r| r == rule)
        && q.status.is_none_or(|s| s == status)
        && q.min_severity.is_none_or(|m| severity >= m)
        && q.acknowledged.is_none_or(|a| a == acked)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(owner: Option<&str>, expires: u64, token: u64) -> Lease {
        Lease {
            chain_id: 1,
            owner: owner.map(str::to_owned),
            expires_at_ms: expires,
            token,
        }
    }

    #[test]
    fn the_token_changes_exactly_when_the_owner_does() {
        let first = next_lease(1, None, "a", 100, 50).expect("free");
        assert_eq!(first, lease(Some("a"), 150, 1));
        // Renewal keeps the token, even after expiry when nobody took it.
        assert_eq!(
            next_lease(1, Some(&first), "a", 120, 50),
            Some(lease(Some("a"), 170, 1))
        );
        assert_eq!(
            next_lease(1, Some(&first), "a", 500, 50),
            Some(lease(Some("a"), 550, 1))
        );
        // Another owner: refused until expiry, then a new token.
        assert_eq!(next_lease(1, Some(&first), "b", 149, 50), None);
        assert_eq!(
            next_lease(1, Some(&first), "b", 150, 50),
            Some(lease(Some("b"), 200, 2))
        );
        // Released: anyone, the last owner too, gets a new token at once.
        let released = lease(None, 0, 2);
        assert_eq!(
            next_lease(1, Some(&released), "b", 10, 5),
            Some(lease(Some("b"), 15, 3))
        );
    }

    #[test]
    fn fences() {
        let held = lease(Some("a"), 150, 4);
        assert!(check_fence(1, Some(&held), Some(4)).is_ok());
        assert!(matches!(
            check_fence(1, Some(&held), Some(3)),
            Err(StoreError::LeaseLost { token: 4, .. })
        ));
        assert!(check_fence(1, Some(&held), None).is_err());
        assert!(check_fence(1, None, None).is_ok());
        assert!(check_fence(1, None, Some(1)).is_err());
        let released = lease(None, 0, 4);
        assert!(check_fence(1, Some(&released), Some(4)).is_err());
        assert!(check_fence(1, Some(&released), None).is_ok());
    }

    #[test]
    fn names() {
        assert!(check_name("alert id", "hf-0123abcd").is_ok());
        for bad in ["", "a b", "tab\t", &"x".repeat(MAX_NAME_BYTES + 1), "é"] {
            let e = check_name("alert id", bad).expect_err(bad);
            assert!(e.to_string().starts_with("alert id "), "{e}");
        }
        assert!(check_who("Alice Ops").is_ok());
        assert!(check_who(" ").is_err());
        assert!(check_who("a\nb").is_err());
    }
}
