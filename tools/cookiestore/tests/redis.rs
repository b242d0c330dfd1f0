//! The commands on a Redis store: a deployment moves from LMDB to Redis and back with
//! `export` and `restore` (or `copy`), and every command that takes a PATH takes a Redis URL
//! (check and repair say that they apply to LMDB stores only). Each test runs its own
//! redis-server on a free loopback port (skipped with a message when it is missing, except
//! under CI).

// A failed unwrap here (helpers included) is the test, bench or example failing.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;

use common::redis_server::{self, RedisServer, need_redis};
use cookiestore::{Auth, AuthContext, CookieStore, StoreOptions};

const BIN: &str = env!("CARGO_BIN_EXE_cookiestore");

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .output()
        .expect("run cookiestore");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn ok(args: &[&str]) -> String {
    let (code, out, err) = run(args);
    assert_eq!(code, 0, "cookiestore {args:?}: {err}");
    out
}

#[test]
fn export_from_lmdb_restore_into_redis_and_back_gives_the_same_export() {
    if !need_redis() {
        return;
    }
    let server = RedisServer::start();
    let url = server.url("cli:");
    let work = tempfile::tempdir().unwrap();
    let lmdb = work.path().join("lmdb");
    {
        let store = CookieStore::open(&lmdb, StoreOptions::default()).unwrap();
        for i in 0..50 {
            let c = store.create("cbtid", 24, 86_400).unwrap();
            if i % 2 == 0 {
                let auth = Auth::new(&format!("user{}", i % 7), "user", "ticket", "realm1")
                    .with_authextra(serde_json::json!({"i": i, "tags": ["a", "b"]}));
                store
                    .set_auth(&c.value, &auth, &AuthContext::default().session(i))
                    .unwrap();
            }
        }
    }
    let first = work.path().join("first.jsonl");
    let second = work.path().join("second.jsonl");
    let third = work.path().join("third.jsonl");
    let p = |p: &std::path::Path| p.to_str().unwrap().to_string();
    ok(&["export", &p(&lmdb), "-o", &p(&first)]);
    let restored = ok(&["restore", &url, &p(&first)]);
    assert!(restored.contains("50 new"), "{restored}");
    ok(&["export", &url, "-o", &p(&second)]);
    let a = std::fs::read_to_string(&first).unwrap();
    assert_eq!(a.lines().count(), 50);
    assert_eq!(a, std::fs::read_to_string(&second).unwrap(), "LMDB → Redis");
    // A second restore into the now non-empty Redis store is refused without --merge.
    let (code, _, err) = run(&["restore", &url, &p(&first)]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("already holds 50"), "{err}");
    let merged = ok(&["restore", "--merge", &url, &p(&first)]);
    assert!(merged.contains("50 unchanged"), "{merged}");
    // And back: Redis → a new LMDB store.
    let back = work.path().join("back");
    ok(&["restore", &p(&back), &p(&second)]);
    ok(&["export", &p(&back), "-o", &p(&third)]);
    assert_eq!(a, std::fs::read_to_string(&third).unwrap(), "Redis → LMDB");
}

#[test]
fn the_commands_take_a_redis_url() {
    if !need_redis() {
        return;
    }
    let server = RedisServer::start();
    let url = server.url("");
    let store = CookieStore::open(&url, StoreOptions::default()).unwrap();
    let alice = store.create("cbtid", 24, 86_400).unwrap();
    store
        .set_auth(
            &alice.value,
            &Auth::new("alice", "user", "ticket", "realm1"),
            &AuthContext::default(),
        )
        .unwrap();
    let plain = store.create("cbtid", 24, 86_400).unwrap();

    let stats = ok(&["stats", &url]);
    assert!(stats.contains("(Redis)"), "{stats}");
    assert!(stats.contains("2 live"), "{stats}");
    // Redis's own figures, and none of LMDB's (no map, pages or tables on Redis).
    assert!(stats.contains("maxmemory-policy noeviction"), "{stats}");
    assert!(
        stats.contains("feed") && !stats.contains("pages"),
        "{stats}"
    );
    let json: serde_json::Value = serde_json::from_str(&ok(&["stats", "--json", &url])).unwrap();
    assert_eq!(json["live"], 2);
    assert_eq!(json["maxmemory_policy"], "noeviction");
    assert!(
        json.get("map_size").is_none() && json.get("tables").is_none(),
        "{json}"
    );
    assert_eq!(ok(&["dump", &url]).lines().count(), 2);
    assert_eq!(ok(&["dump", "--authenticated", &url]).lines().count(), 1);
    let got: serde_json::Value =
        serde_json::from_str(&ok(&["get", "--json", &url, &alice.value])).unwrap();
    assert_eq!(got["authid"], "alice");
    ok(&["delete", &url, &plain.value]);
    let (code, _, _) = run(&["get", &url, &plain.value]);
    assert_eq!(code, 1, "a deleted cookie is not found");
    ok(&["logout", &url, "--authid", "alice"]);
    assert!(!store.exists(&alice.value).unwrap());
    let feed = ok(&["revocations", &url]);
    assert_eq!(feed.lines().count(), 2, "{feed}");
    ok(&["purge", &url]);

    // A Crossbar cookies.dat (written now: Redis expires by the real clock) into Redis,
    // twice: the second changes nothing.
    let now = cookiestore::format_rfc3339_ns(store.now_ns());
    let line = |value: &str, status: &str, authid: &str| {
        serde_json::json!({
            "cbtid": value, "status": status, "created": now, "modified": null,
            "deleted": null, "max_age": 604800,
            "authid": if authid.is_empty() { serde_json::Value::Null } else { authid.into() },
            "authrole": null, "authmethod": null, "authrealm": null, "authextra": null,
        })
        .to_string()
    };
    let dat = tempfile::NamedTempFile::new().unwrap();
    let text = [
        line("VBphpKSNoAUxJQ1er3NlJ65U", "created", ""),
        line("MWaqHDq3eKwiMrKJA9xfrv/S", "created", "carol"),
        line("8Q0Fcfa+ofdXKAH85L+GsPxA", "created", ""),
        line("8Q0Fcfa+ofdXKAH85L+GsPxA", "deleted", ""),
    ]
    .join("\n");
    std::fs::write(dat.path(), text + "\n").unwrap();
    let dat = dat.path().to_str().unwrap();
    let first = ok(&["import", &url, dat]);
    assert!(first.contains("imported          2"), "{first}");
    let again = ok(&["import", &url, dat]);
    assert!(again.contains("unchanged         2"), "{again}");
    assert!(store.exists("MWaqHDq3eKwiMrKJA9xfrv/S").unwrap());

    // copy from Redis is a restore into a new directory (tests/locations.rs); check and
    // repair work on LMDB's files.
    let dest = tempfile::tempdir().unwrap();
    let dest = dest.path().join("copy");
    let copied = ok(&["copy", url.as_str(), dest.to_str().unwrap()]);
    assert!(copied.contains("2 cookies exported"), "{copied}");
    for args in [vec!["check", url.as_str()], vec!["repair", url.as_str()]] {
        let (code, _, err) = run(&args);
        assert_eq!(code, 2, "{args:?}");
        assert!(
            err.contains("applies to LMDB stores only"),
            "{args:?}: {err}"
        );
    }
}

/// A `cookies.dat` in `dir` whose cookies were created an hour ago (Redis expires by the real
/// clock) with a week's max_age: one authenticated as alice, one of 505 bytes authenticated
/// as bob, one plain.
fn cookies_dat(dir: &std::path::Path) -> (String, [String; 3]) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let created = cookiestore::format_rfc3339_ns(now - 3_600_000_000_000);
    let values = [
        "Ho2ymDYyrEX1aWT4+tLv/Ppb".to_string(),
        "0123456789abcdef+/ABCDEFGHIJ".repeat(20)[..505].to_string(),
        "qhlV0uXc3mBNNFMRLbVL8Ij5".to_string(),
    ];
    let mut text = String::new();
    for (value, authid) in values.iter().zip([Some("alice"), Some("bob"), None]) {
        let line = serde_json::json!({
            "cbtid": value, "status": "created", "created": created, "modified": null,
            "deleted": null, "max_age": 604800, "authid": authid, "authrole": "user",
            "authmethod": "wampcra", "authrealm": "realm1", "authextra": null,
        });
        text.push_str(&line.to_string());
        text.push('\n');
    }
    let path = dir.join("cookies.dat");
    std::fs::write(&path, text).unwrap();
    (path.to_str().unwrap().to_string(), values)
}

#[test]
fn a_re_run_import_into_redis_keeps_logged_out_cookies_out() {
    if !need_redis() {
        return;
    }
    let server = RedisServer::start();
    let url = server.url("cli:");
    let work = tempfile::tempdir().unwrap();
    let (dat, [short, long, plain]) = cookies_dat(work.path());
    let first = ok(&["import", &url, &dat]);
    assert!(first.contains("imported          3"), "{first}");
    ok(&["delete", &url, &short]);
    ok(&["logout", &url, "--authid", "bob"]);
    let (code, again, err) = run(&["import", &url, &dat]);
    assert_eq!(code, 0, "{err}");
    assert!(again.contains("imported          0"), "{again}");
    assert!(again.contains("unchanged         1"), "{again}");
    assert!(again.contains("logged out        2  skipped"), "{again}");
    assert!(err.contains("skipped 2 cookies logged out"), "{err}");
    for value in [&short, &long] {
        let (code, out, _) = run(&["get", &url, value]);
        assert_eq!(code, 1, "a logged-out cookie must not come back: {out}");
    }
    assert_eq!(run(&["get", &url, &plain]).0, 0);
    let forced = ok(&["import", "--force", &url, &dat]);
    assert!(forced.contains("imported          2"), "{forced}");
    let got: serde_json::Value =
        serde_json::from_str(&ok(&["get", "--json", &url, &long])).unwrap();
    assert_eq!(got["authid"], "bob", "--force brings it back with its auth");
}

#[test]
fn an_export_restored_across_backends_keeps_logged_out_cookies_out() {
    if !need_redis() {
        return;
    }
    let server = RedisServer::start();
    let url = server.url("cli:");
    let work = tempfile::tempdir().unwrap();
    let p = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let (dat, [short, long, plain]) = cookies_dat(work.path());
    let lmdb = p(&work.path().join("lmdb"));
    ok(&["import", &lmdb, &dat]);
    ok(&["delete", &lmdb, &short]);
    ok(&["delete", &lmdb, &long]);
    // LMDB → Redis.
    let first = p(&work.path().join("first.jsonl"));
    ok(&["export", &lmdb, "-o", &first]);
    let restored = ok(&["restore", &url, &first]);
    assert!(restored.contains("1 new"), "{restored}");
    let again = ok(&["import", &url, &dat]);
    assert!(again.contains("logged out        2  skipped"), "{again}");
    for value in [&short, &long] {
        assert_eq!(run(&["get", &url, value]).0, 1, "{value} came back");
    }
    // Redis → a new LMDB store, after a logout on Redis.
    ok(&["delete", &url, &plain]);
    let second = p(&work.path().join("second.jsonl"));
    ok(&["export", &url, "-o", &second]);
    let back = p(&work.path().join("back"));
    ok(&["restore", &back, &second]);
    let again = ok(&["import", &back, &dat]);
    assert!(again.contains("imported          0"), "{again}");
    assert!(again.contains("logged out        3  skipped"), "{again}");
    for value in [&short, &long, &plain] {
        assert_eq!(run(&["get", &back, value]).0, 1, "{value} came back");
    }
}

#[test]
fn an_unreachable_redis_is_an_error_not_a_hang() {
    let url = format!(
        "redis://127.0.0.1:{}/?timeout_ms=300",
        redis_server::free_port()
    );
    let (code, _, err) = run(&["stats", &url]);
    assert_eq!(code, 2);
    assert!(err.contains("unavailable"), "{err}");
}

/// `import URL DIR`: a database store directory (here one of ours, LMDB format 1) imports
/// into Redis record for record, and again changes nothing.
#[test]
fn import_of_a_store_directory_into_redis() {
    if !need_redis() {
        return;
    }
    let server = RedisServer::start();
    let url = server.url("imp:");
    let work = tempfile::tempdir().unwrap();
    let lmdb = work.path().join("lmdb");
    let mut cookies = Vec::new();
    {
        let store = CookieStore::open(&lmdb, StoreOptions::default()).unwrap();
        for i in 0..20u64 {
            let c = store.create("cbtid", 24, 86_400).unwrap();
            if i % 2 == 0 {
                let auth = Auth::new(&format!("user{i}"), "user", "ticket", "realm1")
                    .with_authextra(serde_json::json!({"i": i}));
                store
                    .set_auth(&c.value, &auth, &AuthContext::default().session(i))
                    .unwrap();
            }
            cookies.push(store.get(&c.value).unwrap().unwrap());
        }
    }
    let dir = lmdb.to_str().unwrap();
    let first: serde_json::Value =
        serde_json::from_str(ok(&["import", &url, dir, "--json"]).trim()).unwrap();
    assert_eq!(first["imported"], 20, "{first}");
    let again: serde_json::Value =
        serde_json::from_str(ok(&["import", &url, dir, "--json"]).trim()).unwrap();
    assert_eq!(
        (again["imported"].as_u64(), again["unchanged"].as_u64()),
        (Some(0), Some(20)),
        "{again}"
    );
    let redis = CookieStore::open(&url, StoreOptions::default()).unwrap();
    for c in &cookies {
        assert_eq!(redis.get(&c.value).unwrap().as_ref(), Some(c));
    }
    // A cookie logged out since stays logged out when the import runs again (its import
    // mark), until --force.
    assert!(redis.delete(&cookies[0].value).unwrap());
    let third: serde_json::Value =
        serde_json::from_str(ok(&["import", &url, dir, "--json"]).trim()).unwrap();
    assert_eq!(third["skipped_logged_out"], 1, "{third}");
    assert!(!redis.exists(&cookies[0].value).unwrap());
    let forced: serde_json::Value =
        serde_json::from_str(ok(&["import", &url, dir, "--force", "--json"]).trim()).unwrap();
    assert_eq!(forced["imported"], 1, "{forced}");
    assert!(redis.exists(&cookies[0].value).unwrap());
}

#[test]
fn stats_over_tls_with_a_client_certificate_and_a_password_from_the_environment() {
    if !common::tls::need_tls() {
        return;
    }
    let redis = common::tls::TlsRedis::start(true);
    let password = "Cli-secret-pw-42";
    let reply = redis.server.command(&[
        "ACL",
        "SETUSER",
        "joe",
        "on",
        &format!(">{password}"),
        "~*",
        "&*",
        "+@all",
    ]);
    assert_eq!(reply, "+OK");
    let pki = &redis.pki;
    // The command line has no TLS or password flags: the URL's query gives them.
    let url = format!(
        "rediss://joe@localhost:{}/?tls_ca_file={}&tls_cert_file={}&tls_key_file={}\
         &password_env=COOKIESTORE_TEST_PW",
        redis.tls_port,
        pki.ca.display(),
        pki.client_cert.display(),
        pki.client_key.display()
    );
    let run_with = |pw: &str| {
        let out = Command::new(BIN)
            .args(["stats", &url])
            .env("COOKIESTORE_TEST_PW", pw)
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap() + &String::from_utf8(out.stderr).unwrap();
        (out.status.code(), text)
    };
    let (code, text) = run_with(password);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("(Redis)"), "{text}");
    assert!(!text.contains(password), "{text}");
    let wrong = format!("{password}-wrong");
    let (code, text) = run_with(&wrong);
    assert_ne!(code, Some(0), "{text}");
    assert!(text.contains("ACL user `joe`"), "{text}");
    assert!(!text.contains(&wrong), "{text}");
}
