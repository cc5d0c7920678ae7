//! `holdfast demo`: a local chain with a real Safe on which Holdfast is a required co-signer
//! and a hot wallet whose key Holdfast holds, normal traffic, and a scripted Lazarus-style
//! attack: the Bybit DELEGATECALL, a drained-hot-key withdrawal burst, a transfer to a
//! sanctioned address. Prints what was allowed, held and denied and why, and leaves the
//! audit log in the data directory for `holdfast audit verify` / `export`. Then the watch
//! (`demo_watch`): a second Safe that Holdfast does not co-sign is taken over and drained
//! with its owners' keys, and the in-process watch alerts, freezes and traces the loot.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::primitives::{Address, B256, Bytes, U256, address};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{SolCall, SolValue};
use anyhow::{Context, bail};
use holdfast_chain::ChainSource;
use holdfast_gate::signer::LocalKeySigner;
use holdfast_gate::{Gate, GateConfig, Outcome, Principal, Role};
use holdfast_guard::safe::{Operation, SafeTx};
use holdfast_guard::{Guard, Policy};
use holdfast_intel::DataDir;
use holdfast_store::gate::{EmbeddedGateStore, RequestState};
use serde_json::json;

const SAFE: &str = include_str!("../../../contracts/artifacts/safe-1.4.1/Safe.json");
const FACTORY: &str = include_str!("../../../contracts/artifacts/safe-1.4.1/SafeProxyFactory.json");
const MULTISEND: &str =
    include_str!("../../../contracts/artifacts/safe-1.4.1/MultiSendCallOnly.json");
const SWAP: &str = include_str!("../../../contracts/artifacts/holdfast/MasterCopySwap.json");

/// Safe's canonical MultiSendCallOnly 1.4.1.
const MSCO: Address = address!("0x9641d764fc13c8B624c04430C7356C1C7C8102e2");
/// OFAC SDN: LAZARUS GROUP (the Ronin bridge exploiter).
const LAZARUS: Address = address!("0x098B716B8Aaf21512996dC57EB0615e2383E2f96");
/// anvil's first two development accounts: the Safe's human owners, and the funder.
pub(crate) const ALICE: Address = address!("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266");
pub(crate) const BOB: Address = address!("0x70997970C51812dc3A010C7d01b50e0d17dc79C8");

pub(crate) mod abi {
    alloy::sol! {
        function setup(address[] owners, uint256 threshold, address to, bytes data, address fallbackHandler, address paymentToken, uint256 payment, address paymentReceiver) external;
        function createProxyWithNonce(address singleton, bytes initializer, uint256 saltNonce) external returns (address proxy);
        function transfer(address to, uint256 amount) external;
    }
}

pub(crate) fn bytecode(artifact: &str) -> anyhow::Result<Bytes> {
    let v: serde_json::Value = serde_json::from_str(artifact)?;
    Ok(serde_json::from_value(v["bytecode"].clone())?)
}

pub(crate) fn eth(n: u64) -> U256 {
    U256::from(n) * U256::from(10u64).pow(U256::from(18))
}

/// anvil from PATH, `HOLDFAST_ANVIL`, or the copy `scripts/install-node-tools` put in
/// `node_modules` (looked for from the working directory and the binary's folders up).
fn find_anvil() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("HOLDFAST_ANVIL") {
        return Ok(PathBuf::from(p));
    }
    let rel = "node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil";
    let mut roots: Vec<PathBuf> = std::env::current_dir().into_iter().collect();
    if let Ok(exe) = std::env::current_exe() {
        roots.extend(exe.ancestors().map(PathBuf::from));
    }
    for r in roots {
        for dir in r.ancestors() {
            let c = dir.join(rel);
            if c.is_file() {
                return Ok(c);
            }
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for d in std::env::split_paths(&path) {
            if d.join("anvil").is_file() {
                return Ok(d.join("anvil"));
            }
        }
    }
    bail!(
        "anvil not found: run ./scripts/install-node-tools (or put anvil on PATH, or set HOLDFAST_ANVIL)"
    )
}

struct Node(Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The chain and the vault, with the few steps the script needs.
pub(crate) struct Demo {
    pub chain: Arc<ChainSource>,
    pub vault: Address,
    pub chain_id: u64,
}

pub(crate) fn line(o: &Outcome) -> String {
    let head = match o.state {
        RequestState::Denied => "DENIED".to_owned(),
        RequestState::Held => "HELD".to_owned(),
        RequestState::AwaitingApprovals => "NEEDS APPROVALS".to_owned(),
        RequestState::Signed => "ALLOWED, co-signed".to_owned(),
        RequestState::Broadcast | RequestState::Included => "ALLOWED, sent".to_owned(),
        RequestState::Failed => format!("FAILED: {}", o.error.clone().unwrap_or_default()),
        other => other.name().to_owned(),
    };
    let rule = o
        .rule
        .as_ref()
        .map(|r| format!(" by rule {r:?}"))
        .unwrap_or_default();
    format!("{head}{rule}")
}

impl Demo {
    pub(crate) async fn send(
        &self,
        from: Address,
        to: Option<Address>,
        value: U256,
        data: Bytes,
    ) -> anyhow::Result<B256> {
        let mut tx = json!({"from": from, "value": value, "data": data, "gas": "0x1c9c380"});
        if let Some(to) = to {
            tx["to"] = json!(to);
        }
        let h = self.chain.send_transaction(&tx).await?;
        for _ in 0..200 {
            if self.chain.inclusion(h).await?.is_some() {
                return Ok(h);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        bail!("transaction {h} was not mined")
    }

    pub(crate) async fn deploy(&self, code: Bytes) -> anyhow::Result<Address> {
        let h = self.send(ALICE, None, U256::ZERO, code).await?;
        self.chain
            .created_address(h)
            .await?
            .context("no contract address")
    }

    pub(crate) fn safe_tx(
        &self,
        to: Address,
        value: U256,
        data: Bytes,
        operation: Operation,
        nonce: u64,
    ) -> SafeTx {
        SafeTx {
            to,
            value,
            data,
            operation,
            safe_tx_gas: U256::ZERO,
            base_gas: U256::ZERO,
            gas_price: U256::ZERO,
            gas_token: Address::ZERO,
            refund_receiver: Address::ZERO,
            nonce: U256::from(nonce),
        }
    }

    async fn propose(&self, gate: &Gate, tx: &SafeTx, who: &Principal) -> anyhow::Result<Outcome> {
        let body = json!({
            "safe": self.vault, "chainId": self.chain_id, "to": tx.to, "value": tx.value.to_string(), "data": tx.data,
            "operation": tx.operation.as_u8(), "nonce": tx.nonce.to_string(), "safeTxGas": 0, "baseGas": 0, "gasPrice": "0",
        });
        Ok(gate.submit(body.to_string().as_bytes(), who).await?)
    }

    /// The owners' signatures (anvil's `eth_sign` of the unlocked accounts, Safe's eth_sign
    /// form) with Holdfast's, then `execTransaction`.
    async fn execute(&self, tx: &SafeTx, holdfast: (Address, Bytes)) -> anyhow::Result<()> {
        let hash = tx.safe_tx_hash(
            holdfast_guard::safe::SafeVersion::V1_4_1,
            self.chain_id,
            self.vault,
        );
        let mut sigs = vec![(holdfast.0, holdfast.1.to_vec())];
        for owner in [ALICE, BOB] {
            let s: Bytes =
                serde_json::from_value(self.chain.raw("eth_sign", json!([owner, hash])).await?)?;
            let mut s = s.to_vec();
            if let Some(v) = s.last_mut() {
                *v += 4; // eth_sign signatures are v + 4 for the Safe
            }
            sigs.push((owner, s));
        }
        sigs.sort_by_key(|(a, _)| *a);
        let blob: Vec<u8> = sigs.into_iter().flat_map(|(_, s)| s).collect();
        self.send(
            ALICE,
            Some(self.vault),
            U256::ZERO,
            tx.exec_call(blob.into()).abi_encode().into(),
        )
        .await?;
        Ok(())
    }

    async fn balance(&self, who: Address) -> anyhow::Result<U256> {
        Ok(serde_json::from_value(
            self.chain
                .raw("eth_getBalance", json!([who, "latest"]))
                .await?,
        )?)
    }
}

fn policy(
    vault: Address,
    hot: Address,
    exchange: Address,
    approvers: &[Address],
    reserve: Address,
) -> String {
    let approvers = approvers
        .iter()
        .map(|a| format!("\"{a}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"
[policy]
name = "demo"
description = "The demo's cold vault (a Safe Holdfast co-signs) and hot wallet (Holdfast's key)."

[wallets.vault]
address = "{vault}"
safe_version = "1.4.1"

[wallets.hot]
address = "{hot}"

# The watch part's Safe: Holdfast is not an owner, but a freeze of it is enforced here.
[wallets.reserve]
address = "{reserve}"
safe_version = "1.1.1"

[assets.ETH]
native = true
decimals = 18
usd = "3000"

[lists]
exchange = ["{exchange}"]
delegatecall-targets = ["safe:multisend-call-only"]

[groups.officers]
members = [{approvers}]

[[rule]]
name = "screening: sanctioned or DPRK counterparty"
when = {{ counterparty_risk = "high" }}
action = "deny"

[[rule]]
name = "DELEGATECALL outside Safe's libraries"
when = {{ delegatecall_to_unlisted = "delegatecall-targets" }}
action = "deny"

[[rule]]
name = "hidden write to a critical slot"
when = {{ hidden_critical_write = true }}
action = "deny"

[[rule]]
name = "simulation failed"
when = {{ simulation = ["failed", "timed_out", "reverted", "inner_failed"] }}
action = "deny"

[[rule]]
name = "configuration change"
when = {{ call = ["safe_config_change", "upgrade", "admin_change"] }}
action = "require_approvals"
approvals = 2
group = "officers"

[[rule]]
name = "hot wallet: more than 20 ETH in an hour"
when = {{ wallet = ["hot"], velocity = {{ window = "1h", amount_above = "20", asset = "ETH" }} }}
action = "deny"

[[rule]]
name = "hot wallet withdrawal"
when = {{ wallet = ["hot"], asset_in = ["ETH"] }}
action = "allow"

[[rule]]
name = "large vault payout"
when = {{ wallet = ["vault"], asset_in = ["ETH"], amount_above = "50" }}
action = "hold"
hold = "3s"

[[rule]]
name = "vault payout to the exchange's hot wallet"
when = {{ wallet = ["vault"], destination_in = "exchange" }}
action = "allow"
"#
    )
}

pub fn run(data_dir: &DataDir) -> anyhow::Result<std::process::ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(2)
        .build()
        .context("starting the async runtime")?;
    rt.block_on(demo(data_dir))?;
    Ok(std::process::ExitCode::SUCCESS)
}

async fn demo(data_dir: &DataDir) -> anyhow::Result<()> {
    let anvil = find_anvil()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let _node = Node(
        Command::new(&anvil)
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--silent",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", anvil.display()))?,
    );
    let url = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let chain = loop {
        match ChainSource::connect(holdfast_guard::rpc::source_config(&url)).await {
            Ok(c) => break Arc::new(c),
            Err(_) if started.elapsed() < Duration::from_secs(20) => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => return Err(e).context("anvil did not answer"),
        }
    };
    let chain_id = chain.chain_id();
    println!(
        "== Holdfast demo: anvil {} on {url} (chain {chain_id})",
        anvil.display()
    );

    // Holdfast's keys (fresh for the demo; in production an encrypted keystore, [signer]
    // in the service configuration): one co-signs the vault, one is the hot wallet.
    let cosigner = PrivateKeySigner::random();
    let hot_key = PrivateKeySigner::random();
    let hot = hot_key.address();
    let exchange = Address::repeat_byte(0xee);
    let officers: Vec<Address> = (0..3)
        .map(|_| PrivateKeySigner::random().address())
        .collect();
    let mut d = Demo {
        chain: chain.clone(),
        vault: Address::ZERO,
        chain_id,
    };
    // The vault: a Safe 1.4.1 whose owners are Alice, Bob and Holdfast, all three required.
    let singleton = d.deploy(bytecode(SAFE)?).await?;
    let factory = d.deploy(bytecode(FACTORY)?).await?;
    let msco = d.deploy(bytecode(MULTISEND)?).await?;
    let code = chain.raw("eth_getCode", json!([msco, "latest"])).await?;
    chain.raw("anvil_setCode", json!([MSCO, code])).await?;
    let init: Bytes = abi::setupCall {
        owners: vec![cosigner.address(), ALICE, BOB],
        threshold: U256::from(3),
        to: Address::ZERO,
        data: Bytes::new(),
        fallbackHandler: Address::ZERO,
        paymentToken: Address::ZERO,
        payment: U256::ZERO,
        paymentReceiver: Address::ZERO,
    }
    .abi_encode()
    .into();
    let create: Bytes = abi::createProxyWithNonceCall {
        singleton,
        initializer: init,
        saltNonce: U256::ZERO,
    }
    .abi_encode()
    .into();
    // The proxy's address is what the creation returns: ask first, then create.
    let out: Bytes = serde_json::from_value(
        chain
            .raw(
                "eth_call",
                json!([{"from": ALICE, "to": factory, "data": create}, "latest"]),
            )
            .await?,
    )?;
    let vault = <Address as SolValue>::abi_decode(&out)?;
    d.send(ALICE, Some(factory), U256::ZERO, create).await?;
    d.vault = vault;
    d.send(ALICE, Some(vault), eth(1000), Bytes::new()).await?;
    d.send(BOB, Some(hot), eth(100), Bytes::new()).await?;
    println!(
        "   vault: Safe 1.4.1 {vault}, owners Alice, Bob and Holdfast ({}), threshold 3, 1000 ETH",
        cosigner.address()
    );
    println!("   hot wallet: {hot} (Holdfast holds its key), 100 ETH");
    let reserve = crate::demo_watch::deploy_reserve(&d, data_dir).await?;

    // The guard service, with its state and audit log in the data directory.
    let policy = Policy::parse(
        "demo-policy.toml",
        &policy(vault, hot, exchange, &officers, reserve.safe),
    )?;
    let intel = holdfast_intel::load(Some(data_dir)).context("loading intel")?;
    let guard = Guard::new(Arc::new(policy), Arc::new(intel.index));
    let store_path = data_dir.root().join("store").join("gate");
    let store = Arc::new(EmbeddedGateStore::open(&store_path).with_context(|| {
        format!(
            "opening {} (is a `holdfast serve` using it?)",
            store_path.display()
        )
    })?);
    let config = GateConfig {
        rpc: Some(url.clone()),
        fork_max_age: Duration::ZERO,
        ..GateConfig::default()
    };
    // The co-signer key signs the vault's Safe transactions, the hot key the withdrawals:
    // the demo runs one service per key, over one store and one audit log.
    let vault_gate = Arc::new(Gate::new(
        store.clone(),
        guard.clone(),
        Some(chain.clone()),
        Some(Arc::new(LocalKeySigner::new(cosigner.clone()))),
        config.clone(),
    ));
    let hot_gate = Arc::new(Gate::new(
        store,
        guard,
        Some(chain.clone()),
        Some(Arc::new(LocalKeySigner::new(hot_key))),
        config,
    ));
    let treasury = Principal {
        name: "treasury-desk".into(),
        roles: vec![Role::Initiator],
        address: None,
    };
    let withdrawals = Principal {
        name: "withdrawal-service".into(),
        roles: vec![Role::Initiator],
        address: None,
    };

    println!("\n== Normal traffic");
    let tx = d.safe_tx(exchange, eth(10), Bytes::new(), Operation::Call, 0);
    let o = d.propose(&vault_gate, &tx, &treasury).await?;
    println!("   vault -> exchange hot wallet, 10 ETH: {}", line(&o));
    if let (Some(sig), RequestState::Signed) = (o.signature.clone(), o.state) {
        d.execute(&tx, (cosigner.address(), sig)).await?;
        println!(
            "     executed on chain with Alice's and Bob's signatures; the exchange has {} wei",
            d.balance(exchange).await?
        );
    }
    let customer = Address::repeat_byte(0x0c);
    let w = json!({"wallet": "hot", "asset": "ETH", "amount": "1.5", "destination": customer, "chainId": chain_id, "id": "w-1"});
    let o = hot_gate
        .submit(w.to_string().as_bytes(), &withdrawals)
        .await?;
    println!(
        "   hot wallet -> customer, 1.5 ETH: {} (tx {})",
        line(&o),
        o.tx_hash.map(|h| h.to_string()).unwrap_or_default()
    );
    let tx = d.safe_tx(exchange, eth(80), Bytes::new(), Operation::Call, 1);
    let o = d.propose(&vault_gate, &tx, &treasury).await?;
    let wait = o
        .release_at
        .unwrap_or_default()
        .saturating_sub(holdfast_gate::service::now());
    println!(
        "   vault -> exchange hot wallet, 80 ETH: {}, released in {wait} s unless an operator cancels it",
        line(&o)
    );
    let held_id = o.id.clone();
    tokio::time::sleep(Duration::from_secs(4)).await;
    vault_gate.tick().await?;
    let o = vault_gate.status(&held_id).await?;
    println!("     after the window: {}", line(&o));
    if let Some(sig) = o.signature.clone() {
        d.execute(&tx, (cosigner.address(), sig)).await?;
        println!("     executed on chain");
    }

    println!("\n== Lazarus-style attempts");
    let swap = d.deploy(bytecode(SWAP)?).await?;
    let shown = abi::transferCall {
        to: Address::repeat_byte(0xba),
        amount: U256::ZERO,
    }
    .abi_encode();
    let bybit = d.safe_tx(swap, U256::ZERO, shown.into(), Operation::DelegateCall, 2);
    let o = d.propose(&vault_gate, &bybit, &treasury).await?;
    println!(
        "   the Bybit payload (signers see `transfer(..., 0)`, the bytes DELEGATECALL into the attacker's contract): {}",
        line(&o)
    );
    for r in o.reasons.iter().take(2) {
        println!("     - {r}");
    }
    if let Some(sim) = o.report.as_ref().and_then(|r| r.simulation.simulation()) {
        for w in &sim.critical_writes {
            println!(
                "     - the simulation shows it writing {} of {}: {} -> {}",
                w.what.describe(),
                w.account,
                Address::from_word(w.before),
                Address::from_word(w.after)
            );
        }
    }
    let o = d
        .propose(
            &vault_gate,
            &d.safe_tx(LAZARUS, eth(5), Bytes::new(), Operation::Call, 2),
            &treasury,
        )
        .await?;
    println!(
        "   vault -> the Lazarus Group's address (OFAC SDN), 5 ETH: {}",
        line(&o)
    );
    if let Some(r) = o.reasons.first() {
        println!("     - {r}");
    }
    println!("   a drained hot key: 8 withdrawals of 5 ETH to fresh addresses, back to back");
    let (mut sent, mut denied) = (0, 0);
    for i in 0..8u8 {
        let w = json!({"wallet": "hot", "asset": "ETH", "amount": "5", "destination": Address::repeat_byte(0x40 + i), "chainId": chain_id, "id": format!("burst-{i}")});
        let o = hot_gate
            .submit(w.to_string().as_bytes(), &withdrawals)
            .await?;
        match o.state {
            RequestState::Denied => {
                denied += 1;
                if denied == 1 {
                    println!(
                        "     withdrawal {}: {} - {}",
                        i + 1,
                        line(&o),
                        o.reasons.last().cloned().unwrap_or_default()
                    );
                }
            }
            _ => sent += 1,
        }
    }
    println!("     {sent} sent, {denied} denied: the burst is stopped at the hourly limit");

    crate::demo_watch::run(crate::demo_watch::Setup {
        demo: &d,
        port,
        data_dir,
        gate: vault_gate.clone(),
        reserve,
    })
    .await?;

    let entries = vault_gate.store().audit(1, 1_000_000)?;
    println!(
        "\n== Audit log: {} entries, hash-chained, in {}\n   holdfast --data-dir {} audit verify\n   holdfast --data-dir {} audit export",
        entries.len(),
        store_path.display(),
        data_dir.root().display(),
        data_dir.root().display()
    );
    Ok(())
}
