//! holdfast-bitcoin's integration tests: real blocks from public sources (`fixtures`,
//! `etl`, `btcd`) and a real litecoind regtest node (`regtest`).

mod btcd;
mod etl;
mod fixtures;
mod regtest;
mod utxo;

use std::path::PathBuf;

pub fn fixture(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path)
}

pub fn read(path: &str) -> Vec<u8> {
    let p = fixture(path);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}
