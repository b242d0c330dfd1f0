//! The CLI on damaged store files: never killed by a signal, always a message that says what
//! is wrong and what to do.
//!
//! - data.mdb cut short below its last used page, its B-tree roots inside: every command
//!   refuses it (they used to die of SIGBUS, and `delete` extended the file with a hole).
//! - A lock.mdb that another process holds, with a reader count beyond its slots: refused
//!   (every command used to die of SIGSEGV).
//! - Pages whose damage crashes LMDB itself: `check` and `repair` work in a child process and
//!   report the crash as damage, and repair writes nothing.
//! - Flipped bits at seeded places of data pages: `check` and `repair` exit 0, 1 or 2, never
//!   by a signal.

// A failed unwrap here (helpers included) is the test, bench or example failing.
#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cookiestore::{Auth, AuthContext, CookieStore, StoreOptions};

const BIN: &str = env!("CARGO_BIN_EXE_cookiestore");
const PAGE: u64 = 4096;

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs the CLI; a run that has not ended after 10 minutes is killed and fails the test
/// (a hang, not a measurement). Its output is read as it comes (a full pipe would stall it).
fn run(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Run {
    use std::io::Read;
    let mut child = Command::new(BIN)
        .args(args.iter().map(|a| a.as_ref()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(600) {
            let _ = child.kill();
            let args: Vec<_> = args.iter().map(|a| a.as_ref().to_owned()).collect();
            panic!("cookiestore {args:?} did not finish within 10 minutes");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Run {
        code: status.code(),
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// Scale of the long variants: `COOKIESTORE_STRESS=ci` → 10, a number → that, else 1.
fn stress() -> u64 {
    match std::env::var("COOKIESTORE_STRESS").as_deref() {
        Err(_) | Ok("") => 1,
        Ok("ci") => 10,
        Ok(n) => n.parse().expect("COOKIESTORE_STRESS: `ci` or a number"),
    }
}

/// A store of `n` cookies, every third authenticated (alice or bob); returns the values.
fn make_store(dir: &Path, n: usize) -> Vec<String> {
    let s = CookieStore::open(dir, StoreOptions::default()).unwrap();
    let mut values = Vec::new();
    s.as_lmdb()
        .unwrap()
        .batch("fill", |b| {
            values.clear();
            for i in 0..n {
                let c = b.create("cbtid", 24, 30 * 86_400)?;
                if i % 3 == 0 {
                    let who = if i % 2 == 0 { "alice" } else { "bob" };
                    let auth = Auth::new(who, "user", "wampcra", "realm1");
                    b.set_auth(&c.value, &auth, &AuthContext::default())?;
                }
                values.push(c.value);
            }
            Ok(())
        })
        .unwrap();
    values
}

/// The offset of the current (newer) meta page's MDB_meta in data.mdb.
fn current_meta_base(bytes: &[u8]) -> usize {
    let txnid = |i: usize| {
        let at = i * PAGE as usize + 16 + 128;
        u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap())
    };
    if txnid(1) > txnid(0) {
        PAGE as usize + 16
    } else {
        16
    }
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap())
}

#[test]
fn every_command_refuses_a_store_cut_below_its_last_used_page() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let data = store.join("data.mdb");
    let values = make_store(&store, 5_000);
    // Logouts reuse freed pages, so the roots move down, below the last used page.
    let s = CookieStore::open(&store, StoreOptions::default()).unwrap();
    let mut low = None;
    for value in values.iter().skip(1).take(60) {
        s.delete(value).unwrap();
        let bytes = std::fs::read(&data).unwrap();
        let base = current_meta_base(&bytes);
        let (free, main, last) = (
            u64_at(&bytes, base + 24 + 40),
            u64_at(&bytes, base + 72 + 40),
            u64_at(&bytes, base + 120),
        );
        if free.max(main) + 16 < last {
            low = Some((free.max(main) + 1) * PAGE);
            break;
        }
    }
    drop(s);
    let cut = low.expect("the roots never moved below the last used page");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&data)
        .unwrap()
        .set_len(cut)
        .unwrap();
    let value = &values[0];
    let dest = dir.path().join("copy");
    let commands: Vec<Vec<&dyn AsRef<std::ffi::OsStr>>> = vec![
        vec![&"stats", &store],
        vec![&"dump", &store],
        vec![&"check", &store],
        vec![&"export", &store],
        vec![&"get", &store, value],
        vec![&"delete", &store, value],
        vec![&"logout", &store, &"--authid", &"alice"],
        vec![&"purge", &store],
        vec![&"repair", &store],
        vec![&"copy", &store, &dest],
    ];
    for args in commands {
        let r = run(&args);
        let name = args[0].as_ref().to_string_lossy().into_owned();
        assert_eq!(r.code, Some(2), "{name}: exit 2, no signal: {}", r.stderr);
        assert!(
            r.stderr.contains("data.mdb is truncated"),
            "{name}: {}",
            r.stderr
        );
        assert!(
            r.stderr.contains("restore the store"),
            "{name}: {}",
            r.stderr
        );
        assert!(r.stdout.is_empty(), "{name}: {}", r.stdout);
        assert_eq!(
            std::fs::metadata(&data).unwrap().len(),
            cut,
            "{name} changed data.mdb's length"
        );
    }
}

#[test]
fn a_held_lock_file_with_a_reader_count_beyond_its_slots_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let values = make_store(&store, 10);
    // This process holds the store open, so LMDB in the commands trusts lock.mdb.
    let s = CookieStore::open(&store, StoreOptions::default().readonly(true)).unwrap();
    assert!(s.exists(&values[0]).unwrap());
    // Kept open until the store is closed: closing a descriptor of lock.mdb drops this
    // process's locks on it.
    let lock = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(store.join("lock.mdb"))
        .unwrap();
    let mut original = [0u8; 4];
    lock.read_exact_at(&mut original, 16).unwrap();
    lock.write_all_at(&0xffff_0000u32.to_le_bytes(), 16)
        .unwrap();
    for args in [
        vec![&"stats" as &dyn AsRef<std::ffi::OsStr>, &store],
        vec![&"check", &store],
        vec![&"dump", &store],
        vec![&"delete", &store, &values[1]],
    ] {
        let r = run(&args);
        let name = args[0].as_ref().to_string_lossy().into_owned();
        assert_eq!(r.code, Some(2), "{name}: exit 2, no signal: {}", r.stderr);
        for part in [
            "lock.mdb: the store is damaged",
            "4294901760 reader slots are in use, but it holds 126",
            "stop every process that has the store open",
        ] {
            assert!(r.stderr.contains(part), "{name}: {part:?}: {}", r.stderr);
        }
    }
    lock.write_all_at(&original, 16).unwrap();
    let r = run(&[&"get", &store, &values[1]]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    drop(s);
    drop(lock);
}

/// Points the main tree's root at the file's last page and makes that a branch page whose
/// nodes lie past the end of the file: LMDB reads them through its map and dies of SIGBUS.
fn crash_lmdb(data: &Path) {
    let mut bytes = std::fs::read(data).unwrap();
    let last = bytes.len() as u64 / PAGE - 1;
    let page = &mut bytes[(last * PAGE) as usize..][..PAGE as usize];
    page.fill(0);
    page[..8].copy_from_slice(&last.to_le_bytes());
    page[10..12].copy_from_slice(&1u16.to_le_bytes()); // P_BRANCH
    page[12..14].copy_from_slice(&20u16.to_le_bytes()); // two nodes
    page[14..16].copy_from_slice(&4000u16.to_le_bytes());
    page[16..18].copy_from_slice(&0xfff0u16.to_le_bytes());
    page[18..20].copy_from_slice(&0xfff0u16.to_le_bytes());
    let base = current_meta_base(&bytes);
    bytes[base + 72 + 40..][..8].copy_from_slice(&last.to_le_bytes());
    std::fs::write(data, &bytes).unwrap();
}

#[test]
fn check_reports_a_walk_that_crashes_lmdb_and_repair_refuses_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    make_store(&store, 300);
    let data = store.join("data.mdb");
    crash_lmdb(&data);
    let before = std::fs::read(&data).unwrap();
    for args in [
        vec![&"check" as &dyn AsRef<std::ffi::OsStr>, &store],
        vec![&"check", &"--json", &store],
        vec![&"repair", &store],
    ] {
        let r = run(&args);
        let name = args[0].as_ref().to_string_lossy().into_owned();
        assert_eq!(r.code, Some(2), "{name}: exit 2, no signal: {}", r.stderr);
        let doing = if name == "repair" {
            "repairing"
        } else {
            "walking"
        };
        for part in [
            &format!("data.mdb: the store is damaged: {doing} it crashed with SIGBUS") as &str,
            "Restore the store from an export",
            "`cookiestore export --skip-corrupt`",
            "`cookiestore repair` cannot fix pages LMDB cannot read",
        ] {
            assert!(r.stderr.contains(part), "{name}: {part:?}: {}", r.stderr);
        }
        assert!(r.stdout.is_empty(), "{name}: {}", r.stdout);
    }
    assert_eq!(std::fs::read(&data).unwrap(), before, "repair wrote to it");
    assert!(!store.join("quarantine.jsonl").exists());
}

/// splitmix64: the seeded positions and bytes of the flips.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[test]
fn check_and_repair_survive_flipped_bits_in_data_pages() {
    let dir = tempfile::tempdir().unwrap();
    let pristine = dir.path().join("pristine");
    make_store(&pristine, 2_000);
    let original = std::fs::read(pristine.join("data.mdb")).unwrap();
    let pages = original.len() as u64 / PAGE;
    let mut outcomes = std::collections::BTreeMap::<String, u32>::new();
    for seed in 0..20 * stress() {
        let mut rng = seed;
        let mut bytes = original.clone();
        let flips = [1, 4, 16, 64][(next(&mut rng) % 4) as usize];
        for _ in 0..flips {
            // Never the meta pages (0 and 1): the open checks those.
            let page = 2 + next(&mut rng) % (pages - 2);
            let at = (page * PAGE + next(&mut rng) % PAGE) as usize;
            if next(&mut rng).is_multiple_of(2) {
                bytes[at] ^= 1 << (next(&mut rng) % 8);
            } else {
                bytes[at] = next(&mut rng) as u8;
            }
        }
        let store = dir.path().join(format!("flipped-{seed}"));
        std::fs::create_dir(&store).unwrap();
        std::fs::write(store.join("data.mdb"), &bytes).unwrap();
        let r = run(&[&"check", &"--timeout", &"60", &store]);
        assert!(
            matches!(r.code, Some(0..=2)),
            "seed {seed}: check ended with {:?}: {}",
            r.code,
            r.stderr
        );
        // repair works in a child process too: damage that crashes LMDB's writes is
        // reported, and LMDB commits a transaction whole or not at all.
        let repaired = run(&[&"repair", &"--timeout", &"60", &store]);
        assert!(
            matches!(repaired.code, Some(0..=2)),
            "seed {seed}: repair ended with {:?}: {}",
            repaired.code,
            repaired.stderr
        );
        let outcome = if r.stderr.contains("walking it crashed") {
            "crash reported".to_string()
        } else if r.stderr.contains("did not finish") {
            "hang reported".to_string()
        } else {
            format!("exit {}", r.code.unwrap_or(-1))
        };
        *outcomes.entry(outcome).or_default() += 1;
        std::fs::remove_dir_all(&store).unwrap();
    }
    eprintln!("check on flipped bits: {outcomes:?}");
}
