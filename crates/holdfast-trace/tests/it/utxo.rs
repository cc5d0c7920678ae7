//! UTXO taint over hand-made transactions written to the real UTXO index (embedded and
//! PostgreSQL), with every amount computed by hand in the comments: a theft, a peel to an
//! exchange, a consolidation with clean coins, a payment with an OP_RETURN memo to a second
//! exchange, a CoinJoin-like transaction; per policy, with the hop limit, an output seed with
//! an amount, an address seed, and the outputs' formats.

use std::collections::{BTreeMap, HashMap};

use alloy_primitives::B256;
use holdfast_primitives::{BlockRef, Category};
use holdfast_store::testing::TempPostgres;
use holdfast_store::utxo::{
    EmbeddedUtxoStore, OutPointKey, PgUtxoStore, TxInput, TxOutput, TxRecord, UtxoChanges,
    UtxoRecord, UtxoStore,
};
use holdfast_trace::output::Format;
use holdfast_trace::result::Role;
use holdfast_trace::utxo::{OutputState, UtxoSeedAt, UtxoTrace, trace_utxo, write_utxo};
use holdfast_trace::{Policy, Service, ServiceKind, TraceOptions};

const CHAIN: u64 = 9_100;

fn txid(tag: u8) -> B256 {
    B256::repeat_byte(tag)
}

fn op(tag: u8, vout: u32) -> OutPointKey {
    OutPointKey {
        txid: txid(tag),
        vout,
    }
}

fn shown(tag: u8, vout: u32) -> String {
    op(tag, vout).to_string()
}

fn pay(value: u64, address: &str) -> TxOutput {
    TxOutput {
        value,
        script: vec![0x00, 0x14, address.len() as u8],
        address: Some(address.into()),
    }
}

/// Writes blocks of transactions (the first of each is its coinbase, or a coinbase is made),
/// computing each block's coin changes from the outputs created so far.
struct Builder<'a> {
    store: &'a dyn UtxoStore,
    chain: u64,
    height: u64,
    outputs: HashMap<OutPointKey, UtxoRecord>,
}

impl Builder<'_> {
    fn block(&mut self, txs: Vec<(u8, Vec<OutPointKey>, Vec<TxOutput>)>) {
        self.height += 1;
        let h = self.height;
        let mut changes = UtxoChanges::default();
        let mut list = Vec::new();
        let mut own: HashMap<OutPointKey, UtxoRecord> = HashMap::new();
        let mut created = Vec::new();
        for (i, (tag, ins, outs)) in txs.into_iter().enumerate() {
            let mut inputs = Vec::new();
            for p in ins {
                let r = match own.remove(&p) {
                    Some(r) => r,
                    None => {
                        let r = self.outputs.remove(&p).expect("spent output");
                        changes.spent.push((p, r.clone()));
                        r
                    }
                };
                created.retain(|c| c != &p);
                inputs.push(TxInput {
                    prevout: p,
                    value: r.value,
                    address: r.address.clone(),
                });
            }
            for (v, o) in outs.iter().enumerate() {
                if o.script.first() == Some(&0x6a) {
                    continue;
                }
                let p = op(tag, v as u32);
                own.insert(
                    p,
                    UtxoRecord {
                        value: o.value,
                        height: h,
                        coinbase: i == 0,
                        script: o.script.clone(),
                        address: o.address.clone(),
                    },
                );
                created.push(p);
            }
            list.push(TxRecord {
                txid: txid(tag),
                coinbase: i == 0,
                inputs,
                outputs: outs,
            });
        }
        for p in created {
            let r = own.remove(&p).expect("own");
            changes.created.push((p, r.clone()));
            self.outputs.insert(p, r);
        }
        changes.transactions = list;
        let block = BlockRef {
            number: h,
            hash: B256::from(alloy_primitives::U256::from(h)),
            parent_hash: B256::from(alloy_primitives::U256::from(h - 1)),
            timestamp: h,
        };
        self.store
            .apply_block(self.chain, &block, &changes)
            .expect("apply");
    }
}

/// The laundering, in sats:
/// - block 1, coinbase X (0x10): X:0 100,000 to the thief `t1`; X:1, X:2, X:3 clean, 100,000,
///   50,000 and 50,000 to `c1`, `c3`, `c4`.
/// - block 2, peel P (0x20) spends X:0: P:0 20,000 to exchange `ex1`, P:1 79,000 to `t2`,
///   fee 1,000.
/// - block 3, consolidation M (0x30) spends P:1 (79,000 tainted) and X:1 (100,000 clean):
///   M:0 150,000 to `t3`, M:1 28,000 to `c2`, fee 1,000.
/// - block 4, D (0x40) spends M:0: D:0 an OP_RETURN memo of 0, D:1 100,000 to exchange
///   `ex2`, D:2 49,000 to `t4`, fee 1,000.
/// - block 5, CoinJoin J (0x50) spends D:2 (49,000), X:2 and X:3 (50,000 each, `c3`, `c4`):
///   three outputs of 40,000 and change 28,000 to `c5`, fee 1,000.
fn write_laundering(store: &dyn UtxoStore) {
    let mut b = Builder {
        store,
        chain: CHAIN,
        height: 0,
        outputs: HashMap::new(),
    };
    b.block(vec![(
        0x10,
        vec![],
        vec![
            pay(100_000, "t1"),
            pay(100_000, "c1"),
            pay(50_000, "c3"),
            pay(50_000, "c4"),
        ],
    )]);
    let cb = |tag: u8| (tag, vec![], vec![pay(1, "miner")]);
    b.block(vec![
        cb(0x21),
        (
            0x20,
            vec![op(0x10, 0)],
            vec![pay(20_000, "ex1"), pay(79_000, "t2")],
        ),
    ]);
    b.block(vec![
        cb(0x31),
        (
            0x30,
            vec![op(0x20, 1), op(0x10, 1)],
            vec![pay(150_000, "t3"), pay(28_000, "c2")],
        ),
    ]);
    b.block(vec![
        cb(0x41),
        (
            0x40,
            vec![op(0x30, 0)],
            vec![
                TxOutput {
                    value: 0,
                    script: vec![0x6a, 0x04, b'O', b'U', b'T', b':'],
                    address: None,
                },
                pay(100_000, "ex2"),
                pay(49_000, "t4"),
            ],
        ),
    ]);
    b.block(vec![
        cb(0x51),
        (
            0x50,
            vec![op(0x40, 2), op(0x10, 2), op(0x10, 3)],
            vec![
                pay(40_000, "j1"),
                pay(40_000, "j2"),
                pay(40_000, "j3"),
                pay(28_000, "c5"),
            ],
        ),
    ]);
}

fn exchanges() -> BTreeMap<String, Service> {
    ["ex1", "ex2"]
        .into_iter()
        .map(|a| {
            (
                a.to_owned(),
                Service {
                    kind: ServiceKind::Custodial,
                    category: Category::Exchange,
                    name: format!("Exchange {a}"),
                },
            )
        })
        .collect()
}

fn run(store: &dyn UtxoStore, seeds: &[UtxoSeedAt], opts: &TraceOptions) -> UtxoTrace {
    trace_utxo(store, &exchanges(), CHAIN, "test", seeds, opts).expect("trace")
}

fn tainted(t: &UtxoTrace, tag: u8, vout: u32) -> u64 {
    t.output(&shown(tag, vout)).map_or(0, |o| o.tainted)
}

/// Per policy, from the theft output X:0 (100,000 tainted):
///
/// P: one wholly tainted input: P:0 20,000, P:1 79,000, fee 1,000 under every policy.
///
/// M (inputs P:1 79,000 tainted, X:1 100,000 clean; V = 179,000; outputs 150,000, 28,000,
/// fee 1,000):
/// - poison: 150,000 and 28,000 wholly, fee 1,000;
/// - haircut: T = 79,000: 79,000·150,000/179,000 = 66,201.1 → 66,201;
///   79,000·28,000/179,000 = 12,357.5 → 12,357; fee 79,000·1,000/179,000 = 441.3 → 441; the
///   remainder 1 to the last receiver, the fee: 442;
/// - FIFO: the line is [0, 79,000) tainted then 100,000 clean; M:0 takes [0, 150,000): 79,000
///   (its first 79,000 units); M:1 [150,000, 178,000) clean; the fee's tail clean;
/// - LIFO: M:0 takes the last 150,000 [29,000, 179,000): [29,000, 79,000) = 50,000 (its first
///   50,000 units); M:1 [1,000, 29,000): 28,000; the fee the head [0, 1,000): 1,000;
/// - TIHO: 79,000 to the highest output M:0; M:1 and the fee nothing.
///
/// D (input M:0 150,000; outputs 0 (OP_RETURN), 100,000 to ex2, 49,000; fee 1,000):
/// - poison: ex2 100,000, D:2 49,000, fee 1,000;
/// - haircut: T = 66,201: ex2 66,201·100,000/150,000 = 44,134; D:2 66,201·49,000/150,000 =
///   21,625.7 → 21,625; fee 441.3 → 441, remainder 1 → 442;
/// - FIFO: M:0's taint [0, 79,000): ex2 takes [0, 100,000): 79,000; D:2 [100,000, 149,000)
///   clean; fee clean;
/// - LIFO: M:0's taint [0, 50,000): ex2 takes [50,000, 150,000): clean; D:2 [1,000, 50,000):
///   49,000; fee [0, 1,000): 1,000;
/// - TIHO: 79,000 to the highest output, ex2.
///
/// J is CoinJoin-like: the trace stops there (a mixer) with D:2's taint.
///
/// Totals (seeded 100,000 = targets + fees + at rest + mixer):
/// poison   ex1 20,000, ex2 100,000, fees 3,000, M:1 28,000 at rest, mixer 49,000;
/// haircut  ex1 20,000, ex2 44,134, fees 1,000 + 442 + 442 = 1,884, M:1 12,357, mixer 21,625;
/// FIFO     ex1 20,000, ex2 79,000, fees 1,000;
/// LIFO     ex1 20,000, ex2 0, fees 3,000, M:1 28,000, mixer 49,000;
/// TIHO     ex1 20,000, ex2 79,000, fees 1,000.
fn policies(store: &dyn UtxoStore) {
    let seed = [UtxoSeedAt::Output {
        outpoint: op(0x10, 0),
        amount: None,
    }];
    // (policy, ex2, fees, M:1 at rest, mixer, conserved)
    let expected = [
        (Policy::Poison, 100_000, 3_000, 28_000, 49_000, false),
        (Policy::Haircut, 44_134, 1_884, 12_357, 21_625, true),
        (Policy::Fifo, 79_000, 1_000, 0, 0, true),
        (Policy::Lifo, 0, 3_000, 28_000, 49_000, true),
        (Policy::Tiho, 79_000, 1_000, 0, 0, true),
    ];
    for (policy, ex2, fees, rest, mixer, conserved) in expected {
        let t = run(store, &seed, &TraceOptions::with_policy(policy));
        assert_eq!(t.seeded, 100_000, "{policy}");
        assert_eq!(t.tainted_at("ex1"), 20_000, "{policy}");
        assert_eq!(t.tainted_at("ex2"), ex2, "{policy}");
        assert_eq!(t.stats.lost_to_fees, fees, "{policy}");
        assert_eq!(t.stats.at_rest, rest, "{policy}");
        assert_eq!(
            t.mixers.iter().map(|m| m.tainted).sum::<u64>(),
            mixer,
            "{policy}"
        );
        assert_eq!(t.head_height, 5);
        if conserved {
            assert_eq!(
                t.targets.iter().map(|x| x.tainted).sum::<u64>() + fees + rest + mixer,
                100_000,
                "{policy}: every unit accounted for"
            );
        }
        if mixer > 0 {
            let m = &t.mixers[0];
            assert_eq!(m.at, holdfast_store::utxo::show_txid(&txid(0x50)));
            assert_eq!(
                m.path
                    .iter()
                    .map(|h| h.outpoint.clone())
                    .collect::<Vec<_>>(),
                vec![
                    shown(0x10, 0),
                    shown(0x20, 1),
                    shown(0x30, 0),
                    shown(0x40, 2)
                ],
                "{policy}: the mixer's evidence path"
            );
            assert!(t.output(&shown(0x50, 0)).is_none(), "{policy}: stopped");
        }
        // The OP_RETURN memo of 0 takes no taint.
        assert!(t.output(&shown(0x40, 0)).is_none(), "{policy}");
        // Evidence to ex2, hop by hop (when tainted).
        if let Some(target) = t
            .targets
            .iter()
            .find(|x| x.address.as_deref() == Some("ex2"))
        {
            let hops: Vec<(String, u64)> = target
                .path
                .iter()
                .map(|h| (h.outpoint.clone(), h.tainted))
                .collect();
            assert_eq!(hops[0], (shown(0x10, 0), 100_000), "{policy}");
            assert_eq!(hops[1], (shown(0x20, 1), 79_000), "{policy}");
            assert_eq!(hops[3], (shown(0x40, 1), ex2), "{policy}");
            assert_eq!(
                target.service.as_ref().map(|s| s.name.as_str()),
                Some("Exchange ex2")
            );
        }
    }
    // The per-output amounts of the haircut, as computed above.
    let t = run(store, &seed, &TraceOptions::with_policy(Policy::Haircut));
    assert_eq!(tainted(&t, 0x30, 0), 66_201);
    assert_eq!(tainted(&t, 0x30, 1), 12_357);
    assert_eq!(tainted(&t, 0x40, 2), 21_625);
    assert_eq!(
        t.fees.iter().map(|f| f.tainted).collect::<Vec<_>>(),
        vec![1_000, 442, 442]
    );
    assert_eq!(
        t.output(&shown(0x30, 1)).map(|o| o.state),
        Some(OutputState::Unspent)
    );
    // LIFO: M:0 holds 50,000, its first units.
    let t = run(store, &seed, &TraceOptions::with_policy(Policy::Lifo));
    assert_eq!(tainted(&t, 0x30, 0), 50_000);
}

/// Bounds and seeds: the hop limit; an output seeded with an amount; a transaction and an
/// address as seeds; bad seeds refused naming what was expected.
fn bounds_and_seeds(store: &dyn UtxoStore) {
    // One hop: P's outputs are at the limit; ex1 is still a target (a service is a stop
    // before the limit); P:1's 79,000, spent further, is beyond the hops.
    let mut opts = TraceOptions::with_policy(Policy::Haircut);
    opts.max_hops = 1;
    let t = run(
        store,
        &[UtxoSeedAt::Output {
            outpoint: op(0x10, 0),
            amount: None,
        }],
        &opts,
    );
    assert_eq!(t.tainted_at("ex1"), 20_000);
    assert_eq!(t.stats.beyond_hops, 79_000);
    assert_eq!(
        t.output(&shown(0x20, 1)).map(|o| o.role),
        Some(Role::HopLimit)
    );
    assert_eq!(t.stats.transactions, 1);
    // 10,000 of X:0 under haircut: 10 %: ex1 2,000, P:1 7,900, fee 100; M: T = 7,900:
    // 7,900·150,000/179,000 = 6,620.1 → 6,620; 7,900·28,000/179,000 = 1,235.8 → 1,235; fee
    // 44.1 → 44, remainder 1 → 45.
    let t = run(
        store,
        &[UtxoSeedAt::Output {
            outpoint: op(0x10, 0),
            amount: Some(10_000),
        }],
        &TraceOptions::with_policy(Policy::Haircut),
    );
    assert_eq!(t.seeded, 10_000);
    assert_eq!(t.tainted_at("ex1"), 2_000);
    assert_eq!(tainted(&t, 0x30, 0), 6_620);
    assert_eq!(tainted(&t, 0x30, 1), 1_235);
    // The peel transaction as the seed: its two outputs; ex1 is a seed output, followed
    // (seeds are not stops): its 20,000 is unspent at rest.
    let t = run(
        store,
        &[UtxoSeedAt::Tx(txid(0x20))],
        &TraceOptions::with_policy(Policy::Fifo),
    );
    assert_eq!(t.seeded, 99_000);
    assert_eq!(t.stats.at_rest, 20_000);
    assert_eq!(t.tainted_at("ex2"), 79_000);
    // The thief's address: its one receipt.
    let t = run(
        store,
        &[UtxoSeedAt::Address {
            address: "t1".into(),
            from_height: 0,
        }],
        &TraceOptions::with_policy(Policy::Tiho),
    );
    assert_eq!((t.seeded, t.tainted_at("ex2")), (100_000, 79_000));
    // Bad seeds.
    let e = trace_utxo(
        store,
        &exchanges(),
        CHAIN,
        "test",
        &[UtxoSeedAt::Output {
            outpoint: op(0x20, 7),
            amount: None,
        }],
        &TraceOptions::default(),
    )
    .expect_err("no such output");
    assert!(e.to_string().contains("it has 2 outputs"), "{e}");
    let e = trace_utxo(
        store,
        &exchanges(),
        CHAIN,
        "test",
        &[UtxoSeedAt::Output {
            outpoint: op(0x20, 0),
            amount: Some(20_001),
        }],
        &TraceOptions::default(),
    )
    .expect_err("too much");
    assert!(
        e.to_string()
            .contains("amount \"20001\": expected 1 to the output's value, 20000"),
        "{e}"
    );
    let e = trace_utxo(
        store,
        &exchanges(),
        CHAIN,
        "test",
        &[UtxoSeedAt::Tx(txid(0x99))],
        &TraceOptions::default(),
    )
    .expect_err("unknown");
    assert!(e.to_string().contains("not in the transfers loaded"), "{e}");
    let e = trace_utxo(
        store,
        &exchanges(),
        CHAIN + 1,
        "other",
        &[UtxoSeedAt::Tx(txid(0x20))],
        &TraceOptions::default(),
    )
    .expect_err("empty chain");
    assert!(e.to_string().contains("chain \"other\""), "{e}");
    // Through mixers: the CoinJoin is followed; its outputs tainted (poison: all four).
    let mut opts = TraceOptions::with_policy(Policy::Poison);
    opts.through_mixers = true;
    let t = run(
        store,
        &[UtxoSeedAt::Output {
            outpoint: op(0x10, 0),
            amount: None,
        }],
        &opts,
    );
    assert!(t.mixers.is_empty());
    assert_eq!(tainted(&t, 0x50, 3), 28_000);
    // The node limit: two outputs kept, the rest counted.
    let mut opts = TraceOptions::with_policy(Policy::Fifo);
    opts.max_addresses = 2;
    let t = run(
        store,
        &[UtxoSeedAt::Output {
            outpoint: op(0x10, 0),
            amount: None,
        }],
        &opts,
    );
    assert!(t.stats.truncated);
    assert_eq!(t.outputs.len(), 2);
    assert_eq!(t.stats.truncated_taint, 79_000);
}

/// The formats: every tainted output a CSV row, DOT and GraphML nodes and edges.
fn formats(store: &dyn UtxoStore) {
    let t = run(
        store,
        &[UtxoSeedAt::Output {
            outpoint: op(0x10, 0),
            amount: None,
        }],
        &TraceOptions::with_policy(Policy::Haircut),
    );
    let mut csv = Vec::new();
    write_utxo(&t, Format::Csv, &mut csv).expect("csv");
    let csv = String::from_utf8(csv).expect("utf8");
    assert_eq!(csv.lines().count(), 1 + t.outputs.len());
    assert!(
        csv.contains(&format!(
            "{},4,1,100000,44134,ex2,3,service,not-followed,Exchange ex2,exchange,,{}",
            shown(0x40, 1),
            shown(0x30, 0)
        )),
        "{csv}"
    );
    let mut dot = Vec::new();
    write_utxo(&t, Format::Dot, &mut dot).expect("dot");
    let dot = String::from_utf8(dot).expect("utf8");
    assert!(
        dot.contains(&format!("\"{}\" -> \"{}\"", shown(0x30, 0), shown(0x40, 1))),
        "{dot}"
    );
    let mut xml = Vec::new();
    write_utxo(&t, Format::GraphMl, &mut xml).expect("graphml");
    let xml = String::from_utf8(xml).expect("utf8");
    assert_eq!(xml.matches("<edge ").count(), t.outputs.len() - 1);
    let mut json = Vec::new();
    write_utxo(&t, Format::Json, &mut json).expect("json");
    let v: serde_json::Value = serde_json::from_slice(&json).expect("json");
    assert_eq!(v["stats"]["lost_to_fees"], 1_884);
}

/// Two tainted inputs reaching one transaction at different hops, one of them an output with
/// no address (found through the spent-by index, not an address's history):
/// - block 1, coinbase A (0x60): A:0 60,000 to `s`;
/// - block 2, B (0x61) spends A:0: B:0 30,000 to a bare script (no address), B:1 29,000 to
///   `x`, fee 1,000;
/// - block 3, C (0x62) spends B:1: C:0 28,000 to `y`, fee 1,000;
/// - block 4, D (0x63) spends B:0 (hop 1) and C:0 (hop 2): D:0 57,000 to `z`, fee 1,000.
///
/// Every policy: D sees both inputs wholly tainted (58,000): D:0 57,000 at hop 2 (the fewest
/// transactions from the seed), the fee 1,000; fees 3,000 in all. Were D taken when B:0 first
/// reached it, it would see 30,000 tainted only (haircut: 30,000·57,000/58,000 = 29,482).
fn consolidation_across_hops(store: &dyn UtxoStore) {
    let chain = CHAIN + 2;
    let mut b = Builder {
        store,
        chain,
        height: 0,
        outputs: HashMap::new(),
    };
    let cb = |tag: u8| (tag, vec![], vec![pay(1, "miner")]);
    b.block(vec![(0x60, vec![], vec![pay(60_000, "s")])]);
    b.block(vec![
        cb(0x71),
        (
            0x61,
            vec![op(0x60, 0)],
            vec![
                TxOutput {
                    value: 30_000,
                    script: vec![0x51],
                    address: None,
                },
                pay(29_000, "x"),
            ],
        ),
    ]);
    b.block(vec![
        cb(0x72),
        (0x62, vec![op(0x61, 1)], vec![pay(28_000, "y")]),
    ]);
    b.block(vec![
        cb(0x73),
        (0x63, vec![op(0x61, 0), op(0x62, 0)], vec![pay(57_000, "z")]),
    ]);
    for policy in Policy::ALL {
        let t = trace_utxo(
            store,
            &exchanges(),
            chain,
            "test",
            &[UtxoSeedAt::Output {
                outpoint: op(0x60, 0),
                amount: None,
            }],
            &TraceOptions::with_policy(policy),
        )
        .expect("trace");
        let d = t.output(&shown(0x63, 0)).expect("D:0");
        assert_eq!((d.tainted, d.hops), (57_000, 2), "{policy}");
        assert_eq!(d.state, OutputState::Unspent, "{policy}");
        assert_eq!(t.stats.lost_to_fees, 3_000, "{policy}");
        assert_eq!(t.stats.transactions, 3, "{policy}: D once");
        assert_eq!(
            tainted(&t, 0x61, 0),
            30_000,
            "{policy}: the bare output followed"
        );
    }
}

/// THORChain's payout found in the index and the trace continued from it (chain
/// `CHAIN + 7`, in sats): block 1's coinbase pays THORChain's vault 1,000,000 (V:0). Block 2:
/// A (0x61) the vault pays `bc1qdest` 30,000 with no memo; B (0x62) THORChain's payout of
/// the inbound: 500,000 to `bc1qdest`, change to the vault, OP_RETURN `OUT:<inbound>`; C
/// (0x63) another inbound's payout to `bc1qdest`. Block 3: D (0x64) `bc1qdest` sends B:0 to
/// exchange `ex1`, 499,000, fee 1,000. The memo names the address upper-case (bech32 allows
/// it; the index keeps the canonical lower case). The inbound was half tainted (500,000,000 ppb): the seed is 250,000 of B:0, and
/// haircut takes 250,000·499,000/500,000 = 249,500 to ex1, 500 to the fee.
fn thorchain_payout_continues_the_trace(store: &dyn UtxoStore) {
    let chain = CHAIN + 7;
    let inbound = B256::repeat_byte(0x9f);
    let memo = |hash: B256| {
        let text = format!("OUT:{}", alloy_primitives::hex::encode_upper(hash));
        let mut script = vec![0x6a, text.len() as u8];
        script.extend_from_slice(text.as_bytes());
        TxOutput {
            value: 0,
            script,
            address: None,
        }
    };
    let mut b = Builder {
        store,
        chain,
        height: 0,
        outputs: HashMap::new(),
    };
    b.block(vec![(0x60, vec![], vec![pay(1_000_000, "vault")])]);
    b.block(vec![
        (0x6f, vec![], vec![pay(1, "miner")]),
        (
            0x61,
            vec![op(0x60, 0)],
            vec![pay(30_000, "bc1qdest"), pay(969_000, "vault")],
        ),
        (
            0x62,
            vec![op(0x61, 1)],
            vec![
                pay(500_000, "bc1qdest"),
                pay(468_000, "vault"),
                memo(inbound),
            ],
        ),
        (
            0x63,
            vec![op(0x62, 1)],
            vec![
                pay(7_000, "bc1qdest"),
                pay(460_000, "vault"),
                memo(B256::repeat_byte(1)),
            ],
        ),
    ]);
    b.block(vec![
        (0x6e, vec![], vec![pay(1, "miner")]),
        (0x64, vec![op(0x62, 0)], vec![pay(499_000, "ex1")]),
    ]);
    let found = holdfast_trace::utxo::thorchain_payouts(store, chain, inbound, "BC1QDEST", 0)
        .expect("read");
    let [payout] = found.as_slice() else {
        panic!("one payout in the index: {found:?}")
    };
    assert_eq!(
        (payout.id, payout.outputs.clone(), payout.amount),
        (txid(0x62), vec![(0, 500_000)], 500_000),
        "THORChain's payout, not the plain payment nor another inbound's"
    );
    assert!(
        holdfast_trace::utxo::thorchain_payouts(store, chain, B256::repeat_byte(2), "bc1qdest", 0)
            .expect("read")
            .is_empty()
    );
    let seeds = holdfast_trace::utxo::payout_seeds(payout, Some(500_000_000));
    let t = trace_utxo(
        store,
        &exchanges(),
        chain,
        "test",
        &seeds,
        &TraceOptions::with_policy(Policy::Haircut),
    )
    .expect("trace");
    assert_eq!(t.seeded, 250_000);
    assert_eq!(t.tainted_at("ex1"), 249_500);
    assert_eq!(t.stats.lost_to_fees, 500);
    two_deposits_in_one_transaction_seed_their_payout_once(store, chain, inbound);
}

/// An attacker's read of the crossing: the thief's contract makes two deposits in one
/// transaction (its hash is the inbound id `OUT:` names, so both find the same payouts). The
/// payout's taint must count once, not once per deposit (the walk unions an output's seeded
/// intervals).
fn two_deposits_in_one_transaction_seed_their_payout_once(
    store: &dyn UtxoStore,
    chain: u64,
    inbound: B256,
) {
    use alloy_primitives::{Address, Bytes, Log, U256, keccak256};
    use holdfast_primitives::Asset;
    use holdfast_trace::crosschain::{CrossingOutcome, ExitReceipt, UtxoChain, follow_exits};
    use holdfast_trace::{FreezeTarget, Hop, Trace, TraceStats};

    let router = Address::repeat_byte(0xaa);
    let deposit = |amount: U256, memo: &str| {
        let mut data = Vec::new();
        data.extend_from_slice(&amount.to_be_bytes::<32>());
        data.extend_from_slice(&U256::from(64u64).to_be_bytes::<32>());
        data.extend_from_slice(&U256::from(memo.len()).to_be_bytes::<32>());
        let mut m = memo.as_bytes().to_vec();
        m.resize(memo.len().div_ceil(32) * 32, 0);
        data.extend_from_slice(&m);
        let topics = vec![
            keccak256("Deposit(address,address,uint256,string)"),
            B256::left_padding_from(&[0x55; 20]),
            B256::ZERO,
        ];
        Log::new(router, topics, Bytes::from(data)).expect("3 topics")
    };
    let eth = U256::from(10u64).pow(U256::from(18u64));
    let hop = |amount: U256| Hop {
        tx_hash: inbound,
        block: 9,
        from: Address::repeat_byte(3),
        to: router,
        asset: Asset::Native,
        amount,
        tainted: amount / U256::from(2u64),
    };
    let (a, b) = (hop(eth), hop(eth * U256::from(2u64)));
    let bridge = Service {
        kind: ServiceKind::Bridge,
        category: Category::Bridge,
        name: "THORChain Router".into(),
    };
    let evm = Trace {
        id: "t".into(),
        chain_id: 1,
        policy: Policy::Haircut,
        options: TraceOptions::with_policy(Policy::Haircut),
        seeds: vec![],
        seeded: vec![],
        addresses: vec![],
        targets: vec![],
        exits: vec![FreezeTarget {
            service: bridge,
            deposit: router,
            amounts: vec![],
            first_tx: inbound,
            first_block: 9,
            path: vec![a.clone()],
            arrivals: vec![vec![a.clone()], vec![b.clone()]],
        }],
        mixers: vec![],
        tree: vec![],
        stats: TraceStats::default(),
    };
    let receipts: BTreeMap<B256, ExitReceipt> = [(
        inbound,
        ExitReceipt {
            block_number: 9,
            block_hash: B256::repeat_byte(9),
            stored_block_hash: Some(B256::repeat_byte(9)),
            refunds: vec![],
            success: true,
            logs: vec![
                deposit(a.amount, "=:b:BC1QDEST"),
                deposit(b.amount, "=:b:BC1QDEST"),
            ],
        },
    )]
    .into();
    let classifier = exchanges();
    let any = |_: &str| true;
    let chains = [UtxoChain {
        thorchain_chain: "BTC",
        chain_id: chain,
        network: "test",
        src: store,
        classifier: &classifier,
        address_ok: &any,
    }];
    let x = follow_exits(
        evm,
        &receipts,
        &chains,
        &TraceOptions::with_policy(Policy::Haircut),
    )
    .expect("follow");
    assert_eq!(x.crossings.len(), 2, "one crossing per deposit");
    for c in &x.crossings {
        assert_eq!(c.outcome, CrossingOutcome::Followed { payouts: 1 });
    }
    let [t] = x.continued.as_slice() else {
        panic!("one continued trace: {:?}", x.continued)
    };
    assert_eq!(t.seeded, 250_000, "the payout seeded once, at half");
    assert_eq!(t.tainted_at("ex1"), 249_500);
    assert_eq!(x.targets.len(), 1);
}

fn suite(store: &dyn UtxoStore) {
    thorchain_payout_continues_the_trace(store);
    consolidation_across_hops(store);
    write_laundering(store);
    policies(store);
    bounds_and_seeds(store);
    formats(store);
}

#[test]
fn utxo_taint_embedded() {
    let dir = tempfile::tempdir().expect("tempdir");
    suite(&EmbeddedUtxoStore::open(dir.path()).expect("open"));
}

#[test]
fn utxo_taint_postgres() {
    let pg =
        TempPostgres::start(false).expect("PostgreSQL for the test (scripts/install-postgres)");
    suite(&PgUtxoStore::connect(pg.url()).expect("connect"));
}
