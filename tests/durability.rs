//! The durability policies (`StoreOptions::durability`):
//!
//! - every policy reads and writes alike (only what a commit flushes differs);
//! - what each commit flushes, seen in the system calls (strace): a create under
//!   `SafeLazyCreates` does one `fdatasync` and writes the meta page through the plain file
//!   descriptor, under `LazyCreates` none of either; set_auth and logout always flush data and
//!   meta (the meta page through LMDB's `O_DSYNC` descriptor), under every policy but `None`;
//! - threads committing in turns never get each other's flush (the counts in the trace match);
//! - a writer killed with SIGKILL loses nothing it reported, under the lazy policies too;
//! - a simulated power cut (ext4 on a loop device; the device's image copied the moment the
//!   writer is killed, so whatever was still in the page cache of that file system is lost)
//!   keeps every acknowledged logout and auth, and the store stays consistent.

// A failed unwrap here (helpers included) is the test, bench or example failing.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use cookiestore::{Auth, CookieStore, Durability, StoreOptions};
use rand::{RngExt, SeedableRng};
use serde_json::json;

const POLICIES: [(&str, Durability); 4] = [
    ("full", Durability::Full),
    ("safe_lazy_creates", Durability::SafeLazyCreates),
    ("lazy_creates", Durability::LazyCreates),
    ("none", Durability::None),
];

fn policy(name: &str) -> Durability {
    POLICIES
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no policy {name}"))
        .1
}

fn options(durability: Durability) -> StoreOptions {
    let o = StoreOptions::default().durability(durability);
    // `None` is what sync = false means.
    if durability == Durability::None {
        o.sync(false)
    } else {
        o
    }
}

#[test]
fn every_policy_reads_and_writes_alike() {
    assert_eq!(
        StoreOptions::default().lmdb.durability,
        Durability::SafeLazyCreates
    );
    assert_eq!(
        StoreOptions::default()
            .sync(false)
            .lmdb
            .effective_durability(),
        Durability::None
    );
    assert_eq!(
        StoreOptions::default()
            .durability(Durability::Full)
            .lmdb
            .effective_durability(),
        Durability::Full
    );
    let parsed: StoreOptions =
        serde_json::from_value(json!({"durability": "lazy_creates"})).unwrap();
    assert_eq!(parsed.lmdb.durability, Durability::LazyCreates);
    for (name, d) in POLICIES {
        let dir = tempfile::tempdir().unwrap();
        let store = CookieStore::open(dir.path(), options(d)).unwrap();
        let mut values = Vec::new();
        for i in 0..20 {
            let c = store.create("cbtid", 24, 3_600).unwrap();
            if i % 2 == 0 {
                store
                    .set_auth(
                        &c.value,
                        &Auth::new(&format!("u{i}"), "user", "cookie", "r"),
                        &Default::default(),
                    )
                    .unwrap();
            }
            values.push(c.value);
        }
        // A batch that creates and authenticates commits durably, as one.
        let v = store
            .as_lmdb()
            .unwrap()
            .batch("create and auth", |b| {
                let c = b.create("cbtid", 24, 3_600)?;
                b.set_auth(
                    &c.value,
                    &Auth::new("batch", "user", "cookie", "r"),
                    &Default::default(),
                )?;
                Ok(c.value)
            })
            .unwrap();
        assert!(store.delete(&values[0]).unwrap(), "{name}");
        store.flush().unwrap();
        drop(store);
        let store = CookieStore::open(dir.path(), options(d)).unwrap();
        assert!(!store.exists(&values[0]).unwrap(), "{name}");
        assert_eq!(
            store.get_auth(&values[2]).unwrap().unwrap().authid,
            "u2",
            "{name}"
        );
        assert!(store.exists(&values[19]).unwrap(), "{name}");
        assert_eq!(
            store.get_auth(&v).unwrap().unwrap().authid,
            "batch",
            "{name}"
        );
        assert_eq!(store.count().unwrap(), 20, "{name}");
        assert_clean(&store);
    }
    // A read-only handle cannot flush.
    let dir = tempfile::tempdir().unwrap();
    drop(CookieStore::open(dir.path(), StoreOptions::default()).unwrap());
    let ro = CookieStore::open(dir.path(), StoreOptions::default().readonly(true)).unwrap();
    assert!(matches!(
        ro.flush(),
        Err(cookiestore::Error::ReadOnly { .. })
    ));
}

// ---- what each commit flushes (strace) ---------------------------------------------------------

const STRACE_TEST: &str = "each_policy_flushes_what_it_promises";

/// A marker the parent finds in the trace: a stat of a path that does not exist.
fn marker(name: &str) {
    let _ = std::fs::metadata(format!("/nonexistent-durability-marker/{name}"));
}

fn ops_main() {
    let path = PathBuf::from(std::env::var("DUR_STORE").unwrap());
    let d = policy(&std::env::var("DUR_POLICY").unwrap());
    let store = CookieStore::open(&path, options(d)).unwrap();
    marker("creates");
    let values: Vec<String> = (0..3)
        .map(|_| store.create("cbtid", 24, 3_600).unwrap().value)
        .collect();
    marker("auth");
    store
        .set_auth(
            &values[0],
            &Auth::new("alice", "user", "cookie", "r"),
            &Default::default(),
        )
        .unwrap();
    marker("logout");
    assert!(store.delete(&values[0]).unwrap());
    marker("end");
}

/// (fdatasync/fsync calls, meta-page writes through an O_DSYNC descriptor) per section.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Section {
    syncs: u32,
    dsync_writes: u32,
}

fn parse_trace(trace: &str) -> HashMap<String, Section> {
    let mut dsync_fds: HashSet<String> = HashSet::new();
    let mut sections: HashMap<String, Section> = HashMap::new();
    let mut current: Option<String> = None;
    for line in trace.lines() {
        if let Some(at) = line.find("/nonexistent-durability-marker/") {
            let rest = &line[at + "/nonexistent-durability-marker/".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            current = Some(name);
            continue;
        }
        if line.contains("data.mdb") && line.contains("O_DSYNC") {
            if let Some(fd) = line.rsplit("= ").next() {
                dsync_fds.insert(fd.trim().to_string());
            }
            continue;
        }
        let Some(section) = current.as_ref() else {
            continue;
        };
        let s = sections.entry(section.clone()).or_default();
        if line.contains("fdatasync(") || line.contains("fsync(") {
            s.syncs += 1;
        }
        if let Some(at) = line.find("pwrite64(") {
            let fd: String = line[at + 9..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            if dsync_fds.contains(&fd) {
                s.dsync_writes += 1;
            }
        }
    }
    sections
}

#[test]
fn each_policy_flushes_what_it_promises() {
    if child_role().as_deref() == Some("ops") {
        return ops_main();
    }
    if !need(strace_works(), "strace is not available (or may not trace)") {
        return;
    }
    for (name, d) in POLICIES {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("trace");
        let status = Command::new("strace")
            .args([
                "-f",
                "-qq",
                "-e",
                "trace=openat,fdatasync,fsync,pwrite64,statx,newfstatat,stat",
            ])
            .arg("-o")
            .arg(&out)
            .arg(std::env::current_exe().unwrap())
            .args([
                "--exact",
                STRACE_TEST,
                "--include-ignored",
                "--nocapture",
                "--test-threads=1",
                "--quiet",
            ])
            .env(CHILD_ROLE, "ops")
            .env("DUR_STORE", dir.path().join("store"))
            .env("DUR_POLICY", name)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "{name}: the traced child failed");
        let sections = parse_trace(&std::fs::read_to_string(&out).unwrap());
        let get = |s: &str| sections.get(s).copied().unwrap_or_default();
        let (creates, auth, logout) = (get("creates"), get("auth"), get("logout"));
        eprintln!("{name}: 3 creates {creates:?}, set_auth {auth:?}, logout {logout:?}");
        let durable = Section {
            syncs: 1,
            dsync_writes: 1,
        };
        let nothing = Section::default();
        match d {
            Durability::Full => {
                assert_eq!(
                    creates,
                    Section {
                        syncs: 3,
                        dsync_writes: 3
                    },
                    "{name}"
                );
                assert_eq!((auth, logout), (durable, durable), "{name}");
            }
            Durability::SafeLazyCreates => {
                assert_eq!(
                    creates,
                    Section {
                        syncs: 3,
                        dsync_writes: 0
                    },
                    "{name}"
                );
                assert_eq!((auth, logout), (durable, durable), "{name}");
            }
            Durability::LazyCreates => {
                assert_eq!(creates, nothing, "{name}");
                assert_eq!((auth, logout), (durable, durable), "{name}");
            }
            _ => assert_eq!(
                (creates, auth, logout),
                (nothing, nothing, nothing),
                "{name}"
            ),
        }
    }
}

const THREADS_TEST: &str = "concurrent_threads_never_get_each_others_flush";

/// 4 threads at once: each creates cookies (lazy commits) and authenticates or logs out
/// every one of them (durable commits). Reports how many commits of each kind were made.
fn threads_main() {
    let path = PathBuf::from(std::env::var("DUR_STORE").unwrap());
    let d = policy(&std::env::var("DUR_POLICY").unwrap());
    let store = CookieStore::open(&path, options(d)).unwrap();
    marker("threads");
    let per_thread = 40;
    let durable: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let store = store.clone();
                scope.spawn(move || {
                    let mut durable = 0;
                    for i in 0..per_thread {
                        let c = store.create("cbtid", 24, 3_600).unwrap();
                        if (i + t) % 2 == 0 {
                            let auth = Auth::new(&format!("t{t}i{i}"), "user", "cookie", "r");
                            store
                                .set_auth(&c.value, &auth, &Default::default())
                                .unwrap();
                        } else {
                            assert!(store.delete(&c.value).unwrap());
                        }
                        durable += 1;
                    }
                    durable
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    marker("end");
    report(&json!({"ev": "done", "creates": 4 * per_thread, "durable": durable}));
}

/// Every commit is flushed as its own kind asks, also when threads commit in turns as fast
/// as they can: the counts of flushes and of synchronous meta-page writes in the trace match
/// the commits exactly (a durable commit made lazy by another thread's flag, or the reverse,
/// would change them).
#[test]
fn concurrent_threads_never_get_each_others_flush() {
    if child_role().as_deref() == Some("threads") {
        return threads_main();
    }
    if !need(strace_works(), "strace is not available (or may not trace)") {
        return;
    }
    for (name, d) in &POLICIES[1..3] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("trace");
        let mut child = Command::new("strace")
            .args([
                "-f",
                "-qq",
                "-e",
                "trace=openat,fdatasync,fsync,pwrite64,statx,newfstatat,stat",
            ])
            .arg("-o")
            .arg(&out)
            .arg(std::env::current_exe().unwrap())
            .args([
                "--exact",
                THREADS_TEST,
                "--include-ignored",
                "--nocapture",
                "--test-threads=1",
                "--quiet",
            ])
            .env(CHILD_ROLE, "threads")
            .env("DUR_STORE", dir.path().join("store"))
            .env("DUR_POLICY", name)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = ChildLines::new(&mut child);
        let done = lines.wait_for("done", Duration::from_secs(300));
        assert!(
            child.wait().unwrap().success(),
            "{name}: the traced child failed"
        );
        let creates = done["creates"].as_u64().unwrap() as u32;
        let durable = done["durable"].as_u64().unwrap() as u32;
        let sections = parse_trace(&std::fs::read_to_string(&out).unwrap());
        let got = sections.get("threads").copied().unwrap_or_default();
        eprintln!("{name}: {creates} creates, {durable} durable commits from 4 threads: {got:?}");
        let want = match d {
            Durability::SafeLazyCreates => Section {
                syncs: creates + durable,
                dsync_writes: durable,
            },
            _ => Section {
                syncs: durable,
                dsync_writes: durable,
            },
        };
        assert_eq!(got, want, "{name}");
    }
}

fn strace_works() -> bool {
    Command::new("strace")
        .args(["-o", "/dev/null", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

// ---- the writer the crash tests kill --------------------------------------------------------

/// Creates cookies, authenticates every 16th one and logs out an earlier authenticated one
/// every 24th step (so that a kill often lands in a run of lazy creates, not in the flush of
/// a durable write, which would flush those creates too), reporting each write after it returned (and a logout's intent before).
fn writer_main() {
    let path = PathBuf::from(std::env::var("DUR_STORE").unwrap());
    let d = policy(&std::env::var("DUR_POLICY").unwrap());
    let store = CookieStore::open(&path, options(d)).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(std::process::id().into());
    report(&json!({"ev": "ready"}));
    let mut authed: Vec<String> = Vec::new();
    for i in 0u64.. {
        let c = store.create("cbtid", 24, 86_400).unwrap();
        report(&json!({"ev": "created", "v": c.value}));
        if i % 16 == 0 {
            let authid = format!("user{i}");
            store
                .set_auth(
                    &c.value,
                    &Auth::new(&authid, "user", "cookie", "r"),
                    &Default::default(),
                )
                .unwrap();
            report(&json!({"ev": "authed", "v": c.value, "authid": authid}));
            authed.push(c.value.clone());
        }
        if i % 24 == 23 && !authed.is_empty() {
            let v = authed.swap_remove(rng.random_range(0..authed.len()));
            // The intent first: a kill right after the delete may cut the report short.
            report(&json!({"ev": "logging_out", "v": v}));
            assert!(store.delete(&v).unwrap());
            report(&json!({"ev": "logged_out", "v": v}));
        }
    }
}

/// What the reports promise, checked against the store. Creates reported after the last
/// durable write (auth, logout) may be missing when `lazy` (how many is returned); with
/// `lazy` false every create must be there, but the very last one when `last_may_go`.
fn check_reports(
    store: &CookieStore,
    events: &[serde_json::Value],
    lazy: bool,
    last_may_go: bool,
) -> usize {
    assert_clean(store);
    let last_durable = events
        .iter()
        .rposition(|e| e["ev"] == "authed" || e["ev"] == "logged_out");
    let last_create = events.iter().rposition(|e| e["ev"] == "created");
    let mut logged_out = HashSet::new();
    // A logout whose outcome was not reported (the kill came first) may have happened.
    let pending_logout: HashSet<&str> = events
        .iter()
        .filter(|e| e["ev"] == "logging_out")
        .map(|e| e["v"].as_str().unwrap())
        .collect();
    let mut auth: HashMap<&str, &str> = HashMap::new();
    for e in events {
        match e["ev"].as_str().unwrap() {
            "authed" => {
                auth.insert(e["v"].as_str().unwrap(), e["authid"].as_str().unwrap());
            }
            "logged_out" => {
                logged_out.insert(e["v"].as_str().unwrap());
            }
            _ => {}
        }
    }
    let mut lost = 0;
    for (i, e) in events.iter().enumerate() {
        let v = e["v"].as_str().unwrap_or_default();
        match e["ev"].as_str().unwrap() {
            "created" if !logged_out.contains(v) => {
                if store.exists(v).unwrap() || pending_logout.contains(v) {
                    continue;
                }
                let may_go = (lazy && last_durable.is_none_or(|d| i > d))
                    || (last_may_go
                        && Some(i) == last_create
                        && last_durable.is_none_or(|d| i > d));
                assert!(may_go, "event {i}: the acknowledged create of {v} is lost");
                lost += 1;
            }
            "logged_out" => assert!(
                !store.exists(v).unwrap(),
                "event {i}: logged-out {v} is back"
            ),
            _ => {}
        }
    }
    for (v, authid) in auth {
        if !logged_out.contains(v) && (!pending_logout.contains(v) || store.exists(v).unwrap()) {
            let got = store.get_auth(v).unwrap();
            assert_eq!(
                got.map(|a| a.authid),
                Some(authid.to_string()),
                "auth of {v}"
            );
        }
    }
    lost
}

const KILL_TEST: &str = "killed_lazy_writer_loses_nothing_it_reported";

#[test]
fn killed_lazy_writer_loses_nothing_it_reported() {
    if child_role().as_deref() == Some("writer") {
        return writer_main();
    }
    let mut rng = rand::rng();
    for (name, _) in &POLICIES[1..3] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        let mut total = 0;
        for trial in 0..(3 * stress()).max(4) {
            let mut child = child_command(KILL_TEST, "writer")
                .env("DUR_STORE", &path)
                .env("DUR_POLICY", name)
                .spawn()
                .unwrap();
            let lines = ChildLines::new(&mut child);
            lines.wait_for("ready", Duration::from_secs(60));
            std::thread::sleep(Duration::from_millis(rng.random_range(20..300)));
            child.kill().unwrap();
            child.wait().unwrap();
            let events = lines.rest();
            total += events.len();
            let store = CookieStore::open(&path, StoreOptions::default()).unwrap();
            // The page cache survives a killed process: nothing reported may be missing.
            let lost = check_reports(&store, &events, false, false);
            assert_eq!(lost, 0, "{name} trial {trial}");
        }
        eprintln!("{name}: {total} reported writes checked after SIGKILLs");
    }
}

// ---- a simulated power cut ----------------------------------------------------------------------

const POWER_TEST: &str = "power_cut_keeps_every_acknowledged_logout_and_auth";

/// The ext4 journalling mode a policy is tested on: the one its documentation asks for.
/// `LazyCreates` keeps the store whole only on a file system that preserves write order
/// (`Durability::LazyCreates`' documentation): ext4 does so with `data=journal` (every write
/// goes into the journal transaction running when it is made, and transactions commit in
/// order). Under ext4's default `data=ordered`, the kernel may write a commit's meta page back
/// before its data pages, and a cut between them leaves a meta page naming pages the file does
/// not have (seen in CI: "data.mdb is truncated ... free-page tree starts at page 126"), as the
/// documentation warns. Every other policy is tested on the default.
fn ext4_data(d: Durability) -> &'static str {
    match d {
        Durability::LazyCreates => "journal",
        _ => "ordered",
    }
}

/// An ext4 image mounted through a loop device of its own; unmounted and detached when
/// dropped (loop devices are few: a leaked one fails later mounts).
struct Mount(PathBuf, String);

impl Mount {
    /// Mounts `image` at `at`, with ext4's journalling mode `data` (`ordered`, its default,
    /// or `journal`).
    fn new(image: &Path, at: &Path, data: &str) -> Mount {
        std::fs::create_dir_all(at).unwrap();
        let out = Command::new("losetup")
            .args(["--find", "--show"])
            .arg(image)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "losetup {}: {}",
            image.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let dev = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let mount = Mount(at.to_path_buf(), dev);
        let out = Command::new("mount")
            .args(["-t", "ext4", "-o", &format!("data={data}"), &mount.1])
            .arg(at)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mount {} ({}): {}",
            image.display(),
            mount.1,
            String::from_utf8_lossy(&out.stderr)
        );
        mount
    }

    /// Mounts the image copied at the cut as a machine does after a power cut: the file
    /// system is checked (and its journal replayed) first. `None` when the copy's file system
    /// itself cannot be recovered: the copy is read while the kernel may still be writing
    /// back pages, so it can be torn in ways a real cut (everything before an instant, nothing
    /// after) cannot; such a round says nothing about the store.
    fn after_cut(image: &Path, at: &Path, data: &str) -> Option<Mount> {
        let fsck = Command::new("e2fsck")
            .args(["-f", "-y"])
            .arg(image)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        // 0: clean, 1 and 2: errors corrected; 4 and above: not recoverable.
        if fsck.code().is_none_or(|c| c >= 4) {
            return None;
        }
        Some(Mount::new(image, at, data))
    }
}

/// Removes the round's images when the round ends (after its mounts, declared later, are gone).
struct RemoveOnDrop(Vec<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        for path in &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        // A child process of another test in this binary may hold files here open (inherited
        // descriptors): then detach lazily, and the device goes when the last one closes.
        let unmounted = Command::new("umount")
            .arg(&self.0)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
        let _ = Command::new("losetup").args(["-d", &self.1]).status();
    }
}

fn can_loop_mount(dir: &Path) -> bool {
    if !running_as_root() {
        return false;
    }
    let image = dir.join("probe.img");
    let made = std::fs::File::create(&image)
        .and_then(|f| f.set_len(16 << 20))
        .is_ok()
        && Command::new("mkfs.ext4")
            .args(["-q", "-F"])
            .arg(&image)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    let mounted = made
        && Command::new("mount")
            .args(["-t", "ext4", "-o", "loop"])
            .arg(&image)
            .arg(dir)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    if mounted {
        let _ = Command::new("umount").arg(dir).status();
    }
    let _ = std::fs::remove_file(&image);
    mounted
}

/// A login (create + set_auth, durable), then `BURST` creates and nothing more: the cut
/// then shows exactly what each policy leaves unflushed.
const BURST: usize = 20;

fn burst_main() {
    let path = PathBuf::from(std::env::var("DUR_STORE").unwrap());
    let d = policy(&std::env::var("DUR_POLICY").unwrap());
    let store = CookieStore::open(&path, options(d)).unwrap();
    let c = store.create("cbtid", 24, 86_400).unwrap();
    let auth = Auth::new("alice", "user", "cookie", "r");
    store
        .set_auth(&c.value, &auth, &Default::default())
        .unwrap();
    let values: Vec<String> = (0..BURST)
        .map(|_| store.create("cbtid", 24, 86_400).unwrap().value)
        .collect();
    report(&json!({"ev": "idle", "login": c.value, "creates": values}));
    std::thread::sleep(Duration::from_secs(600));
}

#[test]
fn power_cut_keeps_every_acknowledged_logout_and_auth() {
    match child_role().as_deref() {
        Some("writer") => return writer_main(),
        Some("burst") => return burst_main(),
        _ => {}
    }
    let tmp = tempfile::tempdir().unwrap();
    let probe = tmp.path().join("probe");
    std::fs::create_dir_all(&probe).unwrap();
    if !need(
        can_loop_mount(&probe),
        "a power cut is simulated on ext4 on a loop device: needs root, mkfs.ext4 and loop devices",
    ) {
        return;
    }
    let mut rng = rand::rng();
    // Each round takes two of the machine's few loop devices for a moment.
    let rounds = (2 * stress()).clamp(2, 6);
    let mut none_lost = 0;
    let (mut checked, mut torn) = (0, 0);
    for (name, d) in POLICIES {
        for round in 0..rounds {
            let image = tmp.path().join(format!("disk-{name}-{round}.img"));
            // A file of its own per round: a mount of an earlier copy that a child process of
            // another test still holds open (LMDB's descriptors are inherited) must not be
            // the file checked next.
            let copy = tmp.path().join(format!("after-cut-{name}-{round}.img"));
            let _files = RemoveOnDrop(vec![image.clone(), copy.clone()]);
            std::fs::File::create(&image)
                .unwrap()
                .set_len(128 << 20)
                .unwrap();
            let ok = Command::new("mkfs.ext4")
                .args(["-q", "-F"])
                .arg(&image)
                .status()
                .unwrap();
            assert!(ok.success());
            let events = {
                let live = Mount::new(&image, &tmp.path().join("live"), ext4_data(d));
                let store_dir = live.0.join("store");
                // The empty store, made durable before the writer starts.
                drop(CookieStore::open(&store_dir, StoreOptions::default()).unwrap());
                assert!(
                    Command::new("sync")
                        .arg("-f")
                        .arg(&live.0)
                        .status()
                        .unwrap()
                        .success()
                );
                let mut child = child_command(POWER_TEST, "writer")
                    .env("DUR_STORE", &store_dir)
                    .env("DUR_POLICY", name)
                    .spawn()
                    .unwrap();
                let lines = ChildLines::new(&mut child);
                lines.wait_for("ready", Duration::from_secs(60));
                std::thread::sleep(Duration::from_millis(rng.random_range(200..1_200)));
                child.kill().unwrap();
                // The cut: the device's content now is what the file system wrote to it
                // (flushed or not); its page cache, still holding unflushed pages, is lost.
                std::fs::copy(&image, &copy).unwrap();
                child.wait().unwrap();
                lines.rest()
            };
            let Some(after) = Mount::after_cut(&copy, &tmp.path().join("after"), ext4_data(d))
            else {
                torn += 1;
                eprintln!("{name} round {round}: the copied file system is torn; round skipped");
                continue;
            };
            checked += 1;
            let store_dir = after.0.join("store");
            let reported = events.iter().filter(|e| e["ev"] != "ready").count();
            if d == Durability::None {
                // Nothing flushed: what survives is up to the kernel, and the store may not
                // even be consistent. Count what was lost, to show that the cut loses
                // unflushed writes at all.
                let survived = CookieStore::open(&store_dir, StoreOptions::default())
                    .and_then(|s| {
                        let mut n = 0;
                        for e in &events {
                            if e["ev"] == "created" && s.exists(e["v"].as_str().unwrap())? {
                                n += 1;
                            }
                        }
                        Ok(n)
                    })
                    .unwrap_or(0);
                let created = events.iter().filter(|e| e["ev"] == "created").count();
                none_lost += created - survived.min(created);
                eprintln!(
                    "{name} round {round}: {created} creates reported, {survived} survived the cut"
                );
                continue;
            }
            let store =
                CookieStore::open(&store_dir, StoreOptions::default()).unwrap_or_else(|e| {
                    panic!("{name} round {round}: the store does not open after the cut: {e}")
                });
            let lost = check_reports(
                &store,
                &events,
                d == Durability::LazyCreates,
                d == Durability::SafeLazyCreates,
            );
            eprintln!(
                "{name} round {round}: {reported} writes reported; every logout and auth kept; \
                 {lost} trailing lazy creates lost"
            );
        }
    }
    eprintln!("{checked} rounds checked, {torn} skipped on a torn copy");
    assert!(
        checked > torn,
        "most copies were torn ({torn} of {}): the simulation checks too little",
        checked + torn
    );
    assert!(
        none_lost > 0,
        "with nothing flushed, the simulated cut lost no write: it does not simulate a power cut"
    );

    // A login, then a burst of creates, then a cut: what each policy keeps of the burst.
    for (name, d) in &POLICIES[..3] {
        let image = tmp.path().join(format!("disk-burst-{name}.img"));
        let copy = tmp.path().join(format!("after-cut-burst-{name}.img"));
        let _files = RemoveOnDrop(vec![image.clone(), copy.clone()]);
        std::fs::File::create(&image)
            .unwrap()
            .set_len(128 << 20)
            .unwrap();
        let ok = Command::new("mkfs.ext4")
            .args(["-q", "-F"])
            .arg(&image)
            .status()
            .unwrap();
        assert!(ok.success());
        let idle = {
            let live = Mount::new(&image, &tmp.path().join("live"), ext4_data(*d));
            let store_dir = live.0.join("store");
            drop(CookieStore::open(&store_dir, StoreOptions::default()).unwrap());
            assert!(
                Command::new("sync")
                    .arg("-f")
                    .arg(&live.0)
                    .status()
                    .unwrap()
                    .success()
            );
            let mut child = child_command(POWER_TEST, "burst")
                .env("DUR_STORE", &store_dir)
                .env("DUR_POLICY", name)
                .spawn()
                .unwrap();
            let lines = ChildLines::new(&mut child);
            let idle = lines.wait_for("idle", Duration::from_secs(60));
            child.kill().unwrap();
            child.wait().unwrap();
            std::fs::copy(&image, &copy).unwrap();
            idle
        };
        let Some(after) = Mount::after_cut(&copy, &tmp.path().join("after"), ext4_data(*d)) else {
            eprintln!("{name}: the copied file system is torn; the burst case is skipped");
            continue;
        };
        let store = CookieStore::open(after.0.join("store"), StoreOptions::default())
            .unwrap_or_else(|e| panic!("{name}: the store does not open after the cut: {e}"));
        assert_clean(&store);
        let login = idle["login"].as_str().unwrap();
        assert_eq!(
            store.get_auth(login).unwrap().map(|a| a.authid),
            Some("alice".to_string()),
            "{name}: the acknowledged login is lost"
        );
        let kept: Vec<bool> = idle["creates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| store.exists(v.as_str().unwrap()).unwrap())
            .collect();
        let n = kept.iter().filter(|k| **k).count();
        eprintln!("{name}: a login, then {BURST} creates, then the cut: {n} of the creates kept");
        match d {
            Durability::Full => assert_eq!(n, BURST, "{name}"),
            // Each create's flush carries the previous create's meta page: only the last
            // create can be undone.
            Durability::SafeLazyCreates => {
                assert!(
                    n >= BURST - 1 && kept[..BURST - 1].iter().all(|k| *k),
                    "{name}: {kept:?}"
                )
            }
            // Whatever the kernel had not written back yet (here: all of them, as the cut comes
            // within milliseconds) is lost; none of what a durable write flushed.
            _ => assert!(n < BURST, "{name}: the cut kept every unflushed create"),
        }
    }
}
