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

// The implementations (`embedded`, `pg`) are being written.

use alloy_primitives::B256;
use holdfast_primitives::BlockRef;
use serde::{Deserialize, Serialize};

use crate::StoreError;

/// The largest detector state a checkpoint carries (bytes).
pub const MAX_STATE_BYTES: usize = 16 << 20;
/// The largest alert body (bytes).
pub const MAX_ALERT_BYTES: usize = 1 << 20;

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
    /// Processed blocks at or below this number are forgotten (past the reorg depth).
    pub forget_below: u64,
    /// The lease's fencing token ([`WatchStore::acquire_lease`]); `None` when not leased.
    pub fence: Option<u64>,
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

/// Durable state of the watch. Implementations: [`EmbeddedWatchStore`] (one process) and
/// [`PgWatchStore`] (shared by several instances). Synchronous; async callers use
/// `spawn_blocking`.
pub trait WatchStore: Send + Sync + std::fmt::Debug {
    fn checkpoint(&self, chain_id: u64) -> Result<Option<WatchCheckpoint>, StoreError>;

    /// The processed block at `number`, if still remembered (above `forget_below`).
    fn processed_block(&self, chain_id: u64, number: u64) -> Result<Option<BlockRef>, StoreError>;

    /// Records a block's alerts and outbox events and moves the checkpoint to it, atomically.
    /// Errors (nothing written): the block is not the checkpoint's child
    /// ([`StoreError::ParentMismatch`]), the fence is stale ([`StoreError::Invalid`] naming
    /// the lease), a body is too large.
    fn commit_block(&self, commit: &BlockCommit) -> Result<(), StoreError>;

    /// A reorg: forgets the processed blocks above `number`, marks their open alerts
    /// retracted with a `retracted` event each, and moves the checkpoint to block `number`
    /// (which must be remembered) with `state`, atomically. Returns the retracted alerts.
    fn unwind_above(
        &self,
        chain_id: u64,
        number: u64,
        state: &[u8],
        fence: Option<u64>,
    ) -> Result<Vec<StoredAlert>, StoreError>;

    fn alert(&self, id: &str) -> Result<Option<StoredAlert>, StoreError>;

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

    /// Moves `sink`'s cursor to `seq` (never backwards).
    fn advance_cursor(&self, sink: &str, seq: u64) -> Result<(), StoreError>;

    /// The highest outbox sequence number written (0 when empty).
    fn outbox_head(&self) -> Result<u64, StoreError>;

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
    fn release_lease(&self, chain_id: u64, owner: &str) -> Result<(), StoreError>;
}
