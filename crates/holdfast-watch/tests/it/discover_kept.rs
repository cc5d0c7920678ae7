//! Issue 14: the search for the Safes `safes_owned_by` owners already hold ran over the
//! whole range at every start. What it found is now kept in the watch store: the next
//! search reads only the blocks after it (less a few searched again), asks the kept Safes
//! `getOwners()` again (dropping those the owner left), and runs whole when the node's block
//! at the kept search's end differs (a deep reorg, another chain).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use alloy_primitives::{Address, B256, U256};
use holdfast_chain::{ChainSource, SourceConfig};
use holdfast_store::EmbeddedStore;
use holdfast_store::watch::{EmbeddedWatchStore, SafeSearch, WatchStore};
use holdfast_testkit::safe::{self, Operation, SafeInfra, SafeVersion};
use holdfast_testkit::{Anvil, dev_account};
use holdfast_watch::discover::{safes_owned_by, safes_owned_by_since};
use holdfast_watch::{ChainOptions, DeliveryConfig, Responder, Runner, RunnerDeps};

use crate::discover::{Intel, Safes, calldata, num, safes, watch_file};

/// After the first search: X leaves b, X is added to e, and X sets up a new Safe f; then
/// `blocks` empty blocks. Returns f.
async fn changes(node: &Anvil, s: &Safes, x: Address, y: Address, blocks: u64) -> Address {
    // b's owners list: sentinel → Y → X; X's predecessor is Y.
    safe::exec(
        node,
        s.b,
        &[y],
        s.b,
        U256::ZERO,
        calldata(
            "removeOwner(address,address,uint256)",
            &[y.into_word().0, x.into_word().0, num(1)],
        ),
        Operation::Call,
    )
    .await
    .expect("X removed from b");
    safe::exec(
        node,
        s.e,
        &[y],
        s.e,
        U256::ZERO,
        calldata(
            "addOwnerWithThreshold(address,uint256)",
            &[x.into_word().0, num(1)],
        ),
        Operation::Call,
    )
    .await
    .expect("X added to e");
    let infra = SafeInfra::deploy(node, SafeVersion::V1_4_1, dev_account(0))
        .await
        .expect("1.4.1");
    let f = infra
        .create_safe(node, dev_account(0), &[x], 1)
        .await
        .expect("f");
    node.mine(blocks).await.expect("mine");
    f
}

fn sorted(v: impl IntoIterator<Item = Address>) -> Vec<Address> {
    v.into_iter().collect::<BTreeSet<_>>().into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_search_resumes_after_its_end_and_asks_its_safes_again() {
    let node = Anvil::spawn().await.expect("anvil");
    let (x, y) = (dev_account(1), dev_account(2));
    let s = safes(&node, x, y).await;
    node.mine(20).await.expect("mine");
    let source = ChainSource::connect(SourceConfig::new(node.http_url()))
        .await
        .expect("node");
    let owners = BTreeSet::from([x]);
    let head1 = node.block_number().await.expect("head");
    let first = safes_owned_by(&source, &owners, 0, head1, &|_| {})
        .await
        .expect("search");
    assert_eq!(sorted(first.safes.keys().copied()), sorted([s.a, s.b, s.c]));
    let kept = SafeSearch {
        chain_id: 31337,
        owners: vec![x],
        from: 0,
        to: head1,
        to_hash: source.block_ref(head1).await.expect("block").hash,
        safes: sorted(first.safes.keys().copied()),
    };
    let f = changes(&node, &s, x, y, 5).await;
    let head2 = node.block_number().await.expect("head");

    let read = AtomicU64::new(0);
    let count = |n: u64| {
        read.fetch_add(n, Ordering::Relaxed);
    };
    let next = safes_owned_by_since(&source, &owners, (0, head2), Some(&kept), 2, &count)
        .await
        .expect("search");
    assert_eq!(
        sorted(next.safes.keys().copied()),
        sorted([s.a, s.c, s.e, f]),
        "b: X left it; e: X added; f: new"
    );
    assert_eq!((next.from, next.to, next.kept), (0, head2, 3));
    assert_eq!(
        next.searched_from,
        head1 - 1,
        "the kept end, less 2 searched again"
    );
    assert_eq!(
        read.load(Ordering::Relaxed),
        head2 - head1 + 2,
        "only the blocks after the kept search (and 2 again) are read"
    );

    // The kept search is trusted for its range: a Safe it lacks, made before its end, is
    // not looked for again…
    let lacking = SafeSearch {
        safes: vec![s.c],
        ..kept.clone()
    };
    let trusted = safes_owned_by_since(&source, &owners, (0, head2), Some(&lacking), 2, &|_| {})
        .await
        .expect("search");
    assert_eq!(sorted(trusted.safes.keys().copied()), sorted([s.c, s.e, f]));
    // …unless the node's block at its end is another (a reorg below it, another chain with
    // the same id): then everything is searched.
    for other in [
        SafeSearch {
            to_hash: B256::repeat_byte(7),
            ..lacking.clone()
        },
        // Another `safes_from_block`, or an end past the head, is not resumed either.
        SafeSearch {
            from: 1,
            ..lacking.clone()
        },
        SafeSearch {
            to: head2 + 1,
            ..lacking.clone()
        },
    ] {
        let whole = safes_owned_by_since(&source, &owners, (0, head2), Some(&other), 2, &|_| {})
            .await
            .expect("search");
        assert_eq!(whole.searched_from, 0, "{other:?}");
        assert_eq!(
            sorted(whole.safes.keys().copied()),
            sorted([s.a, s.c, s.e, f])
        );
    }
}

fn deps(watch: Arc<dyn WatchStore>, dir: &std::path::Path) -> RunnerDeps {
    RunnerDeps {
        transfers: Arc::new(EmbeddedStore::open(&dir.join("t")).expect("store")),
        watch,
        intel: Arc::new(Intel(Arc::new(
            holdfast_intel::load(None).expect("intel").index,
        ))),
        responder: Responder {
            freezer: None,
            labeler: None,
            notify_dir: None,
        },
        owner: "test".into(),
        on_alert: None,
        on_block: None,
        env: Box::new(|_| None),
        chain_options: Some(ChainOptions {
            max_reorg_depth: 2,
            ..ChainOptions::default()
        }),
        delivery: DeliveryConfig::default(),
    }
}

/// The watch keeps each start's search in its store and resumes from it at the next start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_resumes_the_safe_search_the_last_start_kept() {
    let node = Anvil::spawn().await.expect("anvil");
    let (x, y) = (dev_account(1), dev_account(2));
    let s = safes(&node, x, y).await;
    node.mine(20).await.expect("mine");
    let dir = tempfile::tempdir().expect("tempdir");
    let watch: Arc<dyn WatchStore> =
        Arc::new(EmbeddedWatchStore::open(&dir.path().join("w")).expect("watch"));
    let text = watch_file(&node.ws_url(), x, 1, true);
    let config = holdfast_watch::config::validate("watch.toml", &text, dir.path())
        .expect("valid watch file")
        .config;
    let head1 = node.block_number().await.expect("head");
    let runner = Runner::start(&config, deps(watch.clone(), dir.path()))
        .await
        .expect("starts");
    drop(runner);
    let kept = watch
        .safe_search(31337, &[x])
        .expect("read")
        .expect("the search is kept");
    assert_eq!((kept.from, kept.to), (0, head1));
    assert_eq!(kept.safes, sorted([s.a, s.b, s.c]));

    let f = changes(&node, &s, x, y, 5).await;
    let head2 = node.block_number().await.expect("head");
    // What the next start finds comes from the kept search: a Safe taken out of it, made
    // long before its end, is not searched for again (the old blocks are not read).
    watch
        .put_safe_search(&SafeSearch {
            safes: sorted([s.b, s.c]),
            ..kept
        })
        .expect("put");
    let runner = Runner::start(&config, deps(watch.clone(), dir.path()))
        .await
        .expect("starts");
    drop(runner);
    let next = watch.safe_search(31337, &[x]).expect("read").expect("kept");
    assert_eq!((next.from, next.to), (0, head2));
    assert_eq!(
        next.safes,
        sorted([s.c, s.e, f]),
        "b left, e and f joined, a not searched for again"
    );
}
