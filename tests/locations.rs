//! Where a store is ([`Location`]): a URL is never a path, a Redis password never shows
//! (Display, Debug, errors), two deployments sharing one Redis database never touch each
//! other's keys, and `copy_to` only ever creates a new, private directory.

// A failed unwrap here (helpers included) is the test, bench or example failing.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::redis_server::{RedisServer, free_port, need_redis};
use cookiestore::maintenance::{ExportOptions, export, restore};
use cookiestore::{Auth, AuthContext, CookieStore, Error, Location, StoreOptions};

const PASSWORD: &str = "p/a?s#s@w%2Frd";
const ENCODED: &str = "p%2Fa%3Fs%23s%40w%252Frd";

fn assert_no_password(context: &str, text: &str) {
    for piece in [PASSWORD, ENCODED, "p/a?s", "s#s@w", "w%2Frd", "p%2Fa"] {
        assert!(!text.contains(piece), "{context}: {piece:?} in {text}");
    }
}

/// Every key of the database with its type, read raw.
fn keys(server: &RedisServer, pattern: &str) -> BTreeMap<String, String> {
    let mut con = redis::Client::open(server.url(""))
        .unwrap()
        .get_connection_with_timeout(Duration::from_secs(5))
        .unwrap();
    let names: Vec<String> = redis::cmd("KEYS").arg(pattern).query(&mut con).unwrap();
    names
        .into_iter()
        .map(|k| {
            let t: String = redis::cmd("TYPE").arg(&k).query(&mut con).unwrap();
            (k, t)
        })
        .collect()
}

fn export_text(store: &CookieStore) -> String {
    let mut out = Vec::new();
    export(store, &mut out, ExportOptions::default(), &mut |_| {}).unwrap();
    String::from_utf8(out).unwrap()
}

/// A deployment's worth of keys: cookies (some authenticated, so authid sets), a logout
/// (the feed and its head), an import mark, the feature level.
fn populate(store: &CookieStore, n: usize, mark: char) {
    let mut values = Vec::new();
    for i in 0..n {
        let c = store.create("cbtid", 24, 86_400).unwrap();
        if i % 2 == 0 {
            store
                .set_auth(
                    &c.value,
                    &Auth::new("alice", "user", "ticket", "realm1"),
                    &AuthContext::default(),
                )
                .unwrap();
        }
        values.push(c.value);
    }
    store.delete(&values[1]).unwrap();
    let expires = store.now_ns() + 3_600_000_000_000;
    let line = format!(
        "{{\"imported_sha256\":\"{}\",\"expires\":{expires}}}\n",
        mark.to_string().repeat(64)
    );
    let summary = restore(store, &mut line.as_bytes(), true, &mut |_| {}).unwrap();
    assert_eq!(summary.import_marks, 1, "{summary:?}");
}

#[test]
fn deployments_sharing_a_redis_database_never_touch_each_others_keys() {
    if !need_redis() {
        return;
    }
    let server = RedisServer::start();
    // The empty prefix (the default) and prefixes that look close to its keys.
    let plain = CookieStore::open(server.url(""), StoreOptions::default()).unwrap();
    let cb1 = CookieStore::open(server.url("cb1:"), StoreOptions::default()).unwrap();
    let cookies = CookieStore::open(
        server.url(""),
        StoreOptions::default().key_prefix("cookies:"),
    )
    .unwrap();
    populate(&plain, 10, 'a');
    populate(&cb1, 7, 'b');
    populate(&cookies, 5, 'c');
    assert_eq!(plain.count().unwrap(), 9);
    assert_eq!(cb1.count().unwrap(), 6);
    assert_eq!(cookies.count().unwrap(), 4);
    for (store, lines) in [(&plain, 9 + 1), (&cb1, 6 + 1), (&cookies, 4 + 1)] {
        let text = export_text(store);
        assert_eq!(text.lines().count(), lines, "{}: {text}", store.location());
    }
    assert_eq!(
        plain.revocations_since(0).unwrap().entries.len(),
        1,
        "one logout in the empty prefix's own feed"
    );

    // Clearing one leaves the others' keys exactly as they were.
    let others = |server: &RedisServer| {
        let mut all = keys(server, "cb1:*");
        all.extend(keys(server, "cookies:*"));
        all
    };
    let before = others(&server);
    assert!(before.len() >= 6 + 4, "{before:?}");
    assert_eq!(plain.clear().unwrap(), 9);
    assert_eq!(plain.count().unwrap(), 0);
    assert_eq!(others(&server), before);
    assert_eq!(cb1.count().unwrap(), 6);
    assert_eq!(cookies.count().unwrap(), 4);
    // And the other way round.
    populate(&plain, 4, 'd');
    let plain_keys: BTreeMap<String, String> = keys(&server, "*")
        .into_iter()
        .filter(|(k, _)| !k.starts_with("cb1:") && !k.starts_with("cookies:"))
        .collect();
    assert_eq!(cb1.clear().unwrap(), 6);
    assert_eq!(cookies.clear().unwrap(), 4);
    let after: BTreeMap<String, String> = keys(&server, "*")
        .into_iter()
        .filter(|(k, _)| !k.starts_with("cb1:") && !k.starts_with("cookies:"))
        .collect();
    assert_eq!(after, plain_keys);
    assert_eq!(plain.count().unwrap(), 3);
}

#[test]
fn a_prefix_that_could_overlap_another_is_refused() {
    // No server needed: the prefix is refused before anything connects.
    let url = format!("redis://127.0.0.1:{}/0", free_port());
    for prefix in [
        "cookie:",
        "authid:",
        "imported:",
        "revocations:",
        "feature_level:",
        "cb1",
        "a:b:",
        "cb*:",
        "c[1]:",
        "a\\:",
        ":",
    ] {
        let err = CookieStore::open(&url, StoreOptions::default().key_prefix(prefix)).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidConfig { field, .. } if field == "key_prefix"),
            "{prefix:?}: {err}"
        );
        let escaped: String = prefix.bytes().map(|b| format!("%{b:02X}")).collect();
        let err = CookieStore::open(format!("{url}?prefix={escaped}"), StoreOptions::default())
            .unwrap_err();
        assert!(
            matches!(&err, Error::InvalidConfig { field, .. } if field == "prefix"),
            "{prefix:?}: {err}"
        );
    }
    assert!(
        StoreOptions::default()
            .key_prefix("cb1:")
            .validate()
            .is_ok()
    );
    assert!(StoreOptions::default().key_prefix("").validate().is_ok());
}

#[test]
fn a_redis_password_never_shows() {
    if !need_redis() {
        return;
    }
    let server = RedisServer::start();
    let reply = server.command(&["CONFIG", "SET", "requirepass", PASSWORD]);
    assert!(reply.starts_with("+OK"), "{reply}");
    let right = format!("redis://:{ENCODED}@127.0.0.1:{}/0?prefix=pw:", server.port);
    let store = CookieStore::open(&right, StoreOptions::default()).unwrap();
    store.create("cbtid", 24, 600).unwrap();
    assert_eq!(store.path(), None, "a Redis store has no directory");
    assert_eq!(store.location().kind(), "redis");
    for text in [
        store.location().to_string(),
        format!("{:?}", store.location()),
        format!("{store:?}"),
    ] {
        assert_no_password("store", &text);
        assert!(text.contains("***"), "{text}");
    }
    let parsed = Location::parse(&right).unwrap();
    assert_eq!(&parsed, store.location());
    assert_no_password("Location::mask", &Location::mask(&right));

    let wrong_user = format!("redis://joe:{ENCODED}@127.0.0.1:{}/0", server.port);
    let nowhere = format!(
        "redis://:{ENCODED}@127.0.0.1:{}/0?timeout_ms=300",
        free_port()
    );
    let raw = format!("redis://:{PASSWORD}@127.0.0.1:{}/0", server.port);
    let unix = format!("redis+unix:///nonexistent.sock?pass={ENCODED}");
    let other = format!("memcached://:{ENCODED}@127.0.0.1:{}/0", server.port);
    for url in [&wrong_user, &nowhere, &raw, &unix, &other] {
        let err = CookieStore::open(url, StoreOptions::default()).unwrap_err();
        assert_no_password(url, &err.to_string());
        assert_no_password(url, &format!("{err:?}"));
    }
    // The same through the configuration.
    let section = serde_json::json!({"store": {"type": "cookiestore", "url": raw}});
    let err = cookiestore::CookieSection::from_value(&section).unwrap_err();
    assert_no_password("config", &format!("{err} {err:?}"));
}

#[test]
fn a_url_is_never_a_directory() {
    let cwd = std::env::current_dir().unwrap();
    let url = format!("redis://127.0.0.1:{}/0?timeout_ms=300", free_port());
    let err = CookieStore::open(&url, StoreOptions::default()).unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err}");
    let err = CookieStore::open("ftp://h/cookies", StoreOptions::default()).unwrap_err();
    assert!(matches!(err, Error::UnsupportedLocation { .. }), "{err}");
    for made in ["redis:", "ftp:"] {
        assert!(!cwd.join(made).exists(), "{made} was created");
    }
    // A directory whose name looks like a URL is reached through a path that does not
    // start with the scheme (./redis://h, /srv/redis://h).
    let dir = tempfile::tempdir().unwrap();
    let odd = dir.path().join("redis://h");
    assert_eq!(Location::parse(&odd).unwrap(), Location::Lmdb(odd.clone()));
    assert_eq!(Location::parse("./redis://h").unwrap().kind(), "lmdb");
    let store = CookieStore::open(&odd, StoreOptions::default()).unwrap();
    assert_eq!(store.location().kind(), "lmdb");
    assert!(odd.join("data.mdb").exists());
}

#[test]
fn copy_to_only_creates_a_new_private_directory() {
    let dir = tempfile::tempdir().unwrap();
    let store = CookieStore::open(dir.path().join("store"), StoreOptions::default()).unwrap();
    store.create("cbtid", 24, 600).unwrap();
    let existing = dir.path().join("existing");
    std::fs::create_dir(&existing).unwrap();
    let err = store
        .as_lmdb()
        .unwrap()
        .copy_to(&existing, false)
        .unwrap_err();
    assert!(matches!(err, Error::DestinationExists { .. }), "{err}");
    assert_eq!(std::fs::read_dir(&existing).unwrap().count(), 0);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&existing, &link).unwrap();
        let err = store.as_lmdb().unwrap().copy_to(&link, true).unwrap_err();
        assert!(matches!(err, Error::DestinationExists { .. }), "{err}");
        assert_eq!(std::fs::read_dir(&existing).unwrap().count(), 0);
        let nested = dir.path().join("a").join("b");
        store.as_lmdb().unwrap().copy_to(&nested, false).unwrap();
        for d in [dir.path().join("a"), nested.clone()] {
            let mode = std::fs::metadata(&d).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700, "{}", d.display());
        }
    }
}
