//! Raw real blocks: rust-bitcoin's mainnet block, Bitcoin Core's benchmark block and
//! rust-bitcoinkernel's regtest chain, decoded into the model and checked against the
//! sources' own figures.

use std::collections::HashMap;

use holdfast_bitcoin::bitcoin::{self, OutPoint};
use holdfast_bitcoin::{Block, BlockError, Network, Output, ScriptKind};

use crate::read;

const MAINNET_BLOCK: &str = "000000000000000000000c835b2adcaedc20fdf6ee440009c249452c726dafae";

#[test]
fn rust_bitcoins_mainnet_block() {
    let bytes = read(&format!("rust-bitcoin/mainnet_block_{MAINNET_BLOCK}.raw"));
    let block = Block::from_raw(Network::Bitcoin, &bytes, None).expect("decodes");
    assert_eq!(block.hash.to_string(), MAINNET_BLOCK);
    assert_eq!(block.txs.len(), 2_500);
    assert!(block.txs[0].coinbase && block.txs.iter().skip(1).all(|t| !t.coinbase));
    // The txids are rust-bitcoin's (the merkle root check passed inside from_raw); every
    // address is rust-bitcoin's, and the Litecoin encoder given Bitcoin's parameters agrees
    // on every one: the Litecoin path is this path with other prefixes.
    let decoded: bitcoin::Block = bitcoin::consensus::deserialize(&bytes).expect("rust-bitcoin");
    let mut kinds: HashMap<&str, usize> = HashMap::new();
    for (tx, raw) in block.txs.iter().zip(&decoded.txdata) {
        assert_eq!(tx.txid, raw.compute_txid());
        assert_eq!(tx.outputs.len(), raw.output.len());
        for (out, raw) in tx.outputs.iter().zip(&raw.output) {
            assert_eq!(out.value, raw.value.to_sat());
            *kinds.entry(out.kind.core_name()).or_default() += 1;
            let by_rust_bitcoin =
                bitcoin::Address::from_script(&raw.script_pubkey, bitcoin::Network::Bitcoin)
                    .ok()
                    .map(|a| a.to_string());
            if out.kind != ScriptKind::P2pk {
                assert_eq!(out.address, by_rust_bitcoin, "{} {:?}", tx.txid, out.kind);
            }
            if let Some(a) = &out.address {
                holdfast_intel::address::parse(a, Some(holdfast_primitives::Chain::Bitcoin))
                    .unwrap_or_else(|e| panic!("screening cannot parse {a}: {e}"));
            }
            assert_eq!(
                out.kind
                    .address_with(&out.script, Network::Bitcoin.address_params()),
                out.address,
                "{}",
                tx.txid
            );
        }
    }
    for kind in [
        "pubkeyhash",
        "scripthash",
        "witness_v0_keyhash",
        "witness_v0_scripthash",
        "nulldata",
    ] {
        assert!(
            kinds.get(kind).copied().unwrap_or(0) > 0,
            "no {kind} in {kinds:?}"
        );
    }
}

#[test]
fn bitcoin_cores_bench_block_413567() {
    let bytes = read("bitcoin-core-bench/block413567.raw");
    let block = Block::from_raw(Network::Bitcoin, &bytes, Some(413_567)).expect("decodes");
    assert_eq!(
        block.hash.to_string(),
        "0000000000000000025aff8be8a55df8f89c77296db6198f272d6577325d4069"
    );
    assert_eq!(
        block.prev.to_string(),
        "00000000000000000542b54d29b12b523ff6c6474e0e86085bd3005ec6c5ce11"
    );
    let decoded: bitcoin::Block = bitcoin::consensus::deserialize(&bytes).expect("rust-bitcoin");
    assert_eq!(decoded.bip34_block_height().ok(), Some(413_567));
    assert_eq!(block.txs.len(), 1_557);
    // 4,887 inputs counting the coinbase's.
    let inputs: usize = block.txs.iter().map(|t| t.inputs.len()).sum();
    assert_eq!(inputs + 1, 4_887);
    let outputs: Vec<_> = block.txs.iter().flat_map(|t| &t.outputs).collect();
    assert_eq!(outputs.len(), 3_581);
    let count = |k: &str| outputs.iter().filter(|o| o.kind.core_name() == k).count();
    assert_eq!(
        (count("pubkeyhash"), count("scripthash"), count("nulldata")),
        (2_841, 737, 3)
    );
    assert!(
        outputs
            .iter()
            .all(|o| o.address.is_some() == (o.kind.core_name() != "nulldata"))
    );
    let mut multi: Vec<_> = block.txs.iter().filter(|t| t.inputs.len() > 1).collect();
    assert_eq!(multi.len(), 505);
    multi.sort_by_key(|t| std::cmp::Reverse(t.inputs.len()));
    let top: Vec<_> = multi[..3]
        .iter()
        .map(|t| (t.inputs.len(), t.txid.to_string()[..8].to_owned()))
        .collect();
    assert_eq!(
        top,
        [
            (442, "02704a25".into()),
            (357, "cb09d190".into()),
            (274, "7cdf7d48".into())
        ]
    );
    assert_eq!(block.coinbase_value(), 2_531_310_238);
    // Nothing to resolve the inputs from: no fees.
    assert_eq!(block.fees(), None);
    assert!(block.txs[1].fee().is_none());
}

/// rust-bitcoinkernel's 206 regtest blocks as one chain: links, the derived index, every input
/// resolved from earlier outputs, every fee non-negative and claimed by the coinbase.
#[test]
fn bitcoinkernels_regtest_chain() {
    let text = String::from_utf8(read("bitcoinkernel/block_data.txt")).expect("utf-8");
    let index = String::from_utf8(read("bitcoinkernel/index.csv")).expect("utf-8");
    let rows: Vec<Vec<&str>> = index
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    let mut utxos: HashMap<OutPoint, Output> = HashMap::new();
    let mut prev = Network::BitcoinRegtest.genesis_hex().to_owned();
    let mut spent_inputs = 0;
    let mut p2tr = Vec::new();
    for (i, (line, row)) in text.lines().zip(&rows).enumerate() {
        let height = i as u64 + 1;
        let bytes = hex::decode(line.trim()).expect("hex");
        let mut block =
            Block::from_raw(Network::BitcoinRegtest, &bytes, Some(height)).expect("decodes");
        assert_eq!(row[0], height.to_string());
        assert_eq!(block.hash.to_string(), row[1], "height {height}");
        assert_eq!(block.prev.to_string(), prev, "height {height}");
        assert_eq!(block.txs.len().to_string(), row[3]);
        let inputs: usize = block.txs.iter().map(|t| t.inputs.len()).sum::<usize>() + 1;
        let outputs: usize = block.txs.iter().map(|t| t.outputs.len()).sum();
        assert_eq!(
            (inputs.to_string(), outputs.to_string()),
            (row[4].to_owned(), row[5].to_owned())
        );
        let txids: Vec<String> = block.txs[1..].iter().map(|t| t.txid.to_string()).collect();
        assert_eq!(txids.join(" "), row[6], "height {height}");
        let unresolved = block
            .resolve_inputs(|op| utxos.remove(op))
            .expect("no overspend");
        assert_eq!(unresolved, 0, "height {height}");
        let fees = block.fees().expect("all resolved");
        assert!(
            block.coinbase_value() <= 50 * 100_000_000 + fees,
            "height {height}"
        );
        for tx in &block.txs {
            spent_inputs += tx.inputs.len();
            for (vout, out) in tx.outputs.iter().enumerate() {
                if out.kind == ScriptKind::P2tr {
                    p2tr.push((height, tx.txid.to_string(), out.address.clone()));
                }
                utxos.insert(
                    OutPoint {
                        txid: tx.txid,
                        vout: vout as u32,
                    },
                    out.clone(),
                );
            }
        }
        assert_eq!(
            row[7],
            block
                .txs
                .iter()
                .flat_map(|t| &t.outputs)
                .filter(|o| o.kind == ScriptKind::P2tr)
                .count()
                .to_string()
        );
        // Every coinbase pays P2WPKH plus the witness commitment (OP_RETURN).
        let cb = &block.txs[0];
        assert_eq!(cb.outputs[0].kind, ScriptKind::P2wpkh);
        assert!(
            cb.outputs[0]
                .address
                .as_deref()
                .is_some_and(|a| a.starts_with("bcrt1q"))
        );
        assert!(
            matches!(&cb.outputs[1].kind, ScriptKind::OpReturn { data } if data.starts_with(&[0xaa, 0x21, 0xa9, 0xed]))
        );
        prev = block.hash.to_string();
    }
    assert_eq!(
        prev,
        "3de082158b117acd088306c395d09771bb7cbf0b7355796c1b1e0bd748ef9bed"
    );
    assert_eq!(spent_inputs, 26);
    assert_eq!(p2tr.len(), 2);
    for (height, txid, address) in p2tr {
        assert_eq!(height, 206);
        assert!(txid.starts_with("4282b1727f0e"));
        assert!(address.is_some_and(|a| a.starts_with("bcrt1p")));
    }
}

/// Damage anywhere in a real block is an error naming the block (and, inside a transaction,
/// the transaction and field), never a panic and never a block.
#[test]
fn damaged_real_blocks_are_errors_naming_block_tx_and_field() {
    let bytes = read("bitcoin-core-bench/block413567.raw");
    let hash = "0000000000000000025aff8be8a55df8f89c77296db6198f272d6577325d4069";
    // Truncations at 500 points spread over the block.
    let step = bytes.len() / 500;
    for cut in (0..bytes.len()).step_by(step) {
        let e = Block::from_raw(Network::Bitcoin, &bytes[..cut], Some(413_567)).expect_err("cut");
        let msg = e.to_string();
        if cut >= 80 {
            assert!(
                msg.starts_with(&format!("block 413567 ({hash})")),
                "{cut}: {msg}"
            );
            assert!(
                matches!(e, BlockError::Decode(ref d) if d.place.tx.is_some() || d.field == "tx count"),
                "{cut}: {msg}"
            );
        }
    }
    // A flipped byte inside a transaction's output value: it decodes, but the merkle root no
    // longer commits to it.
    let mut damaged = bytes.clone();
    damaged[200] ^= 0x01;
    let e = Block::from_raw(Network::Bitcoin, &damaged, None).expect_err("merkle");
    assert!(e.to_string().contains(": merkle root: "), "{e}");
    // An output worth more than all bitcoin: named by tx and output.
    let block: bitcoin::Block = bitcoin::consensus::deserialize(&bytes).expect("decodes");
    let mut forged = block.clone();
    forged.txdata[5].output[0].value = bitcoin::Amount::from_sat(21_000_000 * 100_000_000 + 1);
    forged.header.merkle_root = forged.compute_merkle_root().expect("root");
    let e = Block::from_bitcoin(Network::Bitcoin, &forged, None).expect_err("supply");
    assert!(
        e.to_string()
            .contains(", tx 5: output 0 value: 2100000000000001"),
        "{e}"
    );
    // A second coinbase.
    let mut forged = block;
    forged.txdata[3] = forged.txdata[0].clone();
    forged.header.merkle_root = forged.compute_merkle_root().expect("root");
    let e = Block::from_bitcoin(Network::Bitcoin, &forged, None).expect_err("coinbase");
    assert!(
        e.to_string()
            .contains(", tx 3: inputs: a coinbase after the first"),
        "{e}"
    );
}

/// Random damage to real blocks (bytes flipped, inserted, deleted; a fixed seed, so a failure
/// reproduces): every outcome is a block that re-encodes to the damaged bytes, or an error
/// naming the field (and the block once 80 bytes are there), never a panic.
#[test]
fn randomly_damaged_blocks_decode_or_name_the_field() {
    let blocks = [
        read("btcd/277647.dat")[8..].to_vec(),
        hex::decode(
            String::from_utf8(read("bitcoinkernel/block_data.txt"))
                .expect("utf-8")
                .lines()
                .last()
                .expect("block 206"),
        )
        .expect("hex"),
    ];
    let mut seed: u64 = 0x5eed_b10c;
    let mut next = |n: usize| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((seed >> 33) as usize) % n.max(1)
    };
    let (mut accepted, mut refused) = (0, 0);
    for round in 0..1_500 {
        let mut b = blocks[round % 2].clone();
        for _ in 0..1 + next(3) {
            let at = next(b.len());
            match next(3) {
                0 => b[at] ^= 1 << next(8),
                1 => b.insert(at, next(256) as u8),
                _ => {
                    b.remove(at);
                }
            }
        }
        match Block::from_raw(Network::BitcoinRegtest, &b, None) {
            Ok(block) => {
                accepted += 1;
                assert_eq!(block.txs.len(), {
                    let decoded: bitcoin::Block =
                        bitcoin::consensus::deserialize(&b).expect("same bytes");
                    decoded.txdata.len()
                });
            }
            Err(e) => {
                refused += 1;
                let msg = e.to_string();
                assert!(!msg.contains("Some(") && !msg.trim().is_empty(), "{msg}");
                let (field, place) = match &e {
                    BlockError::Decode(d) => (d.field.as_str(), &d.place),
                    BlockError::Invalid { field, place, .. } => (field.as_str(), place),
                };
                assert!(!field.is_empty(), "{msg}");
                if b.len() >= 80 {
                    assert!(place.block.is_some(), "{msg}");
                }
            }
        }
    }
    // A flipped bit in a signature or a script still decodes, but the merkle root catches it.
    assert!(
        refused > 1_400 && accepted > 0,
        "{accepted} accepted, {refused} refused"
    );
}
