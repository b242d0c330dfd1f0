//! Import marks on LMDB: the marks an older cookiestore wrote (the value itself in the key)
//! still keep logged-out cookies out of a re-import and are rewritten by a purge, and a
//! purge drops marks whose cookies would have expired. (Both backends: `tests/backends.rs`.)

// A failed unwrap here (helpers included) is the test, bench or example failing.
#![allow(clippy::unwrap_used)]

mod common;

use common::{open_at, table_slot, with_raw_env};
use cookiestore::maintenance::{
    ExportOptions, ImportOptions, ImportSummary, LegacySource, export, import_legacy, replay,
};
use cookiestore::{Cookie, CookieStore};
use serde_json::Value;

const STATE_OID: &str = "883063e6-6f4f-4c3e-82f7-63f054071b2e";
const HOUR: u64 = 3_600_000_000_000;
const DAY: u64 = 24 * HOUR;
/// 2026-11-22T12:00:00Z: the store's clock is pinned, so this passes on any date.
const NOW: u64 = 1_795_348_800_000_000_000;

/// A `cookies.dat` of `(value, max_age)` cookies created an hour before `now`.
fn cookies_dat(now: u64, cookies: &[(&str, u64)]) -> LegacySource {
    let created = cookiestore::format_rfc3339_ns(now - HOUR);
    let text: String = cookies
        .iter()
        .map(|(value, max_age)| {
            serde_json::json!({
                "cbtid": value, "status": "created", "created": created, "modified": null,
                "deleted": null, "max_age": max_age, "authid": "alice", "authrole": "user",
                "authmethod": "wampcra", "authrealm": "realm1", "authextra": null,
            })
            .to_string()
                + "\n"
        })
        .collect();
    LegacySource::from(replay(text.as_bytes()).unwrap())
}

fn import(store: &CookieStore, source: &LegacySource) -> ImportSummary {
    import_legacy(
        store,
        source,
        store.now_ns(),
        &ImportOptions::default(),
        &mut |_| {},
    )
    .unwrap()
}

/// The import-mark lines of an export of `store`.
fn exported_marks(store: &CookieStore) -> Vec<Value> {
    let mut out = Vec::new();
    let summary = export(store, &mut out, ExportOptions::default(), &mut |_| {}).unwrap();
    let marks: Vec<Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v.get("imported_sha256").is_some())
        .collect();
    assert_eq!(summary.import_marks, marks.len() as u64);
    marks
}

fn sha256_hex(value: &str) -> String {
    // The digest the marks are keyed by, computed here independently of the library.
    let out = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(value.as_bytes())?;
            child.wait_with_output()
        })
        .expect("sha256sum (coreutils) runs");
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

#[test]
fn an_older_stores_unhashed_marks_keep_logged_out_cookies_out_and_a_purge_rewrites_them() {
    let dir = tempfile::tempdir().unwrap();
    let (gone, kept, new) = (
        "Ho2ymDYyrEX1aWT4+tLv/Ppb",
        "qhlV0uXc3mBNNFMRLbVL8Ij5",
        "9gYH0qVv3Kx8ZNcPtRLm+2Wd",
    );
    let source = cookies_dat(NOW, &[(gone, 604_800), (kept, 604_800), (new, 604_800)]);
    // What an older cookiestore left: `gone` and `kept` imported (records, and a mark of
    // slot + "imported\0" + value holding the oid), then `gone` logged out.
    let (state, oids) = {
        let (store, _clock) = open_at(dir.path(), NOW);
        let mut oids = Vec::new();
        for value in [gone, kept] {
            let cookie = Cookie {
                oid: uuid::Uuid::new_v4(),
                created: NOW - HOUR,
                max_age: 604_800,
                name: Some("cbtid".into()),
                value: value.into(),
                authid: Some("alice".into()),
                authrole: Some("user".into()),
                authmethod: Some("wampcra".into()),
                authrealm: Some("realm1".into()),
                authenticated: NOW - HOUR,
                ..Cookie::default()
            };
            store.put(&cookie).unwrap();
            oids.push(cookie.oid);
        }
        assert!(store.delete(gone).unwrap());
        (table_slot(&store, STATE_OID), oids)
    };
    let unhashed =
        |value: &str| [&state.to_be_bytes()[..], b"imported\0", value.as_bytes()].concat();
    with_raw_env(dir.path(), |txn, db| {
        for (value, oid) in [gone, kept].iter().zip(&oids) {
            db.put(txn, &unhashed(value), oid.as_bytes()).unwrap();
        }
    });

    let (store, _clock) = open_at(dir.path(), NOW);
    let first = import(&store, &source);
    assert_eq!(
        (
            first.imported,
            first.unchanged,
            first.skipped_logged_out,
            first.marked
        ),
        (1, 1, 1, 1),
        "gone stays out, kept gets a hashed mark, new comes in: {first:?}"
    );
    assert!(!store.exists(gone).unwrap());
    assert!(store.delete(kept).unwrap());
    let again = import(&store, &source);
    assert_eq!(
        (again.imported, again.skipped_logged_out),
        (0, 2),
        "{again:?}"
    );

    // Exported: every mark, the unhashed one without an expiry (its cookie is gone, and
    // the older layout did not record when it expires).
    let marks = exported_marks(&store);
    let mut expected = vec![
        serde_json::json!({"imported_sha256": sha256_hex(gone)}),
        serde_json::json!({"imported_sha256": sha256_hex(kept), "expires": NOW - HOUR + 7 * DAY}),
        serde_json::json!({"imported_sha256": sha256_hex(new), "expires": NOW - HOUR + 7 * DAY}),
    ];
    expected.sort_by_key(|v| v["imported_sha256"].as_str().unwrap().to_string());
    assert_eq!(marks, expected);

    // A purge rewrites the unhashed mark; the cookie stays out.
    store.purge_expired().unwrap();
    assert_eq!(exported_marks(&store), expected);
    assert_eq!(import(&store, &source).skipped_logged_out, 2);
    drop(store);
    with_raw_env(dir.path(), |txn, db| {
        assert!(db.get(txn, &unhashed(gone)).unwrap().is_none());
        assert!(db.get(txn, &unhashed(kept)).unwrap().is_none());
    });
}

#[test]
fn a_purge_drops_the_marks_of_cookies_that_would_have_expired() {
    let dir = tempfile::tempdir().unwrap();
    let (store, clock) = open_at(dir.path(), NOW);
    let (week, month) = ("Ho2ymDYyrEX1aWT4+tLv/Ppb", "qhlV0uXc3mBNNFMRLbVL8Ij5");
    let source = cookies_dat(NOW, &[(week, 604_800), (month, 30 * 86_400)]);
    assert_eq!(import(&store, &source).imported, 2);
    assert!(store.delete(week).unwrap());
    assert!(store.delete(month).unwrap());
    assert_eq!(exported_marks(&store).len(), 2);

    // Eight days on: the week's cookie would have expired, its mark goes; the month's stays.
    clock.advance_secs(8 * 86_400);
    assert_eq!(store.purge_expired().unwrap(), 0, "no cookie left to purge");
    assert_eq!(
        exported_marks(&store),
        vec![serde_json::json!({
            "imported_sha256": sha256_hex(month),
            "expires": NOW - HOUR + 30 * DAY,
        })]
    );
    let again = import(&store, &source);
    assert_eq!(
        (again.imported, again.expired, again.skipped_logged_out),
        (0, 1, 1),
        "{again:?}"
    );
    // A purge with nothing due writes nothing.
    let before = store
        .as_lmdb()
        .unwrap()
        .snapshot(|s| Ok(s.txn_id()))
        .unwrap();
    store.purge_expired().unwrap();
    assert_eq!(
        store
            .as_lmdb()
            .unwrap()
            .snapshot(|s| Ok(s.txn_id()))
            .unwrap(),
        before
    );
}

#[test]
fn a_restored_mark_is_never_shortened_and_a_bad_one_is_a_bad_line() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _clock) = open_at(dir.path(), NOW);
    let value = "Ho2ymDYyrEX1aWT4+tLv/Ppb";
    let source = cookies_dat(NOW, &[(value, 604_800)]);
    assert_eq!(import(&store, &source).imported, 1);
    assert!(store.delete(value).unwrap());
    let hash = sha256_hex(value);
    let text = format!(
        "{}\n{}\n{}\n",
        serde_json::json!({"imported_sha256": hash, "expires": NOW}),
        serde_json::json!({"imported_sha256": "not hex", "expires": NOW}),
        serde_json::json!({"imported_sha256": hash, "expires": NOW, "extra": 1}),
    );
    let summary =
        cookiestore::maintenance::restore(&store, &mut text.as_bytes(), true, &mut |_| {}).unwrap();
    assert_eq!(summary.import_marks, 1, "{summary:?}");
    let lines: Vec<u64> = summary.bad_lines.iter().map(|(n, _)| *n).collect();
    assert_eq!(lines, vec![2, 3], "{summary:?}");
    assert!(
        summary.bad_lines[0].1.contains("64 hex digits"),
        "{summary:?}"
    );
    assert_eq!(
        exported_marks(&store),
        vec![serde_json::json!({"imported_sha256": hash, "expires": NOW - HOUR + 7 * DAY})],
        "the earlier expiry did not shorten the mark"
    );
}
