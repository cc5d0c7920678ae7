use std::collections::HashMap;

use alloy_primitives::{Address, B256};
use holdfast_store::watch::{AlertEventKind, OutboxEvent};

use super::*;
use crate::alert::{AddressNote, Alert, DetectorKind, Fact, Link, Place};

fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |k| map.get(k).cloned()
}

fn webhook(url: &str, secret_env: Option<&str>, min: Option<&str>) -> SinkSpec {
    SinkSpec::Webhook {
        name: "hook".into(),
        url: url.into(),
        secret_env: secret_env.map(Into::into),
        min_severity: min.map(Into::into),
    }
}

fn email(server: &str, from: &str, to: &[&str]) -> SinkSpec {
    SinkSpec::Email {
        name: "mail".into(),
        server: server.into(),
        from: from.into(),
        to: to.iter().map(|s| (*s).to_owned()).collect(),
        username: None,
        password_env: None,
        min_severity: None,
        tls_ca_file: None,
    }
}

pub(crate) fn alert(severity: Severity, confirmations: u64) -> Alert {
    let place = Place::Storage {
        tx_index: 3,
        address: Address::repeat_byte(0x1d),
        slot: B256::ZERO,
    };
    let block_hash = B256::repeat_byte(7);
    Alert {
        id: crate::alert::alert_id(1, block_hash, "safe-singleton", &place),
        chain_id: 1,
        chain: "mainnet".into(),
        block_number: 21_895_238,
        block_hash,
        block_timestamp: 1_740_000_000,
        tx_hash: Some(B256::repeat_byte(9)),
        place,
        rule: "safe-singleton".into(),
        detector: DetectorKind::CriticalStorage,
        severity,
        title: "Safe 0x1d1d… singleton replaced by 0xbdd0… in a DELEGATECALL".into(),
        summary: "The Safe's implementation <slot 0> was replaced & the wallet is now controlled by the new code.".into(),
        facts: vec![
            Fact { name: "old singleton".into(), value: "0x34cf…".into() },
            Fact { name: "new singleton".into(), value: "0xbdd0…".into() },
        ],
        addresses: vec![AddressNote {
            address: Address::repeat_byte(0x1d),
            role: "watched wallet".into(),
            involvement: crate::alert::Involvement::Watched,
            labels: vec!["Bybit cold wallet".into()],
        }],
        links: vec![Link { name: "transaction".into(), url: "https://etherscan.io/tx/0x09".into() }],
        confirmations,
        responses: vec!["freeze".into()],
        evidence: serde_json::json!({"deposit": "0xdep", "amount": "10 ETH"}),
    }
}

pub(crate) fn outbox_event(seq: u64, kind: AlertEventKind, alert: &Alert) -> OutboxEvent {
    OutboxEvent {
        seq,
        alert_id: alert.id.clone(),
        kind,
        body: serde_json::to_vec(alert).unwrap_or_default(),
    }
}

fn err_of(r: Result<Sink, SinkConfigError>) -> SinkConfigError {
    match r {
        Ok(s) => panic!("expected an error, got {s:?}"),
        Err(e) => e,
    }
}

#[test]
fn webhook_specs_are_validated_with_errors_naming_sink_and_field() {
    let env = env_of(&[("HOOK_SECRET", "s3cr3t-value"), ("EMPTY", "")]);
    let ok = Sink::from_spec(
        &webhook(
            "https://example.org/hook",
            Some("HOOK_SECRET"),
            Some("high"),
        ),
        &env,
    );
    assert!(ok.is_ok_and(|s| s.min_severity() == Severity::High));

    let e = err_of(Sink::from_spec(
        &webhook("ftp://example.org/x", None, None),
        &env,
    ));
    assert_eq!((e.sink.as_str(), e.field), ("hook", "url"));
    assert!(
        e.to_string().contains("\"ftp\"") && e.to_string().contains("http"),
        "{e}"
    );

    let e = err_of(Sink::from_spec(
        &webhook("not a url /secret-path", None, None),
        &env,
    ));
    assert_eq!(e.field, "url");
    assert!(
        !e.to_string().contains("secret-path"),
        "the raw URL is not echoed: {e}"
    );

    let e = err_of(Sink::from_spec(
        &webhook("https://example.org", Some("MISSING"), None),
        &env,
    ));
    assert_eq!(e.field, "secret_env");
    assert!(
        e.to_string().contains("MISSING") && e.to_string().contains("not set"),
        "{e}"
    );

    let e = err_of(Sink::from_spec(
        &webhook("https://example.org", Some("EMPTY"), None),
        &env,
    ));
    assert!(e.to_string().contains("empty"), "{e}");

    let e = err_of(Sink::from_spec(
        &webhook("https://example.org", None, Some("urgent")),
        &env,
    ));
    assert_eq!(e.field, "min_severity");
    assert!(
        e.to_string().contains("\"urgent\"") && e.to_string().contains("critical"),
        "{e}"
    );
}

#[test]
fn email_specs_are_validated() {
    let env = env_of(&[("SMTP_PASS", "hunter2")]);
    let ok = Sink::from_spec(
        &email(
            "smtp://127.0.0.1:2525",
            "Holdfast <watch@example.org>",
            &["soc@example.org"],
        ),
        &env,
    );
    let sink = ok.unwrap_or_else(|e| panic!("{e}"));
    match sink.target() {
        SinkTarget::Email(e) => assert_eq!(e.server(), "smtp://127.0.0.1:2525"),
        other => panic!("{other:?}"),
    }
    let defaults = Sink::from_spec(
        &email(
            "smtps://mail.example.org",
            "a@example.org",
            &["b@example.org"],
        ),
        &env,
    );
    assert!(
        matches!(defaults.map(|s| s.target().clone()), Ok(SinkTarget::Email(e)) if e.port() == 465)
    );

    for (spec, field, needle) in [
        (
            email(
                "http://mail.example.org",
                "a@example.org",
                &["b@example.org"],
            ),
            "server",
            "smtp",
        ),
        (
            email(
                "smtp://mail.example.org",
                "not an address",
                &["b@example.org"],
            ),
            "from",
            "not an address",
        ),
        (
            email("smtp://mail.example.org", "a@example.org", &[]),
            "to",
            "at least one",
        ),
        (
            email(
                "smtp://mail.example.org",
                "a@example.org",
                &["b@example.org", "oops@"],
            ),
            "to",
            "oops@",
        ),
        (
            email(
                "smtp://user:pw@mail.example.org",
                "a@example.org",
                &["b@example.org"],
            ),
            "server",
            "credentials",
        ),
    ] {
        let e = err_of(Sink::from_spec(&spec, &env));
        assert_eq!((e.sink.as_str(), e.field), ("mail", field), "{e}");
        assert!(e.to_string().contains(needle), "{e}");
        assert!(!e.to_string().contains(":pw@"), "{e}");
    }

    let mut with_user = email(
        "smtp://mail.example.org",
        "a@example.org",
        &["b@example.org"],
    );
    if let SinkSpec::Email { username, .. } = &mut with_user {
        *username = Some("watch".into());
    }
    assert_eq!(
        err_of(Sink::from_spec(&with_user, &env)).field,
        "password_env"
    );
    if let SinkSpec::Email { password_env, .. } = &mut with_user {
        *password_env = Some("SMTP_PASS".into());
    }
    let sink = Sink::from_spec(&with_user, &env).unwrap_or_else(|e| panic!("{e}"));
    let debug = format!("{sink:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(debug.contains("authenticated: true"), "{debug}");
}

#[test]
fn names_must_be_unique_and_non_empty() {
    let env = env_of(&[]);
    let stdout = |n: &str| SinkSpec::Stdout {
        name: n.into(),
        min_severity: None,
    };
    let e = Sink::from_specs(&[stdout("a"), stdout("b"), stdout("a")], &env);
    assert!(
        matches!(e, Err(ref e) if e.sink == "a" && e.field == "name"),
        "{e:?}"
    );
    let e = Sink::from_specs(&[stdout(" ")], &env);
    assert!(matches!(e, Err(ref e) if e.field == "name"), "{e:?}");
    assert!(Sink::from_specs(&[stdout("a"), stdout("b")], &env).is_ok_and(|v| v.len() == 2));
}

#[test]
fn secrets_and_url_paths_never_show_in_debug() {
    let env = env_of(&[("HOOK_SECRET", "s3cr3t-value")]);
    let hook = Sink::from_spec(
        &webhook(
            "https://example.org:8443/hooks/T000/B000/XXXX?token=abc",
            Some("HOOK_SECRET"),
            None,
        ),
        &env,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let slack = Sink::from_spec(
        &SinkSpec::Slack {
            name: "slack".into(),
            url: "https://hooks.slack.com/services/T0/B0/SECRETPATH".into(),
            min_severity: None,
        },
        &env,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    for debug in [format!("{hook:?}"), format!("{slack:?}")] {
        for secret in ["s3cr3t-value", "XXXX", "token=abc", "SECRETPATH"] {
            assert!(!debug.contains(secret), "{secret} in {debug}");
        }
        assert!(debug.contains("https://"), "{debug}");
    }
    assert!(format!("{hook:?}").contains("<redacted>"));
    assert_eq!(format!("{:?}", Secret::new("x")), "<redacted>");
}

#[test]
fn signatures_verify_and_refuse_tampering_and_replay() {
    let body = br#"{"event":"raised"}"#;
    let header = sign(b"key", 1_700_000_000, body);
    assert!(header.starts_with("t=1700000000,v1="));
    assert_eq!(
        verify_signature(&header, b"key", body, 1_700_000_100, 300),
        Ok(())
    );
    assert_eq!(
        verify_signature(&header, b"other", body, 1_700_000_000, 300),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        verify_signature(
            &header,
            b"key",
            br#"{"event":"retracted"}"#,
            1_700_000_000,
            300
        ),
        Err(SignatureError::Mismatch)
    );
    assert!(matches!(
        verify_signature(&header, b"key", body, 1_700_001_000, 300),
        Err(SignatureError::Stale { skew: 1000, .. })
    ));
    for bad in [
        "",
        "t=1",
        "v1=00",
        "t=x,v1=00",
        "t=1,v1=zz",
        "t=1,v1=00,x=1",
    ] {
        assert!(
            matches!(
                verify_signature(bad, b"key", body, 1, 300),
                Err(SignatureError::Malformed(_))
            ),
            "{bad}"
        );
    }
    // The HMAC is over "<t>.<body>" (receivers in other languages rebuild it this way).
    use hmac::{Hmac, Mac};
    let mut m = Hmac::<sha2::Sha256>::new_from_slice(b"key").unwrap_or_else(|_| panic!());
    m.update(b"1700000000.");
    m.update(body);
    assert_eq!(
        header,
        format!("t=1700000000,v1={}", hex::encode(m.finalize().into_bytes()))
    );
}

#[test]
fn webhook_body_and_json_line_carry_event_key_seq_and_alert() {
    let a = alert(Severity::Critical, 0);
    let ev = SinkEvent::from_outbox(&outbox_event(7, AlertEventKind::Retracted, &a));
    let v: serde_json::Value = serde_json::from_slice(&webhook_body(&ev)).unwrap_or_default();
    assert_eq!(v["event"], "retracted");
    assert_eq!(v["key"], format!("{}:retracted", a.id));
    assert_eq!(v["seq"], 7);
    assert_eq!(v["alert"]["id"], a.id.as_str());
    assert_eq!(
        serde_json::from_value::<Alert>(v["alert"].clone()).ok(),
        Some(a)
    );
    let line = json_line(&ev);
    assert!(
        line.starts_with(br#"{"event":"retracted","key":"hf-"#),
        "fields in order"
    );
    assert_eq!(line.last(), Some(&b'\n'));
    assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1);
}

#[test]
fn an_unreadable_body_is_still_delivered_and_never_filtered() {
    let ev = SinkEvent::from_outbox(&OutboxEvent {
        seq: 1,
        alert_id: "hf-x".into(),
        kind: AlertEventKind::Raised,
        body: b"not json".to_vec(),
    });
    assert_eq!(ev.alert, serde_json::Value::String("not json".into()));
    assert!(ev.decoded.is_none());
    let env = env_of(&[]);
    let sink = Sink::from_spec(
        &SinkSpec::Stdout {
            name: "s".into(),
            min_severity: Some("critical".into()),
        },
        &env,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(sink.wants(&ev));
    let p = slack_payload(&ev);
    assert!(
        p["text"].as_str().is_some_and(|t| t.contains("hf-x")),
        "{p}"
    );
}

#[test]
fn min_severity_filters_by_the_alerts_severity() {
    let env = env_of(&[]);
    let sink = Sink::from_spec(
        &SinkSpec::Stdout {
            name: "s".into(),
            min_severity: Some("high".into()),
        },
        &env,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let ev = |s| SinkEvent::from_outbox(&outbox_event(1, AlertEventKind::Raised, &alert(s, 1)));
    assert!(!sink.wants(&ev(Severity::Medium)));
    assert!(sink.wants(&ev(Severity::High)));
    assert!(sink.wants(&ev(Severity::Critical)));
}

#[test]
fn slack_payload_shows_severity_title_facts_links_and_retractions() {
    let a = alert(Severity::Critical, 0);
    let raised = slack_payload(&SinkEvent::from_outbox(&outbox_event(
        1,
        AlertEventKind::Raised,
        &a,
    )));
    assert_eq!(raised["text"], format!("[CRITICAL] {}", a.title));
    let blocks = raised["blocks"].as_array().cloned().unwrap_or_default();
    assert_eq!(blocks[0]["type"], "header");
    assert!(
        blocks[0]["text"]["text"]
            .as_str()
            .is_some_and(|t| t.contains("CRITICAL") && t.contains("singleton"))
    );
    let all = raised.to_string();
    assert!(all.contains("0 confirmations"), "{all}");
    assert!(
        all.contains("&lt;slot 0&gt;") && all.contains("&amp;"),
        "mrkdwn escaped: {all}"
    );
    assert!(all.contains("*old singleton*\\n0x34cf…"), "{all}");
    assert!(
        all.contains("<https://etherscan.io/tx/0x09|transaction>"),
        "{all}"
    );
    assert!(all.contains("Bybit cold wallet"), "{all}");
    assert!(all.contains(&a.id), "{all}");

    let retracted = slack_payload(&SinkEvent::from_outbox(&outbox_event(
        2,
        AlertEventKind::Retracted,
        &a,
    )));
    assert!(
        retracted["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("RETRACTED")),
        "{retracted}"
    );
    assert!(retracted.to_string().contains("unwound by a reorg"));
    let confirmed = slack_payload(&SinkEvent::from_outbox(&outbox_event(
        3,
        AlertEventKind::Confirmed,
        &a,
    )));
    assert!(
        confirmed["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("CONFIRMED")),
        "{confirmed}"
    );
}

#[test]
fn email_message_has_subject_message_id_and_body() {
    let env = env_of(&[]);
    let sink = Sink::from_spec(
        &email(
            "smtp://127.0.0.1:2525",
            "watch@example.org",
            &["soc@example.org", "Ops <ops@example.org>"],
        ),
        &env,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let SinkTarget::Email(mail) = sink.target() else {
        panic!()
    };
    let a = alert(Severity::Critical, 0);
    let raised = mail.message(&SinkEvent::from_outbox(&outbox_event(
        1,
        AlertEventKind::Raised,
        &a,
    )));
    let text =
        String::from_utf8(raised.map(|m| m.formatted()).unwrap_or_default()).unwrap_or_default();
    // Non-ASCII words of the title are encoded (RFC 2047); the prefix stays readable.
    assert!(
        text.contains("Subject: [Holdfast CRITICAL] Safe "),
        "{text}"
    );
    assert!(
        text.contains(&format!("Message-ID: <{}@holdfast>", a.id)),
        "{text}"
    );
    assert!(text.contains("ops@example.org"), "{text}");
    assert!(
        text.contains("Evidence") && text.contains("\"deposit\": \"0xdep\""),
        "{text}"
    );
    let retracted = mail.message(&SinkEvent::from_outbox(&outbox_event(
        2,
        AlertEventKind::Retracted,
        &a,
    )));
    let text =
        String::from_utf8(retracted.map(|m| m.formatted()).unwrap_or_default()).unwrap_or_default();
    assert!(
        text.contains(&format!("Message-ID: <{}.retracted@holdfast>", a.id)),
        "{text}"
    );
    assert!(
        text.contains(&format!("In-Reply-To: <{}@holdfast>", a.id)),
        "{text}"
    );
    assert_eq!(message_id("hf-ab:confirmed"), "<hf-ab.confirmed@holdfast>");
}

#[tokio::test]
async fn probe_tells_an_unreachable_sink_from_a_reachable_one() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
    // Port 1: nothing listens there (a port free a moment ago may be taken by another test).
    let closed = 1;
    let env = env_of(&[]);
    let up = Sink::from_spec(
        &webhook(&format!("http://127.0.0.1:{port}/x"), None, None),
        &env,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let down = Sink::from_spec(
        &webhook(&format!("http://127.0.0.1:{closed}/secret"), None, None),
        &env,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let t = Duration::from_secs(2);
    assert!(up.probe(t).await.is_ok());
    let e = down
        .probe(t)
        .await
        .err()
        .unwrap_or_else(|| panic!("reachable?"));
    assert_eq!(e.target, format!("127.0.0.1:{closed}"));
    assert!(!e.to_string().contains("secret"), "{e}");
    let unreachable = probe_all(&[up, down], t).await;
    assert_eq!(unreachable.len(), 1);
}

#[test]
fn slack_payload_stays_within_block_kit_limits() {
    let mut a = alert(Severity::High, 1);
    a.title = "t".repeat(500);
    a.summary = "s".repeat(10_000);
    a.facts = (0..600)
        .map(|i| Fact {
            name: format!("fact {i}"),
            value: "v".repeat(3000),
        })
        .collect();
    let p = slack_payload(&SinkEvent::from_outbox(&outbox_event(
        1,
        AlertEventKind::Raised,
        &a,
    )));
    let blocks = p["blocks"].as_array().cloned().unwrap_or_default();
    assert!(blocks.len() <= 50, "{} blocks", blocks.len());
    assert!(
        blocks[0]["text"]["text"]
            .as_str()
            .is_some_and(|t| t.chars().count() <= 150)
    );
    for b in &blocks {
        if let Some(t) = b["text"]["text"].as_str() {
            assert!(t.chars().count() <= 3000);
        }
        for f in b["fields"].as_array().into_iter().flatten() {
            assert!(
                f["text"]
                    .as_str()
                    .is_some_and(|t| t.chars().count() <= 2000)
            );
        }
        assert!(b["fields"].as_array().is_none_or(|f| f.len() <= 10));
    }
    assert!(p.to_string().contains("and 560 more facts"));
}

/// Names that cannot key a delivery cursor are refused by the library too (a watch file
/// not read through `config::validate`).
#[test]
fn a_sink_name_must_key_a_delivery_cursor() {
    let env = env_of(&[]);
    let long = "s".repeat(201);
    for bad in [
        "soc alerts",
        "holdfast:responder",
        "",
        " ",
        "sécu",
        long.as_str(),
    ] {
        let spec = SinkSpec::Stdout {
            name: bad.into(),
            min_severity: None,
        };
        let e = err_of(Sink::from_spec(&spec, &env));
        assert_eq!(e.field, "name", "{e}");
        assert!(e.to_string().contains("printable ASCII"), "{e}");
    }
    let spec = SinkSpec::Stdout {
        name: "x".repeat(200),
        min_severity: None,
    };
    assert!(Sink::from_spec(&spec, &env).is_ok());
}
