//! Reading commands while another process writes: each output is one snapshot.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command as StdCommand, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::support::*;
use cookiestore::{Auth, AuthContext, CookieStore, StoreOptions};
use serde_json::{Value, json};

const CHILD_ENV: &str = "COOKIESTORE_CLI_TEST_WRITER";
const LIVE: usize = 300;

/// Padding in authextra, so that 300 dumped cookies fill more than a pipe buffer.
fn pad() -> String {
    "p".repeat(300)
}

/// Not a test of its own: the writer process of
/// `dump_stats_check_export_are_consistent_snapshots_while_another_process_writes`, which
/// runs this test binary again with `CHILD_ENV` set to a store path. Without it, it returns.
#[test]
fn concurrent_writer_child() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let path = PathBuf::from(path);
    let store = CookieStore::open(&path, StoreOptions::default().sync(false)).unwrap();
    let mut values: std::collections::VecDeque<String> = store
        .as_lmdb()
        .unwrap()
        .snapshot(|s| s.live()?.map(|c| c.map(|c| c.value)).collect())
        .unwrap();
    assert_eq!(values.len(), LIVE);
    let stop = path.join("stop");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut generation = 0u64;
    let mut out = std::io::stdout().lock();
    while !stop.exists() && Instant::now() < deadline {
        generation += 1;
        let k = 1 + (generation as usize % 17);
        // Every transaction deletes k cookies and creates k: each snapshot has exactly LIVE.
        let created = store
            .as_lmdb()
            .unwrap()
            .batch("churn", |b| {
                for v in values.iter().take(k) {
                    assert!(b.delete(v)?);
                }
                let mut created = Vec::with_capacity(k);
                for _ in 0..k {
                    let c = b.create("cbtid", 24, 3_600)?;
                    let auth = Auth::new("writer", "user", "cookie", "realm1")
                        .with_authextra(json!({"gen": generation, "pad": pad()}));
                    b.set_auth(&c.value, &auth, &AuthContext::default())?;
                    created.push(c.value);
                }
                Ok(created)
            })
            .unwrap();
        values.drain(..k);
        values.extend(created);
        writeln!(out, "@@commit {generation}").unwrap();
        out.flush().unwrap();
    }
}

struct Writer {
    child: Child,
    commits: Arc<AtomicU64>,
    stop: PathBuf,
}

impl Writer {
    fn start(path: &Path) -> Writer {
        let mut child = StdCommand::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "snapshots::concurrent_writer_child",
                "--nocapture",
                "--test-threads=1",
                "--quiet",
            ])
            .env(CHILD_ENV, path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let commits = Arc::new(AtomicU64::new(0));
        let seen = commits.clone();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(n) = line.strip_prefix("@@commit ") {
                    seen.store(n.trim().parse().unwrap(), Ordering::SeqCst);
                }
            }
        });
        Writer {
            child,
            commits,
            stop: path.join("stop"),
        }
    }

    fn commits(&self) -> u64 {
        self.commits.load(Ordering::SeqCst)
    }

    fn wait_commits(&self, n: u64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.commits() < n {
            assert!(
                Instant::now() < deadline,
                "the writer made only {} commits",
                self.commits()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn finish(mut self) {
        std::fs::write(&self.stop, b"").unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "writer: {status}");
    }
}

pub(crate) fn padded_store(path: &Path) {
    let store = CookieStore::open(path, StoreOptions::default().sync(false)).unwrap();
    store
        .as_lmdb()
        .unwrap()
        .batch("initial", |b| {
            for _ in 0..LIVE {
                let c = b.create("cbtid", 24, 3_600)?;
                let auth = Auth::new("writer", "user", "cookie", "realm1")
                    .with_authextra(json!({"gen": 0, "pad": pad()}));
                b.set_auth(&c.value, &auth, &AuthContext::default())?;
            }
            Ok(())
        })
        .unwrap();
}

fn assert_snapshot_dump(stdout: &str) {
    let cookies = json_lines(stdout);
    assert_eq!(cookies.len(), LIVE, "a dump is one snapshot");
    let values: HashSet<&str> = cookies
        .iter()
        .map(|c| c["value"].as_str().unwrap())
        .collect();
    assert_eq!(values.len(), LIVE);
}

#[test]
fn dump_stats_check_export_are_consistent_snapshots_while_another_process_writes() {
    let dir = tempfile::tempdir().unwrap();
    padded_store(dir.path());
    let path = s(dir.path());
    let writer = Writer::start(dir.path());
    writer.wait_commits(5);

    for _ in 0..4 {
        let dump = run(&["dump", path]);
        assert_eq!(dump.code, 0, "{}", dump.stderr);
        assert_snapshot_dump(&dump.stdout);

        let stats = run(&["stats", path, "--json"]);
        assert_eq!(stats.code, 0, "{}", stats.stderr);
        let v: Value = serde_json::from_str(&stats.stdout).unwrap();
        assert_eq!(v["records"], LIVE, "{v}");
        assert_eq!(v["live"], LIVE, "{v}");
        assert_eq!(v["authenticated"], LIVE, "{v}");
        assert_eq!(v["value_index_entries"], LIVE, "{v}");
        assert_eq!(v["expiry_index_entries"], LIVE, "{v}");
        assert_eq!(v["foreign_writes"], false, "{v}");

        cli().args(["check", path]).assert().success();
        let export = run(&["export", path]);
        assert_eq!(export.stdout.lines().count(), LIVE);
    }

    // A dump blocked on a full pipe holds its snapshot open; the writer keeps committing.
    let mut dump = StdCommand::new(BIN)
        .args(["dump", path])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Its reader slot shows as reading once it has its snapshot (the pipe then fills).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let stats = run(&["stats", path, "--json"]);
        let v: Value = serde_json::from_str(&stats.stdout).unwrap();
        if v["reader_slots"]["reading"].as_u64().unwrap() >= 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the dump never held a snapshot: {v}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let before = writer.commits();
    let deadline = Instant::now() + Duration::from_secs(20);
    while writer.commits() < before + 5 {
        assert!(
            Instant::now() < deadline,
            "the writer made {} commits while a dump was blocked",
            writer.commits() - before
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        dump.try_wait().unwrap().is_none(),
        "the dump is still blocked, holding its snapshot, while the writer commits"
    );
    let mut text = String::new();
    dump.stdout
        .take()
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    assert!(dump.wait().unwrap().success());
    assert_snapshot_dump(&text);
    writer.finish();
    cli().args(["check", path]).assert().success();
}
