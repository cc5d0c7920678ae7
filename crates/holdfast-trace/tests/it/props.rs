//! Properties on random graphs: taint is never created from nothing, never more leaves an
//! address than entered it, haircut without cut-off conserves it, poison reaches the most.

use std::collections::{BTreeMap, BTreeSet};

use alloy_primitives::U256;
use holdfast_primitives::Asset;
use holdfast_trace::{Policy, Role, Seed, Trace, TraceOptions, trace};
use proptest::prelude::*;

use crate::fixture::{Net, addr};

/// (block, from, to, amount) with a few addresses, so paths and cycles are common.
fn net() -> impl Strategy<Value = Vec<(u64, u8, u8, u64)>> {
    prop::collection::vec((0u64..30, 1u8..9, 1u8..9, 0u64..2_000), 1..60)
}

fn build(legs: &[(u64, u8, u8, u64)]) -> Net {
    let mut n = Net::new();
    for &(b, f, t, a) in legs {
        n.send(b, f, t, a);
    }
    n
}

fn run(n: &Net, policy: Policy, seeds: &[Seed]) -> Option<Trace> {
    let mut o = TraceOptions::with_policy(policy);
    o.max_hops = 64;
    trace(&n.graph(), seeds, &o, &n.services).ok()
}

fn sum(v: &[holdfast_trace::Amount]) -> BTreeMap<(u16, Asset), U256> {
    let mut m: BTreeMap<(u16, Asset), U256> = BTreeMap::new();
    for a in v {
        *m.entry((a.source, a.asset)).or_default() += a.amount;
    }
    m
}

fn seeds() -> Vec<Seed> {
    vec![
        Seed::address(addr(1)),
        Seed::address(addr(2)).from_block(10),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn conserving_policies_move_only_what_entered(legs in net()) {
        let n = build(&legs);
        for p in [Policy::Haircut, Policy::Fifo, Policy::Lifo, Policy::Tiho] {
            let Some(t) = run(&n, p, &seeds()) else { continue };
            let mut accounted: BTreeMap<(u16, Asset), U256> = BTreeMap::new();
            for r in &t.addresses {
                let received = sum(&r.received);
                let held = sum(&r.held);
                // Never more held (or forwarded: received − held ≥ 0) than received, per
                // seed and asset; never more received than the address was sent at all.
                for (k, h) in &held {
                    prop_assert!(received.get(k).is_some_and(|x| h <= x), "{p} {}: held {h} > received", r.address);
                }
                let inflow: U256 = legs.iter().filter(|l| addr(l.2) == r.address).map(|l| U256::from(l.3)).sum();
                let tainted_in: U256 = received.values().copied().sum();
                if r.role != Role::Seed {
                    prop_assert!(tainted_in <= inflow, "{p} {}: {tainted_in} tainted of {inflow} received", r.address);
                }
                for (k, h) in held {
                    *accounted.entry(k).or_default() += h;
                }
            }
            for (k, b) in sum(&t.stats.beyond_hops) {
                *accounted.entry(k).or_default() += b;
            }
            // Everything seeded is somewhere: held, at a stop, or beyond the hop limit.
            // Haircut without cut-off conserves exactly (rounding leaves dust where it was).
            prop_assert_eq!(sum(&t.seeded), accounted, "{}", p);
        }
    }

    #[test]
    fn poison_reaches_a_superset(legs in net()) {
        let n = build(&legs);
        let Some(poison) = run(&n, Policy::Poison, &seeds()) else { return Ok(()) };
        let reach = |t: &Trace| t.addresses.iter().map(|a| a.address).collect::<BTreeSet<_>>();
        let all = reach(&poison);
        for p in [Policy::Haircut, Policy::Fifo, Policy::Lifo, Policy::Tiho] {
            let t = run(&n, p, &seeds()).expect("poison ran");
            prop_assert!(reach(&t).is_subset(&all), "{} reached more than poison", p);
        }
    }

    #[test]
    fn traces_are_deterministic(legs in net()) {
        let n = build(&legs);
        for p in Policy::ALL {
            prop_assert_eq!(run(&n, p, &seeds()), run(&n, p, &seeds()));
        }
    }
}

/// Random graphs with two tokens, swaps, wraps and unwraps, tx and address seeds and tight
/// bounds: the engine never fails or panics on them, and holds no more than it received.
/// (block, from, to, asset, amount).
type Leg = (u64, u8, u8, u8, u64);
/// (transfer it belongs to, kind, amount in, amount out).
type Conv = (usize, u8, u64, u64);

fn rich() -> impl Strategy<Value = (Vec<Leg>, Vec<Conv>)> {
    (
        prop::collection::vec((0u64..20, 1u8..8, 1u8..8, 0u8..3, 0u64..1_000), 1..40),
        prop::collection::vec((0usize..40, 0u8..3, 1u64..1_000, 0u64..1_000), 0..6),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn conversions_and_bounds_never_break_the_engine((legs, convs) in rich(), hops in 1u32..5, cap in 1usize..5, cutoff in 0u32..500_000) {
        use holdfast_primitives::ConversionKind;
        let asset = |k: u8| match k { 0 => Asset::Native, 1 => crate::fixture::token(1), _ => crate::fixture::token(2) };
        let mut n = Net::new();
        let mut txs = vec![(n.send(0, 1, 2, 500), 0, 1, 2, 0)];
        for &(b, f, t, k, a) in &legs {
            txs.push((n.send_asset(b, f, t, asset(k), a), b, f, t, k));
        }
        for &(i, kind, ain, aout) in &convs {
            let Some(&(tx, b, f, t, k)) = txs.get(i % txs.len()) else { continue };
            let kind = [ConversionKind::Wrap, ConversionKind::Unwrap, ConversionKind::UniswapV2Swap][kind as usize % 3];
            n.conversion(tx, b, kind, t, f, f, (asset(k), ain), (asset((k + 1) % 3), aout));
        }
        let g = n.graph();
        let seeds = [Seed::address(addr(1)), Seed::tx(txs[0].0)];
        for p in Policy::ALL {
            let o = TraceOptions { max_hops: hops, fan_out_cap: cap, haircut_cutoff_ppm: cutoff, ..TraceOptions::with_policy(p) };
            let t = trace(&g, &seeds, &o, &n.services);
            prop_assert!(t.is_ok(), "{p}: {:?}", t.err());
            let t = t.expect("ok");
            for r in &t.addresses {
                if p == Policy::Poison { continue; }
                let received = sum(&r.received);
                for (k, h) in sum(&r.held) {
                    prop_assert!(received.get(&k).is_some_and(|x| h <= *x), "{p} {}: held {h}", r.address);
                }
            }
        }
    }
}
