//! The guard service's durable state: requests and their decisions, holds, approvals,
//! signatures issued, hot-wallet nonces, freezes, and the hash-chained audit log.
//!
//! Every change of a request is a [`GateStore::transition`]: the request must be in one of
//! the expected states, and the new state, its side data (a nonce allocated, a signature)
//! and the audit entries describing it are written in one atomic commit. Two instances on
//! one PostgreSQL racing for the same request see one of them win and the other get `None`;
//! that is how nothing is signed twice and no hold is released twice.
//!
//! The audit log is append-only and hash-chained: entry `n` stores the hash of entry
//! `n - 1`, and its own hash covers its sequence number, time, kind, request, actor and
//! details ([`entry_hash`]). [`verify`] finds the first entry that was edited, removed or
//! moved.

mod embedded;
mod pg;
mod session;

use alloy_primitives::{Address, B256, Bytes, U256, keccak256};
use holdfast_primitives::Asset;
use serde::{Deserialize, Serialize};

pub use embedded::EmbeddedGateStore;
pub use pg::PgGateStore;
pub use session::{MemorySessions, SessionLimits, SessionStore, StoredSession};

use crate::StoreError;

/// Where a request is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestState {
    /// The policy denied it: never signed.
    Denied,
    /// Waiting out its cancel window (`release_at`).
    Held,
    /// Waiting for approvals from the rule's group.
    AwaitingApprovals,
    /// Claimed for signing (a nonce is allocated for hot-wallet transactions).
    Signing,
    /// Signed: the signature (or signed transaction) is stored.
    Signed,
    /// The signed transaction was sent to the node.
    Broadcast,
    /// Cancelled by an operator: never signed.
    Cancelled,
    /// Could not be signed or sent (the error is stored).
    Failed,
    /// The broadcast transaction is in a block (`error` says if it reverted).
    Included,
}

impl RequestState {
    /// Its outflows are reserved for velocity: it is not signed yet and may still be
    /// (held, awaiting approvals, being signed). A reservation counts as sent now, whatever
    /// the window, until the request is signed (then it counts from its signing time) or ends
    /// unsigned (then it is released).
    pub const fn reserves(self) -> bool {
        matches!(
            self,
            RequestState::Held | RequestState::AwaitingApprovals | RequestState::Signing
        )
    }

    pub const fn name(self) -> &'static str {
        match self {
            RequestState::Denied => "denied",
            RequestState::Held => "held",
            RequestState::AwaitingApprovals => "awaiting_approvals",
            RequestState::Signing => "signing",
            RequestState::Signed => "signed",
            RequestState::Broadcast => "broadcast",
            RequestState::Cancelled => "cancelled",
            RequestState::Failed => "failed",
            RequestState::Included => "included",
        }
    }
}

/// How a request is signed once allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestMode {
    /// A Safe transaction: Holdfast co-signs the safeTxHash it computed.
    Safe,
    /// A transaction from the hot wallet whose key Holdfast holds: built, signed, sent.
    Transaction,
    /// A withdrawal from the hot wallet: built, signed, sent.
    Withdrawal,
    /// A transaction signed elsewhere (the firewall's `eth_sendRawTransaction`): sent as is.
    Signed,
    /// The firewall's `eth_sendTransaction`: forwarded to the node, which signs it.
    Forward,
}

impl RequestMode {
    pub const fn name(self) -> &'static str {
        match self {
            RequestMode::Safe => "safe",
            RequestMode::Transaction => "transaction",
            RequestMode::Withdrawal => "withdrawal",
            RequestMode::Signed => "signed",
            RequestMode::Forward => "forward",
        }
    }
}

/// The policy's decision as the service records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionKind {
    Allow,
    Hold,
    RequireApprovals,
    Deny,
}

impl DecisionKind {
    pub const fn name(self) -> &'static str {
        match self {
            DecisionKind::Allow => "allow",
            DecisionKind::Hold => "hold",
            DecisionKind::RequireApprovals => "require_approvals",
            DecisionKind::Deny => "deny",
        }
    }
}

/// What a stored approval is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalKind {
    Approve,
    Unfreeze,
}

impl ApprovalKind {
    pub const fn name(self) -> &'static str {
        match self {
            ApprovalKind::Approve => "approve",
            ApprovalKind::Unfreeze => "unfreeze",
        }
    }
}

/// Value a signed request sends out (velocity history).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outflow {
    pub to: Address,
    pub asset: Asset,
    pub amount: U256,
}

/// One request as the guard service keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateRequest {
    pub id: String,
    pub payload_hash: B256,
    pub chain_id: u64,
    pub wallet: Address,
    pub initiator: String,
    /// How it is signed once allowed.
    pub kind: RequestMode,
    /// The request as submitted (JSON).
    pub request: String,
    pub decision: DecisionKind,
    pub rule: Option<String>,
    pub reasons: Vec<String>,
    pub state: RequestState,
    /// Unix seconds.
    pub created_at: u64,
    pub updated_at: u64,
    /// For holds: when it is released if nobody cancels it.
    pub release_at: Option<u64>,
    pub need_approvals: u32,
    pub group: Option<String>,
    /// Hot-wallet transactions: the nonce allocated when signing.
    pub nonce: Option<u64>,
    /// The co-signer's signature over the safeTxHash, or the signed raw transaction.
    pub signature: Option<Bytes>,
    pub tx_hash: Option<B256>,
    pub error: Option<String>,
    pub outflows: Vec<Outflow>,
    /// The guard engine's report of the decision at submission (JSON): what the console
    /// shows of the request. Absent for requests recorded before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<String>,
}

/// What a decision needs of a wallet's past (see [`GateStore::outflows`] and
/// [`GateStore::insert_decided`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryQuery {
    pub wallet: Address,
    /// Outflows signed at or after this time (Unix seconds), and every reservation; `None`:
    /// none are read (no velocity rule).
    pub since: Option<u64>,
    /// The time reservations are reported at (they count as sent now).
    pub now: u64,
    /// First payments of these destinations.
    pub destinations: Vec<Address>,
    /// A request whose own reservation is left out (it is being decided again).
    pub exclude: Option<String>,
    /// At most this many outflow records are read; past it the history says `truncated`
    /// (the caller fails closed: it cannot sum what it did not read).
    pub max_records: usize,
}

impl HistoryQuery {
    /// A request decided under this query's lock must be of its wallet, or the lock
    /// serialized nothing.
    fn holds_lock_of(&self, request: &GateRequest) -> Result<(), StoreError> {
        if request.wallet == self.wallet {
            return Ok(());
        }
        Err(StoreError::Invalid {
            chain_id: request.chain_id,
            number: 0,
            what: format!(
                "request {} is for wallet {}, decided under wallet {}'s lock",
                request.id, request.wallet, self.wallet
            ),
        })
    }
}

/// A wallet's past as the store holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WalletHistory {
    /// Signed outflows since `since`, and every reservation (at `now`), oldest first.
    pub outflows: Vec<(u64, Outflow)>,
    /// More than `max_records` records are in the window: `outflows` is incomplete.
    pub truncated: bool,
    pub first_paid: Vec<(Address, u64)>,
    /// Whether signing is frozen for the wallet.
    pub frozen: bool,
}

/// What a decision made under [`GateStore::insert_decided`] records: the request with its
/// audit entries, or nothing.
pub type Decided = Option<(GateRequest, Vec<NewAudit>)>;

/// A freeze in force: when it began, and which one it is (the hash of its audit entry,
/// unique even for two freezes of one scope in the same second).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freeze {
    pub at: u64,
    pub id: B256,
}

impl Freeze {
    /// The stored form: `at` then `id` (a freeze stored before ids has only `at`).
    fn encode(&self) -> Vec<u8> {
        [&self.at.to_be_bytes()[..], self.id.as_slice()].concat()
    }

    fn decode(v: &[u8]) -> Freeze {
        let mut n = [0u8; 8];
        if v.len() >= 8 {
            n.copy_from_slice(&v[..8]);
        }
        Freeze {
            at: u64::from_be_bytes(n),
            id: if v.len() == 40 {
                B256::from_slice(&v[8..])
            } else {
                B256::ZERO
            },
        }
    }
}

/// A stored approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredApproval {
    pub request_id: String,
    pub approver: Address,
    pub action: ApprovalKind,
    /// The signed approval as submitted (JSON).
    pub approval: String,
    pub at: u64,
}

/// What an audit entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditKind {
    Request,
    Decision,
    Hold,
    Cancel,
    Approval,
    ApprovalRejected,
    Release,
    Signature,
    Broadcast,
    Freeze,
    Unfreeze,
    Failure,
}

impl AuditKind {
    pub const fn name(self) -> &'static str {
        match self {
            AuditKind::Request => "request",
            AuditKind::Decision => "decision",
            AuditKind::Hold => "hold",
            AuditKind::Cancel => "cancel",
            AuditKind::Approval => "approval",
            AuditKind::ApprovalRejected => "approval_rejected",
            AuditKind::Release => "release",
            AuditKind::Signature => "signature",
            AuditKind::Broadcast => "broadcast",
            AuditKind::Freeze => "freeze",
            AuditKind::Unfreeze => "unfreeze",
            AuditKind::Failure => "failure",
        }
    }
}

/// An audit entry to append (the store gives it its place in the chain).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAudit {
    pub at: u64,
    pub kind: AuditKind,
    pub request_id: Option<String>,
    pub actor: String,
    /// JSON text, kept byte for byte (the hash covers it).
    pub details: String,
}

/// One entry of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub seq: u64,
    pub at: u64,
    pub kind: AuditKind,
    pub request_id: Option<String>,
    pub actor: String,
    pub details: String,
    pub prev: B256,
    pub hash: B256,
}

/// The hash of an entry: keccak256 over its fields, length-prefixed so that no two entries
/// encode alike.
pub fn entry_hash(
    prev: B256,
    seq: u64,
    at: u64,
    kind: AuditKind,
    request_id: Option<&str>,
    actor: &str,
    details: &str,
) -> B256 {
    let mut buf = Vec::with_capacity(96 + actor.len() + details.len());
    buf.extend_from_slice(b"holdfast.audit.v1");
    buf.extend_from_slice(prev.as_slice());
    buf.extend_from_slice(&seq.to_be_bytes());
    buf.extend_from_slice(&at.to_be_bytes());
    for part in [kind.name(), request_id.unwrap_or(""), actor, details] {
        buf.extend_from_slice(&(part.len() as u64).to_be_bytes());
        buf.extend_from_slice(part.as_bytes());
    }
    buf.push(u8::from(request_id.is_some()));
    keccak256(buf)
}

impl NewAudit {
    /// Seals the entry after `prev` (sequence number `seq`).
    pub fn seal(self, seq: u64, prev: B256) -> AuditEntry {
        let hash = entry_hash(
            prev,
            seq,
            self.at,
            self.kind,
            self.request_id.as_deref(),
            &self.actor,
            &self.details,
        );
        AuditEntry {
            seq,
            at: self.at,
            kind: self.kind,
            request_id: self.request_id,
            actor: self.actor,
            details: self.details,
            prev,
            hash,
        }
    }
}

/// Where the audit chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditBreak {
    #[error(
        "entry {seq}: expected sequence number {expected} (an entry before it was removed, or entries were reordered)"
    )]
    Sequence { seq: u64, expected: u64 },
    #[error("entry {seq}: its `prev` is not the hash of entry {} (an entry before it was removed, replaced or moved)", seq - 1)]
    Link { seq: u64 },
    #[error("entry {seq}: its content does not match its hash (the entry was edited)")]
    Content { seq: u64 },
}

/// Checks a chain read in order from its first entry. Returns how many entries verified.
pub fn verify<'a>(entries: impl IntoIterator<Item = &'a AuditEntry>) -> Result<u64, AuditBreak> {
    let mut v = Verifier::default();
    for e in entries {
        v.next(e)?;
    }
    Ok(v.verified())
}

/// [`verify`] one entry at a time, for a log read in pages (memory bounded by a page).
#[derive(Debug, Clone, Default)]
pub struct Verifier {
    prev: B256,
    n: u64,
}

impl Verifier {
    /// Checks the next entry of the chain (the first call: entry 1).
    pub fn next(&mut self, e: &AuditEntry) -> Result<(), AuditBreak> {
        let expected = self.n + 1;
        if e.seq != expected {
            return Err(AuditBreak::Sequence {
                seq: e.seq,
                expected,
            });
        }
        if e.prev != self.prev {
            return Err(AuditBreak::Link { seq: e.seq });
        }
        let h = entry_hash(
            e.prev,
            e.seq,
            e.at,
            e.kind,
            e.request_id.as_deref(),
            &e.actor,
            &e.details,
        );
        if h != e.hash {
            return Err(AuditBreak::Content { seq: e.seq });
        }
        self.prev = e.hash;
        self.n = expected;
        Ok(())
    }

    /// Entries verified so far.
    pub fn verified(&self) -> u64 {
        self.n
    }

    /// The hash of the last entry verified (zero before the first).
    pub fn head(&self) -> B256 {
        self.prev
    }
}

/// A change to make to a request in a [`GateStore::transition`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Change {
    pub state: Option<RequestState>,
    /// Allocate the wallet's next nonce (at least this floor: the node's pending count) and
    /// store it in the request; a request that has a nonce keeps it.
    pub allocate_nonce: Option<u64>,
    pub signature: Option<Bytes>,
    pub tx_hash: Option<B256>,
    pub error: Option<String>,
    pub release_at: Option<u64>,
}

/// Durable state of the guard service. Implementations: [`EmbeddedGateStore`] (one
/// process) and [`PgGateStore`] (shared by several instances). Synchronous; async callers
/// use `spawn_blocking`.
pub trait GateStore: SessionStore + Send + Sync + std::fmt::Debug {
    /// Records a new request with its audit entries, atomically (a request recorded already
    /// signed counts for velocity at once). An id that exists is an error.
    fn insert(&self, request: &GateRequest, audit: Vec<NewAudit>) -> Result<(), StoreError>;

    fn get(&self, id: &str) -> Result<Option<GateRequest>, StoreError>;

    /// If request `id` is in one of `from`, applies `change` and appends `audit`, atomically,
    /// and returns the request as it now is; `None` if it was not in one of `from` (another
    /// instance or call got there first) or does not exist.
    fn transition(
        &self,
        id: &str,
        from: &[RequestState],
        change: Change,
        now: u64,
        audit: Vec<NewAudit>,
    ) -> Result<Option<GateRequest>, StoreError>;

    /// Requests in `state`, oldest first (recovery after a restart, the release task).
    fn in_state(&self, state: RequestState, limit: usize) -> Result<Vec<GateRequest>, StoreError>;

    /// A page of the requests in `state`, oldest first, starting after the request
    /// `after` = (its `created_at`, its id) — the last of the previous page — or from the
    /// first; at most `limit` (the console's queue pages with it, one index range each).
    fn in_state_after(
        &self,
        state: RequestState,
        after: Option<(u64, &str)>,
        limit: usize,
    ) -> Result<Vec<GateRequest>, StoreError>;

    /// The first `limit` audit entries about request `id`, oldest first, however old: an
    /// index by request, written with each entry, finds them without scanning the log.
    fn audit_of(&self, id: &str, limit: usize) -> Result<Vec<AuditEntry>, StoreError>;

    /// Held requests whose window ended at or before `now`.
    fn due_holds(&self, now: u64, limit: usize) -> Result<Vec<GateRequest>, StoreError>;

    /// Records an approval with its audit entry; `false` if this approver already approved
    /// this request for this action (nothing is written) — unless `replace`, which overwrites
    /// it (an expired approval renewed).
    fn add_approval(
        &self,
        approval: &StoredApproval,
        audit: NewAudit,
        replace: bool,
    ) -> Result<bool, StoreError>;

    fn approvals(&self, request_id: &str) -> Result<Vec<StoredApproval>, StoreError>;

    /// Decides and records a new request as one atomic step for its wallet: `decide` is
    /// given the wallet's history (`query`) and returns what to insert. Of concurrent calls
    /// for one wallet — in this process, or on PostgreSQL in any instance — each runs after
    /// the previous one committed, so each sees the outflows the ones before it reserved:
    /// ten racing withdrawals against one velocity limit are decided one after another.
    /// The request must be `query.wallet`'s; nothing is written when `decide` returns
    /// `None` or an error.
    fn insert_decided(
        &self,
        query: &HistoryQuery,
        decide: &mut dyn FnMut(WalletHistory) -> Result<Decided, StoreError>,
    ) -> Result<Option<GateRequest>, StoreError>;

    /// The wallet's history as `query` asks, read without the wallet's lock (a request
    /// decided again, whose reservation is already held).
    fn history(&self, query: &HistoryQuery) -> Result<WalletHistory, StoreError>;

    /// Freezes (or lifts the freeze of) one wallet, or everything (`None`), with its audit
    /// entry.
    fn set_frozen(
        &self,
        scope: Option<Address>,
        frozen: bool,
        audit: NewAudit,
    ) -> Result<(), StoreError>;

    /// Whether signing is frozen for `wallet` (by its own freeze or the global one).
    fn frozen(&self, wallet: Address) -> Result<bool, StoreError>;

    /// The freeze of `scope` (a wallet, or everything), if it is frozen.
    fn freeze_started(&self, scope: Option<Address>) -> Result<Option<Freeze>, StoreError>;

    /// Appends entries not tied to a request change.
    fn append_audit(&self, audit: Vec<NewAudit>) -> Result<(), StoreError>;

    /// Audit entries from `from_seq` on, in order, at most `limit`.
    fn audit(&self, from_seq: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError>;
}

/// Applies `change` to `r` (both backends).
fn apply(r: &mut GateRequest, change: &Change, nonce: Option<u64>, now: u64) {
    if let Some(s) = change.state {
        r.state = s;
    }
    if let Some(n) = nonce {
        r.nonce = Some(n);
    }
    if let Some(s) = &change.signature {
        r.signature = Some(s.clone());
    }
    if let Some(h) = change.tx_hash {
        r.tx_hash = Some(h);
    }
    if let Some(e) = &change.error {
        r.error = Some(e.clone());
    }
    if let Some(t) = change.release_at {
        r.release_at = Some(t);
    }
    r.updated_at = now;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: u64) -> NewAudit {
        NewAudit {
            at: 1000 + i,
            kind: AuditKind::Decision,
            request_id: Some(format!("r{i}")),
            actor: "alice".into(),
            details: format!("{{\"n\":{i}}}"),
        }
    }

    fn chain(n: u64) -> Vec<AuditEntry> {
        let mut prev = B256::ZERO;
        (1..=n)
            .map(|i| {
                let e = entry(i).seal(i, prev);
                prev = e.hash;
                e
            })
            .collect()
    }

    #[test]
    fn verify_names_the_first_bad_entry() {
        let c = chain(5);
        assert_eq!(verify(&c), Ok(5));
        let mut edited = c.clone();
        edited[2].details = "{\"n\":99}".into();
        assert_eq!(verify(&edited), Err(AuditBreak::Content { seq: 3 }));
        let mut removed = c.clone();
        removed.remove(1);
        assert_eq!(
            verify(&removed),
            Err(AuditBreak::Sequence {
                seq: 3,
                expected: 2
            })
        );
        let mut swapped = c.clone();
        swapped.swap(1, 2);
        assert!(matches!(
            verify(&swapped),
            Err(AuditBreak::Sequence { seq: 3, .. })
        ));
        // Renumbered after a removal: the link breaks.
        let mut renumbered = c.clone();
        renumbered.remove(1);
        for (i, e) in renumbered.iter_mut().enumerate() {
            e.seq = i as u64 + 1;
        }
        assert_eq!(verify(&renumbered), Err(AuditBreak::Link { seq: 2 }));
        // An edit that also recomputes the entry's own hash breaks the next link.
        let mut rehashed = c;
        rehashed[1].actor = "mallory".into();
        let e = &rehashed[1];
        rehashed[1].hash = entry_hash(
            e.prev,
            e.seq,
            e.at,
            e.kind,
            e.request_id.as_deref(),
            &e.actor,
            &e.details,
        );
        assert_eq!(verify(&rehashed), Err(AuditBreak::Link { seq: 3 }));
    }
}
