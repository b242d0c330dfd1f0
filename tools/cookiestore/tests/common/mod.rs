//! Helpers of the CLI tests (a subset of the library's tests/common, whose fixtures they read).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cookiestore::{CookieStore, ManualClock, StoreOptions};
use serde_json::Value;

/// 2026-11-22T00:00:00Z, the day the fixtures were made, in ns.
pub const FIXTURE_DAY_NS: u64 = 1_763_769_600_000_000_000;

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

/// A writable copy of the cfxdb fixture database in a fresh temporary directory.
pub fn cfxdb_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixture("cfxdb-db/data.mdb"), dir.path().join("data.mdb")).unwrap();
    dir
}

pub fn expected_cfxdb() -> Vec<Value> {
    std::fs::read_to_string(fixture("cfxdb-db.expected.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Options with a pinned clock.
pub fn options_at(now_ns: u64) -> (StoreOptions, ManualClock) {
    let clock = ManualClock::new(now_ns);
    let options = StoreOptions::default().clock(Arc::new(clock.clone()));
    (options, clock)
}

pub fn open_at(path: &Path, now_ns: u64) -> (CookieStore, ManualClock) {
    let (options, clock) = options_at(now_ns);
    (CookieStore::open(path, options).unwrap(), clock)
}

/// Whether this process runs as root (which ignores permission bits).
pub fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

/// Opens the environment at `dir` with plain heed, while no store handle is open in this
/// process, and runs `f` in one write transaction on the unnamed database.
pub fn with_raw_env(
    dir: &Path,
    f: impl FnOnce(&mut heed::RwTxn, heed::Database<heed::types::Bytes, heed::types::Bytes>),
) {
    use heed::types::Bytes;
    // SAFETY: no other handle of this environment is open in this process.
    let env = unsafe {
        heed::EnvOpenOptions::new()
            .map_size(1 << 26)
            .open(dir)
            .unwrap()
    };
    let wtxn = env.write_txn().unwrap();
    let db = env
        .create_databases_and_commit(wtxn, |o, w| {
            o.create_database::<Bytes, Bytes>(w, None)
                .map(heed::CommitOrAbort::<_, ()>::Commit)
        })
        .unwrap()
        .unwrap_commit();
    let mut wtxn = env.write_txn().unwrap();
    f(&mut wtxn, db);
    wtxn.commit().unwrap();
}

/// The slots of a store's tables, read from its slot-0 metadata with raw heed (the tests
/// damage stores byte by byte, below the library's API).
#[derive(Debug, Clone, Copy)]
pub struct Slots {
    pub cookies: u16,
    pub by_value: u16,
    pub by_expiry: Option<u16>,
    pub state: Option<u16>,
}

/// Table oids, as zlmdb records them: cfxdb's Cookies and value index, our expiry index and
/// state.
pub const COOKIES_OID: &str = "62f8c8c9-c50b-4686-bafe-38b221c64a0c";
pub const VALUE_INDEX_OID: &str = "65e1d8c1-fa8b-459d-ae43-cb320d28cc97";
pub const EXPIRY_INDEX_OID: &str = "8e8b2d60-622c-4fdd-bf24-f78692a3824c";
pub const STORE_STATE_OID: &str = "883063e6-6f4f-4c3e-82f7-63f054071b2e";

pub fn read_slots(
    txn: &heed::RoTxn,
    db: heed::Database<heed::types::Bytes, heed::types::Bytes>,
) -> Slots {
    let mut by_oid = std::collections::HashMap::new();
    for item in db.prefix_iter(txn, &[0, 0]).unwrap() {
        let (key, value) = item.unwrap();
        let meta = cookiestore::TableMeta::from_cbor(value).unwrap();
        assert_eq!(key.len(), 4);
        by_oid.insert(meta.oid.clone(), meta.slot);
    }
    Slots {
        cookies: by_oid[COOKIES_OID],
        by_value: by_oid[VALUE_INDEX_OID],
        by_expiry: by_oid.get(EXPIRY_INDEX_OID).copied(),
        state: by_oid.get(STORE_STATE_OID).copied(),
    }
}

/// Whether a test can run: `true` when `cond` holds; otherwise it prints `skipping: why` and
/// returns `false` (the test returns), except under CI (non-empty `CI`), where it panics: under
/// CI nothing skips.
pub fn need(cond: bool, why: &str) -> bool {
    if cond {
        return true;
    }
    match std::env::var_os("CI") {
        Some(ci) if !ci.is_empty() => {
            panic!("{why}; CI={ci:?} is set, so this test must run, not be skipped")
        }
        _ => {
            eprintln!("skipping: {why}");
            false
        }
    }
}
