//! docs/cli.md, the manual of the `cookiestore` tool: its `console` examples run in order, with
//! trycmd, in a directory holding Crossbar.io's `cookies.dat` (the test fixture) and a store
//! damaged on purpose (`damaged`), and each must print what docs/cli.md shows (stdout and stderr together;
//! `[..]` matches any text within a line). A `$ echo $?` line and the code under it give the
//! exit code of the command before it.

// A failed unwrap here (helpers included) is the test, bench or example failing.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{fixture, with_raw_env};
use uuid::Uuid;

const BIN: &str = env!("CARGO_BIN_EXE_cookiestore");

/// The instant the examples of docs/cli.md pin with `--now`.
const DOCS_NOW: &str = "2026-11-22T12:00:00Z";

/// The `console` blocks of `doc` as a trycmd case (Markdown), with each
/// `$ echo $?` + code pair turned into trycmd's `? CODE` line under the command it is about.
fn trycmd_case(doc: &str) -> String {
    let mut case = String::new();
    let mut block: Option<Vec<String>> = None;
    let mut lines = doc.lines();
    while let Some(line) = lines.next() {
        match &mut block {
            None if line.trim_end() == "```console" => block = Some(Vec::new()),
            None => {}
            Some(b) if line.trim_end() == "```" => {
                // trycmd drops the last newline of each step's expected output: an empty line
                // after each output keeps the newline the tool prints.
                case.push_str("```console\n");
                for (i, l) in b.iter().enumerate() {
                    if i > 0 && l.starts_with("$ ") {
                        case.push('\n');
                    }
                    case.push_str(l);
                    case.push('\n');
                }
                case.push_str("\n```\n\n");
                block = None;
            }
            Some(b) if line.trim_end() == "$ echo $?" => {
                let code = lines.next().expect("an exit code under `$ echo $?`").trim();
                let command = b
                    .iter()
                    .rposition(|l| l.starts_with("$ "))
                    .expect("a command before `$ echo $?`");
                b.insert(command + 1, format!("? {code}"));
            }
            Some(b) => b.push(line.to_string()),
        }
    }
    assert!(block.is_none(), "a console block is not closed");
    case
}

/// Runs the tool in `dir`; panics unless it exits 0.
fn cookiestore(dir: &Path, args: &[&str]) {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run cookiestore");
    assert!(
        out.status.success(),
        "cookiestore {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn key(slot: u16, rest: &[u8]) -> Vec<u8> {
    let mut k = slot.to_be_bytes().to_vec();
    k.extend_from_slice(rest);
    k
}

/// `dir/damaged`: the fixture imported, then, written by "another program" (plain LMDB): a
/// record that is not a FlatBuffers cookie, a value-index entry pointing at no record, and one
/// cookie's value-index entry removed. Slots 1 and 2 are the Cookies table and the value index
/// in every store cookiestore creates.
fn damaged_store(dir: &Path) {
    cookiestore(
        dir,
        &["--now", DOCS_NOW, "import", "damaged", "cookies.dat"],
    );
    let garbage = Uuid::parse_str("5b0e1d2c-3a4b-4c5d-8e9f-0a1b2c3d4e5f").unwrap();
    let nowhere = Uuid::parse_str("9a8b7c6d-5e4f-4031-8293-a4b5c6d7e8f9").unwrap();
    with_raw_env(&dir.join("damaged"), |txn, db| {
        db.put(txn, &key(1, garbage.as_bytes()), b"\x01garbage\xff")
            .unwrap();
        db.put(txn, &key(2, b"stolen-value"), nowhere.as_bytes())
            .unwrap();
        let removed = db
            .delete(txn, &key(2, b"07m25IiSXUpLrjoyGM6o8BWW"))
            .unwrap();
        assert!(
            removed,
            "the fixture has a cookie with value 07m25IiSXUpLrjoyGM6o8BWW"
        );
    });
}

/// The first `cat` on PATH.
fn cat() -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("cat"))
                .find(|p| p.is_file())
        })
        .expect("cat on PATH")
}

#[test]
fn cli_docs_console_examples() {
    let doc_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/cli.md");
    let doc = std::fs::read_to_string(&doc_path).expect("read docs/cli.md");
    let case = trycmd_case(&doc);
    // Every command of the manual's table has an example.
    for command in [
        "dump", "stats", "get", "delete", "purge", "check", "repair", "import", "export",
        "restore", "copy",
    ] {
        assert!(
            case.lines()
                .any(|l| l.starts_with("$ cookiestore") && l.split(' ').any(|w| w == command)),
            "docs/cli.md has no console example of `{command}`"
        );
    }

    let root = tempfile::tempdir().unwrap();
    let case_path = root.path().join("cli.md");
    std::fs::write(&case_path, &case).unwrap();
    let cwd = root.path().join("cli.in");
    std::fs::create_dir(&cwd).unwrap();
    std::fs::copy(fixture("crossbar-cookies.dat"), cwd.join("cookies.dat")).unwrap();
    damaged_store(&cwd);

    trycmd::TestCases::new()
        .register_bin("cookiestore", PathBuf::from(BIN))
        .register_bin("cat", cat())
        .case(&case_path)
        .run();
}

#[test]
fn exit_codes_become_trycmd_status_lines() {
    let doc = "# The `cookiestore` tool\n\n```console\n$ cookiestore get s v\n\
               cookiestore: no live cookie with value \"v\"\n$ echo $?\n1\n```\n\n\
               ```sh\n$ not a console block\n```\n\n## Next\n\n```console\n$ ls\n```\n";
    assert_eq!(
        trycmd_case(doc),
        "```console\n$ cookiestore get s v\n? 1\ncookiestore: no live cookie with value \"v\"\n\
         \n```\n\n```console\n$ ls\n\n```\n\n"
    );
}
