//! What an output's script is ([`ScriptKind`], Bitcoin Core's `Solver` rules) and the
//! address it pays, per [`Network`].
//!
//! Bitcoin networks' addresses are rendered by rust-bitcoin (`Address::from_script`); Litecoin's
//! by the same base58check and bech32/bech32m encoders (rust-bitcoin's re-exports) with
//! Litecoin's version bytes and prefixes. A test keeps the two renderings equal on every
//! output of a real mainnet block, so the Litecoin path is the Bitcoin path with other
//! parameters.

use bitcoin::hashes::{Hash, hash160};
use bitcoin::opcodes::all::{
    OP_CHECKMULTISIG, OP_CHECKSIG, OP_PUSHNUM_1, OP_PUSHNUM_16, OP_RETURN,
};
use bitcoin::script::Instruction;
use bitcoin::{Script, WitnessVersion};

use crate::network::{AddressParams, Network};

/// The kind of an output script. Closed: a script none of the standard templates match is
/// [`ScriptKind::NonStandard`] and kept as its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ScriptKind {
    /// `<pubkey> OP_CHECKSIG`. Its address is the key's pay-to-pubkey-hash address, as Bitcoin
    /// Core up to 0.19 and bitcoin-etl give it (0.20 and later show none), so a key's coins
    /// show under one address.
    P2pk,
    /// `OP_DUP OP_HASH160 <20> OP_EQUALVERIFY OP_CHECKSIG`.
    P2pkh,
    /// `OP_HASH160 <20> OP_EQUAL`.
    P2sh,
    /// Witness v0, 20-byte program.
    P2wpkh,
    /// Witness v0, 32-byte program.
    P2wsh,
    /// Witness v1, 32-byte program (taproot).
    P2tr,
    /// Any other witness program of version 1 to 16 (future soft forks, pay-to-anchor);
    /// addressable (bech32m).
    WitnessUnknown { version: u8 },
    /// Bare `m`-of-`n` multisig: no single address.
    Multisig { required: u8, keys: u8 },
    /// `OP_RETURN` followed by pushes only: provably unspendable, carries `data` (the pushes'
    /// bytes, concatenated; a THORChain outbound's `OUT:<hash>` memo is one push).
    OpReturn { data: Vec<u8> },
    /// Anything else (including `OP_RETURN` followed by a non-push, and witness v0 programs of
    /// a length other than 20 or 32).
    NonStandard,
}

impl ScriptKind {
    /// The type name Bitcoin Core's RPC gives (`scriptPubKey.type`, before 22.0 for pay-to-
    /// pubkey and unknown witness versions), which bitcoin-etl exports as it is.
    pub const fn core_name(&self) -> &'static str {
        match self {
            ScriptKind::P2pk => "pubkey",
            ScriptKind::P2pkh => "pubkeyhash",
            ScriptKind::P2sh => "scripthash",
            ScriptKind::P2wpkh => "witness_v0_keyhash",
            ScriptKind::P2wsh => "witness_v0_scripthash",
            ScriptKind::P2tr => "witness_v1_taproot",
            ScriptKind::WitnessUnknown { .. } => "witness_unknown",
            ScriptKind::Multisig { .. } => "multisig",
            ScriptKind::OpReturn { .. } => "nulldata",
            ScriptKind::NonStandard => "nonstandard",
        }
    }

    /// Classifies `script` by Bitcoin Core's templates (`script/standard.cpp`, `Solver`).
    pub fn of(script: &Script) -> ScriptKind {
        let b = script.as_bytes();
        if script.is_p2pkh() {
            return ScriptKind::P2pkh;
        }
        if script.is_p2sh() {
            return ScriptKind::P2sh;
        }
        if let Some((version, program)) = witness_program(b) {
            return match (version, program.len()) {
                (0, 20) => ScriptKind::P2wpkh,
                (0, 32) => ScriptKind::P2wsh,
                (0, _) => ScriptKind::NonStandard,
                (1, 32) => ScriptKind::P2tr,
                (v, _) => ScriptKind::WitnessUnknown { version: v },
            };
        }
        if p2pk_key(b).is_some() {
            return ScriptKind::P2pk;
        }
        if b.first() == Some(&OP_RETURN.to_u8()) {
            return match push_only_data(&b[1..]) {
                Some(data) => ScriptKind::OpReturn { data },
                None => ScriptKind::NonStandard,
            };
        }
        if let Some((required, keys)) = multisig(script) {
            return ScriptKind::Multisig { required, keys };
        }
        ScriptKind::NonStandard
    }

    /// The address `script` (of this kind) pays on `network`, if it has one.
    pub fn address(&self, script: &Script, network: Network) -> Option<String> {
        match network.rust_bitcoin() {
            Some(rb) => self.address_by_rust_bitcoin(script, rb),
            None => self.address_with(script, network.address_params()),
        }
    }

    fn address_by_rust_bitcoin(
        &self,
        script: &Script,
        network: bitcoin::Network,
    ) -> Option<String> {
        match self {
            ScriptKind::P2pk => {
                let key = p2pk_key(script.as_bytes())?;
                let hash = bitcoin::PubkeyHash::from_raw_hash(hash160::Hash::hash(key));
                Some(bitcoin::Address::p2pkh(hash, network).to_string())
            }
            ScriptKind::P2pkh
            | ScriptKind::P2sh
            | ScriptKind::P2wpkh
            | ScriptKind::P2wsh
            | ScriptKind::P2tr
            | ScriptKind::WitnessUnknown { .. } => bitcoin::Address::from_script(script, network)
                .ok()
                .map(|a| a.to_string()),
            ScriptKind::Multisig { .. } | ScriptKind::OpReturn { .. } | ScriptKind::NonStandard => {
                None
            }
        }
    }

    /// The address with `params`' version bytes and prefix (the encoders rust-bitcoin uses).
    pub fn address_with(&self, script: &Script, params: AddressParams) -> Option<String> {
        let b = script.as_bytes();
        match self {
            ScriptKind::P2pk => {
                let key = p2pk_key(b)?;
                Some(base58(
                    params.p2pkh,
                    hash160::Hash::hash(key).as_byte_array(),
                ))
            }
            ScriptKind::P2pkh => Some(base58(params.p2pkh, &b[3..23])),
            ScriptKind::P2sh => Some(base58(params.p2sh, &b[2..22])),
            ScriptKind::P2wpkh
            | ScriptKind::P2wsh
            | ScriptKind::P2tr
            | ScriptKind::WitnessUnknown { .. } => {
                let (version, program) = witness_program(b)?;
                segwit(params.hrp, version, program)
            }
            ScriptKind::Multisig { .. } | ScriptKind::OpReturn { .. } | ScriptKind::NonStandard => {
                None
            }
        }
    }
}

fn base58(version: u8, hash: &[u8]) -> String {
    let mut payload = Vec::with_capacity(1 + hash.len());
    payload.push(version);
    payload.extend_from_slice(hash);
    bitcoin::base58::encode_check(&payload)
}

fn segwit(hrp: &str, version: u8, program: &[u8]) -> Option<String> {
    let hrp = bitcoin::bech32::Hrp::parse(hrp).ok()?;
    let version = bitcoin::bech32::Fe32::try_from(version).ok()?;
    bitcoin::bech32::segwit::encode(hrp, version, program).ok()
}

/// A witness program (Core's `IsWitnessProgram`): 4 to 42 bytes, a version opcode (`OP_0`,
/// `OP_1`..`OP_16`), then one direct push of the rest (2 to 40 bytes).
fn witness_program(b: &[u8]) -> Option<(u8, &[u8])> {
    if !(4..=42).contains(&b.len()) || usize::from(b[1]) + 2 != b.len() {
        return None;
    }
    let version = WitnessVersion::try_from(bitcoin::opcodes::Opcode::from(b[0])).ok()?;
    Some((version.to_num(), &b[2..]))
}

/// The key of `<key> OP_CHECKSIG` when the key has a valid size for its first byte (Core's
/// `CPubKey::ValidSize`: 33 bytes after 0x02/0x03, 65 after 0x04/0x06/0x07).
fn p2pk_key(b: &[u8]) -> Option<&[u8]> {
    let (&last, rest) = b.split_last()?;
    let (&len, key) = rest.split_first()?;
    if last != OP_CHECKSIG.to_u8() || usize::from(len) != key.len() {
        return None;
    }
    valid_key_size(key).then_some(key)
}

fn valid_key_size(key: &[u8]) -> bool {
    match key.first() {
        Some(2 | 3) => key.len() == 33,
        Some(4 | 6 | 7) => key.len() == 65,
        _ => false,
    }
}

/// The pushes' bytes if `b` is push-only (Core's `IsPushOnly`: every opcode up to `OP_16`, each
/// push complete).
fn push_only_data(b: &[u8]) -> Option<Vec<u8>> {
    let mut data = Vec::new();
    for ins in Script::from_bytes(b).instructions() {
        match ins.ok()? {
            Instruction::PushBytes(p) => data.extend_from_slice(p.as_bytes()),
            Instruction::Op(op) if op.to_u8() <= OP_PUSHNUM_16.to_u8() => {}
            Instruction::Op(_) => return None,
        }
    }
    Some(data)
}

/// Core's `MatchMultisig`: `OP_m <key>... OP_n OP_CHECKMULTISIG`, `1 <= m <= n`, `n` keys of
/// valid sizes.
fn multisig(script: &Script) -> Option<(u8, u8)> {
    let ops: Vec<Instruction<'_>> = script.instructions().collect::<Result<_, _>>().ok()?;
    let [
        Instruction::Op(first),
        keys @ ..,
        Instruction::Op(count),
        Instruction::Op(check),
    ] = ops.as_slice()
    else {
        return None;
    };
    let small = |op: &bitcoin::opcodes::Opcode| {
        let v = op.to_u8();
        (OP_PUSHNUM_1.to_u8()..=OP_PUSHNUM_16.to_u8())
            .contains(&v)
            .then(|| v - OP_PUSHNUM_1.to_u8() + 1)
    };
    let required = small(first)?;
    let n = small(count)?;
    if *check != OP_CHECKMULTISIG || usize::from(n) != keys.len() || required > n {
        return None;
    }
    keys.iter()
        .all(|k| matches!(k, Instruction::PushBytes(p) if valid_key_size(p.as_bytes())))
        .then_some((required, n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::ScriptBuf;

    fn script(hex: &str) -> ScriptBuf {
        ScriptBuf::from_hex(hex).expect("hex")
    }

    #[test]
    fn templates_are_classified_as_core_does() {
        let cases = [
            (
                "76a914b5cd7aaed869cd5ccb45868e8666e7e934a2373688ac",
                "pubkeyhash",
            ),
            (
                "a914e9c3dd0c07aac76179ebc76a6c78d4d67c6c160a87",
                "scripthash",
            ),
            (
                "0014e0fe44f94967575906a93e2c2de57b35d5197525",
                "witness_v0_keyhash",
            ),
            (
                "0020e0fe44f94967575906a93e2c2de57b35d5197525e0fe44f94967575906a93e2c",
                "witness_v0_scripthash",
            ),
            (
                "5120e0fe44f94967575906a93e2c2de57b35d5197525e0fe44f94967575906a93e2c",
                "witness_v1_taproot",
            ),
            ("51024e73", "witness_unknown"),
            (
                "0015e0fe44f94967575906a93e2c2de57b35d519752501",
                "nonstandard",
            ),
            (
                "6a24aa21a9ede2f61c3f71d1defd3fa999dfa36953755c690689799962b48bebd836974e8cf9",
                "nulldata",
            ),
            ("6a", "nulldata"),
            ("6aac", "nonstandard"),
            ("6a4c", "nonstandard"),
            ("ac", "nonstandard"),
            ("", "nonstandard"),
            (
                "2102c1b5671c8975087cc796d6ea73d2407591528b5c669106f9b6ab6ef6e373a575ac",
                "pubkey",
            ),
            // 33 bytes after 0x04: not a valid key size.
            (
                "2104c1b5671c8975087cc796d6ea73d2407591528b5c669106f9b6ab6ef6e373a575ac",
                "nonstandard",
            ),
            (
                "512102c1b5671c8975087cc796d6ea73d2407591528b5c669106f9b6ab6ef6e373a5752103c1b5671c8975087cc796d6ea73d2407591528b5c669106f9b6ab6ef6e373a57552ae",
                "multisig",
            ),
            // m > n
            (
                "522102c1b5671c8975087cc796d6ea73d2407591528b5c669106f9b6ab6ef6e373a57551ae",
                "nonstandard",
            ),
        ];
        for (hex, name) in cases {
            assert_eq!(ScriptKind::of(&script(hex)).core_name(), name, "{hex}");
        }
    }

    #[test]
    fn op_return_data_is_the_pushes() {
        let memo = b"OUT:5a6f8f4e3c2b1a0998877665544332211";
        let s = bitcoin::script::Builder::new()
            .push_opcode(OP_RETURN)
            .push_slice(<&bitcoin::script::PushBytes>::try_from(&memo[..]).expect("push"))
            .into_script();
        assert_eq!(
            ScriptKind::of(&s),
            ScriptKind::OpReturn {
                data: memo.to_vec()
            }
        );
    }

    #[test]
    fn op_return_small_numbers_carry_no_bytes() {
        // OP_RETURN OP_1 <01020304>: push-only (nulldata), the data is the push's bytes.
        assert_eq!(
            ScriptKind::of(&script("6a510401020304")),
            ScriptKind::OpReturn {
                data: vec![1, 2, 3, 4]
            }
        );
    }

    #[test]
    fn litecoin_regtest_addresses_are_the_nodes() {
        // From litecoind 0.21.2.1 -regtest: `getblock <hash> 2`, `getnewaddress "" legacy`
        // and the scripts `getaddressinfo` gave for them.
        let n = Network::LitecoinRegtest;
        let s = script("0014e0fe44f94967575906a93e2c2de57b35d5197525");
        assert_eq!(
            ScriptKind::P2wpkh.address(&s, n).as_deref(),
            Some("rltc1qurlyf72fvat4jp4f8ckzmetmxh23jaf9u9c7ym")
        );
    }

    #[test]
    fn op_return_and_multisig_have_no_address() {
        let s = script("6a0401020304");
        assert_eq!(ScriptKind::of(&s).address(&s, Network::Bitcoin), None);
        assert_eq!(
            ScriptKind::of(&s).address(&s, Network::LitecoinRegtest),
            None
        );
    }
}
