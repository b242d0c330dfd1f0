//! Bulk maintenance on Redis (restore, import, logouts) in batches (`src/redis/migrate.rs`),
//! on a real redis-server: the result cookie by cookie against LMDB's for the same inputs,
//! and what a Redis killed in the middle of a restore or an import leaves and says.
//! Skipped with a message when redis-server is missing, except under CI.

// A failed unwrap here (helpers included) is the test, bench or example failing.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;

use common::redis_server::{RedisServer, need_redis};
use cookiestore::maintenance::{
    ExportOptions, ImportOptions, RestoreSummary, StoreImportSummary, export, import_records,
    restore,
};
use cookiestore::{Cookie, CookieStore, StoreOptions};
use uuid::Uuid;

const NS: u64 = 1_000_000_000;
/// Cookies in the fixtures: several of Redis's write batches (500) and of the
/// maintenance layer's (2,000).
const N: u64 = 3_000;

fn value(i: u64) -> String {
    format!("bulk{i:020}")
}

/// Cookie `i`, created an hour before `now`, living a week; every third anonymous, the
/// others of one of seven users.
fn cookie(i: u64, now: u64) -> Cookie {
    let authenticated = !i.is_multiple_of(3);
    Cookie {
        oid: Uuid::from_u128(0x5eed_0000_0000_0000_0000_0000_0000_0000 + u128::from(i) + 1),
        created: now - 3_600 * NS,
        max_age: 7 * 86_400,
        name: Some("cbtid".into()),
        value: value(i),
        authid: authenticated.then(|| format!("user{}", i % 7)),
        authrole: authenticated.then(|| "frontend".to_string()),
        authmethod: authenticated.then(|| "wampcra".to_string()),
        authrealm: authenticated.then(|| "realm1".to_string()),
        authenticated: if authenticated { now - 3_000 * NS } else { 0 },
        ..Cookie::default()
    }
}

fn sha256_hex(value: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(value.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An export of the `N` cookies, with what a restore must sort out: a cookie whose value
/// another one already took (in the same write batch, and in a later one), an oid given
/// twice, a bad line; then import marks: of every fourth cookie, and of 40 values not in
/// the file (cookies logged out before the export).
fn fixture(now: u64) -> String {
    let mut text = String::new();
    let mut line = |c: &Cookie| {
        text.push_str(&serde_json::to_string(c).unwrap());
        text.push('\n');
    };
    for i in 0..N {
        line(&cookie(i, now));
        if i == 20 || i == 2_600 {
            // Another cookie with the value of cookie 10: a conflict.
            line(&Cookie {
                oid: Uuid::from_u128(0xdead_0000 + u128::from(i)),
                ..cookie(10, now)
            });
        }
        if i == 1_000 {
            line(&Cookie {
                value: "again".into(),
                ..cookie(5, now)
            }); // oid of cookie 5 again
        }
    }
    text.push_str("{not json\n");
    let expires = now - 3_600 * NS + 7 * 86_400 * NS;
    for i in (0..N).step_by(4) {
        text.push_str(&format!(
            "{{\"imported_sha256\":\"{}\",\"expires\":{expires}}}\n",
            sha256_hex(&value(i))
        ));
    }
    for i in 0..40 {
        text.push_str(&format!(
            "{{\"imported_sha256\":\"{}\",\"expires\":{expires}}}\n",
            sha256_hex(&format!("gone{i:020}"))
        ));
    }
    text
}

fn do_restore(store: &CookieStore, text: &str, merge: bool) -> cookiestore::Result<RestoreSummary> {
    restore(store, &mut text.as_bytes(), merge, &mut |_| {})
}

fn do_import(store: &CookieStore, now: u64) -> cookiestore::Result<StoreImportSummary> {
    let mut records = (0..N).map(|i| Ok(cookie(i, now)));
    import_records(
        store,
        &mut records,
        now,
        &ImportOptions::default(),
        &mut |_| {},
    )
}

/// The export's import-mark lines, as a set.
fn mark_lines(store: &CookieStore) -> BTreeSet<String> {
    let mut out = Vec::new();
    export(store, &mut out, ExportOptions::default(), &mut |_| {}).unwrap();
    String::from_utf8(out)
        .unwrap()
        .lines()
        .filter(|l| l.contains("imported_sha256"))
        .map(str::to_string)
        .collect()
}

/// The feed's entries as (kind, value), sorted.
fn feed(store: &CookieStore) -> Vec<(String, String)> {
    let mut entries: Vec<(String, String)> = store
        .revocations_since(0)
        .unwrap()
        .entries
        .into_iter()
        .map(|r| (format!("{:?}", r.kind), r.value))
        .collect();
    entries.sort();
    entries
}

/// An empty LMDB store (in the returned directory) and an empty Redis store (prefix
/// `bulk:`) on a new redis-server.
fn lmdb_and_redis() -> (tempfile::TempDir, RedisServer, CookieStore, CookieStore) {
    let dir = tempfile::tempdir().unwrap();
    let server = RedisServer::start();
    let lmdb = CookieStore::open(dir.path().join("store"), StoreOptions::default()).unwrap();
    let redis = CookieStore::open(server.url("bulk:"), StoreOptions::default()).unwrap();
    (dir, server, lmdb, redis)
}

#[test]
fn a_restore_logouts_and_a_re_run_import_leave_redis_as_lmdb_cookie_by_cookie() {
    if !need_redis() {
        return;
    }
    let (_dir, server, lmdb, redis) = lmdb_and_redis();
    let now = lmdb.now_ns();
    let text = fixture(now);

    let on_lmdb = do_restore(&lmdb, &text, false).unwrap();
    let on_redis = do_restore(&redis, &text, false).unwrap();
    assert_eq!(on_redis, on_lmdb);
    assert_eq!(
        (
            on_lmdb.restored,
            on_lmdb.conflicts.len(),
            on_lmdb.bad_lines.len()
        ),
        (N, 2, 2),
        "{on_lmdb:?}"
    );
    assert_eq!(on_lmdb.import_marks, N.div_ceil(4) + 40);
    // Each authid set: its cookies, expiring with the last of them (as a put per cookie).
    let client = redis::Client::open(server.url("")).unwrap();
    let mut con = client.get_connection().unwrap();
    for user in 0..7 {
        let set = format!("bulk:authid:user{user}");
        let members: BTreeSet<String> = redis::cmd("SMEMBERS").arg(&set).query(&mut con).unwrap();
        let want: BTreeSet<String> = (0..N)
            .filter(|i| !i.is_multiple_of(3) && i % 7 == user)
            .map(value)
            .collect();
        assert_eq!(members, want, "{set}");
        let mut last = 0i64;
        for v in &want {
            let exp: i64 = redis::cmd("PEXPIRETIME")
                .arg(format!("bulk:cookie:{v}"))
                .query(&mut con)
                .unwrap();
            last = last.max(exp);
        }
        let exp: i64 = redis::cmd("PEXPIRETIME").arg(&set).query(&mut con).unwrap();
        assert_eq!(exp, last, "{set}");
    }

    // Logouts: one by one, and a user's cookies at once.
    for store in [&lmdb, &redis] {
        for i in (0..N).step_by(11) {
            assert!(store.delete(&value(i)).unwrap(), "cookie {i}");
        }
        assert!(store.logout_authid("user3").unwrap() > 200);
    }
    // A re-run import of every cookie: those logged out and marked (every fourth) stay
    // out, the others come back (and are marked now).
    let again_lmdb = do_import(&lmdb, now).unwrap();
    let again_redis = do_import(&redis, now).unwrap();
    assert_eq!(again_redis, again_lmdb);
    assert!(again_lmdb.skipped_logged_out > 100, "{again_lmdb:?}");
    assert!(again_lmdb.imported > 100, "{again_lmdb:?}");
    // And once more: nothing changes.
    let third = do_import(&redis, now).unwrap();
    assert_eq!(third.imported + third.updated, 0, "{third:?}");
    assert_eq!(third, do_import(&lmdb, now).unwrap());

    assert_eq!(redis.count().unwrap(), lmdb.count().unwrap());
    for i in 0..N {
        let v = value(i);
        assert_eq!(redis.get(&v).unwrap(), lmdb.get(&v).unwrap(), "cookie {i}");
    }
    assert_eq!(redis.get("again").unwrap(), None);
    assert_eq!(mark_lines(&redis), mark_lines(&lmdb));
    assert_eq!(mark_lines(&redis).len() as u64, N + 40);
    // The feed: the same logouts on both (LMDB's also tells its caches of replaced
    // records).
    let logouts = |store: &CookieStore| -> Vec<(String, String)> {
        feed(store)
            .into_iter()
            .filter(|(kind, _)| ["Logout", "Authid", "Maintenance"].contains(&kind.as_str()))
            .collect()
    };
    assert_eq!(logouts(&redis), logouts(&lmdb));
}

/// Cookie keys without their import mark, after a restart (from the AOF).
fn unmarked(server: &RedisServer) -> (usize, Vec<String>) {
    let client = redis::Client::open(server.url("")).unwrap();
    let mut con = client.get_connection().unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("bulk:cookie:*")
        .query(&mut con)
        .unwrap();
    let mut missing = Vec::new();
    for key in &keys {
        let value = key.strip_prefix("bulk:cookie:").unwrap();
        let mark = format!("bulk:imported:{}", sha256_hex(value));
        let exists: bool = redis::cmd("EXISTS").arg(&mark).query(&mut con).unwrap();
        if !exists {
            missing.push(value.to_string());
        }
    }
    (keys.len(), missing)
}

#[test]
fn an_import_whose_redis_is_killed_midway_says_what_went_in_and_leaves_no_cookie_unmarked() {
    if !need_redis() {
        return;
    }
    let mut server = RedisServer::start_with(true);
    let options = StoreOptions::default().timeout_ms(2_000);
    let store = CookieStore::open(server.url("bulk:"), options.clone()).unwrap();
    let now = store.now_ns();
    let mut records = (0..N).map(|i| Ok(cookie(i, now)));
    let mut calls = 0;
    let err = import_records(
        &store,
        &mut records,
        now,
        &ImportOptions::default(),
        &mut |_| {
            calls += 1;
            if calls == 1 {
                server.kill(); // after the first 2,000 records went in
            }
        },
    )
    .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("2000 cookie(s) went in before")
            && message.contains("run the same import again")
            && !message.contains("  "),
        "{message}"
    );
    server.restart();
    let (cookies, missing) = unmarked(&server);
    assert_eq!(cookies, 2_000, "whole batches, as the error says");
    assert!(
        missing.is_empty(),
        "cookies without their mark: {missing:?}"
    );

    // Run again, it brings the rest.
    let store = CookieStore::open(server.url("bulk:"), options).unwrap();
    let again = do_import(&store, now).unwrap();
    assert_eq!(
        (again.imported, again.unchanged),
        (N - 2_000, 2_000),
        "{again:?}"
    );
    let (cookies, missing) = unmarked(&server);
    assert_eq!((cookies as u64, missing.len()), (N, 0));
}

#[test]
fn a_restore_whose_redis_is_killed_midway_says_what_went_in_and_a_merge_finishes_it() {
    if !need_redis() {
        return;
    }
    let mut server = RedisServer::start_with(true);
    let options = StoreOptions::default().timeout_ms(2_000);
    let store = CookieStore::open(server.url("bulk:"), options.clone()).unwrap();
    let now = store.now_ns();
    let text = fixture(now);
    let mut calls = 0;
    let err = restore(&store, &mut text.as_bytes(), false, &mut |_| {
        calls += 1;
        if calls == 1 {
            server.kill(); // after the first 2,000 lines went in
        }
    })
    .unwrap_err();
    let message = err.to_string();
    // The first write batch: 2,000 records (a bad line is no record), one a conflict.
    assert!(
        message.contains("1999 cookie(s) went in before") && message.contains("--merge"),
        "{message}"
    );
    server.restart();
    let store = CookieStore::open(server.url("bulk:"), options).unwrap();
    assert_eq!(store.count().unwrap(), 1_999);
    let rest = do_restore(&store, &text, true).unwrap();
    assert_eq!(
        (rest.restored, rest.unchanged),
        (N - 1_999, 1_999),
        "{rest:?}"
    );

    let dir = tempfile::tempdir().unwrap();
    let lmdb = CookieStore::open(dir.path().join("store"), StoreOptions::default()).unwrap();
    do_restore(&lmdb, &text, false).unwrap();
    for i in 0..N {
        let v = value(i);
        assert_eq!(store.get(&v).unwrap(), lmdb.get(&v).unwrap(), "cookie {i}");
    }
    assert_eq!(mark_lines(&store), mark_lines(&lmdb));
}

#[test]
fn a_damaged_key_in_a_batch_refuses_the_whole_batch() {
    if !need_redis() {
        return;
    }
    let server = RedisServer::start();
    let store = CookieStore::open(server.url("bulk:"), StoreOptions::default()).unwrap();
    let now = store.now_ns();
    // Another program wrote a string where user5's set of cookies belongs; user5's first
    // cookie is the sixth of the file.
    assert_eq!(server.command(&["SET", "bulk:authid:user5", "x"]), "+OK");
    let text = fixture(now);
    let err = do_restore(&store, &text, false).unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("holds a string, not the set") && message.contains("nothing was changed"),
        "{message}"
    );
    assert_eq!(
        store.count().unwrap(),
        0,
        "the batch went in whole or not at all"
    );
    server.command(&["DEL", "bulk:authid:user5"]);
    let summary = do_restore(&store, &text, false).unwrap();
    assert_eq!(summary.restored, N);
}

/// A cookie key of another type (another program's data) is never written over: the
/// batch writes it with `SET NX`, which leaves it, and the restore stops saying what to
/// delete, without naming the key (it holds a cookie value). Once it is deleted, the
/// restore goes through.
#[test]
fn a_cookie_key_of_another_type_stops_the_restore_saying_what_to_delete() {
    if !need_redis() {
        return;
    }
    let server = RedisServer::start();
    let store = CookieStore::open(server.url("bulk:"), StoreOptions::default()).unwrap();
    let now = store.now_ns();
    let key = format!("bulk:cookie:{}", value(5));
    assert_eq!(server.command(&["RPUSH", &key, "x"]), ":1");
    let text = fixture(now);
    let message = do_restore(&store, &text, true).unwrap_err().to_string();
    assert!(
        message.contains("holds a list, not a cookie record") && message.contains("(DEL)"),
        "{message}"
    );
    assert!(!message.contains(&value(5)), "{message}");
    assert_eq!(server.command(&["TYPE", &key]), "+list");
    server.command(&["DEL", &key]);
    let summary = do_restore(&store, &text, true).unwrap();
    assert_eq!(summary.restored + summary.unchanged, N, "{summary:?}");
    assert_eq!(store.count().unwrap(), N);
}

/// The expiry of `key` (ms since the epoch; -1 none, -2 no key).
fn pexpiretime(server: &RedisServer, key: &str) -> i64 {
    let reply = server.command(&["PEXPIRETIME", key]);
    reply.trim_start_matches(':').parse().unwrap()
}

/// A restore moves an authid set's expiry to its last cookie's, never earlier: a set that
/// ends later keeps its expiry, one without an expiry or none at all gets the cookies'.
#[test]
fn a_restore_never_moves_an_authid_sets_expiry_earlier() {
    if !need_redis() {
        return;
    }
    let server = RedisServer::start();
    let store = CookieStore::open(server.url("bulk:"), StoreOptions::default()).unwrap();
    let now = store.now_ns();
    // alice: a login living 30 days; bob: a set another program left without an expiry.
    let long = store.create("cbtid", 24, 30 * 86_400).unwrap();
    let alice = cookiestore::Auth::new("alice", "user", "wampcra", "realm1");
    store
        .set_auth(&long.value, &alice, &Default::default())
        .unwrap();
    let alice_expiry = pexpiretime(&server, "bulk:authid:alice");
    assert!(alice_expiry > 0);
    assert_eq!(server.command(&["SADD", "bulk:authid:bob", "gone"]), ":1");
    let mut text = String::new();
    for (i, user) in (0..9).zip(["alice", "bob", "carol"].iter().cycle()) {
        let mut c = cookie(i, now);
        c.authid = Some(user.to_string());
        c.max_age = 7 * 86_400 + i; // the last of each user lives longest
        text.push_str(&serde_json::to_string(&c).unwrap());
        text.push('\n');
    }
    let summary = do_restore(&store, &text, true).unwrap();
    assert_eq!(summary.restored, 9);
    let last = |i: u64| {
        let mut c = cookie(i, now);
        c.max_age = 7 * 86_400 + i;
        c.expires_at().div_ceil(1_000_000) as i64 // as the store writes it (pxat_ms)
    };
    assert_eq!(pexpiretime(&server, "bulk:authid:alice"), alice_expiry);
    assert_eq!(pexpiretime(&server, "bulk:authid:bob"), last(7));
    assert_eq!(pexpiretime(&server, "bulk:authid:carol"), last(8));
    assert_eq!(server.command(&["SCARD", "bulk:authid:alice"]), ":4");
    assert_eq!(server.command(&["SCARD", "bulk:authid:carol"]), ":3");
}

/// The export lines of `cookies`.
fn lines(cookies: impl Iterator<Item = Cookie>) -> String {
    let mut text = String::new();
    for c in cookies {
        text.push_str(&serde_json::to_string(&c).unwrap());
        text.push('\n');
    }
    text
}

/// Cookies `0..n`, those for which `late(i)` holds of the user `late`.
fn late_cookies(now: u64, n: u64, late: impl Fn(u64) -> bool) -> impl Iterator<Item = Cookie> {
    (0..n).map(move |i| {
        let c = cookie(i, now);
        Cookie {
            authid: if late(i) {
                Some("late".into())
            } else {
                c.authid.clone()
            },
            ..c
        }
    })
}

/// `n` cookies, those from `late_from` on of the user `late`.
fn late_fixture(now: u64, n: u64, late_from: u64) -> String {
    lines(late_cookies(now, n, |i| i >= late_from))
}

#[test]
fn a_batch_refused_stops_the_restore_there_though_later_lines_were_read_ahead() {
    if !need_redis() {
        return;
    }
    let server = RedisServer::start();
    let store = CookieStore::open(server.url("bulk:"), StoreOptions::default()).unwrap();
    let now = store.now_ns();
    // The second batch of 2,000 lines holds the first cookie of `late`, whose set another
    // program damaged: that batch is refused while the third is already parsed.
    assert_eq!(server.command(&["SET", "bulk:authid:late", "x"]), "+OK");
    let text = late_fixture(now, 7_000, 2_100);
    let mut progress = Vec::new();
    let err = restore(&store, &mut text.as_bytes(), false, &mut |lines| {
        progress.push(lines)
    })
    .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("holds a string, not the set")
            && message.contains("2000 cookie(s) went in before"),
        "{message}"
    );
    assert_eq!(progress, [2_000], "only the first batch was reported done");
    assert_eq!(
        store.count().unwrap(),
        2_000,
        "the first batch went in; nothing of the ones after the refused one"
    );
    assert!(store.get(&value(1_999)).unwrap().is_some());
    assert!(store.get(&value(2_099)).unwrap().is_none());
    assert!(store.get(&value(4_000)).unwrap().is_none());
}

/// A reader that fails after `left` bytes.
struct FailsAfter<'a> {
    text: &'a [u8],
    left: usize,
}

impl std::io::Read for FailsAfter<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return Err(std::io::Error::other("the disk went away"));
        }
        let n = buf.len().min(self.left).min(self.text.len());
        buf[..n].copy_from_slice(&self.text[..n]);
        self.text = &self.text[n..];
        self.left -= n;
        Ok(n)
    }
}

#[test]
fn a_read_error_midway_leaves_the_batches_before_it_written_on_both_backends() {
    if !need_redis() {
        return;
    }
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let stores = [
        CookieStore::open(server.url("bulk:"), StoreOptions::default()).unwrap(),
        CookieStore::open(dir.path().join("store"), StoreOptions::default()).unwrap(),
    ];
    for store in &stores {
        let text = late_fixture(store.now_ns(), 5_000, 5_000);
        // The error comes in the line 4,501: the two batches before it were handed over.
        let at = text.lines().take(4_500).map(|l| l.len() + 1).sum::<usize>() + 10;
        let mut input = std::io::BufReader::new(FailsAfter {
            text: text.as_bytes(),
            left: at,
        });
        let err = restore(store, &mut input, false, &mut |_| {}).unwrap_err();
        assert!(err.to_string().contains("the disk went away"), "{err}");
        assert_eq!(store.count().unwrap(), 4_000, "{}", store.backend());
    }
}

/// Two restores of the same values under different oids (and users), at once, on one
/// Redis: each record written expecting its key absent is written with `SET NX`
/// (`src/redis/bulk.rs`), so one restore's record is never written over the other's. Each
/// value ends with one record, the one of the restore that did not list it as a conflict;
/// each restore accounts for every line; each record is in its user's set.
#[test]
fn two_restores_of_the_same_values_at_once_keep_one_record_per_value_and_count_every_line() {
    if !need_redis() {
        return;
    }
    let server = RedisServer::start();
    let client = redis::Client::open(server.url("")).unwrap();
    let mut con = client.get_connection().unwrap();
    for round in 0..3 {
        let prefix = format!("race{round}:");
        let a = CookieStore::open(server.url(&prefix), StoreOptions::default()).unwrap();
        let b = CookieStore::open(server.url(&prefix), StoreOptions::default()).unwrap();
        let now = a.now_ns();
        let theirs = |i: u64| Cookie {
            oid: Uuid::from_u128(0xb0b0_0000_0000_0000_0000_0000_0000_0000 + u128::from(i)),
            authid: Some(format!("other{}", i % 5)),
            ..cookie(i, now)
        };
        let line = |c: Cookie| serde_json::to_string(&c).unwrap() + "\n";
        // B half a write batch (500) ahead of A, so that, going at one pace, each batch of
        // one shares half its values with one of the other's, both read before either
        // writes.
        let text_a: String = (0..N).map(|i| line(cookie(i, now))).collect();
        let text_b: String = (0..N).map(|k| line(theirs((k + 250) % N))).collect();
        let (got_a, got_b) = std::thread::scope(|s| {
            let ta = s.spawn(|| do_restore(&a, &text_a, true).unwrap());
            let tb = s.spawn(|| do_restore(&b, &text_b, true).unwrap());
            (ta.join().unwrap(), tb.join().unwrap())
        });
        let conflicted = |got: &RestoreSummary| -> BTreeSet<String> {
            got.conflicts.iter().map(|(_, v, _)| v.clone()).collect()
        };
        let (lost_a, lost_b) = (conflicted(&got_a), conflicted(&got_b));
        for got in [&got_a, &got_b] {
            assert!(got.bad_lines.is_empty() && got.replaced == 0, "{got:?}");
            assert_eq!(
                got.restored + got.unchanged + got.conflicts.len() as u64,
                N,
                "{got:?}"
            );
        }
        assert_eq!(a.count().unwrap(), N);
        for i in 0..N {
            let v = value(i);
            let stored = a.get(&v).unwrap().unwrap();
            let (winner, lost_by_winner, lost_by_other) = if stored.oid == cookie(i, now).oid {
                ("a", &lost_a, &lost_b)
            } else {
                assert_eq!(stored.oid, theirs(i).oid, "cookie {i}");
                ("b", &lost_b, &lost_a)
            };
            assert!(
                !lost_by_winner.contains(&v) && lost_by_other.contains(&v),
                "round {round}, cookie {i}: kept {winner}'s record, conflicts a {:?} b {:?}",
                lost_a.contains(&v),
                lost_b.contains(&v)
            );
            if let Some(authid) = &stored.authid {
                let member: bool = redis::cmd("SISMEMBER")
                    .arg(format!("{prefix}authid:{authid}"))
                    .arg(&v)
                    .query(&mut con)
                    .unwrap();
                assert!(member, "round {round}, cookie {i} is not in {authid}'s set");
            }
        }
    }
}

/// A restore whose authid sets another client makes meanwhile (logins of the same users,
/// each living a minute) still leaves every set ending no earlier than its last cookie: a
/// set the restore found absent gets `PEXPIREAT NX` alone, and when a login made it between
/// the batch's reads and EXEC, the restore moves its expiry later in one more transaction.
#[test]
fn logins_making_the_sets_of_a_restore_meanwhile_never_leave_a_set_ending_before_its_cookie() {
    if !need_redis() {
        return;
    }
    let server = RedisServer::start();
    let store = CookieStore::open(server.url("sets:"), StoreOptions::default()).unwrap();
    let logins = CookieStore::open(server.url("sets:"), StoreOptions::default()).unwrap();
    let now = store.now_ns();
    let restored = |i: u64| Cookie {
        authid: Some(format!("racer{i}")),
        ..cookie(i, now)
    };
    let text: String = (0..N)
        .map(|i| serde_json::to_string(&restored(i)).unwrap() + "\n")
        .collect();
    let done = std::sync::atomic::AtomicBool::new(false);
    let (summary, logged_in) = std::thread::scope(|s| {
        let login = s.spawn(|| {
            let mut made = Vec::new();
            let mut i = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let c = logins.create("cbtid", 24, 60).unwrap();
                let auth = cookiestore::Auth::new(&format!("racer{i}"), "user", "wampcra", "r");
                logins
                    .set_auth(&c.value, &auth, &Default::default())
                    .unwrap();
                made.push((i, c.value));
                i = (i + 1) % N;
            }
            made
        });
        let summary = do_restore(&store, &text, true).unwrap();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        (summary, login.join().unwrap())
    });
    assert_eq!(summary.restored, N, "{summary:?}");
    assert!(!logged_in.is_empty());
    for i in 0..N {
        let set = format!("sets:authid:racer{i}");
        let last = restored(i).expires_at().div_ceil(1_000_000) as i64;
        let ends = pexpiretime(&server, &set);
        assert!(
            ends >= last,
            "{set} ends at {ends}, before its cookie {last}"
        );
        let member = server.command(&["SISMEMBER", &set, &value(i)]);
        assert_eq!(member, ":1", "cookie {i} is not in {set}");
    }
    for (i, v) in &logged_in {
        let set = format!("sets:authid:racer{i}");
        assert_eq!(
            server.command(&["SISMEMBER", &set, v]),
            ":1",
            "{v} not in {set}"
        );
    }
}

/// `pairs` values, each on two lines in a row under two oids: the first line's record is
/// the one to keep, the second a conflict.
fn pairs_fixture(now: u64, pairs: u64) -> String {
    lines((0..pairs).flat_map(|i| {
        let first = cookie(i, now);
        let second = Cookie {
            oid: Uuid::from_u128(0xbeef_0000 + u128::from(i)),
            authid: Some("second".into()),
            ..first.clone()
        };
        [first, second]
    }))
}

/// On Redis a restore writes each batch in two shares at once, on two connections
/// (`WRITE_LANES`, `src/redis/migrate.rs`). Every line of a value is in one share, so a
/// value's lines are still written in file order: with 1,500 values each given twice in a
/// row, the first line's record is kept and the second is the conflict, every time, as
/// on LMDB (which writes in file order on one thread).
#[test]
fn a_restore_written_in_two_shares_keeps_each_values_lines_in_file_order() {
    if !need_redis() {
        return;
    }
    let (_dir, server, lmdb, redis) = lmdb_and_redis();
    let now = lmdb.now_ns();
    let pairs = 1_500;
    let text = pairs_fixture(now, pairs);
    let on_lmdb = do_restore(&lmdb, &text, false).unwrap();
    let on_redis = do_restore(&redis, &text, false).unwrap();
    assert_eq!(
        (on_lmdb.restored, on_lmdb.conflicts.len() as u64),
        (pairs, pairs)
    );
    assert_eq!(
        on_redis, on_lmdb,
        "the same summary, conflicts in line order"
    );
    for i in 0..pairs {
        let kept = redis.get(&value(i)).unwrap().unwrap();
        assert_eq!(kept, cookie(i, now), "value {i}: the first line's record");
    }
    assert_eq!(server.command(&["EXISTS", "bulk:authid:second"]), ":0");
}

/// When one share of a batch is refused, the other share's lines may be written though
/// they come after the refused line in the file: the error counts every cookie that went
/// in, no batch after the refused one is written, and a merge of the same file finishes it.
#[test]
fn a_share_refused_leaves_the_other_shares_lines_written_and_counted() {
    if !need_redis() {
        return;
    }
    let server = RedisServer::start();
    let store = CookieStore::open(server.url("bulk:"), StoreOptions::default()).unwrap();
    let now = store.now_ns();
    // One cookie of the second batch (line 2,101) is of `late`, whose set another program
    // damaged: its share's write of 500 with it is refused, the rest of the batch is not.
    assert_eq!(server.command(&["SET", "bulk:authid:late", "x"]), "+OK");
    let text = lines(late_cookies(now, 7_000, |i| i == 2_100));
    let message = do_restore(&store, &text, false).unwrap_err().to_string();
    assert!(message.contains("holds a string, not the set"), "{message}");
    let went_in: u64 = message
        .split(" cookie(s) went in before")
        .next()
        .and_then(|head| head.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in: {message}"));
    let count = store.count().unwrap();
    assert_eq!(went_in, count, "the error counts what went in: {message}");
    assert!(
        count > 2_000 && count < 4_000,
        "the first batch and some of the second: {count}"
    );
    assert!(store.get(&value(2_100)).unwrap().is_none());
    let later = (4_000..7_000).filter(|i| store.get(&value(*i)).unwrap().is_some());
    assert_eq!(
        later.count(),
        0,
        "nothing of the batches after the refused one"
    );

    server.command(&["DEL", "bulk:authid:late"]);
    let summary = do_restore(&store, &text, true).unwrap();
    assert_eq!(summary.restored, 7_000 - count, "{summary:?}");
    assert_eq!(summary.unchanged, count, "{summary:?}");
    assert_eq!(server.command(&["SCARD", "bulk:authid:late"]), ":1");
}
