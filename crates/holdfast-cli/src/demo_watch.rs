//! The watch part of `holdfast demo`: a second Safe that Holdfast does not co-sign (a Gnosis
//! Safe 1.1.1, the version Bybit ran) is taken over with its owners' keys used directly on
//! the node — the DELEGATECALL that swaps its singleton, then the sweep — while
//! `holdfast watch` runs in-process, following the head over WebSocket. The demo prints each
//! alert with its latency from the block, the guard service frozen for the Safe by the
//! `freeze` response (and a request for it denied), and the `trace` response following the
//! loot through fresh addresses to a labelled exchange deposit, with the FIFO and haircut
//! amounts and the freeze request written for the exchange.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use alloy::primitives::{Address, B256, Bytes, U256, address};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{SolCall, SolValue};
use anyhow::{Context, bail};
use holdfast_gate::{Gate, Principal, Role};
use holdfast_guard::safe::{Operation, SafeVersion};
use holdfast_intel::{DataDir, IntelIndex, LabelRecord};
use holdfast_primitives::{Category, Confidence};
use holdfast_store::gate::RequestState;
use holdfast_store::watch::{EmbeddedWatchStore, WatchStore};
use holdfast_store::{EmbeddedStore, Store};
use holdfast_watch::engine::BlockTiming;
use holdfast_watch::respond::BoxFuture;
use holdfast_watch::{
    Alert, ChainOptions, DeliveryConfig, DetectorKind, Freezer, IntelView, Responder, Runner,
    RunnerDeps,
};
use serde_json::json;

use crate::demo_cmd::{ALICE, BOB, Demo, bytecode, eth, line};
use crate::watch_cmd::GateFreezer;

const SAFE_111: &str = include_str!("../../../contracts/artifacts/safe-1.1.1/GnosisSafe.json");
const FACTORY_111: &str = include_str!("../../../contracts/artifacts/safe-1.1.1/ProxyFactory.json");
const SWAP: &str = include_str!("../../../contracts/artifacts/holdfast/MasterCopySwap.json");
const SWEEPER: &str = include_str!("../../../contracts/artifacts/holdfast/SweeperImpl.json");

/// anvil's development account 9: pays the attacker's gas money.
const FUNDER: Address = address!("0xa0Ee7A142d267C1f36714E4a8F75612F20a79720");

/// How long the demo waits for the watch to show something before giving up.
const WAIT: Duration = Duration::from_secs(30);

mod abi {
    alloy::sol! {
        function createProxyWithNonce(address _mastercopy, bytes initializer, uint256 saltNonce) external returns (address proxy);
        function approveHash(bytes32 hashToApprove) external;
        function transfer(address to, uint256 amount) external;
        function sweepETH(address to) external;
    }
}

/// The Safe the watch guards, the attacker's setup, and the watch's intel being built
/// meanwhile (reading the shipped intel takes seconds in a debug build).
pub(crate) struct Reserve {
    pub safe: Address,
    swap: Address,
    sweeper: Address,
    attacker: Address,
    deposit: Address,
    intel: tokio::task::JoinHandle<anyhow::Result<Arc<IntelIndex>>>,
}

/// Deploys the reserve — a Gnosis Safe 1.1.1 owned by Alice and Bob, both required, with
/// 3000 ETH — and the attacker's two contracts (deployed ahead, as in the Bybit heist).
/// The Safe's address changes from run to run (a fresh salt), so a freeze left in the data
/// directory by an earlier run does not apply to it.
pub(crate) async fn deploy_reserve(d: &Demo, data_dir: &DataDir) -> anyhow::Result<Reserve> {
    let deposit = PrivateKeySigner::random().address();
    let dir = data_dir.clone();
    let intel = tokio::task::spawn_blocking(move || intel(&dir, deposit));
    let singleton = d.deploy(bytecode(SAFE_111)?).await?;
    let factory = d.deploy(bytecode(FACTORY_111)?).await?;
    let init: Bytes = crate::demo_cmd::abi::setupCall {
        owners: vec![ALICE, BOB],
        threshold: U256::from(2),
        to: Address::ZERO,
        data: Bytes::new(),
        fallbackHandler: Address::ZERO,
        paymentToken: Address::ZERO,
        payment: U256::ZERO,
        paymentReceiver: Address::ZERO,
    }
    .abi_encode()
    .into();
    let salt = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|t| t.as_nanos())
        .unwrap_or_default();
    let create: Bytes = abi::createProxyWithNonceCall {
        _mastercopy: singleton,
        initializer: init,
        saltNonce: U256::from(salt),
    }
    .abi_encode()
    .into();
    let out: Bytes = serde_json::from_value(
        d.chain
            .raw(
                "eth_call",
                json!([{"from": ALICE, "to": factory, "data": create}, "latest"]),
            )
            .await?,
    )?;
    let safe = <Address as SolValue>::abi_decode(&out)?;
    mined(d, ALICE, Some(factory), U256::ZERO, create).await?;
    mined(d, ALICE, Some(safe), eth(3000), Bytes::new()).await?;
    let attacker = PrivateKeySigner::random().address();
    d.chain
        .raw("anvil_impersonateAccount", json!([attacker]))
        .await?;
    d.chain
        .raw("anvil_setBalance", json!([attacker, eth(1)]))
        .await?;
    let swap = deploy_from(d, attacker, bytecode(SWAP)?).await?;
    let sweeper = deploy_from(d, attacker, bytecode(SWEEPER)?).await?;
    Ok(Reserve {
        safe,
        swap,
        sweeper,
        attacker,
        deposit,
        intel,
    })
}

/// Sends and waits for the transaction; fails when it reverted. Returns its hash and block.
async fn mined(
    d: &Demo,
    from: Address,
    to: Option<Address>,
    value: U256,
    data: Bytes,
) -> anyhow::Result<(B256, u64)> {
    let h = d.send(from, to, value, data).await?;
    let inc = d
        .chain
        .inclusion(h)
        .await?
        .context("transaction not mined")?;
    if !inc.success {
        bail!("transaction {h} reverted");
    }
    Ok((h, inc.block_number))
}

async fn deploy_from(d: &Demo, from: Address, code: Bytes) -> anyhow::Result<Address> {
    let (h, _) = mined(d, from, None, U256::ZERO, code).await?;
    d.chain
        .created_address(h)
        .await?
        .context("no contract address")
}

/// What the watch showed, in the order it showed it, with when.
#[derive(Debug, Default)]
struct Timeline {
    alerts: Mutex<Vec<(Alert, Duration)>>,
    /// Block number and the instant the block was announced.
    blocks: Mutex<Vec<(u64, Instant)>>,
    /// Wallet frozen and when.
    frozen: Mutex<Vec<(Address, Instant)>>,
}

impl Timeline {
    /// Waits until `pick` finds something in the alerts.
    async fn alert(&self, what: &str, pick: impl Fn(&Alert) -> bool) -> anyhow::Result<Alert> {
        let until = Instant::now() + WAIT;
        loop {
            if let Some(a) = lock(&self.alerts).iter().find(|(a, _)| pick(a)) {
                return Ok(a.0.clone());
            }
            if Instant::now() > until {
                bail!("the watch raised no {what} within {} s", WAIT.as_secs());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn latency(&self, a: &Alert) -> Duration {
        lock(&self.alerts)
            .iter()
            .find(|(x, _)| x.id == a.id)
            .map(|(_, l)| *l)
            .unwrap_or_default()
    }

    fn announced(&self, block: u64) -> Option<Instant> {
        lock(&self.blocks)
            .iter()
            .find(|(n, _)| *n == block)
            .map(|(_, t)| *t)
    }

    async fn block(&self, number: u64) -> anyhow::Result<()> {
        let until = Instant::now() + WAIT;
        while self.announced(number).is_none() {
            if Instant::now() > until {
                bail!(
                    "the watch did not reach block {number} within {} s",
                    WAIT.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(())
    }

    async fn frozen(&self, wallet: Address) -> anyhow::Result<Instant> {
        let until = Instant::now() + WAIT;
        loop {
            if let Some((_, t)) = lock(&self.frozen).iter().find(|(w, _)| *w == wallet) {
                return Ok(*t);
            }
            if Instant::now() > until {
                bail!(
                    "the guard was not frozen for {wallet} within {} s",
                    WAIT.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The in-process guard service's freeze, noting when it took effect.
#[derive(Debug)]
struct NotingFreezer {
    inner: GateFreezer,
    timeline: Arc<Timeline>,
}

impl Freezer for NotingFreezer {
    fn freeze(&self, wallet: Address, reason: String) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            self.inner.freeze(wallet, reason).await?;
            lock(&self.timeline.frozen).push((wallet, Instant::now()));
            Ok(())
        })
    }
}

struct Intel(Arc<IntelIndex>);

impl IntelView for Intel {
    fn index(&self) -> Arc<IntelIndex> {
        self.0.clone()
    }
}

/// The shipped intel, the data directory's imported labels and the demo exchange's
/// deposit address.
fn intel(data_dir: &DataDir, deposit: Address) -> anyhow::Result<Arc<IntelIndex>> {
    let mut records = holdfast_intel::sources::shipped()
        .context("reading the shipped intel")?
        .records;
    records.extend(data_dir.imported().context("reading imported labels")?);
    let mut r = LabelRecord::new(
        deposit.to_checksum(None),
        "demo",
        Category::Exchange,
        Confidence(90),
    );
    r.name = Some("Demo Exchange".into());
    records.push(r);
    let mut rejected = Vec::new();
    Ok(Arc::new(holdfast_intel::datadir::build(
        &records,
        &mut rejected,
    )))
}

/// The demo's watch file: the reserve's takeover freezes the guard, its drain is traced to
/// any exchange deposit, where a freeze request is written for the exchange.
fn watch_file(ws: &str, chain_id: u64, start: u64, safe: Address) -> String {
    format!(
        r#"
[[chain]]
name = "demo"
rpc = "{ws}"
chain_id = {chain_id}
confirmations = 0
start_block = {start}

[[asset]]
symbol = "ETH"
chain = "demo"
kind = "native"

[[set]]
name = "reserve"
addresses = ["{safe}"]

[[rule]]
name = "reserve-takeover"
description = "Safe singleton or configuration changed"
detector = "critical_storage"
targets = ["reserve"]
severity = "critical"
responses = ["freeze"]

[[rule]]
name = "reserve-drain"
detector = "outflow"
targets = ["reserve"]
severity = "critical"
drain = {{ percent = 20, blocks = 50, assets = ["ETH"] }}
responses = ["freeze", "trace"]
trace = {{ policies = ["fifo", "haircut"], hops = 10, deposit_rule = "loot" }}

[[rule]]
name = "loot"
description = "stolen funds reached an exchange deposit"
detector = "tainted_deposit"
severity = "critical"
responses = ["notify"]
"#
    )
}

fn ms(d: Duration) -> String {
    format!("+{} ms", d.as_millis())
}

fn fact<'a>(a: &'a Alert, name: &str) -> &'a str {
    a.facts
        .iter()
        .find(|f| f.name == name)
        .map_or("", |f| f.value.as_str())
}

/// What the watch section needs from the rest of the demo.
pub(crate) struct Setup<'a> {
    pub demo: &'a Demo,
    pub port: u16,
    pub data_dir: &'a DataDir,
    pub gate: Arc<Gate>,
    pub reserve: Reserve,
}

/// The watch's files for this run (cleared first: a new anvil is a new chain).
fn fresh_dir(data_dir: &DataDir) -> anyhow::Result<PathBuf> {
    let dir = data_dir.root().join("demo-watch");
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("clearing {}", dir.display())),
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

pub(crate) async fn run(mut s: Setup<'_>) -> anyhow::Result<()> {
    let index = (&mut s.reserve.intel)
        .await
        .context("building the watch's intel")??;
    let d = s.demo;
    let r = &s.reserve;
    println!("\n== The watch: a theft that bypasses the guard");
    println!(
        "   reserve: Gnosis Safe 1.1.1 {} (the version Bybit ran), owners Alice and Bob, threshold 2, 3000 ETH",
        r.safe
    );
    println!(
        "     Holdfast is not an owner: nothing passes through the guard, so the owners' keys alone can move it"
    );
    let dir = fresh_dir(s.data_dir)?;
    let deposit = r.deposit;
    let ws = format!("ws://127.0.0.1:{}", s.port);
    let start = d.chain.head_number().await? + 1;
    let text = watch_file(&ws, d.chain_id, start, r.safe);
    let file = dir.join("watch.toml");
    std::fs::write(&file, &text).with_context(|| format!("writing {}", file.display()))?;
    let config = match holdfast_watch::config::validate("demo-watch.toml", &text, &dir) {
        Ok(v) => v.config,
        Err(e) => bail!(
            "the demo's watch file is invalid: {}",
            e.diagnostics()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        ),
    };
    let timeline = Arc::new(Timeline::default());
    let notify_dir = dir.join("freeze-requests");
    let transfers: Arc<dyn Store> = Arc::new(
        EmbeddedStore::open(&dir.join("transfers")).context("opening the watch's transfers")?,
    );
    let watch: Arc<dyn WatchStore> = Arc::new(
        EmbeddedWatchStore::open(&dir.join("watch")).context("opening the watch's state")?,
    );
    let on_alert = {
        let t = timeline.clone();
        Arc::new(move |a: &Alert, latency: Duration| {
            lock(&t.alerts).push((a.clone(), latency));
        })
    };
    let on_block = {
        let t = timeline.clone();
        Arc::new(move |b: &BlockTiming| {
            let announced = Instant::now()
                .checked_sub(b.total)
                .unwrap_or_else(Instant::now);
            lock(&t.blocks).push((b.number, announced));
        })
    };
    let deps = RunnerDeps {
        transfers,
        watch,
        intel: Arc::new(Intel(index)),
        responder: Responder {
            freezer: Some(Arc::new(NotingFreezer {
                inner: GateFreezer(s.gate.clone()),
                timeline: timeline.clone(),
            })),
            labeler: None,
            notify_dir: Some(notify_dir.clone()),
        },
        owner: format!("demo:{}", std::process::id()),
        on_alert: Some(on_alert),
        on_block: Some(on_block),
        env: Box::new(|_| None),
        chain_options: Some(ChainOptions::default()),
        delivery: DeliveryConfig::default(),
    };
    let runner = Runner::start(&config, deps)
        .await
        .context("starting the watch")?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(runner.run(stop_rx));
    // One empty block: the watch has it once it follows the head.
    d.chain.raw("evm_mine", json!([])).await?;
    timeline.block(start).await?;
    println!(
        "   holdfast watch runs in-process on {ws} (WebSocket, new heads), from block {start}: the reserve's takeover freezes the guard, its drain is traced (FIFO and haircut) to any exchange deposit"
    );
    println!("     watch file: {}", file.display());
    println!(
        "     (+N ms on a line: from the node announcing the block to the alert committed, or the guard frozen)"
    );

    let result = attack(&s, &timeline, deposit, &notify_dir).await;
    let _ = stop_tx.send(true);
    match tokio::time::timeout(Duration::from_secs(20), task).await {
        Ok(Ok(Ok(summaries))) => {
            for x in summaries {
                println!(
                    "   the watch stopped: {} blocks, {} alerts",
                    x.blocks, x.alerts
                );
            }
        }
        Ok(Ok(Err(e))) => {
            result?;
            return Err(e).context("the watch failed");
        }
        Ok(Err(e)) => {
            result?;
            bail!("the watch task failed: {e}");
        }
        Err(_) => {
            result?;
            bail!("the watch did not stop within 20 s");
        }
    }
    result
}

async fn attack(
    s: &Setup<'_>,
    timeline: &Timeline,
    deposit: Address,
    notify_dir: &Path,
) -> anyhow::Result<()> {
    let d = s.demo;
    let r = &s.reserve;
    println!("\n   the attack, with the owners' keys straight on the node (no guard in the path):");
    // The owners approve what their screen shows as `transfer(sweeper, 0)`; the operation
    // is DELEGATECALL into MasterCopySwap, whose `transfer` writes slot 0: the singleton.
    let shown: Bytes = abi::transferCall {
        to: r.sweeper,
        amount: U256::ZERO,
    }
    .abi_encode()
    .into();
    let tx = d.safe_tx(r.swap, U256::ZERO, shown, Operation::DelegateCall, 0);
    let hash = tx.safe_tx_hash(SafeVersion::V1_1_1, d.chain_id, r.safe);
    mined(
        d,
        BOB,
        Some(r.safe),
        U256::ZERO,
        abi::approveHashCall {
            hashToApprove: hash,
        }
        .abi_encode()
        .into(),
    )
    .await?;
    // Alice sends it: her approval is the sender's, Bob's the approved hash (v = 1).
    let mut owners = [ALICE, BOB];
    owners.sort();
    let sigs: Vec<u8> = owners
        .iter()
        .flat_map(|o| {
            let mut s = o.into_word().0.to_vec();
            s.extend_from_slice(&[0u8; 32]);
            s.push(1);
            s
        })
        .collect();
    let (takeover_tx, takeover_block) = mined(
        d,
        ALICE,
        Some(r.safe),
        U256::ZERO,
        tx.exec_call(sigs.into()).abi_encode().into(),
    )
    .await?;
    println!(
        "   block {takeover_block}: Alice and Bob sign a \"transfer({}, 0)\" executed as DELEGATECALL into {}, which writes its first argument into slot 0: the singleton (tx {takeover_tx})",
        r.sweeper, r.swap
    );
    let a = timeline
        .alert("takeover alert", |a| {
            a.detector == DetectorKind::CriticalStorage && a.tx_hash == Some(takeover_tx)
        })
        .await?;
    println!(
        "     {} ALERT [{}] {}: {} (block {})",
        ms(timeline.latency(&a)),
        a.severity.name().to_uppercase(),
        a.rule,
        a.title,
        a.block_number
    );
    let frozen_at = timeline.frozen(r.safe).await?;
    let since = timeline
        .announced(a.block_number)
        .map(|t| frozen_at.saturating_duration_since(t))
        .unwrap_or_default();
    println!(
        "     {} FREEZE: the guard service is frozen for {} (response of {})",
        ms(since),
        r.safe,
        a.rule
    );
    let ops = Principal {
        name: "treasury-desk".into(),
        roles: vec![Role::Initiator],
        address: None,
    };
    let body = json!({
        "safe": r.safe, "chainId": d.chain_id, "to": ALICE, "value": "1",
        "data": "0x", "operation": 0, "nonce": "1", "safeTxGas": 0, "baseGas": 0, "gasPrice": "0",
    });
    let o = s.gate.submit(body.to_string().as_bytes(), &ops).await?;
    if o.state != RequestState::Denied {
        bail!("the frozen guard answered {}", line(&o));
    }
    println!(
        "       a request for the reserve now: {} - {}",
        line(&o),
        o.reasons.first().cloned().unwrap_or_default()
    );

    // The attacker's gas money (clean) arrives before the loot: FIFO and haircut then tell
    // the tainted share of what leaves apart.
    let (_, gas_block) = mined(d, FUNDER, Some(r.attacker), eth(2), Bytes::new()).await?;
    println!(
        "   block {gas_block}: the attacker receives 2 ETH of gas money (clean, before the loot: FIFO and haircut will count it differently)"
    );
    let (sweep_tx, sweep_block) = mined(
        d,
        r.attacker,
        Some(r.safe),
        U256::ZERO,
        abi::sweepETHCall { to: r.attacker }.abi_encode().into(),
    )
    .await?;
    println!(
        "   block {sweep_block}: the attacker {} calls sweepETH on the reserve, now running its code (tx {sweep_tx})",
        r.attacker
    );
    let a = timeline
        .alert("drain alert", |a| {
            a.detector == DetectorKind::Outflow && a.tx_hash == Some(sweep_tx)
        })
        .await?;
    println!(
        "     {} ALERT [{}] {}: {} (block {}); following the loot",
        ms(timeline.latency(&a)),
        a.severity.name().to_uppercase(),
        a.rule,
        a.title,
        a.block_number
    );

    // The laundering: two fresh addresses, then the exchange.
    let hop1 = PrivateKeySigner::random().address();
    let hop2 = PrivateKeySigner::random().address();
    for h in [hop1, hop2] {
        d.chain.raw("anvil_impersonateAccount", json!([h])).await?;
    }
    let (_, b1) = mined(d, r.attacker, Some(hop1), eth(2500), Bytes::new()).await?;
    let (_, b2) = mined(d, hop1, Some(hop2), eth(2499), Bytes::new()).await?;
    println!(
        "   blocks {b1}-{b2}: the attacker moves 2500 ETH through fresh addresses {hop1} and {hop2}"
    );
    let (dep_tx, dep_block) = mined(d, hop2, Some(deposit), eth(2498), Bytes::new()).await?;
    println!(
        "   block {dep_block}: 2498 ETH deposited to {deposit}, a deposit address of Demo Exchange (tx {dep_tx})"
    );
    let a = timeline
        .alert("tainted-deposit alert", |a| {
            a.detector == DetectorKind::TaintedDeposit && a.block_number == dep_block
        })
        .await?;
    println!(
        "     {} ALERT [{}] {}: {} (block {})",
        ms(timeline.latency(&a)),
        a.severity.name().to_uppercase(),
        a.rule,
        a.title,
        a.block_number
    );
    println!(
        "       service {}, deposit {}",
        fact(&a, "service"),
        fact(&a, "deposit")
    );
    println!(
        "       tainted amount: FIFO {}, haircut {}",
        fact(&a, "tainted amount (fifo)"),
        fact(&a, "tainted amount (haircut)")
    );
    for f in a.facts.iter().filter(|f| f.name.starts_with("hop ")) {
        println!("       {}: {}", f.name, f.value);
    }
    let request = notify_dir.join(format!("{}.json", a.id));
    let until = Instant::now() + WAIT;
    while !request.exists() {
        if Instant::now() > until {
            bail!("no freeze request at {}", request.display());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!(
        "       freeze request for the exchange written to {}",
        request.display()
    );
    Ok(())
}
