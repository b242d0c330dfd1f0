//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cookiestore::{Cookie, CookieStore, ManualClock, StoreOptions};
use serde_json::Value;

/// 2026-11-22T00:00:00Z, the day the fixtures were made, in ns.
pub const FIXTURE_DAY_NS: u64 = 1_763_769_600_000_000_000;

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
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
    let options = StoreOptions {
        clock: Arc::new(clock.clone()),
        ..StoreOptions::default()
    };
    (options, clock)
}

pub fn open_at(path: &Path, now_ns: u64) -> (CookieStore, ManualClock) {
    let (options, clock) = options_at(now_ns);
    (CookieStore::open(path, options).unwrap(), clock)
}

/// A cookie's JSON with cfxdb's reading rules applied: an empty CBOR map reads as absent.
pub fn normalized(v: &Value) -> Value {
    let mut v = v.clone();
    if let Value::Object(m) = &mut v {
        m.retain(|_, x| !matches!(x, Value::Object(o) if o.is_empty()));
    }
    v
}

pub fn json(c: &Cookie) -> Value {
    normalized(&serde_json::to_value(c).unwrap())
}
