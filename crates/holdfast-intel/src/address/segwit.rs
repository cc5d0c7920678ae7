//! Bech32 addresses: segwit v0 (BIP-173, bech32) and v1+ (BIP-350, bech32m) for Bitcoin
//! (`bc1`) and Litecoin (`ltc1`), and BNB Beacon Chain (`bnb1`, plain bech32 of 20 bytes).
//! Bech32 is case-insensitive but never mixed-case; the key is the lower-case string.

use bech32::primitives::decode::{CheckedHrpstring, SegwitHrpstring, UncheckedHrpstring};
use bech32::{Bech32, Bech32m};
use holdfast_primitives::Chain;

use super::{AddressError, AddressFormat, ChainSet, ParsedAddress, shown, text};

const CHARSET: &str = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";

/// Test networks' segwit prefixes, read as their chain's (Bitcoin testnet3, testnet4 and
/// signet `tb1`, regtest `bcrt1`; Litecoin testnet `tltc1`, regtest `rltc1`): distinct strings
/// from mainnet addresses, so a label on one never matches a mainnet address. They let a
/// test network's addresses be labelled and screened (the UTXO index's regtest clusters).
/// Claimed only when the rest is bech32 in one case (other formats may start alike).
const TEST_PREFIXES: [(&str, Chain); 4] = [
    ("tb1", Chain::Bitcoin),
    ("bcrt1", Chain::Bitcoin),
    ("tltc1", Chain::Litecoin),
    ("rltc1", Chain::Litecoin),
];

/// `None` when `s` does not start with a known human-readable part.
pub(super) fn parse(s: &str) -> Option<Result<ParsedAddress, AddressError>> {
    let lower = s.to_ascii_lowercase();
    let found = [
        ("bc1", Chain::Bitcoin),
        ("ltc1", Chain::Litecoin),
        ("bnb1", Chain::BnbBeacon),
    ]
    .into_iter()
    .find(|(p, _)| lower.starts_with(p))
    .map(|(p, c)| (p.len(), c));
    let (hrp_len, chain) = match found {
        Some(f) => f,
        None => {
            let (p, c) = TEST_PREFIXES
                .into_iter()
                .find(|(p, _)| lower.starts_with(p))?;
            let one_case = !(s.bytes().any(|b| b.is_ascii_uppercase())
                && s.bytes().any(|b| b.is_ascii_lowercase()));
            if !one_case || !lower[p.len()..].chars().all(|c| CHARSET.contains(c)) {
                return None;
            }
            (p.len(), c)
        }
    };
    Some(check(s, &lower, hrp_len, chain))
}

fn check(
    s: &str,
    lower: &str,
    hrp_len: usize,
    chain: Chain,
) -> Result<ParsedAddress, AddressError> {
    let has_upper = s.bytes().any(|b| b.is_ascii_uppercase());
    if has_upper && s.bytes().any(|b| b.is_ascii_lowercase()) {
        let (pos, ch) = s
            .char_indices()
            .find(|(_, c)| c.is_ascii_uppercase())
            .unwrap_or((0, ' '));
        return Err(AddressError::InvalidCharacter {
            input: shown(s),
            ch,
            pos,
            expected: "bech32 written in one case (all lower or all upper)",
        });
    }
    if let Some((i, ch)) = lower[hrp_len..]
        .char_indices()
        .find(|(_, c)| !CHARSET.contains(*c))
    {
        return Err(AddressError::InvalidCharacter {
            input: shown(s),
            ch: s[hrp_len + i..].chars().next().unwrap_or(ch),
            pos: hrp_len + i,
            expected: "bech32 characters (no 1, b, i or o after the separator)",
        });
    }
    if chain == Chain::BnbBeacon {
        let checked =
            CheckedHrpstring::new::<Bech32>(lower).map_err(|_| AddressError::BadChecksum {
                input: shown(s),
                format: AddressFormat::BnbBeacon,
            })?;
        let len = checked.byte_iter().len();
        if len != 20 {
            return Err(AddressError::Malformed {
                input: shown(s),
                format: AddressFormat::BnbBeacon,
                reason: format!("it encodes {len} bytes, expected 20"),
            });
        }
        return Ok(text(lower, AddressFormat::BnbBeacon, ChainSet::of(chain)));
    }
    let unchecked = UncheckedHrpstring::new(lower).map_err(|e| AddressError::Malformed {
        input: shown(s),
        format: AddressFormat::Bech32,
        reason: e.to_string(),
    })?;
    let v0 = unchecked.witness_version().is_some_and(|v| v.to_u8() == 0);
    let format = if v0 {
        AddressFormat::Bech32
    } else {
        AddressFormat::Bech32m
    };
    let valid = if v0 {
        unchecked.has_valid_checksum::<Bech32>()
    } else {
        unchecked.has_valid_checksum::<Bech32m>()
    };
    if !valid {
        return Err(AddressError::BadChecksum {
            input: shown(s),
            format,
        });
    }
    SegwitHrpstring::new(lower).map_err(|e| AddressError::Malformed {
        input: shown(s),
        format,
        reason: e.to_string(),
    })?;
    Ok(text(lower, format, ChainSet::of(chain)))
}

#[cfg(test)]
mod tests {
    use super::super::parse as parse_any;
    use super::*;

    /// Test networks' addresses (BIP-173's testnet vector; Litecoin regtest addresses written
    /// by litecoind 0.21) are read as their chain's; a mistyped one fails its checksum.
    #[test]
    fn test_network_prefixes() {
        for (v, chain) in [
            ("tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx", Chain::Bitcoin),
            (
                "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7",
                Chain::Bitcoin,
            ),
        ] {
            let p = parse_any(v, None).unwrap_or_else(|e| panic!("{v}: {e}"));
            assert_eq!(p.chains, ChainSet::of(chain), "{v}");
            assert_eq!(p.format, AddressFormat::Bech32);
        }
        assert!(matches!(
            parse_any("tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsy", None),
            Err(AddressError::BadChecksum { .. })
        ));
        // Encoded here with each test prefix: the same program reads back on its chain.
        let program = [7u8; 20];
        for (hrp, chain) in TEST_PREFIXES {
            let hrp = bech32::Hrp::parse(hrp.trim_end_matches('1')).expect("hrp");
            let a = bech32::segwit::encode_v0(hrp, &program).expect("encode");
            let p = parse_any(&a, None).unwrap_or_else(|e| panic!("{a}: {e}"));
            assert_eq!(p.chains, ChainSet::of(chain), "{a}");
            assert_eq!(p.display, a);
        }
    }

    /// Valid mainnet vectors from BIP-173 and BIP-350.
    #[test]
    fn bip173_bip350_valid() {
        for (v, format) in [
            (
                "BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4",
                AddressFormat::Bech32,
            ),
            (
                "bc1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3qccfmv3",
                AddressFormat::Bech32,
            ),
            (
                "bc1pw508d6qejxtdg4y5r3zarvary0c5xw7kw508d6qejxtdg4y5r3zarvary0c5xw7kt5nd6y",
                AddressFormat::Bech32m,
            ),
            ("BC1SW50QGDZ25J", AddressFormat::Bech32m),
            (
                "bc1zw508d6qejxtdg4y5r3zarvaryvaxxpcs",
                AddressFormat::Bech32m,
            ),
            (
                "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0",
                AddressFormat::Bech32m,
            ),
        ] {
            let p = parse_any(v, None).unwrap_or_else(|e| panic!("{v}: {e}"));
            assert_eq!(p.format, format, "{v}");
            assert_eq!(p.chains, ChainSet::of(Chain::Bitcoin));
            assert_eq!(p.display, v.to_ascii_lowercase());
        }
        let upper = parse_any("BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4", None).expect("upper");
        let lower = parse_any("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", None).expect("lower");
        assert_eq!(upper.key, lower.key);
    }

    /// Invalid vectors from BIP-350 (each must be an error, with the right kind where telling).
    #[test]
    fn bip350_invalid() {
        for v in [
            "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqh2y7hd", // bech32 checksum on v1
            "BC1S0XLXVLHEMJA6C4DQV22UAPCTQUPFHLXM9H8Z3K2E72Q4K9HCZ7VQ54WELL", // bech32 checksum on v16
            "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kemeawh", // bech32m checksum on v0
            "bc1p38j9r5y49hruaue7wxjce0updqjuyyx0kh56v8s25huc6995vvpql3jow4", // invalid character
            "BC130XLXVLHEMJA6C4DQV22UAPCTQUPFHLXM9H8Z3K2E72Q4K9HCZ7VQ7ZWS8R", // witness version 17
            "bc1pw5dgrnzv",                               // program too short
            "BC1QR508D6QEJXTDG4Y5R3ZARVARYV98GJ9P",       // bad v0 length
            "bc1zw508d6qejxtdg4y5r3zarvaryvqyzf3du",      // zero padding > 4 bits
            "bc1gmk9yu",                                  // empty data
        ] {
            assert!(parse_any(v, None).is_err(), "{v} should be invalid");
        }
        assert!(matches!(
            parse_any("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kemeawh", None),
            Err(AddressError::BadChecksum {
                format: AddressFormat::Bech32,
                ..
            })
        ));
        let e =
            parse_any("bc1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4", None).expect_err("mixed case");
        assert!(
            matches!(e, AddressError::InvalidCharacter { pos: 3, .. }),
            "{e:?}"
        );
        let e = parse_any("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3tb", None).expect_err("b");
        assert!(
            matches!(e, AddressError::InvalidCharacter { ch: 'b', .. }),
            "{e:?}"
        );
    }

    #[test]
    fn litecoin_and_bnb() {
        // Encode the BIP-173 v0 program under the Litecoin and BNB hrps with the bech32 crate,
        // so the vectors are independent of this parser.
        let program = hex::decode("751e76e8199196d454941c45d1b3a323f1433bd6").expect("hex");
        let ltc = bech32::segwit::encode_v0(bech32::Hrp::parse("ltc").expect("hrp"), &program)
            .expect("encode");
        let p = parse_any(&ltc, None).expect("ltc");
        assert_eq!(p.chains, ChainSet::of(Chain::Litecoin));
        assert_eq!(p.format, AddressFormat::Bech32);
        let bnb = bech32::encode::<Bech32>(bech32::Hrp::parse("bnb").expect("hrp"), &program)
            .expect("encode");
        let p = parse_any(&bnb, None).expect("bnb");
        assert_eq!(p.format, AddressFormat::BnbBeacon);
        let mut broken = bnb.clone();
        let last = broken.pop().expect("char");
        broken.push(if last == 'q' { 'p' } else { 'q' });
        assert!(
            matches!(
                parse_any(&broken, None),
                Err(AddressError::BadChecksum { .. })
            ),
            "{broken}"
        );
    }
}
