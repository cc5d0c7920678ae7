//! Bitcoin Cash cashaddr (`bitcoincash:q...`/`p...`, prefix optional): a BCH-code checksum over
//! the prefix and a version byte + hash. The key is the equivalent legacy base58check string,
//! so a cashaddr and its legacy spelling find the same labels.

use holdfast_primitives::Chain;

use super::{AddressError, AddressFormat, AddressKey, ChainSet, ParsedAddress, shown};

const CHARSET: &[u8; 32] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";
const PREFIX: &str = "bitcoincash";

/// `None` when `s` is not cashaddr-shaped (no prefix, and not 42 characters starting q/p).
pub(super) fn parse(s: &str) -> Option<Result<ParsedAddress, AddressError>> {
    let lower = s.to_ascii_lowercase();
    let body = match lower.split_once(':') {
        Some((PREFIX, body)) => body,
        Some(_) => return None,
        None if lower.len() == 42
            && (lower.starts_with('q') || lower.starts_with('p'))
            && lower.bytes().all(|b| CHARSET.contains(&b)) =>
        {
            &lower
        }
        None => return None,
    };
    Some(decode(s, body))
}

fn decode(s: &str, body: &str) -> Result<ParsedAddress, AddressError> {
    if s.bytes().any(|b| b.is_ascii_uppercase()) && s.bytes().any(|b| b.is_ascii_lowercase()) {
        let (pos, ch) = s
            .char_indices()
            .find(|(_, c)| c.is_ascii_uppercase())
            .unwrap_or((0, ' '));
        return Err(AddressError::InvalidCharacter {
            input: shown(s),
            ch,
            pos,
            expected: "cashaddr written in one case",
        });
    }
    let offset = s.len() - body.len();
    let mut values = Vec::with_capacity(body.len());
    for (i, b) in body.bytes().enumerate() {
        let v =
            CHARSET
                .iter()
                .position(|c| *c == b)
                .ok_or_else(|| AddressError::InvalidCharacter {
                    input: shown(s),
                    ch: s[offset + i..].chars().next().unwrap_or('?'),
                    pos: offset + i,
                    expected: "cashaddr characters (no 1, b, i or o)",
                })?;
        values.push(v as u8);
    }
    if body.len() != 42 {
        return Err(AddressError::WrongLength {
            input: shown(s),
            len: body.len(),
            expected: "42 characters after the bitcoincash: prefix",
        });
    }
    if polymod(
        PREFIX
            .bytes()
            .map(|b| b & 0x1f)
            .chain([0])
            .chain(values.iter().copied()),
    ) != 0
    {
        return Err(AddressError::BadChecksum {
            input: shown(s),
            format: AddressFormat::CashAddr,
        });
    }
    let payload =
        to_bytes(&values[..values.len() - 8]).ok_or_else(|| malformed(s, "non-zero padding"))?;
    let (version, hash) = payload
        .split_first()
        .ok_or_else(|| malformed(s, "empty payload"))?;
    if version & 0x07 != 0 || hash.len() != 20 {
        return Err(malformed(s, "only 160-bit hashes are supported"));
    }
    let legacy_version = match version >> 3 {
        0 => 0x00,
        1 => 0x05,
        t => return Err(malformed(s, &format!("unknown address type {t}"))),
    };
    let mut legacy = Vec::with_capacity(21);
    legacy.push(legacy_version);
    legacy.extend_from_slice(hash);
    let key = bs58::encode(legacy).with_check().into_string();
    Ok(ParsedAddress {
        key: AddressKey::Text(key.into()),
        format: AddressFormat::CashAddr,
        chains: ChainSet::of(Chain::BitcoinCash),
        display: format!("{PREFIX}:{body}"),
    })
}

fn malformed(s: &str, reason: &str) -> AddressError {
    AddressError::Malformed {
        input: shown(s),
        format: AddressFormat::CashAddr,
        reason: reason.to_owned(),
    }
}

/// The cashaddr checksum polynomial; 0 for a valid string.
fn polymod(values: impl Iterator<Item = u8>) -> u64 {
    const GENERATORS: [u64; 5] = [
        0x98f2bc8e61,
        0x79b76d99e2,
        0xf33e5fb3c4,
        0xae2eabe2a8,
        0x1e4f43e470,
    ];
    let mut c: u64 = 1;
    for d in values {
        let c0 = (c >> 35) as u8;
        c = ((c & 0x07_ffff_ffff) << 5) ^ u64::from(d);
        for (bit, g) in GENERATORS.iter().enumerate() {
            if c0 & (1 << bit) != 0 {
                c ^= g;
            }
        }
    }
    c ^ 1
}

/// 5-bit groups to bytes; padding must be under 5 bits and zero.
fn to_bytes(values: &[u8]) -> Option<Vec<u8>> {
    let (mut acc, mut bits, mut out) = (0u32, 0u32, Vec::with_capacity(values.len() * 5 / 8));
    for v in values {
        acc = (acc << 5) | u32::from(*v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    (bits < 5 && acc == 0).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::super::parse as parse_any;
    use super::*;

    /// The cashaddr specification's examples, with their legacy equivalents.
    #[test]
    fn spec_vectors_map_to_legacy() {
        for (cash, legacy) in [
            (
                "bitcoincash:qpm2qsznhks23z7629mms6s4cwef74vcwvy22gdx6a",
                "1BpEi6DfDAUFd7GtittLSdBeYJvcoaVggu",
            ),
            (
                "bitcoincash:qr95sy3j9xwd2ap32xkykttr4cvcu7as4y0qverfuy",
                "1KXrWXciRDZUpQwQmuM1DbwsKDLYAYsVLR",
            ),
            (
                "bitcoincash:ppm2qsznhks23z7629mms6s4cwef74vcwvn0h829pq",
                "3CWFddi6m4ndiGyKqzYvsFYagqDLPVMTzC",
            ),
            (
                "BITCOINCASH:PPM2QSZNHKS23Z7629MMS6S4CWEF74VCWVN0H829PQ",
                "3CWFddi6m4ndiGyKqzYvsFYagqDLPVMTzC",
            ),
            (
                "qpm2qsznhks23z7629mms6s4cwef74vcwvy22gdx6a",
                "1BpEi6DfDAUFd7GtittLSdBeYJvcoaVggu",
            ),
        ] {
            let p = parse_any(cash, None).unwrap_or_else(|e| panic!("{cash}: {e}"));
            assert_eq!(p.format, AddressFormat::CashAddr);
            assert_eq!(p.key, AddressKey::Text(legacy.into()), "{cash}");
            assert!(
                p.display.starts_with("bitcoincash:q") || p.display.starts_with("bitcoincash:p")
            );
            let l = parse_any(legacy, Some(Chain::BitcoinCash)).expect("legacy");
            assert_eq!(l.key, p.key);
        }
    }

    #[test]
    fn errors() {
        let e = parse_any(
            "bitcoincash:qpm2qsznhks23z7629mms6s4cwef74vcwvy22gdx6b",
            None,
        )
        .expect_err("b");
        assert!(
            matches!(e, AddressError::InvalidCharacter { ch: 'b', .. }),
            "{e:?}"
        );
        let e = parse_any(
            "bitcoincash:qpm2qsznhks23z7629mms6s4cwef74vcwvy22gdx6q",
            None,
        )
        .expect_err("checksum");
        assert!(
            matches!(
                e,
                AddressError::BadChecksum {
                    format: AddressFormat::CashAddr,
                    ..
                }
            ),
            "{e:?}"
        );
        let e = parse_any("bitcoincash:qpm2qsznhks23z7629mms6s4cwef74vcwvy22gdx", None)
            .expect_err("short");
        assert!(matches!(e, AddressError::WrongLength { .. }), "{e:?}");
        let e = parse_any(
            "bitcoincash:Qpm2qsznhks23z7629mms6s4cwef74vcwvy22gdx6a",
            None,
        )
        .expect_err("mixed");
        assert!(matches!(e, AddressError::InvalidCharacter { .. }), "{e:?}");
    }
}
