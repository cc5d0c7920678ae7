//! holdfast-intel integration tests: the shipped real data, imports, SDN updates, bad input.

mod imports;
mod real_data;

use std::sync::OnceLock;

use holdfast_intel::IntelIndex;

/// The shipped intel, loaded once for the whole binary.
pub fn shipped() -> &'static IntelIndex {
    static INDEX: OnceLock<IntelIndex> = OnceLock::new();
    INDEX.get_or_init(|| {
        holdfast_intel::load(None)
            .expect("shipped intel loads")
            .index
    })
}

pub fn data(path: &str) -> String {
    let p = format!("{}/../../data/intel/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}
