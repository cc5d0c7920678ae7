//! `holdfast guard check` on requests as they are published (issue 13): the Transaction
//! Service's JSON without a chain id (`--chain-id`, and none needed before Safe 1.3.0), the
//! executed Bybit transaction with its confirmations and packed signatures, the gas-refund
//! drain, and a request that names a key twice.

use holdfast_testkit::workspace_root;

use crate::{holdfast, stderr, stdout};

fn file(rel: &str) -> String {
    workspace_root().join(rel).display().to_string()
}

const EXECUTED: &str = "policies/requests/bybit-2025-02-21-executed.json";

/// Item 6: Safe 1.1.1's hash has no chain id, so a request without one is decided.
#[test]
fn a_safe_before_1_3_0_needs_no_chain_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let o = holdfast(
        dir.path(),
        &["guard", "check", "--safe-version", "1.1.1", &file(EXECUTED)],
    );
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}{}", stderr(&o));
    assert!(
        !stderr(&o).contains("chain id is unknown"),
        "{}",
        stderr(&o)
    );
    assert!(out.contains("DELEGATECALL outside the allowlist"), "{out}");
    assert!(
        out.contains("0xb3476d061aeb8fc1d605a873c483a2402d88a68a9cdd1a8b47655dd55ba004f8"),
        "the published safeTxHash: {out}"
    );
    assert!(out.contains("no chain id"), "{out}");
}

/// Item 6: from 1.3.0 the chain is needed; `--chain-id` gives it, and must agree with a
/// request that names one.
#[test]
fn chain_id_is_given_by_flag_and_must_agree_with_the_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let o = holdfast(
        d,
        &["guard", "check", "--safe-version", "1.4.1", &file(EXECUTED)],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    assert!(stderr(&o).contains("--chain-id"), "{}", stderr(&o));

    let o = holdfast(
        d,
        &[
            "guard",
            "check",
            "--safe-version",
            "1.4.1",
            "--chain-id",
            "1",
            &file(EXECUTED),
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("on chain 1"), "{}", stdout(&o));

    // The drain request says chainId 1.
    let o = holdfast(
        d,
        &[
            "guard",
            "check",
            "--safe-version",
            "1.4.1",
            "--chain-id",
            "10",
            &file("policies/requests/safe-gas-refund-drain.json"),
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("chainId") && stderr(&o).contains("--chain-id"),
        "{}",
        stderr(&o)
    );
    assert_eq!(stdout(&o), "", "nothing decided");
}

/// Item 5: the executed transaction as published, offline: no claim that its signers are
/// not owners, denied for the DELEGATECALL by the cold-wallet policy.
#[test]
fn the_published_executed_transaction_is_denied_for_the_delegatecall_not_its_signatures() {
    let dir = tempfile::tempdir().expect("tempdir");
    let o = holdfast(
        dir.path(),
        &[
            "guard",
            "check",
            "--policy",
            &file("policies/safe-cold-wallet.toml"),
            &file(EXECUTED),
        ],
    );
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}{}", stderr(&o));
    assert!(
        out.starts_with("DENY  by rule \"DELEGATECALL outside Safe's libraries\""),
        "{out}"
    );
    assert!(!out.contains("not an owner"), "{out}");
    assert!(!out.contains("NOT VALID"), "{out}");
    assert_eq!(out.matches("owners are not known here").count(), 3, "{out}");
}

/// Item 1: the issue's reproduction, denied by the built-in policy naming the refund.
#[test]
fn the_gas_refund_drain_is_denied_naming_the_refund() {
    let dir = tempfile::tempdir().expect("tempdir");
    let o = holdfast(
        dir.path(),
        &[
            "guard",
            "check",
            "--safe-version",
            "1.4.1",
            &file("policies/requests/safe-gas-refund-drain.json"),
        ],
    );
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}{}", stderr(&o));
    assert!(out.starts_with("DENY"), "{out}");
    assert!(
        out.contains("0x098B716B8Aaf21512996dC57EB0615e2383E2f96 (destination, gas refund receiver) is severe risk"),
        "{out}"
    );
    assert!(out.contains("pays a gas refund of at most"), "{out}");
}

/// Item 12: a key given twice is an error naming it; nothing is decided.
#[test]
fn a_request_naming_a_key_twice_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("dup.json");
    std::fs::write(
        &p,
        r#"{"from":"0xF977814e90dA44bFA03b6295A0616a897441aceC","to":"0x098B716B8Aaf21512996dC57EB0615e2383E2f96","value":"1","to":"0xF977814e90dA44bFA03b6295A0616a897441aceC"}"#,
    )
    .expect("write");
    let o = holdfast(dir.path(), &["guard", "check", p.to_str().expect("utf8")]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("key \"to\" appears more than once"),
        "{}",
        stderr(&o)
    );
    assert_eq!(stdout(&o), "");
}
