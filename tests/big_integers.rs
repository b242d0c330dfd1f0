//! Integers in authextra: exact through set_auth/get_auth and export/restore up to 64 bits;
//! larger ones (which JSON readers turn into floats) are refused by restore and import,
//! naming the field, instead of coming back as floats.

// A failed unwrap here (helpers included) is the test, bench or example failing.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use cookiestore::maintenance::{self, ExportOptions, ImportOptions};
use cookiestore::{Auth, AuthContext, CookieStore};
use serde_json::{Value, json};

const BIG: &str = "123456789012345678901234567890";

fn auth_with(extra: Value) -> Auth {
    let mut auth = Auth::new("joe", "frontend", "cookie", "realm1");
    auth.authextra = extra;
    auth
}

#[test]
fn integers_up_to_64_bits_round_trip_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _clock) = open_at(&dir.path().join("a"), FIXTURE_DAY_NS);
    let extra = json!({
        "u64_max": u64::MAX,
        "i64_min": i64::MIN,
        "past_f64": 9007199254740993u64,
        "big_as_string": BIG,
        "nested": {"list": [u64::MAX, -1, 0.5]},
    });
    let cookie = store.create("cbtid", 24, 3600).unwrap();
    store
        .set_auth(
            &cookie.value,
            &auth_with(extra.clone()),
            &AuthContext::default(),
        )
        .unwrap();
    let got = store.get_auth(&cookie.value).unwrap().unwrap();
    assert_eq!(got.authextra, extra);

    // export -> restore keeps them exact too.
    let mut out = Vec::new();
    maintenance::export(&store, &mut out, ExportOptions::default(), &mut |_| {}).unwrap();
    let text = String::from_utf8(out.clone()).unwrap();
    assert!(text.contains("18446744073709551615"), "{text}");
    assert!(text.contains("9007199254740993"), "{text}");
    let (restored, _clock) = open_at(&dir.path().join("b"), FIXTURE_DAY_NS);
    let summary = maintenance::restore(&restored, &mut &out[..], false, &mut |_| {}).unwrap();
    assert_eq!(summary.restored, 1, "{summary:?}");
    assert_eq!(
        restored.get_auth(&cookie.value).unwrap().unwrap().authextra,
        extra
    );
}

#[test]
fn restore_refuses_a_big_integer_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _clock) = open_at(&dir.path().join("a"), FIXTURE_DAY_NS);
    let cookie = store.create("cbtid", 24, 3600).unwrap();
    let mut out = Vec::new();
    maintenance::export(&store, &mut out, ExportOptions::default(), &mut |_| {}).unwrap();
    let mut record: Value = serde_json::from_slice(&out).unwrap();
    record["authid"] = json!("joe");
    let line = serde_json::to_string(&record).unwrap();
    // The big integer goes in as text: a serde_json Value cannot hold it.
    let line = line.replacen('{', &format!("{{\"authextra\":{{\"ids\":[1,{BIG}]}},"), 1);
    let mut other = record.clone();
    other["oid"] = json!(uuid::Uuid::new_v4());
    other["value"] = json!("another-value-0123456789");
    let input = format!("{line}\n{}\n", serde_json::to_string(&other).unwrap());
    let (restored, _clock) = open_at(&dir.path().join("b"), FIXTURE_DAY_NS);
    let summary =
        maintenance::restore(&restored, &mut input.as_bytes(), false, &mut |_| {}).unwrap();
    assert_eq!(summary.restored, 1, "the other line goes in: {summary:?}");
    assert_eq!(summary.bad_lines.len(), 1, "{summary:?}");
    let (number, problem) = &summary.bad_lines[0];
    assert_eq!(*number, 1);
    assert!(problem.contains("field authextra.ids[1]"), "{problem}");
    assert!(problem.contains(BIG), "{problem}");
    assert!(problem.contains("does not fit in 64 bits"), "{problem}");
    assert!(restored.get(&cookie.value).unwrap().is_none());
}

#[test]
fn import_refuses_a_big_integer_in_authextra_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cookies.dat");
    let line = |value: &str, extra: &str| {
        format!(
            "{{\"cbtid\": \"{value}\", \"status\": \"created\", \"created\": \
             \"2026-11-22T02:49:50.212Z\", \"max_age\": 604800, \"authid\": \"joe\", \
             \"authextra\": {extra}}}\n"
        )
    };
    let text = line("big0123456789012345678901", &format!("{{\"n\": {BIG}}}"))
        + &line(
            "small012345678901234567890",
            "{\"n\": 18446744073709551615}",
        );
    std::fs::write(&file, text).unwrap();
    let store = CookieStore::open(
        dir.path().join("s"),
        options_at(FIXTURE_DAY_NS + 3_600_000_000_000).0,
    )
    .unwrap();
    let summary = maintenance::import_file(
        &store,
        &file,
        store.now_ns(),
        &ImportOptions::default(),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(summary.imported, 1, "{summary:?}");
    assert_eq!(summary.bad_lines.len(), 1, "{summary:?}");
    let (number, problem) = &summary.bad_lines[0];
    assert_eq!(*number, 1);
    assert!(problem.contains("\"authextra\""), "{problem}");
    assert!(
        problem.contains(&format!("{BIG} at authextra.n")),
        "{problem}"
    );
    let small = store
        .get_auth("small012345678901234567890")
        .unwrap()
        .unwrap();
    assert_eq!(small.authextra, json!({"n": u64::MAX}));
}
