//! Address parsing and validation per chain, and the normalized keys the index stores.
//!
//! [`parse`] takes what a user typed (or what a dataset holds) and an optional chain, and
//! returns a [`ParsedAddress`]: the lookup key, the format, the chains the address can belong
//! to and the canonical display form. Without a chain, the chain set is inferred from the
//! format; where a format is shared (an EVM address is the same identity on every EVM chain,
//! a `1...` address is valid on Bitcoin, Bitcoin Cash and Bitcoin SV) the set holds them all.
//!
//! Invariants:
//! - Checksums are always verified: a mistyped address is an error, never "no match".
//! - Case-sensitive formats (base58) keep their case in the key; case-insensitive ones (hex,
//!   bech32, cashaddr) are normalized, so every spelling of one address has one key.
//! - A Bitcoin Cash cashaddr and its legacy base58 form share one key (the legacy string).
//! - Inputs are bounded ([`MAX_LEN`]) and errors quote at most 100 characters of the input.

mod base58;
mod cashaddr;
mod evm;
mod monero;
mod segwit;

use std::fmt;

use alloy_primitives::Address;
use holdfast_primitives::{Chain, ChainFamily};
use serde::Serialize;

/// Longest input accepted (the longest real format, a Monero integrated address, is 106).
pub const MAX_LEN: usize = 128;

/// The normalized lookup key of an address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(untagged)]
pub enum AddressKey {
    /// A 20-byte EVM address, one key on every EVM chain.
    Evm(Address),
    /// Every other format, as its canonical string.
    Text(Box<str>),
}

impl fmt::Display for AddressKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddressKey::Evm(a) => write!(f, "{}", a.to_checksum(None)),
            AddressKey::Text(t) => f.write_str(t),
        }
    }
}

/// The encoding an address was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressFormat {
    /// `0x` and 40 hex digits, EIP-55 mixed-case checksum when mixed case.
    Evm,
    /// Base58check pay-to-public-key-hash (Bitcoin `1...`, Litecoin `L...`, Dogecoin `D...`, ...).
    P2pkh,
    /// Base58check pay-to-script-hash (Bitcoin `3...`, Litecoin `M...`, ...).
    P2sh,
    /// Bech32 segwit version 0 (BIP-173): `bc1q...`, `ltc1q...`.
    Bech32,
    /// Bech32m segwit version 1+ (BIP-350): `bc1p...` (taproot).
    Bech32m,
    /// Bitcoin Cash cashaddr: `bitcoincash:q...` (prefix optional).
    CashAddr,
    /// Tron base58check, version 0x41: `T...`.
    Tron,
    /// Ripple base58check in the Ripple alphabet: `r...`.
    Ripple,
    /// Monero standard (`4...`) or subaddress (`8...`), 95 characters.
    Monero,
    /// Monero integrated address (with payment id), 106 characters.
    MoneroIntegrated,
    /// A 64-hex-digit Monero key, as OFAC lists one; accepted only with chain `monero`.
    MoneroHex,
    /// Solana: base58 of a 32-byte public key, no checksum.
    Solana,
    /// BNB Beacon Chain bech32: `bnb1...`.
    BnbBeacon,
}

impl AddressFormat {
    pub const fn name(self) -> &'static str {
        match self {
            AddressFormat::Evm => "evm",
            AddressFormat::P2pkh => "base58-p2pkh",
            AddressFormat::P2sh => "base58-p2sh",
            AddressFormat::Bech32 => "bech32",
            AddressFormat::Bech32m => "bech32m",
            AddressFormat::CashAddr => "cashaddr",
            AddressFormat::Tron => "tron-base58",
            AddressFormat::Ripple => "ripple-base58",
            AddressFormat::Monero => "monero",
            AddressFormat::MoneroIntegrated => "monero-integrated",
            AddressFormat::MoneroHex => "monero-hex",
            AddressFormat::Solana => "solana",
            AddressFormat::BnbBeacon => "bnb-bech32",
        }
    }

    /// What a valid address of this format looks like, for error messages.
    pub const fn describe(self) -> &'static str {
        match self {
            AddressFormat::Evm => {
                "an EVM address: 0x and 40 hex digits (EIP-55 checksum if mixed case)"
            }
            AddressFormat::P2pkh => "a base58check pay-to-public-key-hash address",
            AddressFormat::P2sh => "a base58check pay-to-script-hash address",
            AddressFormat::Bech32 => "a bech32 segwit v0 address (bc1q..., ltc1q...)",
            AddressFormat::Bech32m => "a bech32m segwit v1+ address (bc1p...)",
            AddressFormat::CashAddr => "a Bitcoin Cash cashaddr (bitcoincash:q... or p...)",
            AddressFormat::Tron => "a Tron base58check address (T..., 34 characters)",
            AddressFormat::Ripple => "a Ripple address (r..., base58check in the Ripple alphabet)",
            AddressFormat::Monero => "a Monero address (4... or 8..., 95 characters)",
            AddressFormat::MoneroIntegrated => "a Monero integrated address (4..., 106 characters)",
            AddressFormat::MoneroHex => "a 64-hex-digit Monero key",
            AddressFormat::Solana => "a Solana address (base58 of 32 bytes)",
            AddressFormat::BnbBeacon => "a BNB Beacon Chain address (bnb1...)",
        }
    }
}

impl fmt::Display for AddressFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for AddressFormat {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// A set of chains, as a bit set over [`Chain::index`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ChainSet(u32);

impl ChainSet {
    pub const EMPTY: ChainSet = ChainSet(0);
    /// Every EVM chain: where an EVM address applies unless a chain is named.
    pub const ALL_EVM: ChainSet = {
        let mut bits = 0u32;
        let mut i = 0;
        while i < Chain::ALL.len() {
            if Chain::ALL[i].is_evm() {
                bits |= 1 << Chain::ALL[i].index();
            }
            i += 1;
        }
        ChainSet(bits)
    };

    pub const fn of(chain: Chain) -> ChainSet {
        ChainSet(1 << chain.index())
    }

    pub const fn from_slice(chains: &[Chain]) -> ChainSet {
        let mut bits = 0u32;
        let mut i = 0;
        while i < chains.len() {
            bits |= 1 << chains[i].index();
            i += 1;
        }
        ChainSet(bits)
    }

    pub fn insert(&mut self, chain: Chain) {
        self.0 |= 1 << chain.index();
    }

    pub const fn contains(self, chain: Chain) -> bool {
        self.0 & (1 << chain.index()) != 0
    }

    pub const fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The chains in [`Chain::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Chain> {
        Chain::ALL.into_iter().filter(move |c| self.contains(*c))
    }
}

impl fmt::Debug for ChainSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter().map(Chain::name)).finish()
    }
}

impl Serialize for ChainSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

/// A validated address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedAddress {
    pub key: AddressKey,
    pub format: AddressFormat,
    /// The chains the address can belong to: the named chain, or every chain of the format.
    pub chains: ChainSet,
    /// The canonical spelling: EIP-55 for EVM, lower case for bech32 and cashaddr, as given
    /// for base58.
    pub display: String,
}

/// Why an input is not a valid address. Every message quotes the input (at most 100
/// characters of it) and says what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error(
        "empty address: expected an address such as 0x... (EVM), bc1.../1.../3... (Bitcoin) or T... (Tron)"
    )]
    Empty,
    #[error("address {input:?} is {len} characters long: at most {MAX_LEN} are accepted")]
    TooLong { input: String, len: usize },
    #[error("address {input:?} fails its checksum: expected {}; a character is mistyped or the case was changed", format.describe())]
    BadChecksum {
        input: String,
        format: AddressFormat,
    },
    #[error("address {input:?} has {len} characters: expected {expected}")]
    WrongLength {
        input: String,
        len: usize,
        expected: &'static str,
    },
    #[error(
        "address {input:?} has an invalid character {ch:?} at position {pos}: expected {expected}"
    )]
    InvalidCharacter {
        input: String,
        ch: char,
        pos: usize,
        expected: &'static str,
    },
    #[error("address {input:?} is not {}: {reason}", format.describe())]
    Malformed {
        input: String,
        format: AddressFormat,
        reason: String,
    },
    #[error("address {input:?} is not a {chain} address: expected {expected}")]
    NotForChain {
        input: String,
        chain: Chain,
        expected: &'static str,
    },
    #[error(
        "address {input:?} is not in any known format: expected an EVM (0x...), Bitcoin-family, Tron, Ripple, Monero, Solana or BNB Beacon address"
    )]
    Unrecognised { input: String },
}

/// The input as quoted in errors: at most 100 characters.
pub(crate) fn shown(input: &str) -> String {
    match input.char_indices().nth(100) {
        Some((i, _)) => format!("{}...", &input[..i]),
        None => input.to_owned(),
    }
}

/// Parses and validates `input`; with `chain`, the address must be valid on that chain and the
/// result's chain set is that chain alone.
pub fn parse(input: &str, chain: Option<Chain>) -> Result<ParsedAddress, AddressError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(AddressError::Empty);
    }
    if s.len() > MAX_LEN {
        return Err(AddressError::TooLong {
            input: shown(s),
            len: s.len(),
        });
    }
    let parsed = match chain {
        Some(Chain::Monero) if s.len() == 64 => monero::parse_hex(s)?,
        _ => infer(s)?,
    };
    match chain {
        None => Ok(parsed),
        Some(c) if parsed.chains.contains(c) => Ok(ParsedAddress {
            chains: ChainSet::of(c),
            ..parsed
        }),
        Some(c) => Err(AddressError::NotForChain {
            input: shown(s),
            chain: c,
            expected: expected_for(c),
        }),
    }
}

/// [`parse`] without building the display form: the key and the chain set, for indexing.
pub fn parse_key(
    input: &str,
    chain: Option<Chain>,
) -> Result<(AddressKey, ChainSet), AddressError> {
    let s = input.trim();
    if (s.starts_with("0x") || s.starts_with("0X"))
        && s.len() <= MAX_LEN
        && chain.is_none_or(Chain::is_evm)
    {
        return Ok((
            AddressKey::Evm(evm::key(s)?),
            chain.map_or(ChainSet::ALL_EVM, ChainSet::of),
        ));
    }
    parse(input, chain).map(|p| (p.key, p.chains))
}

/// Recognizes the format from the text alone.
fn infer(s: &str) -> Result<ParsedAddress, AddressError> {
    if s.starts_with("0x") || s.starts_with("0X") {
        return evm::parse(s);
    }
    if let Some(r) = segwit::parse(s) {
        return r;
    }
    if let Some(r) = cashaddr::parse(s) {
        return r;
    }
    if let Some(r) = monero::parse(s) {
        return r;
    }
    if let Some(r) = base58::parse(s) {
        return r;
    }
    Err(AddressError::Unrecognised { input: shown(s) })
}

/// What an address on `chain` looks like, for [`AddressError::NotForChain`].
pub const fn expected_for(chain: Chain) -> &'static str {
    match chain.family() {
        ChainFamily::Evm => "0x and 40 hex digits",
        ChainFamily::Tron => "a Tron base58check address (T..., 34 characters)",
        ChainFamily::Monero => {
            "a Monero address (4.../8..., 95 or 106 characters) or a 64-hex-digit key"
        }
        ChainFamily::Ripple => "a Ripple address (r...)",
        ChainFamily::Solana => "a Solana address (base58 of 32 bytes)",
        ChainFamily::BnbBeacon => "a BNB Beacon Chain address (bnb1...)",
        ChainFamily::Utxo => match chain {
            Chain::Bitcoin => "a Bitcoin address (1..., 3... or bc1...)",
            Chain::BitcoinCash => "a Bitcoin Cash address (cashaddr q.../p... or legacy 1.../3...)",
            Chain::BitcoinSv => "a Bitcoin SV address (1... or 3...)",
            Chain::BitcoinGold => "a Bitcoin Gold address (G... or A...)",
            Chain::Litecoin => "a Litecoin address (L..., M..., 3... or ltc1...)",
            Chain::Dogecoin => "a Dogecoin address (D..., A... or 9...)",
            Chain::Dash => "a Dash address (X... or 7...)",
            Chain::Zcash => "a Zcash transparent address (t1... or t3...)",
            Chain::Verge => "a Verge address (D...)",
            _ => "an address of that chain",
        },
    }
}

fn text(key: &str, format: AddressFormat, chains: ChainSet) -> ParsedAddress {
    ParsedAddress {
        key: AddressKey::Text(key.into()),
        format,
        chains,
        display: key.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> ParsedAddress {
        parse(s, None).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn chain_set_basics() {
        let evm = ChainSet::ALL_EVM;
        assert_eq!(evm.len(), 10);
        assert!(evm.contains(Chain::Ethereum) && evm.contains(Chain::Gnosis));
        assert!(!evm.contains(Chain::Tron));
        let mut s = ChainSet::EMPTY;
        assert!(s.is_empty());
        s.insert(Chain::Tron);
        s.insert(Chain::Bitcoin);
        assert_eq!(
            s.iter().collect::<Vec<_>>(),
            vec![Chain::Bitcoin, Chain::Tron]
        );
        assert_eq!(
            serde_json::to_string(&s).expect("json"),
            r#"["bitcoin","tron"]"#
        );
        assert_eq!(format!("{s:?}"), r#"{"bitcoin", "tron"}"#);
    }

    #[test]
    fn chain_named_narrows_or_rejects() {
        let p = parse(
            "0x098B716B8Aaf21512996dC57EB0615e2383E2f96",
            Some(Chain::Bsc),
        )
        .expect("ok");
        assert_eq!(p.chains, ChainSet::of(Chain::Bsc));
        let err = parse(
            "0x098B716B8Aaf21512996dC57EB0615e2383E2f96",
            Some(Chain::Tron),
        )
        .expect_err("not tron");
        assert!(
            matches!(
                err,
                AddressError::NotForChain {
                    chain: Chain::Tron,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("T..."), "{err}");
        let err =
            parse("TBHTJqAy4DhHhmT3dNceJYNRz4SdLofLre", Some(Chain::Bitcoin)).expect_err("not btc");
        assert!(matches!(err, AddressError::NotForChain { .. }));
    }

    #[test]
    fn bounded_and_quoted() {
        assert_eq!(parse("  ", None), Err(AddressError::Empty));
        let long = "a".repeat(5000);
        let err = parse(&long, None).expect_err("too long");
        assert!(matches!(err, AddressError::TooLong { len: 5000, .. }));
        assert!(err.to_string().len() < 300, "{err}");
        let err = parse("hello world", None).expect_err("junk");
        assert!(matches!(err, AddressError::Unrecognised { .. }), "{err:?}");
        assert!(err.to_string().contains("hello world"));
        assert!(parse("é".repeat(40).as_str(), None).is_err());
    }

    #[test]
    fn inference_unions_shared_formats() {
        let p = ok("1BpEi6DfDAUFd7GtittLSdBeYJvcoaVggu");
        assert_eq!(p.format, AddressFormat::P2pkh);
        assert_eq!(
            p.chains,
            ChainSet::from_slice(&[Chain::Bitcoin, Chain::BitcoinCash, Chain::BitcoinSv])
        );
        let p = ok("3CWFddi6m4ndiGyKqzYvsFYagqDLPVMTzC");
        assert_eq!(p.format, AddressFormat::P2sh);
        assert!(p.chains.contains(Chain::Litecoin));
        let p = ok("0x098b716b8aaf21512996dc57eb0615e2383e2f96");
        assert_eq!(p.chains, ChainSet::ALL_EVM);
    }

    const MISLABELLED: [&str; 1] = ["XBT TUCsTq7TofTCJRRoHk6RvhMoS2mJLm5Yzq"];

    /// Every address in the shipped per-chain OFAC lists parses on its chain, in its original
    /// case, and as a chain-less input.
    #[test]
    fn every_shipped_ofac_list_address_parses() {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../data/intel/ofac/0xB10C-lists"
        );
        let mut n = 0;
        let mut mislabelled = Vec::new();
        for entry in std::fs::read_dir(dir).expect("lists dir") {
            let path = entry.expect("entry").path();
            if path.extension().is_none_or(|e| e != "txt") {
                continue;
            }
            let ticker = path
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.rsplit('_').next())
                .expect("ticker")
                .to_owned();
            let text = std::fs::read_to_string(&path).expect("read");
            for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
                let chain =
                    crate::sources::ofac::chain_of_type(&ticker, line).expect("known ticker");
                let q = parse(line, chain.filter(|c| *c == Chain::Monero))
                    .unwrap_or_else(|e| panic!("{ticker} {line}: {e}"));
                match chain {
                    Some(c) if !q.chains.contains(c) => {
                        mislabelled.push(format!("{ticker} {line}"))
                    }
                    _ => {}
                }
                n += 1;
            }
        }
        // OFAC's own data entry slips: the list type names another chain than the format.
        mislabelled.sort();
        assert_eq!(
            mislabelled, MISLABELLED,
            "addresses whose OFAC type is not their format's chain"
        );
        assert!(n > 600, "only {n} addresses");
    }
}
