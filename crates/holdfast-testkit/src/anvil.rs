//! A real anvil on a free loopback port, stopped on drop (and by a watchdog if the test
//! process dies without dropping it).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use alloy::rpc::client::{ClientBuilder, RpcClient};
use alloy_primitives::{Address, B256, Bytes, U256, address};
use serde_json::{Value, json};

#[derive(Debug, thiserror::Error)]
pub enum TestkitError {
    #[error(
        "anvil binary not found at {0}: run scripts/install-node-tools (or set HOLDFAST_ANVIL)"
    )]
    NoAnvil(PathBuf),
    #[error("starting anvil: {0}")]
    Start(String),
    #[error("{method}: {message}")]
    Rpc { method: String, message: String },
    #[error("artifact {0}")]
    Artifact(String),
    #[error("transaction {tx}: {what}")]
    Tx { tx: B256, what: String },
}

/// The first ten anvil dev accounts (mnemonic "test test ... junk"), unlocked on the node.
pub fn dev_account(i: usize) -> Address {
    const ACCOUNTS: [Address; 10] = [
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
    ACCOUNTS[i % ACCOUNTS.len()]
}

/// A running anvil.
#[derive(Debug)]
pub struct Anvil {
    child: Child,
    port: u16,
    client: RpcClient,
}

impl Anvil {
    /// Starts anvil with automine (one block per transaction) and call tracing.
    pub async fn spawn() -> Result<Anvil, TestkitError> {
        Anvil::spawn_with(&[]).await
    }

    /// Starts anvil with extra arguments (e.g. `["--block-time", "1"]`, `["--no-mining"]`).
    pub async fn spawn_with(args: &[&str]) -> Result<Anvil, TestkitError> {
        let bin = std::env::var_os("HOLDFAST_ANVIL")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                crate::workspace_root().join("node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil")
            });
        if !bin.exists() {
            return Err(TestkitError::NoAnvil(bin));
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| TestkitError::Start(e.to_string()))?
            .port();
        let child = Command::new(&bin)
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--steps-tracing",
                "--silent",
            ])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| TestkitError::Start(format!("{}: {e}", bin.display())))?;
        // The node dies with this process even when no destructor runs (a killed test).
        let _ = Command::new("sh")
            .args([
                "-c",
                &format!(
                    "while kill -0 {} 2>/dev/null; do sleep 0.5; done; kill {} 2>/dev/null",
                    std::process::id(),
                    child.id()
                ),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let url = format!("http://127.0.0.1:{port}");
        let client = ClientBuilder::default().http(
            url.parse()
                .map_err(|e| TestkitError::Start(format!("{url}: {e}")))?,
        );
        let mut anvil = Anvil {
            child,
            port,
            client,
        };
        let started = Instant::now();
        loop {
            if anvil.rpc("eth_chainId", json!([])).await.is_ok() {
                return Ok(anvil);
            }
            if let Ok(Some(status)) = anvil.child.try_wait() {
                return Err(TestkitError::Start(format!("anvil exited with {status}")));
            }
            if started.elapsed() > Duration::from_secs(20) {
                return Err(TestkitError::Start(
                    "anvil did not answer within 20 s".into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    /// Stops the node now (a node going down mid-run).
    pub fn kill(&mut self) {
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

    pub async fn block_number(&self) -> Result<u64, TestkitError> {
        let v = self.rpc("eth_blockNumber", json!([])).await?;
        hex_u64(&v, "eth_blockNumber")
    }

    /// Sends a transaction from an unlocked dev account and waits for its receipt. With
    /// `gas`, no estimate is made, so a transaction that reverts is still mined (status 0).
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
        if let Some(gas) = gas {
            tx["gas"] = json!(format!("{gas:#x}"));
        }
        let hash: B256 = serde_json::from_value(
            self.rpc("eth_sendTransaction", json!([tx])).await?,
        )
        .map_err(|e| TestkitError::Rpc {
            method: "eth_sendTransaction".into(),
            message: e.to_string(),
        })?;
        for _ in 0..200 {
            let r = self.rpc("eth_getTransactionReceipt", json!([hash])).await?;
            if !r.is_null() {
                return Ok((hash, r));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(TestkitError::Tx {
            tx: hash,
            what: "no receipt after 4 s".into(),
        })
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
                what: format!("reverted: {r}"),
            });
        }
        Ok(hash)
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

pub(crate) fn hex_u64(v: &Value, method: &str) -> Result<u64, TestkitError> {
    v.as_str()
        .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok())
        .ok_or_else(|| TestkitError::Rpc {
            method: method.to_owned(),
            message: format!("not a quantity: {v}"),
        })
}

impl Drop for Anvil {
    fn drop(&mut self) {
        self.kill();
    }
}
