//! Monero addresses: Monero's block base58 (8-byte blocks to 11 characters) of a network
//! byte, two 32-byte public keys (and an 8-byte payment id for integrated addresses) and a
//! 4-byte Keccak-256 checksum. OFAC also lists a bare 64-hex-digit key for one entry; that
//! form is accepted only when the chain is named.

use alloy_primitives::keccak256;
use holdfast_primitives::Chain;

use super::{AddressError, AddressFormat, AddressKey, ChainSet, ParsedAddress, shown, text};

const ALPHABET: &[u8; 58] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
/// Encoded length of a block of `i` bytes.
const ENCODED_BLOCK: [usize; 9] = [0, 2, 3, 5, 6, 7, 9, 10, 11];

/// `None` unless `s` has a Monero address's length and first character.
pub(super) fn parse(s: &str) -> Option<Result<ParsedAddress, AddressError>> {
    let format = match (s.len(), s.as_bytes().first()) {
        (95, Some(b'4' | b'8')) => AddressFormat::Monero,
        (106, Some(b'4')) => AddressFormat::MoneroIntegrated,
        _ => return None,
    };
    Some(check(s, format))
}

fn check(s: &str, format: AddressFormat) -> Result<ParsedAddress, AddressError> {
    if let Some((pos, ch)) = s
        .char_indices()
        .find(|(_, c)| !c.is_ascii() || !ALPHABET.contains(&(*c as u8)))
    {
        return Err(AddressError::InvalidCharacter {
            input: shown(s),
            ch,
            pos,
            expected: "base58 characters (no 0, O, I or l)",
        });
    }
    let bytes = decode(s.as_bytes()).ok_or_else(|| AddressError::Malformed {
        input: shown(s),
        format,
        reason: "a base58 block overflows".into(),
    })?;
    let (data, checksum) = bytes.split_at(bytes.len() - 4);
    if keccak256(data)[..4] != *checksum {
        return Err(AddressError::BadChecksum {
            input: shown(s),
            format,
        });
    }
    // Mainnet network bytes: 18 standard, 19 integrated, 42 subaddress.
    match (format, data[0]) {
        (AddressFormat::Monero, 18 | 42) | (AddressFormat::MoneroIntegrated, 19) => {
            Ok(text(s, format, ChainSet::of(Chain::Monero)))
        }
        (_, n) => Err(AddressError::Malformed {
            input: shown(s),
            format,
            reason: format!("network byte {n} is not a Monero mainnet address"),
        }),
    }
}

/// Monero's block base58; `None` if a block's value does not fit its size.
fn decode(s: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 8 / 11 + 8);
    for chunk in s.chunks(11) {
        let size = ENCODED_BLOCK.iter().position(|&n| n == chunk.len())?;
        let mut value: u128 = 0;
        for c in chunk {
            let digit = ALPHABET.iter().position(|a| a == c)? as u128;
            value = value * 58 + digit;
        }
        if size < 8 && value >> (8 * size) != 0 || value > u128::from(u64::MAX) {
            return None;
        }
        out.extend_from_slice(&value.to_be_bytes()[16 - size..]);
    }
    Some(out)
}

/// The 64-hex-digit form, normalized to lower case.
pub(super) fn parse_hex(s: &str) -> Result<ParsedAddress, AddressError> {
    if let Some((pos, ch)) = s.char_indices().find(|(_, c)| !c.is_ascii_hexdigit()) {
        return Err(AddressError::InvalidCharacter {
            input: shown(s),
            ch,
            pos,
            expected: "64 hex digits",
        });
    }
    let lower = s.to_ascii_lowercase();
    Ok(ParsedAddress {
        key: AddressKey::Text(lower.as_str().into()),
        format: AddressFormat::MoneroHex,
        chains: ChainSet::of(Chain::Monero),
        display: lower,
    })
}

#[cfg(test)]
mod tests {
    use super::super::parse as parse_any;
    use super::*;

    /// Monero's donation address (standard) and the OFAC-listed subaddress.
    const DONATION: &str = "44AFFq5kSiGBoZ4NMDwYtN18obc8AemS33DBLWs3H7otXft3XjrpDtQGv7SqSsaBYBb98uNbr2VBBEt7f2wfn3RVGQBEP3A";

    #[test]
    fn valid_addresses() {
        let p = parse_any(DONATION, None).expect("donation");
        assert_eq!(p.format, AddressFormat::Monero);
        assert_eq!(p.chains, ChainSet::of(Chain::Monero));
        let sub = "884Bz8UH63aYsjVdkfWfScRYWZGGNbjFL7pztqvWNSrtYT4reFSwyvkCj9KEGUtheHhhMUj87ciTBFyzoesrMJ4L1FvSoxL";
        assert_eq!(
            parse_any(sub, Some(Chain::Monero)).expect("sub").format,
            AddressFormat::Monero
        );
    }

    #[test]
    fn invalid_addresses() {
        let mut bad = DONATION.to_owned();
        bad.replace_range(10..11, "T");
        assert!(matches!(
            parse_any(&bad, None),
            Err(AddressError::BadChecksum {
                format: AddressFormat::Monero,
                ..
            })
        ));
        assert!(matches!(
            parse_any(&DONATION.replace('o', "0"), None),
            Err(AddressError::InvalidCharacter { ch: '0', .. })
        ));
    }

    #[test]
    fn hex_form_needs_the_chain() {
        let hex = "5be5543ff73456ab9f2d207887e2af87322c651ea1a873c5b25b7ffae456c320";
        assert_eq!(
            parse_any(hex, Some(Chain::Monero)).expect("hex").format,
            AddressFormat::MoneroHex
        );
        assert!(parse_any(hex, None).is_err());
        assert!(parse_any(&hex.replace('5', "g"), Some(Chain::Monero)).is_err());
    }
}
