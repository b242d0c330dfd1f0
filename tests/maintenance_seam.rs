//! Maintenance through the seam: what the façade checks once for every backend. A restore or
//! an import on a read-only handle is refused before anything is written, on Redis as on
//! LMDB (each test runs its own redis-server; skipped with a message when it is missing,
//! except under CI).

// A failed unwrap here (helpers included) is the test failing.
#![allow(clippy::unwrap_used)]

mod common;

use common::redis_server::{RedisServer, need_redis};
use cookiestore::maintenance::{ImportOptions, import_records, restore};
use cookiestore::{Cookie, CookieStore, Error, StoreOptions};

#[test]
fn a_read_only_redis_handle_refuses_restores_and_imports() {
    if !need_redis() {
        return;
    }
    let server = RedisServer::start();
    let writer = CookieStore::open(server.url(""), StoreOptions::default()).unwrap();
    let reader = CookieStore::open(server.url(""), StoreOptions::default().readonly(true)).unwrap();
    let cookie = Cookie {
        oid: uuid::Uuid::new_v4(),
        value: "a".repeat(24),
        created: writer.now_ns(),
        max_age: 600,
        ..Cookie::default()
    };
    let line = format!("{}\n", serde_json::to_string(&cookie).unwrap());

    let got = restore(&reader, &mut line.as_bytes(), true, &mut |_| {});
    assert!(matches!(got, Err(Error::ReadOnly { .. })), "{got:?}");
    let now = reader.now_ns();
    let got = import_records(
        &reader,
        &mut std::iter::once(Ok(cookie.clone())),
        now,
        &ImportOptions::default(),
        &mut |_| {},
    );
    assert!(matches!(got, Err(Error::ReadOnly { .. })), "{got:?}");
    assert_eq!(writer.count().unwrap(), 0, "nothing was written");

    // The same on a writable handle writes it: the refusal above is the handle's.
    let summary = restore(&writer, &mut line.as_bytes(), true, &mut |_| {}).unwrap();
    assert_eq!(summary.restored, 1);
    assert_eq!(writer.get(&cookie.value).unwrap(), Some(cookie));
}
