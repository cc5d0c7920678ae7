//! Output formats and the exposure labels a trace gives back to intel.

use holdfast_intel::{DataDir, ScreenOptions};
use holdfast_primitives::{Category, RiskLevel};
use holdfast_trace::output::{Format, write};
use holdfast_trace::{Policy, Seed, TraceOptions, trace};

use crate::fixture::addr;
use crate::store::laundering;

fn traced() -> holdfast_trace::Trace {
    let n = laundering();
    trace(
        &n.graph(),
        &[Seed::address(addr(1))],
        &TraceOptions::with_policy(Policy::Fifo),
        &n.services,
    )
    .expect("trace")
}

fn render(t: &holdfast_trace::Trace, f: Format) -> String {
    let mut out = Vec::new();
    write(t, f, &mut out).expect("write");
    String::from_utf8(out).expect("utf-8")
}

#[test]
fn every_format_carries_the_targets() {
    let t = traced();
    let deposit = addr(7);
    let json: serde_json::Value = serde_json::from_str(&render(&t, Format::Json)).expect("json");
    assert_eq!(json["policy"], "fifo");
    assert_eq!(
        json["targets"][0]["deposit"],
        deposit.to_string().to_lowercase()
    );
    assert_eq!(json["targets"][0]["service"]["name"], "Binance");
    assert!(
        json["targets"][0]["path"]
            .as_array()
            .is_some_and(|p| !p.is_empty())
    );

    let csv = render(&t, Format::Csv);
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("address,role,hops,service,category,source,asset,received,held,first_tx,first_block")
    );
    assert!(
        csv.contains(&format!("{},service,", deposit.to_checksum(None))),
        "{csv}"
    );

    let dot = render(&t, Format::Dot);
    assert!(dot.starts_with("digraph trace_") && dot.trim_end().ends_with('}'));
    assert_eq!(dot.matches(" -> ").count(), t.tree.len());
    assert!(dot.contains("color=green"));

    let xml = render(&t, Format::GraphMl);
    assert_eq!(xml.matches("<edge ").count(), t.tree.len());
    assert!(xml.contains("<data key=\"role\">service</data>"));
    assert!(xml.trim_end().ends_with("</graphml>"));
    assert!(Format::parse("xlsx").is_err());
}

#[test]
fn tainted_labels_make_screening_flag_the_launderers() {
    let t = traced();
    let labels = t.tainted_labels();
    assert!(labels.iter().all(|l| l.category == Category::Tainted));
    assert!(labels.iter().all(|l| l.source == format!("trace:{}", t.id)));
    // The exchange is a freeze target, not a launderer.
    assert!(
        !labels
            .iter()
            .any(|l| l.address == addr(7).to_checksum(None))
    );
    let mixed = labels
        .iter()
        .find(|l| l.address == addr(3).to_checksum(None))
        .expect("the mixed account is labelled");
    assert!(
        mixed
            .name
            .as_deref()
            .is_some_and(|n| n.contains("fifo") && n.contains(&t.id))
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let data = DataDir::new(dir.path());
    data.add_imported(&labels).expect("persist");
    let loaded = holdfast_intel::load(Some(&data)).expect("load");
    let verdict = loaded.index.screen_evm(&addr(3), &ScreenOptions::today());
    assert_eq!(verdict.risk, RiskLevel::High, "{verdict:?}");
    let clean = loaded
        .index
        .screen_evm(&addr(0x60), &ScreenOptions::today());
    assert!(clean.risk < RiskLevel::High);
}
