//! `holdfast guard check`, `holdfast policy check`, `holdfast policy test`: exit codes,
//! output, and one check against a real Safe on anvil.

use std::path::{Path, PathBuf};

use alloy::primitives::{Bytes, U256};
use alloy::sol_types::SolCall;
use holdfast_testkit::safe::{self, SafeTx};
use holdfast_testkit::{Anvil, deploy, dev_account, workspace_root};
use serde_json::json;

use crate::{holdfast, stderr, stdout};

fn policy(name: &str) -> String {
    workspace_root()
        .join("policies")
        .join(name)
        .display()
        .to_string()
}

fn write(dir: &Path, name: &str, v: &serde_json::Value) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, v.to_string()).expect("write");
    p
}

#[test]
fn guard_check_exit_codes_follow_the_decision() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let bybit = workspace_root().join("policies/requests/bybit-2025-02-21.json");
    let bybit = bybit.to_str().expect("path");

    let o = holdfast(d, &["guard", "check", "--safe-version", "1.1.1", bybit]);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(out.starts_with("DENY"), "{out}");
    assert!(out.contains("DELEGATECALL outside the allowlist"), "{out}");
    assert!(
        out.contains("0x96221423681A6d52E184D440a8eFCEbB105C7242"),
        "{out}"
    );

    // The cold-wallet policy knows the Safe's version; JSON carries the decision and hash.
    let o = holdfast(
        d,
        &[
            "guard",
            "check",
            "--json",
            "--policy",
            &policy("safe-cold-wallet.toml"),
            bybit,
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    assert_eq!(v["decision"], "deny");
    assert_eq!(v["safe"]["version"], "1.1.1");
    assert_eq!(v["safe"]["version_source"], "policy");
    assert!(
        v["safe"]["safe_tx_hash"]
            .as_str()
            .is_some_and(|h| h.len() == 66)
    );
    assert_eq!(v["simulation"]["status"], "unavailable");
    assert_eq!(v["decoded"][0]["kind"], "delegate_call");

    let hot = policy("exchange-hot-wallet.toml");
    let w = |amount: &str| json!({"wallet": "hot", "asset": "USDC", "amount": amount, "destination": "0x00000000000000000000000000000000000b0b0b", "chainId": 1});
    for (amount, code, head) in [
        ("2500", 0, "ALLOW"),
        ("20000", 3, "HOLD for 30m"),
        ("300000", 4, "REQUIRE 2 APPROVALS"),
    ] {
        let f = write(d, &format!("w{amount}.json"), &w(amount));
        let o = holdfast(
            d,
            &[
                "guard",
                "check",
                "--policy",
                &hot,
                f.to_str().expect("path"),
            ],
        );
        assert_eq!(
            o.status.code(),
            Some(code),
            "{amount}: {}{}",
            stdout(&o),
            stderr(&o)
        );
        assert!(stdout(&o).starts_with(head), "{amount}: {}", stdout(&o));
    }

    // Errors: exit 2, no decision printed.
    let bad = d.join("bad.json");
    std::fs::write(
        &bad,
        "{\"wallet\": \"hot\", \"asset\": \"USDC\", \"amount\": \"1\", \"destination\": \"0x12\"}",
    )
    .expect("write");
    let o = holdfast(
        d,
        &[
            "guard",
            "check",
            "--policy",
            &hot,
            bad.to_str().expect("path"),
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(stdout(&o), "");
    assert!(stderr(&o).contains("destination"), "{}", stderr(&o));
    let o = holdfast(d, &["guard", "check", bybit]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--safe-version"), "{}", stderr(&o));
    let o = holdfast(
        d,
        &["guard", "check", "--policy", "/nonexistent.toml", bybit],
    );
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn policy_check_and_test() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    for name in [
        "default",
        "safe-cold-wallet",
        "exchange-hot-wallet",
        "defi-treasury",
    ] {
        let o = holdfast(d, &["policy", "check", &policy(&format!("{name}.toml"))]);
        assert_eq!(o.status.code(), Some(0), "{name}: {}", stderr(&o));
        if name != "default" {
            let o = holdfast(
                d,
                &[
                    "policy",
                    "test",
                    &policy(&format!("{name}.toml")),
                    &policy(&format!("{name}.cases.toml")),
                ],
            );
            assert_eq!(
                o.status.code(),
                Some(0),
                "{name}: {}{}",
                stdout(&o),
                stderr(&o)
            );
            assert!(stdout(&o).contains("0 failed"), "{}", stdout(&o));
        }
    }
    let typo = d.join("typo.toml");
    std::fs::write(
        &typo,
        "[policy]\nname = \"x\"\n\n[[rule]]\nname = \"r\"\naction = \"alow\"\n",
    )
    .expect("write");
    let o = holdfast(d, &["policy", "check", typo.to_str().expect("path")]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(
        e.contains("typo.toml:6") && e.contains("rule[0].action") && e.contains("\"alow\""),
        "{e}"
    );

    let cases = d.join("wrong.cases.toml");
    std::fs::write(
        &cases,
        "[[case]]\nname = \"wrongly expected\"\nrequest = { wallet = \"hot\", asset = \"ETH\", amount = \"1\", destination = \"0x098B716B8Aaf21512996dC57EB0615e2383E2f96\", chainId = 1 }\nexpect = \"allow\"\n",
    )
    .expect("write");
    let o = holdfast(
        d,
        &[
            "policy",
            "test",
            &policy("exchange-hot-wallet.toml"),
            cases.to_str().expect("path"),
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("FAIL  wrongly expected: expected allow, got deny"),
        "{}",
        stdout(&o)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn guard_check_simulates_on_a_real_safe() -> Result<(), Box<dyn std::error::Error>> {
    let node = Anvil::spawn().await?;
    let (a, b, attacker) = (dev_account(0), dev_account(1), dev_account(9));
    let infra = deploy::safe_111(&node, a).await?;
    let safe_addr = infra.create_safe(&node, a, &[a, b], 2).await?;
    node.call_ok(
        a,
        safe_addr,
        U256::from(10u64).pow(U256::from(21)),
        Bytes::new(),
    )
    .await?;
    let swap = deploy::holdfast(&node, attacker, "MasterCopySwap").await?;
    alloy::sol! { function transfer(address to, uint256 amount) external; }
    let tx = SafeTx::delegatecall(
        swap,
        transferCall {
            to: attacker,
            amount: U256::ZERO,
        }
        .abi_encode()
        .into(),
    );
    let nonce = safe::nonce(&node, safe_addr).await?;
    let dir = tempfile::tempdir()?;
    let f = write(
        dir.path(),
        "req.json",
        &json!({
            "safe": safe_addr, "to": tx.to, "value": "0", "data": tx.data, "operation": 1, "nonce": nonce.to_string(),
            "safeTxGas": 0, "baseGas": 0, "gasPrice": "0",
        }),
    );
    let url = node.http_url();
    let (d, f2) = (dir.path().to_owned(), f.clone());
    let o = tokio::task::spawn_blocking(move || {
        holdfast(
            &d,
            &[
                "guard",
                "check",
                "--json",
                "--rpc",
                &url,
                f2.to_str().unwrap_or_default(),
            ],
        )
    })
    .await?;
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o))?;
    assert_eq!(v["safe"]["version_source"], "node");
    assert_eq!(
        v["safe"]["safe_tx_hash"],
        json!(safe::transaction_hash(&node, safe_addr, &tx, nonce).await?)
    );
    assert_eq!(v["simulation"]["status"], "ran");
    let writes = v["simulation"]["critical_writes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        writes.iter().any(|w| w["what"] == "safe_singleton"),
        "{writes:?}"
    );
    // Human output names the write.
    let (d, url) = (dir.path().to_owned(), node.http_url());
    let o = tokio::task::spawn_blocking(move || {
        holdfast(
            &d,
            &[
                "guard",
                "check",
                "--rpc",
                &url,
                f.to_str().unwrap_or_default(),
            ],
        )
    })
    .await?;
    assert!(
        stdout(&o).contains("CRITICAL: writes the Safe's singleton"),
        "{}",
        stdout(&o)
    );
    Ok(())
}

#[test]
fn the_demo_tells_its_story_and_leaves_a_verifiable_audit_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let o = holdfast(dir.path(), &["demo"]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{}", stderr(&o));
    for needle in [
        "10 ETH: ALLOWED, co-signed",
        "executed on chain with Alice's and Bob's signatures",
        "1.5 ETH: ALLOWED, sent",
        "80 ETH: HELD",
        "after the window: ALLOWED, co-signed",
        "the Bybit payload",
        "DENIED by rule \"DELEGATECALL outside Safe's libraries\"",
        "the simulation shows it writing the Safe's singleton",
        "Lazarus Group's address (OFAC SDN), 5 ETH: DENIED by rule \"screening",
        "3 sent, 5 denied",
        // The watch: the takeover of a Safe Holdfast does not co-sign, alerted in its block
        // (naming the DELEGATECALL), the guard frozen for it, the drain, the trace to the
        // exchange deposit with both policies' amounts and the freeze request written.
        "== The watch: a theft that bypasses the guard",
        "ALERT [CRITICAL] reserve-takeover:",
        "inside a DELEGATECALL",
        "FREEZE: the guard service is frozen for",
        "a request for the reserve now: DENIED by rule \"emergency freeze\"",
        "ALERT [CRITICAL] reserve-drain:",
        "3000 ETH lost",
        "ALERT [CRITICAL] loot: Stolen funds reached Demo Exchange deposit",
        "service Demo Exchange (exchange)",
        "tainted amount: FIFO 2496 ETH, haircut 2496.3",
        "freeze request for the exchange written to",
        "the watch stopped: 8 blocks, 3 alerts",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
    // Each watch line carries its latency from the block, and each alert is raised in the
    // block the story names for its transaction.
    let watch_part = out.split("== The watch").nth(1).expect("watch section");
    let timed: Vec<&str> = watch_part
        .lines()
        .filter(|l| l.contains("ALERT [") || l.contains("FREEZE:"))
        .collect();
    assert_eq!(timed.len(), 4, "{watch_part}");
    for l in &timed {
        let ms = l
            .trim_start()
            .strip_prefix('+')
            .and_then(|r| r.split_once(" ms "))
            .and_then(|(n, _)| n.parse::<u64>().ok());
        assert!(ms.is_some(), "no latency on {l:?}");
    }
    let block_of = |marker: &str| -> String {
        let l = watch_part
            .lines()
            .find(|l| l.contains(marker))
            .unwrap_or_else(|| panic!("no line with {marker:?}"));
        l.trim_start()
            .strip_prefix("block ")
            .and_then(|r| r.split_once(':'))
            .map(|(n, _)| n.to_owned())
            .unwrap_or_else(|| panic!("no block in {l:?}"))
    };
    for (event, alert) in [
        (
            "executed as DELEGATECALL",
            "ALERT [CRITICAL] reserve-takeover:",
        ),
        ("calls sweepETH", "ALERT [CRITICAL] reserve-drain:"),
        ("deposited to", "ALERT [CRITICAL] loot:"),
    ] {
        let b = block_of(event);
        let a = watch_part
            .lines()
            .find(|l| l.contains(alert))
            .expect("alert line");
        assert!(
            a.contains(&format!("(block {b})")),
            "{alert} not raised in block {b}: {a}"
        );
    }
    let requests: Vec<_> = std::fs::read_dir(dir.path().join("demo-watch/freeze-requests"))
        .expect("freeze requests")
        .collect();
    assert_eq!(requests.len(), 1);
    let v = holdfast(dir.path(), &["audit", "verify"]);
    assert_eq!(v.status.code(), Some(0), "{}", stdout(&v));
    assert!(stdout(&v).contains("audit log intact"));
    let e = holdfast(dir.path(), &["audit", "export"]);
    let lines: Vec<serde_json::Value> = stdout(&e)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert!(lines.len() > 20);
    assert_eq!(lines[0]["seq"], 1);
}
