//! The Redis backend's scripts write all or nothing: Redis does not undo a script's writes
//! when a later command of it fails, so each script checks, before its first write, what
//! could make a later write fail (a key of another type, a feed id it cannot follow, a
//! command the Redis user may not run). Each test damages the key that a script's later
//! write touches, checks that the call fails with an error saying what is wrong and that
//! nothing was written (the cookie, its authid set and the feed as before), then mends the
//! key (DEL) and checks that the call succeeds. Each runs its own redis-server on a free
//! loopback port (skipped with a message when redis-server is missing, except under CI).

// A failed unwrap here (helpers included) is the test, bench or example failing.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::redis_server::{RedisServer, need_redis};
use cookiestore::{Auth, AuthUpdate, Cookie, CookieStore, Error, StoreOptions, Subscriber};

const PREFIX: &str = "lua:";

/// A redis-server of the test's own and a store on it; `None` (the test skips) when
/// redis-server is missing outside CI.
fn start() -> Option<(RedisServer, CookieStore)> {
    if !need_redis() {
        return None;
    }
    let server = RedisServer::start();
    let store = open(&server);
    Some((server, store))
}

fn open(server: &RedisServer) -> CookieStore {
    CookieStore::open(server.url(PREFIX), StoreOptions::default().timeout_ms(5000)).unwrap()
}

fn alice() -> Auth {
    Auth::new("alice", "user", "wampcra", "realm1")
}

fn key(name: &str) -> String {
    format!("{PREFIX}{name}")
}

/// The number in an integer reply (`:N`).
fn int(reply: &str) -> i64 {
    reply
        .strip_prefix(':')
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not an integer reply: {reply:?}"))
}

/// The type of `key` (`+string`, `+none`, ...).
fn key_type(server: &RedisServer, name: &str) -> String {
    server.command(&["TYPE", &key(name)])
}

/// Entries in the feed stream (0 when there is none).
fn feed_len(server: &RedisServer) -> i64 {
    int(&server.command(&["XLEN", &key("revocations")]))
}

/// Replaces `name` with a plain string, as another program might.
fn overwrite_with_string(server: &RedisServer, name: &str) {
    assert_eq!(
        server.command(&["SET", &key(name), "not-cookiestore"]),
        "+OK"
    );
}

fn mend(server: &RedisServer, name: &str) {
    assert_eq!(int(&server.command(&["DEL", &key(name)])), 1);
}

/// The error of a call that must fail.
fn refused<T: std::fmt::Debug>(result: cookiestore::Result<T>) -> Error {
    result.expect_err("the call must fail on the damaged key")
}

/// `err` is [`Error::Redis`], and its text has every one of `words`. Checked after the
/// store's state, so that a call that wrote part of its keys fails there first.
fn assert_says(err: &Error, words: &[&str]) {
    assert!(matches!(err, Error::Redis { .. }), "{err:?}");
    let text = err.to_string();
    for word in words {
        assert!(text.contains(word), "{word:?} is not in the error: {text}");
    }
}

fn logged_in(store: &CookieStore) -> Cookie {
    let c = store.create("cbtid", 24, 3600).unwrap();
    assert_eq!(
        store
            .set_auth(&c.value, &alice(), &Default::default())
            .unwrap(),
        AuthUpdate::Written
    );
    c
}

#[test]
fn logout_with_a_string_at_the_feed_key_writes_nothing() {
    let Some((server, store)) = start() else {
        return;
    };
    let c = logged_in(&store);
    overwrite_with_string(&server, "revocations");
    let err = refused(store.delete(&c.value));
    assert!(
        store.exists(&c.value).unwrap(),
        "the cookie must still be there"
    );
    assert_eq!(store.get_auth(&c.value).unwrap(), Some(alice()));
    assert_eq!(int(&server.command(&["SCARD", &key("authid:alice")])), 1);
    assert_eq!(key_type(&server, "revocations"), "+string");
    assert_eq!(key_type(&server, "revocations:head"), "+none");
    assert_says(
        &err,
        &[
            "lua:revocations holds a string, not the revocation feed",
            "nothing was changed",
            "delete it (DEL)",
        ],
    );

    mend(&server, "revocations");
    assert!(store.delete(&c.value).unwrap());
    assert!(!store.exists(&c.value).unwrap());
    assert_eq!(feed_len(&server), 1);
    assert_eq!(key_type(&server, "authid:alice"), "+none");
}

#[test]
fn logout_with_a_damaged_feed_head_writes_nothing() {
    let Some((server, store)) = start() else {
        return;
    };
    let first = store.create("cbtid", 24, 3600).unwrap();
    assert!(store.delete(&first.value).unwrap());
    let c = store.create("cbtid", 24, 3600).unwrap();
    mend(&server, "revocations:head");
    assert_eq!(
        int(&server.command(&["HSET", &key("revocations:head"), "f", "v"])),
        1
    );
    let err = refused(store.delete(&c.value));
    assert!(store.exists(&c.value).unwrap());
    assert_eq!(feed_len(&server), 1);
    assert_says(
        &err,
        &["lua:revocations:head holds a hash", "nothing was changed"],
    );

    mend(&server, "revocations:head");
    assert!(store.delete(&c.value).unwrap());
    assert_eq!(feed_len(&server), 2);
}

#[test]
fn logout_after_a_foreign_feed_entry_writes_nothing() {
    let Some((server, store)) = start() else {
        return;
    };
    let c = store.create("cbtid", 24, 3600).unwrap();
    // An entry with a time-based id: cookiestore's `0-*` cannot follow it.
    let id = server.command(&["XADD", &key("revocations"), "*", "f", "v"]);
    assert!(id.starts_with('$'), "{id}");
    let err = refused(store.delete(&c.value));
    assert!(store.exists(&c.value).unwrap());
    assert_eq!(feed_len(&server), 1);
    assert_says(
        &err,
        &[
            "the revocation feed lua:revocations ends at the id",
            "nothing was changed",
        ],
    );

    mend(&server, "revocations");
    assert!(store.delete(&c.value).unwrap());
    assert_eq!(feed_len(&server), 1);
}

#[test]
fn logout_with_a_damaged_authid_set_writes_nothing() {
    let Some((server, store)) = start() else {
        return;
    };
    let c = logged_in(&store);
    overwrite_with_string(&server, "authid:alice");
    let err = refused(store.delete(&c.value));
    assert!(
        store.exists(&c.value).unwrap(),
        "the cookie must still be there"
    );
    assert_eq!(key_type(&server, "revocations"), "+none");
    assert_says(
        &err,
        &[
            "lua:authid:alice holds a string, not the set of an authid's cookies",
            "nothing was changed",
            "logout_authid",
        ],
    );

    mend(&server, "authid:alice");
    assert!(store.delete(&c.value).unwrap());
    assert_eq!(feed_len(&server), 1);
}

#[test]
fn logout_authid_with_a_damaged_feed_writes_nothing() {
    let Some((server, store)) = start() else {
        return;
    };
    let (a, b) = (logged_in(&store), logged_in(&store));
    overwrite_with_string(&server, "revocations");
    let err = refused(store.logout_authid("alice"));
    assert!(store.exists(&a.value).unwrap() && store.exists(&b.value).unwrap());
    assert_eq!(int(&server.command(&["SCARD", &key("authid:alice")])), 2);
    assert_says(
        &err,
        &["lua:revocations holds a string", "nothing was changed"],
    );

    mend(&server, "revocations");
    assert_eq!(store.logout_authid("alice").unwrap(), 2);
    assert!(!store.exists(&a.value).unwrap() && !store.exists(&b.value).unwrap());
    assert_eq!(feed_len(&server), 2);
}

/// The set is read (SMEMBERS) before the script: the error names it too.
#[test]
fn logout_authid_with_a_damaged_authid_set_writes_nothing() {
    let Some((server, store)) = start() else {
        return;
    };
    let c = logged_in(&store);
    overwrite_with_string(&server, "authid:alice");
    let err = refused(store.logout_authid("alice"));
    assert!(
        store.exists(&c.value).unwrap(),
        "the cookie must still be there"
    );
    assert_eq!(key_type(&server, "revocations"), "+none");
    assert_says(
        &err,
        &[
            "lua:authid:alice holds a string, not the set of an authid's cookies",
            "nothing was changed",
        ],
    );

    mend(&server, "authid:alice");
    assert_eq!(store.logout_authid("alice").unwrap(), 1);
    assert!(!store.exists(&c.value).unwrap());
    assert_eq!(feed_len(&server), 1);
}

#[test]
fn set_auth_with_a_damaged_authid_set_writes_nothing() {
    let Some((server, store)) = start() else {
        return;
    };
    let c = store.create("cbtid", 24, 3600).unwrap();
    overwrite_with_string(&server, "authid:alice");
    let err = refused(store.set_auth(&c.value, &alice(), &Default::default()));
    assert_eq!(
        store.get_auth(&c.value).unwrap(),
        None,
        "the record must be unchanged"
    );
    assert_says(
        &err,
        &["lua:authid:alice holds a string", "nothing was changed"],
    );

    mend(&server, "authid:alice");
    assert_eq!(
        store
            .set_auth(&c.value, &alice(), &Default::default())
            .unwrap(),
        AuthUpdate::Written
    );
    assert_eq!(store.get_auth(&c.value).unwrap(), Some(alice()));
    assert_eq!(int(&server.command(&["SCARD", &key("authid:alice")])), 1);
}

#[test]
fn clear_auth_with_a_damaged_authid_set_writes_nothing() {
    let Some((server, store)) = start() else {
        return;
    };
    let c = logged_in(&store);
    overwrite_with_string(&server, "authid:alice");
    let err = refused(store.clear_auth(&c.value));
    assert_eq!(store.get_auth(&c.value).unwrap(), Some(alice()));
    assert_says(
        &err,
        &["lua:authid:alice holds a string", "nothing was changed"],
    );

    mend(&server, "authid:alice");
    assert_eq!(store.clear_auth(&c.value).unwrap(), AuthUpdate::Written);
    assert_eq!(store.get_auth(&c.value).unwrap(), None);
}

#[test]
fn restore_with_a_damaged_authid_set_writes_nothing() {
    let Some((server, store)) = start() else {
        return;
    };
    let c = logged_in(&store);
    let mut export = Vec::new();
    cookiestore::maintenance::export(&store, &mut export, Default::default(), &mut |_| {}).unwrap();
    assert!(store.delete(&c.value).unwrap());
    overwrite_with_string(&server, "authid:alice");
    let err = refused(cookiestore::maintenance::restore(
        &store,
        &mut &export[..],
        true,
        &mut |_| {},
    ));
    assert!(
        !store.exists(&c.value).unwrap(),
        "no cookie may be restored"
    );
    assert_says(
        &err,
        &["lua:authid:alice holds a string", "nothing was changed"],
    );

    mend(&server, "authid:alice");
    let summary =
        cookiestore::maintenance::restore(&store, &mut &export[..], true, &mut |_| {}).unwrap();
    assert_eq!(summary.restored, 1);
    assert_eq!(store.get_auth(&c.value).unwrap(), Some(alice()));
    assert_eq!(int(&server.command(&["SCARD", &key("authid:alice")])), 1);
}

#[test]
fn an_import_mark_of_another_type_is_refused() {
    let Some((server, store)) = start() else {
        return;
    };
    let digest = "ab".repeat(32);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let expires = now.as_nanos() as u64 + 3600 * 1_000_000_000;
    let line = format!("{{\"imported_sha256\":\"{digest}\",\"expires\":{expires}}}\n");
    let mark = format!("imported:{digest}");
    // A hash without an expiry: the old script took it for a mark that never expires.
    assert_eq!(int(&server.command(&["HSET", &key(&mark), "f", "v"])), 1);
    let err = refused(cookiestore::maintenance::restore(
        &store,
        &mut line.as_bytes(),
        true,
        &mut |_| {},
    ));
    assert_eq!(key_type(&server, &mark), "+hash");
    assert_says(
        &err,
        &["holds a hash, not an import mark", "nothing was changed"],
    );

    mend(&server, &mark);
    let summary =
        cookiestore::maintenance::restore(&store, &mut line.as_bytes(), true, &mut |_| {}).unwrap();
    assert_eq!(summary.import_marks, 1);
    assert_eq!(key_type(&server, &mark), "+string");
}

#[test]
fn purge_and_feed_reads_name_a_damaged_feed() {
    let Some((server, store)) = start() else {
        return;
    };
    let c = store.create("cbtid", 24, 3600).unwrap();
    assert!(store.delete(&c.value).unwrap());
    let mut sub = Subscriber::new(&store).unwrap();
    overwrite_with_string(&server, "revocations");
    let words = ["lua:revocations holds a string", "nothing was changed"];
    for err in [
        refused(store.purge_expired()),
        refused(store.revocations_since(0)),
        refused(sub.poll()),
    ] {
        assert_eq!(key_type(&server, "revocations"), "+string");
        assert_says(&err, &words);
    }

    mend(&server, "revocations");
    store.purge_expired().unwrap();
    let found = sub.poll().unwrap();
    assert!(found.missed, "the deleted feed is reported: {found:?}");
}

/// A Redis user that may not run XADD: a logout is refused before the cookie is deleted.
/// (Redis checks the user's access to the keys a script declares before running it, but
/// not the commands the script runs.)
#[test]
fn logout_by_a_user_who_may_not_append_to_the_feed_writes_nothing() {
    if !need_redis() {
        return;
    }
    let server = RedisServer::start();
    let rules = [
        "ACL", "SETUSER", "limited", "on", ">secret", "+@all", "-xadd", "~*", "&*",
    ];
    assert_eq!(server.command(&rules), "+OK");
    let url = format!(
        "redis://limited:secret@127.0.0.1:{}/?prefix={PREFIX}",
        server.port
    );
    let store = CookieStore::open(&url, StoreOptions::default().timeout_ms(5000)).unwrap();
    let c = logged_in(&store);
    let err = refused(store.delete(&c.value));
    assert!(
        store.exists(&c.value).unwrap(),
        "the cookie must still be there"
    );
    assert_eq!(store.get_auth(&c.value).unwrap(), Some(alice()));
    assert_eq!(key_type(&server, "revocations"), "+none");
    assert_says(
        &err,
        &["may not run XADD on lua:revocations", "nothing was changed"],
    );

    assert_eq!(
        server.command(&["ACL", "SETUSER", "limited", "+xadd"]),
        "+OK"
    );
    assert!(store.delete(&c.value).unwrap());
    assert_eq!(feed_len(&server), 1);
}

/// A restore's write is one transaction (`src/redis/bulk.rs`): a write the Redis user may
/// not make (here to the authid sets, readable but not writable) is refused while queued,
/// and Redis discards the whole transaction: alice's cookie is not written, nor her set. A
/// batch is written in two shares at once (`maintenance/json_lines.rs`), so the other
/// cookie, if its share is not alice's, may go in: the error then counts it, and only it.
#[test]
fn restore_by_a_user_who_may_not_write_authid_sets_writes_nothing_of_the_refused_write() {
    let Some((server, admin)) = start() else {
        return;
    };
    let c = logged_in(&admin);
    let other = admin.create("cbtid", 24, 3600).unwrap();
    let mut export = Vec::new();
    cookiestore::maintenance::export(&admin, &mut export, Default::default(), &mut |_| {}).unwrap();
    assert_eq!(admin.clear().unwrap(), 2);
    let rules = [
        "ACL",
        "SETUSER",
        "limited",
        "on",
        ">secret",
        "+@all",
        "&*",
        "resetkeys",
        "~lua:[b-z]*",
        "%R~lua:authid:*",
    ];
    assert_eq!(server.command(&rules), "+OK");
    let url = format!(
        "redis://limited:secret@127.0.0.1:{}/?prefix={PREFIX}",
        server.port
    );
    let store = CookieStore::open(&url, StoreOptions::default().timeout_ms(5000)).unwrap();

    let err = refused(cookiestore::maintenance::restore(
        &store,
        &mut &export[..],
        false,
        &mut |_| {},
    ));
    assert!(
        !store.exists(&c.value).unwrap(),
        "the refused write's cookie may not be restored"
    );
    assert_eq!(key_type(&server, "authid:alice"), "+none");
    assert_says(&err, &["NOPERM", "nothing was changed"]);
    let text = err.to_string();
    let went_in = store.count().unwrap();
    if store.exists(&other.value).unwrap() {
        assert_eq!(went_in, 1);
        assert!(
            text.contains("; 1 cookie(s) went in before it stopped"),
            "the error must count the other share's cookie: {text}"
        );
    } else {
        assert_eq!(went_in, 0);
        assert!(
            !text.contains("went in"),
            "nothing went in, and the error says nothing did: {text}"
        );
    }

    assert_eq!(server.command(&["ACL", "SETUSER", "limited", "~*"]), "+OK");
    let summary =
        cookiestore::maintenance::restore(&store, &mut &export[..], true, &mut |_| {}).unwrap();
    assert_eq!(
        (summary.restored, summary.unchanged),
        (2 - went_in, went_in),
        "{summary:?}"
    );
    assert_eq!(store.get_auth(&c.value).unwrap(), Some(alice()));
    assert_eq!(int(&server.command(&["SCARD", &key("authid:alice")])), 1);
}

/// A clear is one script per cookie: one refused ends it, and the error says how many were
/// deleted before it (each with its feed entry), which is what the store shows.
#[test]
fn clear_stopped_by_a_damaged_authid_set_says_what_it_deleted() {
    let Some((server, store)) = start() else {
        return;
    };
    for _ in 0..20 {
        store.create("cbtid", 24, 3600).unwrap();
    }
    let c = logged_in(&store);
    overwrite_with_string(&server, "authid:alice");
    let err = refused(store.clear());
    let left = store.count().unwrap();
    assert!(left >= 1 && store.exists(&c.value).unwrap(), "{left}");
    let deleted = 21 - left;
    assert_eq!(feed_len(&server), deleted as i64);
    assert_says(
        &err,
        &["lua:authid:alice holds a string", "nothing was changed"],
    );
    if deleted > 0 {
        assert_says(
            &err,
            &[&format!("{deleted} cookie(s) were deleted before this")],
        );
    } else {
        assert!(!err.to_string().contains("were deleted before"), "{err}");
    }

    mend(&server, "authid:alice");
    assert_eq!(store.clear().unwrap(), left);
    assert_eq!(store.count().unwrap(), 0);
    assert_eq!(feed_len(&server), 21);
}
