//! Base58 formats: base58check addresses of Bitcoin and its forks, Zcash transparent, Tron,
//! Ripple (its own alphabet), and Solana (plain base58 of a 32-byte key, no checksum).

use holdfast_primitives::Chain;

use super::{AddressError, AddressFormat, ChainSet, ParsedAddress, shown, text};

const BTC_ALPHABET: &str = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/// One-byte version prefixes of 20-byte hashes (21-byte payloads) and what they mean.
const VERSIONS: &[(u8, AddressFormat, ChainSet)] = &[
    (
        0x00,
        AddressFormat::P2pkh,
        ChainSet::from_slice(&[Chain::Bitcoin, Chain::BitcoinCash, Chain::BitcoinSv]),
    ),
    (
        0x05,
        AddressFormat::P2sh,
        ChainSet::from_slice(&[
            Chain::Bitcoin,
            Chain::BitcoinCash,
            Chain::BitcoinSv,
            Chain::Litecoin,
        ]),
    ),
    (0x30, AddressFormat::P2pkh, ChainSet::of(Chain::Litecoin)),
    (0x32, AddressFormat::P2sh, ChainSet::of(Chain::Litecoin)),
    (0x26, AddressFormat::P2pkh, ChainSet::of(Chain::BitcoinGold)),
    (0x17, AddressFormat::P2sh, ChainSet::of(Chain::BitcoinGold)),
    (
        0x1e,
        AddressFormat::P2pkh,
        ChainSet::from_slice(&[Chain::Dogecoin, Chain::Verge]),
    ),
    (0x16, AddressFormat::P2sh, ChainSet::of(Chain::Dogecoin)),
    (0x21, AddressFormat::P2sh, ChainSet::of(Chain::Verge)),
    (0x4c, AddressFormat::P2pkh, ChainSet::of(Chain::Dash)),
    (0x10, AddressFormat::P2sh, ChainSet::of(Chain::Dash)),
    (0x41, AddressFormat::Tron, ChainSet::of(Chain::Tron)),
];

/// Two-byte version prefixes (22-byte payloads): Zcash transparent addresses.
const ZCASH_VERSIONS: &[([u8; 2], AddressFormat)] = &[
    ([0x1c, 0xb8], AddressFormat::P2pkh),
    ([0x1c, 0xbd], AddressFormat::P2sh),
];

/// `None` when `s` is not base58 of a plausible address length at all.
pub(super) fn parse(s: &str) -> Option<Result<ParsedAddress, AddressError>> {
    if !(25..=44).contains(&s.len()) || !s.is_ascii() {
        return None;
    }
    if s.starts_with('r')
        && let Ok(payload) = bs58::decode(s)
            .with_alphabet(bs58::Alphabet::RIPPLE)
            .with_check(None)
            .into_vec()
        && payload.len() == 21
        && payload[0] == 0
    {
        return Some(Ok(text(
            s,
            AddressFormat::Ripple,
            ChainSet::of(Chain::Ripple),
        )));
    }
    if let Some((pos, ch)) = s.char_indices().find(|(_, c)| !BTC_ALPHABET.contains(*c)) {
        // Only claim the input if it is otherwise base58-like (letters and digits).
        return s.chars().all(|c| c.is_ascii_alphanumeric()).then(|| {
            Err(AddressError::InvalidCharacter {
                input: shown(s),
                ch,
                pos,
                expected: "base58 characters (no 0, O, I or l; base58 addresses are case-sensitive)",
            })
        });
    }
    let raw_len = bs58::decode(s).into_vec().map_or(0, |v| v.len());
    Some(match bs58::decode(s).with_check(None).into_vec() {
        Ok(payload) => classify(s, &payload)
            .or_else(|| solana(s, raw_len))
            .ok_or_else(|| AddressError::Unrecognised { input: shown(s) }),
        Err(_) if raw_len == 32 => Ok(text(s, AddressFormat::Solana, ChainSet::of(Chain::Solana))),
        Err(_) => Err(AddressError::BadChecksum {
            input: shown(s),
            format: guess(s),
        }),
    })
}

fn classify(s: &str, payload: &[u8]) -> Option<ParsedAddress> {
    match payload.len() {
        21 => VERSIONS
            .iter()
            .find(|(v, ..)| *v == payload[0])
            .map(|(_, format, chains)| text(s, *format, *chains)),
        22 => ZCASH_VERSIONS
            .iter()
            .find(|(v, _)| payload[..2] == v[..])
            .map(|(_, format)| text(s, *format, ChainSet::of(Chain::Zcash))),
        _ => None,
    }
}

fn solana(s: &str, raw_len: usize) -> Option<ParsedAddress> {
    (raw_len == 32).then(|| text(s, AddressFormat::Solana, ChainSet::of(Chain::Solana)))
}

/// The format a base58 string with a failed checksum most likely meant, for the message.
fn guess(s: &str) -> AddressFormat {
    match s.as_bytes()[0] {
        b'T' => AddressFormat::Tron,
        b'r' => AddressFormat::Ripple,
        b'3' | b'M' | b'7' | b'A' | b'9' => AddressFormat::P2sh,
        _ => AddressFormat::P2pkh,
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse as parse_any;
    use super::*;

    fn formats(s: &str) -> (AddressFormat, ChainSet) {
        let p = parse_any(s, None).unwrap_or_else(|e| panic!("{s}: {e}"));
        (p.format, p.chains)
    }

    #[test]
    fn real_addresses_by_version() {
        // Bitcoin genesis coinbase address; the BIP-16 era P2SH example; OFAC-listed others.
        assert_eq!(
            formats("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa").0,
            AddressFormat::P2pkh
        );
        assert_eq!(
            formats("3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy").0,
            AddressFormat::P2sh
        );
        assert_eq!(
            formats("TBHTJqAy4DhHhmT3dNceJYNRz4SdLofLre"),
            (AddressFormat::Tron, ChainSet::of(Chain::Tron))
        );
        assert_eq!(
            formats("rnXyVQzgxZe7TR1EPzTkGj2jxH4LMJYh66").1,
            ChainSet::of(Chain::Ripple)
        );
        // Ripple genesis account.
        assert_eq!(
            formats("rHb9CJAWyB4rj91VRWn96DkukG4bwdtyTh").0,
            AddressFormat::Ripple
        );
        // Solana: the system program and the SPL token program.
        assert_eq!(
            formats("11111111111111111111111111111111").0,
            AddressFormat::Solana
        );
        assert_eq!(
            formats("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA").0,
            AddressFormat::Solana
        );
    }

    #[test]
    fn changed_case_or_character_fails() {
        let orig = "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa";
        let e = parse_any(&orig.replace('z', "Z"), None).expect_err("case");
        assert!(
            matches!(
                e,
                AddressError::BadChecksum {
                    format: AddressFormat::P2pkh,
                    ..
                }
            ),
            "{e:?}"
        );
        let e = parse_any("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfN0", None).expect_err("0");
        assert!(
            matches!(
                e,
                AddressError::InvalidCharacter {
                    ch: '0',
                    pos: 33,
                    ..
                }
            ),
            "{e:?}"
        );
        let e = parse_any("tbhtjqay4dhhhmt3dncejynrz4sdlofLre", None).expect_err("lower tron");
        assert!(
            matches!(e, AddressError::InvalidCharacter { ch: 'l', .. }),
            "{e:?}"
        );
    }
}
