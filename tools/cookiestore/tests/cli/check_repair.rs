//! `check` and `repair`: each kind of injected damage found and fixed, quarantine, metadata.

use std::collections::BTreeMap;
use std::path::Path;

use crate::common::*;
use crate::support::*;
use cookiestore::Cookie;
use cookiestore::format_rfc3339_ns;
use predicates::prelude::*;
use serde_json::Value;
use uuid::Uuid;

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
