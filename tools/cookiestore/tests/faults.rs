//! The CLI on faults: a full file system, re-run imports, huge lines, big integers.

// A failed unwrap here (helpers included) is the test, bench or example failing.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;

use std::sync::Arc;

use common::tmpfs::Tmpfs;
use common::{can_mount, need};
use cookiestore::{CookieStore, ManualClock, StoreOptions, parse_rfc3339_ns};

const BIN: &str = env!("CARGO_BIN_EXE_cookiestore");

/// The instant the imports of `dat_line`'s cookies (created 2026-11-22T02:49:50Z, a week's
/// max_age) pin with `--now`; the store is read at the same instant, so that the tests pass
/// on any date.
const DAT_NOW: &str = "2026-11-22T12:00:00Z";

/// Read-only options whose clock stands at `DAT_NOW`, as the CLI's `--now` does.
fn read_at_dat_now() -> StoreOptions {
    let now = parse_rfc3339_ns(DAT_NOW).expect("DAT_NOW is RFC 3339");
    StoreOptions::default()
        .readonly(true)
        .clock(Arc::new(ManualClock::new(now)))
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn run(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Run {
    let out = Command::new(BIN)
        .args(args.iter().map(|a| a.as_ref()))
        .output()
        .unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

const MOUNT_NEEDED: &str = "faults: the full file system cases need root (a small tmpfs)";

#[test]
fn cli_on_a_full_disk_reports_it_and_never_crashes() {
    if !need(can_mount(), MOUNT_NEEDED) {
        return;
    }
    // An export of 6,000 cookies, made on a normal file system.
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    let s = CookieStore::open(&src, StoreOptions::default()).unwrap();
    s.as_lmdb()
        .unwrap()
        .batch("create", |b| {
            for _ in 0..6000 {
                b.create("cbtid", 24, 3600)?;
            }
            Ok(())
        })
        .unwrap();
    drop(s);
    let export = work.path().join("export.jsonl");
    let r = run(&[&"export", &src, &"-o", &export]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);

    let fs = Tmpfs::mount("768k");
    // restore into a new store until the disk fills: the batches before stay.
    let store = fs.path().join("store");
    let r = run(&[&"restore", &store, &export]);
    assert_eq!(
        r.code,
        Some(2),
        "exit 2 with an error, no signal: {}{}",
        r.stdout,
        r.stderr
    );
    assert!(r.stderr.contains("disk is full"), "{}", r.stderr);
    assert!(r.stderr.contains(&*store.to_string_lossy()), "{}", r.stderr);
    let went_in: u64 = r
        .stderr
        .split("; ")
        .find_map(|p| p.strip_suffix(" cookie(s) went in before (committed in earlier batches, and kept), the rest did not"))
        .unwrap_or_else(|| panic!("says how many went in: {}", r.stderr))
        .parse()
        .unwrap();
    let s = CookieStore::open(&store, StoreOptions::default().readonly(true)).unwrap();
    assert_eq!(s.count().unwrap(), went_in, "{}", r.stderr);
    drop(s);

    // stats that has to create lock.mdb on the full disk: a clear error, not SIGBUS.
    std::fs::remove_file(store.join("lock.mdb")).unwrap();
    let fill = fs.fill("fill");
    let r = run(&[&"stats", &store]);
    assert_eq!(r.code, Some(2), "no signal: {}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("disk is full"), "{}", r.stderr);

    // Creating a store on the full disk: clear error, no data.mdb left behind.
    let fresh = fs.path().join("fresh");
    let r = run(&[&"restore", &fresh, &export]);
    assert_eq!(r.code, Some(2), "no signal: {}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("disk is full"), "{}", r.stderr);
    assert!(!fresh.join("data.mdb").exists());
    let r = fs.unfill(&fill, || {
        let r = run(&[&"stats", &store]);
        if r.code == Some(2) && r.stderr.contains("disk is full") {
            Err(r.stderr)
        } else {
            Ok(r)
        }
    });
    assert_eq!(r.code, Some(0), "{}", r.stderr);

    // import until the disk fills: it says how many went in, and they are there.
    let fs = Tmpfs::mount("3m");
    let dat = work.path().join("cookies.dat");
    write_dat(&dat, 6000, 0);
    let store = fs.path().join("imported");
    let r = run(&[&"--now", &DAT_NOW, &"import", &store, &dat]);
    assert_eq!(
        r.code,
        Some(2),
        "exit 2 with an error, no signal: {}{}",
        r.stdout,
        r.stderr
    );
    assert!(r.stderr.contains("cannot import cookies"), "{}", r.stderr);
    assert!(r.stderr.contains("disk is full"), "{}", r.stderr);
    let went_in: u64 = r
        .stderr
        .split("; ")
        .find_map(|p| p.strip_suffix(" cookie(s) went in before (committed in earlier batches, and kept), the rest did not"))
        .unwrap_or_else(|| panic!("says how many went in: {}", r.stderr))
        .parse()
        .unwrap();
    assert!(went_in > 0, "{}", r.stderr);
    let s = CookieStore::open(&store, read_at_dat_now()).unwrap();
    assert_eq!(s.count().unwrap(), went_in, "{}", r.stderr);
}

/// Import, log a cookie out, import the same file again: the cookie stays logged out (and is
/// reported), until `--force`.
#[test]
fn a_re_run_import_does_not_bring_a_logged_out_cookie_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let file = common::fixture("crossbar-cookies.dat");
    let now = DAT_NOW;
    let r = run(&[&"--now", &now, &"import", &store, &file]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stdout.contains("imported         32  new cookies"),
        "{}",
        r.stdout
    );
    let r = run(&[&"--now", &now, &"dump", &store]);
    let first: serde_json::Value = serde_json::from_str(r.stdout.lines().next().unwrap()).unwrap();
    let value = first["value"].as_str().unwrap().to_string();
    let r = run(&[&"--now", &now, &"delete", &store, &value]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);

    let r = run(&[&"--now", &now, &"import", &store, &file]);
    assert_eq!(r.code, Some(0), "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("imported          0  new cookies"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("logged out        1  skipped (logged out since an earlier import"),
        "{}",
        r.stdout
    );
    assert!(
        r.stderr.contains(
            "skipped 1 cookies logged out since an earlier import; --force brings them back"
        ),
        "{}",
        r.stderr
    );
    let r = run(&[&"--now", &now, &"get", &store, &value]);
    assert_eq!(
        r.code,
        Some(1),
        "the logged-out cookie must not authenticate: {}",
        r.stdout
    );
    // --dry-run says the same.
    let r = run(&[
        &"--now",
        &now,
        &"import",
        &"--dry-run",
        &"--json",
        &store,
        &file,
    ]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        (v["imported"].as_u64(), v["skipped_logged_out"].as_u64()),
        (Some(0), Some(1)),
        "{v}"
    );

    let r = run(&[&"--now", &now, &"import", &"--force", &store, &file]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stdout.contains("imported          1  new cookies"),
        "{}",
        r.stdout
    );
    let r = run(&[&"--now", &now, &"get", &store, &value]);
    assert_eq!(r.code, Some(0), "--force brings it back: {}", r.stderr);
}

#[test]
fn an_export_restored_into_a_new_store_keeps_a_logged_out_cookie_out_of_a_re_import() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let file = common::fixture("crossbar-cookies.dat");
    let now = DAT_NOW;
    let r = run(&[&"--now", &now, &"import", &store, &file]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let r = run(&[&"--now", &now, &"dump", &store]);
    let mut values = r.stdout.lines().map(|line| {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        v["value"].as_str().unwrap().to_string()
    });
    let (gone, later) = (values.next().unwrap(), values.next().unwrap());
    let r = run(&[&"--now", &now, &"delete", &store, &gone]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let export = dir.path().join("export.jsonl");
    let r = run(&[&"--now", &now, &"export", &store, &"-o", &export]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let restored = dir.path().join("restored");
    let r = run(&[&"--now", &now, &"restore", &restored, &export]);
    assert_eq!(r.code, Some(0), "{}{}", r.stdout, r.stderr);
    // One logged out before the export, one in the restored store after it.
    let r = run(&[&"--now", &now, &"delete", &restored, &later]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);

    let r = run(&[&"--now", &now, &"import", &restored, &file]);
    assert_eq!(r.code, Some(0), "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("imported          0  new cookies"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("logged out        2  skipped"),
        "{}",
        r.stdout
    );
    for value in [&gone, &later] {
        let r = run(&[&"--now", &now, &"get", &restored, value]);
        assert_eq!(r.code, Some(1), "{value} came back: {}", r.stdout);
    }
    let r = run(&[&"--now", &now, &"import", &"--force", &restored, &file]);
    assert!(
        r.stdout.contains("imported          2  new cookies"),
        "{}",
        r.stdout
    );
}

/// Runs the CLI and returns its exit code, stderr and peak RSS in KiB: the child's VmHWM
/// (/proc/PID/status), read every 2 ms while it runs (it only grows, so the last reading is
/// its peak up to 2 ms before the end). `wait4`'s ru_maxrss would count the test process's
/// own peak: a child spawned with vfork inherits its parent's high-water mark at exec.
fn run_measured(args: &[&dyn AsRef<std::ffi::OsStr>]) -> (Option<i32>, String, Rss) {
    let mut child = Command::new(BIN)
        .args(args.iter().map(|a| a.as_ref()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status_file = format!("/proc/{}/status", child.id());
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut s).unwrap();
        s
    });
    let (mut peak, mut peak_anon) = (0u64, 0u64);
    let status = loop {
        if let Ok(text) = std::fs::read_to_string(&status_file) {
            let field = |name: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(name))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            };
            if let (Some(hwm), Some(anon)) = (field("VmHWM:"), field("RssAnon:")) {
                peak = peak.max(hwm);
                peak_anon = peak_anon.max(anon);
            }
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    };
    assert!(peak > 0, "no VmHWM reading of the child");
    (
        status.code(),
        reader.join().unwrap(),
        Rss { peak, peak_anon },
    )
}

/// Peak memory of a child, KiB.
#[derive(Debug, Clone, Copy)]
struct Rss {
    /// VmHWM: every resident page, the store's mapped file pages (page cache) included.
    /// Reported (through Debug), not asserted: it grows with the store, not the input.
    #[allow(dead_code)]
    peak: u64,
    /// The largest RssAnon seen: the process's own memory (heap, stacks).
    peak_anon: u64,
}

/// A cookies.dat line for cookie `i`.
fn dat_line(i: u64) -> String {
    format!(
        "{{\"cbtid\": \"v{i:023}\", \"status\": \"created\", \"created\": \"2026-11-22T02:49:50.212Z\", \
         \"modified\": null, \"deleted\": null, \"max_age\": 604800, \"authid\": \"user{i}\", \
         \"authrole\": \"frontend\", \"authmethod\": \"cookie\", \"authrealm\": \"realm1\", \
         \"authextra\": {{\"n\": {i}, \"pad\": \"{}\"}}}}\n",
        "x".repeat(200)
    )
}

/// Writes `n` bytes `byte`, 64 KiB at a time (the test process stays small: its own peak
/// would not disturb the children's figures anyway, but it keeps the machine's memory free).
fn write_repeated(f: &mut impl std::io::Write, byte: u8, n: usize) {
    let block = vec![byte; 1 << 16];
    let mut left = n;
    while left > 0 {
        let k = left.min(block.len());
        f.write_all(&block[..k]).unwrap();
        left -= k;
    }
}

/// Writes a cookies.dat of `cookies` distinct cookies, with a line of `huge` bytes after the
/// first cookie when `huge` > 0.
fn write_dat(path: &Path, cookies: u64, huge: usize) {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for i in 0..cookies {
        f.write_all(dat_line(i).as_bytes()).unwrap();
        if i == 0 && huge > 0 {
            f.write_all(b"{\"cbtid\": \"huge\", \"authextra\": \"")
                .unwrap();
            write_repeated(&mut f, b'y', huge);
            f.write_all(b"\"}\n").unwrap();
        }
    }
    f.flush().unwrap();
}

/// A huge line is reported with its number and skipped (the others go in), and the import's
/// and restore's peak memory stays flat as the input grows.
#[test]
fn import_and_restore_stream_with_bounded_lines_and_flat_memory() {
    let dir = tempfile::tempdir().unwrap();
    let now = DAT_NOW;
    let small = dir.path().join("small.dat");
    write_dat(&small, 5_000, 0);
    let large = dir.path().join("large.dat");
    let (cookies, huge) = (40_000u64, 64 << 20);
    write_dat(&large, cookies, huge);

    let (code, err_small, rss_small) =
        run_measured(&[&"--now", &now, &"import", &dir.path().join("s1"), &small]);
    assert_eq!(code, Some(0), "{err_small}");
    let store = dir.path().join("s2");
    let (code, err, rss_large) = run_measured(&[&"--now", &now, &"import", &store, &large]);
    assert_eq!(code, Some(1), "bad lines found: {err}");
    assert!(
        err.contains(&format!(
            "large.dat line 2: line is {} bytes long",
            huge + 35
        )),
        "{err}"
    );
    let s = CookieStore::open(&store, StoreOptions::default().readonly(true)).unwrap();
    let count = s
        .as_lmdb()
        .unwrap()
        .snapshot(|s| Ok(s.records()?.count() as u64))
        .unwrap();
    assert_eq!(count, cookies, "every other line went in");
    drop(s);
    eprintln!(
        "import peak RSS: {rss_small:?} KiB for {} bytes, {rss_large:?} KiB for {} bytes",
        std::fs::metadata(&small).unwrap().len(),
        std::fs::metadata(&large).unwrap().len()
    );
    assert!(
        rss_large.peak_anon < 4 * rss_small.peak_anon,
        "import: {rss_large:?} KiB vs {rss_small:?} KiB"
    );

    // restore: an export of the large store with a huge line in the middle.
    let export = dir.path().join("export.jsonl");
    let r = run(&[&"--now", &now, &"export", &store, &"-o", &export]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    {
        use std::io::{BufRead, Write};
        let with_huge = dir.path().join("export-huge.jsonl");
        let mut out = std::io::BufWriter::new(std::fs::File::create(&with_huge).unwrap());
        let input = std::io::BufReader::new(std::fs::File::open(&export).unwrap());
        for (n, line) in input.lines().enumerate() {
            out.write_all(line.unwrap().as_bytes()).unwrap();
            out.write_all(b"\n").unwrap();
            if n == 0 {
                write!(out, "{{\"oid\": \"{}\", \"pad\": \"", uuid::Uuid::new_v4()).unwrap();
                write_repeated(&mut out, b'z', huge);
                out.write_all(b"\"}\n").unwrap();
            }
        }
        out.flush().unwrap();
        drop(out);
        std::fs::rename(&with_huge, &export).unwrap();
    }
    let small_export = dir.path().join("small.jsonl");
    let r = run(&[
        &"--now",
        &now,
        &"export",
        &dir.path().join("s1"),
        &"-o",
        &small_export,
    ]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let (code, err_small, rss_small) =
        run_measured(&[&"restore", &dir.path().join("r1"), &small_export]);
    assert_eq!(code, Some(0), "{err_small}");
    let restored = dir.path().join("r2");
    let (code, err, rss_large) = run_measured(&[&"restore", &restored, &export]);
    assert_eq!(code, Some(1), "bad line found: {err}");
    assert!(err.contains("export.jsonl line 2: line is "), "{err}");
    assert!(
        err.contains("bytes long, longer than the 1048576 bytes"),
        "{err}"
    );
    let s = CookieStore::open(&restored, StoreOptions::default().readonly(true)).unwrap();
    assert_eq!(
        s.as_lmdb()
            .unwrap()
            .snapshot(|s| Ok(s.records()?.count() as u64))
            .unwrap(),
        cookies
    );
    eprintln!(
        "restore peak RSS: {rss_small:?} KiB for {} bytes, {rss_large:?} KiB for {} bytes",
        std::fs::metadata(&small_export).unwrap().len(),
        std::fs::metadata(&export).unwrap().len()
    );
    assert!(
        rss_large.peak_anon < 4 * rss_small.peak_anon,
        "restore: {rss_large:?} KiB vs {rss_small:?} KiB"
    );
}

/// On a disk so full that creates fail, `cookiestore logout` and `cookiestore delete` still
/// log out (into the space the store keeps for deletions), while another process holds a
/// snapshot so that freed pages cannot be reused.
#[test]
fn cli_logout_and_delete_succeed_on_a_full_disk() {
    use cookiestore::{Auth, AuthContext, Error};
    if !need(can_mount(), MOUNT_NEEDED) {
        return;
    }
    let fs = Tmpfs::mount("32m");
    let store = fs.path().join("store");
    let s = CookieStore::open(&store, StoreOptions::default()).unwrap();
    let mut values = Vec::new();
    s.as_lmdb()
        .unwrap()
        .batch("create", |b| {
            values.clear();
            for i in 0..200 {
                let c = b.create("cbtid", 24, 3600)?;
                let who = if i % 10 == 0 { "alice" } else { "bob" };
                let auth = Auth::new(who, "user", "wampcra", "realm1");
                b.set_auth(&c.value, &auth, &AuthContext::default())?;
                values.push(c.value);
            }
            Ok(())
        })
        .unwrap();
    fs.fill("fill");
    let (release, wait_release) = std::sync::mpsc::channel::<()>();
    let (held, wait_held) = std::sync::mpsc::channel::<()>();
    let reader = {
        let s = s.clone();
        std::thread::spawn(move || {
            s.as_lmdb()
                .unwrap()
                .snapshot(|_| {
                    held.send(()).unwrap();
                    wait_release.recv().unwrap();
                    Ok(())
                })
                .unwrap();
        })
    };
    wait_held.recv().unwrap();
    let err = loop {
        if let Err(e) = s.create("cbtid", 24, 3600) {
            break e;
        }
    };
    assert!(matches!(err, Error::DiskFull { .. }), "{err:?}");

    let r = run(&[&"logout", &store, &"--authid", &"alice"]);
    assert_eq!(r.code, Some(0), "{}{}", r.stdout, r.stderr);
    let r = run(&[&"delete", &store, &values[1]]);
    assert_eq!(r.code, Some(0), "{}{}", r.stdout, r.stderr);
    let r = run(&[&"logout", &store, &"--value", &values[2]]);
    assert_eq!(r.code, Some(0), "{}{}", r.stdout, r.stderr);
    release.send(()).unwrap();
    reader.join().unwrap();
    for value in [&values[0], &values[1], &values[2], &values[10]] {
        assert!(!s.exists(value).unwrap(), "{value} is still logged in");
    }
    assert!(s.exists(&values[3]).unwrap());
    let r = run(&[&"check", &store]);
    assert_eq!(r.code, Some(0), "{}{}", r.stdout, r.stderr);
}

/// `copy` and `export -o` onto a full file system: the error names the destination (not the
/// store they read), says its file system is full, and nothing is left behind.
#[test]
fn copy_and_export_onto_a_full_disk_name_the_destination() {
    if !need(can_mount(), MOUNT_NEEDED) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    let s = CookieStore::open(&src, StoreOptions::default()).unwrap();
    s.as_lmdb()
        .unwrap()
        .batch("create", |b| {
            for _ in 0..2000 {
                b.create("cbtid", 24, 3600)?;
            }
            Ok(())
        })
        .unwrap();
    drop(s);
    let fs = Tmpfs::mount("512k");
    fs.fill("fill");
    let dest = fs.path().join("copy");
    let r = run(&[&"copy", &src, &dest]);
    assert_eq!(r.code, Some(2), "{}{}", r.stdout, r.stderr);
    let copy = dest.join("data.mdb");
    assert!(
        r.stderr.contains(&format!(
            "{}: cannot write the copy: the file system holding it is full",
            copy.display()
        )),
        "{}",
        r.stderr
    );
    assert!(
        !r.stderr.contains(&*src.to_string_lossy()),
        "blames the source: {}",
        r.stderr
    );
    assert!(!copy.exists());

    let export = fs.path().join("export.jsonl");
    let r = run(&[&"export", &src, &"-o", &export]);
    assert_eq!(r.code, Some(2), "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "{}: cannot write the export: No space left on device",
            export.display()
        )),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("the file system holding it is full"),
        "{}",
        r.stderr
    );
    let left: Vec<_> = std::fs::read_dir(fs.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != "fill" && n != "copy")
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
