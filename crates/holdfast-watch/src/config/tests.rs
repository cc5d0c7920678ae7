#![allow(clippy::unwrap_used)]

use std::path::Path;

use super::*;

const HEAD: &str = r#"[[chain]]
name = "eth"
rpc = "wss://node.example/key"

[[asset]]
symbol = "USDC"
chain = "eth"
token = "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48"
decimals = 6

[[set]]
name = "hot"
addresses = ["0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"]
"#;

fn errors(rest: &str) -> Vec<Diagnostic> {
    match validate("watch.toml", &format!("{HEAD}{rest}"), Path::new(".")) {
        Err(ConfigError::Invalid { errors, .. }) => errors,
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("accepted:\n{rest}"),
    }
}

fn one_error(rest: &str) -> Diagnostic {
    let e = errors(rest);
    assert_eq!(e.len(), 1, "{e:#?}");
    e.into_iter().next().unwrap()
}

fn ok(rest: &str) -> Validated {
    match validate("watch.toml", &format!("{HEAD}{rest}"), Path::new(".")) {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    }
}

/// The line of the first occurrence of `needle` in HEAD + rest.
fn line_of(rest: &str, needle: &str) -> usize {
    let text = format!("{HEAD}{rest}");
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

#[test]
fn a_valid_file_validates_with_every_detector() {
    let v = ok(r#"
[[set]]
name = "routers"
addresses = ["0x000000000022D473030F116dDEE9F6B43aC78BA3"]

[[set]]
name = "safes"
safes_owned_by = ["0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"]

[[rule]]
name = "storage"
detector = "critical_storage"
targets = ["hot", "safes"]
severity = "critical"
responses = ["freeze", "trace", "label"]
trace = { policies = ["fifo", "haircut"], hops = 6, deposit_rule = "deposits" }

[[rule]]
name = "deposits"
detector = "tainted_deposit"
severity = "critical"
responses = ["notify"]

[[rule]]
name = "out"
detector = "outflow"
targets = ["hot"]
amount_above = { USDC = "1000000.5" }
velocity = { window = "1h", count_above = 10 }
drain = { percent = 50, blocks = 10, assets = ["USDC"] }
new_destination = true

[[rule]]
name = "grants"
detector = "grant"
targets = ["hot"]
allowlist = ["routers"]

[[rule]]
name = "cp"
detector = "counterparty"
targets = ["hot"]
categories = ["sanctioned", "dprk"]

[[rule]]
name = "poison"
detector = "poisoning"
targets = ["hot"]
prefix = 5
suffix = 5

[[sink]]
kind = "stdout"
name = "console"
min_severity = "high"
"#);
    let c = &v.config;
    assert!(v.warnings.is_empty(), "{:#?}", v.warnings);
    assert_eq!(c.chains[0].transport, Transport::WebSocket);
    assert_eq!(c.rules.len(), 6);
    let Params::Outflow(p) = &c.rule("out").unwrap().params else {
        panic!()
    };
    assert_eq!(
        p.amount_above[0].amount,
        alloy_primitives::U256::from(1_000_000_500_000u64)
    );
    assert_eq!(p.drain.as_ref().unwrap().basis_points, 5000);
    assert!(
        !p.drain.as_ref().unwrap().native,
        "assets named: the native coin only when listed"
    );
    assert_eq!(
        c.rule("storage").unwrap().responses[1],
        Response::Trace {
            policies: vec![
                holdfast_trace::Policy::Fifo,
                holdfast_trace::Policy::Haircut
            ],
            hops: 6,
            deposit_rule: Some("deposits".into()),
        }
    );
}

#[test]
fn errors_name_file_line_and_key() {
    let rest = "\n[[rule]]\nname = \"r\"\ndetector = \"drainer\"\ntargets = [\"hot\"]\n";
    let e = one_error(rest);
    assert_eq!(e.key.as_deref(), Some("rule[r].detector"));
    assert_eq!(e.line, Some(line_of(rest, "drainer")));
    let s = e.to_string();
    assert!(s.starts_with(&format!("watch.toml:{}: key `rule[r].detector`: unknown detector \"drainer\": expected one of critical_storage,", e.line.unwrap())), "{s}");

    // An unknown key: serde's message with the line.
    let e = one_error("\n[[rule]]\nname = \"r\"\ndetector = \"grant\"\ntarget = [\"hot\"]\n");
    assert!(e.message.contains("unknown field `target`"), "{e}");
    assert!(e.line.is_some());
}

#[test]
fn a_bad_checksum_is_an_error_naming_the_address() {
    let rest =
        "\n[[set]]\nname = \"bad\"\naddresses = [\"0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD\"]\n";
    let e = errors(rest);
    assert!(
        e.iter()
            .any(|e| e.key.as_deref() == Some("set[bad].addresses")
                && e.message.contains("bad EIP-55 checksum")
                && e.line == Some(line_of(rest, "BeAeD"))),
        "{e:#?}"
    );
    // All lower case is accepted as it is; so is a valid checksum.
    assert_eq!(
        parse_address("0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed").unwrap(),
        parse_address("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed").unwrap()
    );
    assert!(
        parse_address("0x5aaeb6")
            .unwrap_err()
            .contains("40 hex digits")
    );
}

#[test]
fn unknown_names_and_duplicates_are_errors() {
    for (rest, key, words) in [
        (
            "\n[[rule]]\nname = \"r\"\ndetector = \"grant\"\ntargets = [\"cold\"]\n",
            "rule[r].targets",
            "unknown set \"cold\"",
        ),
        (
            "\n[[rule]]\nname = \"r\"\ndetector = \"grant\"\ntargets = [\"hot\"]\nresponses = [\"page\"]\n",
            "rule[r].responses",
            "unknown response \"page\"",
        ),
        (
            "\n[[rule]]\nname = \"r\"\ndetector = \"grant\"\ntargets = [\"hot\"]\nseverity = \"urgent\"\n",
            "rule[r].severity",
            "unknown severity",
        ),
        (
            "\n[[rule]]\nname = \"r\"\ndetector = \"outflow\"\ntargets = [\"hot\"]\namount_above = { DAI = \"5\" }\n",
            "rule[r].amount_above.DAI",
            "unknown asset \"DAI\"",
        ),
        (
            "\n[[rule]]\nname = \"r\"\ndetector = \"grant\"\ntargets = [\"hot\"]\nchains = [\"base\"]\n",
            "rule[r].chains",
            "unknown chain \"base\"",
        ),
        (
            "\n[[set]]\nname = \"hot\"\naddresses = []\n",
            "set[hot]",
            "defined twice",
        ),
        (
            "\n[[rule]]\nname = \"r\"\ndetector = \"grant\"\ntargets = [\"hot\"]\n[[rule]]\nname = \"r\"\ndetector = \"grant\"\ntargets = [\"hot\"]\n",
            "rule[r]",
            "defined twice",
        ),
        (
            "\n[[rule]]\nname = \"r\"\ndetector = \"grant\"\ntargets = [\"hot\"]\ntrace = { hops = 3 }\n",
            "rule[r].trace",
            "without \"trace\"",
        ),
        (
            "\n[[rule]]\nname = \"r\"\ndetector = \"grant\"\ntargets = [\"hot\"]\nresponses = [\"trace\"]\ntrace = { deposit_rule = \"r\" }\n",
            "rule[r].trace.deposit_rule",
            "expected a tainted_deposit rule",
        ),
        (
            "\n[[rule]]\nname = \"r\"\ndetector = \"grant\"\ntargets = [\"hot\"]\nresponses = [\"trace\"]\ntrace = { policy = \"fifo\", policies = [\"lifo\"] }\n",
            "rule[r].trace",
            "both given",
        ),
        (
            "\n[[rule]]\nname = \"r\"\ndetector = \"grant\"\ntargets = [\"hot\"]\nprefix = 3\n",
            "rule[r].prefix",
            "parameter of detector poisoning, not of grant",
        ),
        (
            "\n[[rule]]\nname = \"r\"\ndetector = \"outflow\"\ntargets = [\"hot\"]\namount_above = { USDC = \"0.0000001\" }\n",
            "rule[r].amount_above.USDC",
            "6 decimals",
        ),
    ] {
        let e = errors(rest);
        assert!(
            e.iter().any(|e| e.key.as_deref() == Some(key)
                && e.message.contains(words)
                && e.line.is_some()),
            "{key} / {words}: {e:#?}"
        );
    }
}

#[test]
fn rules_that_can_never_fire_are_errors() {
    for (rest, words) in [
        ("detector = \"grant\"\ntargets = []\n", "no targets"),
        ("detector = \"grant\"\n", "needs `targets`"),
        ("detector = \"grant\"\ntargets = [\"empty\"]\n", "is empty"),
        (
            "detector = \"outflow\"\ntargets = [\"hot\"]\n",
            "can never fire",
        ),
        (
            "detector = \"outflow\"\ntargets = [\"hot\"]\nvelocity = { window = \"0s\", count_above = 1 }\n",
            "window of 0",
        ),
        (
            "detector = \"outflow\"\ntargets = [\"hot\"]\nvelocity = { window = \"1h\" }\n",
            "never fire",
        ),
        (
            "detector = \"outflow\"\ntargets = [\"hot\"]\ndrain = { percent = 100, blocks = 5 }\n",
            "more than 100 %",
        ),
        (
            "detector = \"outflow\"\ntargets = [\"hot\"]\ndrain = { percent = 10, blocks = 0 }\n",
            "window of 0",
        ),
        (
            "detector = \"outflow\"\ntargets = [\"hot\"]\namount_above = { USDC = \"115792089237316195423570985008687907853269984665640564039457584007913129.639935\" }\n",
            "no amount can exceed",
        ),
        (
            "detector = \"poisoning\"\ntargets = [\"hot\"]\nprefix = 0\nsuffix = 0\n",
            "every address would look alike",
        ),
        (
            "detector = \"poisoning\"\ntargets = [\"hot\"]\nzero_value = false\nfake_tokens = false\nlookalike = false\n",
            "never fire",
        ),
        (
            "detector = \"counterparty\"\ntargets = [\"hot\"]\ncategories = []\n",
            "never fire",
        ),
        (
            "detector = \"critical_storage\"\ntargets = [\"hot\"]\nchanges = []\n",
            "never fire",
        ),
    ] {
        let text = format!("\n[[set]]\nname = \"empty\"\n\n[[rule]]\nname = \"r\"\n{rest}");
        let e = errors(&text);
        assert!(
            e.iter()
                .any(|e| e.message.contains(words) && e.line.is_some()),
            "{words}: {e:#?}"
        );
    }
}

#[test]
fn suspect_rules_are_warnings() {
    let v = ok(
        "\n[[set]]\nname = \"unused\"\naddresses = [\"0x0000000000000000000000000000000000000001\"]\n\n[[rule]]\nname = \"p\"\ndetector = \"poisoning\"\ntargets = [\"hot\"]\nprefix = 2\nsuffix = 2\n",
    );
    assert_eq!(v.warnings.len(), 2, "{:#?}", v.warnings);
    assert!(
        v.warnings
            .iter()
            .any(|w| w.key.as_deref() == Some("set[unused]"))
    );
    assert!(
        v.warnings
            .iter()
            .any(|w| w.key.as_deref() == Some("rule[p].prefix")
                && w.message.contains("false alerts"))
    );
}

#[test]
fn address_files_are_read_relative_to_the_watch_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("hot.txt"),
        "# hot wallets\n0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed\n\n0x0000000000000000000000000000000000000002 # second\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("bad.txt"), "0x01\n").unwrap();
    let text = format!(
        "{HEAD}\n[[set]]\nname = \"f\"\nfiles = [\"hot.txt\"]\n\n[[rule]]\nname = \"r\"\ndetector = \"grant\"\ntargets = [\"f\"]\n"
    );
    let v = validate("w.toml", &text, dir.path()).unwrap();
    assert_eq!(v.config.set("f").unwrap().addresses.len(), 2);
    let text = text.replace("hot.txt", "bad.txt");
    let Err(ConfigError::Invalid { errors, .. }) = validate("w.toml", &text, dir.path()) else {
        panic!()
    };
    assert!(
        errors.iter().any(|e| e.message.starts_with("bad.txt:1: ")),
        "{errors:#?}"
    );
    let text = text.replace("bad.txt", "missing.txt");
    let Err(ConfigError::Invalid { errors, .. }) = validate("w.toml", &text, dir.path()) else {
        panic!()
    };
    assert!(
        errors
            .iter()
            .any(|e| e.key.as_deref() == Some("set[f].files") && e.message.contains("missing.txt")),
        "{errors:#?}"
    );
}

#[test]
fn node_urls_are_checked_and_redacted_in_messages() {
    let text = HEAD.replace("wss://node.example/key", "ftp://node.example/secret-key");
    let Err(ConfigError::Invalid { errors, .. }) = validate(
        "w.toml",
        &format!("{text}\n[[rule]]\nname = \"r\"\ndetector = \"grant\"\ntargets = [\"hot\"]\n"),
        Path::new("."),
    ) else {
        panic!()
    };
    assert!(
        errors[0].message.contains("\"ftp://node.example\""),
        "{errors:#?}"
    );
    assert!(!errors[0].message.contains("secret-key"));
}

#[test]
fn the_first_look_is_on_unless_a_chain_turns_it_off() {
    let rule = "\n[[rule]]\nname = \"out\"\ndetector = \"outflow\"\ntargets = [\"hot\"]\nnew_destination = true\n";
    assert!(ok(rule).config.chains[0].first_look);
    let off = format!("{HEAD}{rule}").replacen(
        "rpc = \"wss://node.example/key\"\n",
        "rpc = \"wss://node.example/key\"\nfirst_look = false\n",
        1,
    );
    let v = validate("watch.toml", &off, Path::new(".")).unwrap();
    assert!(!v.config.chains[0].first_look);
    let bad = format!("{HEAD}{rule}").replacen(
        "rpc = \"wss://node.example/key\"\n",
        "rpc = \"wss://node.example/key\"\nfirst_look = \"no\"\n",
        1,
    );
    let e = validate("watch.toml", &bad, Path::new("."))
        .unwrap_err()
        .to_string();
    // The line of `first_look` (line 4), and what was expected.
    assert!(
        e.contains("watch.toml:4") && e.contains("expected a boolean"),
        "{e}"
    );
}

#[test]
fn safes_from_block_needs_owners_to_search_for() {
    let rule = "\n[[rule]]\nname = \"s\"\ndetector = \"critical_storage\"\ntargets = [\"x\"]\n";
    let v = ok(&format!(
        "\n[[set]]\nname = \"x\"\nsafes_owned_by = [\"0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed\"]\nsafes_from_block = 12\n{rule}"
    ));
    let set = v.config.sets.iter().find(|s| s.name == "x").unwrap();
    assert_eq!(set.safes_from_block, Some(12));
    let rest = format!(
        "\n[[set]]\nname = \"x\"\naddresses = [\"0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed\"]\nsafes_from_block = 12\n{rule}"
    );
    let e = one_error(&rest);
    assert_eq!(e.line, Some(line_of(&rest, "safes_from_block")), "{e:?}");
    assert!(
        e.key
            .as_deref()
            .is_some_and(|k| k.ends_with("safes_from_block")),
        "{e:?}"
    );
}

/// A sink's name keys its delivery cursor in the watch store. A name the store cannot key
/// by (a space, non-ASCII, too long, empty) was accepted, and then the sink could never
/// read its cursor (it never delivered) and every prune of the outbox failed; a sink named
/// as the responder's cursor shared it, moving it past responses not yet run.
#[test]
fn sink_names_that_cannot_key_a_cursor_are_errors() {
    const RULE: &str = "\n[[rule]]\nname = \"r\"\ndetector = \"grant\"\ntargets = [\"hot\"]\n";
    let long = "s".repeat(201);
    for bad in [
        "soc alerts",
        "holdfast:responder",
        "holdfast:mine",
        "",
        "sécu",
        &long,
    ] {
        let rest = format!("{RULE}\n[[sink]]\nkind = \"stdout\"\nname = \"{bad}\"\n");
        let e = one_error(&rest);
        assert_eq!(
            e.key.as_deref(),
            Some(format!("sink[{bad}].name").as_str()),
            "{e:?}"
        );
        assert_eq!(e.line, Some(line_of(&rest, "[[sink]]")), "{e:?}");
        assert!(
            e.message.contains(&format!("{bad:?}")) && e.message.contains("printable ASCII"),
            "{e:?}"
        );
    }
    let rest = format!("{RULE}\n[[sink]]\nkind = \"stdout\"\nname = \"soc-1_a.b:c\"\n");
    assert_eq!(ok(&rest).config.sinks[0].name(), "soc-1_a.b:c");
}
