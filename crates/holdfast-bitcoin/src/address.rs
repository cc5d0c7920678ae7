//! Reading an address a person typed: which networks it belongs to, the script it pays, and
//! its canonical form (the one the block model renders and the store indexes: bech32 in lower
//! case, base58check as given).
//!
//! Base58check addresses are checked for their checksum, length and version byte (P2PKH or
//! P2SH of the network); segwit addresses with BIP173/BIP350's decoder (checksum variant per
//! witness version, program length) and the network's human-readable part. Testnets and
//! regtests share version bytes, so a `m…` address belongs to several networks.

use bitcoin::script::{Builder, PushBytesBuf};
use bitcoin::{ScriptBuf, WitnessProgram, WitnessVersion};

use crate::Output;
use crate::network::Network;

/// An address that cannot be read, or not on the network asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("address {value:?}: {reason}")]
    Malformed { value: String, reason: String },
    #[error("address {value:?} is not a {network} address (expected {expected}){found}", found = found_on(.found))]
    WrongNetwork {
        value: String,
        network: Network,
        expected: &'static str,
        found: Vec<Network>,
    },
}

fn found_on(found: &[Network]) -> String {
    if found.is_empty() {
        return String::new();
    }
    let names: Vec<&str> = found.iter().map(|n| n.name()).collect();
    format!("; it is an address of {}", names.join(", "))
}

/// How `network` writes its addresses, for messages.
pub const fn shapes(network: Network) -> &'static str {
    match network {
        Network::Bitcoin => "1…, 3… or bc1…",
        Network::BitcoinTestnet | Network::BitcoinTestnet4 | Network::BitcoinSignet => {
            "m…/n…, 2… or tb1…"
        }
        Network::BitcoinRegtest => "m…/n…, 2… or bcrt1…",
        Network::Litecoin => "L…, M… or ltc1…",
        Network::LitecoinTestnet => "m…/n…, Q… or tltc1…",
        Network::LitecoinRegtest => "m…/n…, Q… or rltc1…",
    }
}

/// The script `text` pays on `network`, and the address in canonical form.
pub fn parse(text: &str, network: Network) -> Result<(ScriptBuf, String), AddressError> {
    let script = decode(text)?
        .into_iter()
        .find(|(n, _)| *n == network)
        .map(|(_, s)| s);
    match script {
        Some(script) => {
            let canonical = Output::new(0, script.clone(), network)
                .address
                .ok_or_else(|| AddressError::Malformed {
                    value: text.to_owned(),
                    reason: "its script has no address form".into(),
                })?;
            Ok((script, canonical))
        }
        None => Err(AddressError::WrongNetwork {
            value: text.to_owned(),
            network,
            expected: shapes(network),
            found: networks(text).unwrap_or_default(),
        }),
    }
}

/// Every network on which `text` is a valid address (at least one), or why it is none's.
pub fn networks(text: &str) -> Result<Vec<Network>, AddressError> {
    Ok(decode(text)?.into_iter().map(|(n, _)| n).collect())
}

/// `text` decoded: each network it is an address of, with the script it pays there.
fn decode(text: &str) -> Result<Vec<(Network, ScriptBuf)>, AddressError> {
    let malformed = |reason: String| AddressError::Malformed {
        value: text.to_owned(),
        reason,
    };
    if text.is_empty() || text.len() > 90 || !text.is_ascii() {
        return Err(malformed(
            "not an address (1 to 90 ASCII characters expected)".into(),
        ));
    }
    if let Some((hrp, _)) = text.rsplit_once('1')
        && Network::ALL
            .iter()
            .any(|n| hrp.eq_ignore_ascii_case(n.address_params().hrp))
    {
        let (hrp, version, program) = bitcoin::bech32::segwit::decode(text)
            .map_err(|e| malformed(format!("not a valid segwit address: {e}")))?;
        let version = WitnessVersion::try_from(version.to_u8())
            .map_err(|e| malformed(format!("witness version: {e}")))?;
        let program = WitnessProgram::new(version, &program)
            .map_err(|e| malformed(format!("witness program: {e}")))?;
        let script = ScriptBuf::new_witness_program(&program);
        return Ok(Network::ALL
            .iter()
            .filter(|n| hrp.as_str().eq_ignore_ascii_case(n.address_params().hrp))
            .map(|n| (*n, script.clone()))
            .collect());
    }
    let payload = bitcoin::base58::decode_check(text)
        .map_err(|e| malformed(format!("neither segwit nor valid base58check: {e}")))?;
    if payload.len() != 21 {
        return Err(malformed(format!(
            "base58check payload of {} bytes, 21 expected (a version byte and a 20-byte hash)",
            payload.len()
        )));
    }
    let (version, hash) = (payload[0], &payload[1..]);
    let push =
        PushBytesBuf::try_from(hash.to_vec()).map_err(|e| malformed(format!("hash: {e}")))?;
    let p2pkh = Builder::new()
        .push_opcode(bitcoin::opcodes::all::OP_DUP)
        .push_opcode(bitcoin::opcodes::all::OP_HASH160)
        .push_slice(&push)
        .push_opcode(bitcoin::opcodes::all::OP_EQUALVERIFY)
        .push_opcode(bitcoin::opcodes::all::OP_CHECKSIG)
        .into_script();
    let p2sh = Builder::new()
        .push_opcode(bitcoin::opcodes::all::OP_HASH160)
        .push_slice(&push)
        .push_opcode(bitcoin::opcodes::all::OP_EQUAL)
        .into_script();
    let found: Vec<(Network, ScriptBuf)> = Network::ALL
        .iter()
        .filter_map(|n| {
            let p = n.address_params();
            if version == p.p2pkh {
                Some((*n, p2pkh.clone()))
            } else if version == p.p2sh {
                Some((*n, p2sh.clone()))
            } else {
                None
            }
        })
        .collect();
    if found.is_empty() {
        return Err(malformed(format!(
            "base58check version byte 0x{version:02x} is no known network's P2PKH or P2SH"
        )));
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ScriptKind;

    #[test]
    fn reads_each_kind_and_renders_it_back() {
        for (text, network, kind) in [
            (
                "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa",
                Network::Bitcoin,
                ScriptKind::P2pkh,
            ),
            (
                "3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy",
                Network::Bitcoin,
                ScriptKind::P2sh,
            ),
            (
                "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
                Network::Bitcoin,
                ScriptKind::P2wpkh,
            ),
            (
                "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0",
                Network::Bitcoin,
                ScriptKind::P2tr,
            ),
        ] {
            let (script, canonical) = parse(text, network).expect(text);
            assert_eq!(ScriptKind::of(&script), kind, "{text}");
            assert_eq!(canonical, text);
        }
        // Upper-case bech32 is the same address, in canonical (lower) case.
        let (_, c) = parse(
            "BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4",
            Network::Bitcoin,
        )
        .expect("upper");
        assert_eq!(c, "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4");
    }

    #[test]
    fn litecoin_addresses_round_trip_through_the_renderer() {
        let script = ScriptBuf::from_hex("0014751e76e8199196d454941c45d1b3a323f1433bd6").unwrap();
        for network in [Network::Litecoin, Network::LitecoinRegtest] {
            let text = Output::new(0, script.clone(), network).address.unwrap();
            assert_eq!(parse(&text, network).expect(&text), (script.clone(), text));
        }
        let p2sh = ScriptBuf::from_hex("a914b472a266d0bd89c13706a4132ccfb16f7c3b9fcb87").unwrap();
        let text = Output::new(0, p2sh.clone(), Network::LitecoinRegtest)
            .address
            .unwrap();
        assert!(text.starts_with('Q'), "{text}");
        assert_eq!(
            networks(&text).expect("Q"),
            vec![Network::LitecoinTestnet, Network::LitecoinRegtest]
        );
    }

    #[test]
    fn errors_name_the_value_and_the_network_expected() {
        let e = parse(
            "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
            Network::LitecoinRegtest,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("\"bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4\""),
            "{e}"
        );
        assert!(
            e.contains("not a litecoin-regtest address (expected m…/n…, Q… or rltc1…)"),
            "{e}"
        );
        assert!(e.contains("it is an address of bitcoin"), "{e}");
        // A flipped checksum character, a truncated one, garbage, an EVM address.
        for bad in [
            "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5",
            "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNb",
            "1A1zP1eP5QGefi2DMPTfTL5SLmv7Divf",
            "not an address",
            "0x00000000219ab540356cbb839cbe05303d7705fa",
            "",
        ] {
            let e = parse(bad, Network::Bitcoin).unwrap_err();
            assert!(
                matches!(&e, AddressError::WrongNetwork { found, .. } if found.is_empty())
                    || matches!(e, AddressError::Malformed { .. }),
                "{bad}: {e}"
            );
            assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
        }
        assert!(matches!(
            parse(
                "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5",
                Network::Bitcoin
            ),
            Err(AddressError::Malformed { .. })
        ));
    }
}
