//! EVM addresses: `0x` + 40 hex digits; a mixed-case spelling must carry a valid EIP-55
//! checksum, all-lower and all-upper spellings carry none and are accepted.

use alloy_primitives::Address;

use super::{AddressError, AddressFormat, AddressKey, ChainSet, ParsedAddress, shown};

const EXPECTED: &str = "0x and 40 hex digits (42 characters)";

pub(super) fn parse(s: &str) -> Result<ParsedAddress, AddressError> {
    let address = key(s)?;
    Ok(ParsedAddress {
        key: AddressKey::Evm(address),
        format: AddressFormat::Evm,
        chains: ChainSet::ALL_EVM,
        display: address.to_checksum(None),
    })
}

/// Validates `s` and returns the address; hashes only when a mixed-case checksum must be
/// verified (the index validates tens of thousands of addresses at load).
pub(super) fn key(s: &str) -> Result<Address, AddressError> {
    let hex = s
        .get(2..)
        .filter(|_| s.starts_with("0x") || s.starts_with("0X"))
        .ok_or_else(|| AddressError::WrongLength {
            input: shown(s),
            len: s.chars().count(),
            expected: EXPECTED,
        })?;
    if let Some((i, ch)) = hex.char_indices().find(|(_, c)| !c.is_ascii_hexdigit()) {
        return Err(AddressError::InvalidCharacter {
            input: shown(s),
            ch,
            pos: i + 2,
            expected: "hex digits 0-9, a-f",
        });
    }
    if hex.len() != 40 {
        return Err(AddressError::WrongLength {
            input: shown(s),
            len: s.len(),
            expected: EXPECTED,
        });
    }
    let mut bytes = [0u8; 20];
    hex::decode_to_slice(hex, &mut bytes).map_err(|e| AddressError::Malformed {
        input: shown(s),
        format: AddressFormat::Evm,
        reason: e.to_string(),
    })?;
    let address = Address::from(bytes);
    let mixed =
        hex.bytes().any(|b| b.is_ascii_lowercase()) && hex.bytes().any(|b| b.is_ascii_uppercase());
    if mixed && address.to_checksum(None)[2..] != *hex {
        return Err(AddressError::BadChecksum {
            input: shown(s),
            format: AddressFormat::Evm,
        });
    }
    Ok(address)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test vectors of EIP-55 itself.
    const EIP55: [&str; 8] = [
        "0x52908400098527886E0F7030069857D2E4169EE7",
        "0x8617E340B3D01FA5F11F306F4090FD50E238070D",
        "0xde709f2102306220921060314715629080e2fb77",
        "0x27b1fdb04752bbc536007a920d24acb045561c26",
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
        "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
        "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
    ];

    #[test]
    fn eip55_vectors() {
        for v in EIP55 {
            let p = parse(v).unwrap_or_else(|e| panic!("{v}: {e}"));
            assert_eq!(p.format, AddressFormat::Evm);
            // The all-caps and all-lower vectors display in checksummed form.
            assert!(p.display.eq_ignore_ascii_case(v));
        }
        assert_eq!(parse(EIP55[4]).expect("ok").display, EIP55[4]);
    }

    #[test]
    fn wrong_checksum_lower_upper() {
        let good = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
        let bad = "0x5AAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
        assert!(matches!(parse(bad), Err(AddressError::BadChecksum { .. })));
        let lower = parse(&good.to_ascii_lowercase()).expect("lower");
        let upper = parse(&format!("0x{}", good[2..].to_ascii_uppercase())).expect("upper");
        assert_eq!(lower.key, upper.key);
        assert_eq!(lower.display, good);
        assert!(parse("0X5AAEB6053F3E94C9B9A09F33669435E7EF1BEAED").is_ok());
    }

    #[test]
    fn malformed() {
        let e = parse("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAe").expect_err("short");
        assert!(
            matches!(e, AddressError::WrongLength { len: 41, .. }),
            "{e:?}"
        );
        let e = parse("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAedd").expect_err("long");
        assert!(matches!(e, AddressError::WrongLength { .. }));
        let e = parse("0xZaAeb6053F3E94C9b9A09f33669435E7Ef1BeAed").expect_err("bad hex");
        assert!(
            matches!(
                e,
                AddressError::InvalidCharacter {
                    ch: 'Z',
                    pos: 2,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains("0xZaAeb"), "{e}");
        assert!(parse("0x").is_err());
    }
}
