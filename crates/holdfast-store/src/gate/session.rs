//! Console sessions kept by the guard's store: every instance on one PostgreSQL database
//! knows the same sessions (a sign-out on one ends the session on all), and a restart signs
//! no one out.
//!
//! A session is stored under the SHA-256 of its id (the cookie's value), never the id: a
//! copy of the store, a backup or a database reader holds no cookie that signs in. What is
//! kept is who signed in (the token's name: the caller resolves it against the tokens it has
//! now, so a token taken out of the configuration ends its sessions), the CSRF secret and
//! when the session ends. Expired sessions are removed when a session is opened; at most
//! `max` are kept, past that those that end soonest are dropped.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use fjall::Readable;

use super::embedded::EmbeddedGateStore;
use super::pg::PgGateStore;
use crate::StoreError;
use crate::group_commit::Batch;

/// One stored session.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredSession {
    /// The name of the token it was opened with.
    pub who: String,
    /// The CSRF secret.
    pub csrf: [u8; 32],
    /// When it ends, Unix time in milliseconds.
    pub expires_at_ms: u64,
}

impl std::fmt::Debug for StoredSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredSession")
            .field("who", &self.who)
            .field("csrf", &"<redacted>")
            .field("expires_at_ms", &self.expires_at_ms)
            .finish()
    }
}

impl StoredSession {
    fn encode(&self) -> Vec<u8> {
        [
            &self.expires_at_ms.to_be_bytes()[..],
            &self.csrf,
            self.who.as_bytes(),
        ]
        .concat()
    }

    fn decode(v: &[u8]) -> Result<StoredSession, StoreError> {
        let bad = || StoreError::Corrupt("gate session record".into());
        let expires = v.get(..8).ok_or_else(bad)?;
        let csrf = v.get(8..40).ok_or_else(bad)?;
        let who = std::str::from_utf8(&v[40..]).map_err(|_| bad())?;
        Ok(StoredSession {
            who: who.to_owned(),
            csrf: csrf.try_into().map_err(|_| bad())?,
            expires_at_ms: u64::from_be_bytes(expires.try_into().map_err(|_| bad())?),
        })
    }
}

/// How many sessions are kept: in all, and per token (so one token's holder signing in over
/// and over drops only their own oldest sessions, never everyone else's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    pub total: usize,
    pub per_token: usize,
}

/// Of the live sessions `live` (expiry, token, key), the keys to drop before one more of
/// `who`'s is added under `limits`: that token's soonest-ending past `per_token - 1`, then the
/// soonest-ending of all past `total - 1`.
fn evictions<K: Clone + Ord>(
    mut live: Vec<(u64, &str, K)>,
    who: &str,
    limits: SessionLimits,
) -> Vec<K> {
    live.sort_unstable_by(|a, b| (a.0, &a.2).cmp(&(b.0, &b.2)));
    let mut drop = Vec::new();
    let own = live.iter().filter(|(_, w, _)| *w == who).count();
    let mut excess = (own + 1).saturating_sub(limits.per_token.max(1));
    live.retain(|(_, w, k)| {
        if excess > 0 && *w == who {
            excess -= 1;
            drop.push(k.clone());
            false
        } else {
            true
        }
    });
    let excess = (live.len() + 1).saturating_sub(limits.total.max(1));
    drop.extend(live.into_iter().take(excess).map(|(_, _, k)| k));
    drop
}

/// Where console sessions are kept. Keys are SHA-256 digests of session ids.
pub trait SessionStore: Send + Sync + std::fmt::Debug {
    /// Stores `session` under `key`; first drops sessions expired at `now_ms`, then, if
    /// `limits.per_token` of the same token's are kept, the ones of that token that end
    /// soonest, then, if `limits.total` are kept, those that end soonest.
    fn open_session(
        &self,
        key: [u8; 32],
        session: &StoredSession,
        now_ms: u64,
        limits: SessionLimits,
    ) -> Result<(), StoreError>;

    /// The session under `key` if it is still live at `now_ms`.
    fn session(&self, key: [u8; 32], now_ms: u64) -> Result<Option<StoredSession>, StoreError>;

    /// Ends the session under `key` (nothing if there is none).
    fn close_session(&self, key: [u8; 32]) -> Result<(), StoreError>;
}

/// Sessions in this process's memory, for a server without a guard store (they end with
/// the process and are not shared).
#[derive(Debug, Default)]
pub struct MemorySessions {
    map: Mutex<HashMap<[u8; 32], StoredSession>>,
}

impl SessionStore for MemorySessions {
    fn open_session(
        &self,
        key: [u8; 32],
        session: &StoredSession,
        now_ms: u64,
        limits: SessionLimits,
    ) -> Result<(), StoreError> {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        map.retain(|k, s| s.expires_at_ms > now_ms && *k != key);
        let live = map
            .iter()
            .map(|(k, s)| (s.expires_at_ms, s.who.as_str(), *k))
            .collect();
        for k in evictions(live, &session.who, limits) {
            map.remove(&k);
        }
        map.insert(key, session.clone());
        Ok(())
    }

    fn session(&self, key: [u8; 32], now_ms: u64) -> Result<Option<StoredSession>, StoreError> {
        let map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(map.get(&key).filter(|s| s.expires_at_ms > now_ms).cloned())
    }

    fn close_session(&self, key: [u8; 32]) -> Result<(), StoreError> {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&key);
        Ok(())
    }
}

impl SessionStore for EmbeddedGateStore {
    fn open_session(
        &self,
        key: [u8; 32],
        session: &StoredSession,
        now_ms: u64,
        limits: SessionLimits,
    ) -> Result<(), StoreError> {
        let guard = self.lock();
        let space = self.sessions_space();
        let snap = self.dir.db.snapshot();
        let mut live = Vec::new();
        let mut batch = Batch::default();
        for g in snap.iter(&self.dir.spaces[space]) {
            let (k, v) = g.into_inner().map_err(|e| self.dir.err(e))?;
            let s = StoredSession::decode(&v)?;
            if s.expires_at_ms <= now_ms {
                batch.del(space, k.to_vec());
            } else if k.as_ref() != key {
                live.push((s.expires_at_ms, s.who, k.to_vec()));
            }
        }
        let live = live
            .iter()
            .map(|(e, w, k)| (*e, w.as_str(), k.clone()))
            .collect();
        for k in evictions(live, &session.who, limits) {
            batch.del(space, k);
        }
        batch.put(space, key.to_vec(), session.encode());
        self.commit_batch(guard, batch)
    }

    fn session(&self, key: [u8; 32], now_ms: u64) -> Result<Option<StoredSession>, StoreError> {
        match self.dir.read(self.sessions_space(), &key)? {
            Some(v) => Ok(Some(StoredSession::decode(&v)?).filter(|s| s.expires_at_ms > now_ms)),
            None => Ok(None),
        }
    }

    fn close_session(&self, key: [u8; 32]) -> Result<(), StoreError> {
        let guard = self.lock();
        let mut batch = Batch::default();
        batch.del(self.sessions_space(), key.to_vec());
        self.commit_batch(guard, batch)
    }
}

fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl SessionStore for PgGateStore {
    fn open_session(
        &self,
        key: [u8; 32],
        session: &StoredSession,
        now_ms: u64,
        limits: SessionLimits,
    ) -> Result<(), StoreError> {
        let mut c = self.client();
        let mut txn = c.transaction()?;
        // One opening at a time: two racing sign-ins must not both find room.
        txn.execute("LOCK TABLE gate_sessions IN SHARE ROW EXCLUSIVE MODE", &[])?;
        txn.execute(
            "DELETE FROM gate_sessions WHERE expires_at_ms <= $1 OR key = $2",
            &[&i64_of(now_ms), &key.as_slice()],
        )?;
        txn.execute(
            "DELETE FROM gate_sessions WHERE key IN \
             (SELECT key FROM gate_sessions WHERE who = $1 ORDER BY expires_at_ms DESC, key DESC OFFSET $2)",
            &[&session.who, &i64_of(limits.per_token.max(1) as u64 - 1)],
        )?;
        let keep = i64_of(limits.total.max(1) as u64 - 1);
        txn.execute(
            "DELETE FROM gate_sessions WHERE key IN \
             (SELECT key FROM gate_sessions ORDER BY expires_at_ms DESC, key DESC OFFSET $1)",
            &[&keep],
        )?;
        txn.execute(
            "INSERT INTO gate_sessions (key, who, csrf, expires_at_ms) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (key) DO UPDATE SET who = $2, csrf = $3, expires_at_ms = $4",
            &[
                &key.as_slice(),
                &session.who,
                &session.csrf.as_slice(),
                &i64_of(session.expires_at_ms),
            ],
        )?;
        txn.commit()?;
        Ok(())
    }

    fn session(&self, key: [u8; 32], now_ms: u64) -> Result<Option<StoredSession>, StoreError> {
        let mut c = self.client();
        let Some(row) = c.query_opt(
            "SELECT who, csrf, expires_at_ms FROM gate_sessions WHERE key = $1 AND expires_at_ms > $2",
            &[&key.as_slice(), &i64_of(now_ms)],
        )?
        else {
            return Ok(None);
        };
        let csrf: &[u8] = row.get(1);
        Ok(Some(StoredSession {
            who: row.get(0),
            csrf: csrf
                .try_into()
                .map_err(|_| StoreError::Corrupt("gate session csrf".into()))?,
            expires_at_ms: u64::try_from(row.get::<_, i64>(2)).unwrap_or(0),
        }))
    }

    fn close_session(&self, key: [u8; 32]) -> Result<(), StoreError> {
        self.client().execute(
            "DELETE FROM gate_sessions WHERE key = $1",
            &[&key.as_slice()],
        )?;
        Ok(())
    }
}
