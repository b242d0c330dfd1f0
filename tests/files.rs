//! The store's files: their modes, and what the lock file needs.
//!
//! Modes: a new store's directory is created 0700 and its data.mdb and lock.mdb 0600
//! (whatever the umask adds nothing), or `file_mode` when configured; files that exist keep
//! their mode.
//!
//! The lock file (lock.mdb) and read-only places, as tested here:
//! - LMDB opens lock.mdb read-write and creates it when missing, **also for a read-only
//!   open**: every reader registers itself in the lock file's reader table.
//! - So a read-only open of a store in a directory the user cannot write fails with
//!   `Error::Path` (permission denied) when lock.mdb is missing, and also when lock.mdb
//!   exists but the user cannot write it. It succeeds when lock.mdb exists and is writable
//!   for the user (for example mode 0666 or the group's), even with data.mdb read-only and
//!   the directory read-only; a writable open then fails with `Error::Path`.
//! - root ignores permission bits: a read-only open by root creates lock.mdb in a 0555
//!   directory.
//! - On a read-only file system (EROFS), a read-only open works without any lock file
//!   (LMDB's rule for MDB_RDONLY): nobody can write there, so readers need no slots. A
//!   writable open fails with `Error::Path`.
//!
//! As root, the permission cases run in a child process with uid and gid 65534; otherwise
//! they apply to the test's own user. The read-only file system is a read-only bind mount in
//! a private mount namespace (`unshare --mount`), which needs root: without it those cases
//! are skipped with a message, or fail when `CI` is set (see `common::need`).

// A failed unwrap here (helpers included) is the test, bench or example failing.
#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::*;
use cookiestore::{CookieStore, Error, StoreOptions};
use serde_json::{Value, json};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn readonly() -> StoreOptions {
    StoreOptions::default().readonly(true)
}

fn with_mode(file_mode: u32) -> StoreOptions {
    StoreOptions::default().file_mode(file_mode)
}

fn make_store(path: &Path, cookies: usize) {
    let store = CookieStore::open(path, StoreOptions::default()).unwrap();
    for _ in 0..cookies {
        store.create("cbtid", 24, 86_400).unwrap();
    }
}

#[test]
fn new_store_files_are_private() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/store");
    make_store(&path, 1);
    assert_eq!(mode(&path), 0o700, "store directory");
    assert_eq!(mode(&path.join("data.mdb")), 0o600, "data.mdb");
    assert_eq!(mode(&path.join("lock.mdb")), 0o600, "lock.mdb");
    // An existing empty directory keeps its mode; the files are still 0600.
    let existing = dir.path().join("existing");
    std::fs::create_dir(&existing).unwrap();
    set_mode(&existing, 0o755);
    make_store(&existing, 1);
    assert_eq!(mode(&existing), 0o755);
    assert_eq!(mode(&existing.join("data.mdb")), 0o600);
    assert_eq!(mode(&existing.join("lock.mdb")), 0o600);
}

#[test]
fn file_mode_applies_to_new_files_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let store = CookieStore::open(&path, with_mode(0o640)).unwrap();
    store.create("cbtid", 24, 86_400).unwrap();
    drop(store);
    assert_eq!(mode(&path.join("data.mdb")), 0o640);
    assert_eq!(mode(&path.join("lock.mdb")), 0o640);

    // Reopened with other modes: the files keep theirs.
    for m in [0o600, 0o660, 0o644] {
        drop(CookieStore::open(&path, with_mode(m)).unwrap());
        assert_eq!(mode(&path.join("data.mdb")), 0o640, "reopened with {m:o}");
        assert_eq!(mode(&path.join("lock.mdb")), 0o640, "reopened with {m:o}");
    }

    // A lock.mdb made anew (it may be deleted while no process has the store open) takes
    // the configured mode, read-only opens included; data.mdb keeps its own.
    for (options, want) in [
        (with_mode(0o660), 0o660),
        (readonly(), 0o600),
        (readonly().file_mode(0o644), 0o644),
    ] {
        std::fs::remove_file(path.join("lock.mdb")).unwrap();
        let store = CookieStore::open(&path, options).unwrap();
        assert_eq!(store.count().unwrap(), 1);
        drop(store);
        assert_eq!(mode(&path.join("lock.mdb")), want);
        assert_eq!(mode(&path.join("data.mdb")), 0o640);
    }
}

#[test]
fn invalid_file_modes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for m in [0o400, 0o200, 0o000, 0o1600, 0o4700, 0o7777, 0o10600] {
        match CookieStore::open(dir.path().join("store"), with_mode(m)) {
            Err(Error::InvalidConfig { field, .. }) => assert_eq!(field, "file_mode"),
            other => panic!("file_mode {m:o}: {other:?}"),
        }
    }
    assert!(!dir.path().join("store").exists(), "nothing was created");
}

// ---- read-only directories and the lock file ----

const TEST: &str = "lock_file_in_read_only_places";
const NOBODY: u32 = 65_534;

/// Three stores in read-only directories (0555), data.mdb read-only (0444): without
/// lock.mdb, with a read-only one (0444), with a writable one (0666).
fn read_only_stores(base: &Path) -> [PathBuf; 3] {
    let names = ["no-lock", "lock-0444", "lock-0666"];
    let paths = names.map(|n| base.join(n));
    for (path, lock_mode) in paths.iter().zip([None, Some(0o444), Some(0o666)]) {
        make_store(path, 3);
        let lock = path.join("lock.mdb");
        match lock_mode {
            None => std::fs::remove_file(&lock).unwrap(),
            Some(m) => set_mode(&lock, m),
        }
        set_mode(&path.join("data.mdb"), 0o444);
        set_mode(path, 0o555);
    }
    paths
}

#[test]
fn lock_file_in_read_only_places() {
    match child_role().as_deref() {
        Some("unprivileged") => return unprivileged_opens(),
        Some("erofs") => return read_only_file_system(),
        _ => {}
    }
    let base = tempfile::tempdir().unwrap();
    set_mode(base.path(), 0o755);
    let stores = read_only_stores(base.path());

    // As a user the permission bits apply to.
    let as_root = running_as_root();
    let mut cmd = child_command(TEST, "unprivileged");
    cmd.env("FILES_BASE", base.path());
    if as_root {
        use std::os::unix::process::CommandExt;
        cmd.uid(NOBODY).gid(NOBODY);
    }
    let mut child = cmd.spawn().unwrap();
    let reports = ChildLines::new(&mut child).rest();
    wait_success(&mut child, "unprivileged opener");
    let outcome = |name: &str| -> &Value {
        reports
            .iter()
            .find(|r| r["case"] == name)
            .unwrap_or_else(|| panic!("no report for {name}: {reports:?}"))
    };
    let denied = |name: &str| {
        let r = outcome(name);
        assert_eq!(r["result"], "Path", "{name}: {r}");
        assert_eq!(r["kind"], "PermissionDenied", "{name}: {r}");
    };
    denied("no-lock read-only");
    denied("lock-0444 read-only");
    denied("lock-0666 writable");
    let r = outcome("lock-0666 read-only");
    assert_eq!(r["result"], "ok", "{r}");
    assert_eq!(r["count"], 3, "{r}");
    assert!(
        !stores[0].join("lock.mdb").exists(),
        "the denied open left a lock.mdb behind"
    );

    // root ignores the bits: its read-only open creates lock.mdb in the 0555 directory.
    if as_root {
        let store = CookieStore::open(&stores[0], readonly()).unwrap();
        assert_eq!(store.count().unwrap(), 3);
        drop(store);
        assert!(stores[0].join("lock.mdb").exists());
        assert_eq!(mode(&stores[0].join("lock.mdb")), 0o600);
    }

    for path in &stores {
        set_mode(path, 0o700);
    }

    // A read-only file system: a bind mount, which needs root.
    if need(can_mount(), MOUNT_NEEDED) {
        read_only_bind_mount(base.path());
    }
}

const MOUNT_NEEDED: &str = "files: the read-only file system cases need root (a read-only \
                            bind mount in a private mount namespace)";

fn unprivileged_opens() {
    assert!(!running_as_root(), "must not run as root");
    let base = PathBuf::from(std::env::var("FILES_BASE").unwrap());
    let cases = [
        ("no-lock read-only", "no-lock", readonly()),
        ("lock-0444 read-only", "lock-0444", readonly()),
        ("lock-0666 read-only", "lock-0666", readonly()),
        ("lock-0666 writable", "lock-0666", StoreOptions::default()),
    ];
    for (case, dir, options) in cases {
        report(&describe(case, CookieStore::open(base.join(dir), options)));
    }
}

fn describe(case: &str, opened: cookiestore::Result<CookieStore>) -> Value {
    match opened.and_then(|s| s.count()) {
        Ok(count) => json!({"case": case, "result": "ok", "count": count}),
        Err(Error::Path { source, .. }) => json!({"case": case, "result": "Path",
            "kind": format!("{:?}", source.kind()), "os": source.raw_os_error()}),
        Err(e) => json!({"case": case, "result": "other", "error": e.to_string()}),
    }
}

/// Bind-mounts fresh stores read-only in a private mount namespace (in a child process run
/// by `unshare`), opens them there, and returns the child's reports.
fn erofs_reports(base: &Path, test_name: &str) -> Vec<Value> {
    let src = base.join("erofs-src");
    make_store(&src, 3);
    let src_nolock = base.join("erofs-src-nolock");
    make_store(&src_nolock, 2);
    std::fs::remove_file(src_nolock.join("lock.mdb")).unwrap();
    let test = child_command(test_name, "erofs");
    let mut cmd = std::process::Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "--"])
        .arg(test.get_program())
        .args(test.get_args())
        .envs(test.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .env("FILES_BASE", base)
        .stdout(std::process::Stdio::piped());
    let mut child = cmd
        .spawn()
        .expect("unshare (util-linux) is needed for the read-only file system case");
    let reports = ChildLines::new(&mut child).rest();
    wait_success(&mut child, "read-only file system opener");
    assert!(!src_nolock.join("lock.mdb").exists());
    reports
}

fn read_only_bind_mount(base: &Path) {
    let reports = erofs_reports(base, TEST);
    let get = |case: &str| {
        reports
            .iter()
            .find(|r| r["case"] == case)
            .unwrap_or_else(|| panic!("no report for {case}: {reports:?}"))
            .clone()
    };
    for (case, count) in [("erofs lock read-only", 3), ("erofs no-lock read-only", 2)] {
        let r = get(case);
        assert_eq!(r["result"], "ok", "{case}: {r}");
        assert_eq!(r["count"], count, "{case}: {r}");
    }
    let r = get("erofs writable");
    assert_eq!(r["result"], "Path", "{r}");
    assert_eq!(r["os"], 30, "EROFS: {r}");
}

/// As above, with a `file_mode` other than 0600: the read-only open must not try to chmod
/// a lock.mdb that LMDB did not create.
#[test]
fn read_only_file_system_with_file_mode() {
    if child_role().is_some() {
        return read_only_file_system();
    }
    if !need(can_mount(), MOUNT_NEEDED) {
        return;
    }
    let base = tempfile::tempdir().unwrap();
    let reports = erofs_reports(base.path(), "read_only_file_system_with_file_mode");
    let case = "erofs no-lock read-only file_mode 0640";
    let r = reports
        .iter()
        .find(|r| r["case"] == case)
        .unwrap_or_else(|| panic!("no report for {case}: {reports:?}"));
    assert_eq!(r["result"], "ok", "{case}: {r}");
    assert_eq!(r["count"], 2, "{case}: {r}");
}

fn read_only_file_system() {
    let base = PathBuf::from(std::env::var("FILES_BASE").unwrap());
    let mount = |src: &str, dst: &str| {
        let (src, dst) = (base.join(src), base.join(dst));
        std::fs::create_dir_all(&dst).unwrap();
        for args in [
            vec![
                "--bind".into(),
                src.into_os_string(),
                dst.clone().into_os_string(),
            ],
            vec!["-o".into(), "remount,bind,ro".into(), dst.into_os_string()],
        ] {
            let status = std::process::Command::new("mount")
                .args(args)
                .status()
                .unwrap();
            assert!(status.success(), "mount failed");
        }
    };
    mount("erofs-src", "erofs");
    mount("erofs-src-nolock", "erofs-nolock");
    let cases = [
        ("erofs lock read-only", "erofs", readonly()),
        ("erofs no-lock read-only", "erofs-nolock", readonly()),
        (
            "erofs no-lock read-only file_mode 0640",
            "erofs-nolock",
            readonly().file_mode(0o640),
        ),
        ("erofs writable", "erofs", StoreOptions::default()),
    ];
    for (case, dir, options) in cases {
        report(&describe(case, CookieStore::open(base.join(dir), options)));
    }
}
