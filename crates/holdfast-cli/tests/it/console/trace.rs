//! Investigate → trace in the browser: the testkit's Lazarus-style laundering on anvil,
//! ingested by `holdfast ingest` into the data directory's store, the exchange deposits
//! labelled by `intel import` (one with hostile text), `holdfast serve --trace`.

use std::collections::BTreeSet;

use holdfast_testkit::Anvil;
use holdfast_testkit::laundering::Laundering;
use serde_json::{Value, json};

use super::{HOSTILE, World, chromium, drive, screenshots, world_on};
use crate::gate::R;

/// The name the Kraken deposit is labelled with: the console's hostile text, plus what
/// breaks the export formats (quotes, a trailing backslash, a line break, a formula).
fn hostile_name() -> String {
    format!("=cmd|' {HOSTILE} \"q\" \\N\nline\\")
}

/// The strings of a DOT text, checking each closes (a backslash escapes the next
/// character), and the statements outside strings (`;`-terminated).
fn dot_check(dot: &str) -> Result<(usize, Vec<String>), String> {
    let mut strings = Vec::new();
    let mut statements = 0;
    let mut chars = dot.chars();
    while let Some(c) = chars.next() {
        match c {
            ';' => statements += 1,
            '"' => {
                let mut s = String::new();
                loop {
                    match chars.next() {
                        None => return Err(format!("a string never closes: {s:?}")),
                        Some('"') => break,
                        Some('\\') => {
                            s.push('\\');
                            s.push(chars.next().ok_or("a backslash ends the text")?);
                        }
                        Some(c) => s.push(c),
                    }
                }
                strings.push(s);
            }
            _ => {}
        }
    }
    Ok((statements, strings))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trace_shows_the_freeze_targets_graph_and_exports() -> R {
    let chromium = need_chromium!();
    let node = Anvil::spawn().await?;
    let l = Laundering::run(&node).await?;
    let rpc = node.http_url();
    let deposits = l.deposits.clone();
    let hostile = hostile_name();
    let w = world_on(node, false, &["--trace"], false, &|data| {
        let o = crate::holdfast(data, &["ingest", "--rpc", &rpc]);
        if !o.status.success() {
            return Err(format!("ingest: {}", crate::stderr(&o)).into());
        }
        for (name, address) in &deposits {
            let list = data.join(format!("{name}.csv"));
            std::fs::write(&list, format!("address\n{address}\n"))?;
            let label = if *name == "Kraken" {
                hostile.clone()
            } else {
                (*name).to_owned()
            };
            let o = crate::holdfast(
                data,
                &[
                    "intel",
                    "import",
                    &list.display().to_string(),
                    "--category",
                    "exchange",
                    "--source",
                    "test",
                    "--name",
                    &label,
                ],
            );
            if !o.status.success() {
                return Err(format!("intel import: {}", crate::stderr(&o)).into());
            }
        }
        Ok(())
    })
    .await?;
    let binance = l.deposits["Binance"].to_checksum(None);
    let kraken = l.deposits["Kraken"].to_checksum(None);
    let out = drive(
        "trace.mjs",
        json!({"chromium": chromium, "base": w.service.url(), "token": "tok-ops",
            "seed_tx": l.theft.to_string(), "thief": l.thief.to_checksum(None), "policy": "haircut",
            "click": binance, "hostile": kraken, "screenshots": screenshots()}),
    )?;
    super::first_loads(&out, true)?;

    // The freeze targets, with the amounts the scenario computes for haircut.
    for (policy, targets) in [("haircut", &out["targets"]), ("fifo", &out["by_address"])] {
        let expected = l.expected(policy).ok_or("expected amounts")?;
        let targets = targets.as_array().ok_or("targets")?;
        assert_eq!(targets.len(), 4, "{policy}: {targets:?}");
        for (name, want) in &expected {
            let deposit = l.deposits[name].to_checksum(None);
            let t = targets
                .iter()
                .find(|t| t["deposit"] == deposit.as_str())
                .ok_or_else(|| format!("{policy}: {name} deposit not listed: {targets:?}"))?;
            let wei: Vec<String> = want.iter().map(|(_, v)| v.to_string()).collect();
            assert_eq!(t["wei"], json!(wei), "{policy} {name}");
        }
    }
    let targets = out["targets"].as_array().ok_or("targets")?;
    let b = targets
        .iter()
        .find(|t| t["deposit"] == binance.as_str())
        .ok_or("binance")?;
    assert!(
        b["service"]
            .as_str()
            .is_some_and(|s| s.starts_with("Binance (exchange")),
        "{b}"
    );
    // The evidence path, hop by hop, from the theft to the deposit.
    let path = b["path"].as_array().ok_or("path")?;
    assert!(path.len() >= 2, "{b}");
    assert!(
        path.first()
            .and_then(Value::as_str)
            .is_some_and(|p| p.contains(&l.theft.to_string())),
        "{b}"
    );
    assert!(
        path.last()
            .and_then(Value::as_str)
            .is_some_and(|p| p.contains(&format!("→ {binance}"))),
        "{b}"
    );
    let k = targets
        .iter()
        .find(|t| t["deposit"] == kraken.as_str())
        .ok_or("kraken")?;
    assert!(
        k["service"]
            .as_str()
            .is_some_and(|s| s.contains("<script>window.__pwned=1</script>")),
        "the hostile name is shown as text: {k}"
    );

    // The graph: every address of the exports, the thief and each deposit among them.
    let nodes: BTreeSet<String> = out["nodes"]
        .as_array()
        .ok_or("nodes")?
        .iter()
        .filter_map(|n| n.as_str().map(str::to_lowercase))
        .collect();
    assert_eq!(
        nodes.len(),
        out["nodes"].as_array().map_or(0, Vec::len),
        "no node twice"
    );
    for a in l.deposits.values().chain([&l.thief]) {
        assert!(nodes.contains(&a.to_string().to_lowercase()), "{a} drawn");
    }
    assert!(
        !nodes.contains(&l.look_alike.to_string().to_lowercase()),
        "the look-alike decoy is not tainted"
    );
    assert_eq!(
        out["graphml"]["error"],
        Value::Null,
        "GraphML well-formed: {out}"
    );
    assert_eq!(out["graphml"]["nodes"], json!(nodes.len()));
    assert_eq!(out["graphml"]["edges"], out["edges"]);
    assert!(
        out["graphml"]["services"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s == &json!(hostile))),
        "the hostile name reads back from the GraphML: {}",
        out["graphml"]
    );

    // Pan and zoom change the view; Fit restores it; a click shows the address.
    let view = |k: &str| -> Vec<f64> {
        out[k]
            .as_str()
            .unwrap_or("")
            .split(' ')
            .filter_map(|x| x.parse().ok())
            .collect()
    };
    let (initial, zoomed, panned) = (
        view("view_initial"),
        view("view_zoomed"),
        view("view_panned"),
    );
    assert_eq!(initial.len(), 4, "{out}");
    assert!(
        zoomed[2] < initial[2],
        "the wheel zoomed in: {initial:?} {zoomed:?}"
    );
    assert!(
        panned[0] < zoomed[0] && panned[1] < zoomed[1] && panned[2] == zoomed[2],
        "dragging right and down panned: {zoomed:?} {panned:?}"
    );
    assert_eq!(out["view_reset"], out["view_initial"]);
    let nums = |v: &Value| -> Vec<f64> {
        v.as_str()
            .unwrap_or("")
            .split(' ')
            .filter_map(|x| x.parse().ok())
            .collect()
    };
    let (before, after) = (
        nums(&out["view_keyboard_pan"][0]),
        nums(&out["view_keyboard_pan"][1]),
    );
    assert!(
        after.len() == 4 && after[0] > before[0] && after[2] == before[2],
        "ArrowRight panned: {before:?} {after:?}"
    );
    assert!(
        nums(&out["view_keyboard_zoom"])[2] < after[2],
        "+ zoomed in: {}",
        out["view_keyboard_zoom"]
    );
    let details = out["details"].as_str().unwrap_or("");
    let want = l.expected("haircut").ok_or("expected")?["Binance"][0].1;
    assert!(
        details.contains(&binance)
            && details.contains("exchange (test, confidence")
            && details.contains(&format!("{want} wei"))
            && details.contains("service"),
        "the clicked deposit's labels and tainted amount: {details}"
    );
    let hd = out["hostile_details"].as_str().unwrap_or("");
    assert!(hd.contains(&kraken) && hd.contains("<img src=x"), "{hd}");
    assert_eq!(out["inert"]["pwned"], Value::Null, "{out}");
    assert_eq!(out["inert"]["imgs"], 0);
    assert_eq!(out["inert"]["inline_handlers"], 0);
    assert_eq!(
        out["inert"]["scripts"],
        json!(["/console/assets/console.js", "/console/assets/trace.js"])
    );

    // The exports: downloads, each parsed.
    for (f, ct) in [
        ("csv", "text/csv"),
        ("graphml", "application/graphml+xml"),
        ("dot", "text/vnd.graphviz"),
    ] {
        let e = &out["exports"][f];
        assert_eq!(e["status"], 200, "{f}: {e}");
        assert!(e["type"].as_str().is_some_and(|t| t.starts_with(ct)), "{e}");
        assert!(
            e["disposition"]
                .as_str()
                .is_some_and(|d| d.starts_with("attachment; filename=\"trace-")
                    && d.ends_with(&format!(".{f}\""))),
            "{e}"
        );
    }
    let csv_text = out["exports"]["csv"]["body"].as_str().unwrap_or("");
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let rows: Vec<csv::StringRecord> = reader.records().collect::<Result<_, _>>()?;
    let csv_addresses: BTreeSet<String> = rows
        .iter()
        .filter_map(|r| r.get(0).map(str::to_lowercase))
        .collect();
    assert!(csv_addresses.is_subset(&nodes), "{csv_addresses:?}");
    for a in l.deposits.values() {
        assert!(
            csv_addresses.contains(&a.to_string().to_lowercase()),
            "{a} in the CSV"
        );
    }
    let service_cells: Vec<&str> = rows.iter().filter_map(|r| r.get(3)).collect();
    assert!(
        service_cells.contains(&format!("'{hostile}").as_str()),
        "the formula is defused, the name whole: {service_cells:?}"
    );
    assert!(service_cells.contains(&"Binance"));
    let dot = out["exports"]["dot"]["body"].as_str().unwrap_or("");
    let (statements, strings) = dot_check(dot)?;
    assert!(dot.starts_with("digraph trace_") && dot.trim_end().ends_with('}'));
    // The layout line (2 statements), one per node, one per edge.
    let edges = usize::try_from(out["edges"].as_u64().unwrap_or(0))?;
    assert_eq!(statements, 2 + nodes.len() + edges, "{dot}");
    assert!(
        strings
            .iter()
            .any(|s| s.contains("=cmd|' <script>") && s.ends_with("\\\\N\\nline\\\\")),
        "the hostile label stays inside its string: {strings:?}"
    );

    // The node bound: the trace stops growing and the page says so.
    assert!(
        out["truncated"]
            .as_str()
            .is_some_and(|t| t.contains("The trace reached max_nodes = 3 addresses")),
        "{}",
        out["truncated"]
    );
    assert!(
        out["truncated_nodes"].as_u64().is_some_and(|n| n < 10),
        "{}",
        out["truncated_nodes"]
    );

    // Bad bounds: refused, naming the field and the value.
    for (field, said) in [
        (
            "max_hops",
            "max_hops is \"99\": expected a whole number from 1 to 64",
        ),
        (
            "max_nodes",
            "max_nodes is \"9999\": expected a whole number from 1 to 5000",
        ),
        ("seed", "seed is \"0xnope\": expected a transaction hash"),
    ] {
        let b = &out["bounds"][field];
        assert_eq!(b["status"], 400, "{field}: {b}");
        assert!(
            b["said"].as_str().is_some_and(|s| s.contains(said)),
            "{field}: {b}"
        );
    }
    assert_eq!(out["bounds"]["max_hops"]["seed"], l.thief.to_checksum(None));

    assert_eq!(out["csp"], json!([]), "0 CSP violations: {out}");
    assert_eq!(out["errors"], json!([]), "{out}");
    assert_eq!(out["dialogs"], json!([]), "{out}");
    assert_eq!(
        out["axe"],
        json!([]),
        "axe: no serious or critical violation"
    );
    Ok(())
}

/// A server tracing over 2,011 addresses (a thief paying 10, each paying 10, each of those
/// paying 19: `holdfast import transfers`), and the URL of that trace's page.
async fn large_trace() -> R<(World, String)> {
    let thief = 1u64;
    let mut rows = String::from(
        "hash,block_number,transaction_index,from_address,to_address,value,block_timestamp,receipt_status\n",
    );
    let mut n = 1u64;
    let mut tx = 0u64;
    let mut level = vec![thief];
    // Each address pays on less than it received (10 ETH, 0.5 ETH, 0.01 ETH a payment), so
    // every payment carries taint under haircut.
    for (value, fan) in [
        (10_000_000_000_000_000_000u128, 10u64),
        (500_000_000_000_000_000, 10),
        (10_000_000_000_000_000, 19),
    ] {
        let mut next = Vec::new();
        for from in &level {
            for _ in 0..fan {
                n += 1;
                tx += 1;
                rows.push_str(&format!(
                    "0x{tx:064x},{},0,0x{from:040x},0x{n:040x},{value},{},1\n",
                    100 + tx,
                    (100 + tx) * 12
                ));
                next.push(n);
            }
        }
        level = next;
    }
    let w = world_on(Anvil::spawn().await?, false, &["--trace"], false, &|data| {
        let file = data.join("transactions.csv");
        std::fs::create_dir_all(data)?;
        std::fs::write(&file, &rows)?;
        let o = crate::holdfast(data, &["import", "transfers", &file.display().to_string()]);
        if !o.status.success() {
            return Err(format!("import: {}", crate::stderr(&o)).into());
        }
        Ok(())
    })
    .await?;
    let url = format!(
        "{}/console/trace?seed=0x{thief:040x}&policy=haircut&max_hops=5&max_nodes=5000",
        w.service.url()
    );
    Ok((w, url))
}

/// The first-load budget holds for the largest page: the 2,011-address trace, loaded
/// with the cache disabled, is at most 300,000 bytes transferred, compressed.
#[tokio::test(flavor = "multi_thread")]
async fn the_2000_address_trace_page_loads_within_300_kb() -> R {
    let chromium = need_chromium!();
    let (w, url) = large_trace().await?;
    let out = drive(
        "trace_bench.mjs",
        json!({"chromium": chromium, "base": w.service.url(), "token": "tok-ops", "url": url, "runs": 0}),
    )?;
    let first = json!({"first_load": {"trace (2,011 addresses)": out["first_load"].clone()}});
    super::first_loads(&first, false)?;
    assert!(
        out["first_load"]["decoded"].as_u64().unwrap_or(0) > 1_000_000,
        "the page is the large one: {out}"
    );
    Ok(())
}

/// docs/BENCHMARKS.md, "Console: the trace page": the page of [`large_trace`] loaded 7 times
/// in Chromium; medians of the server's answer, the document interactive, the graph's
/// script ready, the longest main-thread task and a wheel zoom's next frame. Run with
/// `cargo nextest run -p holdfast-cli --run-ignored only trace_page` (`HOLDFAST_SERVE_BIN`:
/// another build of `holdfast` to serve, e.g. `target/release/holdfast`).
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a measurement (docs/BENCHMARKS.md), not a check"]
async fn trace_page_with_2000_addresses_in_chromium() -> R {
    let chromium = need_chromium!();
    let (w, url) = large_trace().await?;
    let out = drive(
        "trace_bench.mjs",
        json!({"chromium": chromium, "base": w.service.url(), "token": "tok-ops", "url": url, "runs": 7}),
    )?;
    let runs = out["runs"].as_array().ok_or("runs")?;
    let median = |k: &str| -> f64 {
        let mut v: Vec<f64> = runs.iter().filter_map(|r| r[k].as_f64()).collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    eprintln!(
        "trace page, {} nodes, {} edges, {} KB HTML ({} KB transferred): median of {} loads: server answer {:.0} ms, DOM interactive {:.0} ms, graph ready {:.0} ms, longest task {:.0} ms, wheel zoom to next frame {:.0} ms",
        runs[0]["nodes"],
        runs[0]["edges"],
        runs[0]["html_bytes"].as_f64().unwrap_or(0.0) / 1024.0,
        runs[0]["bytes"].as_f64().unwrap_or(0.0) / 1024.0,
        runs.len(),
        median("response_end"),
        median("dom_interactive"),
        median("ready"),
        median("longest_task"),
        median("zoom_to_frame"),
    );
    eprintln!("{out}");
    assert_eq!(runs[0]["nodes"], 2011, "{out}");
    // The first load (cache disabled) within the 300 KB, compressed; its time is
    // the medians above (a debug build of the server here).
    let first = json!({"first_load": {"trace (2,011 addresses)": out["first_load"].clone()}});
    super::first_loads(&first, false)?;
    Ok(())
}
