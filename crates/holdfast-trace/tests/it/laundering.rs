//! End to end on anvil: the testkit's Lazarus-style laundering is ingested from the node
//! (call traces, receipts, conversions) into the embedded store, loaded around the seed and
//! traced. Every exchange deposit is found with the amounts the scenario computes under FIFO
//! and haircut; the decoys are never tainted.

use std::sync::Arc;
use std::time::Duration;

use holdfast_chain::{ChainSource, SourceConfig};
use holdfast_ingest::{IngestOptions, Ingestor, Quiet};
use holdfast_intel::{IndexBuilder, LabelRecord};
use holdfast_primitives::{Asset, Category, Confidence};
use holdfast_store::{EmbeddedStore, Store};
use holdfast_testkit::Anvil;
use holdfast_testkit::laundering::{Laundering, milli};
use holdfast_trace::{LoadOptions, Policy, Role, Seed, TraceOptions, load_graph, trace};

#[tokio::test(flavor = "multi_thread")]
async fn laundering_on_anvil_reaches_every_exchange_deposit() {
    let node = Anvil::spawn()
        .await
        .expect("anvil (scripts/install-node-tools)");
    let l = Laundering::run(&node).await.expect("scenario");
    let mut config = SourceConfig::new(node.http_url());
    config.poll_interval = Duration::from_millis(100);
    let src = Arc::new(ChainSource::connect(config).await.expect("connects"));
    let chain = src.chain_id();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(EmbeddedStore::open(&dir.path().join("t")).expect("open"));
    let (_stop, rx) = tokio::sync::watch::channel(false);
    let summary = Ingestor::new(src, store.clone(), IngestOptions::default())
        .run(&Quiet, rx)
        .await
        .expect("ingests");
    assert_eq!(summary.head, Some(l.last_block));

    let mut b = IndexBuilder::with_capacity(4);
    for (name, a) in &l.deposits {
        let mut r = LabelRecord::new(
            a.to_checksum(None),
            "test",
            Category::Exchange,
            Confidence(80),
        );
        r.name = Some((*name).to_owned());
        b.add(&r).expect("label");
    }
    let intel = b.finish();

    let by_address = Seed::address(l.thief).with_asset(Asset::Native);
    let by_tx = Seed::tx(l.theft).with_asset(Asset::Native);
    for policy in [Policy::Fifo, Policy::Haircut] {
        let expected = l.expected(policy.name()).expect("expected amounts");
        for seed in [&by_address, &by_tx] {
            let seeds = [seed.clone()];
            let options = TraceOptions::with_policy(policy);
            let s = store.clone();
            let (graph, stats) = tokio::task::block_in_place(|| {
                load_graph(
                    s.as_ref() as &dyn Store,
                    chain,
                    &seeds,
                    &options,
                    &LoadOptions::default(),
                    &intel,
                    &mut |_| {},
                )
            })
            .expect("load");
            assert!(!stats.truncated);
            let t = trace(&graph, &seeds, &options, &intel).expect("trace");
            // The theft moved 100 ETH; the thief sent 99 of it on (the rest paid its gas).
            let seeded = if seed == &by_tx {
                l.theft_amount
            } else {
                milli(99_000)
            };
            assert_eq!(t.seeded[0].amount, seeded, "{policy}");
            for (name, want) in &expected {
                let deposit = l.deposits[name];
                let target = t.target(&deposit).unwrap_or_else(|| {
                    panic!("{policy}: {name} deposit not reached: {:#?}", t.targets)
                });
                assert_eq!(target.service.name, *name);
                let got: Vec<(Asset, _)> =
                    target.amounts.iter().map(|a| (a.asset, a.amount)).collect();
                assert_eq!(&got, want, "{policy} {name}");
                // The evidence path starts at the thief's outflow (or the theft itself).
                let first = target.path.first().expect("path");
                assert!(
                    first.from == l.thief || first.tx_hash == l.theft,
                    "{policy} {name}: {first:?}"
                );
                assert_eq!(target.path.last().map(|h| h.to), Some(deposit));
            }
            assert_eq!(t.targets.len(), 4, "{policy}: {:#?}", t.targets);
            // Decoys: the look-alike, the fake token, the dust.
            assert!(
                t.reached(&l.look_alike).is_none(),
                "{policy}: look-alike tainted"
            );
            let fake = Asset::Erc20 {
                token: l.fake_token,
            };
            assert!(
                t.addresses
                    .iter()
                    .all(|a| a.received.iter().all(|x| x.asset != fake)),
                "{policy}"
            );
            assert!(
                t.addresses.iter().all(|a| a.role != Role::Capped),
                "{policy}"
            );
            let p3 = holdfast_testkit::laundering::fresh("peel 3");
            assert_eq!(
                t.received(&p3, &Asset::Native),
                milli(24_700),
                "{policy}: dust counted"
            );
            // The venues pass taint on and keep none.
            for venue in [l.weth, l.uniswap.pair_for(l.weth, l.token)] {
                assert!(
                    t.reached(&venue).is_none_or(|r| r.held.is_empty()),
                    "{policy}: {venue} holds taint"
                );
            }
        }
    }
}
