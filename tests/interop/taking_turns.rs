//! Case 3: cfxdb and we take turns writing one database.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use cookiestore::maintenance::check;
use cookiestore::{Auth, AuthContext, AuthUpdate, CookieStore, ManualClock, StoreOptions};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::harness::*;

/// Runs cfxdb_ops.py batch: a scan, the ops (each its own write transaction), a scan.
/// Returns (first scan, op outputs, last scan).
fn python_turn(py: &Py, db: &Path, ops: &[Value]) -> (Value, Vec<Value>, Value) {
    let scan = json!({"op": "scan"});
    let input: String = std::iter::once(&scan)
        .chain(ops)
        .chain(std::iter::once(&scan))
        .map(|o| format!("{o}\n"))
        .collect();
    let out = py.run_with_input("cfxdb_ops.py", &args![db, "batch"], &input);
    assert!(
        out.status.success(),
        "cfxdb_ops.py batch failed: {}",
        out.stderr
    );
    let mut printed = out.records();
    assert_eq!(printed.len(), ops.len() + 2, "one line per op");
    let last = printed.pop().unwrap();
    let first = printed.remove(0);
    (first, printed, last)
}

#[test]
fn case3_taking_turns_on_one_database() {
    let Some(py) = python(Venv::Main) else { return };
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let start = now_ns();
    let hour = 3600 * NS;

    // Turn 1, we: create eight live cookies and four that expired an hour ago.
    let store = CookieStore::open(&db, StoreOptions::default()).unwrap();
    let live: Vec<String> = (0..8)
        .map(|_| store.create("cbtid", 24, 86_400).unwrap().value)
        .collect();
    let past = store.with_clock(Arc::new(ManualClock::new(start - 2 * hour)));
    let our_expired: Vec<String> = (0..4)
        .map(|_| past.create("cbtid", 24, 60).unwrap().value)
        .collect();
    drop((past, store));
    let turn1 = verify_ours(&db, false, "turn 1 (we create)");
    assert_eq!(turn1.len(), 12);

    // Turn 2, Python: authenticate four of ours (one expired), create three live and three
    // expired cookies, authenticate one of its own.
    let py_live = ["pyLiveAAAA01", "pyLiveAAAA02", "pyLiveAAAA03"];
    let py_expired = ["pyExpiredB01", "pyExpiredB02", "pyExpiredB03"];
    let extra =
        json!({"roles": ["a", "b"], "n": -7, "f": 0.1, "deep": {"x": [true, null, {"y": "ü🍪"}]}});
    let mut ops: Vec<Value> = Vec::new();
    for (i, v) in live[..3].iter().chain(&our_expired[..1]).enumerate() {
        ops.push(
            json!({"op": "auth", "value": v, "authid": format!("py-user-{i}-ユーザー"),
            "authrole": "frontend", "authmethod": "ticket", "authrealm": "realm1",
            "authextra": extra, "authenticated": start + i as u64}),
        );
    }
    for v in py_live {
        ops.push(json!({"op": "create", "value": v, "max_age": 86_400, "created": start}));
    }
    for v in py_expired {
        ops.push(json!({"op": "create", "value": v, "max_age": 60, "created": start - 24 * hour}));
    }
    ops.push(
        json!({"op": "auth", "value": py_live[0], "authid": "py-own", "authrole": "backend",
        "authmethod": "cookie", "authrealm": "realm2"}),
    );
    let (before, _, after) = python_turn(&py, &db, &ops);
    assert_scan_agrees(&before, &turn1, "after turn 1 (we create)");
    let turn2 = verify_ours(&db, true, "turn 2 (Python authenticates and creates)");
    assert_scan_agrees(&after, &turn2, "turn 2 (Python authenticates and creates)");
    assert_eq!(turn2.len(), 18);
    {
        // Python's writes are pending for our expiry index: check defers, does not complain.
        let store = open_ro(&db);
        let report = check(store.as_lmdb().unwrap()).unwrap();
        assert!(
            report.foreign_writes && !report.deferred.is_empty(),
            "{report:?}"
        );
        let want = Auth::new("py-user-0-ユーザー", "frontend", "ticket", "realm1")
            .with_authextra(extra.clone());
        assert_eq!(store.get_auth(&live[0]).unwrap(), Some(want));
        assert_eq!(store.get_auth(&our_expired[0]).unwrap(), None, "expired");
        assert_eq!(
            store.get_auth(py_live[0]).unwrap().unwrap().authid,
            "py-own"
        );
        assert!(store.exists(py_live[1]).unwrap());
        assert!(!store.exists(py_expired[0]).unwrap(), "expired on arrival");
    }

    // Turn 3, we: re-authenticate two of Python's authentications and one Python cookie.
    let store = CookieStore::open(&db, StoreOptions::default()).unwrap();
    assert!(
        !store.stats().unwrap().lmdb.unwrap().foreign_writes,
        "reconciled at the writable open"
    );
    let reauth = [live[0].clone(), live[1].clone(), py_live[0].to_string()];
    for (i, v) in reauth.iter().enumerate() {
        let auth = Auth::new(&format!("rust-{i}"), "admin", "wampcra", "realm1")
            .with_authextra(json!({"by": "rust", "i": i}));
        let ctx = AuthContext::default()
            .node(Some(Uuid::new_v4()))
            .worker(Some("worker-1".into()))
            .transport_info(json!({"peer": "tcp4:10.0.0.1:1"}))
            .session(42 + i as u64)
            .joined_at(start)
            .authmethod(Some("wampcra".into()));
        assert_eq!(
            store.set_auth(v, &auth, &ctx).unwrap(),
            AuthUpdate::Written,
            "{v}"
        );
    }
    drop(store);
    let turn3 = verify_ours(&db, false, "turn 3 (we re-authenticate)");
    let by_value: BTreeMap<String, &Value> = turn3.values().map(|r| (value_of(r), r)).collect();
    assert_eq!(by_value[&live[0]]["authid"], "rust-0");
    assert_eq!(by_value[py_live[0]]["authid"], "rust-2");
    assert_eq!(by_value[&live[2]]["authid"], "py-user-2-ユーザー");

    // Turn 4, Python: log out one we re-authenticated, one of its own, one untouched and one
    // expired cookie of ours; authenticate another of its own.
    let logged_out = [
        live[0].clone(),
        py_live[1].to_string(),
        live[5].clone(),
        our_expired[0].clone(),
    ];
    let mut ops: Vec<Value> = logged_out
        .iter()
        .map(|v| json!({"op": "delete", "value": v}))
        .collect();
    ops.push(json!({"op": "auth", "value": py_live[2], "authid": "late", "authextra": {}}));
    let (before, _, after) = python_turn(&py, &db, &ops);
    assert_scan_agrees(&before, &turn3, "after turn 3 (we re-authenticate)");
    let turn4 = verify_ours(&db, true, "turn 4 (Python logs out)");
    assert_scan_agrees(&after, &turn4, "turn 4 (Python logs out)");
    assert_eq!(turn4.len(), 14);
    assert!(values(&turn4).is_disjoint(&logged_out.iter().cloned().collect()));

    // Turn 5, we: purge. Python's expired cookies go too (Python never indexed their expiry:
    // the writable open reconciled it).
    let store = CookieStore::open(&db, StoreOptions::default()).unwrap();
    let purged = store.purge_expired().unwrap();
    assert_eq!(
        purged,
        3 + 3,
        "our three remaining expired cookies and Python's three"
    );
    for v in py_expired
        .iter()
        .copied()
        .chain(our_expired[1..].iter().map(String::as_str))
    {
        assert!(!store.exists(v).unwrap());
    }
    assert_eq!(store.purge_expired().unwrap(), 0);
    drop(store);
    let turn5 = verify_ours(&db, false, "turn 5 (we purge)");
    let want: BTreeSet<String> = live
        .iter()
        .filter(|v| !logged_out.contains(v))
        .cloned()
        .chain(
            py_live
                .iter()
                .filter(|v| **v != py_live[1])
                .map(|v| v.to_string()),
        )
        .collect();
    assert_eq!(values(&turn5), want);

    // cfxdb and Crossbar agree on the end state, for every value ever used.
    let mut ask: Vec<String> = live.iter().chain(&our_expired).cloned().collect();
    ask.extend(py_live.iter().chain(&py_expired).map(|v| v.to_string()));
    let read = Running::new(py.spawn("cfxdb_read.py", &args![db, "-v"]), "cfxdb_read.py");
    let answers = py.crossbar_getauth(&db, &ask);
    let read = read.finish(SCRIPT_TIMEOUT);
    assert!(read.status.success(), "cfxdb_read.py: {}", read.stderr);
    assert_same(
        &keyed(read.records()),
        &turn5,
        "turn 5: cfxdb's reading vs ours",
    );
    let by_value: BTreeMap<String, &Value> = turn5.values().map(|r| (value_of(r), r)).collect();
    for v in &ask {
        let (exists, auth) = &answers[v];
        match by_value.get(v) {
            Some(rec) => {
                assert!(*exists, "{v}");
                assert_eq!(*auth, auth_tuple(rec), "{v}");
            }
            None => assert_eq!((*exists, auth.clone()), (false, unknown_tuple()), "{v}"),
        }
    }
    eprintln!("case 3: {:.1?}", t0.elapsed());
}
