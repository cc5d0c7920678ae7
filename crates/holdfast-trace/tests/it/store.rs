//! The loader on both store backends (the embedded one and a real PostgreSQL started by the
//! test): a trace over loaded transfers equals the trace over the whole graph, for blocks
//! written with their conversions and for CSV-style imports alike.

use alloy_primitives::{B256, keccak256};
use holdfast_primitives::{Asset, BlockRef};
use holdfast_store::{BlockData, EmbeddedStore, PgStore, Store, testing::TempPostgres};
use holdfast_trace::{LoadOptions, Policy, Seed, TraceOptions, load_graph, trace};

use crate::fixture::{CHAIN, Net, addr, token};

fn block_hash(n: u64) -> B256 {
    keccak256([b"block".as_slice(), &n.to_be_bytes()].concat())
}

/// A laundering net: a mixed account, a swap, a wrap and an unwrap, a peel, an exchange.
pub fn laundering() -> Net {
    let weth = Asset::Erc20 { token: addr(0x57) };
    let mut n = Net::new();
    n.send_asset(0, 0x60, 0x50, token(1), 50_000);
    n.send_asset(0, 0x60, 0x50, token(2), 100_000);
    n.send(1, 2, 3, 3000);
    n.send(1, 1, 3, 2000);
    n.send(2, 3, 4, 4000);
    n.send(3, 3, 7, 1000);
    n.send_asset(3, 1, 3, token(1), 1000);
    n.swap(4, 3, (token(1), 1000), (token(2), 1960));
    n.send_asset(5, 3, 7, token(2), 1960);
    n.wrap_pass_unwrap(weth, 4, 5, 2500);
    n.send(8, 5, 6, 2400);
    n.send(9, 6, 7, 2400);
    n.exchange(7, "Binance");
    n
}

fn blocks(net: &Net) -> Vec<BlockData> {
    let top = net
        .transfers
        .iter()
        .map(|t| t.block_number)
        .max()
        .unwrap_or(0);
    (0..=top)
        .map(|b| {
            let hash = block_hash(b);
            BlockData {
                block: BlockRef {
                    number: b,
                    hash,
                    parent_hash: if b == 0 {
                        B256::ZERO
                    } else {
                        block_hash(b - 1)
                    },
                    timestamp: b * 12,
                },
                transfers: net
                    .transfers
                    .iter()
                    .filter(|t| t.block_number == b)
                    .map(|t| {
                        let mut t = t.clone();
                        t.block_hash = hash;
                        t
                    })
                    .collect(),
                conversions: net
                    .conversions
                    .iter()
                    .filter(|c| c.block_number == b)
                    .map(|c| {
                        let mut c = c.clone();
                        c.block_hash = hash;
                        c
                    })
                    .collect(),
            }
        })
        .collect()
}

fn same_as_whole_graph(store: &dyn Store, net: &Net, with_conversions: bool) {
    let seeds = [Seed::address(addr(1))];
    let mut whole = Net::new();
    whole.transfers = net.transfers.clone();
    if with_conversions {
        whole.conversions = net.conversions.clone();
    }
    for p in Policy::ALL {
        let o = TraceOptions::with_policy(p);
        let (g, stats) = load_graph(
            store,
            CHAIN,
            &seeds,
            &o,
            &LoadOptions::default(),
            &net.services,
            &mut |_| {},
        )
        .expect("load");
        assert!(!stats.truncated);
        let loaded = trace(&g, &seeds, &o, &net.services).expect("trace");
        let direct = trace(&whole.graph(), &seeds, &o, &net.services).expect("trace");
        assert_eq!(loaded.targets, direct.targets, "{p}");
        assert_eq!(loaded.addresses, direct.addresses, "{p}");
        assert!(!loaded.targets.is_empty(), "{p}");
    }
}

#[test]
fn embedded_store_blocks_and_imports() {
    let net = laundering();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(&dir.path().join("blocks")).expect("open");
    store.apply_blocks(CHAIN, &blocks(&net)).expect("write");
    same_as_whole_graph(&store, &net, true);

    let imported = EmbeddedStore::open(&dir.path().join("imported")).expect("open");
    imported
        .import_transfers(CHAIN, &net.transfers)
        .expect("import");
    same_as_whole_graph(&imported, &net, false);
}

#[test]
fn postgres_store_blocks_and_imports() {
    let pg =
        TempPostgres::start(false).expect("PostgreSQL for the test (scripts/install-postgres)");
    let store = PgStore::connect(pg.url()).expect("connect");
    let net = laundering();
    store.apply_blocks(CHAIN, &blocks(&net)).expect("write");
    same_as_whole_graph(&store, &net, true);
    store
        .import_transfers(
            7,
            &net.transfers
                .iter()
                .cloned()
                .map(|mut t| {
                    t.chain_id = 7;
                    t
                })
                .collect::<Vec<_>>(),
        )
        .expect("import");
    let seeds = [Seed::address(addr(1))];
    let o = TraceOptions::with_policy(Policy::Fifo);
    let (g, _) = load_graph(
        &store,
        7,
        &seeds,
        &o,
        &LoadOptions::default(),
        &net.services,
        &mut |_| {},
    )
    .expect("load");
    let t = trace(&g, &seeds, &o, &net.services).expect("trace");
    assert!(t.target(&addr(7)).is_some());
}

/// A hop that emits more token transfers in one block than the store gives in a page (a
/// worthless token's events, cents of gas), then moves the loot on: the loader reads that
/// block whole and the blocks after it, so the trace still reaches the exchange. Before,
/// the loader stopped reading the hop at that block, silently: the move after it, and the
/// deposit, were never loaded.
#[test]
fn a_hop_stuffing_a_block_with_more_than_a_page_of_transfers_does_not_hide_what_follows() {
    let junk = Asset::Erc20 { token: addr(0x99) };
    let mut net = Net::new();
    net.send(1, 1, 2, 1000);
    let dust: Vec<(u8, u8, Asset, u64)> = (0..holdfast_store::MAX_LIMIT + 5)
        .map(|_| (2, 0x90, junk, 1))
        .collect();
    net.batch(2, &dust);
    net.send(3, 2, 7, 1000);
    net.exchange(7, "Binance");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(dir.path()).expect("open");
    store.apply_blocks(CHAIN, &blocks(&net)).expect("write");
    let seeds = [Seed::address(addr(1))];
    let o = TraceOptions {
        fan_out_cap: 20_000,
        ..TraceOptions::with_policy(Policy::Poison)
    };
    let (g, stats) = load_graph(
        &store,
        CHAIN,
        &seeds,
        &o,
        &LoadOptions::default(),
        &net.services,
        &mut |_| {},
    )
    .expect("load");
    assert!(!stats.truncated);
    let r = trace(&g, &seeds, &o, &net.services).expect("trace");
    let deposits: Vec<_> = r.targets.iter().map(|t| t.deposit).collect();
    assert_eq!(
        deposits,
        vec![addr(7)],
        "the exchange deposit after the stuffed block"
    );
}

/// A net where `from` sent 10,005 transfers of `asset` to 0x90 at block `at` (a worthless
/// token's: events any contract can emit without `from`'s key), 1 sends 2 a theft of the
/// native asset at block 1 and 2 moves it to the exchange 7 at block 3.
fn stuffed(from: u8, asset: Asset, at: u64) -> (Net, EmbeddedStore, tempfile::TempDir) {
    let mut net = Net::new();
    let dust: Vec<(u8, u8, Asset, u64)> = (0..10_005).map(|_| (from, 0x90, asset, 1)).collect();
    net.batch(at, &dust);
    net.send(1, 1, 2, 1000);
    net.send(3, 2, 7, 1000);
    net.exchange(7, "Binance");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(dir.path()).expect("open");
    store.apply_blocks(CHAIN, &blocks(&net)).expect("write");
    (net, store, dir)
}

fn traced(
    net: &Net,
    store: &EmbeddedStore,
    seed: Seed,
    cap: usize,
    load: &LoadOptions,
) -> (holdfast_trace::Trace, holdfast_trace::LoadStats) {
    let seeds = [seed];
    let o = TraceOptions {
        fan_out_cap: cap,
        ..TraceOptions::with_policy(Policy::Poison)
    };
    let (g, stats) =
        load_graph(store, CHAIN, &seeds, &o, load, &net.services, &mut |_| {}).expect("load");
    (trace(&g, &seeds, &o, &net.services).expect("trace"), stats)
}

fn deposits(t: &holdfast_trace::Trace) -> Vec<alloy_primitives::Address> {
    t.targets.iter().map(|t| t.deposit).collect()
}

fn role_of(t: &holdfast_trace::Trace, a: u8) -> holdfast_trace::Role {
    t.addresses
        .iter()
        .find(|r| r.address == addr(a))
        .expect("reached")
        .role
}

/// A launderer floods the hop with a worthless token's transfers (more than the fan-out cap,
/// before the theft arrives or after it): the cap is per asset, so the token is capped there
/// (and listed), and the loot, another asset, is followed to the exchange. Before, the flood
/// made the hop a super-node (reported `capped`, not followed) for cents of gas.
#[test]
fn a_flood_of_a_worthless_token_from_a_hop_does_not_stop_the_loot() {
    let junk = Asset::Erc20 { token: addr(0x99) };
    for at in [0, 2] {
        let (net, store, _dir) = stuffed(2, junk, at);
        let (t, stats) = traced(
            &net,
            &store,
            Seed::address(addr(1)),
            10_000,
            &LoadOptions::default(),
        );
        assert_eq!(deposits(&t), vec![addr(7)], "flood at block {at}");
        assert_eq!(role_of(&t, 2), holdfast_trace::Role::Intermediate);
        assert_eq!(stats.outflows_cut, vec![(addr(2), Some(junk))]);
    }
}

/// The flood with a worthless token the seed address "sent" the hop too (seeded by address,
/// no asset: the token's taint reaches the hop): the hop is a super-node for the token only,
/// and the loot is followed to the exchange. Before, taint of a capped asset capped the
/// whole address.
#[test]
fn a_flood_of_a_tainted_worthless_token_does_not_stop_the_loot() {
    let junk = Asset::Erc20 { token: addr(0x99) };
    let mut net = Net::new();
    net.send_asset(1, 1, 2, junk, 1);
    net.send(1, 1, 2, 1000);
    let dust: Vec<(u8, u8, Asset, u64)> = (0..10_005).map(|_| (2, 0x90, junk, 1)).collect();
    net.batch(2, &dust);
    net.send(3, 2, 7, 1000);
    net.exchange(7, "Binance");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(dir.path()).expect("open");
    store.apply_blocks(CHAIN, &blocks(&net)).expect("write");
    let (t, stats) = traced(
        &net,
        &store,
        Seed::address(addr(1)),
        10_000,
        &LoadOptions::default(),
    );
    assert_eq!(deposits(&t), vec![addr(7)]);
    let hop = t
        .addresses
        .iter()
        .find(|r| r.address == addr(2))
        .expect("hop");
    assert_eq!(hop.role, holdfast_trace::Role::Intermediate);
    assert_eq!(hop.capped_assets, vec![junk]);
    assert_eq!(stats.outflows_cut, vec![(addr(2), Some(junk))]);
}

/// A hop whose outgoing transfers of the loot's asset before the theft are more than the
/// fan-out cap: the loader leaves them out (a super-node in that asset), and the hop, once
/// tainted in it, is reported capped, not shown holding the loot. Likewise when it sent more
/// transfers than the loader counts (`max_outflows_read`): cut in every asset. With a higher
/// cap the trace reaches the exchange. Before, the loader read the oldest transfers up to
/// the cap, none of them the move to the exchange, and the hop was shown as an intermediate
/// holding the funds, silently.
#[test]
fn a_hop_with_more_old_outflows_than_the_cap_is_reported_capped() {
    let (net, store, _dir) = stuffed(2, Asset::Native, 0);
    let (t, stats) = traced(
        &net,
        &store,
        Seed::address(addr(1)),
        10_000,
        &LoadOptions::default(),
    );
    assert_eq!(role_of(&t, 2), holdfast_trace::Role::Capped);
    assert_eq!(stats.outflows_cut, vec![(addr(2), Some(Asset::Native))]);
    assert!(t.targets.is_empty());
    let few = LoadOptions {
        max_outflows_read: 5_000,
        ..LoadOptions::default()
    };
    let (t, stats) = traced(&net, &store, Seed::address(addr(1)), 10_000, &few);
    assert_eq!(role_of(&t, 2), holdfast_trace::Role::Capped);
    assert_eq!(stats.outflows_cut, vec![(addr(2), None)]);
    let (t, stats) = traced(
        &net,
        &store,
        Seed::address(addr(1)),
        20_000,
        &LoadOptions::default(),
    );
    assert!(stats.outflows_cut.is_empty());
    assert_eq!(deposits(&t), vec![addr(7)]);
}

/// A seed address with more transfers before the theft than the fan-out cap: from the
/// theft's block (`--from-block`) its outflows are read from there, and the trace reaches
/// the exchange; from block 0 they are cut at the cap, which the load reports. Before, the
/// loader read the seed from block 0 whatever its seed said: the theft was never loaded.
#[test]
fn a_seed_address_is_read_from_its_block() {
    let (net, store, _dir) = stuffed(1, Asset::Native, 0);
    let load = LoadOptions::default();
    let (t, stats) = traced(
        &net,
        &store,
        Seed::address(addr(1)).from_block(1),
        10_000,
        &load,
    );
    assert!(stats.outflows_cut.is_empty());
    assert_eq!(deposits(&t), vec![addr(7)]);
    let (t, stats) = traced(&net, &store, Seed::address(addr(1)), 10_000, &load);
    assert_eq!(
        stats.outflows_cut,
        vec![(addr(1), Some(Asset::Native))],
        "reported"
    );
    assert!(t.targets.is_empty());
    // Nothing of the cut asset leaves the seed: the transfers read (the oldest) would show
    // their recipients holding taint none of them was followed from.
    assert!(
        t.addresses.iter().all(|r| r.address == addr(1)),
        "{:?}",
        t.addresses
    );
    // A read bound of 0 is refused, naming it.
    let none = LoadOptions {
        max_outflows_read: 0,
        ..load
    };
    let seeds = [Seed::address(addr(1))];
    let e = load_graph(
        &store,
        CHAIN,
        &seeds,
        &TraceOptions::with_policy(Policy::Poison),
        &none,
        &net.services,
        &mut |_| {},
    )
    .expect_err("refused");
    assert!(e.to_string().contains("max_outflows_read"), "{e}");
}
