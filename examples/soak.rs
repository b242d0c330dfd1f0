//! Soak: worker processes share one store for a long time, with short-lived cookies, so
//! creation and expiry balance; the parent purges every second. It samples the size of
//! data.mdb and every process's memory, prints them as a Markdown table, and checks that
//! both level off: over the second half of the run neither may grow by more than 10 %.
//!
//! ```text
//! cargo run --release --example soak -- [--minutes 10] [--processes 4] [--max-age 5]
//!     [--rate 300] [--sample-secs 15] [--path target/soak-store]
//! ```
//!
//! Each worker (this program re-executed with `--worker N`) handles `--rate` connections a
//! second (0: as fast as it can): 60 % are new browsers (`track` without a cookie, half of
//! them then authenticate), 35 % come back with one of the worker's recent cookies (found
//! while it lives, a new cookie once it has expired), 5 % log out. Exit status 1 when a
//! figure did not level off or a worker failed.

// A failed unwrap here (helpers included) is the test, bench or example failing.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cookiestore::{Auth, AuthContext, CookieStore, StoreOptions, Tracker, TrackerConfig};
use rand::RngExt;

struct Args {
    minutes: f64,
    processes: usize,
    max_age: u64,
    rate: u64,
    sample_secs: u64,
    path: PathBuf,
    worker: Option<usize>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        minutes: 10.0,
        processes: 4,
        max_age: 5,
        rate: 300,
        sample_secs: 15,
        path: PathBuf::from("target/soak-store"),
        worker: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        let num = |v: String| v.parse::<f64>().map_err(|e| format!("{v}: {e}"));
        match flag.as_str() {
            "--minutes" => a.minutes = num(value()?)?,
            "--processes" => a.processes = num(value()?)? as usize,
            "--max-age" => a.max_age = num(value()?)? as u64,
            "--rate" => a.rate = num(value()?)? as u64,
            "--sample-secs" => a.sample_secs = num(value()?)? as u64,
            "--path" => a.path = PathBuf::from(value()?),
            "--worker" => a.worker = Some(num(value()?)? as usize),
            "-h" | "--help" => {
                println!(
                    "soak [--minutes 10] [--processes 4] [--max-age 5] [--rate 300] \
                     [--sample-secs 15] [--path target/soak-store]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if a.processes == 0 || a.max_age == 0 || a.sample_secs == 0 || a.minutes <= 0.0 {
        return Err("--processes, --max-age, --sample-secs and --minutes must be > 0".into());
    }
    Ok(a)
}

fn main() {
    let args = parse_args().unwrap_or_else(|e| {
        eprintln!("soak: {e}");
        std::process::exit(2);
    });
    match args.worker {
        Some(id) => worker(&args, id),
        None => std::process::exit(parent(&args)),
    }
}

// ---- a worker ----

fn worker(args: &Args, id: usize) {
    let config = TrackerConfig::default().max_age(args.max_age);
    let tracker = Tracker::open(&args.path, StoreOptions::default(), config).unwrap();
    // Stop when the parent closes our stdin.
    let stop = Arc::new(AtomicU64::new(0));
    let flag = stop.clone();
    std::thread::spawn(move || {
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new());
        flag.store(1, Ordering::SeqCst);
    });
    let mut recent: Vec<String> = Vec::with_capacity(1024);
    let (mut ops, mut found, mut expired) = (0u64, 0u64, 0u64);
    let started = Instant::now();
    let mut last_report = Instant::now();
    let mut rng = rand::rng();
    while stop.load(Ordering::SeqCst) == 0 {
        let roll = rng.random_range(0..100);
        if roll < 60 || recent.is_empty() {
            let t = tracker.track(None).unwrap();
            if rng.random_bool(0.5) {
                let auth = Auth::new(&format!("user{}", ops % 10_000), "user", "cookie", "r1")
                    .with_authextra(serde_json::json!({ "worker": id, "n": ops }));
                tracker
                    .authenticate(&t.value, &auth, &AuthContext::default())
                    .unwrap();
            }
            if recent.len() < 1024 {
                recent.push(t.value);
            } else {
                let i = rng.random_range(0..recent.len());
                recent[i] = t.value;
            }
        } else if roll < 95 {
            let i = rng.random_range(0..recent.len());
            let header = format!("lang=en; cbtid={}", recent[i]);
            let t = tracker.track(Some(header.as_bytes())).unwrap();
            if t.is_new {
                expired += 1;
                recent[i] = t.value;
            } else {
                found += 1;
            }
        } else {
            let v = recent.swap_remove(rng.random_range(0..recent.len()));
            tracker.logout(&v).unwrap();
        }
        ops += 1;
        if last_report.elapsed() >= Duration::from_secs(1) {
            println!("ops {ops} found {found} expired {expired}");
            std::io::stdout().flush().unwrap();
            last_report = Instant::now();
        }
        if args.rate > 0 {
            let due = Duration::from_secs_f64(ops as f64 / args.rate as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
    }
    println!("ops {ops} found {found} expired {expired}");
}

// ---- the parent ----

struct Worker {
    child: Child,
    ops: Arc<AtomicU64>,
}

/// (VmRSS, RssAnon) of a process in KiB.
fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("RssAnon:"))
}

struct Sample {
    secs: u64,
    data_kib: u64,
    used_kib: u64,
    live: u64,
    purged: u64,
    ops: u64,
    rss: Vec<(u64, u64)>,
}

fn parent(args: &Args) -> i32 {
    if args.path.exists() {
        std::fs::remove_dir_all(&args.path).expect("remove the old soak store");
    }
    let store = CookieStore::open(&args.path, StoreOptions::default()).unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut workers: Vec<Worker> = (0..args.processes)
        .map(|id| {
            let mut child = Command::new(&exe)
                .args(["--worker", &id.to_string()])
                .args(["--path", &args.path.to_string_lossy()])
                .args(["--max-age", &args.max_age.to_string()])
                .args(["--rate", &args.rate.to_string()])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let ops = Arc::new(AtomicU64::new(0));
            let counter = ops.clone();
            let out = child.stdout.take().unwrap();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    if let Some(n) = line.split_whitespace().nth(1).and_then(|n| n.parse().ok()) {
                        counter.store(n, Ordering::SeqCst);
                    }
                }
            });
            Worker { child, ops }
        })
        .collect();

    let total = Duration::from_secs_f64(args.minutes * 60.0);
    let started = Instant::now();
    let mut samples: Vec<Sample> = Vec::new();
    let mut purged = 0u64;
    let mut next_sample = Duration::ZERO;
    let mut failed = false;
    eprintln!(
        "soak: {} processes for {} min, max_age {} s, {} connections/s each",
        args.processes, args.minutes, args.max_age, args.rate
    );
    loop {
        let elapsed = started.elapsed();
        if elapsed >= next_sample || elapsed >= total {
            let stats = store.stats().unwrap();
            let s = Sample {
                secs: elapsed.as_secs(),
                data_kib: file_kib(&args.path.join("data.mdb")),
                used_kib: stats.lmdb.as_ref().unwrap().map_used / 1024,
                live: stats.live,
                purged,
                ops: workers.iter().map(|w| w.ops.load(Ordering::SeqCst)).sum(),
                rss: workers
                    .iter()
                    .map(|w| rss_kib(w.child.id()))
                    .chain([rss_kib(std::process::id())])
                    .collect(),
            };
            eprintln!("{}", row(&s));
            samples.push(s);
            next_sample += Duration::from_secs(args.sample_secs);
        }
        if elapsed >= total {
            break;
        }
        for (i, w) in workers.iter_mut().enumerate() {
            if let Ok(Some(status)) = w.child.try_wait() {
                eprintln!("soak: worker {i} exited early: {status}");
                failed = true;
            }
        }
        if failed {
            break;
        }
        purged += store.purge_expired().unwrap();
        std::thread::sleep(Duration::from_secs(1).saturating_sub(started.elapsed() - elapsed));
    }
    for w in &mut workers {
        drop(w.child.stdin.take());
    }
    for (i, w) in workers.iter_mut().enumerate() {
        let status = w.child.wait().unwrap();
        if !status.success() {
            eprintln!("soak: worker {i} failed: {status}");
            failed = true;
        }
    }
    let check = cookiestore::maintenance::check(store.as_lmdb().unwrap()).unwrap();

    // ---- the report ----
    let mut out = String::new();
    out.push_str(&format!(
        "Command: `cargo run --release --example soak -- --minutes {} --processes {} \
         --max-age {} --rate {} --sample-secs {}`\n\n",
        args.minutes, args.processes, args.max_age, args.rate, args.sample_secs
    ));
    out.push_str(&header(args.processes));
    for s in &samples {
        out.push_str(&row(s));
        out.push('\n');
    }
    let half = samples.len() / 2;
    // (per cent, KiB) of growth from the mid-run sample to the largest after it.
    let growth = |f: &dyn Fn(&Sample) -> u64| -> (f64, i64) {
        let mid = f(&samples[half]);
        let max = samples[half..].iter().map(f).max().unwrap_or(0);
        let kib = max as i64 - mid as i64;
        (kib as f64 / mid.max(1) as f64 * 100.0, kib)
    };
    let mut verdicts = vec![("data.mdb size".to_string(), growth(&|s| s.data_kib))];
    for p in 0..=args.processes {
        let name = if p == args.processes {
            "parent".to_string()
        } else {
            format!("worker {p}")
        };
        verdicts.push((format!("{name} RSS"), growth(&|s| s.rss[p].0)));
        verdicts.push((format!("{name} anonymous RSS"), growth(&|s| s.rss[p].1)));
    }
    let last = samples.last().unwrap();
    out.push_str(&format!(
        "\n{} connections handled ({:.0}/s), {} cookies purged, {} live at the end; \
         check: {}.\n\nGrowth over the second half (the largest sample of the second half \
         vs. the mid-run sample; a figure levels off when it grows less than 10 % or less \
         than 512 KiB):\n\n",
        last.ops,
        last.ops as f64 / last.secs.max(1) as f64,
        last.purged,
        last.live,
        if check.is_clean() {
            "clean".to_string()
        } else {
            format!("{} problems", check.problems.len())
        }
    ));
    let mut level = true;
    for (name, (pct, kib)) in &verdicts {
        let ok = *pct < 10.0 || *kib < 512;
        level &= ok;
        out.push_str(&format!(
            "- {name}: {pct:+.1} % ({kib:+} KiB) {}\n",
            if ok { "levels off" } else { "GROWS" }
        ));
    }
    let pass = level && !failed && check.is_clean() && samples.len() >= 4;
    out.push_str(&format!(
        "\nVerdict: {}\n",
        if pass { "PASS" } else { "FAIL" }
    ));
    print!("{out}");
    if pass { 0 } else { 1 }
}

fn file_kib(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len() / 1024).unwrap_or(0)
}

fn header(processes: usize) -> String {
    let mut h =
        String::from("| time (s) | data.mdb (KiB) | used (KiB) | live | purged | connections |");
    let mut line = String::from("|---:|---:|---:|---:|---:|---:|");
    for p in 0..processes {
        h.push_str(&format!(" w{p} RSS / anon (KiB) |"));
        line.push_str("---:|");
    }
    h.push_str(" parent RSS / anon (KiB) |\n");
    line.push_str("---:|\n");
    h + &line
}

fn row(s: &Sample) -> String {
    let mut r = format!(
        "| {} | {} | {} | {} | {} | {} |",
        s.secs, s.data_kib, s.used_kib, s.live, s.purged, s.ops
    );
    for (rss, anon) in &s.rss {
        r.push_str(&format!(" {rss} / {anon} |"));
    }
    r
}
