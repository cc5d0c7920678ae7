//! What a client can hold, through a real socket: slow request heads and idle kept-alive
//! connections are closed after the header timeout, slow bodies answered 408, a client that
//! reads nothing of a large answer is dropped; at the connection cap new connections wait
//! while open ones keep working; answers hyper writes by itself are JSON; and a server whose
//! open-file limit is 256 still answers after 300 slow connections.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use holdfast_server::{AppState, Limits};
use serde_json::Value;

use super::state_for;

/// Serves `state` with `limits` on a fresh port; the server stops when the test ends.
async fn serve(state: AppState, limits: Limits) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(holdfast_server::serve(
        listener,
        state.with_limits(limits),
        std::future::pending(),
    ));
    addr
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    s
}

/// Reads until the server closes the connection; how long that took.
fn until_closed(mut s: TcpStream) -> (Duration, Vec<u8>) {
    let start = Instant::now();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return (start.elapsed(), out),
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// Status and JSON body of one raw HTTP/1.1 answer.
fn answer(bytes: &[u8]) -> (u16, Value) {
    let text = String::from_utf8_lossy(bytes);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_heads_slow_bodies_and_idle_connections_are_closed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let limits = Limits::new(
        Duration::from_secs(1),
        Duration::from_secs(1),
        Duration::from_secs(1),
        64,
    );
    let addr = serve(state_for(dir.path(), None), limits).await;
    tokio::task::spawn_blocking(move || {
        // A head sent slowly, never finished: closed after the header timeout.
        let mut s = connect(addr);
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .expect("write");
        let (took, _) = until_closed(s);
        assert!(
            took >= Duration::from_millis(800) && took < Duration::from_secs(5),
            "slow head closed after {took:?}"
        );
        // A connection that sends nothing at all: the same.
        let (took, _) = until_closed(connect(addr));
        assert!(took < Duration::from_secs(5), "silent connection: {took:?}");
        // Kept alive after an answer, then idle: closed after the header timeout.
        let mut s = connect(addr);
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("write");
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).expect("answer");
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", String::from_utf8_lossy(&buf[..n]));
        let (took, _) = until_closed(s);
        assert!(took < Duration::from_secs(5), "idle kept-alive connection: {took:?}");
        // A body sent slowly: 408, the documented JSON.
        let mut s = connect(addr);
        s.write_all(b"POST /v1/screen HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"addr")
            .expect("write");
        let (took, bytes) = until_closed(s);
        let (status, v) = answer(&bytes);
        assert_eq!(status, 408, "{}", String::from_utf8_lossy(&bytes));
        assert_eq!(v["error"]["code"], "request_timeout", "{v}");
        assert!(took < Duration::from_secs(5), "slow body: {took:?}");
    })
    .await
    .expect("client");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_reads_nothing_of_its_answers_is_dropped() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A long header timeout: only the write timeout can close this connection.
    let limits = Limits::new(
        Duration::from_secs(60),
        Duration::from_secs(10),
        Duration::from_secs(1),
        64,
    );
    let addr = serve(state_for(dir.path(), None), limits.clone()).await;
    // 10,000 verdicts per answer (megabytes), eight answers pipelined: more than the
    // socket buffers hold, so the server's writes stall.
    let addresses: Vec<String> = (0..10_000u32).map(|i| format!("0x{i:040x}")).collect();
    let body = serde_json::json!({ "addresses": addresses }).to_string();
    let request = format!(
        "POST /v1/screen HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let client = tokio::task::spawn_blocking(move || {
        let mut s = connect(addr);
        s.set_write_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        for _ in 0..8 {
            if s.write_all(request.as_bytes()).is_err() {
                break;
            }
        }
        // Read nothing; keep the socket open until the test ends.
        s
    });
    let start = Instant::now();
    tokio::time::sleep(Duration::from_millis(500)).await;
    while limits.open_connections() > 0 && start.elapsed() < Duration::from_secs(40) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        limits.open_connections(),
        0,
        "still open after {:?}",
        start.elapsed()
    );
    drop(client.await.expect("client"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_cap_new_connections_wait_and_open_ones_work() {
    let dir = tempfile::tempdir().expect("tempdir");
    let limits = Limits::new(
        Duration::from_secs(30),
        Duration::from_secs(30),
        Duration::from_secs(30),
        4,
    );
    let addr = serve(state_for(dir.path(), None), limits.clone()).await;
    let url = format!("http://{addr}/healthz");
    // Four connections hold the four places.
    let mut held: Vec<TcpStream> = (0..4).map(|_| connect(addr)).collect();
    for _ in 0..100 {
        if limits.open_connections() == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(limits.open_connections(), 4);
    // A fifth waits: not answered while the four are open.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let waiting = client
        .get(&url)
        .timeout(Duration::from_millis(800))
        .send()
        .await;
    assert!(waiting.is_err(), "answered past the cap: {waiting:?}");
    // The open ones keep working.
    let mut first = held.remove(0);
    let bytes = tokio::task::spawn_blocking(move || {
        first
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .expect("write");
        until_closed(first).1
    })
    .await
    .expect("held");
    assert_eq!(answer(&bytes).0, 200, "{}", String::from_utf8_lossy(&bytes));
    // Once they are gone, new connections are answered again.
    drop(held);
    let r = client
        .get(&url)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("answered once places are free");
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_hyper_writes_itself_are_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = serve(state_for(dir.path(), None), Limits::default()).await;
    tokio::task::spawn_blocking(move || {
        for (request, status, code) in [
            // Past hyper's own URI limit (64 KiB): it answers before any route.
            (
                format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(70_000)),
                414,
                "uri_too_long",
            ),
            // Under it but over ours (8 KiB).
            (
                format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(9_000)),
                414,
                "uri_too_long",
            ),
            (
                format!(
                    "GET / HTTP/1.1\r\nHost: x\r\n{}\r\n",
                    (0..120)
                        .map(|i| format!("x-h{i}: v\r\n"))
                        .collect::<String>()
                ),
                431,
                "header_too_large",
            ),
            (
                "GET / HTTP/1.1\r\nBad Header\r\n\r\n".to_owned(),
                400,
                "bad_request",
            ),
        ] {
            let mut s = connect(addr);
            let _ = s.write_all(request.as_bytes());
            let (_, bytes) = until_closed(s);
            let (got, v) = answer(&bytes);
            assert_eq!(got, status, "{}", String::from_utf8_lossy(&bytes));
            assert_eq!(
                v["error"]["code"],
                code,
                "{}",
                String::from_utf8_lossy(&bytes)
            );
        }
    })
    .await
    .expect("client");
}

/// The open-file limit in force, from /proc (Linux).
fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// The server half of `three_hundred_slow_connections_on_256_file_descriptors`, run in a
/// child process whose open-file limit is 256.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run as a child process by three_hundred_slow_connections_on_256_file_descriptors"]
async fn server_with_256_file_descriptors() {
    let files = open_file_limit().expect("open-file limit");
    assert!(files <= 256, "run with ulimit -n 256, not {files}");
    let dir = tempfile::tempdir().expect("tempdir");
    let limits = Limits::new(
        Duration::from_secs(2),
        Duration::from_secs(2),
        Duration::from_secs(2),
        holdfast_server::connection_cap(holdfast_server::serve::DEFAULT_MAX_CONNECTIONS, files),
    );
    let addr = serve(state_for(dir.path(), None), limits).await;
    println!("LISTENING {addr}");
    std::future::pending::<()>().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_slow_connections_on_256_file_descriptors() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let exe = std::env::current_exe().expect("test binary");
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("ulimit -n 256 && exec \"$0\" \"$@\"")
        .arg(exe)
        .args([
            "--exact",
            "limits::server_with_256_file_descriptors",
            "--ignored",
            "--nocapture",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the server");
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout = child.stdout.take().expect("stdout");
    let child = Kill(child);
    let addr: SocketAddr = tokio::task::spawn_blocking(move || {
        let mut lines = std::io::BufReader::new(stdout).lines();
        loop {
            let line = lines
                .next()
                .expect("the server says where it listens")
                .expect("line");
            if let Some(a) = line.strip_prefix("LISTENING ") {
                return a.parse().expect("address");
            }
        }
    })
    .await
    .expect("reader");
    // 300 slow heads, kept open by the client.
    let slow: Vec<TcpStream> = tokio::task::spawn_blocking(move || {
        (0..300)
            .filter_map(|_| {
                let mut s = TcpStream::connect(addr).ok()?;
                let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n");
                Some(s)
            })
            .collect()
    })
    .await
    .expect("slow clients");
    assert!(slow.len() >= 250, "only {} connections", slow.len());
    let start = Instant::now();
    let r = reqwest::Client::new()
        .get(format!("http://{addr}/healthz"))
        .timeout(Duration::from_secs(40))
        .send()
        .await
        .expect("a normal request is still answered");
    assert_eq!(r.status(), 200);
    println!(
        "answered after {:?} with {} slow connections open",
        start.elapsed(),
        slow.len()
    );
    drop(slow);
    drop(child);
}
