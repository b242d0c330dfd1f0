//! Case 5: LMDB format 3 (LMDB 1.0) is refused and converts (`cookiestore import`, and the two
//! Python conversions); conversion through JSON keeps floats exact.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use cookiestore::{Cookie, CookieStore, Error, StoreOptions, Tracker, TrackerConfig};
use serde_json::{Value, json};

use crate::harness::*;

#[test]
fn case5_format3_is_refused_and_converts() {
    let Some((py, z26)) = pythons() else { return };
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let db3 = dir.path().join("format3");
    let out = z26.ok(
        "make_format3.py",
        &args![db3, "--count", "40", "--seed", "33"],
    );
    let written = keyed(out.records());
    assert_eq!(written.len(), 40);
    let info: Value = serde_json::from_str(out.stderr.trim()).unwrap();
    assert_eq!(info["meta_versions"], json!([3, 3]));
    assert_eq!(info["lmdb_lib_version"], json!([1, 0, 2]));
    assert_eq!(data_format(&db3), 3);

    // Refused before LMDB maps it, with the clear error, and nothing is written.
    let before = snapshot(&db3);
    for readonly in [false, true] {
        let result = CookieStore::open(&db3, StoreOptions::default().readonly(readonly));
        match result {
            Err(e @ Error::UnsupportedFormat { found: 3, .. }) => {
                let msg = e.to_string();
                assert!(
                    msg.contains("format 3") && msg.contains("LMDB 1.0"),
                    "{msg}"
                );
                assert!(
                    msg.contains("cookiestore import") && msg.contains("cookiestore-format3"),
                    "{msg}"
                );
            }
            other => panic!("format 3 (readonly {readonly}): {other:?}"),
        }
    }
    let tracker = Tracker::open(&db3, StoreOptions::default(), TrackerConfig::default());
    assert!(matches!(
        tracker,
        Err(Error::UnsupportedFormat { found: 3, .. })
    ));
    let dumped = cli_run(&args!["dump", &db3]);
    assert_eq!(dumped.status.code(), Some(2));
    assert!(dumped.stderr.contains("format 3"), "{}", dumped.stderr);
    assert_eq!(
        snapshot(&db3),
        before,
        "a refused open must not touch the files"
    );

    // Crossbar 25.12's zlmdb (LMDB 0.9.33) cannot open it either.
    let old = py.ok("lmdb_probe.py", &args![db3]).records().pop().unwrap();
    assert_eq!(old["opened"], false, "{old}");
    assert!(
        old["error"].as_str().unwrap().contains("MDB_INVALID"),
        "{old}"
    );

    // The two conversions of docs/interop.md, side by side: (1) export with zlmdb 26
    // (cfxdb_read.py prints record JSON) and restore with our CLI; (2) zlmdb 26 alone: copy
    // into a new database created with lib_version="0.9".
    let converted = dir.path().join("converted");
    let converting = Running::new(
        z26.spawn("convert_to_format1.py", &args![db3, converted]),
        "convert_to_format1.py",
    );
    let exported = z26.ok("cfxdb_read.py", &args![db3]);
    assert_same(&keyed(exported.records()), &written, "zlmdb 26 export");
    let export_file = dir.path().join("cookies.jsonl");
    std::fs::write(&export_file, &exported.stdout).unwrap();
    let restored = dir.path().join("restored");
    cli_ok(&args!["restore", &restored, &export_file]);
    let out = converting.finish(SCRIPT_TIMEOUT);
    assert!(
        out.status.success(),
        "convert_to_format1.py: {}",
        out.stderr
    );
    assert_same(
        &keyed(out.records()),
        &written,
        "convert_to_format1.py output",
    );
    for (db, how) in [(&restored, "restored"), (&converted, "converted")] {
        assert_eq!(data_format(db), 1, "{how}");
        assert_same(
            &ours(&open_ro(db)),
            &written,
            &format!("our reading, {how}"),
        );
        assert_check_clean(db, how == "converted", how);
    }
    // (3) The one command of docs/interop.md: `cookiestore import`.
    let imported = import_with_cli(&db3, dir.path(), &written);

    // Crossbar 25.12's cfxdb reads the converted stores.
    let readings = [
        py.start_cfxdb_read(&restored),
        py.start_cfxdb_read(&converted),
    ];
    if let Some((imported, live)) = imported {
        let (theirs, _) = py.cfxdb_read(&imported);
        assert_same(&theirs, &live, "cfxdb 25.12 reading the imported store");
    }
    for (reading, how) in readings.into_iter().zip(["restored", "converted"]) {
        let (theirs, _) = cfxdb_read_result(reading);
        assert_same(
            &theirs,
            &written,
            &format!("cfxdb 25.12 reading the {how} store"),
        );
    }
    eprintln!("case 5: {:.1?}", t0.elapsed());
}

/// `cookiestore import` of the format-3 store `db3` into `dir/imported`, which reads it with
/// its helper cookiestore-format3 (next to the CLI). Three days before the cookies were
/// written, only those with created 0 or max_age 0 are expired: they are dropped. Returns the
/// new store and the records it must hold (`None`: skipped, the helper is not built).
fn import_with_cli(
    db3: &Path,
    dir: &Path,
    written: &BTreeMap<String, Value>,
) -> Option<(std::path::PathBuf, BTreeMap<String, Value>)> {
    let helper = cli_path().with_file_name("cookiestore-format3");
    let why = format!(
        "{} is missing: build it (`cargo build -p cookiestore-format3`, or `cargo test` at the \
         root)",
        helper.display()
    );
    if !crate::common::need(helper.is_file(), &why) {
        return None;
    }
    let imported = dir.join("imported");
    let source_files = snapshot(db3);
    let at = WRITE_BASE_NS - 3 * DAY_NS;
    let at_text = cookiestore::format_rfc3339_ns(at);
    let out = cli_ok(&args!["--now", at_text, "import", imported, db3, "--json"]);
    let summary = json_lines(&out.stdout).pop().expect("import summary");
    let live: BTreeMap<String, Value> = written
        .iter()
        .filter(|(_, rec)| {
            let cookie: Cookie = serde_json::from_value((*rec).clone()).unwrap();
            !cookie.is_expired(at)
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert!(live.len() >= 30, "{}", live.len());
    assert_eq!(summary["imported"], live.len(), "{summary}");
    assert_eq!(summary["expired"], written.len() - live.len(), "{summary}");
    assert_eq!(data_format(&imported), 1);
    assert_same(&ours(&open_ro(&imported)), &live, "our reading, imported");
    assert_check_clean(&imported, false, "imported");
    assert!(
        snapshot(db3) == source_files,
        "the import must not touch the source's files"
    );
    Some((imported, live))
}

/// Every file of a directory: name → content.
fn snapshot(p: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(p)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

/// The hint of the format-3 refusal offers only what exists: there is no format-3 build.
#[test]
fn case5_format3_hint_names_only_real_remedies() {
    let dir = tempfile::tempdir().unwrap();
    // An LMDB 1.0 meta page: 24-byte page header, then magic and data format 3.
    let mut page = vec![0u8; 2 * 4096];
    for base in [0, 4096] {
        page[base + 24..base + 28].copy_from_slice(&0xBEEF_C0DEu32.to_le_bytes());
        page[base + 28..base + 32].copy_from_slice(&3u32.to_le_bytes());
    }
    std::fs::write(dir.path().join("data.mdb"), &page).unwrap();
    match CookieStore::open(dir.path(), StoreOptions::default()) {
        Err(Error::UnsupportedFormat { found: 3, hint, .. }) => {
            assert!(
                !hint.contains("lmdb-format3") && !hint.contains("feature"),
                "the hint offers a cargo feature that does not exist: {hint}"
            );
        }
        other => panic!("{other:?}"),
    }
}

/// Conversion through JSON keeps floats in authextra bit for bit: `cookiestore restore` of
/// what Python printed, read back by us and by cfxdb. (serde_json parses floats exactly only
/// with its `float_roundtrip` feature.)
#[test]
fn case5_restore_keeps_floats_exact() {
    let Some(py) = python(Venv::Main) else { return };
    let dir = tempfile::tempdir().unwrap();
    let floats = [
        988_282.846_827_986_9_f64,
        200_389.207_392_512_82,
        963_690.677_468_955_5,
        1e-300,
    ];
    let texts = [
        "988282.8468279869",
        "200389.20739251282",
        "963690.6774689555",
        "1e-300",
    ];
    let line = format!(
        r#"{{"oid": "6f1c2d3e-0000-4000-8000-000000000001", "created": {WRITE_BASE_NS}, "max_age": 86400, "value": "floatcookie1", "authid": "joe", "authextra": {{"f": [{}]}}}}"#,
        texts.join(", ")
    );
    let file = dir.path().join("floats.jsonl");
    std::fs::write(&file, format!("{line}\n")).unwrap();
    let db = dir.path().join("db");
    cli_ok(&args!["restore", &db, &file]);
    let bits = |v: &Value| -> Vec<u64> {
        v["authextra"]["f"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap().to_bits())
            .collect()
    };
    let want: Vec<u64> = floats.iter().map(|f| f.to_bits()).collect();
    let mine = ours(&open_ro(&db));
    assert_eq!(
        bits(mine.values().next().unwrap()),
        want,
        "our reading after restore"
    );
    let (theirs, _) = py.cfxdb_read(&db);
    assert_eq!(
        bits(theirs.values().next().unwrap()),
        want,
        "cfxdb's reading after restore"
    );
}
