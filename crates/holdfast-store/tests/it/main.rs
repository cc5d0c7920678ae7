//! One integration test binary for the crate.

use std::sync::atomic::{AtomicU32, Ordering};

use holdfast_store::testing::TempPostgres;

mod behaviour;
mod gate;
mod outage;
mod utxo;
mod utxo_bulk;
mod utxo_rebuild;
mod utxo_txs;
mod watch;

static PG: std::sync::OnceLock<Result<TempPostgres, String>> = std::sync::OnceLock::new();

/// A fresh database on the shared test server (each test its own), or `None` when
/// PostgreSQL tests are skipped explicitly.
pub fn pg_db() -> Option<String> {
    if std::env::var_os("HOLDFAST_TEST_SKIP_PG").is_some_and(|v| v == "1") {
        return None;
    }
    static N: AtomicU32 = AtomicU32::new(0);
    let pg = PG
        .get_or_init(|| TempPostgres::start(false))
        .as_ref()
        .unwrap_or_else(|e| {
            panic!("PostgreSQL could not be started (set HOLDFAST_TEST_SKIP_PG=1 to skip): {e}")
        });
    let name = format!(
        "test_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let mut c = postgres::Client::connect(pg.url(), postgres::NoTls).expect("connect");
    c.batch_execute(&format!("CREATE DATABASE {name}"))
        .expect("create database");
    let base = pg.url().rsplit_once('/').map_or(pg.url(), |(b, _)| b);
    Some(format!("{base}/{name}"))
}
