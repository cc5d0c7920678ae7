//! The example policies' own cases (policies/*.cases.toml) pass, as `holdfast policy test`
//! runs them.

use holdfast_guard::cases;

use crate::support;

#[test]
fn every_example_policy_passes_its_cases() {
    let root = holdfast_testkit::workspace_root().join("policies");
    for name in ["safe-cold-wallet", "exchange-hot-wallet", "defi-treasury"] {
        let guard = support::guard(&support::policy_file(&format!("{name}.toml")));
        let path = root.join(format!("{name}.cases.toml"));
        let text = std::fs::read_to_string(&path).expect("cases");
        let results = cases::run(&guard, &path, &text).unwrap_or_else(|e| panic!("{e}"));
        assert!(results.len() >= 10, "{name}: {} cases", results.len());
        let failed: Vec<_> = results.iter().filter(|r| !r.pass).collect();
        assert!(failed.is_empty(), "{name}: {failed:#?}");
        for d in ["allow", "deny", "require_approvals"] {
            assert!(results.iter().any(|r| r.got == d), "{name} has no {d} case");
        }
    }
}

#[test]
fn a_case_that_expects_the_wrong_decision_fails() {
    let guard = support::guard(&support::policy_file("exchange-hot-wallet.toml"));
    let text = r#"
[[case]]
name = "a withdrawal to the Lazarus Group, wrongly expected to pass"
request = { wallet = "hot", asset = "ETH", amount = "0.1", destination = "0x098B716B8Aaf21512996dC57EB0615e2383E2f96", chainId = 1 }
expect = "allow"
"#;
    let r = cases::run(&guard, std::path::Path::new("x.cases.toml"), text).expect("runs");
    assert!(!r[0].pass);
    assert_eq!(r[0].got, "deny");
    let bad = cases::run(
        &guard,
        std::path::Path::new("x.cases.toml"),
        "[[case]]\nname = 1\n",
    )
    .unwrap_err();
    assert!(bad.to_string().contains("x.cases.toml"), "{bad}");
}
