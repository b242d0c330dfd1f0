//! The tool's manners: closed pipes, read-only directories, exit codes, help, reopening.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command as StdCommand, Stdio};

use crate::common::*;
use crate::snapshots::padded_store;
use crate::support::*;
use cookiestore::{CookieStore, StoreOptions};
use predicates::prelude::*;

#[test]
fn output_to_a_closed_pipe_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    padded_store(dir.path());
    for args in [
        vec!["dump"],
        vec!["export"],
        vec!["dump", "--format", "table"],
    ] {
        let mut cmd = StdCommand::new(BIN);
        cmd.args(&args).arg(dir.path());
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut first = [0u8; 100];
        stdout.read_exact(&mut first).unwrap();
        drop(stdout); // like `| head -c 100`
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), "", "{args:?}");
    }
}

// ---- read-only use ------------------------------------------------------------------------

fn tree_state(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            // lock.mdb is LMDB's reader table: readers register in it.
            let bytes = if name == "lock.mdb" {
                Vec::new()
            } else {
                std::fs::read(e.path()).unwrap()
            };
            (name, bytes)
        })
        .collect();
    files.sort();
    files
}

#[test]
fn reading_commands_work_in_a_read_only_directory_and_change_nothing() {
    use std::os::unix::fs::PermissionsExt;
    let base = tempfile::tempdir().unwrap();
    std::fs::set_permissions(base.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let store = base.path().join("store");
    std::fs::create_dir(&store).unwrap();
    std::fs::copy(fixture("cfxdb-db/data.mdb"), store.join("data.mdb")).unwrap();
    // The store as cfxdb left it; lock.mdb exists, as it does beside any store in use.
    drop(CookieStore::open(&store, StoreOptions::default().readonly(true)).unwrap());
    let out_dir = base.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    std::fs::set_permissions(&out_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::set_permissions(
        store.join("data.mdb"),
        std::fs::Permissions::from_mode(0o444),
    )
    .unwrap();
    std::fs::set_permissions(
        store.join("lock.mdb"),
        std::fs::Permissions::from_mode(0o666),
    )
    .unwrap();
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o555)).unwrap();
    let before = tree_state(&store);

    // As root, permissions do not apply: run the tool as `nobody` when setpriv is there.
    let setpriv = Path::new("/usr/bin/setpriv");
    let as_user = running_as_root() && setpriv.exists();
    let tool = |args: &[&str]| {
        let mut cmd = if as_user {
            let mut c = StdCommand::new(setpriv);
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN]);
            c
        } else {
            StdCommand::new(BIN)
        };
        // check on the system clock: the fixture's cookies were created after cfxdb_now,
        // which check reports (created-in-future).
        if args[0] != "check" {
            cmd.args(["--now", &cfxdb_now()]);
        }
        let out = cmd.args(args).output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let st = s(&store);
    let value = expected_cfxdb()[0]["value"].as_str().unwrap().to_string();
    let copy = out_dir.join("copy");
    for args in [
        vec!["dump", st],
        vec!["dump", st, "--format", "table"],
        vec!["stats", st],
        vec!["get", st, &value],
        vec!["check", st],
        vec!["export", st],
        vec!["purge", st, "--dry-run"],
        vec!["copy", st, s(&copy)],
    ] {
        let (code, stdout, stderr) = tool(&args);
        assert_eq!(code, 0, "{args:?}: {stderr}");
        assert!(!stdout.is_empty(), "{args:?}");
    }
    assert_eq!(
        tree_state(&store),
        before,
        "reading commands changed the store"
    );
    if as_user || !running_as_root() {
        // Writing needs write access, and says so on one line.
        let (code, _, stderr) = tool(&["delete", st, &value]);
        assert_eq!(code, 2);
        assert_one_line(&stderr, "permission");
        assert_eq!(tree_state(&store), before);
    }
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o755)).unwrap();
}

// ---- user errors --------------------------------------------------------------------------

#[test]
fn each_user_error_gives_its_exit_code_and_a_one_line_message() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let missing = d.join("missing");
    let file = d.join("file.txt");
    std::fs::write(&file, "hello").unwrap();
    let empty = d.join("empty");
    std::fs::create_dir(&empty).unwrap();
    let garbage = d.join("garbage");
    std::fs::create_dir(&garbage).unwrap();
    std::fs::write(garbage.join("data.mdb"), vec![7u8; 8192]).unwrap();
    let format3 = d.join("format3");
    drop(CookieStore::open(&format3, StoreOptions::default()).unwrap());
    {
        use std::io::{Seek, SeekFrom};
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(format3.join("data.mdb"))
            .unwrap();
        for off in [20, 4096 + 20] {
            f.seek(SeekFrom::Start(off)).unwrap();
            f.write_all(&3u32.to_le_bytes()).unwrap();
        }
    }
    let store = d.join("store");
    let cookies = make_store(&store, 3, now_ns());

    let no_dat = d.join("no.dat");
    let no_jsonl = d.join("no.jsonl");
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (vec!["dump", s(&missing)], 2, "does not exist"),
        (vec!["stats", s(&file)], 2, "not a cookie store"),
        (vec!["dump", s(&empty)], 2, "no data.mdb"),
        (vec!["check", s(&garbage)], 2, "not an LMDB file"),
        (vec!["dump", s(&format3)], 2, "format 3"),
        (vec!["delete", s(&missing), "x"], 2, "does not exist"),
        (
            vec!["import", s(&missing), s(&no_dat)],
            2,
            "cannot read the cookies file",
        ),
        (
            vec!["restore", s(&missing), s(&no_jsonl)],
            2,
            "cannot read the export",
        ),
        (
            vec!["--now", "friday", "dump", s(&store)],
            2,
            "invalid timestamp",
        ),
        (vec!["dump"], 2, "required"),
        (
            vec!["dump", s(&store), "--limit", "many"],
            2,
            "invalid value",
        ),
        (vec!["frobnicate"], 2, "unrecognized subcommand"),
        (vec!["get", s(&store), "no-such-value"], 1, "no live cookie"),
        (vec!["delete", s(&store), "no-such-value"], 1, "no cookie"),
        (vec!["restore", s(&store), s(&file)], 2, "refusing"),
    ];
    for (args, code, message) in cases {
        let out = run(&args);
        assert_eq!(out.code, code, "{args:?}: {}", out.stderr);
        assert_one_line(&out.stderr, message);
    }
    assert!(!missing.exists(), "no command created the missing store");
    cli()
        .args(["get", s(&store), &cookies[0].value])
        .assert()
        .success();
}

#[test]
fn every_subcommand_has_help_with_an_example() {
    for sub in [
        "dump", "stats", "get", "delete", "purge", "check", "repair", "import", "export",
        "restore", "copy",
    ] {
        cli()
            .args([sub, "--help"])
            .assert()
            .success()
            .stdout(predicate::str::contains("Example"));
    }
    cli()
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("Exit codes").and(predicate::str::contains("2  error")));
}

// ---- stores the tool leaves behind open again ------------------------------------------------

/// A purged store opens again: LMDB may leave data.mdb shorter than its last allocated page
/// (pages allocated and freed in one transaction are never written), so the open's length
/// check compares the B-tree roots, which LMDB always writes, not `last_pg`.
#[test]
fn a_purged_store_reopens() {
    let dir = cfxdb_copy();
    // 2026-11-22T00:00:00Z: 43 of the fixture's 60 cookies have expired.
    let (store, _) = open_at(dir.path(), 1_795_305_600_000_000_000);
    assert_eq!(store.purge_expired().unwrap(), 43);
    drop(store);
    let reopened = CookieStore::open(dir.path(), StoreOptions::default().readonly(true));
    assert!(reopened.is_ok(), "{}", reopened.unwrap_err());
}

/// A writable open after another program wrote (cfxdb, Crossbar.io) reconciles the expiry
/// index: cookies that program added get their entries, and entries of cookies it deleted go.
#[test]
fn a_writable_open_after_a_foreign_write_reconciles_the_expiry_index() {
    let now = now_ns();
    let dir = tempfile::tempdir().unwrap();
    make_store(dir.path(), 3, now);
    // As cfxdb writes a cookie: the record and its value-index entry, nothing else.
    raw_edit(dir.path(), false, |t, db, s| {
        let c = sample_cookie(7, now);
        db.put(t, &key(s.cookies, c.oid.as_bytes()), &c.encode().unwrap())
            .unwrap();
        db.put(t, &key(s.by_value, c.value.as_bytes()), c.oid.as_bytes())
            .unwrap();
    });
    let store = CookieStore::open(dir.path(), options(now)).unwrap();
    let stats = store.stats().unwrap();
    assert_eq!(
        (stats.records, stats.lmdb.unwrap().expiry_index_entries),
        (4, 4),
        "the cfxdb-written cookie has no expiry entry after a writable open"
    );
}
