//! btcd's test blocks: the fork set on the mainnet genesis (Core's `blk*.dat` framing) and
//! mainnet block 277,647 with the outputs it spends, from btcd's compressed UTXO entries.

use std::collections::HashMap;

use holdfast_bitcoin::bitcoin::hashes::Hash;
use holdfast_bitcoin::bitcoin::{self, OutPoint, ScriptBuf, Txid};
use holdfast_bitcoin::blkfile::BlkFile;
use holdfast_bitcoin::{Block, Network, Output, ScriptKind};

use crate::read;

fn blocks(file: &str) -> Vec<Block> {
    let bytes = read(&format!("btcd/{file}"));
    BlkFile::new(file, &bytes, Network::Bitcoin)
        .map(|f| Block::from_raw(Network::Bitcoin, f.expect("frame").bytes, None).expect("block"))
        .collect()
}

fn txid(b: &Block, prefix: &str) -> Txid {
    b.txs
        .iter()
        .map(|t| t.txid)
        .find(|t| t.to_string().starts_with(prefix))
        .unwrap_or_else(|| panic!("no tx {prefix} in {}", b.hash))
}

fn pays(b: &Block, prefix: &str) -> Vec<(u64, String)> {
    let t = b
        .txs
        .iter()
        .find(|t| t.txid == txid(b, prefix))
        .expect("tx");
    t.outputs
        .iter()
        .map(|o| (o.value, o.address.clone().unwrap_or_default()))
        .collect()
}

const BTC: u64 = 100_000_000;

#[test]
fn the_fork_set_decodes_links_and_pays_whom_the_readme_says() {
    let main = blocks("blk_0_to_4.dat");
    let side: Vec<Block> = ["blk_3A.dat", "blk_4A.dat", "blk_5A.dat"]
        .iter()
        .flat_map(|f| blocks(f))
        .collect();
    let hashes: Vec<String> = main
        .iter()
        .chain(&side)
        .map(|b| b.hash.to_string()[..16].to_owned())
        .collect();
    assert_eq!(
        hashes,
        [
            "000000000019d668",
            "00000000ebe5ec3e",
            "00000000952ccb1b",
            "00000000bc358930",
            "000000002f264d65",
            "00000000474284d2",
            "00000000551dc04c",
            "00000000195f8518"
        ]
    );
    for pair in main.windows(2) {
        assert_eq!(pair[1].prev, pair[0].hash);
    }
    assert_eq!(side[0].prev, main[2].hash, "3A forks after block 2");
    assert_eq!((side[1].prev, side[2].prev), (side[0].hash, side[1].hash));

    // Block 1's coinbase pays a public key (P2PK): shown as that key's address.
    let cb = &main[1].txs[0].outputs[0];
    assert_eq!(cb.kind, ScriptKind::P2pk);
    assert_eq!(
        cb.address.as_deref(),
        Some("1NiEGXeURREqqMjCvjCeZn6SwEBZ9AdVet")
    );
    assert_eq!(
        pays(&main[2], "29c25cf0"),
        [
            (10 * BTC, "1KXFNhNtrRMfgbdiQeuJqnfD7dR4PhniyJ".into()),
            (40 * BTC, "1NiEGXeURREqqMjCvjCeZn6SwEBZ9AdVet".into())
        ]
    );
    assert_eq!(
        pays(&main[3], "509866fa"),
        [(10 * BTC, "1JyMKvPHkrCQd8jQrqTR1rBsAd1VpRhTiE".into())]
    );
    assert_eq!(
        pays(&side[0], "c4d85354"),
        [(10 * BTC, "1NiEGXeURREqqMjCvjCeZn6SwEBZ9AdVet".into())]
    );
    // The conflict the reorg resolves: both spend 29c25cf0:0.
    let spends = |b: &Block, p: &str| {
        let t = b.txs.iter().find(|t| t.txid == txid(b, p)).expect("tx");
        t.inputs[0].prevout
    };
    assert_eq!(spends(&main[3], "509866fa"), spends(&side[0], "c4d85354"));
    assert_eq!(
        spends(&main[3], "509866fa").txid,
        txid(&main[2], "29c25cf0")
    );

    // Resolving along the main chain (coinbase maturity 1 here): every fee is zero.
    let mut utxos: HashMap<OutPoint, Output> = HashMap::new();
    for mut b in main {
        assert_eq!(
            b.resolve_inputs(|op| utxos.remove(op)).expect("resolves"),
            0,
            "{}",
            b.hash
        );
        assert_eq!(b.fees(), Some(0));
        for t in &b.txs {
            for (vout, o) in t.outputs.iter().enumerate() {
                utxos.insert(
                    OutPoint {
                        txid: t.txid,
                        vout: vout as u32,
                    },
                    o.clone(),
                );
            }
        }
    }
}

/// Block 277,647 with its 732 spent outputs: every input resolved, the fees are the coinbase
/// minus the 25 BTC subsidy, to the satoshi.
#[test]
fn block_277647_fees_from_the_spent_outputs() {
    let bytes = read("btcd/277647.dat");
    let frames: Vec<_> = BlkFile::new("277647.dat", &bytes, Network::Bitcoin)
        .collect::<Result<_, _>>()
        .expect("frames");
    assert_eq!(frames.len(), 1);
    let mut block =
        Block::from_raw(Network::Bitcoin, frames[0].bytes, Some(277_647)).expect("decodes");
    assert_eq!(
        block.hash.to_string(),
        "0000000000000000054a714e580b16c583701712ab91060e92dbde6eb1e052a8"
    );
    assert_eq!(block.txs.len(), 213);
    assert_eq!(block.txs.iter().map(|t| t.inputs.len()).sum::<usize>(), 732);
    assert_eq!(
        block.txs.iter().map(|t| t.outputs.len()).sum::<usize>(),
        769
    );
    assert_eq!(block.txs.iter().filter(|t| t.inputs.len() > 1).count(), 115);

    let store = utxostore(&read("btcd/277647.utxostore"));
    assert_eq!(store.len(), 732);
    // The block's own outputs first: the 62 spent in the block must agree with btcd's entries.
    let mut asked = 0;
    let unresolved = block
        .resolve_inputs(|op| {
            asked += 1;
            store.get(op).cloned()
        })
        .expect("no overspend");
    assert_eq!((unresolved, asked), (0, 732 - 62));
    for tx in &block.txs {
        for input in &tx.inputs {
            let spent = input.spent.as_ref().expect("resolved");
            let entry = &store[&input.prevout];
            assert_eq!(
                (spent.value, &spent.script),
                (entry.value, &entry.script),
                "{}",
                input.prevout
            );
        }
    }
    let fees = block.fees().expect("all resolved");
    assert_eq!(fees, 4_737_355);
    assert_eq!(block.coinbase_value(), 25 * BTC + fees);
    // Every spent output has an address (2013: P2PKH, P2SH and P2PK only).
    assert!(
        block
            .txs
            .iter()
            .flat_map(|t| &t.inputs)
            .all(|i| i.spent.as_ref().is_some_and(|o| o.address.is_some()))
    );

    // A lookup that gives an input less than it held makes a transaction overspend: refused,
    // and nothing resolved.
    let mut again =
        Block::from_raw(Network::Bitcoin, frames[0].bytes, Some(277_647)).expect("decodes");
    let e = again
        .resolve_inputs(|op| {
            store.get(op).map(|o| Output {
                value: o.value / 2,
                ..o.clone()
            })
        })
        .expect_err("overspend");
    assert!(
        e.to_string().starts_with("block 0000000000000000054a714e"),
        "{e}"
    );
    assert!(
        again
            .txs
            .iter()
            .flat_map(|t| &t.inputs)
            .all(|i| i.spent.is_none())
    );
}

/// btcd's `<txid><vout u32><len u32><entry>` records; each entry is `VLQ(height << 1 |
/// coinbase)`, `VLQ(compressed amount)`, compressed script (btcd `blockchain/compress.go`,
/// Bitcoin Core's `CTxOutCompressor`).
fn utxostore(mut b: &[u8]) -> HashMap<OutPoint, Output> {
    let mut out = HashMap::new();
    while !b.is_empty() {
        let txid = Txid::from_byte_array(b[..32].try_into().expect("32"));
        let vout = u32::from_le_bytes(b[32..36].try_into().expect("4"));
        let len = u32::from_le_bytes(b[36..40].try_into().expect("4")) as usize;
        let mut entry = &b[40..40 + len];
        b = &b[40 + len..];
        let _height_and_coinbase = vlq(&mut entry);
        let value = decompress_amount(vlq(&mut entry));
        let script = decompress_script(entry);
        out.insert(
            OutPoint { txid, vout },
            Output::new(value, script, Network::Bitcoin),
        );
    }
    out
}

fn vlq(b: &mut &[u8]) -> u64 {
    let mut n = 0u64;
    loop {
        let byte = b[0];
        *b = &b[1..];
        n = (n << 7) | u64::from(byte & 0x7f);
        if byte & 0x80 == 0 {
            return n;
        }
        n += 1;
    }
}

fn decompress_amount(x: u64) -> u64 {
    if x == 0 {
        return 0;
    }
    let mut x = x - 1;
    let mut e = x % 10;
    x /= 10;
    let mut n = if e < 9 {
        let d = x % 9 + 1;
        x /= 9;
        x * 10 + d
    } else {
        x + 1
    };
    while e > 0 {
        n *= 10;
        e -= 1;
    }
    n
}

fn decompress_script(mut b: &[u8]) -> ScriptBuf {
    let kind = vlq(&mut b);
    let mut s = Vec::new();
    match kind {
        0 => {
            s.extend([0x76, 0xa9, 0x14]);
            s.extend(&b[..20]);
            s.extend([0x88, 0xac]);
        }
        1 => {
            s.extend([0xa9, 0x14]);
            s.extend(&b[..20]);
            s.push(0x87);
        }
        2 | 3 => {
            s.push(33);
            s.push(kind as u8);
            s.extend(&b[..32]);
            s.push(0xac);
        }
        4 | 5 => {
            let mut compressed = vec![kind as u8 - 2];
            compressed.extend(&b[..32]);
            let key = bitcoin::secp256k1::PublicKey::from_slice(&compressed).expect("on the curve");
            s.push(65);
            s.extend(key.serialize_uncompressed());
            s.push(0xac);
        }
        n => s.extend(&b[..(n - 6) as usize]),
    }
    ScriptBuf::from_bytes(s)
}

/// btcd's fork set as a node's blocks directory (one file per set, in arrival order or
/// not): the best chain is the longer side branch 0-1-2-3A-4A-5A, the main blocks 3 and 4
/// are off it; a directory opening on another block than a genesis, a cut frame and a
/// foreign magic are refused naming the file and offset.
#[test]
fn a_blocks_directory_is_read_as_its_best_chain() {
    use holdfast_bitcoin::blkdir::{BlkDirError, BlocksDir};

    let files = |names: &[&str]| {
        let dir = tempfile::tempdir().expect("tempdir");
        for (i, name) in names.iter().enumerate() {
            std::fs::write(
                dir.path().join(format!("blk{i:05}.dat")),
                read(&format!("btcd/{name}")),
            )
            .expect("write");
        }
        dir
    };
    let main = blocks("blk_0_to_4.dat");
    let side: Vec<Block> = ["blk_3A.dat", "blk_4A.dat", "blk_5A.dat"]
        .iter()
        .flat_map(|f| blocks(f))
        .collect();
    let want: Vec<_> = main[..3].iter().chain(&side).map(|b| b.hash).collect();
    for order in [
        ["blk_0_to_4.dat", "blk_3A.dat", "blk_4A.dat", "blk_5A.dat"],
        ["blk_0_to_4.dat", "blk_5A.dat", "blk_3A.dat", "blk_4A.dat"],
    ] {
        let dir = files(&order);
        let d = BlocksDir::open(dir.path()).expect("open");
        assert_eq!(d.network(), Network::Bitcoin);
        assert_eq!(d.len(), 6, "{order:?}");
        assert_eq!(d.off_chain(), 2, "main 3 and 4");
        let got: Vec<_> = (0..6).map(|h| d.hash_at(h).expect("hash")).collect();
        assert_eq!(got, want, "{order:?}");
        let b5 = d.block_at(5).expect("block");
        assert_eq!((b5.hash, b5.height), (side[2].hash, Some(5)));
        assert_eq!(b5.txs, side[2].txs);
        let e = d.block_at(6).expect_err("above the tip");
        assert!(
            matches!(e, BlkDirError::NoSuchHeight { height: 6, tip: 5 }),
            "{e}"
        );
    }

    // Not opening on a genesis block.
    let dir = files(&["blk_3A.dat"]);
    let e = BlocksDir::open(dir.path()).expect_err("no genesis");
    assert!(matches!(e, BlkDirError::UnknownGenesis { .. }), "{e}");
    assert!(e.to_string().contains("blk00000.dat"), "{e}");

    // A frame cut short (a node writing it), and a frame of another network.
    let dir = files(&["blk_0_to_4.dat"]);
    let mut bytes = read("btcd/blk_3A.dat");
    bytes.truncate(bytes.len() - 10);
    std::fs::write(dir.path().join("blk00001.dat"), &bytes).expect("write");
    let e = BlocksDir::open(dir.path()).expect_err("cut");
    assert!(matches!(e, BlkDirError::Truncated { offset: 8, .. }), "{e}");
    assert!(e.to_string().contains("blk00001.dat"), "{e}");
    let mut bytes = read("btcd/blk_3A.dat");
    bytes[..4].copy_from_slice(&Network::Litecoin.magic());
    std::fs::write(dir.path().join("blk00001.dat"), &bytes).expect("write");
    let e = BlocksDir::open(dir.path()).expect_err("magic");
    assert!(matches!(e, BlkDirError::Magic { offset: 0, .. }), "{e}");

    // No block files at all.
    let empty = tempfile::tempdir().expect("tempdir");
    let e = BlocksDir::open(empty.path()).expect_err("empty");
    assert!(matches!(e, BlkDirError::Empty { .. }), "{e}");
}
