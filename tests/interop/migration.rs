//! Case 6: migration from Crossbar's file store, end to end.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use cookiestore::maintenance::replay;
use cookiestore::parse_rfc3339_ns;
use serde_json::{Value, json};

use crate::harness::*;

#[test]
fn case6_migration_from_crossbar_file_store() {
    let Some(py) = python(Venv::Main) else { return };
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let dat = dir.path().join("cookies.dat");
    let out = py.ok(
        "crossbar_filestore.py",
        &args![dat, "--count", "20", "--delete", "5"],
    );
    let believed = out.records();
    assert_eq!(
        believed.len(),
        20,
        "the restarted file store believes in 20 cookies"
    );
    let summary: Value = serde_json::from_str(out.stderr.trim()).unwrap();
    let resurrected: BTreeSet<String> = summary["resurrected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        resurrected.len(),
        5,
        "Crossbar brings the 5 logged-out cookies back"
    );
    let mut expected_file = dat.clone().into_os_string();
    expected_file.push(".expected.jsonl");
    let expected: BTreeMap<String, Value> =
        json_lines(&std::fs::read_to_string(expected_file).unwrap())
            .into_iter()
            .map(|r| (r["cbtid"].as_str().unwrap().to_string(), r))
            .collect();
    assert_eq!(expected.len(), 15);
    assert!(expected.keys().all(|v| !resurrected.contains(v)));
    let authenticated = expected.values().filter(|r| !r["authid"].is_null()).count();
    assert!(authenticated >= 5, "{authenticated}");

    // Import with our CLI.
    let store_dir = dir.path().join("store");
    let imported = cli_ok(&args!["import", &store_dir, &dat, "--json"]);
    let summary = json_lines(&imported.stdout).pop().expect("import summary");
    assert_eq!(summary["imported"], 15, "{summary}");
    assert_eq!(summary["deleted"], 5, "{summary}");
    assert_eq!(summary["bad_lines"], json!([]), "{summary}");
    // The replay that the import is built on agrees.
    let replayed = replay(std::io::BufReader::new(std::fs::File::open(&dat).unwrap())).unwrap();
    assert_eq!(
        replayed
            .cookies
            .iter()
            .map(|c| c.value.clone())
            .collect::<BTreeSet<_>>(),
        expected.keys().cloned().collect()
    );

    // Our store: exactly the survivors, with Crossbar's created, max_age and auth.
    let store = open_ro(&store_dir);
    let mine = ours(&store);
    assert_eq!(mine.len(), 15);
    for (value, want) in &expected {
        let c = store
            .get(value)
            .unwrap()
            .unwrap_or_else(|| panic!("{value} not imported"));
        let created = parse_rfc3339_ns(want["created"].as_str().unwrap()).unwrap();
        assert_eq!(
            (c.created, c.max_age),
            (created, want["max_age"].as_u64().unwrap()),
            "{value}"
        );
        assert_eq!(c.name.as_deref(), Some("cbtid"));
        let want_auth = auth_tuple(&normalized_legacy(want));
        let got_auth = store.get_auth(value).unwrap();
        assert_eq!(
            got_auth.as_ref().map(|a| a.authid.as_str()),
            want["authid"].as_str()
        );
        if let Some(a) = got_auth {
            assert_eq!(
                json!([a.authid, a.authrole, a.authmethod, a.authrealm, a.authextra]),
                want_auth,
                "{value}"
            );
        }
    }
    drop(store);
    assert_check_clean(&store_dir, false, "imported store");

    // Crossbar's database store authenticates exactly the cookies that should survive.
    let ask: Vec<String> = believed
        .iter()
        .map(|r| r["cbtid"].as_str().unwrap().to_string())
        .collect();
    let reading = py.start_cfxdb_read(&store_dir);
    let answers = py.crossbar_getauth(&store_dir, &ask);
    for v in &ask {
        let (exists, auth) = &answers[v];
        match expected.get(v) {
            Some(want) => {
                assert!(*exists, "Crossbar: {v} should exist");
                assert_eq!(
                    *auth,
                    auth_tuple(&normalized_legacy(want)),
                    "Crossbar getAuth({v})"
                );
            }
            None => {
                assert!(resurrected.contains(v));
                assert_eq!(
                    (*exists, auth.clone()),
                    (false, unknown_tuple()),
                    "{v} logged out"
                );
            }
        }
    }
    let (theirs, _) = cfxdb_read_result(reading);
    assert_same(&theirs, &mine, "cfxdb's reading of the imported store");

    // Importing again changes nothing.
    let again = cli_ok(&args!["import", &store_dir, &dat, "--json"]);
    let summary = json_lines(&again.stdout).pop().expect("import summary");
    assert_eq!(
        (summary["imported"].as_u64(), summary["unchanged"].as_u64()),
        (Some(0), Some(15)),
        "{summary}"
    );
    assert_same(&ours(&open_ro(&store_dir)), &mine, "second import");
    eprintln!("case 6: {:.1?}", t0.elapsed());
}

/// A file-store line (nulls for unset) in record form (unset fields absent).
fn normalized_legacy(rec: &Value) -> Value {
    let mut m = rec.as_object().cloned().unwrap_or_default();
    m.retain(|_, v| !v.is_null());
    Value::Object(m)
}
