//! Hand-computed graphs, one expectation per policy. Amounts are in wei; the arithmetic is in
//! the comments.

use holdfast_primitives::{Asset, Category};
use holdfast_trace::{
    NoServices, Policy, Role, Seed, ServiceKind, Trace, TraceOptions, policy::parse_asset, trace,
};

use crate::fixture::{Net, addr, token, u};

fn run(net: &Net, seeds: &[Seed], policy: Policy) -> Trace {
    run_with(net, seeds, TraceOptions::with_policy(policy))
}

fn run_with(net: &Net, seeds: &[Seed], options: TraceOptions) -> Trace {
    trace(&net.graph(), seeds, &options, &net.services).expect("trace")
}

fn native(t: &Trace, a: u8) -> u64 {
    t.received(&addr(a), &Asset::Native).to::<u64>()
}

/// Clayton's case (Anderson et al., "Bitcoin Redemption"): an account holding 3000 clean
/// receives 2000 stolen, then pays 4000 and 1000.
fn mixed_account() -> Net {
    let mut n = Net::new();
    n.send(1, 2, 3, 3000); // clean C → M
    n.send(2, 1, 3, 2000); // thief T → M
    n.send(3, 3, 4, 4000); // M → X
    n.send(4, 3, 5, 1000); // M → Y
    n
}

#[test]
fn mixed_account_under_every_policy() {
    let net = mixed_account();
    let seed = [Seed::address(addr(1))];
    // FIFO: M's queue is [clean 3000, stolen 2000]; X takes 3000 clean + 1000 stolen, Y the
    // remaining 1000 stolen.
    let t = run(&net, &seed, Policy::Fifo);
    assert_eq!((native(&t, 4), native(&t, 5)), (1000, 1000));
    // LIFO: X takes the 2000 stolen first (then 2000 clean); Y gets clean funds only.
    let t = run(&net, &seed, Policy::Lifo);
    assert_eq!((native(&t, 4), native(&t, 5)), (2000, 0));
    assert!(t.reached(&addr(5)).is_none());
    // Haircut: 2000/5000 of X's 4000 = 1600; M keeps 400 of 1000; Y takes all 1000 × 400/1000.
    let t = run(&net, &seed, Policy::Haircut);
    assert_eq!((native(&t, 4), native(&t, 5)), (1600, 400));
    // Poison: every transfer out of M after the theft is tainted in full.
    let t = run(&net, &seed, Policy::Poison);
    assert_eq!((native(&t, 4), native(&t, 5)), (4000, 1000));
    // TIHO: the taint leaves first: X's 4000 carries all 2000.
    let t = run(&net, &seed, Policy::Tiho);
    assert_eq!((native(&t, 4), native(&t, 5)), (2000, 0));
}

#[test]
fn haircut_cut_off_drops_small_shares() {
    let net = mixed_account();
    // X's share is 1600 of 4000 (40 %): below a 50 % cut-off it is dropped, not followed;
    // M keeps its 400, which is 40 % of Y's 1000, dropped too.
    let o = TraceOptions {
        haircut_cutoff_ppm: 500_000,
        ..TraceOptions::with_policy(Policy::Haircut)
    };
    let t = run_with(&net, &[Seed::address(addr(1))], o);
    assert!(t.reached(&addr(4)).is_none() && t.reached(&addr(5)).is_none());
    assert_eq!(t.stats.cut_off[0].amount, u(2000));
    // At 30 % both shares pass.
    let o = TraceOptions {
        haircut_cutoff_ppm: 300_000,
        ..TraceOptions::with_policy(Policy::Haircut)
    };
    let t = run_with(&net, &[Seed::address(addr(1))], o);
    assert_eq!((native(&t, 4), native(&t, 5)), (1600, 400));
}

#[test]
fn tiho_sends_taint_to_the_highest_output_of_a_transaction() {
    for (stolen, x, y) in [(2000, 2000, 0), (4500, 4000, 500)] {
        let mut n = Net::new();
        n.send(1, 2, 3, 3000);
        n.send(1, 1, 3, stolen);
        n.batch(
            2,
            &[(3, 5, Asset::Native, 1000), (3, 4, Asset::Native, 4000)],
        );
        let t = run(&n, &[Seed::address(addr(1))], Policy::Tiho);
        assert_eq!((native(&t, 4), native(&t, 5)), (x, y), "stolen {stolen}");
    }
}

#[test]
fn fees_take_their_share() {
    let mut n = Net::new();
    n.send(0, 2, 3, 5000); // A holds 5000 clean
    n.send(1, 1, 3, 10_000); // 10000 stolen
    n.batch(2, &[(3, 4, Asset::Native, 9990), (3, 9, Asset::Native, 10)]); // to B, fee to F
    let seed = [Seed::address(addr(1))];
    // FIFO: B takes the 5000 clean and 4990 stolen; the fee 10 stolen; A keeps 5000.
    let t = run(&n, &seed, Policy::Fifo);
    assert_eq!((native(&t, 4), native(&t, 9)), (4990, 10));
    assert_eq!(t.reached(&addr(3)).expect("A").held[0].amount, u(5000));
    // Haircut: B 9990 × 10000/15000 = 6660; A then holds 3340 of 5010; fee 10 × 3340/5010
    // = 6 (rounded down); A keeps 3334. Nothing is lost: 6660 + 6 + 3334 = 10000.
    let t = run(&n, &seed, Policy::Haircut);
    assert_eq!((native(&t, 4), native(&t, 9)), (6660, 6));
    assert_eq!(t.reached(&addr(3)).expect("A").held[0].amount, u(3334));
}

#[test]
fn several_seeds_are_kept_apart() {
    let mut n = Net::new();
    n.send(1, 1, 3, 1000); // theft 0
    n.send(2, 6, 3, 3000); // theft 1
    n.send(3, 3, 4, 2000);
    let seeds = [Seed::address(addr(1)), Seed::address(addr(6))];
    let per_source = |t: &Trace| {
        t.reached(&addr(4))
            .expect("X")
            .received
            .iter()
            .map(|a| (a.source, a.amount.to::<u64>()))
            .collect::<Vec<_>>()
    };
    // FIFO: theft 0's 1000 first, then 1000 of theft 1.
    assert_eq!(
        per_source(&run(&n, &seeds, Policy::Fifo)),
        vec![(0, 1000), (1, 1000)]
    );
    // Haircut: half of M's balance leaves: 500 and 1500.
    assert_eq!(
        per_source(&run(&n, &seeds, Policy::Haircut)),
        vec![(0, 500), (1, 1500)]
    );
    // LIFO: theft 1's 3000 is newest: 2000 of it.
    assert_eq!(per_source(&run(&n, &seeds, Policy::Lifo)), vec![(1, 2000)]);
}

#[test]
fn cycles_end_and_keep_their_amounts() {
    let mut n = Net::new();
    n.send(1, 1, 3, 1000); // T → A
    n.send(2, 3, 4, 1000); // A → B
    n.send(3, 4, 3, 1000); // B → A
    n.send(4, 3, 5, 1000); // A → C
    n.send(5, 5, 3, 1000); // C → A again
    n.send(6, 3, 6, 1000); // A → D
    for p in Policy::ALL {
        let t = run(&n, &[Seed::address(addr(1))], p);
        assert_eq!(native(&t, 6), 1000, "{p}");
        assert_eq!(t.reached(&addr(3)).expect("A").hops, 1, "{p}");
        assert_eq!(t.reached(&addr(5)).expect("C").hops, 2, "{p}");
    }
}

#[test]
fn taint_only_flows_forward_in_time() {
    let mut n = Net::new();
    n.send(1, 2, 3, 1000);
    n.send(2, 3, 4, 1000); // before the theft reaches M
    n.send(3, 1, 3, 500);
    for p in Policy::ALL {
        let t = run(&n, &[Seed::address(addr(1))], p);
        assert!(t.reached(&addr(4)).is_none(), "{p}");
    }
}

#[test]
fn services_stop_the_trace_with_evidence() {
    let mut n = Net::new();
    let h1 = n.send(1, 1, 3, 1000);
    let h2 = n.send(2, 3, 4, 600);
    let h3 = n.send(3, 4, 7, 600);
    n.send(4, 7, 8, 600); // the exchange pays someone: not followed
    n.exchange(7, "Binance");
    for p in Policy::ALL {
        let t = run(&n, &[Seed::address(addr(1))], p);
        assert_eq!(t.targets.len(), 1, "{p}");
        let target = &t.targets[0];
        assert_eq!(target.deposit, addr(7));
        assert_eq!(target.service.name, "Binance");
        assert_eq!(target.amounts[0].amount, u(600));
        assert_eq!(target.first_tx, h3);
        let path: Vec<_> = target.path.iter().map(|h| h.tx_hash).collect();
        assert_eq!(path, vec![h1, h2, h3], "{p}");
        assert_eq!(target.path[0].block, 1);
        assert!(t.reached(&addr(8)).is_none(), "{p}");
        assert_eq!(t.reached(&addr(7)).expect("E").role, Role::Service);
    }
}

#[test]
fn mixers_and_bridges_are_marked_and_followed_by_option() {
    let mut n = Net::new();
    n.send(1, 1, 3, 1000);
    n.send(2, 3, 4, 1000);
    n.send(3, 1, 5, 500);
    n.send(4, 5, 6, 500);
    n.service(3, ServiceKind::Mixer, Category::Mixer, "Tornado Cash");
    n.service(5, ServiceKind::Bridge, Category::Bridge, "Ronin Bridge");
    let seed = [Seed::address(addr(1))];
    let t = run(&n, &seed, Policy::Haircut);
    assert_eq!(t.mixers.len(), 1);
    assert_eq!(t.exits.len(), 1);
    assert_eq!(t.exits[0].amounts[0].amount, u(500));
    assert!(t.reached(&addr(4)).is_none() && t.reached(&addr(6)).is_none());
    let mut o = TraceOptions::with_policy(Policy::Haircut);
    o.through_mixers = true;
    o.through_bridges = true;
    let t = run_with(&n, &seed, o);
    assert_eq!((native(&t, 4), native(&t, 6)), (1000, 500));
}

#[test]
fn every_tainted_transfer_into_a_bridge_is_an_arrival_and_the_rest_are_counted() {
    // The thief (1) pays the bridge (5) in three transactions: three exits, each with the
    // evidence path back to the seed; the first arrival is also the exit's path.
    let mut n = Net::new();
    n.send(1, 1, 3, 900);
    for b in 2..5u64 {
        n.send(b, 3, 5, 100);
    }
    n.service(5, ServiceKind::Bridge, Category::Bridge, "THORChain Router");
    let t = run(&n, &[Seed::address(addr(1))], Policy::Haircut);
    let exit = &t.exits[0];
    assert_eq!(exit.arrivals.len(), 3);
    assert!(
        exit.arrivals
            .iter()
            .all(|p| p.len() == 2 && p[0].to == addr(3) && p[1].to == addr(5))
    );
    assert_eq!(exit.arrivals[0], exit.path);
    assert_eq!(t.stats.arrivals_not_listed, 0);
    // Beyond MAX_ARRIVALS per bridge: listed up to it, the rest counted (not silently lost).
    let mut n = Net::new();
    let over = holdfast_trace::MAX_ARRIVALS as u64 + 7;
    n.send(1, 1, 3, 1_000_000);
    for b in 0..over {
        n.send(2 + b, 3, 5, 1);
    }
    n.service(5, ServiceKind::Bridge, Category::Bridge, "THORChain Router");
    // (One sender only reaches the bridge that often above the default fan-out cap.)
    let mut o = TraceOptions::with_policy(Policy::Poison);
    o.fan_out_cap = usize::try_from(over).expect("fits");
    let t = run_with(&n, &[Seed::address(addr(1))], o);
    assert_eq!(t.exits[0].arrivals.len(), holdfast_trace::MAX_ARRIVALS);
    assert_eq!(t.stats.arrivals_not_listed, 7);
}

#[test]
fn super_nodes_are_capped_and_reported() {
    let mut n = Net::new();
    n.send(1, 1, 3, 1000);
    for i in 0..20u8 {
        n.send(2 + u64::from(i), 3, 40 + i, 10);
    }
    let mut o = TraceOptions::with_policy(Policy::Poison);
    o.fan_out_cap = 5;
    let t = run_with(&n, &[Seed::address(addr(1))], o);
    let h = t.reached(&addr(3)).expect("hub");
    assert_eq!(h.role, Role::Capped);
    assert_eq!(h.out_degree, 20);
    assert_eq!(t.addresses.len(), 2);
}

/// The cap is per asset: an address that sent more than the cap of a worthless token (after
/// the taint arrived) is not a super-node for the loot, another asset, which is followed; a
/// hub of the loot's own asset still is.
#[test]
fn super_nodes_are_per_asset() {
    let junk = crate::fixture::token(9);
    let mut n = Net::new();
    n.send(1, 1, 3, 1000);
    for i in 0..20u8 {
        n.send_asset(2, 3, 40 + i, junk, 1);
    }
    n.send(3, 3, 7, 1000);
    n.exchange(7, "Binance");
    let mut o = TraceOptions::with_policy(Policy::Poison);
    o.fan_out_cap = 5;
    let t = run_with(&n, &[Seed::address(addr(1))], o);
    assert_eq!(t.reached(&addr(3)).expect("hop").role, Role::Intermediate);
    assert_eq!(
        t.targets.iter().map(|t| t.deposit).collect::<Vec<_>>(),
        vec![addr(7)]
    );
}

/// An address that is a super-node for one tainted asset (a worthless token the seed address
/// also "sent" it: fake events need no key) still passes the loot, another asset, on: the
/// token's taint stays there (listed in `capped_assets`), the loot reaches the exchange. An
/// address capped for every asset its taint came in is reported `capped`.
#[test]
fn a_super_node_for_one_tainted_asset_passes_the_others_on() {
    let junk = crate::fixture::token(9);
    let mut n = Net::new();
    n.send_asset(1, 1, 3, junk, 1);
    n.send(1, 1, 3, 1000);
    for i in 0..20u8 {
        n.send_asset(2, 3, 40 + i, junk, 1);
    }
    n.send(3, 3, 7, 1000);
    n.exchange(7, "Binance");
    let mut o = TraceOptions::with_policy(Policy::Poison);
    o.fan_out_cap = 5;
    let t = run_with(&n, &[Seed::address(addr(1))], o.clone());
    let hop = t.reached(&addr(3)).expect("hop");
    assert_eq!(hop.role, Role::Intermediate);
    assert_eq!(hop.capped_assets, vec![junk]);
    assert_eq!(
        t.targets.iter().map(|t| t.deposit).collect::<Vec<_>>(),
        vec![addr(7)]
    );
    assert!(
        t.reached(&addr(40)).is_none(),
        "the token's taint is not followed"
    );
    // Seeded with the token only: every asset its taint came in is capped there.
    let t = run_with(&n, &[Seed::address(addr(1)).with_asset(junk)], o.clone());
    assert_eq!(t.reached(&addr(3)).expect("hop").role, Role::Capped);
    assert!(t.targets.is_empty());
    // The token's taint arriving after the loot's (a later asset's first arrival).
    let mut n = Net::new();
    n.send(1, 1, 3, 1000);
    n.send_asset(2, 1, 3, junk, 1);
    for i in 0..20u8 {
        n.send_asset(3, 3, 40 + i, junk, 1);
    }
    n.send(4, 3, 7, 1000);
    n.exchange(7, "Binance");
    let t = run_with(&n, &[Seed::address(addr(1))], o);
    let hop = t.reached(&addr(3)).expect("hop");
    assert_eq!(
        (hop.role, hop.capped_assets.clone()),
        (Role::Intermediate, vec![junk])
    );
    assert_eq!(
        t.targets.iter().map(|t| t.deposit).collect::<Vec<_>>(),
        vec![addr(7)]
    );
}

#[test]
fn hop_limit_bounds_the_reach() {
    let mut n = Net::new();
    n.send(1, 1, 3, 1000);
    n.send(2, 3, 4, 1000);
    n.send(3, 4, 5, 1000);
    let mut o = TraceOptions::with_policy(Policy::Fifo);
    o.max_hops = 2;
    let t = run_with(&n, &[Seed::address(addr(1))], o);
    assert_eq!(t.reached(&addr(4)).expect("B").role, Role::HopLimit);
    assert!(t.reached(&addr(5)).is_none());
}

#[test]
fn decoys_are_never_tainted() {
    let mut n = Net::new();
    n.send(1, 1, 3, 1000);
    n.send(2, 1, 9, 0); // zero-value transfer to a look-alike
    n.send(3, 0x77, 3, 1); // dust from an unrelated sender
    n.send_asset(4, 1, 10, token(7), 1_000_000); // a fake token "from" the thief
    n.send(5, 3, 4, 1001);
    for p in Policy::ALL {
        let t = run(&n, &[Seed::address(addr(1)).with_asset(Asset::Native)], p);
        assert!(t.reached(&addr(9)).is_none(), "{p}");
        assert!(t.reached(&addr(10)).is_none(), "{p}");
        assert_eq!(native(&t, 3), 1000, "{p}");
        assert!(native(&t, 4) <= 1001, "{p}");
    }
}

#[test]
fn a_theft_transaction_taints_exactly_what_it_moved() {
    let mut n = Net::new();
    n.send(1, 2, 1, 7000); // the thief's own clean funds
    let theft = n.send(2, 20, 1, 5000); // victim → thief
    n.send(3, 1, 7, 12_000);
    n.exchange(7, "Kraken");
    let t = run(&n, &[Seed::tx(theft)], Policy::Haircut);
    // Haircut at the thief: 5000 of 12000 → 5000.
    assert_eq!(
        t.target(&addr(7)).expect("Kraken").amounts[0].amount,
        u(5000)
    );
    let t = run(&n, &[Seed::tx(theft).with_amount(u(3000))], Policy::Fifo);
    // FIFO: 7000 clean first, then the 3000 seeded.
    assert_eq!(
        t.target(&addr(7)).expect("Kraken").amounts[0].amount,
        u(3000)
    );
    assert_eq!(t.seeded[0].amount, u(3000));
}

#[test]
fn an_address_seed_starts_at_its_block_with_its_amount() {
    let mut n = Net::new();
    n.send(1, 1, 3, 1000); // before the start block: clean
    n.send(5, 1, 4, 1000);
    n.send(6, 1, 5, 1000);
    let s = Seed::address(addr(1)).from_block(5).with_amount(u(1500));
    let t = run(&n, &[s], Policy::Fifo);
    assert_eq!(
        (native(&t, 3), native(&t, 4), native(&t, 5)),
        (0, 1000, 500)
    );
}

#[test]
fn taint_crosses_swaps_wraps_and_unwraps() {
    let weth = Asset::Erc20 { token: addr(0x57) };
    let mut n = Net::new();
    // Pool liquidity (clean) at the pair P = 0x50.
    n.send_asset(0, 0x60, 0x50, token(1), 50_000);
    n.send_asset(0, 0x60, 0x50, token(2), 100_000);
    n.send_asset(1, 1, 3, token(1), 1000);
    n.swap(2, 3, (token(1), 1000), (token(2), 1960));
    n.send_asset(3, 3, 7, token(2), 1960);
    // Wrap then unwrap at WETH = 0x57.
    n.send(4, 1, 4, 800);
    n.wrap_pass_unwrap(weth, 4, 5, 800);
    n.send(8, 5, 7, 800);
    n.exchange(7, "OKX");
    for p in [Policy::Fifo, Policy::Haircut, Policy::Lifo, Policy::Tiho] {
        let t = run(&n, &[Seed::address(addr(1))], p);
        let e = t.target(&addr(7)).expect("OKX");
        let got: Vec<(Asset, u64)> = e
            .amounts
            .iter()
            .map(|a| (a.asset, a.amount.to::<u64>()))
            .collect();
        assert_eq!(got, vec![(Asset::Native, 800), (token(2), 1960)], "{p}");
        // The pair and the WETH contract are venues, not launderers.
        assert!(t.reached(&addr(0x50)).is_none(), "{p}");
        assert!(t.reached(&addr(0x57)).is_none(), "{p}");
        assert_eq!(t.received(&addr(5), &weth), u(800), "{p}");
    }
}

#[test]
fn bad_input_names_field_value_and_expectation() {
    let e = Seed::parse("0x1234").expect_err("short").to_string();
    assert!(
        e.contains("seed") && e.contains("0x1234") && e.contains("expected"),
        "{e}"
    );
    let e = "median".parse::<Policy>().expect_err("policy").to_string();
    assert!(
        e.contains("policy") && e.contains("median") && e.contains("haircut"),
        "{e}"
    );
    let e = parse_asset("dogecoin").expect_err("asset").to_string();
    assert!(e.contains("asset") && e.contains("dogecoin"), "{e}");
    let o = TraceOptions {
        max_hops: 0,
        ..TraceOptions::default()
    };
    let n = mixed_account();
    let e = trace(&n.graph(), &[Seed::address(addr(1))], &o, &NoServices)
        .expect_err("hops")
        .to_string();
    assert!(e.contains("max_hops") && e.contains("1 to 64"), "{e}");
    let e = trace(
        &n.graph(),
        &[Seed::address(addr(0x99))],
        &TraceOptions::default(),
        &NoServices,
    )
    .expect_err("unknown")
    .to_string();
    assert!(
        e.contains("seed") && e.contains("not in the transfers"),
        "{e}"
    );
}
