//! Connections to one PostgreSQL database shared by the stores that keep several
//! instances' state (the guard service's, the watch's): a fixed pool of synchronous clients,
//! and a versioned schema per store migrated on connect under an advisory lock.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use postgres::{Client, NoTls};

use crate::StoreError;

/// One store's schema: its migrations, in order (`migrations[i]` takes the database from
/// version `i` to `i + 1`, recorded in `table`); append new ones, never edit a released one.
pub(crate) struct Schema {
    /// What the schema is of, in errors ("gate", "watch").
    pub what: &'static str,
    /// The version table.
    pub table: &'static str,
    /// The advisory lock (single-key space) held while migrating.
    pub lock: i64,
    pub migrations: &'static [&'static str],
}

/// A pool of connections to one database. A connection the server closed (a restart, a
/// failover, a network cut) is replaced when it is next taken. The operation that met the
/// closed connection fails as [`StoreError::Unavailable`] (it cannot be repeated blindly: a
/// commit may have landed); the pool then checks each of its other connections once before
/// its next use (a round trip), so one restart fails one operation, not one per connection.
/// A restart no operation saw is found by the next operation, which fails the same way.
pub(crate) struct Pool {
    config: postgres::Config,
    clients: Vec<Mutex<Client>>,
    /// Per connection, the `suspect` epoch it was last checked at.
    checked: Vec<AtomicU64>,
    /// Raised each time a connection is found closed: the others may be too.
    suspect: AtomicU64,
    next: AtomicUsize,
}

/// How long the check of a suspect connection may take.
const PING: Duration = Duration::from_secs(2);

/// How long a connection attempt may take when the URL does not say (`connect_timeout`):
/// without one, a server cut off by the network holds each attempt for the system's TCP
/// timeout (minutes), and with it the request or block that asked.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The URL's connection settings, with [`CONNECT_TIMEOUT`] unless it sets its own.
fn config_of(url: &str) -> Result<postgres::Config, StoreError> {
    let mut config: postgres::Config = url.parse()?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    Ok(config)
}

impl Drop for Pool {
    /// The synchronous client closes its connection by blocking on its own runtime, which
    /// panics on an async runtime's thread: close on a plain thread instead.
    fn drop(&mut self) {
        let clients = std::mem::take(&mut self.clients);
        let _ = std::thread::spawn(move || drop(clients)).join();
    }
}

impl Pool {
    /// Connects `connections` clients (no TLS: a trusted network or a local socket) and
    /// creates or checks `schema`.
    pub fn connect(url: &str, connections: usize, schema: &Schema) -> Result<Pool, StoreError> {
        let config = config_of(url)?;
        let mut first = config.connect(NoTls)?;
        migrate(&mut first, schema)?;
        let mut clients = vec![Mutex::new(first)];
        for _ in 1..connections.max(1) {
            clients.push(Mutex::new(config.connect(NoTls)?));
        }
        Ok(Pool {
            config,
            checked: clients.iter().map(|_| AtomicU64::new(0)).collect(),
            clients,
            suspect: AtomicU64::new(0),
            next: AtomicUsize::new(0),
        })
    }

    pub fn len(&self) -> usize {
        self.clients.len()
    }

    /// A free connection if there is one, else the next in turn; replaced first if the
    /// server closed it (if the server is still away, the closed one is returned and its
    /// use fails as [`StoreError::Unavailable`]).
    pub fn client(&self) -> MutexGuard<'_, Client> {
        let free = self
            .clients
            .iter()
            .enumerate()
            .find_map(|(i, c)| Some((i, c.try_lock().ok()?)));
        let (i, mut g) = free.unwrap_or_else(|| {
            let i = self.next.fetch_add(1, Ordering::Relaxed) % self.clients.len();
            // A panic mid-transaction dropped (rolled back) it: the connection is clean.
            let g = self.clients[i]
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            (i, g)
        });
        let suspect = self.suspect.load(Ordering::SeqCst);
        let closed = g.is_closed();
        if closed {
            // The others may have lost their server too: each is checked before its next use.
            self.suspect.fetch_add(1, Ordering::SeqCst);
        }
        let stale = closed
            || (self.checked[i].load(Ordering::SeqCst) < suspect && g.is_valid(PING).is_err());
        if !stale {
            self.checked[i].store(suspect, Ordering::SeqCst);
            return g;
        }
        match self.config.connect(NoTls) {
            Ok(fresh) => {
                let old = std::mem::replace(&mut *g, fresh);
                // Dropped on a plain thread, as in `Drop` (it blocks on its own runtime).
                std::thread::spawn(move || drop(old));
                self.checked[i].store(self.suspect.load(Ordering::SeqCst), Ordering::SeqCst);
                tracing::info!(target: "store", "reconnected to PostgreSQL");
            }
            Err(e) => {
                tracing::warn!(target: "store", error = %StoreError::from(e), "PostgreSQL is still unavailable");
            }
        }
        g
    }
}

/// Brings the database to `schema`'s latest version. One instance at a time migrates; a
/// schema that is up to date gets no DDL (which would lock tables other instances are
/// writing).
pub(crate) fn migrate(client: &mut Client, schema: &Schema) -> Result<(), StoreError> {
    let mut tx = client.transaction()?;
    tx.batch_execute(&format!(
        "SELECT pg_advisory_xact_lock({});
         CREATE TABLE IF NOT EXISTS {} (version INT NOT NULL)",
        schema.lock, schema.table
    ))?;
    let version = tx
        .query_one(
            &format!("SELECT coalesce(max(version), 0) FROM {}", schema.table),
            &[],
        )?
        .get::<_, i32>(0);
    let from = usize::try_from(version).unwrap_or(usize::MAX);
    if from > schema.migrations.len() {
        return Err(StoreError::Postgres(format!(
            "the database has {} schema version {version}; this Holdfast knows versions up to {}: upgrade Holdfast",
            schema.what,
            schema.migrations.len()
        )));
    }
    for (i, m) in schema.migrations.iter().enumerate().skip(from) {
        tx.batch_execute(m)?;
        tx.execute(
            &format!("INSERT INTO {} (version) VALUES ($1)", schema.table),
            &[&(i32::try_from(i + 1).unwrap_or(i32::MAX))],
        )?;
    }
    tx.commit()?;
    Ok(())
}
