//! The anvil process: it answers, it is gone after drop (also when a test panics), and the
//! mining options do what they say.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use alloy_primitives::U256;
use holdfast_testkit::{Anvil, AnvilOptions, dev_account};
use serde_json::json;

fn gone(pid: u32) -> bool {
    !Path::new(&format!("/proc/{pid}")).exists()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_over_http_and_upgrades_to_websocket() {
    let node = Anvil::spawn().await.unwrap();
    assert_eq!(node.chain_id().await.unwrap(), 31337);
    assert_eq!(node.block_number().await.unwrap(), 0);
    assert_eq!(
        node.balance(dev_account(9)).await.unwrap(),
        U256::from(10u64).pow(U256::from(22)),
        "dev accounts hold 10000 ETH"
    );
    assert_eq!(node.ws_url(), format!("ws://127.0.0.1:{}", node.port()));
    // A WebSocket handshake on the same port.
    let port = node.port();
    let answer = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(
            s,
            "GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n"
        )
        .unwrap();
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 101"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_stops_the_node() {
    let node = Anvil::spawn().await.unwrap();
    let (pid, port) = (node.pid(), node.port());
    drop(node);
    assert!(gone(pid), "anvil {pid} still running");
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[test]
fn a_panicking_test_leaves_no_node_behind() {
    let (tx, rx) = std::sync::mpsc::channel();
    let test = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let node = Anvil::spawn().await.unwrap();
            tx.send(node.pid()).unwrap();
            panic!("a failing assertion while the node runs");
        })
    });
    assert!(test.join().is_err(), "the thread panicked");
    let pid = rx.recv().unwrap();
    assert!(gone(pid), "anvil {pid} outlived the panicking test");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_mining_holds_transactions_until_mined() {
    let node = Anvil::spawn_opts(AnvilOptions {
        no_mining: true,
        ..AnvilOptions::default()
    })
    .await
    .unwrap();
    let tx = node
        .rpc(
            "eth_sendTransaction",
            json!([{"from": dev_account(0), "to": dev_account(1), "value": "0x1"}]),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(node.block_number().await.unwrap(), 0);
    node.mine(1).await.unwrap();
    assert_eq!(node.block_number().await.unwrap(), 1);
    let receipt = node
        .rpc("eth_getTransactionReceipt", json!([tx]))
        .await
        .unwrap();
    assert_eq!(receipt["blockNumber"], json!("0x1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_time_mines_empty_blocks() {
    let node = Anvil::spawn_opts(AnvilOptions {
        block_time: Some(Duration::from_millis(500)),
        ..AnvilOptions::default()
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1800)).await;
    assert!(node.block_number().await.unwrap() >= 2);
}
