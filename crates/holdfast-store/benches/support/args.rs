//! What the UTXO benchmarks share: their command-line options and a reproducible stream.

/// The number after `name` on the command line, else `default`.
pub fn option(name: &str, default: u64) -> u64 {
    std::env::args()
        .skip_while(|a| a != name)
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Whether `flag` is on the command line.
pub fn has(flag: &str) -> bool {
    std::env::args().any(|a| a == flag)
}

/// xorshift64*: a fixed, reproducible stream.
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}
