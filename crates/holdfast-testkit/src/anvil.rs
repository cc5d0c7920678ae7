//! A real anvil on a free loopback port, stopped on drop (also when a test panics) and by a
//! watchdog if the test process dies without dropping it.

use std::io::Read;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use alloy::rpc::client::{ClientBuilder, RpcClient};
use alloy::signers::local::PrivateKeySigner;
use alloy_primitives::{Address, B256, Bytes, U256, address, b256};
use serde_json::{Value, json};

use crate::TestkitError;

/// anvil's ten default dev accounts (mnemonic "test test ... junk"), unlocked on the node.
const DEV_ACCOUNTS: [Address; 10] = [
    address!("f39Fd6e51aad88F6F4ce6aB8827279cffFb92266"),
    address!("70997970C51812dc3A010C7d01b50e0d17dc79C8"),
    address!("3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"),
    address!("90F79bf6EB2c4f870365E785982E1f101E93b906"),
    address!("15d34AAf54267DB7D7c367839AAf71A00a2C6A65"),
    address!("9965507D1a55bcC2695C58ba16FB37d819B0A4dc"),
    address!("976EA74026E726554dB657fA54763abd0C3a0aa9"),
    address!("14dC79964da2C08b23698B3D3cc7Ca32193d9955"),
    address!("23618e81E3f5cdF7f54C3d65f7FBc0aBf5B21E8f"),
    address!("a0Ee7A142d267C1f36714E4a8F75612F20a79720"),
];

/// Their private keys, public knowledge (printed by anvil at every start).
const DEV_KEYS: [B256; 10] = [
    b256!("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"),
    b256!("59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"),
    b256!("5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a"),
    b256!("7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6"),
    b256!("47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a"),
    b256!("8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba"),
    b256!("92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e"),
    b256!("4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdbf7cbf4356"),
    b256!("dbda1821b80551c9d65939329250298aa3472ba22feea921c0cf5d620ea67b97"),
    b256!("2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6"),
];

/// Dev account `i` (modulo 10).
pub fn dev_account(i: usize) -> Address {
    DEV_ACCOUNTS[i % DEV_ACCOUNTS.len()]
}

/// The private key of dev account `i` (modulo 10).
pub fn dev_key(i: usize) -> B256 {
    DEV_KEYS[i % DEV_KEYS.len()]
}

/// A local signer holding dev account `i`'s key (for signatures the node does not make, such
/// as Safe owners' signatures).
pub fn dev_signer(i: usize) -> Result<PrivateKeySigner, TestkitError> {
    PrivateKeySigner::from_bytes(&dev_key(i)).map_err(|e| TestkitError::Sign(e.to_string()))
}

/// Added to 120% of a gas estimate (two fresh storage writes, with room to spare).
const GAS_HEADROOM: u64 = 60_000;

/// How to start anvil. Always: loopback, a free port, `--steps-tracing`, `--silent`.
#[derive(Debug, Clone)]
pub struct AnvilOptions {
    /// Interval mining (`--block-time`): a block every this often, instead of one per
    /// transaction.
    pub block_time: Option<Duration>,
    /// No mining at all (`--no-mining`): transactions wait until `mine` or `evm_mine`.
    pub no_mining: bool,
    /// Further arguments, passed as they are.
    pub extra_args: Vec<String>,
    /// How long to wait for the node to answer `eth_chainId`.
    pub start_timeout: Duration,
    /// How long [`Anvil::send`] waits for a receipt.
    pub receipt_timeout: Duration,
}

impl Default for AnvilOptions {
    fn default() -> Self {
        AnvilOptions {
            block_time: None,
            no_mining: false,
            extra_args: Vec::new(),
            start_timeout: Duration::from_secs(20),
            receipt_timeout: Duration::from_secs(30),
        }
    }
}

/// A running anvil.
#[derive(Debug)]
pub struct Anvil {
    child: Child,
    watchdog: Option<Child>,
    port: u16,
    client: RpcClient,
    receipt_timeout: Duration,
}

impl Anvil {
    /// Starts anvil with automine (one block per transaction) and call tracing.
    pub async fn spawn() -> Result<Anvil, TestkitError> {
        Anvil::spawn_opts(AnvilOptions::default()).await
    }

    /// Starts anvil with extra arguments (e.g. `["--block-time", "1"]`, `["--no-mining"]`).
    pub async fn spawn_with(args: &[&str]) -> Result<Anvil, TestkitError> {
        Anvil::spawn_opts(AnvilOptions {
            extra_args: args.iter().map(|a| (*a).to_owned()).collect(),
            ..AnvilOptions::default()
        })
        .await
    }

    /// Starts anvil as `options` say and waits until it answers.
    pub async fn spawn_opts(options: AnvilOptions) -> Result<Anvil, TestkitError> {
        let bin = anvil_binary()?;
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| TestkitError::Start(e.to_string()))?
            .port();
        let mut args = vec![
            "--host".to_owned(),
            "127.0.0.1".to_owned(),
            "--port".to_owned(),
            port.to_string(),
            "--steps-tracing".to_owned(),
            "--silent".to_owned(),
        ];
        if let Some(every) = options.block_time {
            args.extend(["--block-time".to_owned(), every.as_secs_f64().to_string()]);
        }
        if options.no_mining {
            args.push("--no-mining".to_owned());
        }
        args.extend(options.extra_args.iter().cloned());
        let child = Command::new(&bin)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| TestkitError::Start(format!("{}: {e}", bin.display())))?;
        let watchdog = watchdog(child.id());
        let url = format!("http://127.0.0.1:{port}");
        let client = ClientBuilder::default().http(
            url.parse()
                .map_err(|e| TestkitError::Start(format!("{url}: {e}")))?,
        );
        // From here on, Drop stops the node whatever happens.
        let mut anvil = Anvil {
            child,
            watchdog,
            port,
            client,
            receipt_timeout: options.receipt_timeout,
        };
        let started = Instant::now();
        loop {
            if anvil.rpc("eth_chainId", json!([])).await.is_ok() {
                return Ok(anvil);
            }
            if let Ok(Some(status)) = anvil.child.try_wait() {
                let mut stderr = String::new();
                if let Some(mut pipe) = anvil.child.stderr.take() {
                    let _ = pipe.read_to_string(&mut stderr);
                }
                return Err(TestkitError::Start(format!(
                    "anvil exited with {status}: {}",
                    stderr.trim()
                )));
            }
            if started.elapsed() > options.start_timeout {
                return Err(TestkitError::Start(format!(
                    "anvil did not answer eth_chainId within {:?}",
                    options.start_timeout
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// WebSocket on the same port (`eth_subscribe`).
    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The node's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
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

    /// A raw JSON-RPC call.
    pub async fn rpc(&self, method: &str, params: Value) -> Result<Value, TestkitError> {
        self.client
            .request::<_, Value>(method.to_owned(), params)
            .await
            .map_err(|e| TestkitError::Rpc {
                method: method.to_owned(),
                message: e.to_string(),
            })
    }

    pub async fn chain_id(&self) -> Result<u64, TestkitError> {
        let v = self.rpc("eth_chainId", json!([])).await?;
        hex_u64(&v, "eth_chainId")
    }

    pub async fn block_number(&self) -> Result<u64, TestkitError> {
        let v = self.rpc("eth_blockNumber", json!([])).await?;
        hex_u64(&v, "eth_blockNumber")
    }

    /// `eth_call` at the latest block; the raw return data.
    pub async fn call(&self, to: Address, data: Bytes) -> Result<Bytes, TestkitError> {
        let v = self
            .rpc("eth_call", json!([{"to": to, "data": data}, "latest"]))
            .await?;
        serde_json::from_value(v).map_err(|e| TestkitError::Rpc {
            method: "eth_call".into(),
            message: e.to_string(),
        })
    }

    /// Sends a transaction from an unlocked dev account and waits for its receipt. Without
    /// `gas`, the node's estimate plus headroom: a transaction the estimate finds reverting
    /// is an error and is not sent. With `gas`, no estimate is made, so a transaction that
    /// reverts is still mined (status 0).
    pub async fn send(
        &self,
        from: Address,
        to: Option<Address>,
        value: U256,
        data: Bytes,
        gas: Option<u64>,
    ) -> Result<(B256, Value), TestkitError> {
        let mut tx = json!({"from": from, "value": value, "data": data});
        if let Some(to) = to {
            tx["to"] = json!(to);
        }
        let gas = match gas {
            Some(gas) => gas,
            None => {
                // Headroom over the estimate: code that reads block.timestamp (a Uniswap
                // pair's price accumulators) can cost more in the block that includes the
                // transaction than in the one it was estimated against.
                let estimate = self.rpc("eth_estimateGas", json!([tx])).await?;
                let estimate = hex_u64(&estimate, "eth_estimateGas")?;
                estimate + estimate / 5 + GAS_HEADROOM
            }
        };
        tx["gas"] = json!(format!("{gas:#x}"));
        let hash: B256 = serde_json::from_value(
            self.rpc("eth_sendTransaction", json!([tx])).await?,
        )
        .map_err(|e| TestkitError::Rpc {
            method: "eth_sendTransaction".into(),
            message: e.to_string(),
        })?;
        let started = Instant::now();
        loop {
            let r = self.rpc("eth_getTransactionReceipt", json!([hash])).await?;
            if !r.is_null() {
                return Ok((hash, r));
            }
            if started.elapsed() > self.receipt_timeout {
                return Err(TestkitError::Tx {
                    tx: hash,
                    what: format!("no receipt after {:?}", self.receipt_timeout),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends and requires success.
    pub async fn call_ok(
        &self,
        from: Address,
        to: Address,
        value: U256,
        data: Bytes,
    ) -> Result<B256, TestkitError> {
        let (hash, r) = self.send(from, Some(to), value, data, None).await?;
        if r["status"] != json!("0x1") {
            return Err(TestkitError::Tx {
                tx: hash,
                what: format!("reverted: {}", self.revert_reason(hash).await),
            });
        }
        Ok(hash)
    }

    /// Sends with a fixed gas limit and requires the transaction to be mined and to fail
    /// (status 0).
    pub async fn send_failing(
        &self,
        from: Address,
        to: Address,
        value: U256,
        data: Bytes,
        gas: u64,
    ) -> Result<B256, TestkitError> {
        let (hash, r) = self.send(from, Some(to), value, data, Some(gas)).await?;
        if r["status"] != json!("0x0") {
            return Err(TestkitError::Tx {
                tx: hash,
                what: "expected to fail, succeeded".into(),
            });
        }
        Ok(hash)
    }

    /// Why a mined transaction failed, from its call trace (for error messages).
    async fn revert_reason(&self, tx: B256) -> String {
        match self
            .rpc(
                "debug_traceTransaction",
                json!([tx, {"tracer": "callTracer"}]),
            )
            .await
        {
            Ok(trace) => trace
                .get("revertReason")
                .or_else(|| trace.get("error"))
                .and_then(Value::as_str)
                .unwrap_or("no reason in the trace")
                .to_owned(),
            Err(e) => format!("no trace: {e}"),
        }
    }

    /// The receipt's status: `true` for success.
    pub async fn tx_succeeded(&self, tx: B256) -> Result<bool, TestkitError> {
        let r = self.rpc("eth_getTransactionReceipt", json!([tx])).await?;
        match r["status"].as_str() {
            Some("0x1") => Ok(true),
            Some("0x0") => Ok(false),
            _ => Err(TestkitError::Tx {
                tx,
                what: format!("no receipt status in {r}"),
            }),
        }
    }

    /// Deploys `bytecode ++ constructor_args` and returns the contract's address.
    pub async fn deploy(
        &self,
        from: Address,
        bytecode: &Bytes,
        constructor_args: &[u8],
    ) -> Result<Address, TestkitError> {
        let code: Bytes = [bytecode.as_ref(), constructor_args].concat().into();
        let (hash, r) = self.send(from, None, U256::ZERO, code, None).await?;
        if r["status"] != json!("0x1") {
            return Err(TestkitError::Tx {
                tx: hash,
                what: format!("deployment reverted: {r}"),
            });
        }
        serde_json::from_value(r["contractAddress"].clone()).map_err(|_| TestkitError::Tx {
            tx: hash,
            what: format!("no contract address in {r}"),
        })
    }

    pub async fn mine(&self, blocks: u64) -> Result<(), TestkitError> {
        self.rpc("anvil_mine", json!([format!("{blocks:#x}")]))
            .await
            .map(|_| ())
    }

    /// Replaces the last `depth` blocks with as many empty ones (anvil's reorg method).
    pub async fn reorg(&self, depth: u64) -> Result<(), TestkitError> {
        self.rpc("anvil_reorg", json!([depth, []]))
            .await
            .map(|_| ())
    }

    pub async fn balance(&self, who: Address) -> Result<U256, TestkitError> {
        let v = self.rpc("eth_getBalance", json!([who, "latest"])).await?;
        serde_json::from_value(v).map_err(|e| TestkitError::Rpc {
            method: "eth_getBalance".into(),
            message: e.to_string(),
        })
    }
}

impl Drop for Anvil {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `HOLDFAST_ANVIL`, else the npm package's binary under the workspace root.
fn anvil_binary() -> Result<PathBuf, TestkitError> {
    let bin = std::env::var_os("HOLDFAST_ANVIL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            crate::workspace_root().join("node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil")
        });
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(TestkitError::NoAnvil(bin))
    }
}

/// A shell that kills the node if this process dies without dropping [`Anvil`] (a killed
/// test binary). It only acts while the node is alive, and [`Anvil::kill`] stops it before
/// reaping the node, so it can never hit a recycled process id.
pub(crate) fn watchdog(node: u32) -> Option<Child> {
    let script = format!(
        "while kill -0 {node} 2>/dev/null; do \
           if ! kill -0 {me} 2>/dev/null; then kill {node}; exit 0; fi; sleep 0.5; \
         done",
        me = std::process::id()
    );
    Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()
}

pub(crate) fn hex_u64(v: &Value, method: &str) -> Result<u64, TestkitError> {
    v.as_str()
        .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok())
        .ok_or_else(|| TestkitError::Rpc {
            method: method.to_owned(),
            message: format!("not a quantity: {v}"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_keys_belong_to_the_dev_accounts() {
        for i in 0..10 {
            assert_eq!(
                dev_signer(i).unwrap().address(),
                dev_account(i),
                "account {i}"
            );
        }
    }
}
