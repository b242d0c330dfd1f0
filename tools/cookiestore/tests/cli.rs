//! The `cookiestore` command-line tool, run as a real process on real stores.

// A failed unwrap here (helpers included) is the test, bench or example failing.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command as StdCommand, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use common::*;
use cookiestore::{Auth, AuthContext, Cookie, CookieStore, StoreOptions};
use cookiestore::{format_rfc3339_ns, parse_rfc3339_ns};
use predicates::prelude::*;
use serde_json::{Value, json};
use uuid::Uuid;

const BIN: &str = env!("CARGO_BIN_EXE_cookiestore");

/// Pinned instant for the Crossbar fixture: its cookies were created 2026-11-22T02:49:50Z
/// with max_age 604800, so they are all live here.
const CROSSBAR_NOW: &str = "2026-11-22T12:00:00Z";

/// Pinned instant for the cfxdb fixture: every one of its 60 cookies is live here.
fn cfxdb_now() -> String {
    format_rfc3339_ns(FIXTURE_DAY_NS)
}

fn cli() -> Command {
    Command::cargo_bin("cookiestore").expect("the cookiestore binary")
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(args: &[&str]) -> Out {
    let out = StdCommand::new(BIN)
        .args(args)
        .output()
        .expect("run cookiestore");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).expect("utf-8 stdout"),
        stderr: String::from_utf8(out.stderr).expect("utf-8 stderr"),
    }
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Asserts the one-line error contract: exactly one line, `cookiestore: ` first, no panic.
fn assert_one_line(stderr: &str, contains: &str) {
    assert_eq!(stderr.lines().count(), 1, "not one line: {stderr:?}");
    assert!(stderr.starts_with("cookiestore: "), "{stderr:?}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr:?}"
    );
    assert!(
        stderr.to_lowercase().contains(&contains.to_lowercase()),
        "{stderr:?} lacks {contains:?}"
    );
}

fn options(now: u64) -> StoreOptions {
    options_at(now).0.sync(false)
}

/// A cookie with every field exercised (every third one unauthenticated).
fn sample_cookie(i: usize, now: u64) -> Cookie {
    let auth = !i.is_multiple_of(3);
    let created = now - (i as u64 % 5_000) * 1_000_000_000 - 123_456;
    Cookie {
        oid: Uuid::new_v4(),
        created,
        max_age: [60, 3_600, 86_400, 604_800][i % 4],
        name: Some("cbtid".into()),
        value: format!("{i:06}{}", &Uuid::new_v4().simple().to_string()[..18]),
        authenticated: if auth { created + 5_000_000_000 } else { 0 },
        authenticated_on_node: auth.then(Uuid::new_v4),
        authenticated_on_worker: auth.then(|| format!("worker{}", i % 4)),
        authenticated_transport_info: if auth {
            json!({"peer": format!("tcp4:10.0.0.{}:{}", i % 255, 40_000 + i % 1_000),
                   "type": "websocket",
                   "http_headers_received": {"user-agent": "Mozilla/5.0 ünïcode"}})
        } else {
            json!({})
        },
        authenticated_session: if auth { 1_000_000 + i as u64 } else { 0 },
        authenticated_joined_at: if auth { created + 6_000_000_000 } else { 0 },
        authenticated_authmethod: auth.then(|| "ticket".into()),
        authid: auth.then(|| format!("user{}", i % 97)),
        authrole: auth.then(|| ["frontend", "admin"][i % 2].into()),
        authmethod: auth.then(|| "cookie".into()),
        authrealm: auth.then(|| ["realm1", "com.example.app"][i % 2].into()),
        authextra: if auth {
            json!({"i": i, "tags": ["x", "ユーザー"], "nested": {"deep": [1, 2, {"k": "v"}]}})
        } else {
            json!({})
        },
    }
}

/// A store of `n` sample cookies, written in one transaction; every handle is closed again.
fn make_store(path: &Path, n: usize, now: u64) -> Vec<Cookie> {
    let store = CookieStore::open(path, options(now)).unwrap();
    let cookies: Vec<Cookie> = (0..n).map(|i| sample_cookie(i, now)).collect();
    store
        .as_lmdb()
        .unwrap()
        .batch("test data", |b| {
            for c in &cookies {
                b.put(c)?;
            }
            Ok(())
        })
        .unwrap();
    cookies
}

fn now_ns() -> u64 {
    cookiestore::Clock::now_ns(&cookiestore::SystemClock)
}

// ---- dump ---------------------------------------------------------------------------------

/// An expected cfxdb record (ns integers, unset fields left out) in dump's form.
fn dump_form(rec: &Value) -> Value {
    let ts = |k: &str| match rec.get(k).and_then(Value::as_u64) {
        Some(ns) if ns != 0 => json!(format_rfc3339_ns(ns)),
        _ => Value::Null,
    };
    let get = |k: &str| rec.get(k).cloned().unwrap_or(Value::Null);
    let map = |k: &str| rec.get(k).cloned().unwrap_or_else(|| json!({}));
    json!({
        "oid": get("oid"),
        "created": ts("created"),
        "max_age": rec.get("max_age").cloned().unwrap_or(json!(0)),
        "name": get("name"),
        "value": get("value"),
        "authenticated": ts("authenticated"),
        "authenticated_on_node": get("authenticated_on_node"),
        "authenticated_on_worker": get("authenticated_on_worker"),
        "authenticated_transport_info": map("authenticated_transport_info"),
        "authenticated_session": get("authenticated_session"),
        "authenticated_joined_at": ts("authenticated_joined_at"),
        "authenticated_authmethod": get("authenticated_authmethod"),
        "authid": get("authid"),
        "authrole": get("authrole"),
        "authmethod": get("authmethod"),
        "authrealm": get("authrealm"),
        "authextra": map("authextra"),
    })
}

fn by_oid(mut v: Vec<Value>) -> Vec<Value> {
    v.sort_by(|a, b| a["oid"].as_str().cmp(&b["oid"].as_str()));
    v
}

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

#[test]
fn get_and_delete() {
    let dir = cfxdb_copy();
    let path = s(dir.path());
    let now = cfxdb_now();
    let want = expected_cfxdb()
        .into_iter()
        .find(|c| c.get("authid").is_some())
        .unwrap();
    let value = want["value"].as_str().unwrap();
    let got = run(&["--now", &now, "get", path, value, "--json"]);
    assert_eq!(got.code, 0, "{}", got.stderr);
    assert_eq!(json_lines(&got.stdout), [dump_form(&want)]);
    let human = run(&["--now", &now, "get", path, value]);
    assert!(human.stdout.lines().next().unwrap().starts_with("oid "));
    assert!(human.stdout.contains("expires"), "{}", human.stdout);

    cli()
        .args(["delete", path, value])
        .assert()
        .success()
        .stdout(predicate::str::contains("deleted"));
    let gone = run(&["--now", &now, "get", path, value]);
    assert_eq!(gone.code, 1);
    assert_one_line(&gone.stderr, "no live cookie");
    let again = run(&["delete", path, value]);
    assert_eq!(again.code, 1);
    assert_one_line(&again.stderr, "no cookie");
    cli().args(["check", path]).assert().success();
}

#[test]
fn purge_dry_run_then_purge() {
    let dir = cfxdb_copy();
    let path = s(dir.path());
    let at = "2026-11-22T00:00:00Z";
    let dry = run(&["--now", at, "purge", path, "--dry-run", "--json"]);
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    let dry: Value = serde_json::from_str(&dry.stdout).unwrap();
    let expired = dry["would_purge"].as_u64().unwrap();
    assert!(expired > 0);
    assert_eq!(dry["purged"], 0);
    assert!(dry["seconds"].as_f64().is_some());
    assert_eq!(
        run(&["--now", at, "dump", path, "--include-expired"])
            .stdout
            .lines()
            .count(),
        60
    );

    // --force: the pinned instant may be later than this machine's clock.
    cli()
        .args(["--now", at, "purge", path, "--force"])
        .assert()
        .success()
        .stdout(predicate::str::contains(format!(
            "purged {expired} expired cookies in"
        )));
    assert_eq!(
        run(&["--now", at, "dump", path, "--include-expired"])
            .stdout
            .lines()
            .count() as u64,
        60 - expired
    );
    cli().args(["--now", at, "check", path]).assert().success();

    // A --now in the future would delete valid cookies: refused without --force.
    let refused = run(&["--now", "2200-01-01T00:00:00Z", "purge", path]);
    assert_eq!(refused.code, 2);
    assert_one_line(&refused.stderr, "--force");
}

#[test]
fn purge_frees_a_store_filled_to_maxsize() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let t0 = now_ns() - 86_400_000_000_000;
    let store = CookieStore::open(
        &path,
        options(t0)
            .maxsize(8 * 1024 * 1024)
            .initial_mapsize(8 * 1024 * 1024),
    )
    .unwrap();
    // Fill to maxsize with cookies that expire after a second.
    let (mut n, mut step) = (0u64, 256);
    loop {
        match store.as_lmdb().unwrap().batch("fill", |b| {
            (0..step).try_for_each(|_| b.create("cbtid", 24, 1).map(drop))
        }) {
            Ok(()) => n += step as u64,
            Err(cookiestore::Error::MapFull { .. }) if step > 1 => step /= 2,
            Err(cookiestore::Error::MapFull { .. }) => break,
            Err(e) => panic!("fill: {e}"),
        }
    }
    assert!(n > 5_000, "filled with {n} cookies");
    drop(store);
    let out = run(&["--maxsize", "8MiB", "purge", "--force", "--json", s(&path)]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let report: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(report["purged"], n, "{report}");
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[cfg(unix)]
#[test]
fn copy_and_export_create_private_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    make_store(&store, 5, now_ns());
    let copy = dir.path().join("copy");
    let out = run(&["copy", s(&store), s(&copy)]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(mode(&copy), 0o700);
    assert_eq!(mode(&copy.join("data.mdb")), 0o600);
    let file = dir.path().join("cookies.jsonl");
    let out = run(&["export", s(&store), "-o", s(&file)]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(mode(&file), 0o600);
}

#[cfg(unix)]
#[test]
fn export_and_repair_never_write_through_a_planted_symlink() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    make_store(&store, 5, now_ns());
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "precious\n").unwrap();

    // export -o X with X.tmp planted: the victim is untouched, X is written.
    let file = dir.path().join("cookies.jsonl");
    symlink(&victim, dir.path().join("cookies.jsonl.tmp")).unwrap();
    let out = run(&["export", s(&store), "-o", s(&file)]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    assert_eq!(std::fs::read_to_string(&file).unwrap().lines().count(), 5);

    // repair with quarantine.jsonl planted: refused, the victim untouched.
    let stray = Uuid::new_v4();
    raw_edit(&store, true, |t, db, s| {
        db.put(t, &key(s.cookies, stray.as_bytes()), b"\x01garbage\xff")
            .unwrap();
    });
    symlink(&victim, store.join("quarantine.jsonl")).unwrap();
    let out = run(&["repair", s(&store)]);
    assert_ne!(out.code, 0, "{}", out.stdout);
    assert_one_line(&out.stderr, "quarantine");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
}

#[test]
fn copy_compact_is_a_consistent_store() {
    let dir = tempfile::tempdir().unwrap();
    let now = now_ns();
    make_store(dir.path(), 500, now);
    let dest = tempfile::tempdir().unwrap();
    let copy = dest.path().join("copy");
    cli()
        .args(["copy", s(dir.path()), s(&copy), "--compact"])
        .assert()
        .success()
        .stdout(predicate::str::contains("compacted"));
    let n = format_rfc3339_ns(now);
    let dump = |p: &Path| run(&["--now", &n, "dump", s(p), "--include-expired"]).stdout;
    assert_eq!(dump(&copy), dump(dir.path()));
    cli().args(["check", s(&copy)]).assert().success();
    let again = run(&["copy", s(dir.path()), s(&copy)]);
    assert_eq!(again.code, 2);
    assert_one_line(&again.stderr, "a copy goes into a new directory");
}

#[test]
fn stats_text_and_json() {
    let dir = cfxdb_copy();
    let path = s(dir.path());
    let now = cfxdb_now();
    let out = run(&["--now", &now, "stats", path, "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    let expected = expected_cfxdb();
    assert_eq!(v["live"], 60);
    assert_eq!(v["expired"], 0);
    assert_eq!(
        v["authenticated"],
        expected
            .iter()
            .filter(|c| c.get("authid").is_some())
            .count()
    );
    let oldest = expected
        .iter()
        .map(|c| c["created"].as_u64().unwrap())
        .min()
        .unwrap();
    assert_eq!(v["oldest_created"], oldest);
    assert_eq!(v["now"], FIXTURE_DAY_NS);
    assert_eq!(v["path"], path);
    assert_eq!(v["tables"].as_array().unwrap().len(), 2);
    assert_eq!(v["tables"][0]["name"], "cfxdb.cookiestore._cookie.Cookies");
    assert_eq!(v["tables"][1]["slot"], 2);
    assert!(v["map_used"].as_u64().unwrap() > 0);
    assert!(v["page_size"].as_u64().unwrap() >= 4096);
    assert!(v["readers_max"].as_u64().unwrap() > 0);
    assert_eq!(v["foreign_writes"], true);

    let text = run(&["--now", &now, "stats", path]);
    for key in [
        "cookies",
        "next expiry",
        "map",
        "pages",
        "reader slots",
        "tables",
    ] {
        assert!(text.stdout.contains(key), "{key}: {}", text.stdout);
    }
    assert!(
        text.stdout.contains("60 live, 0 expired"),
        "{}",
        text.stdout
    );
}

// ---- check / repair -----------------------------------------------------------------------

/// Edits the raw LMDB database with plain heed while no store handle is open. With
/// `as_cookiestore`, the edit is marked as cookiestore's own write (so the expiry index is
/// expected to be exact); otherwise it is a foreign write, like cfxdb's.
fn raw_edit(
    path: &Path,
    as_cookiestore: bool,
    f: impl FnOnce(&mut heed::RwTxn, heed::Database<heed::types::Bytes, heed::types::Bytes>, Slots),
) {
    // The store's layout is made (expiry index, state) by a writable open.
    drop(CookieStore::open(path, StoreOptions::default().sync(false)).unwrap());
    with_raw_env(path, |wtxn, db| {
        let slots = read_slots(wtxn, db);
        f(wtxn, db, slots);
        if as_cookiestore {
            let mut key = slots.state.unwrap().to_be_bytes().to_vec();
            key.extend_from_slice(b"last_txn");
            let id = wtxn.id() as u64;
            db.put(wtxn, &key, &id.to_be_bytes()).unwrap();
        }
    });
}

fn key(slot: u16, rest: &[u8]) -> Vec<u8> {
    let mut k = slot.to_be_bytes().to_vec();
    k.extend_from_slice(rest);
    k
}

fn expiry_key(slot: u16, at: u64, oid: Uuid) -> Vec<u8> {
    let mut k = slot.to_be_bytes().to_vec();
    k.extend_from_slice(&at.to_be_bytes());
    k.extend_from_slice(oid.as_bytes());
    k
}

/// The authid-index key of `oid` carrying `authid` (the index's slot read from slot 0).
fn authid_key(
    txn: &heed::RoTxn,
    db: heed::Database<heed::types::Bytes, heed::types::Bytes>,
    authid: &str,
    oid: Uuid,
) -> Vec<u8> {
    let slot = db
        .prefix_iter(txn, &[0, 0])
        .unwrap()
        .map(|item| cookiestore::TableMeta::from_cbor(item.unwrap().1).unwrap())
        .find(|meta| meta.oid == "4c0f7b1e-2d7a-4a8e-9b53-6f1d2c9e7a31")
        .expect("an authid index")
        .slot;
    let mut k = slot.to_be_bytes().to_vec();
    k.extend_from_slice(&(authid.len() as u16).to_be_bytes());
    k.extend_from_slice(authid.as_bytes());
    k.extend_from_slice(oid.as_bytes());
    k
}

fn check_json(path: &Path) -> (i32, Value) {
    let out = run(&["check", s(path), "--json"]);
    let v = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {} / {}", out.stdout, out.stderr));
    (out.code, v)
}

fn kinds(report: &Value, field: &str) -> Vec<String> {
    report[field]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["kind"].as_str().unwrap().to_string())
        .collect()
}

type Injection =
    fn(&mut heed::RwTxn, heed::Database<heed::types::Bytes, heed::types::Bytes>, Slots, &[Cookie]);

/// Each kind of damage: what is injected, and the problem kinds `check` must report.
fn injections() -> Vec<(&'static str, Injection, &'static [&'static str])> {
    vec![
        (
            "orphan value-index entry",
            |t, db, s, _| {
                db.put(
                    t,
                    &key(s.by_value, b"ghost-value"),
                    Uuid::new_v4().as_bytes(),
                )
                .unwrap();
            },
            &["value-index-orphan"],
        ),
        (
            "missing value-index entry",
            |t, db, s, c| {
                assert!(
                    db.delete(t, &key(s.by_value, c[1].value.as_bytes()))
                        .unwrap()
                );
            },
            &["value-index-missing"],
        ),
        (
            "value-index entry with the wrong oid",
            |t, db, s, c| {
                db.put(
                    t,
                    &key(s.by_value, c[2].value.as_bytes()),
                    c[3].oid.as_bytes(),
                )
                .unwrap();
            },
            &["value-index-wrong-cookie", "value-index-missing"],
        ),
        (
            "garbage records",
            |t, db, s, c| {
                db.put(
                    t,
                    &key(s.cookies, Uuid::new_v4().as_bytes()),
                    b"\x01garbage\xff",
                )
                .unwrap();
                db.put(
                    t,
                    &key(s.cookies, c[4].oid.as_bytes()),
                    b"\x08\x00\x00\x00junk",
                )
                .unwrap();
            },
            &["undecodable-record", "undecodable-record"],
        ),
        (
            "record key that is not an oid",
            |t, db, s, c| {
                let bytes = c[5].encode().unwrap();
                db.put(t, &key(s.cookies, b"short"), &bytes).unwrap();
            },
            &["malformed-record-key"],
        ),
        (
            "record storing another oid",
            |t, db, s, c| {
                let mut other = c[6].clone();
                other.oid = Uuid::new_v4();
                db.put(
                    t,
                    &key(s.cookies, c[6].oid.as_bytes()),
                    &other.encode().unwrap(),
                )
                .unwrap();
            },
            &["record-oid-mismatch"],
        ),
        (
            "two records with one value",
            |t, db, s, c| {
                let mut twin = c[7].clone();
                twin.oid = Uuid::new_v4();
                twin.created += 1;
                let e = s.by_expiry.unwrap();
                db.put(
                    t,
                    &key(s.cookies, twin.oid.as_bytes()),
                    &twin.encode().unwrap(),
                )
                .unwrap();
                db.put(t, &expiry_key(e, twin.expires_at(), twin.oid), b"")
                    .unwrap();
                if let Some(authid) = &twin.authid {
                    let k = authid_key(t, db, authid, twin.oid);
                    db.put(t, &k, b"").unwrap();
                }
            },
            &["duplicate-value"],
        ),
        (
            "expiry index: missing, orphan and wrong-time entries",
            |t, db, s, c| {
                let e = s.by_expiry.unwrap();
                assert!(
                    db.delete(t, &expiry_key(e, c[8].expires_at(), c[8].oid))
                        .unwrap()
                );
                db.put(t, &expiry_key(e, 42, Uuid::new_v4()), b"").unwrap();
                assert!(
                    db.delete(t, &expiry_key(e, c[9].expires_at(), c[9].oid))
                        .unwrap()
                );
                db.put(t, &expiry_key(e, c[9].expires_at() + 1, c[9].oid), b"")
                    .unwrap();
            },
            &[
                "expiry-index-missing",
                "expiry-index-orphan",
                "expiry-index-wrong-time",
            ],
        ),
    ]
}

#[test]
fn check_finds_each_kind_of_injected_damage_and_repair_fixes_it() {
    let now = now_ns();
    for (what, inject, want) in injections() {
        let dir = tempfile::tempdir().unwrap();
        let cookies = make_store(dir.path(), 20, now);
        cli().args(["check", s(dir.path())]).assert().success();
        raw_edit(dir.path(), true, |t, db, s| inject(t, db, s, &cookies));

        let (code, report) = check_json(dir.path());
        assert_eq!(code, 1, "{what}: {report}");
        let mut got = kinds(&report, "problems");
        got.sort();
        let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(got, want, "{what}: {report}");
        let text = run(&["check", s(dir.path())]);
        assert_eq!(text.code, 1);
        assert!(
            text.stdout.contains(&format!(
                "{} problem{} found:",
                want.len(),
                if want.len() == 1 { "" } else { "s" }
            )),
            "{what}: {}",
            text.stdout
        );

        let repaired = run(&["repair", s(dir.path())]);
        assert_eq!(
            repaired.code, 0,
            "{what}: {}{}",
            repaired.stdout, repaired.stderr
        );
        let (code, report) = check_json(dir.path());
        assert_eq!(code, 0, "{what}: after repair: {report}");
        // Every cookie that was not itself damaged is still found by its value.
        for (i, c) in cookies.iter().enumerate() {
            if what == "garbage records" && i == 4 {
                continue;
            }
            let got = run(&[
                "--now",
                &format_rfc3339_ns(now),
                "get",
                s(dir.path()),
                &c.value,
                "--json",
            ]);
            assert_eq!(got.code, 0, "{what}: cookie {i} lost: {}", got.stderr);
            if what != "two records with one value" || i != 7 {
                assert_eq!(
                    json_lines(&got.stdout)[0]["oid"],
                    c.oid.to_string(),
                    "{what}: {i}"
                );
            }
        }
    }
}

#[test]
fn repair_quarantines_undecodable_records_never_silently() {
    let now = now_ns();
    let dir = tempfile::tempdir().unwrap();
    let cookies = make_store(dir.path(), 10, now);
    let stray = Uuid::new_v4();
    raw_edit(dir.path(), true, |t, db, s| {
        db.put(t, &key(s.cookies, stray.as_bytes()), b"\x01garbage\xff")
            .unwrap();
        db.put(t, &key(s.cookies, cookies[0].oid.as_bytes()), b"junk")
            .unwrap();
    });
    // Reading the damaged cookie is an error of its own, on one line.
    let get = run(&[
        "--now",
        &format_rfc3339_ns(now),
        "get",
        s(dir.path()),
        &cookies[0].value,
    ]);
    assert_eq!(get.code, 2);
    assert_one_line(&get.stderr, "corrupt cookie record");
    let dump = run(&["--now", &format_rfc3339_ns(now), "dump", s(dir.path())]);
    assert_eq!(dump.code, 2);
    assert_eq!(
        dump.stdout.lines().count(),
        9,
        "the good records are still dumped"
    );
    assert_eq!(dump.stderr.lines().count(), 2, "{}", dump.stderr);

    let out = run(&["repair", s(dir.path()), "--json"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["repair"]["quarantined"].as_array().unwrap().len(), 2);
    let quarantine = std::fs::read_to_string(dir.path().join("quarantine.jsonl")).unwrap();
    let lines = json_lines(&quarantine);
    assert_eq!(lines.len(), 2);
    let by: BTreeMap<String, String> = lines
        .iter()
        .map(|l| {
            (
                l["oid"].as_str().unwrap().to_string(),
                l["hex"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(by[&stray.to_string()], "0167617262616765ff");
    assert_eq!(by[&cookies[0].oid.to_string()], "6a756e6b");
    assert!(lines.iter().all(|l| l["reason"].is_string()));
    cli().args(["check", s(dir.path())]).assert().success();
    // A second repair finds nothing more to quarantine and leaves the file as it was.
    cli().args(["repair", s(dir.path())]).assert().success();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("quarantine.jsonl")).unwrap(),
        quarantine
    );
}

#[test]
fn expiry_index_differences_after_a_foreign_write_are_notes_not_problems() {
    let now = now_ns();
    let dir = tempfile::tempdir().unwrap();
    let cookies = make_store(dir.path(), 5, now);
    // As cfxdb would: a new record without an expiry entry, and a deleted record whose
    // expiry entry stays.
    raw_edit(dir.path(), false, |t, db, s| {
        let mut extra = sample_cookie(99, now);
        extra.oid = Uuid::new_v4();
        db.put(
            t,
            &key(s.cookies, extra.oid.as_bytes()),
            &extra.encode().unwrap(),
        )
        .unwrap();
        db.put(
            t,
            &key(s.by_value, extra.value.as_bytes()),
            extra.oid.as_bytes(),
        )
        .unwrap();
        db.delete(t, &key(s.cookies, cookies[0].oid.as_bytes()))
            .unwrap();
        db.delete(t, &key(s.by_value, cookies[0].value.as_bytes()))
            .unwrap();
    });
    let (code, report) = check_json(dir.path());
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["foreign_writes"], true);
    let mut deferred = kinds(&report, "deferred");
    deferred.sort();
    assert_eq!(deferred, ["expiry-index-missing", "expiry-index-orphan"]);
    let text = run(&["check", s(dir.path())]);
    assert!(
        text.stdout.contains("note:") && text.stdout.contains("no problems found"),
        "{}",
        text.stdout
    );
    // `repair` rebuilds the index at once.
    cli().args(["repair", s(dir.path())]).assert().success();
    let (code, report) = check_json(dir.path());
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["foreign_writes"], false);
    assert_eq!(report["expiry_index_entries"], 5);
    assert!(kinds(&report, "deferred").is_empty(), "{report}");

    // The cfxdb fixture has no expiry index at all: a note, exit 0.
    let fixture = cfxdb_copy();
    cli()
        .args(["check", s(fixture.path())])
        .assert()
        .success()
        .stdout(predicate::str::contains("note: no expiry index yet"));
}

#[test]
fn check_reports_metadata_problems_that_repair_leaves_alone() {
    use cookiestore::TableMeta;
    let now = now_ns();
    let dir = tempfile::tempdir().unwrap();
    make_store(dir.path(), 5, now);
    raw_edit(dir.path(), true, |t, db, s| {
        // Data in a slot no table describes, and the Cookies table under another name.
        db.put(t, &key(99, b"stray"), b"?").unwrap();
        let current = db.get(t, &[0, 0, 0, s.cookies as u8]).unwrap().unwrap();
        let mut meta = TableMeta::from_cbor(current).unwrap();
        meta.name = "something.else".into();
        db.put(t, &[0, 0, 0, s.cookies as u8], &meta.to_cbor())
            .unwrap();
    });
    let (code, report) = check_json(dir.path());
    assert_eq!(code, 1, "{report}");
    assert_eq!(
        kinds(&report, "problems"),
        ["metadata", "metadata"],
        "{report}"
    );
    let text = run(&["check", s(dir.path())]).stdout;
    assert!(
        text.contains("slot 99") && text.contains("something.else"),
        "{text}"
    );
    let repaired = run(&["repair", s(dir.path())]);
    assert_eq!(repaired.code, 1, "{}", repaired.stdout);
    assert_one_line(&repaired.stderr, "2 problems remain after repair");

    // Slot 0 that cannot be read: check cannot run (2), and says why on one line.
    raw_edit(dir.path(), true, |t, db, _| {
        db.put(t, &[0, 0, 0, 1], b"not cbor \xff").unwrap();
    });
    let out = run(&["check", s(dir.path())]);
    assert_eq!(out.code, 2, "{}", out.stdout);
    assert_one_line(&out.stderr, "metadata");
}

// ---- while another process writes -----------------------------------------------------------

const CHILD_ENV: &str = "COOKIESTORE_CLI_TEST_WRITER";
const LIVE: usize = 300;

/// Padding in authextra, so that 300 dumped cookies fill more than a pipe buffer.
fn pad() -> String {
    "p".repeat(300)
}

/// Not a test of its own: the writer process of
/// `dump_stats_check_export_are_consistent_snapshots_while_another_process_writes`, which
/// runs this test binary again with `CHILD_ENV` set to a store path. Without it, it returns.
#[test]
fn concurrent_writer_child() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let path = PathBuf::from(path);
    let store = CookieStore::open(&path, StoreOptions::default().sync(false)).unwrap();
    let mut values: std::collections::VecDeque<String> = store
        .as_lmdb()
        .unwrap()
        .snapshot(|s| s.live()?.map(|c| c.map(|c| c.value)).collect())
        .unwrap();
    assert_eq!(values.len(), LIVE);
    let stop = path.join("stop");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut generation = 0u64;
    let mut out = std::io::stdout().lock();
    while !stop.exists() && Instant::now() < deadline {
        generation += 1;
        let k = 1 + (generation as usize % 17);
        // Every transaction deletes k cookies and creates k: each snapshot has exactly LIVE.
        let created = store
            .as_lmdb()
            .unwrap()
            .batch("churn", |b| {
                for v in values.iter().take(k) {
                    assert!(b.delete(v)?);
                }
                let mut created = Vec::with_capacity(k);
                for _ in 0..k {
                    let c = b.create("cbtid", 24, 3_600)?;
                    let auth = Auth::new("writer", "user", "cookie", "realm1")
                        .with_authextra(json!({"gen": generation, "pad": pad()}));
                    b.set_auth(&c.value, &auth, &AuthContext::default())?;
                    created.push(c.value);
                }
                Ok(created)
            })
            .unwrap();
        values.drain(..k);
        values.extend(created);
        writeln!(out, "@@commit {generation}").unwrap();
        out.flush().unwrap();
    }
}

struct Writer {
    child: Child,
    commits: Arc<AtomicU64>,
    stop: PathBuf,
}

impl Writer {
    fn start(path: &Path) -> Writer {
        let mut child = StdCommand::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "concurrent_writer_child",
                "--nocapture",
                "--test-threads=1",
                "--quiet",
            ])
            .env(CHILD_ENV, path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let commits = Arc::new(AtomicU64::new(0));
        let seen = commits.clone();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(n) = line.strip_prefix("@@commit ") {
                    seen.store(n.trim().parse().unwrap(), Ordering::SeqCst);
                }
            }
        });
        Writer {
            child,
            commits,
            stop: path.join("stop"),
        }
    }

    fn commits(&self) -> u64 {
        self.commits.load(Ordering::SeqCst)
    }

    fn wait_commits(&self, n: u64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.commits() < n {
            assert!(
                Instant::now() < deadline,
                "the writer made only {} commits",
                self.commits()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn finish(mut self) {
        std::fs::write(&self.stop, b"").unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "writer: {status}");
    }
}

fn padded_store(path: &Path) {
    let store = CookieStore::open(path, StoreOptions::default().sync(false)).unwrap();
    store
        .as_lmdb()
        .unwrap()
        .batch("initial", |b| {
            for _ in 0..LIVE {
                let c = b.create("cbtid", 24, 3_600)?;
                let auth = Auth::new("writer", "user", "cookie", "realm1")
                    .with_authextra(json!({"gen": 0, "pad": pad()}));
                b.set_auth(&c.value, &auth, &AuthContext::default())?;
            }
            Ok(())
        })
        .unwrap();
}

fn assert_snapshot_dump(stdout: &str) {
    let cookies = json_lines(stdout);
    assert_eq!(cookies.len(), LIVE, "a dump is one snapshot");
    let values: HashSet<&str> = cookies
        .iter()
        .map(|c| c["value"].as_str().unwrap())
        .collect();
    assert_eq!(values.len(), LIVE);
}

#[test]
fn dump_stats_check_export_are_consistent_snapshots_while_another_process_writes() {
    let dir = tempfile::tempdir().unwrap();
    padded_store(dir.path());
    let path = s(dir.path());
    let writer = Writer::start(dir.path());
    writer.wait_commits(5);

    for _ in 0..4 {
        let dump = run(&["dump", path]);
        assert_eq!(dump.code, 0, "{}", dump.stderr);
        assert_snapshot_dump(&dump.stdout);

        let stats = run(&["stats", path, "--json"]);
        assert_eq!(stats.code, 0, "{}", stats.stderr);
        let v: Value = serde_json::from_str(&stats.stdout).unwrap();
        assert_eq!(v["records"], LIVE, "{v}");
        assert_eq!(v["live"], LIVE, "{v}");
        assert_eq!(v["authenticated"], LIVE, "{v}");
        assert_eq!(v["value_index_entries"], LIVE, "{v}");
        assert_eq!(v["expiry_index_entries"], LIVE, "{v}");
        assert_eq!(v["foreign_writes"], false, "{v}");

        cli().args(["check", path]).assert().success();
        let export = run(&["export", path]);
        assert_eq!(export.stdout.lines().count(), LIVE);
    }

    // A dump blocked on a full pipe holds its snapshot open; the writer keeps committing.
    let mut dump = StdCommand::new(BIN)
        .args(["dump", path])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Its reader slot shows as reading once it has its snapshot (the pipe then fills).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let stats = run(&["stats", path, "--json"]);
        let v: Value = serde_json::from_str(&stats.stdout).unwrap();
        if v["reader_slots"]["reading"].as_u64().unwrap() >= 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the dump never held a snapshot: {v}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let before = writer.commits();
    let deadline = Instant::now() + Duration::from_secs(20);
    while writer.commits() < before + 5 {
        assert!(
            Instant::now() < deadline,
            "the writer made {} commits while a dump was blocked",
            writer.commits() - before
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        dump.try_wait().unwrap().is_none(),
        "the dump is still blocked, holding its snapshot, while the writer commits"
    );
    let mut text = String::new();
    dump.stdout
        .take()
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    assert!(dump.wait().unwrap().success());
    assert_snapshot_dump(&text);
    writer.finish();
    cli().args(["check", path]).assert().success();
}

#[test]
fn output_to_a_closed_pipe_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    padded_store(dir.path());
    for args in [
        vec!["dump"],
        vec!["export"],
        vec!["dump", "--format", "table"],
    ] {
        let mut cmd = StdCommand::new(BIN);
        cmd.args(&args).arg(dir.path());
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut first = [0u8; 100];
        stdout.read_exact(&mut first).unwrap();
        drop(stdout); // like `| head -c 100`
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), "", "{args:?}");
    }
}

// ---- read-only use ------------------------------------------------------------------------

fn tree_state(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            // lock.mdb is LMDB's reader table: readers register in it.
            let bytes = if name == "lock.mdb" {
                Vec::new()
            } else {
                std::fs::read(e.path()).unwrap()
            };
            (name, bytes)
        })
        .collect();
    files.sort();
    files
}

#[test]
fn reading_commands_work_in_a_read_only_directory_and_change_nothing() {
    use std::os::unix::fs::PermissionsExt;
    let base = tempfile::tempdir().unwrap();
    std::fs::set_permissions(base.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let store = base.path().join("store");
    std::fs::create_dir(&store).unwrap();
    std::fs::copy(fixture("cfxdb-db/data.mdb"), store.join("data.mdb")).unwrap();
    // The store as cfxdb left it; lock.mdb exists, as it does beside any store in use.
    drop(CookieStore::open(&store, StoreOptions::default().readonly(true)).unwrap());
    let out_dir = base.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    std::fs::set_permissions(&out_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::set_permissions(
        store.join("data.mdb"),
        std::fs::Permissions::from_mode(0o444),
    )
    .unwrap();
    std::fs::set_permissions(
        store.join("lock.mdb"),
        std::fs::Permissions::from_mode(0o666),
    )
    .unwrap();
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o555)).unwrap();
    let before = tree_state(&store);

    // As root, permissions do not apply: run the tool as `nobody` when setpriv is there.
    let setpriv = Path::new("/usr/bin/setpriv");
    let as_user = running_as_root() && setpriv.exists();
    let tool = |args: &[&str]| {
        let mut cmd = if as_user {
            let mut c = StdCommand::new(setpriv);
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN]);
            c
        } else {
            StdCommand::new(BIN)
        };
        // check on the system clock: the fixture's cookies were created after cfxdb_now,
        // which check reports (created-in-future).
        if args[0] != "check" {
            cmd.args(["--now", &cfxdb_now()]);
        }
        let out = cmd.args(args).output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let st = s(&store);
    let value = expected_cfxdb()[0]["value"].as_str().unwrap().to_string();
    let copy = out_dir.join("copy");
    for args in [
        vec!["dump", st],
        vec!["dump", st, "--format", "table"],
        vec!["stats", st],
        vec!["get", st, &value],
        vec!["check", st],
        vec!["export", st],
        vec!["purge", st, "--dry-run"],
        vec!["copy", st, s(&copy)],
    ] {
        let (code, stdout, stderr) = tool(&args);
        assert_eq!(code, 0, "{args:?}: {stderr}");
        assert!(!stdout.is_empty(), "{args:?}");
    }
    assert_eq!(
        tree_state(&store),
        before,
        "reading commands changed the store"
    );
    if as_user || !running_as_root() {
        // Writing needs write access, and says so on one line.
        let (code, _, stderr) = tool(&["delete", st, &value]);
        assert_eq!(code, 2);
        assert_one_line(&stderr, "permission");
        assert_eq!(tree_state(&store), before);
    }
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o755)).unwrap();
}

// ---- user errors --------------------------------------------------------------------------

#[test]
fn each_user_error_gives_its_exit_code_and_a_one_line_message() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let missing = d.join("missing");
    let file = d.join("file.txt");
    std::fs::write(&file, "hello").unwrap();
    let empty = d.join("empty");
    std::fs::create_dir(&empty).unwrap();
    let garbage = d.join("garbage");
    std::fs::create_dir(&garbage).unwrap();
    std::fs::write(garbage.join("data.mdb"), vec![7u8; 8192]).unwrap();
    let format3 = d.join("format3");
    drop(CookieStore::open(&format3, StoreOptions::default()).unwrap());
    {
        use std::io::{Seek, SeekFrom};
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(format3.join("data.mdb"))
            .unwrap();
        for off in [20, 4096 + 20] {
            f.seek(SeekFrom::Start(off)).unwrap();
            f.write_all(&3u32.to_le_bytes()).unwrap();
        }
    }
    let store = d.join("store");
    let cookies = make_store(&store, 3, now_ns());

    let no_dat = d.join("no.dat");
    let no_jsonl = d.join("no.jsonl");
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (vec!["dump", s(&missing)], 2, "does not exist"),
        (vec!["stats", s(&file)], 2, "not a cookie store"),
        (vec!["dump", s(&empty)], 2, "no data.mdb"),
        (vec!["check", s(&garbage)], 2, "not an LMDB file"),
        (vec!["dump", s(&format3)], 2, "format 3"),
        (vec!["delete", s(&missing), "x"], 2, "does not exist"),
        (
            vec!["import", s(&missing), s(&no_dat)],
            2,
            "cannot read the cookies file",
        ),
        (
            vec!["restore", s(&missing), s(&no_jsonl)],
            2,
            "cannot read the export",
        ),
        (
            vec!["--now", "friday", "dump", s(&store)],
            2,
            "invalid timestamp",
        ),
        (vec!["dump"], 2, "required"),
        (
            vec!["dump", s(&store), "--limit", "many"],
            2,
            "invalid value",
        ),
        (vec!["frobnicate"], 2, "unrecognized subcommand"),
        (vec!["get", s(&store), "no-such-value"], 1, "no live cookie"),
        (vec!["delete", s(&store), "no-such-value"], 1, "no cookie"),
        (vec!["restore", s(&store), s(&file)], 2, "refusing"),
    ];
    for (args, code, message) in cases {
        let out = run(&args);
        assert_eq!(out.code, code, "{args:?}: {}", out.stderr);
        assert_one_line(&out.stderr, message);
    }
    assert!(!missing.exists(), "no command created the missing store");
    cli()
        .args(["get", s(&store), &cookies[0].value])
        .assert()
        .success();
}

#[test]
fn every_subcommand_has_help_with_an_example() {
    for sub in [
        "dump", "stats", "get", "delete", "purge", "check", "repair", "import", "export",
        "restore", "copy",
    ] {
        cli()
            .args([sub, "--help"])
            .assert()
            .success()
            .stdout(predicate::str::contains("Example"));
    }
    cli()
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("Exit codes").and(predicate::str::contains("2  error")));
}

// ---- stores the tool leaves behind open again ------------------------------------------------

/// A purged store opens again: LMDB may leave data.mdb shorter than its last allocated page
/// (pages allocated and freed in one transaction are never written), so the open's length
/// check compares the B-tree roots, which LMDB always writes, not `last_pg`.
#[test]
fn a_purged_store_reopens() {
    let dir = cfxdb_copy();
    // 2026-11-22T00:00:00Z: 43 of the fixture's 60 cookies have expired.
    let (store, _) = open_at(dir.path(), 1_795_305_600_000_000_000);
    assert_eq!(store.purge_expired().unwrap(), 43);
    drop(store);
    let reopened = CookieStore::open(dir.path(), StoreOptions::default().readonly(true));
    assert!(reopened.is_ok(), "{}", reopened.unwrap_err());
}

/// A writable open after another program wrote (cfxdb, Crossbar.io) reconciles the expiry
/// index: cookies that program added get their entries, and entries of cookies it deleted go.
#[test]
fn a_writable_open_after_a_foreign_write_reconciles_the_expiry_index() {
    let now = now_ns();
    let dir = tempfile::tempdir().unwrap();
    make_store(dir.path(), 3, now);
    // As cfxdb writes a cookie: the record and its value-index entry, nothing else.
    raw_edit(dir.path(), false, |t, db, s| {
        let c = sample_cookie(7, now);
        db.put(t, &key(s.cookies, c.oid.as_bytes()), &c.encode().unwrap())
            .unwrap();
        db.put(t, &key(s.by_value, c.value.as_bytes()), c.oid.as_bytes())
            .unwrap();
    });
    let store = CookieStore::open(dir.path(), options(now)).unwrap();
    let stats = store.stats().unwrap();
    assert_eq!(
        (stats.records, stats.expiry_index_entries),
        (4, 4),
        "the cfxdb-written cookie has no expiry entry after a writable open"
    );
}
