//! A real Litecoin Core node in regtest (Debian's `litecoind` 0.21, a Bitcoin Core 0.21 fork
//! with the same RPC and block serialization): a temporary data directory, free loopback
//! ports, MWEB kept off, stopped on drop (also when a test panics) and by a watchdog if the
//! test process dies without dropping it.

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::TestkitError;

/// Keeps MWEB (Litecoin's extension blocks) from ever activating: without it, regtest
/// activates MWEB at height 432 and mining fails with `bad-txns-vin-empty`.
pub const MWEB_OFF: &str = "-vbparams=mweb:4102444800:4102444801";

/// How to start litecoind.
#[derive(Debug, Clone)]
pub struct LitecoindOptions {
    /// Authenticate with the cookie file the node writes (`<datadir>/regtest/.cookie`)
    /// instead of `-rpcuser`/`-rpcpassword`.
    pub cookie_auth: bool,
    /// Further arguments, passed as they are.
    pub extra_args: Vec<String>,
    /// How long to wait for the node to answer `getblockchaininfo`.
    pub start_timeout: Duration,
}

impl Default for LitecoindOptions {
    fn default() -> Self {
        LitecoindOptions {
            cookie_auth: false,
            extra_args: Vec::new(),
            start_timeout: Duration::from_secs(60),
        }
    }
}

const USER: &str = "holdfast";
const PASSWORD: &str = "regtest-password";

/// A running litecoind on regtest.
#[derive(Debug)]
pub struct Litecoind {
    bin: PathBuf,
    args: Vec<String>,
    start_timeout: Duration,
    child: Child,
    watchdog: Option<Child>,
    rpc_port: u16,
    datadir: tempfile::TempDir,
    cookie_auth: bool,
    client: reqwest::Client,
    next_id: AtomicU64,
}

impl Litecoind {
    /// Starts a node with user/password authentication.
    pub async fn spawn() -> Result<Litecoind, TestkitError> {
        Litecoind::spawn_opts(LitecoindOptions::default()).await
    }

    /// Starts a node as `options` say and waits until it answers.
    pub async fn spawn_opts(options: LitecoindOptions) -> Result<Litecoind, TestkitError> {
        let bin = litecoind_binary()?;
        let datadir = tempfile::Builder::new()
            .prefix("holdfast-litecoind-")
            .tempdir()
            .map_err(|e| TestkitError::Start(format!("temporary data directory: {e}")))?;
        let rpc_port = free_port()?;
        let p2p_port = free_port()?;
        let mut args = vec![
            "-regtest".to_owned(),
            format!("-datadir={}", datadir.path().display()),
            format!("-rpcport={rpc_port}"),
            format!("-port={p2p_port}"),
            "-rpcbind=127.0.0.1".to_owned(),
            "-rpcallowip=127.0.0.1".to_owned(),
            "-listen=0".to_owned(),
            "-dnsseed=0".to_owned(),
            "-fallbackfee=0.0002".to_owned(),
            "-txindex=1".to_owned(),
            "-printtoconsole=0".to_owned(),
            MWEB_OFF.to_owned(),
        ];
        if !options.cookie_auth {
            args.push(format!("-rpcuser={USER}"));
            args.push(format!("-rpcpassword={PASSWORD}"));
        }
        args.extend(options.extra_args.iter().cloned());
        let (child, watchdog) = start(&bin, &args)?;
        // From here on, Drop stops the node whatever happens.
        let mut node = Litecoind {
            bin,
            args,
            start_timeout: options.start_timeout,
            child,
            watchdog,
            rpc_port,
            datadir,
            cookie_auth: options.cookie_auth,
            client: reqwest::Client::new(),
            next_id: AtomicU64::new(1),
        };
        node.wait_ready().await?;
        Ok(node)
    }

    /// Starts the node again on the same data directory and ports after [`Litecoind::kill`]
    /// (a node coming back after an outage). Wallets must be loaded again.
    pub async fn restart(&mut self) -> Result<(), TestkitError> {
        self.kill();
        let (child, watchdog) = start(&self.bin, &self.args)?;
        self.child = child;
        self.watchdog = watchdog;
        self.wait_ready().await
    }

    async fn wait_ready(&mut self) -> Result<(), TestkitError> {
        let node = self;
        let started = Instant::now();
        loop {
            match node.rpc("getblockchaininfo", json!([])).await {
                Ok(_) => return Ok(()),
                Err(last) => {
                    if let Ok(Some(status)) = node.child.try_wait() {
                        let mut stderr = String::new();
                        if let Some(mut pipe) = node.child.stderr.take() {
                            let _ = pipe.read_to_string(&mut stderr);
                        }
                        return Err(TestkitError::Start(format!(
                            "litecoind exited with {status}: {}",
                            stderr.trim()
                        )));
                    }
                    if started.elapsed() > node.start_timeout {
                        return Err(TestkitError::Start(format!(
                            "litecoind did not answer getblockchaininfo within {:?}: {last}",
                            node.start_timeout
                        )));
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `http://127.0.0.1:<rpc port>`, without credentials.
    pub fn rpc_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.rpc_port)
    }

    /// The user and password the node was started with (`None` with cookie authentication).
    pub fn user_password(&self) -> Option<(&'static str, &'static str)> {
        (!self.cookie_auth).then_some((USER, PASSWORD))
    }

    /// Where the node writes its cookie (only with [`LitecoindOptions::cookie_auth`]).
    pub fn cookie_path(&self) -> PathBuf {
        self.datadir.path().join("regtest/.cookie")
    }

    pub fn datadir(&self) -> &Path {
        self.datadir.path()
    }

    pub fn rpc_port(&self) -> u16 {
        self.rpc_port
    }

    /// The node's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the node (`stop`: it flushes its state; each block was written to its block
    /// file when accepted) and waits for its process to exit, at most 5 s, then kills it:
    /// its data directory can then be read as a stopped node's. The node's exit waits for
    /// idle keep-alive RPC connections to time out (`-rpcservertimeout`, 30 s), its own
    /// client's included, hence the bound.
    pub async fn stop(&mut self) -> Result<(), TestkitError> {
        self.rpc("stop", json!([])).await?;
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(5) {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.kill();
        Ok(())
    }

    /// Stops the node now (a node going down mid-run). Idempotent.
    pub fn kill(&mut self) {
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// A raw JSON-RPC call (JSON-RPC 1.0, as Core 0.21 speaks it); the `result`.
    pub async fn rpc(&self, method: &str, params: Value) -> Result<Value, TestkitError> {
        self.rpc_at("", method, params).await
    }

    /// A call to a wallet's endpoint (`/wallet/<name>`).
    pub async fn wallet_rpc(
        &self,
        wallet: &str,
        method: &str,
        params: Value,
    ) -> Result<Value, TestkitError> {
        self.rpc_at(&format!("/wallet/{wallet}"), method, params)
            .await
    }

    async fn rpc_at(&self, path: &str, method: &str, params: Value) -> Result<Value, TestkitError> {
        let fail = |message: String| TestkitError::Rpc {
            method: method.to_owned(),
            message,
        };
        let (user, password) = match self.user_password() {
            Some((u, p)) => (u.to_owned(), p.to_owned()),
            None => {
                let cookie = std::fs::read_to_string(self.cookie_path())
                    .map_err(|e| fail(format!("cookie: {e}")))?;
                let (u, p) = cookie
                    .trim()
                    .split_once(':')
                    .ok_or_else(|| fail("cookie without ':'".into()))?;
                (u.to_owned(), p.to_owned())
            }
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let answer: Value = self
            .client
            .post(format!("{}{path}", self.rpc_url()))
            .basic_auth(user, Some(password))
            .json(&json!({"jsonrpc": "1.0", "id": id, "method": method, "params": params}))
            .send()
            .await
            .map_err(|e| fail(e.without_url().to_string()))?
            .json()
            .await
            .map_err(|e| fail(e.without_url().to_string()))?;
        match &answer["error"] {
            Value::Null => Ok(answer["result"].clone()),
            e => Err(fail(e.to_string())),
        }
    }

    /// Creates (and loads) a wallet.
    pub async fn create_wallet(&self, name: &str) -> Result<(), TestkitError> {
        self.rpc("createwallet", json!([name])).await.map(drop)
    }

    /// A new address of `wallet`: `kind` is `legacy`, `p2sh-segwit` or `bech32`.
    pub async fn new_address(&self, wallet: &str, kind: &str) -> Result<String, TestkitError> {
        let v = self
            .wallet_rpc(wallet, "getnewaddress", json!(["", kind]))
            .await?;
        string(v, "getnewaddress")
    }

    /// Mines `blocks` blocks paying `address`; their hashes.
    pub async fn mine(&self, blocks: u64, address: &str) -> Result<Vec<String>, TestkitError> {
        let v = self
            .rpc("generatetoaddress", json!([blocks, address]))
            .await?;
        serde_json::from_value(v).map_err(|e| TestkitError::Rpc {
            method: "generatetoaddress".into(),
            message: e.to_string(),
        })
    }

    /// Sends `amount` (in LTC, as the RPC takes it, e.g. `"1.5"`) from `wallet` to `address`;
    /// the txid.
    pub async fn send(
        &self,
        wallet: &str,
        address: &str,
        amount: &str,
    ) -> Result<String, TestkitError> {
        let v = self
            .wallet_rpc(wallet, "sendtoaddress", json!([address, amount]))
            .await?;
        string(v, "sendtoaddress")
    }

    /// Sends `amount` (in LTC) from `wallet` to `address` in a transaction that also carries
    /// `data` in an OP_RETURN output (a THORChain payout's `OUT:<inbound>`); the txid and the
    /// position of the output paying `address`.
    pub async fn send_with_data(
        &self,
        wallet: &str,
        address: &str,
        amount: &str,
        data: &[u8],
    ) -> Result<(String, u32), TestkitError> {
        let hex: String = data.iter().map(|b| format!("{b:02x}")).collect();
        let outputs = json!([{ address: amount }, { "data": hex }]);
        let raw = self
            .wallet_rpc(wallet, "createrawtransaction", json!([[], outputs]))
            .await?;
        let funded = self
            .wallet_rpc(wallet, "fundrawtransaction", json!([raw]))
            .await?;
        let signed = self
            .wallet_rpc(
                wallet,
                "signrawtransactionwithwallet",
                json!([funded["hex"]]),
            )
            .await?;
        let decoded = self
            .rpc("decoderawtransaction", json!([signed["hex"]]))
            .await?;
        let vout = decoded["vout"]
            .as_array()
            .and_then(|outs| {
                outs.iter().find(|o| {
                    o["scriptPubKey"]["address"] == address
                        || o["scriptPubKey"]["addresses"][0] == address
                })
            })
            .and_then(|o| o["n"].as_u64())
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| TestkitError::Rpc {
                method: "decoderawtransaction".into(),
                message: format!("no output pays {address}"),
            })?;
        let txid = self
            .rpc("sendrawtransaction", json!([signed["hex"]]))
            .await?;
        Ok((string(txid, "sendrawtransaction")?, vout))
    }

    /// Sends a raw transaction of `wallet` spending exactly `inputs` (`(txid, vout)` of its
    /// outputs) to `outputs` (an array of one-key objects, in vout order, as
    /// `createrawtransaction` takes them); the txid. Not completely signed is an error.
    pub async fn spend_exactly(
        &self,
        wallet: &str,
        inputs: &[(String, u64)],
        outputs: Value,
    ) -> Result<String, TestkitError> {
        let ins: Vec<Value> = inputs
            .iter()
            .map(|(txid, vout)| json!({"txid": txid, "vout": vout}))
            .collect();
        let raw = self
            .rpc("createrawtransaction", json!([ins, outputs]))
            .await?;
        let signed = self
            .wallet_rpc(wallet, "signrawtransactionwithwallet", json!([raw]))
            .await?;
        if signed["complete"] != true {
            return Err(TestkitError::Rpc {
                method: "signrawtransactionwithwallet".into(),
                message: format!("not completely signed: {signed}"),
            });
        }
        let txid = self
            .rpc("sendrawtransaction", json!([signed["hex"]]))
            .await?;
        string(txid, "sendrawtransaction")
    }

    /// `wallet`'s one confirmed output paying `address`: `(txid, vout)`; none or several is an
    /// error.
    pub async fn output_of(
        &self,
        wallet: &str,
        address: &str,
    ) -> Result<(String, u64), TestkitError> {
        let list = self
            .wallet_rpc(wallet, "listunspent", json!([1, 9999, [address]]))
            .await?;
        let fail = |message: String| TestkitError::Rpc {
            method: "listunspent".into(),
            message,
        };
        match list.as_array().map(Vec::as_slice) {
            Some([one]) => Ok((
                one["txid"]
                    .as_str()
                    .ok_or_else(|| fail(format!("no txid: {one}")))?
                    .to_owned(),
                one["vout"]
                    .as_u64()
                    .ok_or_else(|| fail(format!("no vout: {one}")))?,
            )),
            _ => Err(fail(format!("{address}: not one confirmed output: {list}"))),
        }
    }

    /// The best chain's height.
    pub async fn height(&self) -> Result<u64, TestkitError> {
        let v = self.rpc("getblockcount", json!([])).await?;
        v.as_u64().ok_or_else(|| TestkitError::Rpc {
            method: "getblockcount".into(),
            message: format!("not a number: {v}"),
        })
    }
}

impl Drop for Litecoind {
    fn drop(&mut self) {
        self.kill();
    }
}

fn start(bin: &Path, args: &[String]) -> Result<(Child, Option<Child>), TestkitError> {
    let child = Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| TestkitError::Start(format!("{}: {e}", bin.display())))?;
    let watchdog = crate::anvil::watchdog(child.id());
    Ok((child, watchdog))
}

fn string(v: Value, method: &str) -> Result<String, TestkitError> {
    v.as_str()
        .map(str::to_owned)
        .ok_or_else(|| TestkitError::Rpc {
            method: method.to_owned(),
            message: format!("not a string: {v}"),
        })
}

fn free_port() -> Result<u16, TestkitError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| TestkitError::Start(e.to_string()))
}

/// `HOLDFAST_LITECOIND`, else `litecoind` on the `PATH` (Debian installs it in `/usr/bin`).
fn litecoind_binary() -> Result<PathBuf, TestkitError> {
    if let Some(bin) = std::env::var_os("HOLDFAST_LITECOIND") {
        let bin = PathBuf::from(bin);
        return if bin.is_file() {
            Ok(bin)
        } else {
            Err(TestkitError::NoLitecoind(bin))
        };
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("litecoind"))
        .find(|p| p.is_file())
        .ok_or_else(|| TestkitError::NoLitecoind(PathBuf::from("litecoind")))
}
