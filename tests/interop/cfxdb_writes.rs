//! Case 1: cfxdb writes, we read every field.

use std::collections::BTreeSet;
use std::time::Instant;

use cookiestore::CookieStore;
use cookiestore::parse_rfc3339_ns;
use serde_json::{Map, Value, json};

use crate::harness::*;

#[test]
fn case1_cfxdb_writes_we_read_every_field() {
    let Some(py) = python(Venv::Main) else { return };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let t0 = Instant::now();
    let written = py
        .ok(
            "cfxdb_write.py",
            &args![db, "--count", "400", "--seed", "5101", "--batch", "150"],
        )
        .records();
    assert_eq!(written.len(), 400);
    assert_eq!(data_format(&db), 1, "zlmdb 25.12 writes LMDB data format 1");
    assert_varied(&written);
    let written = keyed(written);
    let (cfxdb_view, counts) = py.cfxdb_read(&db);
    assert_eq!(counts["cookies"], 400);
    assert_eq!(
        (
            counts["slot_cookies"].as_u64(),
            counts["slot_index"].as_u64()
        ),
        (Some(1), Some(2))
    );

    // Read-only: data.mdb is not written; every record, expired or not.
    let data_before = std::fs::read(db.join("data.mdb")).unwrap();
    let (options, _) = crate::common::options_at(WRITE_BASE_NS);
    let store = CookieStore::open(&db, options.readonly(true)).unwrap();
    let all = ours(&store);
    assert_same(&all, &written, "our reading vs what cfxdb wrote");
    assert_same(&all, &cfxdb_view, "our reading vs cfxdb's reading");

    // Lookups by value, with expiry at the pinned clock.
    let (mut live, mut expired, mut authenticated) = (0, 0, 0);
    for rec in written.values() {
        let value = rec["value"].as_str().unwrap();
        let is_live = WRITE_BASE_NS < expires_at(rec);
        assert_eq!(store.exists(value).unwrap(), is_live, "exists({value})");
        match store.get(value).unwrap() {
            Some(c) => {
                assert!(is_live, "{value} is expired but get found it");
                assert_eq!(crate::common::json(&c), *rec, "get({value})");
                live += 1;
            }
            None => {
                assert!(!is_live, "live cookie {value} not found");
                expired += 1;
            }
        }
        let want_auth = if is_live { auth_of(rec) } else { None };
        authenticated += usize::from(want_auth.is_some());
        assert_eq!(
            store.get_auth(value).unwrap(),
            want_auth,
            "get_auth({value})"
        );
        let lookup = store.lookup(value).unwrap();
        assert_eq!(lookup.is_some(), is_live);
        if let Some(l) = lookup {
            assert_eq!(l.oid.to_string(), rec["oid"].as_str().unwrap());
            assert_eq!(l.expires_at, expires_at(rec));
        }
    }
    assert!(
        live > 100 && expired > 10 && authenticated > 100,
        "{live} {expired} {authenticated}"
    );
    drop(store);
    assert_eq!(
        std::fs::read(db.join("data.mdb")).unwrap(),
        data_before,
        "a read-only open must not write data.mdb"
    );

    // `cookiestore dump` (and `export`) read every field too.
    let dumped = cli_ok(&args![
        "--now",
        "2026-11-22T00:00:00Z",
        "dump",
        &db,
        "--include-expired"
    ]);
    let dumped = keyed(json_lines(&dumped.stdout).into_iter().map(dump_to_record));
    assert_same(
        &dumped,
        &written,
        "`cookiestore dump --include-expired` vs what cfxdb wrote",
    );
    let live_dump = cli_ok(&args!["--now", "2026-11-22T00:00:00Z", "dump", &db]);
    assert_eq!(
        json_lines(&live_dump.stdout).len(),
        live,
        "`cookiestore dump`: live cookies"
    );
    let exported = cli_ok(&args!["export", &db]);
    assert_same(
        &keyed(json_lines(&exported.stdout)),
        &written,
        "`cookiestore export` vs what cfxdb wrote",
    );
    eprintln!("case 1: {:.1?}", t0.elapsed());
}

/// The generator covers every field: each set somewhere and absent somewhere, with
/// non-ASCII text, values of 6 and 64 characters, nested CBOR, 0 values.
fn assert_varied(records: &[Value]) {
    const FIELDS: [&str; 17] = [
        "oid",
        "created",
        "max_age",
        "name",
        "value",
        "authenticated",
        "authenticated_on_node",
        "authenticated_on_worker",
        "authenticated_transport_info",
        "authenticated_session",
        "authenticated_joined_at",
        "authenticated_authmethod",
        "authid",
        "authrole",
        "authmethod",
        "authrealm",
        "authextra",
    ];
    for f in FIELDS {
        let n = records.iter().filter(|r| r.get(f).is_some()).count();
        assert!(n > 0, "no record has {f}");
        if !matches!(f, "oid" | "value") {
            assert!(
                n < records.len(),
                "every record has {f}: no absent/0/empty case"
            );
        }
    }
    let lens: BTreeSet<usize> = records
        .iter()
        .map(|r| r["value"].as_str().unwrap().len())
        .collect();
    assert!(
        lens.contains(&6) && lens.contains(&64),
        "value lengths {lens:?}"
    );
    let text = |r: &Value| r.to_string();
    assert!(
        records
            .iter()
            .any(|r| text(r).contains('🍪') || text(r).contains('😀'))
    );
    assert!(records.iter().any(|r| text(r).contains("\\u0000")));
    let nested = |v: Option<&Value>| {
        v.and_then(Value::as_object)
            .is_some_and(|m| m.values().any(|x| x.is_object() || x.is_array()))
    };
    assert!(records.iter().any(|r| nested(r.get("authextra"))));
    assert!(
        records
            .iter()
            .any(|r| nested(r.get("authenticated_transport_info")))
    );
    assert!(
        records
            .iter()
            .any(|r| r.get("max_age").and_then(Value::as_u64) == Some(u64::MAX))
    );
}

/// A `cookiestore dump` line (RFC 3339 timestamps, nulls) as record JSON (ns, absent).
fn dump_to_record(v: Value) -> Value {
    let Value::Object(m) = v else {
        panic!("dump line is not an object: {v}")
    };
    let mut out = Map::new();
    for (k, v) in m {
        let v = match (k.as_str(), v) {
            (_, Value::Null) => continue,
            ("created" | "authenticated" | "authenticated_joined_at", Value::String(s)) => {
                json!(parse_rfc3339_ns(&s).unwrap_or_else(|e| panic!("{k}: {s}: {e}")))
            }
            (_, Value::Number(n)) if n.as_u64() == Some(0) => continue,
            (_, Value::String(s)) if s.is_empty() => continue,
            (_, v) => v,
        };
        out.insert(k, v);
    }
    Value::Object(out)
}
