//! `intel import` and `intel update`, through the data directory and a reload.

use holdfast_intel::import::{ImportOptions, import_file, update_sdn};
use holdfast_intel::{DataDir, IntelError, ScreenOptions};
use holdfast_primitives::{Category, Chain, Confidence, Date, RiskLevel};

fn today() -> ScreenOptions {
    ScreenOptions::today()
}

#[test]
fn tagpack_import_round_trips_every_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = DataDir::new(dir.path());
    let pack = dir.path().join("fresh-fbi.yaml");
    std::fs::write(
        &pack,
        r#"title: FBI statement on TraderTraitor theft
creator: Holdfast test
confidence: authority_data
lastmod: 2025-02-26
source: https://www.fbi.gov/news/press-releases/north-korea-responsible-for-1-5-billion-bybit-hack
label: Bybit theft laundering address
category: exchange
abuse: service_hack
actor: tradertraitor-test
tags:
- address: '0x51e9d833ecae4e8d9d8be17300aee6d3398c135d'
  currency: ETH
- address: bc1q2qqqt87kh33s0er58akh7v9cwjgd83z5smh9rp
  currency: BTC
  label: BTC leg
  confidence: forensic
  source: https://example.org/btc-leg
"#,
    )
    .expect("write");
    let report = import_file(&data, &pack, &ImportOptions::default()).expect("imports");
    assert_eq!(report.labels, 2);
    assert_eq!(report.new, 2);
    assert_eq!(report.source, "import:fresh-fbi");

    let index = holdfast_intel::load(Some(&data)).expect("loads").index;
    let v = index
        .screen("0x51e9d833ecae4e8d9d8be17300aee6d3398c135d", &today())
        .expect("valid");
    let l = v
        .labels
        .iter()
        .find(|l| l.source == "import:fresh-fbi")
        .expect("imported label");
    assert_eq!(l.category, Category::Hack, "abuse wins over category");
    assert_eq!(l.confidence, Confidence::AUTHORITY_DATA);
    assert_eq!(l.actor.as_deref(), Some("tradertraitor-test"));
    assert_eq!(l.name.as_deref(), Some("Bybit theft laundering address"));
    assert_eq!(
        l.reference.as_deref(),
        Some(
            "https://www.fbi.gov/news/press-releases/north-korea-responsible-for-1-5-billion-bybit-hack"
        )
    );
    assert_eq!(l.chains, vec![Chain::Ethereum]);
    assert_eq!(v.risk, RiskLevel::High);

    let b = index
        .screen("bc1q2qqqt87kh33s0er58akh7v9cwjgd83z5smh9rp", &today())
        .expect("valid");
    let l = b
        .labels
        .iter()
        .find(|l| l.source == "import:fresh-fbi")
        .expect("imported label");
    assert_eq!(l.name.as_deref(), Some("BTC leg"));
    assert_eq!(l.confidence, Confidence::FORENSIC);
    assert_eq!(l.reference.as_deref(), Some("https://example.org/btc-leg"));
    assert_eq!(l.chains, vec![Chain::Bitcoin]);

    // Importing the same pack again stores nothing twice.
    let again = import_file(&data, &pack, &ImportOptions::default()).expect("imports");
    assert_eq!(again.new, 0);
    assert_eq!(data.imported().expect("reads").len(), 2);
}

#[test]
fn csv_list_import_with_flags_persists_and_infers_chains() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = DataDir::new(dir.path());
    let list = dir.path().join("fbi-2026.csv");
    std::fs::write(&list, "# new FBI list\n0x0000000000000000000000000000000000c0ffee\nTBHTJqAy4DhHhmT3dNceJYNRz4SdLofLre\n").expect("write");
    let opts = ImportOptions {
        category: Some(Category::DprkAttributed),
        source: Some("fbi-2026".into()),
        actor: Some("lazarusgroup".into()),
        confidence: Some(Confidence::AUTHORITY_DATA),
        ..ImportOptions::default()
    };
    import_file(&data, &list, &opts).expect("imports");
    let index = holdfast_intel::load(Some(&data)).expect("loads").index;
    let evm = index
        .screen(
            "0x0000000000000000000000000000000000c0ffee",
            &ScreenOptions {
                chain: Some(Chain::Polygon),
                as_of: Date::today(),
            },
        )
        .expect("valid");
    assert_eq!(
        evm.risk,
        RiskLevel::Severe,
        "an EVM address without --chain applies on every EVM chain"
    );
    let trx = index
        .screen("TBHTJqAy4DhHhmT3dNceJYNRz4SdLofLre", &today())
        .expect("valid");
    assert!(
        trx.labels
            .iter()
            .any(|l| l.source == "fbi-2026" && l.chains == vec![Chain::Tron])
    );
}

#[test]
fn one_invalid_address_imports_nothing_and_names_the_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = DataDir::new(dir.path());
    let list = dir.path().join("bad.txt");
    std::fs::write(
        &list,
        "0x0000000000000000000000000000000000c0ffee\n0x098b716B8Aaf21512996dC57EB0615e2383E2f96\n",
    )
    .expect("write");
    let opts = ImportOptions {
        category: Some(Category::Hack),
        ..ImportOptions::default()
    };
    let err = import_file(&data, &list, &opts).expect_err("bad checksum on line 2");
    let msg = err.to_string();
    assert!(
        matches!(err, IntelError::InvalidAddresses { count: 1, .. }),
        "{msg}"
    );
    assert!(
        msg.contains("line 2") && msg.contains("0x098b716B8Aaf"),
        "{msg}"
    );
    assert!(
        data.imported().expect("reads").is_empty(),
        "nothing half-imported"
    );
}

#[test]
fn csv_list_without_category_is_a_usage_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let list = dir.path().join("x.csv");
    std::fs::write(&list, "0x0000000000000000000000000000000000c0ffee\n").expect("write");
    let err = import_file(&DataDir::new(dir.path()), &list, &ImportOptions::default())
        .expect_err("needs --category");
    assert!(err.to_string().contains("--category"), "{err}");
}

#[test]
fn sdn_advanced_xml_update_lists_new_and_delists_missing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = DataDir::new(dir.path());
    let xml = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/sdn_advanced_sample.xml"
    );
    let report = update_sdn(&data, std::path::Path::new(xml)).expect("parses the sample");
    assert!(report.addresses >= 4, "{report:?}");
    let update = data.sdn_update().expect("reads").expect("stored");
    let day = update.date_of_issue;
    let index = holdfast_intel::load(Some(&data)).expect("loads").index;
    // Every address in the update is sanctioned on its date of issue, with its entity.
    for e in &update.entries {
        let v = index
            .screen(
                &e.address,
                &ScreenOptions {
                    chain: None,
                    as_of: day,
                },
            )
            .unwrap_or_else(|err| panic!("{}: {err}", e.address));
        assert_eq!(v.risk, RiskLevel::Severe, "{}", e.address);
        assert!(
            v.labels.iter().any(|l| l.source == "ofac-sdn"
                && l.active
                && l.name.as_deref() == Some(e.entity.as_str())),
            "{}: {:?}",
            e.address,
            v.labels
        );
    }
    // A shipped sanctioned address that the update does not list is delisted from its date.
    let in_update: Vec<String> = update
        .entries
        .iter()
        .map(|e| e.address.to_ascii_lowercase())
        .collect();
    let shipped_listed = "0xf7b31119c2682c88d88d455dbb9d5932c65cf1be"; // LAZARUS GROUP, current list
    if !in_update.contains(&shipped_listed.to_owned()) {
        let v = index
            .screen(
                shipped_listed,
                &ScreenOptions {
                    chain: None,
                    as_of: day,
                },
            )
            .expect("valid");
        let l = v
            .labels
            .iter()
            .find(|l| l.source == "ofac-sdn")
            .expect("label kept as history");
        assert!(!l.active);
        assert_eq!(l.delisted_on, Some(day));
    }
}

#[test]
fn sdn_update_rejects_non_sdn_xml_and_keeps_the_old_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = DataDir::new(dir.path());
    let bad = dir.path().join("not-sdn.xml");
    std::fs::write(&bad, "<html><body>not a sanctions list</body></html>").expect("write");
    assert!(update_sdn(&data, &bad).is_err());
    assert!(data.sdn_update().expect("reads").is_none());
}

/// Issue 13: a CSV row without an address was dropped; the list imported the rest.
#[test]
fn a_list_row_without_an_address_fails_naming_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = DataDir::new(dir.path());
    let opts = ImportOptions {
        category: Some(Category::Hack),
        ..ImportOptions::default()
    };
    for (name, text, line) in [
        (
            "with-chain.csv",
            "address,chain\n0x0000000000000000000000000000000000c0ffee,eth\n,eth\n",
            3,
        ),
        (
            "named.csv",
            "name,address\nthief,0x0000000000000000000000000000000000c0ffee\nsecond thief,  \n",
            3,
        ),
        (
            "short.csv",
            "name,address\nthief,0x0000000000000000000000000000000000c0ffee\nonly a name\n",
            3,
        ),
        (
            "plain.txt",
            "# list\n0x0000000000000000000000000000000000c0ffee\n\n\"\"\n",
            4,
        ),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        let err = import_file(&data, &path, &opts)
            .expect_err(name)
            .to_string();
        assert!(
            err.contains(name) && err.contains(&format!("row {line}")) && err.contains("address"),
            "{name}: {err}"
        );
        assert!(
            data.imported().expect("reads").is_empty(),
            "{name}: nothing imported"
        );
    }
}

/// Issue 13: unknown TagPack vocabulary (`abuse: sanctioned`) mapped to `other`, so the
/// addresses screened LOW. Holdfast's and GraphSense's words map; others fail naming the tag
/// and the word, with the accepted words.
#[test]
fn tagpack_words_map_to_their_risk_or_fail_naming_the_word() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = DataDir::new(dir.path());
    // One tag per word, each on its own address: one import, one load.
    let cases: &[(&str, &str, RiskLevel)] = &[
        ("abuse", "sanctioned", RiskLevel::Severe),
        ("abuse", "sanction", RiskLevel::Severe),
        ("abuse", "Sanctions", RiskLevel::Severe),
        ("abuse", "dprk-attributed", RiskLevel::Severe),
        ("abuse", "terrorism", RiskLevel::High),
        ("abuse", "money_laundering", RiskLevel::High),
        ("abuse", "pyramid_scheme", RiskLevel::High),
        ("abuse", "dark_web", RiskLevel::High),
        ("category", "black_list", RiskLevel::Medium),
        ("category", "defi_bridge", RiskLevel::Low),
        ("category", "user", RiskLevel::Low),
        // A concept list speaks when the tag has neither abuse nor category; its
        // riskiest word wins.
        ("concepts", "[exchange, service_hack]", RiskLevel::High),
    ];
    let address = |i: usize| format!("0x{:040x}", 0xc0ffee00_u64 + i as u64);
    let mut text = "title: words\nconfidence: authority_data\ntags:\n".to_owned();
    for (i, (field, word, _)) in cases.iter().enumerate() {
        text.push_str(&format!(
            "- address: '{}'\n  currency: ETH\n  {field}: {word}\n",
            address(i)
        ));
    }
    let path = dir.path().join("words.yaml");
    std::fs::write(&path, &text).expect("write");
    import_file(&data, &path, &ImportOptions::default()).expect("every word known");
    let index = holdfast_intel::load(Some(&data)).expect("loads").index;
    for (i, (field, word, risk)) in cases.iter().enumerate() {
        let v = index.screen(&address(i), &today()).expect("valid");
        assert_eq!(v.risk, *risk, "{field}: {word}");
    }
    // Unknown words: the import fails naming the tag, the field, the word and the accepted
    // words, and stores nothing.
    let fresh = tempfile::tempdir().expect("tempdir");
    let fresh = DataDir::new(fresh.path());
    for (header, tag, field, word) in [
        ("abuse: sanctionned\n", "", "abuse", "sanctionned"),
        ("category: casino\n", "", "category", "casino"),
        (
            "",
            "  concepts: [exchange, robbery]\n",
            "concepts",
            "robbery",
        ),
        ("", "  abuse: grift\n", "abuse", "grift"),
    ] {
        let text = format!(
            "title: t\n{header}tags:\n- address: '{}'\n  abuse: scam\n- address: '{}'\n{tag}",
            address(0),
            address(1)
        );
        let path = dir.path().join(format!("{word}.yaml"));
        std::fs::write(&path, text).expect("write");
        let err = import_file(&fresh, &path, &ImportOptions::default())
            .expect_err(word)
            .to_string();
        // A header word fails at the first tag that does not override it.
        // (the header's unused category is still checked at tag 1).
        let tag = if field == "category" {
            "tag 1"
        } else {
            "tag 2"
        };
        assert!(
            err.contains(&format!("{word}.yaml: {tag}"))
                && err.contains(field)
                && err.contains(word)
                && err.contains("service_hack"),
            "{err}"
        );
    }
    assert!(fresh.imported().expect("reads").is_empty());
}

/// Every word the real TagPacks use still imports (shipped packs and the full copies of
/// GraphSense's public packs), with the category each must map to.
#[test]
fn every_real_tagpack_word_is_known() {
    let root = format!(
        "{}/../../data/intel/graphsense/packs",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut packs = 0;
    let mut stack = vec![std::path::PathBuf::from(root)];
    while let Some(p) = stack.pop() {
        for e in std::fs::read_dir(&p).expect("dir") {
            let path = e.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|x| x == "yaml") {
                let text = std::fs::read_to_string(&path).expect("read");
                holdfast_intel::sources::tagpack::parse(&text, &path.display().to_string())
                    .unwrap_or_else(|e| panic!("{e}"));
                packs += 1;
            }
        }
    }
    assert!(packs >= 38, "{packs} packs");
}

/// A bad address is named by its own tag, also when tags before it were skipped (a chain
/// Holdfast has no address format for): the error used to count only the kept tags.
#[test]
fn a_bad_tagpack_address_is_named_by_its_own_tag() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("skips.yaml");
    std::fs::write(
        &path,
        "title: t\nabuse: scam\ntags:\n- address: addr1qxy\n  currency: ADA\n- address: '0x098b716B8Aaf21512996dC57EB0615e2383E2f96'\n  currency: ETH\n",
    )
    .expect("write");
    let err = import_file(&DataDir::new(dir.path()), &path, &ImportOptions::default())
        .expect_err("bad checksum")
        .to_string();
    assert!(
        err.contains("tag 2") && err.contains("0x098b716B8Aaf"),
        "{err}"
    );
}
