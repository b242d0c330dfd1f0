//! `import` of Crossbar.io's `cookies.dat`: the fixture's state, re-runs, expiry, bad and deleted lines.

use std::path::Path;

use crate::common::*;
use crate::support::*;
use cookiestore::parse_rfc3339_ns;
use predicates::prelude::*;
use serde_json::{Value, json};

/// A dumped cookie in the form of crossbar-cookies.expected.jsonl (times compared as ns).
fn crossbar_form(d: &Value) -> Value {
    let empty = |v: &Value| v.is_null() || v.as_object().is_some_and(|m| m.is_empty());
    json!({
        "cbtid": d["value"],
        "created": parse_rfc3339_ns(d["created"].as_str().unwrap()).unwrap(),
        "max_age": d["max_age"],
        "authid": d["authid"],
        "authrole": d["authrole"],
        "authmethod": d["authmethod"],
        "authrealm": d["authrealm"],
        "authextra": if empty(&d["authextra"]) { Value::Null } else { d["authextra"].clone() },
    })
}

fn expected_crossbar() -> Vec<Value> {
    let text = std::fs::read_to_string(fixture("crossbar-cookies.expected.jsonl")).unwrap();
    let mut v: Vec<Value> = json_lines(&text)
        .into_iter()
        .map(|mut e| {
            e["created"] = json!(parse_rfc3339_ns(e["created"].as_str().unwrap()).unwrap());
            e
        })
        .collect();
    v.sort_by(|a, b| a["cbtid"].as_str().cmp(&b["cbtid"].as_str()));
    v
}

fn dumped_crossbar(store: &Path) -> Vec<Value> {
    let out = run(&["--now", CROSSBAR_NOW, "dump", s(store)]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let mut v: Vec<Value> = json_lines(&out.stdout).iter().map(crossbar_form).collect();
    v.sort_by(|a, b| a["cbtid"].as_str().cmp(&b["cbtid"].as_str()));
    v
}

fn import_json(store: &Path, file: &Path, now: &str) -> (i32, Value, String) {
    let out = run(&["--now", now, "import", s(store), s(file), "--json"]);
    let summary = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {} / {}", out.stdout, out.stderr));
    (out.code, summary, out.stderr)
}

#[test]
fn import_of_crossbar_fixture_yields_expected_state_and_a_second_import_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let dat = fixture("crossbar-cookies.dat");
    cli()
        .args(["--now", CROSSBAR_NOW, "import", s(&store), s(&dat)])
        .assert()
        .success()
        .stderr("")
        .stdout(
            predicate::str::contains("imported")
                .and(predicate::str::is_match(r"imported\s+32\s").unwrap())
                .and(predicate::str::is_match(r"deleted\s+8\s").unwrap())
                .and(predicate::str::is_match(r"bad lines\s+0\s").unwrap()),
        );
    assert_eq!(dumped_crossbar(&store), expected_crossbar());
    let dump = run(&["--now", CROSSBAR_NOW, "dump", s(&store)]);
    assert!(
        json_lines(&dump.stdout)
            .iter()
            .all(|c| c["name"] == "cbtid")
    );
    cli().args(["check", s(&store)]).assert().success();
    let export = |p: &Path| run(&["export", s(p)]).stdout;
    let before = export(&store);
    let bytes = std::fs::read(store.join("data.mdb")).unwrap();

    let (code, summary, stderr) = import_json(&store, &dat, CROSSBAR_NOW);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(summary["imported"], 0);
    assert_eq!(summary["updated"], 0);
    assert_eq!(summary["unchanged"], 32);
    assert_eq!(summary["removed_from_store"], 0);
    assert_eq!(export(&store), before, "a second import changes nothing");
    assert_eq!(
        std::fs::read(store.join("data.mdb")).unwrap(),
        bytes,
        "not even a write transaction"
    );
    assert_eq!(dumped_crossbar(&store), expected_crossbar());

    // --dry-run says what a changed file would do, and writes nothing.
    let changed = dir.path().join("changed.dat");
    let mut text = std::fs::read_to_string(&dat).unwrap();
    text.push_str(
        &json!({"cbtid": "BrandNewCookie0000000000", "status": "created",
                "created": "2026-11-22T03:00:00.000Z", "modified": null, "deleted": null,
                "max_age": 604800, "authid": null, "authrole": null, "authmethod": null,
                "authrealm": null, "authextra": null})
        .to_string(),
    );
    text.push('\n');
    std::fs::write(&changed, text).unwrap();
    let out = run(&[
        "--now",
        CROSSBAR_NOW,
        "import",
        s(&store),
        s(&changed),
        "--dry-run",
        "--json",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let plan: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        (plan["imported"].as_u64(), plan["unchanged"].as_u64()),
        (Some(1), Some(32))
    );
    assert_eq!(plan["dry_run"], true);
    assert_eq!(std::fs::read(store.join("data.mdb")).unwrap(), bytes);
    let (code, summary, _) = import_json(&store, &changed, CROSSBAR_NOW);
    assert_eq!((code, summary["imported"].as_u64()), (0, Some(1)));
}

#[test]
fn import_drops_and_counts_expired_cookies() {
    let dir = tempfile::tempdir().unwrap();
    let (code, summary, _) = import_json(
        dir.path(),
        &fixture("crossbar-cookies.dat"),
        "2026-12-01T00:00:00Z",
    );
    assert_eq!(code, 0);
    assert_eq!(summary["expired"], 32);
    assert_eq!(summary["imported"], 0);
    let dump = run(&[
        "--now",
        "2026-12-01T00:00:00Z",
        "dump",
        s(dir.path()),
        "--include-expired",
    ]);
    assert_eq!(dump.stdout, "");
}

#[test]
fn import_with_broken_lines_keeps_the_good_ones_and_reports_the_bad_line_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read(fixture("crossbar-cookies.dat")).unwrap();
    let mut lines: Vec<Vec<u8>> = good.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
    if lines.last().is_some_and(Vec::is_empty) {
        lines.pop();
    }
    // Insert broken lines so that they end up at these 1-based line numbers.
    let broken: Vec<(usize, Vec<u8>)> = vec![
        (3, b"this is not json".to_vec()),
        (10, br#"{"cbtid": "only-a-value"}"#.to_vec()),
        (
            20,
            br#"{"cbtid": "AAAAAAAAAAAAAAAAAAAAAAAA", "status": "created", "created": "yesterday", "max_age": 60}"#
                .to_vec(),
        ),
        (30, b"{\"cbtid\": \"\xff\xfe\", \"status\": \"created\"}".to_vec()),
        (41, br#"["an", "array"]"#.to_vec()),
    ];
    for (at, line) in &broken {
        lines.insert(at - 1, line.clone());
    }
    let n = lines.len() + 1;
    let mut bytes = lines.join(&b'\n');
    bytes.extend_from_slice(b"\n{\"cbtid\": \"truncated"); // last line, cut short
    let file = dir.path().join("cookies.dat");
    std::fs::write(&file, &bytes).unwrap();
    let store = dir.path().join("store");

    let out = run(&["--now", CROSSBAR_NOW, "import", s(&store), s(&file)]);
    assert_eq!(out.code, 1, "bad lines give exit 1: {}", out.stderr);
    let mut want: Vec<usize> = broken.iter().map(|(at, _)| *at).collect();
    want.push(n);
    for at in &want {
        assert!(
            out.stderr.contains(&format!(" line {at}: ")),
            "line {at} not reported: {}",
            out.stderr
        );
    }
    assert_eq!(out.stderr.lines().count(), want.len(), "{}", out.stderr);
    assert!(out.stdout.contains("bad lines"), "{}", out.stdout);
    assert_eq!(dumped_crossbar(&store), expected_crossbar());

    let (_, summary, _) = import_json(&store, &file, CROSSBAR_NOW);
    let numbers: Vec<u64> = summary["bad_lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b[0].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, want.iter().map(|&n| n as u64).collect::<Vec<_>>());
    assert_eq!(summary["unchanged"], 32);
}

#[test]
fn import_deleted_line_removes_a_stored_cookie_and_leaves_others_alone() {
    let dir = tempfile::tempdir().unwrap();
    let now = parse_rfc3339_ns(CROSSBAR_NOW).unwrap();
    let mine = make_store(dir.path(), 3, now);
    let line = |status: &str, authid: Value| {
        json!({"cbtid": "LoggedOutLater0000000000", "status": status,
               "created": "2026-11-22T02:49:50.212Z", "modified": null, "deleted": null,
               "max_age": 604800, "authid": authid, "authrole": "user", "authmethod": "wampcra",
               "authrealm": "realm1", "authextra": null})
        .to_string()
    };
    let first = dir.path().join("1.dat");
    std::fs::write(
        &first,
        format!(
            "{}\n{}\n",
            line("created", Value::Null),
            line("modified", json!("bob"))
        ),
    )
    .unwrap();
    let (code, summary, _) = import_json(dir.path(), &first, CROSSBAR_NOW);
    assert_eq!((code, summary["imported"].as_u64()), (0, Some(1)));
    let got = run(&[
        "--now",
        CROSSBAR_NOW,
        "get",
        s(dir.path()),
        "LoggedOutLater0000000000",
        "--json",
    ]);
    assert_eq!(json_lines(&got.stdout)[0]["authid"], "bob");
    // The authentication time is the `modified` time, else `created`.
    assert_eq!(
        json_lines(&got.stdout)[0]["authenticated"],
        "2026-11-22T02:49:50.212000000Z"
    );

    let second = dir.path().join("2.dat");
    std::fs::write(&second, format!("{}\n", line("deleted", json!("bob")))).unwrap();
    let (code, summary, _) = import_json(dir.path(), &second, CROSSBAR_NOW);
    assert_eq!(code, 0);
    assert_eq!(summary["removed_from_store"], 1);
    cli()
        .args([
            "--now",
            CROSSBAR_NOW,
            "get",
            s(dir.path()),
            "LoggedOutLater0000000000",
        ])
        .assert()
        .code(1);
    for c in &mine {
        cli()
            .args(["--now", CROSSBAR_NOW, "get", s(dir.path()), &c.value])
            .assert()
            .success();
    }
}

// ---- get / delete / purge / copy / stats ------------------------------------------------------
