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

/// Where console sessions are kept. Keys are SHA-256 digests of session ids.
pub trait SessionStore: Send + Sync + std::fmt::Debug {
    /// Stores `session` under `key`; first drops sessions expired at `now_ms` and, if `max`
    /// are still kept, those that end soonest.
    fn open_session(
        &self,
        key: [u8; 32],
        session: &StoredSession,
        now_ms: u64,
        max: usize,
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
        max: usize,
    ) -> Result<(), StoreError> {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        map.retain(|_, s| s.expires_at_ms > now_ms);
        while map.len() >= max.max(1) {
            let Some(soonest) = map
                .iter()
                .min_by_key(|(_, s)| s.expires_at_ms)
                .map(|(k, _)| *k)
            else {
                break;
            };
            map.remove(&soonest);
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
        max: usize,
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
                live.push((s.expires_at_ms, k.to_vec()));
            }
        }
        if live.len() >= max.max(1) {
            live.sort_unstable();
            for (_, k) in live.drain(..=live.len() - max.max(1)) {
                batch.del(space, k);
            }
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
        max: usize,
    ) -> Result<(), StoreError> {
        let mut c = self.client();
        let mut txn = c.transaction()?;
        let keep = i64_of(max.max(1) as u64 - 1);
        txn.execute(
            "DELETE FROM gate_sessions WHERE expires_at_ms <= $1",
            &[&i64_of(now_ms)],
        )?;
        txn.execute(
            "DELETE FROM gate_sessions WHERE key IN \
             (SELECT key FROM gate_sessions ORDER BY expires_at_ms DESC, key OFFSET $1)",
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
