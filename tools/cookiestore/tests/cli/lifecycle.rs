//! `get`, `delete`, `purge`, `copy`, `stats`: what each does to a store, and private files.

use std::path::Path;

use crate::common::*;
use crate::support::*;
use cookiestore::CookieStore;
use cookiestore::format_rfc3339_ns;
use predicates::prelude::*;
use serde_json::Value;
use uuid::Uuid;

#[test]
fn get_and_delete() {
    let dir = cfxdb_copy();
    let path = s(dir.path());
    let now = cfxdb_now();
    let want = expected_cfxdb()
        .into_iter()
        .find(|c| c.get("authid").is_some())
        .unwrap();
    let value = want["value"].as_str().unwrap();
    let got = run(&["--now", &now, "get", path, value, "--json"]);
    assert_eq!(got.code, 0, "{}", got.stderr);
    assert_eq!(json_lines(&got.stdout), [dump_form(&want)]);
    let human = run(&["--now", &now, "get", path, value]);
    assert!(human.stdout.lines().next().unwrap().starts_with("oid "));
    assert!(human.stdout.contains("expires"), "{}", human.stdout);

    cli()
        .args(["delete", path, value])
        .assert()
        .success()
        .stdout(predicate::str::contains("deleted"));
    let gone = run(&["--now", &now, "get", path, value]);
    assert_eq!(gone.code, 1);
    assert_one_line(&gone.stderr, "no live cookie");
    let again = run(&["delete", path, value]);
    assert_eq!(again.code, 1);
    assert_one_line(&again.stderr, "no cookie");
    cli().args(["check", path]).assert().success();
}

#[test]
fn purge_dry_run_then_purge() {
    let dir = cfxdb_copy();
    let path = s(dir.path());
    let at = "2026-11-22T00:00:00Z";
    let dry = run(&["--now", at, "purge", path, "--dry-run", "--json"]);
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    let dry: Value = serde_json::from_str(&dry.stdout).unwrap();
    let expired = dry["would_purge"].as_u64().unwrap();
    assert!(expired > 0);
    assert_eq!(dry["purged"], 0);
    assert!(dry["seconds"].as_f64().is_some());
    assert_eq!(
        run(&["--now", at, "dump", path, "--include-expired"])
            .stdout
            .lines()
            .count(),
        60
    );

    // --force: the pinned instant may be later than this machine's clock.
    cli()
        .args(["--now", at, "purge", path, "--force"])
        .assert()
        .success()
        .stdout(predicate::str::contains(format!(
            "purged {expired} expired cookies in"
        )));
    assert_eq!(
        run(&["--now", at, "dump", path, "--include-expired"])
            .stdout
            .lines()
            .count() as u64,
        60 - expired
    );
    cli().args(["--now", at, "check", path]).assert().success();

    // A --now in the future would delete valid cookies: refused without --force.
    let refused = run(&["--now", "2200-01-01T00:00:00Z", "purge", path]);
    assert_eq!(refused.code, 2);
    assert_one_line(&refused.stderr, "--force");
}

#[test]
fn purge_frees_a_store_filled_to_maxsize() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let t0 = now_ns() - 86_400_000_000_000;
    let store = CookieStore::open(
        &path,
        options(t0)
            .maxsize(8 * 1024 * 1024)
            .initial_mapsize(8 * 1024 * 1024),
    )
    .unwrap();
    // Fill to maxsize with cookies that expire after a second.
    let (mut n, mut step) = (0u64, 256);
    loop {
        match store.as_lmdb().unwrap().batch("fill", |b| {
            (0..step).try_for_each(|_| b.create("cbtid", 24, 1).map(drop))
        }) {
            Ok(()) => n += step as u64,
            Err(cookiestore::Error::MapFull { .. }) if step > 1 => step /= 2,
            Err(cookiestore::Error::MapFull { .. }) => break,
            Err(e) => panic!("fill: {e}"),
        }
    }
    assert!(n > 5_000, "filled with {n} cookies");
    drop(store);
    let out = run(&["--maxsize", "8MiB", "purge", "--force", "--json", s(&path)]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let report: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(report["purged"], n, "{report}");
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[cfg(unix)]
#[test]
fn copy_and_export_create_private_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    make_store(&store, 5, now_ns());
    let copy = dir.path().join("copy");
    let out = run(&["copy", s(&store), s(&copy)]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(mode(&copy), 0o700);
    assert_eq!(mode(&copy.join("data.mdb")), 0o600);
    let file = dir.path().join("cookies.jsonl");
    let out = run(&["export", s(&store), "-o", s(&file)]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(mode(&file), 0o600);
}

#[cfg(unix)]
#[test]
fn export_and_repair_never_write_through_a_planted_symlink() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    make_store(&store, 5, now_ns());
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "precious\n").unwrap();

    // export -o X with X.tmp planted: the victim is untouched, X is written.
    let file = dir.path().join("cookies.jsonl");
    symlink(&victim, dir.path().join("cookies.jsonl.tmp")).unwrap();
    let out = run(&["export", s(&store), "-o", s(&file)]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    assert_eq!(std::fs::read_to_string(&file).unwrap().lines().count(), 5);

    // repair with quarantine.jsonl planted: refused, the victim untouched.
    let stray = Uuid::new_v4();
    raw_edit(&store, true, |t, db, s| {
        db.put(t, &key(s.cookies, stray.as_bytes()), b"\x01garbage\xff")
            .unwrap();
    });
    symlink(&victim, store.join("quarantine.jsonl")).unwrap();
    let out = run(&["repair", s(&store)]);
    assert_ne!(out.code, 0, "{}", out.stdout);
    assert_one_line(&out.stderr, "quarantine");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
}

#[test]
fn copy_compact_is_a_consistent_store() {
    let dir = tempfile::tempdir().unwrap();
    let now = now_ns();
    make_store(dir.path(), 500, now);
    let dest = tempfile::tempdir().unwrap();
    let copy = dest.path().join("copy");
    cli()
        .args(["copy", s(dir.path()), s(&copy), "--compact"])
        .assert()
        .success()
        .stdout(predicate::str::contains("compacted"));
    let n = format_rfc3339_ns(now);
    let dump = |p: &Path| run(&["--now", &n, "dump", s(p), "--include-expired"]).stdout;
    assert_eq!(dump(&copy), dump(dir.path()));
    cli().args(["check", s(&copy)]).assert().success();
    let again = run(&["copy", s(dir.path()), s(&copy)]);
    assert_eq!(again.code, 2);
    assert_one_line(&again.stderr, "a copy goes into a new directory");
}

#[test]
fn stats_text_and_json() {
    let dir = cfxdb_copy();
    let path = s(dir.path());
    let now = cfxdb_now();
    let out = run(&["--now", &now, "stats", path, "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    let expected = expected_cfxdb();
    assert_eq!(v["live"], 60);
    assert_eq!(v["expired"], 0);
    assert_eq!(
        v["authenticated"],
        expected
            .iter()
            .filter(|c| c.get("authid").is_some())
            .count()
    );
    let oldest = expected
        .iter()
        .map(|c| c["created"].as_u64().unwrap())
        .min()
        .unwrap();
    assert_eq!(v["oldest_created"], oldest);
    assert_eq!(v["now"], FIXTURE_DAY_NS);
    assert_eq!(v["path"], path);
    assert_eq!(v["tables"].as_array().unwrap().len(), 2);
    assert_eq!(v["tables"][0]["name"], "cfxdb.cookiestore._cookie.Cookies");
    assert_eq!(v["tables"][1]["slot"], 2);
    assert!(v["map_used"].as_u64().unwrap() > 0);
    assert!(v["page_size"].as_u64().unwrap() >= 4096);
    assert!(v["readers_max"].as_u64().unwrap() > 0);
    assert_eq!(v["foreign_writes"], true);

    let text = run(&["--now", &now, "stats", path]);
    for key in [
        "cookies",
        "next expiry",
        "map",
        "pages",
        "reader slots",
        "tables",
    ] {
        assert!(text.stdout.contains(key), "{key}: {}", text.stdout);
    }
    assert!(
        text.stdout.contains("60 live, 0 expired"),
        "{}",
        text.stdout
    );
}

// ---- check / repair -----------------------------------------------------------------------
