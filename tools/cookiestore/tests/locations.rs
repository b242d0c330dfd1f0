//! A command's PATH is a store directory or a Redis URL, by the library's one rule, and a
//! Redis password never shows: every command given a URL with a password (wrong, right, or
//! to a Redis that is not there) prints it masked, and creates no directory named like the
//! URL. `copy` to and from Redis is an export restored into the destination; into an
//! existing directory or a symbolic link it is refused, creating nothing.

// A failed unwrap here (helpers included) is the test, bench or example failing.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::redis_server::{self, RedisServer, need_redis};
use cookiestore::maintenance::{ExportOptions, export};
use cookiestore::{Auth, AuthContext, CookieStore, StoreOptions};

const BIN: &str = env!("CARGO_BIN_EXE_cookiestore");

/// A password with every character that breaks a naive URL split.
const PASSWORD: &str = "p/a?s#s@w%2Frd";
/// [`PASSWORD`] percent-encoded, as it goes into a URL.
const ENCODED: &str = "p%2Fa%3Fs%23s%40w%252Frd";

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run_in(cwd: &Path, args: &[&str]) -> Out {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run cookiestore");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// What a password must never show as, whole or in recognizable pieces.
fn assert_no_password(context: &str, text: &str) {
    for piece in [
        PASSWORD, ENCODED, "p/a?s", "s#s@w", "w%2Frd", "p%2Fa", "%23s%40",
    ] {
        assert!(
            !text.contains(piece),
            "{context}: {piece:?} shows in:\n{text}"
        );
    }
}

/// The names in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A store of `n` live cookies (a day's max_age), every other one authenticated.
fn make_store(path: &Path, n: usize) -> CookieStore {
    let store = CookieStore::open(path, StoreOptions::default()).unwrap();
    for i in 0..n {
        let c = store.create("cbtid", 24, 86_400).unwrap();
        if i % 2 == 0 {
            let auth = Auth::new(&format!("user{}", i % 5), "user", "ticket", "realm1");
            store
                .set_auth(&c.value, &auth, &AuthContext::default())
                .unwrap();
        }
    }
    store
}

/// The export of a store (without its snapshot id): what a copy must carry over.
fn exported(store: &CookieStore) -> String {
    let mut out = Vec::new();
    export(store, &mut out, ExportOptions::default(), &mut |_| {}).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn no_command_prints_a_redis_password() {
    if !need_redis() {
        return;
    }
    let server = RedisServer::start();
    let reply = server.command(&["CONFIG", "SET", "requirepass", PASSWORD]);
    assert!(reply.starts_with("+OK"), "{reply}");
    let nowhere = redis_server::free_port();
    let work = tempfile::tempdir().unwrap();
    let cwd = work.path().join("cwd");
    std::fs::create_dir(&cwd).unwrap();
    let lmdb = work.path().join("lmdb");
    drop(make_store(&lmdb, 3));
    let empty = work.path().join("empty.jsonl");
    std::fs::write(&empty, "").unwrap();
    let urls = [
        // As typed, unencoded: refused by the parser, masked in its message.
        format!("redis://:{PASSWORD}@127.0.0.1:{}/0", server.port),
        // Encoded and right: the commands run.
        format!("redis://:{ENCODED}@127.0.0.1:{}/0?prefix=pw:", server.port),
        // Encoded, with a user Redis does not know: authentication fails.
        format!("redis://joe:{ENCODED}@127.0.0.1:{}/0", server.port),
        // Nothing listening.
        format!("redis://:{ENCODED}@127.0.0.1:{nowhere}/0?timeout_ms=500"),
        // A Unix socket's password in the query; no such socket.
        format!("redis+unix:///nonexistent/redis.sock?pass={ENCODED}"),
        // A scheme cookiestore does not serve.
        format!("rediz://:{ENCODED}@127.0.0.1:{}/0", server.port),
    ];
    for url in &urls {
        let u = url.as_str();
        let dest = work.path().join("dest");
        let commands: Vec<Vec<&str>> = vec![
            vec!["check", u],
            vec!["check", "--json", u],
            vec!["repair", u],
            vec!["stats", u],
            vec!["stats", "--json", u],
            vec!["dump", u],
            vec!["get", u, "some-value"],
            vec!["delete", u, "some-value"],
            vec!["logout", u, "--authid", "alice"],
            vec!["revocations", u],
            vec!["purge", u],
            vec!["purge", "--dry-run", "--json", u],
            vec!["export", u],
            vec!["restore", u, s(&empty)],
            vec!["import", u, s(&empty)],
            vec!["copy", u, s(&dest)],
            vec!["copy", s(&lmdb), u],
            vec!["copy", u, u],
            vec!["copy", u],
            vec!["stats", u, "extra"],
            vec![u],
        ];
        for args in &commands {
            let out = run_in(&cwd, args);
            let context = format!("cookiestore {args:?} (exit {})", out.code);
            assert_no_password(&context, &out.stdout);
            assert_no_password(&context, &out.stderr);
            assert!(
                out.code == 0 || !out.stderr.is_empty(),
                "{context}: fails silently"
            );
            assert_eq!(listing(&cwd), Vec::<String>::new(), "{context}");
            let _ = std::fs::remove_dir_all(&dest);
        }
    }
    // The right password did reach the store: the copy from LMDB restored its 3 cookies.
    let store = CookieStore::open(
        format!("redis://:{ENCODED}@127.0.0.1:{}/0?prefix=pw:", server.port),
        StoreOptions::default(),
    )
    .unwrap();
    assert_eq!(store.count().unwrap(), 3);
}

#[test]
fn copy_to_and_from_redis_is_a_restore_and_never_a_directory() {
    if !need_redis() {
        return;
    }
    let server = RedisServer::start();
    let work = tempfile::tempdir().unwrap();
    let cwd = work.path().join("cwd");
    std::fs::create_dir(&cwd).unwrap();
    let lmdb = work.path().join("lmdb");
    let source = make_store(&lmdb, 120);
    let url = format!("redis://127.0.0.1:{}/0?prefix=cp:", server.port);

    // LMDB -> Redis: the cookies are in Redis, and no directory named like the URL exists.
    let out = run_in(&cwd, &["copy", s(&lmdb), &url]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("120 cookies exported"),
        "{}",
        out.stdout
    );
    assert_eq!(listing(&cwd), Vec::<String>::new());
    let redis = CookieStore::open(&url, StoreOptions::default()).unwrap();
    assert_eq!(redis.count().unwrap(), 120);
    assert_eq!(exported(&redis), exported(&source));

    // Again: the destination holds cookies now, so the copy is refused, and nothing changes.
    let extra = source.create("cbtid", 24, 86_400).unwrap();
    let out = run_in(&cwd, &["copy", s(&lmdb), &url]);
    assert_eq!(out.code, 2, "{}", out.stdout);
    assert!(
        out.stderr.contains("already holds 120 cookies"),
        "{}",
        out.stderr
    );
    assert!(!redis.exists(&extra.value).unwrap());
    assert_eq!(redis.count().unwrap(), 120);
    source.delete(&extra.value).unwrap();

    // Redis -> a new directory (private), and Redis -> another prefix.
    let back = work.path().join("back");
    let out = run_in(&cwd, &["copy", &url, s(&back)]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&back).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }
    let restored = CookieStore::open(&back, StoreOptions::default().readonly(true)).unwrap();
    assert_eq!(exported(&restored), exported(&source));
    let other = format!("redis://127.0.0.1:{}/0?prefix=other:", server.port);
    let out = run_in(&cwd, &["copy", &url, &other]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let other = CookieStore::open(&other, StoreOptions::default()).unwrap();
    assert_eq!(exported(&other), exported(&source));
    assert_eq!(listing(&cwd), Vec::<String>::new());
}

#[test]
fn copy_into_an_existing_or_symlinked_directory_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let lmdb = work.path().join("lmdb");
    drop(make_store(&lmdb, 5));
    let existing = work.path().join("existing");
    std::fs::create_dir(&existing).unwrap();
    #[cfg(unix)]
    use std::os::unix::fs::PermissionsExt;
    #[cfg(unix)]
    std::fs::set_permissions(&existing, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut refused: Vec<PathBuf> = vec![existing.clone()];
    #[cfg(unix)]
    {
        let link = work.path().join("link");
        std::os::unix::fs::symlink(&existing, &link).unwrap();
        refused.push(link);
        let dangling = work.path().join("dangling");
        std::os::unix::fs::symlink(work.path().join("nowhere"), &dangling).unwrap();
        refused.push(dangling);
    }
    for dest in &refused {
        for compact in [false, true] {
            let mut args = vec!["copy", s(&lmdb), s(dest)];
            if compact {
                args.push("--compact");
            }
            let out = run_in(work.path(), &args);
            assert_eq!(out.code, 2, "{args:?}: {}", out.stdout);
            assert!(out.stderr.contains("exists"), "{args:?}: {}", out.stderr);
        }
    }
    assert_eq!(listing(&existing), Vec::<String>::new());
    assert!(!work.path().join("nowhere").exists());
    #[cfg(unix)]
    {
        let mode = std::fs::metadata(&existing).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o755, "the directory's mode is left as it was");
    }
    // A new directory works, private.
    let fresh = work.path().join("fresh");
    let out = run_in(work.path(), &["copy", s(&lmdb), s(&fresh)]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    #[cfg(unix)]
    assert_eq!(
        std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777,
        0o700
    );
}

#[test]
fn a_copy_of_a_damaged_store_writes_nothing() {
    if !need_redis() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let lmdb = work.path().join("lmdb");
    drop(make_store(&lmdb, 2_500));
    // An undecodable record last in oid order: the export fails after 2,500 good lines,
    // more than one restore batch.
    common::with_raw_env(&lmdb, |t, db| {
        let slots = common::read_slots(t, db);
        let mut key = slots.cookies.to_be_bytes().to_vec();
        key.extend_from_slice(&[0xff; 16]);
        db.put(t, &key, b"\x01garbage\xff").unwrap();
    });
    let server = RedisServer::start();
    let url = format!("redis://127.0.0.1:{}/0?prefix=dmg:", server.port);
    let out = run_in(work.path(), &["copy", s(&lmdb), &url]);
    assert_eq!(out.code, 2, "{}", out.stdout);
    assert!(out.stderr.contains("nothing was copied"), "{}", out.stderr);
    let keys = server.command(&["DBSIZE"]);
    assert_eq!(keys, ":0", "nothing written to Redis");
    // From a Redis holding a record that cannot be decoded into a new directory: refused,
    // and the directory is not left behind.
    let good = format!("redis://127.0.0.1:{}/0?prefix=good:", server.port);
    let redis = CookieStore::open(&good, StoreOptions::default()).unwrap();
    redis.create("cbtid", 24, 86_400).unwrap();
    assert!(
        server
            .command(&["SET", "good:cookie:broken", "garbage"])
            .starts_with("+OK")
    );
    let into = work.path().join("into");
    let out = run_in(work.path(), &["copy", &good, s(&into)]);
    assert_eq!(out.code, 2, "{}", out.stdout);
    assert!(!into.exists(), "{}", out.stderr);
}
