//! PostgreSQL going away and coming back under every store that uses it: the operations
//! that meet the outage fail as `Unavailable` (transient: a caller may ask again), the pools
//! reconnect once the server is back, and no store needs to be reopened.

use holdfast_store::gate::{GateStore, PgGateStore};
use holdfast_store::testing::TempPostgres;
use holdfast_store::utxo::{PgUtxoStore, UtxoStore};
use holdfast_store::watch::{PgWatchStore, WatchStore};
use holdfast_store::{PgStore, Store, StoreError};

/// Every store's cheapest read.
struct Stores {
    transfers: PgStore,
    watch: PgWatchStore,
    gate: PgGateStore,
    utxo: PgUtxoStore,
}

impl Stores {
    fn reads(&self) -> Vec<(&'static str, Result<(), StoreError>)> {
        vec![
            ("transfers", self.transfers.head(1).map(drop)),
            ("watch", self.watch.checkpoint(1).map(drop)),
            ("gate", self.gate.get("no-such-request").map(drop)),
            ("utxo", self.utxo.head(1).map(drop)),
        ]
    }
}

#[test]
fn a_postgresql_restart_fails_what_meets_it_as_transient_and_every_pool_reconnects() {
    if std::env::var_os("HOLDFAST_TEST_SKIP_PG").is_some_and(|v| v == "1") {
        return;
    }
    // Its own server: this test stops it.
    let pg = TempPostgres::start(false)
        .unwrap_or_else(|e| panic!("PostgreSQL could not be started: {e}"));
    let stores = Stores {
        transfers: PgStore::connect(pg.url()).expect("transfers"),
        watch: PgWatchStore::connect(pg.url(), 2).expect("watch"),
        gate: PgGateStore::connect(pg.url(), 2).expect("gate"),
        utxo: PgUtxoStore::connect(pg.url()).expect("utxo"),
    };
    for (store, r) in stores.reads() {
        r.unwrap_or_else(|e| panic!("{store}: {e}"));
    }
    // A statement's own error is not an outage.
    let limit = stores
        .transfers
        .transfers(
            1,
            holdfast_store::TransferQuery::Tx {
                tx_hash: Default::default(),
            },
            holdfast_store::MAX_LIMIT + 1,
        )
        .expect_err("over the limit");
    assert!(!limit.is_transient(), "{limit}");

    pg.stop().expect("stop");
    for (store, r) in stores.reads() {
        let e = r.expect_err("the server is away");
        assert!(e.is_transient(), "{store}: {e:?}");
        assert!(e.to_string().contains("unavailable"), "{store}: {e}");
    }
    // Still away: the pools try to reconnect and fail the same way.
    for (store, r) in stores.reads() {
        let e = r.expect_err("still away");
        assert!(e.is_transient(), "{store}: {e:?}");
    }

    pg.start_again().expect("start");
    // Each store met the outage: its next operation has a new connection.
    for (store, r) in stores.reads() {
        r.unwrap_or_else(|e| panic!("{store} after the restart: {e}"));
    }

    // A restart no operation saw: the first operation finds it (and fails, transient), the
    // next one is served.
    pg.stop().expect("stop");
    pg.start_again().expect("start");
    match stores.transfers.head(1) {
        Ok(_) => {}
        Err(e) => assert!(e.is_transient(), "{e:?}"),
    }
    stores.transfers.head(1).expect("served after the restart");
}
