//! Real receivers for the sink tests: an HTTP server on a loopback socket (axum) that checks
//! each webhook's HMAC signature and records what arrived, and a real SMTP server (PyPI
//! `aiosmtpd`, a child process writing a Maildir). Plus a small chain of committed blocks
//! whose alerts land in the outbox.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use alloy_primitives::{Address, B256};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use holdfast_primitives::BlockRef;
use holdfast_store::watch::{BlockCommit, NewAlert, WatchStore};
use holdfast_watch::sink::{SIGNATURE_HEADER, verify_signature};
use holdfast_watch::{Alert, DetectorKind, Fact, Link, Place, Severity, alert_id};

/// One request a receiver accepted.
#[derive(Debug, Clone)]
pub struct Received {
    pub key: String,
    pub event: String,
    pub seq: u64,
    pub body: serde_json::Value,
    pub at: Instant,
}

#[derive(Debug, Default)]
struct Log {
    accepted: Vec<Received>,
    /// Every request that reached the handler, accepted or not (key, when).
    attempts: Vec<(String, Instant)>,
    bad: Vec<String>,
}

#[derive(Debug)]
struct ReceiverState {
    secret: Option<Vec<u8>>,
    /// Requests still to refuse with 503.
    fail_next: AtomicUsize,
    /// Requests still to record and then leave without an answer for this long.
    hang_next: AtomicUsize,
    hang_for: Duration,
    /// Every accepted request is answered this late (a slow receiver).
    delay: Duration,
    log: Mutex<Log>,
}

/// A webhook receiver on 127.0.0.1.
#[derive(Debug)]
pub struct Receiver {
    pub addr: SocketAddr,
    state: Arc<ReceiverState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A loopback port that was free a moment ago (for a receiver started later).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

#[derive(Debug, Default, Clone)]
pub struct ReceiverOptions {
    pub secret: Option<Vec<u8>>,
    pub fail_first: usize,
    pub hang_first: usize,
    pub hang_for: Duration,
    pub delay: Duration,
    pub port: Option<u16>,
}

impl Receiver {
    pub async fn start(opts: ReceiverOptions) -> Receiver {
        let state = Arc::new(ReceiverState {
            secret: opts.secret,
            fail_next: AtomicUsize::new(opts.fail_first),
            hang_next: AtomicUsize::new(opts.hang_first),
            hang_for: opts.hang_for,
            delay: opts.delay,
            log: Mutex::new(Log::default()),
        });
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", opts.port.unwrap_or(0)))
            .await
            .unwrap_or_else(|e| panic!("binding the receiver: {e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(handle))
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { addr, state, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    pub fn accepted(&self) -> Vec<Received> {
        self.state
            .log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .accepted
            .clone()
    }

    pub fn attempts(&self) -> Vec<(String, Instant)> {
        self.state
            .log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .attempts
            .clone()
    }

    /// Requests refused for a bad or missing signature or key (must stay empty).
    pub fn bad(&self) -> Vec<String> {
        self.state
            .log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .bad
            .clone()
    }

    /// Accepted requests counted by key.
    pub fn counts(&self) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for r in self.accepted() {
            *m.entry(r.key).or_insert(0) += 1;
        }
        m
    }

    /// Waits (liveness bound only) until `n` distinct keys were accepted.
    pub async fn wait_for_keys(&self, n: usize, bound: Duration) {
        let start = Instant::now();
        while self.counts().len() < n {
            assert!(
                start.elapsed() < bound,
                "{} distinct keys of {n} within {bound:?} at {}",
                self.counts().len(),
                self.addr
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

async fn handle(
    State(state): State<Arc<ReceiverState>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let at = Instant::now();
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let key = header("idempotency-key").unwrap_or_default();
    let log = |f: &dyn Fn(&mut Log)| f(&mut state.log.lock().unwrap_or_else(|e| e.into_inner()));
    log(&|l| l.attempts.push((key.clone(), at)));
    if state
        .fail_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let json: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            log(&|l| l.bad.push(format!("body is not JSON: {e}")));
            return StatusCode::BAD_REQUEST;
        }
    };
    if let Some(secret) = &state.secret {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let sig = header(&SIGNATURE_HEADER.to_ascii_lowercase()).unwrap_or_default();
        if let Err(e) = verify_signature(&sig, secret, &body, now, 300) {
            log(&|l| l.bad.push(format!("{key}: {e}")));
            return StatusCode::UNAUTHORIZED;
        }
        // And independently of the crate's verifier: HMAC-SHA256(secret, "<t>.<body>").
        use hmac::{Hmac, Mac};
        let t = sig
            .split(',')
            .next()
            .and_then(|p| p.strip_prefix("t="))
            .unwrap_or("");
        let mut m = Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap_or_else(|_| panic!());
        m.update(format!("{t}.").as_bytes());
        m.update(&body);
        if !sig.ends_with(&format!("v1={}", hex::encode(m.finalize().into_bytes()))) {
            log(&|l| l.bad.push(format!("{key}: independent HMAC differs")));
            return StatusCode::UNAUTHORIZED;
        }
    }
    // Slack payloads carry no key in the body; webhook bodies must repeat the header's.
    if json.get("key").is_some() && json["key"].as_str() != Some(key.as_str()) {
        log(&|l| {
            l.bad
                .push(format!("{key}: body key {} differs", json["key"]))
        });
        return StatusCode::BAD_REQUEST;
    }
    let received = Received {
        key: key.clone(),
        event: json["event"].as_str().unwrap_or_default().to_owned(),
        seq: json["seq"].as_u64().unwrap_or_default(),
        body: json,
        at,
    };
    let hang = state
        .hang_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    log(&|l| l.accepted.push(received.clone()));
    if !state.delay.is_zero() {
        tokio::time::sleep(state.delay).await;
    }
    if hang {
        // Processed, but the answer never comes in time: the sender must try again.
        tokio::time::sleep(state.hang_for).await;
    }
    StatusCode::NO_CONTENT
}

/// A real SMTP server: `python3 -m aiosmtpd` with the Maildir handler, killed on drop.
#[derive(Debug)]
pub struct SmtpServer {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Python that has aiosmtpd: `HOLDFAST_PYTHON`, else the one `scripts/install-aiosmtpd`
/// set up in `.tools/aiosmtpd`, else `python3`.
fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("HOLDFAST_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.tools/aiosmtpd/bin/python3");
    if venv.exists() {
        return venv;
    }
    PathBuf::from("python3")
}

/// aiosmtpd with AUTH offered on a plain connection (no STARTTLS), recording every login it
/// receives: what a careless or hostile server would see.
/// With a certificate and key as 4th and 5th arguments, STARTTLS is offered and required
/// before AUTH and mail.
const AUTH_SERVER: &str = r#"
import ssl, sys, time
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import AuthResult
port, maildir, logins = int(sys.argv[1]), sys.argv[2], sys.argv[3]
def authenticator(server, session, envelope, mechanism, auth_data):
    with open(logins, "a") as f:
        f.write(f"{mechanism} {auth_data.login.decode()} {auth_data.password.decode()}\n")
    return AuthResult(success=True)
tls = {}
if len(sys.argv) > 5:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(sys.argv[4], sys.argv[5])
    tls = dict(tls_context=ctx, require_starttls=True, auth_require_tls=True)
else:
    tls = dict(auth_require_tls=False)
Controller(Mailbox(maildir), hostname="127.0.0.1", port=port,
           authenticator=authenticator, **tls).start()
while True:
    time.sleep(3600)
"#;

/// A throwaway CA and a server certificate it signed for `localhost` and `127.0.0.1`,
/// made with the `openssl` command: (CA certificate, server certificate, server key).
pub fn throwaway_ca(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap_or_else(|e| panic!("openssl: {e} (scripts/install-aiosmtpd installs it)"));
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(&[
        &["req", "-x509"][..],
        &ec,
        &[
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=holdfast test CA",
        ],
    ]
    .concat());
    run(&[
        &["req"][..],
        &ec,
        &[
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    ]
    .concat());
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    )
}

impl SmtpServer {
    /// Plain SMTP, no AUTH, no STARTTLS.
    pub async fn start() -> SmtpServer {
        SmtpServer::start_with(false).await
    }

    /// With `auth`, AUTH is offered in the clear and every login is recorded ([`Self::logins`]).
    pub async fn start_with(auth: bool) -> SmtpServer {
        SmtpServer::start_inner(auth, None).await
    }

    /// STARTTLS with `cert` and `key` (required before AUTH and mail), AUTH recording logins.
    pub async fn start_tls(cert: &Path, key: &Path) -> SmtpServer {
        SmtpServer::start_inner(true, Some((cert, key))).await
    }

    async fn start_inner(auth: bool, tls: Option<(&Path, &Path)>) -> SmtpServer {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let maildir = dir.path().join("mail");
        let port = free_port();
        let python = python();
        let mut cmd = Command::new(&python);
        if auth {
            cmd.args(["-c", AUTH_SERVER])
                .arg(port.to_string())
                .arg(&maildir)
                .arg(dir.path().join("logins"));
            if let Some((cert, key)) = tls {
                cmd.arg(cert).arg(key);
            }
        } else {
            cmd.args(["-m", "aiosmtpd", "-n", "-l"])
                .arg(format!("127.0.0.1:{port}"))
                .args(["-c", "aiosmtpd.handlers.Mailbox"])
                .arg(&maildir);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "starting {} -m aiosmtpd: {e} (run scripts/install-aiosmtpd)",
                    python.display()
                )
            });
        let mut server = SmtpServer { child, port, dir };
        let start = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!(
                    "aiosmtpd exited with {status} (is it installed? run scripts/install-aiosmtpd)"
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "aiosmtpd did not listen within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = &mut server;
        server
    }

    /// The logins the server received (`start_with(true)`), one line each.
    pub fn logins(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("logins")).unwrap_or_default()
    }

    /// The messages received so far, as raw RFC 5322 text.
    pub fn messages(&self) -> Vec<String> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            let Ok(entries) = std::fs::read_dir(self.dir.path().join("mail").join(sub)) else {
                continue;
            };
            for e in entries.flatten() {
                if let Ok(text) = std::fs::read_to_string(e.path()) {
                    out.push(text);
                }
            }
        }
        out
    }

    pub async fn wait_for_messages(&self, n: usize) -> Vec<String> {
        let start = Instant::now();
        loop {
            let m = self.messages();
            if m.len() >= n {
                return m;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "{} messages of {n} within 30 s",
                m.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A test alert of block `number`.
pub fn alert(number: u64, block_hash: B256, index: u32, severity: Severity) -> Alert {
    let place = Place::Log {
        tx_index: index,
        log_index: index,
    };
    Alert {
        id: alert_id(31_337, block_hash, "owner-change", &place),
        chain_id: 31_337,
        chain: "anvil".into(),
        block_number: number,
        block_hash,
        block_timestamp: 1_700_000_000 + number,
        tx_hash: Some(B256::repeat_byte(0xaa)),
        place,
        rule: "owner-change".into(),
        detector: DetectorKind::CriticalStorage,
        severity,
        title: format!("OwnershipTransferred on 0xc0ffee in block {number}"),
        summary: "The watched contract's owner changed to an unknown address.".into(),
        facts: vec![Fact {
            name: "new owner".into(),
            value: "0xbad".into(),
        }],
        addresses: vec![holdfast_watch::AddressNote {
            address: Address::repeat_byte(0xc0),
            role: "watched contract".into(),
            involvement: holdfast_watch::Involvement::Watched,
            labels: vec!["Treasury".into()],
        }],
        links: vec![Link {
            name: "block".into(),
            url: format!("https://explorer.test/block/{number}"),
        }],
        confirmations: 0,
        responses: vec![],
        evidence: serde_json::Value::Null,
    }
}

/// Consecutive blocks of one chain committed to a watch store, each with its alerts.
#[derive(Debug)]
pub struct TestChain {
    pub store: Arc<dyn WatchStore>,
    pub chain_id: u64,
    /// Hashes of the committed blocks by number (0: the parent of block 1).
    hashes: Vec<B256>,
    /// Tells a branch made after an unwind from the one unwound.
    salt: u8,
}

fn block_hash(number: u64, salt: u8) -> B256 {
    let mut b = [salt; 32];
    b[24..].copy_from_slice(&number.to_be_bytes());
    B256::from(b)
}

impl TestChain {
    /// A chain whose block 0 is committed without alerts (the anchor a reorg of block 1
    /// unwinds to, as the engine commits one below its first block).
    pub fn new(store: Arc<dyn WatchStore>) -> TestChain {
        let chain_id = 31_337;
        let genesis = BlockRef {
            number: 0,
            hash: block_hash(0, 0),
            parent_hash: B256::ZERO,
            timestamp: 1_700_000_000,
        };
        store
            .commit_block(&BlockCommit {
                chain_id,
                block: genesis,
                state: Vec::new(),
                alerts: Vec::new(),
                confirm: Vec::new(),
                forget_below: 0,
                fence: None,
            })
            .unwrap_or_else(|e| panic!("commit block 0: {e}"));
        TestChain {
            store,
            chain_id,
            hashes: vec![genesis.hash],
            salt: 0x11,
        }
    }

    /// Commits the next block with `n` alerts of `severity`; returns them.
    pub fn commit(&mut self, n: u32, severity: Severity) -> Vec<Alert> {
        self.commit_with(&vec![severity; n as usize])
    }

    pub fn commit_with(&mut self, severities: &[Severity]) -> Vec<Alert> {
        let number = self.hashes.len() as u64;
        let parent = self.hashes[self.hashes.len() - 1];
        let hash = block_hash(number, self.salt);
        let alerts: Vec<Alert> = severities
            .iter()
            .enumerate()
            .map(|(i, s)| alert(number, hash, i as u32, *s))
            .collect();
        let commit = BlockCommit {
            chain_id: self.chain_id,
            block: BlockRef {
                number,
                hash,
                parent_hash: parent,
                timestamp: 1_700_000_000 + number,
            },
            state: vec![],
            alerts: alerts
                .iter()
                .map(|a| NewAlert {
                    id: a.id.clone(),
                    rule: a.rule.clone(),
                    severity: a.severity.rank(),
                    raised_at_ms: 0,
                    body: serde_json::to_vec(a).unwrap_or_default(),
                })
                .collect(),
            confirm: vec![],
            forget_below: 0,
            fence: None,
        };
        self.store
            .commit_block(&commit)
            .unwrap_or_else(|e| panic!("commit block {number}: {e}"));
        self.hashes.push(hash);
        alerts
    }

    /// Unwinds every block above `number` (their alerts are retracted).
    pub fn unwind_above(&mut self, number: u64) {
        self.store
            .unwind_above(self.chain_id, number, &[], None)
            .unwrap_or_else(|e| panic!("unwind above {number}: {e}"));
        self.hashes.truncate(number as usize + 1);
        self.salt = self.salt.wrapping_add(1);
    }
}
