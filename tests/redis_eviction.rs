//! A Redis that may evict keys: refused at open unless the store opts in
//! (`allow_eviction`), and `logout_authid` leaves no cookie of the user when the user's
//! authid set is gone (evicted by a real `maxmemory` + `allkeys-lru` Redis, or deleted).
//! Each test runs its own redis-server on a free loopback port (skipped with a message
//! when redis-server is missing, except under CI).

// A failed unwrap here (helpers included) is the test, bench or example failing.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::redis_server::{RedisServer, need_redis};
use cookiestore::{Auth, AuthContext, CookieStore, Error, StoreOptions};

const PREFIX: &str = "ev:";

fn alice() -> Auth {
    Auth::new("alice", "user", "wampcra", "realm1")
}

fn open(server: &RedisServer, options: StoreOptions) -> Result<CookieStore, Error> {
    CookieStore::open(server.url(PREFIX), options)
}

/// Creates `n` cookies authenticated as `auth`; returns their values.
fn logins(store: &CookieStore, auth: &Auth, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            let c = store.create("cbtid", 24, 3600).unwrap();
            store
                .set_auth(&c.value, auth, &AuthContext::default())
                .unwrap();
            c.value
        })
        .collect()
}

fn set_key() -> String {
    format!("{PREFIX}authid:alice")
}

fn assert_refused(result: Result<CookieStore, Error>, policy: &str) {
    match result {
        Err(e @ Error::RedisSetting { .. }) => {
            let text = e.to_string();
            for needle in ["maxmemory-policy", policy, "noeviction", "allow_eviction"] {
                assert!(text.contains(needle), "{needle:?} not in: {text}");
            }
        }
        Err(other) => panic!("refused for another reason: {other}"),
        Ok(_) => panic!("a Redis with maxmemory-policy {policy} was accepted"),
    }
}

#[test]
fn an_evicting_policy_is_refused_unless_allowed() {
    if !need_redis() {
        return;
    }
    let server = RedisServer::start();
    assert!(open(&server, StoreOptions::default()).is_ok(), "noeviction");
    for policy in [
        "allkeys-lru",
        "allkeys-lfu",
        "allkeys-random",
        "volatile-lru",
        "volatile-lfu",
        "volatile-random",
        "volatile-ttl",
    ] {
        let set = server.command(&["CONFIG", "SET", "maxmemory-policy", policy]);
        assert_eq!(set, "+OK");
        assert_refused(open(&server, StoreOptions::default()), policy);
        // Opted in, by option or by URL; a read-only handle is not checked.
        let store = open(&server, StoreOptions::default().allow_eviction(true)).unwrap();
        logins(&store, &alice(), 1);
        let url = format!("{}&allow_eviction=true", server.url(PREFIX));
        CookieStore::open(&url, StoreOptions::default()).unwrap();
        open(&server, StoreOptions::default().readonly(true)).unwrap();
    }
    let section = cookiestore::CookieSection::from_value(&serde_json::json!({
        "store": {"type": "cookiestore", "url": server.url(PREFIX), "allow_eviction": true}
    }))
    .unwrap();
    assert!(section.store.unwrap().options.redis.allow_eviction);
}

#[test]
fn the_policy_is_read_from_info_where_config_is_renamed() {
    if !need_redis() {
        return;
    }
    let evicting = RedisServer::start_config(
        false,
        &[
            "--rename-command",
            "CONFIG",
            "",
            "--maxmemory-policy",
            "allkeys-lru",
        ],
    );
    assert!(
        evicting
            .command(&["CONFIG", "GET", "maxmemory-policy"])
            .starts_with("-ERR"),
        "CONFIG is renamed away"
    );
    assert_refused(open(&evicting, StoreOptions::default()), "allkeys-lru");
    let fine = RedisServer::start_config(false, &["--rename-command", "CONFIG", ""]);
    open(&fine, StoreOptions::default()).unwrap();
}

#[test]
fn logout_authid_finds_the_cookies_of_a_deleted_set() {
    if !need_redis() {
        return;
    }
    let server = RedisServer::start();
    let store = open(&server, StoreOptions::default()).unwrap();
    let values = logins(&store, &alice(), 3);
    let bob = logins(&store, &Auth::new("bob", "user", "wampcra", "realm1"), 2);
    assert_eq!(server.command(&["DEL", &set_key()]), ":1");
    assert_eq!(store.logout_authid("alice").unwrap(), 3);
    for v in &values {
        assert!(!store.exists(v).unwrap(), "alice's cookie {v} survived");
    }
    for v in &bob {
        assert!(
            store.get_auth(v).unwrap().is_some(),
            "bob keeps his cookies"
        );
    }
    let feed = store.revocations_since(0).unwrap();
    assert_eq!(feed.entries.len(), 3);
    assert_eq!(store.logout_authid("alice").unwrap(), 0);
}

#[test]
fn a_set_made_again_is_not_trusted_when_eviction_is_allowed() {
    if !need_redis() {
        return;
    }
    let server = RedisServer::start();
    let store = open(&server, StoreOptions::default().allow_eviction(true)).unwrap();
    let mut values = logins(&store, &alice(), 3);
    assert_eq!(server.command(&["DEL", &set_key()]), ":1");
    // A later login makes the set again, holding only the new cookie.
    values.extend(logins(&store, &alice(), 1));
    assert_eq!(server.command(&["SCARD", &set_key()]), ":1");
    assert_eq!(store.logout_authid("alice").unwrap(), 4);
    for v in &values {
        assert!(!store.exists(v).unwrap(), "alice's cookie {v} survived");
    }
}

#[test]
fn evicted_by_allkeys_lru_logout_authid_leaves_no_cookie() {
    if !need_redis() {
        return;
    }
    let server = RedisServer::start_config(
        false,
        &[
            "--maxmemory",
            "4mb",
            "--maxmemory-policy",
            "allkeys-lru",
            "--maxmemory-samples",
            "10",
        ],
    );
    let store = open(&server, StoreOptions::default().allow_eviction(true)).unwrap();
    let values = logins(&store, &alice(), 8);
    let mut con = redis::Client::open(server.url(""))
        .unwrap()
        .get_connection_with_timeout(Duration::from_secs(5))
        .unwrap();
    // Redis's LRU clock counts seconds. Alice's set is made the oldest key, filler that
    // nearly fills maxmemory the next oldest; her cookies are used (looked up) all along,
    // and more filler is added until Redis evicts the set.
    let used = |con: &mut redis::Connection| -> u64 {
        let info: String = redis::cmd("INFO").arg("memory").query(con).unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix("used_memory:"))
            .and_then(|n| n.trim().parse().ok())
            .unwrap()
    };
    let filler = vec![b'x'; 16 * 1024];
    let mut fillers = 0;
    let mut add_filler = |con: &mut redis::Connection| {
        let _: () = redis::cmd("SET")
            .arg(format!("filler:{fillers}"))
            .arg(&filler)
            .query(con)
            .unwrap();
        fillers += 1;
    };
    std::thread::sleep(Duration::from_millis(1100));
    for _ in 0..256 {
        if used(&mut con) >= 3_600_000 {
            break;
        }
        add_filler(&mut con);
    }
    std::thread::sleep(Duration::from_millis(1100));
    let mut evicted = false;
    for _ in 0..4096 {
        for v in &values {
            let _ = store.lookup(v).unwrap();
        }
        add_filler(&mut con);
        let exists: i64 = redis::cmd("EXISTS").arg(set_key()).query(&mut con).unwrap();
        if exists == 0 {
            evicted = true;
            break;
        }
    }
    assert!(evicted, "Redis did not evict alice's set");
    let kept: Vec<&String> = values
        .iter()
        .filter(|v| store.get_auth(v).unwrap().is_some())
        .collect();
    assert!(
        !kept.is_empty(),
        "every cookie of alice was evicted with her set: no split to test"
    );
    assert_eq!(store.logout_authid("alice").unwrap(), kept.len() as u64);
    for v in &values {
        assert!(
            store.get_auth(v).unwrap().is_none(),
            "alice's cookie {v} is still authenticated"
        );
    }
}
