//! Bad input: whatever comes from a browser, a caller or the disk gives an answer or a
//! clear error, never a panic, a hang or damage to the rest of the store.
//!
//! - `Cookie` headers of random bytes, 0 to 100,000 long, with NUL, non-UTF-8, thousands of
//!   cookies; a live cookie among thousands of junk ones is still found.
//! - Cookie values that are too long, empty or not cookie-octets: absent on every read,
//!   refused on every write.
//! - authextra that is huge or deeply nested: refused with `InvalidValue`, nothing written.
//! - A record overwritten with garbage, and one whose authextra is CBOR nested 10,000 deep:
//!   only those cookies report `CorruptRecord`, every other cookie works, `check` names
//!   both, and they can still be logged out.
//! - A truncated data.mdb (at many lengths), a directory that is not a store, an LMDB 1.0
//!   (format 3) database, and paths without permission: each its own error.
//!
//! Permissions: root ignores permission bits. So the permission case runs in a child
//! process started with uid and gid 65534 (`nobody`) when the test runs as root, and in a
//! child of the same user otherwise; either way the store is in a directory that user cannot
//! enter.

// A failed unwrap here (helpers included) is the test, bench or example failing.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::*;
use cookiestore::maintenance::{Problem, check};
use cookiestore::{
    Auth, AuthContext, AuthUpdate, Cookie, CookieStore, Error, StoreOptions, Tracker, TrackerConfig,
};
use cookiestore::{CookieValue, cookie_values, parse_cookie_header};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};
use uuid::Uuid;

fn tracker(dir: &Path) -> Tracker {
    Tracker::open(dir, StoreOptions::default(), TrackerConfig::default()).unwrap()
}

/// A random header: random bytes, or random cookie-ish pairs, of 0 to 100,000 bytes.
fn random_header(rng: &mut StdRng) -> Vec<u8> {
    let len = match rng.random_range(0..4) {
        0 => rng.random_range(0..64),
        1 => rng.random_range(0..4_096),
        _ => rng.random_range(0..=100_000),
    };
    let mut out = Vec::with_capacity(len);
    if rng.random_bool(0.5) {
        // Raw bytes: NULs, bytes above 0x7f, invalid UTF-8, control characters.
        while out.len() < len {
            out.push(rng.random());
        }
    } else {
        // Thousands of pairs, some named cbtid, with odd characters mixed in.
        const PIECES: &[&[u8]] = &[
            b"cbtid=",
            b"cbtid",
            b"=",
            b";",
            b"; ",
            b" ",
            b"\t",
            b"\"",
            b"\0",
            b"\xff",
            b"\xc3\xa9",
            b",",
            b"\\",
            b"a",
            b"Z9+/",
            b"x_y=",
            b"==",
            b"\r\n",
        ];
        while out.len() < len {
            out.extend_from_slice(PIECES[rng.random_range(0..PIECES.len())]);
        }
        out.truncate(len);
    }
    out
}

#[test]
fn random_cookie_headers_never_fail_tracking() {
    let dir = tempfile::tempdir().unwrap();
    let t = tracker(dir.path());
    let known = t.track(None).unwrap();
    t.authenticate(
        &known.value,
        &Auth::new("joe", "user", "cookie", "realm1"),
        &AuthContext::default(),
    )
    .unwrap();
    let seed: u64 = rand::rng().random();
    eprintln!("bad_input: seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let rounds = 150 * stress();
    for round in 0..rounds {
        let mut header = random_header(&mut rng);
        // In half the rounds, the live cookie hides somewhere among the junk.
        let hidden = rng.random_bool(0.5);
        if hidden {
            let at = rng.random_range(0..=header.len());
            let mut pair = format!("; cbtid={}; ", known.value).into_bytes();
            header.splice(at..at, pair.drain(..));
        }
        // The parsers: only valid pairs out.
        for (name, value) in parse_cookie_header(&header) {
            assert!(!name.is_empty() && !value.is_empty() && CookieValue::is_cookie_octets(value));
        }
        let values: Vec<&str> = cookie_values(&header, "cbtid").collect();
        assert!(
            values
                .iter()
                .all(|v| !v.is_empty() && CookieValue::is_cookie_octets(v))
        );

        let tracked = t
            .track(Some(&header))
            .unwrap_or_else(|e| panic!("round {round}: {e}; header {header:?}"));
        if hidden && values.contains(&known.value.as_str()) {
            // Junk before it may hold another live cookie only by a 2^-144 chance.
            assert!(
                !tracked.is_new,
                "round {round}: the live cookie was not found"
            );
            assert_eq!(tracked.value, known.value);
            assert_eq!(tracked.auth.unwrap().authid, "joe");
        } else {
            assert!(tracked.is_new, "round {round}: junk matched a cookie");
            assert!(t.logout(&tracked.value).unwrap());
        }
    }

    // A worst case: 100,000 bytes of distinct, well-formed, unknown cbtid values.
    let mut header = String::new();
    let mut n = 0;
    while header.len() < 100_000 {
        header.push_str(&format!("cbtid=unknown{n:08}; "));
        n += 1;
    }
    header.push_str(&format!("cbtid={}", known.value));
    let started = std::time::Instant::now();
    let tracked = t.track(Some(header.as_bytes())).unwrap();
    assert!(!tracked.is_new && tracked.value == known.value);
    eprintln!(
        "bad_input: {n} unknown values before the live one: {:?}",
        started.elapsed()
    );
    assert_clean(t.store());
    assert_eq!(t.store().count().unwrap(), 1);
}

fn bad_values() -> Vec<(&'static str, String)> {
    vec![
        ("empty", String::new()),
        ("510 bytes", "a".repeat(510)),
        ("100,000 bytes", "a".repeat(100_000)),
        ("non-ASCII", "h\u{e9}llo".to_string()),
        ("emoji", "\u{1f36a}".repeat(10)),
        ("NUL", "a\0b".to_string()),
        ("space", "a b".to_string()),
        ("semicolon", "a;b".to_string()),
        ("quote", "a\"b".to_string()),
        ("control", "a\x07b".to_string()),
    ]
}

#[test]
fn bad_cookie_values_are_absent_and_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = CookieStore::open(dir.path(), StoreOptions::default()).unwrap();
    let good = store.create("cbtid", 24, 86_400).unwrap();
    let auth = Auth::new("joe", "user", "cookie", "realm1");
    let ctx = AuthContext::default();
    for (what, value) in bad_values() {
        // Reads: nothing there, no error.
        assert_eq!(store.get(&value).unwrap(), None, "{what}");
        assert!(!store.exists(&value).unwrap(), "{what}");
        assert_eq!(store.lookup(&value).unwrap(), None, "{what}");
        assert_eq!(store.get_auth(&value).unwrap(), None, "{what}");
        assert_eq!(
            store.set_auth(&value, &auth, &ctx).unwrap(),
            AuthUpdate::NoSuchCookie,
            "{what}"
        );
        assert!(!store.delete(&value).unwrap(), "{what}");
        // A header carrying it: a new cookie, never an error.
        let header = [b"cbtid=".as_slice(), value.as_bytes()].concat();
        let t = Tracker::new(store.clone(), TrackerConfig::default()).unwrap();
        let tracked = t.track(Some(&header)).unwrap();
        assert!(tracked.is_new, "{what}");
        assert!(CookieValue::is_cookie_octets(&tracked.value));
        store.delete(&tracked.value).unwrap();
    }
    // Writes of values no index can hold: refused.
    for (what, value) in bad_values().into_iter().take(3) {
        match store.put(&cookie_with(&store, value)) {
            Err(Error::InvalidValue { problem }) => assert!(!problem.is_empty(), "{what}"),
            other => panic!("{what}: {other:?}"),
        }
    }
    assert_clean(&store);
    assert_eq!(store.count().unwrap(), 1);
    assert!(store.exists(&good.value).unwrap());
}

fn cookie_with(store: &CookieStore, value: String) -> Cookie {
    Cookie {
        oid: Uuid::new_v4(),
        created: store.now_ns(),
        max_age: 86_400,
        name: Some("cbtid".into()),
        value,
        ..Cookie::default()
    }
}

/// `Error::InvalidValue` promises that a value that is "not cookie-safe" is refused: a
/// cookie no browser can send back must not be stored (import and restore go through
/// `put`).
#[test]
fn put_refuses_values_that_are_not_cookie_octets() {
    let dir = tempfile::tempdir().unwrap();
    let store = CookieStore::open(dir.path(), StoreOptions::default()).unwrap();
    let mut accepted = Vec::new();
    for (what, value) in bad_values().into_iter().skip(3) {
        match store.put(&cookie_with(&store, value)) {
            Err(Error::InvalidValue { .. }) => {}
            other => accepted.push(format!("{what}: {other:?}")),
        }
    }
    assert!(
        accepted.is_empty(),
        "put stored values that are not cookie-octets: {accepted:?}"
    );
    assert_eq!(store.count().unwrap(), 0);
}

/// `[[[...1...]]]`, `depth` levels of arrays (built without recursion).
fn nested(depth: usize) -> Value {
    let mut v = json!(1);
    for _ in 1..depth {
        v = Value::Array(vec![v]);
    }
    v
}

#[test]
fn huge_and_deep_authextra_are_refused_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let store = CookieStore::open(dir.path(), StoreOptions::default()).unwrap();
    let c = store.create("cbtid", 24, 86_400).unwrap();
    let ctx = AuthContext::default();
    let first = Auth::new("joe", "user", "cookie", "realm1");
    store.set_auth(&c.value, &first, &ctx).unwrap();
    let with = |extra: Value| Auth::new("eve", "user", "cookie", "realm1").with_authextra(extra);

    // Large but within the 1 MiB record limit: stored and read back.
    let big = json!({ "blob": "b".repeat(900_000), "list": (0..5_000).collect::<Vec<_>>() });
    assert_eq!(
        store.set_auth(&c.value, &with(big.clone()), &ctx).unwrap(),
        AuthUpdate::Written
    );
    assert_eq!(store.get_auth(&c.value).unwrap().unwrap().authextra, big);
    store.set_auth(&c.value, &first, &ctx).unwrap();

    // Too large, as one string or as many small values; nesting too deep, a little or
    // a lot (far deeper: see the next test).
    let refused = [
        ("2 MB string", json!({ "blob": "b".repeat(2_000_000) })),
        ("300,000 numbers", json!((0..300_000).collect::<Vec<_>>())),
        ("depth 65", nested(65)),
        ("depth 1,000", nested(1_000)),
        ("deep in a map", json!({ "ok": 1, "deep": nested(200) })),
    ];
    for (what, extra) in refused {
        let auth = with(extra);
        match store.set_auth(&c.value, &auth, &ctx) {
            Err(Error::InvalidValue { problem }) => eprintln!("bad_input: {what}: {problem}"),
            other => panic!("{what}: {other:?}"),
        }
        // The same through put and a whole record.
        let mut cookie = store.get(&c.value).unwrap().unwrap();
        cookie.authextra = auth.authextra.clone();
        assert!(
            matches!(store.put(&cookie), Err(Error::InvalidValue { .. })),
            "{what}"
        );
        // Nothing was written.
        assert_eq!(
            store.get_auth(&c.value).unwrap(),
            Some(first.clone()),
            "{what}"
        );
        dismantle(auth.authextra);
        dismantle(cookie.authextra);
    }
    // Exactly at the limit of 64 levels: accepted.
    let deepest = nested(64);
    assert_eq!(
        store
            .set_auth(&c.value, &with(deepest.clone()), &ctx)
            .unwrap(),
        AuthUpdate::Written
    );
    assert_eq!(
        store.get_auth(&c.value).unwrap().unwrap().authextra,
        deepest
    );
    assert_clean(&store);
}

/// A router hands `authenticate` whatever its authenticator returned: 100,000 levels of
/// nesting, in authextra or in the transport details, must be refused like 65, not
/// overflow the stack (which aborts the whole router process). Runs on a thread with the
/// default 2 MiB stack of spawned threads.
#[test]
fn very_deep_authextra_does_not_overflow_the_stack() {
    let dir = tempfile::tempdir().unwrap();
    let store = CookieStore::open(dir.path(), StoreOptions::default()).unwrap();
    let c = store.create("cbtid", 24, 86_400).unwrap();
    let worker = std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(move || {
            let auth = Auth::new("eve", "user", "cookie", "realm1").with_authextra(nested(100_000));
            let r = store.set_auth(&c.value, &auth, &AuthContext::default());
            dismantle(auth.authextra);
            let r = r.map_err(|e| e.to_string());
            // The same for the transport details of the authentication context.
            // (Not json!: it would serialize the value, recursively, in the test.)
            let context = AuthContext::default().transport_info(Value::Object(
                [("headers".to_string(), nested(100_000))]
                    .into_iter()
                    .collect(),
            ));
            let plain = Auth::new("eve", "user", "cookie", "realm1");
            let r2 = store.set_auth(&c.value, &plain, &context);
            dismantle(context.transport_info);
            let r2 = r2.map_err(|e| e.to_string());
            (r, r2, store.get_auth(&c.value).map_err(|e| e.to_string()))
        })
        .unwrap();
    let (r, r2, after) = worker.join().unwrap();
    for r in [r, r2] {
        assert!(
            matches!(&r, Err(msg) if msg.contains("nested deeper")),
            "{r:?}"
        );
    }
    assert_eq!(after, Ok(None));
}

/// Drops a deeply nested value without recursing (serde_json's own drop recurses, which
/// would overflow this test's stack, not the library's).
fn dismantle(v: Value) {
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        match v {
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => stack.extend(map.into_iter().map(|(_, v)| v)),
            _ => {}
        }
    }
}

fn record_key(slot: u16, oid: Uuid) -> Vec<u8> {
    let mut key = slot.to_be_bytes().to_vec();
    key.extend_from_slice(oid.as_bytes());
    key
}

#[test]
fn garbage_records_are_isolated_and_named_by_check() {
    let dir = tempfile::tempdir().unwrap();
    let t = tracker(dir.path());
    let store = t.store().clone();
    let mut cookies = Vec::new();
    for i in 0..40 {
        let c = store.create("cbtid", 24, 86_400).unwrap();
        let auth = Auth::new(&format!("user{i}"), "user", "cookie", "realm1")
            .with_authextra(json!({ "pad": "X".repeat(20_000) }));
        store
            .set_auth(&c.value, &auth, &AuthContext::default())
            .unwrap();
        cookies.push(store.get(&c.value).unwrap().unwrap());
    }
    let slot = common::table_slot(&store, common::COOKIES_OID);
    drop((t, store));

    // Cookie 3: garbage bytes. Cookie 7: a valid record whose authextra is CBOR nested
    // 20,000 levels deep (same length as its real authextra, patched in place).
    let garbage = &cookies[3];
    raw_put(
        dir.path(),
        &record_key(slot, garbage.oid),
        b"\x10\x00\x00\x00this is not a flatbuffer \xff\xfe\x00",
    );
    let deep = &cookies[7];
    let mut bytes = deep.encode().unwrap();
    let mut cbor = Vec::new();
    ciborium::into_writer(&deep.authextra, &mut cbor).unwrap();
    let at = bytes
        .windows(cbor.len())
        .position(|w| w == cbor)
        .expect("authextra's CBOR in the record");
    assert!(cbor.len() > 20_001);
    let patched = &mut bytes[at..at + cbor.len()];
    patched.fill(0x81); // array of one element ...
    *patched.last_mut().unwrap() = 0x01; // ... ending in the integer 1
    raw_put(dir.path(), &record_key(slot, deep.oid), &bytes);

    let t = tracker(dir.path());
    let store = t.store();
    let bad = [garbage, deep];
    for c in bad {
        for (what, r) in [
            ("get", store.get(&c.value).map(|_| ())),
            ("get_auth", store.get_auth(&c.value).map(|_| ())),
            ("lookup", store.lookup(&c.value).map(|_| ())),
            ("get_by_oid", store.get_by_oid(c.oid).map(|_| ())),
            (
                "track",
                t.track(Some(format!("cbtid={}", c.value).as_bytes()))
                    .map(|_| ()),
            ),
        ] {
            match r {
                Err(Error::CorruptRecord { oid, .. }) => assert_eq!(oid, c.oid, "{what}"),
                other => panic!("{what} of a corrupt record: {other:?}"),
            }
        }
    }
    for c in cookies
        .iter()
        .filter(|c| bad.iter().all(|b| b.oid != c.oid))
    {
        assert_eq!(store.get(&c.value).unwrap().as_ref(), Some(c));
        let tracked = t
            .track(Some(format!("cbtid={}", c.value).as_bytes()))
            .unwrap();
        assert!(!tracked.is_new);
        assert_eq!(tracked.auth, c.auth());
    }
    // A walk reports each bad record once and goes on.
    let (ok, errs) = store
        .as_lmdb()
        .unwrap()
        .snapshot(|s| {
            let mut ok = 0;
            let mut errs = Vec::new();
            for r in s.records()? {
                match r {
                    Ok(_) => ok += 1,
                    Err(Error::CorruptRecord { oid, .. }) => errs.push(oid),
                    Err(e) => return Err(e),
                }
            }
            Ok((ok, errs))
        })
        .unwrap();
    assert_eq!(ok, cookies.len() - 2);
    errs.iter()
        .for_each(|o| assert!(bad.iter().any(|b| b.oid == *o)));
    assert_eq!(errs.len(), 2);
    assert!(store.stats().unwrap().corrupt >= 1);

    // check names both.
    let report = check(store.as_lmdb().unwrap()).unwrap();
    for c in bad {
        assert!(
            report
                .problems
                .iter()
                .any(|p| matches!(p, Problem::UndecodableRecord { oid, .. } if *oid == c.oid)),
            "check does not name {}: {:?}",
            c.oid,
            report.problems
        );
    }
    // The store still works around them, and they can be logged out.
    let fresh = t.track(None).unwrap();
    assert!(fresh.is_new);
    assert_eq!(store.purge_expired().unwrap(), 0);
    for c in bad {
        assert!(t.logout(&c.value).unwrap(), "logout of corrupt {}", c.value);
        assert_eq!(store.get(&c.value).unwrap(), None);
    }
}

// ---- files that are not a store ----

fn made_store(fill: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let store = CookieStore::open(dir.path(), StoreOptions::default()).unwrap();
    store
        .as_lmdb()
        .unwrap()
        .batch("fill", |b| {
            for i in 0..fill {
                let c = b.create("cbtid", 24, 86_400)?;
                let auth = Auth::new(&format!("u{i}"), "r", "cookie", "realm1")
                    .with_authextra(json!({ "pad": "p".repeat(300) }));
                b.set_auth(&c.value, &auth, &AuthContext::default())?;
            }
            Ok(())
        })
        .unwrap();
    dir
}

fn readonly() -> StoreOptions {
    StoreOptions::default().readonly(true)
}

#[test]
fn truncated_data_file_is_refused_at_any_length() {
    let dir = made_store(3_000);
    let used = CookieStore::open(dir.path(), readonly())
        .unwrap()
        .stats()
        .unwrap()
        .lmdb
        .as_ref()
        .unwrap()
        .map_used;
    let data = dir.path().join("data.mdb");
    let original = std::fs::read(&data).unwrap();
    assert!(used > 100 * 4096 && original.len() as u64 >= used);
    let mut lengths = vec![
        1,
        16,
        100,
        4_095,
        4_096,
        4_096 + 200,
        8_191,
        8_192,
        3 * 4_096,
        used / 2,
        used - 4_096,
        used - 1,
    ];
    let mut rng = StdRng::seed_from_u64(7);
    lengths.extend((0..10).map(|_| rng.random_range(1..used)));
    for len in lengths {
        std::fs::write(&data, &original[..len as usize]).unwrap();
        for options in [readonly(), StoreOptions::default()] {
            let ro = options.readonly;
            match CookieStore::open(dir.path(), options) {
                Err(Error::Damaged { problem, .. }) => {
                    assert!(!problem.is_empty());
                }
                Err(Error::NotAStore { problem, .. }) => {
                    // Only when even the first meta page is cut before its magic.
                    assert!(len < 24, "length {len}: {problem}");
                }
                other => panic!("data.mdb cut to {len} bytes (read-only {ro}): {other:?}"),
            }
        }
    }
    // Restored, it opens as before.
    std::fs::write(&data, &original).unwrap();
    let store = CookieStore::open(dir.path(), StoreOptions::default()).unwrap();
    assert_eq!(store.count().unwrap(), 3_000);
    assert_clean(&store);
}

/// A zero-length data.mdb is what LMDB leaves when a store's creation is interrupted before
/// the first commit; LMDB initialises it, and the store opens empty.
#[test]
fn empty_data_file_opens_as_a_new_store() {
    let dir = made_store(10);
    std::fs::write(dir.path().join("data.mdb"), b"").unwrap();
    let store = CookieStore::open(dir.path(), StoreOptions::default()).unwrap();
    assert_eq!(store.count().unwrap(), 0);
    assert_clean(&store);
}

#[test]
fn not_a_store_gives_its_own_error() {
    // A directory of other files: nothing is created among them.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "hello").unwrap();
    for options in [StoreOptions::default(), readonly()] {
        let err = CookieStore::open(dir.path(), options).unwrap_err();
        assert!(matches!(err, Error::NotAStore { .. }), "{err}");
    }
    assert!(!dir.path().join("data.mdb").exists());
    assert!(!dir.path().join("lock.mdb").exists());

    // A data.mdb that is not LMDB: random bytes, zeros, text, one byte.
    let mut rng = StdRng::seed_from_u64(3);
    let contents: Vec<Vec<u8>> = vec![
        (0..20_000).map(|_| rng.random()).collect(),
        vec![0; 16_384],
        b"SQLite format 3\0".repeat(1_000),
        vec![0xde],
    ];
    for bytes in contents {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("data.mdb"), &bytes).unwrap();
        for options in [StoreOptions::default(), readonly()] {
            let err = CookieStore::open(dir.path(), options).unwrap_err();
            assert!(matches!(err, Error::NotAStore { .. }), "{err}");
            assert!(err.to_string().contains("not an LMDB file"), "{err}");
        }
    }

    // A data.mdb that is a directory.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data.mdb")).unwrap();
    assert!(CookieStore::open(dir.path(), StoreOptions::default()).is_err());
}

fn patch_u32(data: &Path, offset: u64, v: u32) {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new().write(true).open(data).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(&v.to_le_bytes()).unwrap();
}

#[test]
fn lmdb_format_3_is_refused_with_a_hint() {
    // The version field patched to 3 in both meta pages of a real store ...
    let patched = made_store(5);
    let data = patched.path().join("data.mdb");
    patch_u32(&data, 20, 3);
    patch_u32(&data, 4096 + 20, 3);
    // ... and LMDB 1.0's own layout: its page header has 8 more bytes (a txnid), so the
    // magic is at byte 24 and the version at 28.
    let shifted = made_store(5);
    let data = shifted.path().join("data.mdb");
    let mut bytes = std::fs::read(&data).unwrap();
    for page in [0usize, 4096] {
        bytes.copy_within(page + 16..page + 4096 - 8, page + 24);
        bytes[page + 16..page + 24].fill(0);
        bytes[page + 28..page + 32].copy_from_slice(&3u32.to_le_bytes());
    }
    std::fs::write(&data, bytes).unwrap();
    for dir in [&patched, &shifted] {
        for options in [StoreOptions::default(), readonly()] {
            let err = CookieStore::open(dir.path(), options).unwrap_err();
            assert!(
                matches!(err, Error::UnsupportedFormat { found: 3, .. }),
                "{err}"
            );
            assert!(err.to_string().contains("LMDB 1.0"), "{err}");
        }
    }
    // Any other version: refused too.
    let other = made_store(1);
    let data = other.path().join("data.mdb");
    patch_u32(&data, 20, 2);
    patch_u32(&data, 4096 + 20, 2);
    let err = CookieStore::open(other.path(), StoreOptions::default()).unwrap_err();
    assert!(
        matches!(err, Error::UnsupportedFormat { found: 2, .. }),
        "{err}"
    );
}

// ---- paths without permission ----

const NOBODY: u32 = 65_534;

#[test]
fn paths_without_permission() {
    if child_role().is_some() {
        return open_without_permission();
    }
    // Below a regular file: ENOTDIR, whoever we are.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("file"), "x").unwrap();
    for options in [StoreOptions::default(), readonly()] {
        let err = CookieStore::open(dir.path().join("file/store"), options).unwrap_err();
        assert!(matches!(err, Error::Path { .. }), "{err}");
    }
    // A missing directory, read-only: nothing is created.
    let err = CookieStore::open(dir.path().join("missing"), readonly()).unwrap_err();
    assert!(matches!(err, Error::Path { .. }), "{err}");
    assert!(!dir.path().join("missing").exists());

    // A store in a directory the opener may not enter (mode 0700, another owner for root's
    // child, or the same owner with the directory at mode 0000 otherwise).
    let base = tempfile::tempdir().unwrap();
    set_mode(base.path(), 0o755);
    let store_dir = base.path().join("private");
    drop(made_store_at(&store_dir));
    let as_root = running_as_root();
    set_mode(&store_dir, if as_root { 0o700 } else { 0o000 });
    let mut cmd = child_command("paths_without_permission", "opener");
    cmd.env("PERM_STORE", &store_dir);
    if as_root {
        use std::os::unix::process::CommandExt;
        cmd.uid(NOBODY).gid(NOBODY);
    }
    let mut child = cmd.spawn().unwrap();
    let lines = ChildLines::new(&mut child);
    let reports = lines.rest();
    wait_success(&mut child, "opener");
    set_mode(&store_dir, 0o700);
    assert_eq!(reports.len(), 3, "{reports:?}");
    for r in &reports {
        assert_eq!(r["variant"], "Path", "{r}");
        assert_eq!(r["kind"], "PermissionDenied", "{r}");
    }
    // The store is untouched.
    assert_eq!(
        CookieStore::open(&store_dir, readonly())
            .unwrap()
            .count()
            .unwrap(),
        3
    );
}

fn made_store_at(path: &Path) -> CookieStore {
    let store = CookieStore::open(path, StoreOptions::default()).unwrap();
    for _ in 0..3 {
        store.create("cbtid", 24, 86_400).unwrap();
    }
    store
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn open_without_permission() {
    let store_dir = std::path::PathBuf::from(std::env::var("PERM_STORE").unwrap());
    assert!(
        !running_as_root(),
        "the opener must not run as root, or permissions mean nothing"
    );
    let attempts = [
        ("writable", store_dir.clone(), StoreOptions::default()),
        ("read-only", store_dir.clone(), readonly()),
        (
            "new store inside",
            store_dir.join("new"),
            StoreOptions::default(),
        ),
    ];
    for (what, path, options) in attempts {
        let err = CookieStore::open(&path, options).unwrap_err();
        let (variant, kind) = match &err {
            Error::Path { source, .. } => ("Path", format!("{:?}", source.kind())),
            other => ("other", format!("{other:?}")),
        };
        eprintln!("bad_input: {what} open without permission: {err}");
        report(&json!({"what": what, "variant": variant, "kind": kind, "msg": err.to_string()}));
    }
}
