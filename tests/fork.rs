//! A store used across `fork()`: LMDB forbids using an environment in a process other than
//! the one that opened it.
//!
//! Each test runs its forking part in a fresh copy of the test binary (role `master`, see
//! `common::child_command`), so that fork() is called in a process that ran nothing else;
//! the forked children report on the shared stdout pipe, and this process (which never had
//! the store open before) checks the store afterwards with its own environment.
//!
//! - an inherited handle in a forked child refuses every call with `Error::ForkedProcess`,
//!   before LMDB is touched, and the parent is unaffected;
//! - opening the same path again in the child gives a fresh environment, while the parent
//!   keeps writing;
//! - the gunicorn pattern: a master uses the store, forks 4 workers that open it again and
//!   make 5,000 mixed calls each: no error, no wrong answer, `check` clean;
//! - the daemonizing pattern: the opener forks a child and exits; the child opens the store
//!   again and keeps writing while 4 other processes write: every acknowledged write is
//!   there and `check` is clean;
//! - fork() called inside a snapshot or batch closure: the child neither ends nor commits the
//!   parent's transaction (its store call is refused), the parent's commit goes in once;
//! - a Redis store used by forked children through the inherited handle: each child gets
//!   connections of its own (no error, every answer right).
//! - a Redis store whose circuit breaker is open when the process forks: the child has no
//!   probe thread and does not inherit the open breaker; it opens its own (with its own
//!   probe) and recovers when Redis starts, as the parent does.

// A failed unwrap here (helpers included) is the test, bench or example failing.
#![allow(clippy::unwrap_used)]
#![cfg(unix)]

mod common;

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use cookiestore::{
    Auth, AuthContext, AuthUpdate, Connections, CookieStore, Durability, Error, StoreOptions,
    Subscriber, Watcher,
};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};

/// Calls per gunicorn worker.
const WORKER_CALLS: u64 = 5_000;
/// Workers the gunicorn master forks.
const WORKERS: usize = 4;
/// Cookies the daemon writes, and each of the other writers.
const DAEMON_WRITES: u64 = 5_000;
const OTHER_WRITES: u64 = 2_500;
const OTHER_WRITERS: usize = 4;

/// Cookies per report line: a line stays under PIPE_BUF (4 KiB), so that the lines of
/// processes writing to one pipe at once do not interleave.
const REPORT_CHUNK: usize = 40;

/// Options of every handle in these tests: commits are not flushed (what is tested is which
/// process owns an environment, not durability across a power cut), so the tests run fast
/// on any disk.
fn options() -> StoreOptions {
    StoreOptions::default().durability(Durability::None)
}

/// Runs `f` on a thread of its own, for what draws cookie values before a fork(): the
/// random generator of the forking thread would otherwise be copied into every child, which
/// would then draw the same values (the values' generator is not what these tests are
/// about).
fn elsewhere<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| s.spawn(f).join().unwrap())
}

/// A seed for the workers' choices, not drawn from the forking thread's generator.
fn time_seed() -> u64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    since.as_nanos() as u64 ^ u64::from(std::process::id())
}

/// Forks; the child runs `f` and exits at once with 0 when it returned, 101 when it
/// panicked (the panic message goes to stderr). Returns the child's pid.
fn fork_child(f: impl FnOnce()) -> libc::pid_t {
    // SAFETY: fork() is called in the `master` role, a process of the test binary running
    // one test on one test thread; the child runs only `f` and leaves with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let ok = std::panic::catch_unwind(AssertUnwindSafe(f)).is_ok();
        use std::io::Write;
        let _ = std::io::stdout().flush();
        // SAFETY: leaves the child without running the test harness's code or exit handlers
        // inherited from the parent.
        unsafe { libc::_exit(if ok { 0 } else { 101 }) };
    }
    pid
}

/// Waits for the forked child `pid`; asserts that it exited with status 0.
fn wait_child(pid: libc::pid_t, what: &str) {
    let mut status = 0;
    // SAFETY: waits for our own child; `status` is a valid out pointer.
    let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(rc, pid, "waitpid: {}", std::io::Error::last_os_error());
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{what} (pid {pid}) failed: wait status {status:#x}"
    );
}

/// Runs `test`'s master role in a fresh process with the store directory `path`, and returns
/// what it and its forked children reported once every one of them has closed stdout.
fn run_master(test: &str, path: &Path) -> Vec<Value> {
    let mut cmd = child_command(test, "master");
    cmd.env("FORK_STORE", path);
    let mut child = cmd.spawn().unwrap();
    let lines = ChildLines::new(&mut child);
    wait_success(&mut child, "the master");
    lines.rest()
}

fn store_path() -> PathBuf {
    PathBuf::from(std::env::var_os("FORK_STORE").expect("FORK_STORE"))
}

fn alice() -> Auth {
    Auth::new("alice", "user", "ticket", "realm1")
}

/// Whether `e` is the fork refusal naming the opener `pid`, with its advice.
fn is_refusal(e: &Error, pid: u32) -> bool {
    let text = e.to_string();
    matches!(e, Error::ForkedProcess { opened_by, .. } if *opened_by == pid)
        && text.contains(&format!("process {pid}"))
        && text.contains("open it again after fork()")
}

// ---- an inherited handle refuses --------------------------------------------------------

const REFUSED: &str = "an_inherited_handle_refuses_every_call_in_a_forked_child";

#[test]
fn an_inherited_handle_refuses_every_call_in_a_forked_child() {
    if child_role().is_some() {
        return refused_master();
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let reports = run_master(REFUSED, &path);
    let child = reports
        .iter()
        .find(|r| r["ev"] == "child")
        .expect("the child reported");
    assert_eq!(child["refused"], child["calls"], "{child}");
    assert!(child["calls"].as_u64().unwrap() >= 20, "{child}");
    // The master's cookies, and the one it wrote after the child's attempts, are there.
    let store = CookieStore::open(&path, options()).unwrap();
    let master = reports.iter().find(|r| r["ev"] == "master").unwrap();
    for value in master["values"].as_array().unwrap() {
        let value = value.as_str().unwrap();
        assert_eq!(store.get_auth(value).unwrap(), Some(alice()), "{value}");
    }
    assert_clean(&store);
}

fn refused_master() {
    let path = store_path();
    let store = CookieStore::open(&path, options()).unwrap();
    let opener = std::process::id();
    let cookie = store.create("cbtid", 24, 3600).unwrap();
    store
        .set_auth(&cookie.value, &alice(), &AuthContext::default())
        .unwrap();
    // The cache holds the cookie, and this thread holds a reader slot: the child's first
    // call would be answered from memory or that slot if nothing checked the process.
    assert!(store.exists(&cookie.value).unwrap());
    assert_eq!(store.get_auth(&cookie.value).unwrap(), Some(alice()));
    let mut subscriber = Subscriber::new(&store).unwrap();
    let registry = Arc::new(Connections::<u32>::new());
    let watcher = Watcher::spawn(
        &store,
        registry,
        Duration::from_millis(5),
        |_event: cookiestore::WatchEvent<u32>| {},
    )
    .unwrap();

    let value = cookie.value.clone();
    let child = fork_child(|| {
        let mut calls = 0u64;
        let mut refused = 0u64;
        let mut check = |what: &str, result: Result<(), Error>| {
            calls += 1;
            match result {
                Err(e) if is_refusal(&e, opener) => refused += 1,
                Err(e) => eprintln!("child: {what}: another error: {e}"),
                Ok(()) => eprintln!("child: {what}: answered"),
            }
        };
        check("exists", store.exists(&value).map(drop));
        check("get_auth", store.get_auth(&value).map(drop));
        check("lookup", store.lookup(&value).map(drop));
        check("get", store.get(&value).map(drop));
        check("count", store.count().map(drop));
        check("stats", store.stats().map(drop));
        check("create", store.create("cbtid", 24, 3600).map(drop));
        check(
            "set_auth",
            store
                .set_auth(&value, &alice(), &AuthContext::default())
                .map(drop),
        );
        check("delete", store.delete(&value).map(drop));
        check("put", store.put(&cookie).map(drop));
        check("purge", store.purge_expired().map(drop));
        check("clear", store.clear().map(drop));
        check("flush", store.flush());
        check("snapshot", store.as_lmdb().unwrap().snapshot(|_| Ok(())));
        check(
            "batch",
            store.as_lmdb().unwrap().batch("nothing", |_| Ok(())),
        );
        check("logout_authid", store.logout_authid("alice").map(drop));
        check("revocations_since", store.revocations_since(0).map(drop));
        check("subscriber poll", subscriber.poll().map(drop));
        check("new subscriber", Subscriber::new(&store).map(drop));
        check(
            "copy",
            store
                .as_lmdb()
                .unwrap()
                .copy_to(&path.with_extension("copy"), false),
        );
        check(
            "check",
            cookiestore::maintenance::check(store.as_lmdb().unwrap()).map(drop),
        );
        let tracker =
            cookiestore::Tracker::new(store.clone(), cookiestore::TrackerConfig::default())
                .unwrap();
        let header = format!("cbtid={value}");
        check("track", tracker.track(Some(header.as_bytes())).map(drop));
        // Nothing answered from the cache either.
        assert_eq!(store.lookup_cached(&value), None);
        // The watcher's thread does not exist here: dropping it must not wait for it.
        drop(watcher);
        report(&json!({"ev": "child", "calls": calls, "refused": refused}));
    });
    wait_child(child, "the forked child");

    // The parent is unaffected: its cache, its reader slot and its writes work.
    assert!(store.exists(&cookie.value).unwrap());
    let mut values = vec![cookie.value.clone()];
    let after = store.create("cbtid", 24, 3600).unwrap();
    store
        .set_auth(&after.value, &alice(), &AuthContext::default())
        .unwrap();
    values.push(after.value);
    assert!(!path.with_extension("copy").join("data.mdb").exists());
    assert_clean(&store);
    report(&json!({"ev": "master", "values": values}));
}

// ---- fork() inside a snapshot or batch closure -----------------------------------------

const IN_CLOSURE: &str = "fork_inside_a_closure_leaves_the_parents_transaction_alone";

#[test]
fn fork_inside_a_closure_leaves_the_parents_transaction_alone() {
    if child_role().is_some() {
        return in_closure_master();
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let reports = run_master(IN_CLOSURE, &path);
    let children: Vec<&Value> = reports.iter().filter(|r| r["ev"] == "child").collect();
    assert_eq!(children.len(), 2, "{reports:?}");
    for r in children {
        assert_eq!(r["refused"], true, "{r}");
        assert_eq!(r["nested"], true, "{r}");
        assert_eq!(r["reopened"], true, "{r}");
    }
    let store = CookieStore::open(&path, options()).unwrap();
    let master = reports.iter().find(|r| r["ev"] == "master").unwrap();
    // The batch's cookie was committed once, by the parent.
    let value = master["batch_cookie"].as_str().unwrap();
    assert_eq!(store.get_auth(value).unwrap(), Some(alice()));
    assert_eq!(store.count().unwrap(), 2);
    assert_clean(&store);
}

fn in_closure_master() {
    let path = store_path();
    let store = CookieStore::open(&path, options()).unwrap();
    let opener = std::process::id();
    let first = elsewhere(|| store.create("cbtid", 24, 3600).unwrap());
    // In a child, what a closure that called fork() leads to: the store call that ran it is
    // refused when the closure returns (its transaction is the parent's), a reopen inside
    // the closure is refused, one after it works.
    let child_side = |returned: Result<libc::pid_t, Error>, nested: bool| {
        let refused = matches!(&returned, Err(e) if is_refusal(e, opener));
        let reopened = CookieStore::open(&path, options())
            .and_then(|fresh| fresh.exists(&first.value))
            .unwrap_or(false);
        report(&json!({"ev": "child", "refused": refused, "nested": nested,
            "reopened": reopened}));
        use std::io::Write;
        let _ = std::io::stdout().flush();
        // SAFETY: leaves the forked child at once.
        unsafe { libc::_exit(0) };
    };

    let mut nested = false;
    let returned = store.as_lmdb().unwrap().snapshot(|s| {
        assert!(s.get(&first.value)?.is_some());
        // SAFETY: as in `fork_child`.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            nested = matches!(
                CookieStore::open(&path, options()),
                Err(Error::NestedTransaction)
            );
        }
        // The parent's snapshot still reads after the child ended its copy of the closure.
        Ok(pid)
    });
    if std::process::id() != opener {
        child_side(returned, nested);
    }
    wait_child(returned.unwrap(), "the child forked in a snapshot");

    let value = elsewhere(|| store.create("cbtid", 24, 3600).unwrap()).value;
    let mut nested = false;
    let returned = store.as_lmdb().unwrap().batch("fork in a batch", |b| {
        b.set_auth(&value, &alice(), &AuthContext::default())?;
        // SAFETY: as in `fork_child`.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            nested = matches!(
                CookieStore::open(&path, options()),
                Err(Error::NestedTransaction)
            );
        }
        Ok(pid)
    });
    if std::process::id() != opener {
        child_side(returned, nested);
    }
    wait_child(returned.unwrap(), "the child forked in a batch");
    assert_eq!(store.get_auth(&value).unwrap(), Some(alice()));
    assert_clean(&store);
    report(&json!({"ev": "master", "batch_cookie": value}));
}

// ---- reopening in the child -------------------------------------------------------------

const REOPEN: &str = "reopening_in_a_forked_child_gives_a_fresh_environment";

#[test]
fn reopening_in_a_forked_child_gives_a_fresh_environment() {
    if child_role().is_some() {
        return reopen_master();
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let reports = run_master(REOPEN, &path);
    let store = CookieStore::open(&path, options()).unwrap();
    let mut seen = 0;
    for r in reports.iter().filter(|r| r["ev"] == "wrote") {
        let value = r["v"].as_str().unwrap();
        let authid = r["authid"].as_str().unwrap();
        let auth = store.get_auth(value).unwrap();
        assert_eq!(auth.map(|a| a.authid).as_deref(), Some(authid), "{r}");
        seen += 1;
    }
    assert_eq!(seen, 2 * 300, "reports: {}", reports.len());
    assert_clean(&store);
}

fn reopen_master() {
    let path = store_path();
    let store = CookieStore::open(&path, options()).unwrap();
    let opener = std::process::id();
    let first = elsewhere(|| store.create("cbtid", 24, 3600).unwrap());
    assert!(store.exists(&first.value).unwrap());
    let child = fork_child(|| {
        // The inherited handle stays alive while the store is opened again.
        let inherited = store.clone();
        let fresh = CookieStore::open(&path, options()).unwrap();
        assert!(fresh.exists(&first.value).unwrap());
        write_some(&fresh, "child");
        let e = inherited.exists(&first.value).unwrap_err();
        assert!(is_refusal(&e, opener), "{e}");
        // A third open in the child shares the fresh environment (its cache too).
        let again = CookieStore::open(&path, options()).unwrap();
        assert!(again.exists(&first.value).unwrap());
        drop(inherited);
        assert!(fresh.exists(&first.value).unwrap());
    });
    // The parent keeps writing meanwhile, through its own environment.
    write_some(&store, "parent");
    wait_child(child, "the forked child");
    assert!(store.exists(&first.value).unwrap());
    assert_clean(&store);
}

/// Creates and authenticates 300 cookies, reporting each once its auth is committed.
fn write_some(store: &CookieStore, who: &str) {
    for i in 0..300 {
        let c = store.create("cbtid", 24, 3600).unwrap();
        let auth = Auth::new(&format!("{who}-{i}"), "user", "ticket", "realm1");
        assert_eq!(
            store
                .set_auth(&c.value, &auth, &AuthContext::default())
                .unwrap(),
            AuthUpdate::Written
        );
        assert_eq!(store.get_auth(&c.value).unwrap(), Some(auth.clone()));
        report(&json!({"ev": "wrote", "v": c.value, "authid": auth.authid}));
    }
}

// ---- the gunicorn pattern ---------------------------------------------------------------

const GUNICORN: &str = "gunicorn_pattern_master_uses_the_store_then_forks_workers";

#[test]
fn gunicorn_pattern_master_uses_the_store_then_forks_workers() {
    if child_role().is_some() {
        return gunicorn_master();
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let reports = run_master(GUNICORN, &path);
    let done: Vec<&Value> = reports.iter().filter(|r| r["ev"] == "done").collect();
    assert_eq!(done.len(), WORKERS, "{reports:?}");
    let store = CookieStore::open(&path, options()).unwrap();
    for r in &done {
        assert_eq!(r["calls"], WORKER_CALLS, "{r}");
        assert_eq!(r["errors"], 0, "worker errors: {r}");
        assert_eq!(r["wrong"], 0, "wrong answers: {r}");
    }
    let mut live = 0;
    for r in reports.iter().filter(|r| r["ev"] == "live") {
        for pair in r["cookies"].as_array().unwrap() {
            let value = pair[0].as_str().unwrap();
            let authid = pair[1].as_str();
            let found = store.lookup(value).unwrap();
            let found = found.unwrap_or_else(|| panic!("worker cookie {value} is missing"));
            assert_eq!(found.auth.map(|a| a.authid).as_deref(), authid, "{value}");
            live += 1;
        }
    }
    eprintln!("gunicorn: {WORKERS} workers x {WORKER_CALLS} calls, {live} cookies left live");
    assert_eq!(store.count().unwrap(), live + 1); // and the master's
    assert_clean(&store);
}

fn gunicorn_master() {
    let path = store_path();
    let store = CookieStore::open(&path, options()).unwrap();
    let seed = elsewhere(|| store.create("cbtid", 24, 3600).unwrap());
    // What a master does before forking: one look at the store (a reader slot of this
    // thread, and the cache).
    assert!(store.exists(&seed.value).unwrap());
    let base = time_seed();
    let mut workers = Vec::new();
    for index in 0..WORKERS {
        let path = path.clone();
        workers.push(fork_child(move || {
            gunicorn_worker(&path, index, base.wrapping_add(index as u64))
        }));
    }
    for (index, pid) in workers.into_iter().enumerate() {
        wait_child(pid, &format!("worker {index}"));
    }
    // The master's handle still works after its workers ran.
    assert!(store.exists(&seed.value).unwrap());
    drop(store);
}

/// A worker: opens the store again and makes `WORKER_CALLS` mixed calls on its own cookies
/// (create, exists, get_auth, set_auth, delete), checking every answer.
fn gunicorn_worker(path: &Path, index: usize, seed: u64) {
    let store = CookieStore::open(path, options()).unwrap();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut mine: Vec<(String, Option<String>)> = Vec::new();
    let (mut errors, mut wrong) = (0u64, 0u64);
    let mut first_error = None;
    let mut note = |e: Error, first_error: &mut Option<String>| {
        errors += 1;
        first_error.get_or_insert_with(|| e.to_string());
    };
    for call in 0..WORKER_CALLS {
        let roll = rng.random_range(0..100);
        if mine.is_empty() || roll < 20 {
            match store.create("cbtid", 24, 3600) {
                Ok(c) => mine.push((c.value, None)),
                Err(e) => note(e, &mut first_error),
            }
            continue;
        }
        let i = rng.random_range(0..mine.len());
        let (value, authid) = mine[i].clone();
        match roll {
            20..45 => match store.exists(&value) {
                Ok(found) => wrong += u64::from(!found),
                Err(e) => note(e, &mut first_error),
            },
            45..70 => match store.get_auth(&value) {
                Ok(auth) => wrong += u64::from(auth.map(|a| a.authid) != authid),
                Err(e) => note(e, &mut first_error),
            },
            70..90 => {
                let new = format!("w{index}-{call}");
                let auth = Auth::new(&new, "user", "ticket", "realm1");
                match store.set_auth(&value, &auth, &AuthContext::default()) {
                    Ok(AuthUpdate::Written) => mine[i].1 = Some(new),
                    Ok(_) => wrong += 1,
                    Err(e) => note(e, &mut first_error),
                }
            }
            _ => match store.delete(&value) {
                Ok(deleted) => {
                    wrong += u64::from(!deleted);
                    mine.swap_remove(i);
                    match store.exists(&value) {
                        Ok(found) => wrong += u64::from(found),
                        Err(e) => note(e, &mut first_error),
                    }
                }
                Err(e) => note(e, &mut first_error),
            },
        }
    }
    for chunk in mine.chunks(REPORT_CHUNK) {
        report(&json!({"ev": "live", "index": index, "cookies": chunk}));
    }
    report(&json!({
        "ev": "done", "index": index, "calls": WORKER_CALLS, "errors": errors,
        "wrong": wrong, "first_error": first_error,
    }));
}

// ---- the daemonizing pattern ------------------------------------------------------------

const DAEMON: &str = "daemonizing_pattern_loses_no_acknowledged_write";

#[test]
fn daemonizing_pattern_loses_no_acknowledged_write() {
    match child_role().as_deref() {
        Some("master") => return daemon_master(),
        Some("writer") => return other_writer(),
        _ => {}
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    // The opener, whose forked child keeps writing after it exits.
    let mut cmd = child_command(DAEMON, "master");
    cmd.env("FORK_STORE", &path);
    let mut master = cmd.spawn().unwrap();
    let daemon_lines = ChildLines::new(&mut master);
    // The opener's reports, up to the daemon's first.
    let mut early = Vec::new();
    loop {
        let Some(r) = daemon_lines.next_timeout(Duration::from_secs(60)) else {
            // Says which process went missing: the opener (its exit status) or its daemon.
            let opener = master.wait().map(|s| s.to_string());
            panic!("the daemon never reported; the opener: {opener:?}, its reports: {early:?}");
        };
        let started = r["ev"] == "daemon";
        early.push(r);
        if started {
            break;
        }
    }
    // Four other processes write meanwhile.
    let mut writers = Vec::new();
    for index in 0..OTHER_WRITERS {
        let mut cmd = child_command(DAEMON, "writer");
        cmd.env("FORK_STORE", &path)
            .env("WRITER_INDEX", index.to_string());
        let mut child = cmd.spawn().unwrap();
        let lines = ChildLines::new(&mut child);
        writers.push((child, lines));
    }
    wait_success(&mut master, "the opener");
    let mut acknowledged: HashMap<String, String> = HashMap::new();
    let mut collect = |reports: Vec<Value>, who: &str| {
        let done = reports.iter().filter(|r| r["ev"] == "done").count();
        let expected = if who.contains("daemon") { 2 } else { 1 };
        assert_eq!(done, expected, "{who} did not finish: {:?}", reports.last());
        for r in reports {
            if r["ev"] == "error" {
                panic!("{who}: {r}");
            }
            if r["ev"] == "acked" {
                for pair in r["cookies"].as_array().unwrap() {
                    let value = pair[0].as_str().unwrap().to_string();
                    acknowledged.insert(value, pair[1].as_str().unwrap().to_string());
                }
            }
        }
    };
    // The daemon's reports end when it closes stdout, i.e. when it is done.
    early.extend(daemon_lines.rest());
    collect(early, "the opener and the daemon");
    for (index, (mut child, lines)) in writers.into_iter().enumerate() {
        let reports = lines.rest();
        wait_success(&mut child, &format!("writer {index}"));
        collect(reports, &format!("writer {index}"));
    }
    let expected = 10 + DAEMON_WRITES + OTHER_WRITERS as u64 * OTHER_WRITES;
    assert_eq!(acknowledged.len() as u64, expected);
    let store = CookieStore::open(&path, options()).unwrap();
    let mut missing = 0;
    for (value, authid) in &acknowledged {
        match store.get_auth(value).unwrap() {
            Some(auth) if &auth.authid == authid => {}
            _ => missing += 1,
        }
    }
    assert_eq!(
        missing, 0,
        "{missing} of {expected} acknowledged writes are missing"
    );
    assert_eq!(store.count().unwrap(), expected);
    assert_clean(&store);
}

/// The opener: writes, forks the daemon and exits at once (its handle closes on the way
/// out); the daemon opens the store again and keeps writing.
fn daemon_master() {
    let path = store_path();
    let store = CookieStore::open(&path, options()).unwrap();
    let acked = write_cookies(&store, "opener", 10);
    report(&json!({"ev": "acked", "cookies": acked}));
    report(&json!({"ev": "done"}));
    let opener = std::process::id() as libc::pid_t;
    fork_child(|| {
        // A daemon's parent is gone before it starts its work.
        // SAFETY: getppid has no preconditions.
        while unsafe { libc::getppid() } == opener {
            std::thread::sleep(Duration::from_millis(1));
        }
        // Only now: the opener's test harness writes its result line to the same pipe on
        // its way out, and a report written in the middle of that line was lost (seen
        // under load: the line did not start with the report's marker).
        report(&json!({"ev": "daemon", "pid": std::process::id()}));
        let store = CookieStore::open(&path, options()).unwrap();
        let mut acked = Vec::new();
        for i in 0..DAEMON_WRITES {
            match write_one(&store, &format!("daemon-{i}")) {
                Ok(pair) => acked.push(pair),
                Err(e) => report(&json!({"ev": "error", "msg": e.to_string()})),
            }
            if acked.len() == REPORT_CHUNK {
                report(&json!({"ev": "acked", "cookies": std::mem::take(&mut acked)}));
            }
        }
        report(&json!({"ev": "acked", "cookies": acked}));
        report(&json!({"ev": "done"}));
    });
    // Leaves without waiting for the daemon; `store` closes here.
}

/// Another process of the host writing while the daemon does.
fn other_writer() {
    let index: usize = std::env::var("WRITER_INDEX").unwrap().parse().unwrap();
    let store = CookieStore::open(store_path(), options()).unwrap();
    let mut acked = Vec::new();
    for i in 0..OTHER_WRITES {
        match write_one(&store, &format!("writer{index}-{i}")) {
            Ok(pair) => acked.push(pair),
            Err(e) => report(&json!({"ev": "error", "msg": e.to_string()})),
        }
        if acked.len() == REPORT_CHUNK {
            report(&json!({"ev": "acked", "cookies": std::mem::take(&mut acked)}));
        }
    }
    report(&json!({"ev": "acked", "cookies": acked}));
    report(&json!({"ev": "done"}));
}

fn write_cookies(store: &CookieStore, who: &str, n: u64) -> Vec<(String, String)> {
    (0..n)
        .map(|i| write_one(store, &format!("{who}-{i}")).unwrap())
        .collect()
}

/// Creates a cookie and authenticates it as `authid`; returns (value, authid) once both are
/// committed.
fn write_one(store: &CookieStore, authid: &str) -> Result<(String, String), Error> {
    let c = store.create("cbtid", 24, 3600)?;
    let auth = Auth::new(authid, "user", "ticket", "realm1");
    store.set_auth(&c.value, &auth, &AuthContext::default())?;
    Ok((c.value, authid.to_string()))
}

// ---- Redis ------------------------------------------------------------------------------

const REDIS: &str = "a_redis_store_inherited_by_forked_children_gets_connections_of_its_own";

#[cfg(feature = "redis")]
#[test]
fn a_redis_store_inherited_by_forked_children_gets_connections_of_its_own() {
    if child_role().is_some() {
        return redis_master();
    }
    if !redis_server::need_redis() {
        return;
    }
    let server = redis_server::RedisServer::start();
    let url = format!("redis://127.0.0.1:{}/", server.port);
    let reports = run_master(REDIS, Path::new(&url));
    let done: Vec<&Value> = reports.iter().filter(|r| r["ev"] == "done").collect();
    assert_eq!(done.len(), WORKERS + 1, "{reports:?}");
    for r in done {
        assert_eq!(r["errors"], 0, "{r}");
        assert_eq!(r["wrong"], 0, "{r}");
    }
}

const REDIS_CACHED: &str = "a_cached_redis_store_inherited_by_forked_children_tracks_by_itself";

/// The same with a cache on Redis (`redis_cache_bytes`): the parent's tracking connection
/// exists before fork(); each child makes its own (read by two processes, it would answer
/// one the other's replies and invalidations), and every answer is right.
#[cfg(feature = "redis")]
#[test]
fn a_cached_redis_store_inherited_by_forked_children_tracks_by_itself() {
    if child_role().is_some() {
        return redis_master_with(
            options().redis_cache_bytes(1 << 20),
            40, // each set_auth and delete waits out the cache's lease (20 ms)
        );
    }
    if !redis_server::need_redis() {
        return;
    }
    let server = redis_server::RedisServer::start();
    let url = format!("redis://127.0.0.1:{}/", server.port);
    let reports = run_master(REDIS_CACHED, Path::new(&url));
    let done: Vec<&Value> = reports.iter().filter(|r| r["ev"] == "done").collect();
    assert_eq!(done.len(), WORKERS + 1, "{reports:?}");
    for r in done {
        assert_eq!(r["errors"], 0, "{r}");
        assert_eq!(r["wrong"], 0, "{r}");
        assert!(
            r["hits"].as_u64().unwrap() > 0,
            "no lookup was a cache hit: {r}"
        );
    }
}

#[cfg(feature = "redis")]
fn redis_master() {
    redis_master_with(options(), 500);
}

#[cfg(feature = "redis")]
fn redis_master_with(options: StoreOptions, rounds: u64) {
    let url = store_path();
    let store = CookieStore::open(&url, options).unwrap();
    let seed = elsewhere(|| store.create("cbtid", 24, 3600).unwrap());
    // Pooled connections of this process exist now.
    assert!(store.exists(&seed.value).unwrap());
    let mut children = Vec::new();
    for index in 0..WORKERS {
        let store = store.clone();
        children.push(fork_child(move || redis_calls(&store, index, rounds)));
    }
    // The parent keeps using its pool meanwhile.
    redis_calls(&store, WORKERS, rounds);
    for (index, pid) in children.into_iter().enumerate() {
        wait_child(pid, &format!("child {index}"));
    }
}

/// `n` rounds of create, set_auth, get_auth, exists, delete, each answer checked: an answer
/// read from a connection another process shares would be another call's.
#[cfg(feature = "redis")]
fn redis_calls(store: &CookieStore, index: usize, n: u64) {
    let (mut errors, mut wrong) = (0u64, 0u64);
    let mut first_error = None;
    for i in 0..n {
        let authid = format!("p{index}-{i}");
        let result = (|| -> Result<bool, Error> {
            let c = store.create("cbtid", 24, 3600)?;
            let auth = Auth::new(&authid, "user", "ticket", "realm1");
            let mut right =
                store.set_auth(&c.value, &auth, &AuthContext::default())? == AuthUpdate::Written;
            right &= store.get_auth(&c.value)?.map(|a| a.authid) == Some(authid.clone());
            right &= store.exists(&c.value)?;
            // A second lookup: a cache hit when the store has a cache.
            right &= store.get_auth(&c.value)?.map(|a| a.authid) == Some(authid.clone());
            right &= store.delete(&c.value)?;
            right &= !store.exists(&c.value)?;
            Ok(right)
        })();
        match result {
            Ok(right) => wrong += u64::from(!right),
            Err(e) => {
                errors += 1;
                first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    report(
        &json!({"ev": "done", "index": index, "errors": errors, "wrong": wrong,
        "first_error": first_error, "hits": store.cache_stats().hits}),
    );
}

const REDIS_OUTAGE: &str = "a_child_forked_during_a_redis_outage_probes_by_itself_and_recovers";

/// A store whose breaker is open (Redis down, the probe thread running) when the process
/// forks: the child has no probe thread and does not count the parent's breaker as its own;
/// its first call tries Redis and opens a breaker of its own, with a probe of its own, and
/// it recovers when Redis starts, as the parent does.
#[cfg(feature = "redis")]
#[test]
fn a_child_forked_during_a_redis_outage_probes_by_itself_and_recovers() {
    if child_role().is_some() {
        return outage_master();
    }
    if !redis_server::need_redis() {
        return;
    }
    let port = redis_server::free_port(); // Redis starts there once both have tripped
    let url = format!("redis://127.0.0.1:{port}/");
    let mut cmd = child_command(REDIS_OUTAGE, "master");
    cmd.env("FORK_STORE", &url);
    let mut master = cmd.spawn().unwrap();
    let lines = ChildLines::new(&mut master);
    let mut tripped = Vec::new();
    while tripped.len() < 2 {
        let r = lines
            .next_timeout(Duration::from_secs(60))
            .expect("both processes report their outage");
        assert_ne!(r["ev"], "failed", "{r}");
        if r["ev"] == "tripped" {
            tripped.push(r);
        }
    }
    let _server = redis_server::RedisServer::start_config_on(port, false, &[]);
    wait_success(&mut master, "the master");
    let reports = lines.rest();
    let child = tripped.iter().find(|r| r["who"] == "child").expect("child");
    assert_eq!(child["probes_at_fork"], 0, "{child}");
    assert_eq!(child["available_at_fork"], true, "{child}");
    assert_eq!(child["probes_after_call"], 1, "{child}");
    let parent = tripped
        .iter()
        .find(|r| r["who"] == "parent")
        .expect("parent");
    assert_eq!(parent["probes"], 1, "{parent}");
    let done: Vec<&Value> = reports.iter().filter(|r| r["ev"] == "done").collect();
    assert_eq!(done.len(), 2, "{reports:?}");
    for r in done {
        assert_eq!(r["errors"], 0, "{r}");
        assert_eq!(r["wrong"], 0, "{r}");
    }
}

/// The probe threads of this process (`comm` is cut at 15 bytes).
#[cfg(feature = "redis")]
fn probe_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|tasks| {
            tasks
                .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
                .filter(|n| n.trim() == "cookiestore-pro")
                .count()
        })
        .unwrap_or(0)
}

/// The probe threads once there are `n` (a thread names itself after it starts), or after
/// 10 s.
#[cfg(feature = "redis")]
fn probe_threads_soon(n: usize) -> usize {
    let started = std::time::Instant::now();
    while probe_threads() != n && started.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(5));
    }
    probe_threads()
}

#[cfg(feature = "redis")]
fn outage_master() {
    let url = store_path();
    let options = options().timeout_ms(500).connect_lazily(true);
    let store = CookieStore::open(&url, options).unwrap();
    // Nothing listens yet: the breaker opens, its probe runs.
    while store.health().available {
        let _ = store.exists("x");
        std::thread::sleep(Duration::from_millis(10));
    }
    let parent_probes = probe_threads_soon(1);
    let child = fork_child(|| {
        let probes_at_fork = probe_threads();
        let available_at_fork = store.health().available;
        let first = store.exists("x");
        if !matches!(first, Err(Error::Unavailable { .. })) {
            report(&json!({"ev": "failed", "first": format!("{first:?}")}));
        }
        report(
            &json!({"ev": "tripped", "who": "child", "probes_at_fork": probes_at_fork,
            "available_at_fork": available_at_fork, "probes_after_call": probe_threads_soon(1)}),
        );
        redis_server::wait_available(&store);
        redis_calls(&store, 0, 200);
    });
    report(&json!({"ev": "tripped", "who": "parent", "probes": parent_probes}));
    redis_server::wait_available(&store);
    redis_calls(&store, 1, 200);
    wait_child(child, "the child");
}
