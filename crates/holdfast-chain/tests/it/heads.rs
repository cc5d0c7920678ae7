//! `ChainSource::subscribe_heads` against a real anvil: every mined block announced over
//! WebSocket, found by polling over HTTP, jumps yielded as jumps.

use std::time::{Duration, Instant};

use holdfast_chain::TraceMode;
use holdfast_testkit::Anvil;

use crate::detail::source;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heads_over_websocket_arrive_for_each_mined_block() {
    let node = Anvil::spawn().await.expect("anvil");
    node.mine(2).await.expect("mine");
    let src = source(&node.ws_url(), TraceMode::Geth).await;
    let mut heads = src.subscribe_heads();
    let first = heads.next().await.expect("current head");
    assert_eq!(first.number, 2);
    // Waiting cut short (as `select!` does) loses nothing.
    assert!(
        tokio::time::timeout(Duration::from_millis(100), heads.next())
            .await
            .is_err(),
        "no new block yet"
    );
    for n in 3..8 {
        let mined = Instant::now();
        node.mine(1).await.expect("mine");
        let head = tokio::time::timeout(Duration::from_secs(5), heads.next())
            .await
            .expect("announced")
            .expect("head");
        assert_eq!(head.number, n);
        assert_eq!(head.hash, src.block_ref(n).await.expect("block").hash);
        assert!(head.seen_at >= mined);
    }
    // Several blocks at once: announced one by one over the subscription, or as a jump;
    // never a number skipped without the next head showing it.
    node.mine(3).await.expect("mine");
    let mut last = 7;
    while last < 10 {
        let head = heads.next().await.expect("head");
        assert!(head.number > last, "{head:?} after {last}");
        last = head.number;
    }
    assert_eq!(last, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heads_over_http_are_found_by_polling_and_jumps_are_yielded() {
    let node = Anvil::spawn().await.expect("anvil");
    let src = source(&node.http_url(), TraceMode::Geth).await;
    let mut heads = src.subscribe_heads();
    assert_eq!(heads.next().await.expect("current head").number, 0);
    assert!(
        tokio::time::timeout(Duration::from_millis(100), heads.next())
            .await
            .is_err(),
        "no new block yet"
    );
    node.mine(1).await.expect("mine");
    let head = tokio::time::timeout(Duration::from_secs(5), heads.next())
        .await
        .expect("polled")
        .expect("head");
    assert_eq!(head.number, 1);
    assert_eq!(head.hash, src.block_ref(1).await.expect("block").hash);
    // Three blocks between two polls: the stream yields the jump (4), the consumer
    // fetches 2 and 3.
    node.mine(3).await.expect("mine");
    let head = heads.next().await.expect("head");
    assert_eq!(head.number, 4);
    assert_eq!(src.wait_for_head_above(3).await.expect("above"), 4);
}
