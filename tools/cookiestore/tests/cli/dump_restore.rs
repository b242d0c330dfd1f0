//! `dump`, `export` and `restore`: exact round trips, merges, bad lines.

use std::path::Path;

use crate::common::*;
use crate::support::*;
use cookiestore::Cookie;
use cookiestore::format_rfc3339_ns;
use predicates::prelude::*;
use serde_json::{Value, json};

#[test]
fn dump_of_the_cfxdb_fixture_equals_the_expected_records() {
    let dir = cfxdb_copy();
    let out = cli()
        .args(["--now", &cfxdb_now(), "dump", s(dir.path())])
        .assert()
        .success()
        .stderr("")
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    let got = json_lines(&text);
    assert_eq!(got.len(), 60);
    for line in text.lines() {
        assert!(line.starts_with(r#"{"oid":""#), "schema order: {line}");
        assert_eq!(
            serde_json::from_str::<Value>(line)
                .unwrap()
                .as_object()
                .unwrap()
                .len(),
            17
        );
    }
    let want: Vec<Value> = expected_cfxdb().iter().map(dump_form).collect();
    assert_eq!(by_oid(got.clone()), by_oid(want));
    // dump walks oid order.
    assert_eq!(got, by_oid(got.clone()));
}

#[test]
fn dump_filters_and_table() {
    let dir = cfxdb_copy();
    let path = s(dir.path());
    let expected = expected_cfxdb();
    let now = cfxdb_now();
    let count = |extra: &[&str]| {
        let mut args = vec!["--now", &now, "dump", path];
        args.extend_from_slice(extra);
        let out = run(&args);
        assert_eq!(out.code, 0, "{}", out.stderr);
        json_lines(&out.stdout)
    };
    let authenticated = expected
        .iter()
        .filter(|c| c.get("authid").is_some())
        .count();
    assert_eq!(count(&["--authenticated"]).len(), authenticated);
    let realm1 = count(&["--realm", "realm1"]);
    assert!(!realm1.is_empty());
    assert!(realm1.iter().all(|c| c["authrealm"] == "realm1"));
    assert_eq!(
        realm1.len(),
        expected
            .iter()
            .filter(|c| c.get("authrealm") == Some(&json!("realm1")))
            .count()
    );
    let alice = count(&["--authid", "alice"]);
    assert!(!alice.is_empty() && alice.iter().all(|c| c["authid"] == "alice"));
    assert_eq!(count(&["--limit", "7"]).len(), 7);
    assert_eq!(count(&["--authenticated", "--limit", "3"]).len(), 3);

    // A year later most have expired; --include-expired shows them again.
    let later = "2026-11-22T00:00:00Z";
    let live = run(&["--now", later, "dump", path]);
    let all = run(&["--now", later, "dump", path, "--include-expired"]);
    let live_n = json_lines(&live.stdout).len();
    assert!(live_n > 0 && live_n < 60, "{live_n}");
    assert_eq!(json_lines(&all.stdout).len(), 60);

    let table = run(&[
        "--now", &now, "dump", path, "--format", "table", "--limit", "5",
    ]);
    assert_eq!(table.code, 0, "{}", table.stderr);
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert_eq!(lines.len(), 6, "{}", table.stdout);
    for h in ["VALUE", "AUTHID", "AUTHROLE", "REALM", "CREATED", "EXPIRES"] {
        assert!(lines[0].contains(h), "{}", lines[0]);
    }
    assert!(
        lines[1..].iter().all(|l| l.contains(" in ")),
        "{}",
        table.stdout
    );
}

// ---- export / restore ---------------------------------------------------------------------

#[test]
fn dump_export_restore_round_trip_10000_cookies_exactly() {
    let now = 1_800_000_000_000_000_000;
    let now_text = format_rfc3339_ns(now);
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let b_store = b.path().join("restored");
    make_store(a.path(), 10_000, now);
    let export_file = a.path().join("export.jsonl");

    let dump = |p: &Path| {
        let out = run(&["--now", &now_text, "dump", s(p), "--include-expired"]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        out.stdout
    };
    let dump_a = dump(a.path());
    assert_eq!(dump_a.lines().count(), 10_000);
    cli()
        .args([
            "--now",
            &now_text,
            "export",
            s(a.path()),
            "-o",
            s(&export_file),
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains("exported 10000 cookies"));
    let export_a = std::fs::read_to_string(&export_file).unwrap();
    assert_eq!(export_a.lines().count(), 10_000);
    // The export is Cookie's serde form, so it parses back into the very records.
    let first: Cookie = serde_json::from_str(export_a.lines().next().unwrap()).unwrap();
    assert!(!first.oid.is_nil());

    cli()
        .args(["--now", &now_text, "restore", s(&b_store), s(&export_file)])
        .assert()
        .success()
        .stdout(predicate::str::contains("10000 new"));
    assert_eq!(dump(&b_store), dump_a);
    let export_b = run(&["--now", &now_text, "export", s(&b_store)]);
    assert_eq!(export_b.code, 0);
    assert_eq!(export_b.stdout, export_a);
    cli()
        .args(["--now", &now_text, "check", s(&b_store)])
        .assert()
        .success();

    // A second restore is refused without --merge, and changes nothing with it.
    let refused = run(&["restore", s(&b_store), s(&export_file)]);
    assert_eq!(refused.code, 2);
    assert_one_line(&refused.stderr, "--merge");
    let merged = run(&["restore", s(&b_store), s(&export_file), "--merge", "--json"]);
    assert_eq!(merged.code, 0, "{}", merged.stderr);
    let summary: Value = serde_json::from_str(&merged.stdout).unwrap();
    assert_eq!(summary["unchanged"], 10_000);
    assert_eq!(summary["restored"], 0);
    assert_eq!(dump(&b_store), dump_a);
}

#[test]
fn restore_merge_reports_conflicts_and_bad_lines() {
    let now = now_ns();
    let dir = tempfile::tempdir().unwrap();
    let cookies = make_store(dir.path(), 5, now);
    let mut clash = sample_cookie(100, now);
    clash.value = cookies[0].value.clone(); // another oid with a value the store holds
    let mut changed = cookies[1].clone();
    changed.authid = Some("someone-else".into());
    let fresh = sample_cookie(101, now);
    let fresh2 = sample_cookie(102, now);
    let file = dir.path().join("in.jsonl");
    let text = [
        serde_json::to_string(&clash).unwrap(),
        "{not json".to_string(),
        serde_json::to_string(&changed).unwrap(),
        String::new(),
        r#"{"value": "no-oid"}"#.to_string(),
        serde_json::to_string(&fresh).unwrap(),
    ]
    .join("\n");
    let mut bytes = text.into_bytes();
    bytes.extend_from_slice(b"\n{\"value\": \"\xff\"}\n");
    bytes.extend_from_slice(serde_json::to_string(&fresh2).unwrap().as_bytes());
    std::fs::write(&file, bytes).unwrap();
    let out = run(&["restore", s(dir.path()), s(&file), "--merge", "--json"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let summary: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        summary["restored"], 2,
        "the line after a non-UTF-8 one is read"
    );
    assert_eq!(summary["replaced"], 1);
    assert_eq!(summary["conflicts"].as_array().unwrap().len(), 1);
    let bad: Vec<u64> = summary["bad_lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b[0].as_u64().unwrap())
        .collect();
    assert_eq!(bad, [2, 5, 7]);
    assert!(out.stderr.contains("line 1:") && out.stderr.contains("belongs to cookie"));
    assert!(out.stderr.contains("line 2:") && out.stderr.contains("line 5:"));
    let got = run(&["get", s(dir.path()), &cookies[1].value, "--json"]);
    assert_eq!(json_lines(&got.stdout)[0]["authid"], "someone-else");
    let kept = run(&["get", s(dir.path()), &cookies[0].value, "--json"]);
    assert_eq!(
        json_lines(&kept.stdout)[0]["oid"],
        cookies[0].oid.to_string()
    );
}

#[test]
fn restore_skips_unstorable_records_and_repeated_oids_with_their_lines() {
    let now = now_ns();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let good: Vec<Cookie> = (0..3).map(|i| sample_cookie(201 + i, now)).collect();
    let mut spaced = sample_cookie(210, now);
    spaced.value = "has a space".into();
    let mut semi = sample_cookie(211, now);
    semi.value = "a;b".into();
    let mut again = sample_cookie(212, now);
    again.oid = good[0].oid; // the same oid as line 1, another value
    let lines = [&good[0], &spaced, &semi, &good[1], &again, &good[2]];
    let text: Vec<String> = lines
        .iter()
        .map(|c| serde_json::to_string(c).unwrap())
        .collect();
    let file = dir.path().join("in.jsonl");
    std::fs::write(&file, text.join("\n") + "\n").unwrap();
    let out = run(&["restore", s(&store), s(&file), "--json"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let summary: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(summary["restored"], 3, "{summary}");
    assert_eq!(summary["replaced"], 0, "{summary}");
    let bad: Vec<u64> = summary["bad_lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b[0].as_u64().unwrap())
        .collect();
    assert_eq!(bad, [2, 3, 5], "{summary}");
    assert!(
        out.stderr.contains("line 5:") && out.stderr.contains("line 1"),
        "{}",
        out.stderr
    );
    for c in &good {
        let got = run(&["get", s(&store), &c.value, "--json"]);
        assert_eq!(json_lines(&got.stdout)[0]["oid"], c.oid.to_string());
    }
}

// ---- import -------------------------------------------------------------------------------
