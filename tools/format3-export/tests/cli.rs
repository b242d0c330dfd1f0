//! `cookiestore-format3` run as a process: what it refuses, and that refusing writes nothing.
//! Reading real format-3 stores (written by zlmdb 26 and by Crossbar.io's own store class) is
//! tested end to end through `cookiestore import` in tools/cookiestore/tests/format3.rs.

// Helpers outside `#[test]` functions unwrap too: a failed unwrap is the test failing.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_cookiestore-format3");

fn run(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("run cookiestore-format3")
}

fn fixture_db() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/cfxdb-db/data.mdb")
}

/// A directory holding `data`, as data.mdb.
fn store_with(data: &[u8]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("data.mdb"), data).unwrap();
    dir
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

#[test]
fn format1_is_refused_and_left_alone() {
    let data = std::fs::read(fixture_db()).unwrap();
    let dir = store_with(&data);
    let out = run(&[dir.path().as_os_str()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        out.stdout.is_empty(),
        "nothing on stdout for a refused store"
    );
    let err = stderr(&out);
    assert!(
        err.starts_with("cookiestore-format3: ") && err.contains("LMDB data format 1"),
        "{err}"
    );
    assert_eq!(std::fs::read(dir.path().join("data.mdb")).unwrap(), data);
    assert!(
        !dir.path().join("lock.mdb").exists(),
        "no lock file is created"
    );
}

#[test]
fn not_a_store_is_refused() {
    let empty = tempfile::tempdir().unwrap();
    let out = run(&[empty.path().as_os_str()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no data.mdb"), "{}", stderr(&out));
    assert_eq!(std::fs::read_dir(empty.path()).unwrap().count(), 0);

    let junk = store_with(&[7u8; 8192]);
    let out = run(&[junk.path().as_os_str()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("not an LMDB file"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn format3_without_cookie_tables_is_refused() {
    // Meta pages of LMDB 1.0 (magic at 24, format 3) over nothing LMDB can use: LMDB's own
    // refusal is reported, nothing is printed on stdout, nothing is created.
    let mut page = vec![0u8; 2 * 4096];
    for base in [0, 4096] {
        page[base + 24..base + 28].copy_from_slice(&0xBEEF_C0DEu32.to_le_bytes());
        page[base + 28..base + 32].copy_from_slice(&3u32.to_le_bytes());
    }
    let dir = store_with(&page);
    let out = run(&[dir.path().as_os_str()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    assert!(
        stderr(&out).starts_with("cookiestore-format3: "),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read(dir.path().join("data.mdb")).unwrap(), page);
    assert!(!dir.path().join("lock.mdb").exists());
}

#[test]
fn usage() {
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--help"));
    let out = run(&["--help".as_ref()]);
    assert!(out.status.success());
    assert!(
        String::from_utf8(out.stdout)
            .unwrap()
            .contains("cookiestore import")
    );
    let out = run(&["--version".as_ref()]);
    assert!(out.status.success());
    assert!(
        String::from_utf8(out.stdout)
            .unwrap()
            .contains("protocol 1")
    );
    let out = run(&["a".as_ref(), "b".as_ref()]);
    assert_eq!(out.status.code(), Some(2));
}
