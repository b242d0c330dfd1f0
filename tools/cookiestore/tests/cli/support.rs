//! What the CLI tests share: running the tool, sample stores, the pinned instants.

use std::path::Path;
use std::process::Command as StdCommand;

use assert_cmd::Command;

use cookiestore::format_rfc3339_ns;
use cookiestore::{Cookie, CookieStore, StoreOptions};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::common::*;

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_cookiestore");

/// Pinned instant for the Crossbar fixture: its cookies were created 2026-11-22T02:49:50Z
/// with max_age 604800, so they are all live here.
pub(crate) const CROSSBAR_NOW: &str = "2026-11-22T12:00:00Z";

/// Pinned instant for the cfxdb fixture: every one of its 60 cookies is live here.
pub(crate) fn cfxdb_now() -> String {
    format_rfc3339_ns(FIXTURE_DAY_NS)
}

pub(crate) fn cli() -> Command {
    Command::cargo_bin("cookiestore").expect("the cookiestore binary")
}

pub(crate) struct Out {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

pub(crate) fn run(args: &[&str]) -> Out {
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

pub(crate) fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

pub(crate) fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Asserts the one-line error contract: exactly one line, `cookiestore: ` first, no panic.
pub(crate) fn assert_one_line(stderr: &str, contains: &str) {
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

pub(crate) fn options(now: u64) -> StoreOptions {
    options_at(now).0.sync(false)
}

/// A cookie with every field exercised (every third one unauthenticated).
pub(crate) fn sample_cookie(i: usize, now: u64) -> Cookie {
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
pub(crate) fn make_store(path: &Path, n: usize, now: u64) -> Vec<Cookie> {
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

pub(crate) fn now_ns() -> u64 {
    cookiestore::Clock::now_ns(&cookiestore::SystemClock)
}

// ---- dump ---------------------------------------------------------------------------------

/// An expected cfxdb record (ns integers, unset fields left out) in dump's form.
pub(crate) fn dump_form(rec: &Value) -> Value {
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

pub(crate) fn by_oid(mut v: Vec<Value>) -> Vec<Value> {
    v.sort_by(|a, b| a["oid"].as_str().cmp(&b["oid"].as_str()));
    v
}

/// Edits the raw LMDB database with plain heed while no store handle is open. With
/// `as_cookiestore`, the edit is marked as cookiestore's own write (so the expiry index is
/// expected to be exact); otherwise it is a foreign write, like cfxdb's.
pub(crate) fn raw_edit(
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

pub(crate) fn key(slot: u16, rest: &[u8]) -> Vec<u8> {
    let mut k = slot.to_be_bytes().to_vec();
    k.extend_from_slice(rest);
    k
}

pub(crate) fn expiry_key(slot: u16, at: u64, oid: Uuid) -> Vec<u8> {
    let mut k = slot.to_be_bytes().to_vec();
    k.extend_from_slice(&at.to_be_bytes());
    k.extend_from_slice(oid.as_bytes());
    k
}

/// The authid-index key of `oid` carrying `authid` (the index's slot read from slot 0).
pub(crate) fn authid_key(
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
