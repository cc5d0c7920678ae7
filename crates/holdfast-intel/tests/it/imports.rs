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
