//! What maintenance costs a router that keeps writing: while one thread runs a maintenance
//! operation on a store of `N` cookies (300,000 by default), a "router" thread logs a user in
//! every 10 ms (`create` + `set_auth`, each its own durable commit, as a router's new
//! connection and login are) through another handle of the same store, and records how long
//! each login took. LMDB has one writer at a time: every millisecond a maintenance write
//! transaction holds the writer lock is a millisecond a login may wait.
//!
//! ```text
//! cargo bench --bench maintenance                      # N = 300,000
//! COOKIESTORE_BENCH_MAINT_N=50000 cargo bench --bench maintenance
//! cargo bench --bench maintenance -- --test            # smoke: N = 5,000
//! ```
//!
//! Printed per operation: its duration, and the logins during it (count, median, p99,
//! longest); first a baseline of logins with nothing else running. Timings, not assertions.

// A failed unwrap here (helpers included) is the test, bench or example failing.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cookiestore::maintenance::{ExportOptions, ImportOptions};
use cookiestore::{Auth, Cookie, CookieStore, ManualClock, StoreOptions};
use uuid::Uuid;

const NS: u64 = 1_000_000_000;
/// The instant the stores' clock starts at (2026-11-22T00:00:00Z).
const T0: u64 = 1_795_305_600 * NS;

fn options(clock: &ManualClock) -> StoreOptions {
    StoreOptions::default()
        .maxsize(8 << 30)
        .clock(Arc::new(clock.clone()))
}

/// Fills `store` with `n` cookies of user `user{i % users}`, living `max_age` seconds, in
/// transactions of 10,000 (the fill is not what is measured).
fn fill(store: &CookieStore, n: usize, users: usize, max_age: u64) {
    let now = store.now_ns();
    for start in (0..n).step_by(10_000) {
        store
            .as_lmdb()
            .unwrap()
            .batch("fill", |b| {
                for i in start..(start + 10_000).min(n) {
                    let mut c = Cookie {
                        oid: Uuid::new_v4(),
                        created: now,
                        max_age,
                        name: Some("cbtid".into()),
                        value: format!("v{i:023}"),
                        ..Cookie::default()
                    };
                    c.authid = Some(format!("user{}", i % users));
                    c.authrole = Some("frontend".into());
                    b.put(&c)?;
                }
                Ok(())
            })
            .unwrap();
    }
}

/// Login latencies recorded by the router thread.
struct Router {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<Duration>>,
}

impl Router {
    fn start(store: CookieStore) -> Router {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let alice = Auth::new("alice", "user", "wampcra", "realm1");
            let mut took = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                let t = Instant::now();
                let cookie = store.create("cbtid", 24, 3600).unwrap();
                store
                    .set_auth(&cookie.value, &alice, &Default::default())
                    .unwrap();
                took.push(t.elapsed());
                std::thread::sleep(Duration::from_millis(10));
            }
            took
        });
        Router { stop, thread }
    }

    fn finish(self) -> Vec<Duration> {
        self.stop.store(true, Ordering::Relaxed);
        let mut took = self.thread.join().unwrap();
        took.sort();
        took
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn row(what: &str, took: Option<Duration>, logins: &[Duration]) {
    let at = |q: f64| logins[((logins.len() - 1) as f64 * q).round() as usize];
    println!(
        "| {what} | {} | {} | {} | {} | {} |",
        took.map_or("-".into(), ms),
        logins.len(),
        ms(at(0.5)),
        ms(at(0.99)),
        ms(at(1.0)),
    );
}

/// Runs `op` on `store` while a router logs in through another handle; prints a row.
fn measure(what: &str, store: &CookieStore, op: impl FnOnce(&CookieStore)) {
    let router = Router::start(store.clone());
    std::thread::sleep(Duration::from_millis(100));
    let t = Instant::now();
    op(store);
    let took = t.elapsed();
    std::thread::sleep(Duration::from_millis(50));
    row(what, Some(took), &router.finish());
}

fn main() {
    let smoke = std::env::args().any(|a| a == "--test");
    let n: usize = if smoke {
        5_000
    } else {
        std::env::var("COOKIESTORE_BENCH_MAINT_N")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(300_000)
    };
    let root = tempfile::tempdir().unwrap();
    let dir = |name: &str| root.path().join(name);
    println!("\n## Maintenance beside a router logging in every 10 ms ({n} cookies)\n");
    println!("| operation | took | logins | median | p99 | longest |");
    println!("|---|---:|---:|---:|---:|---:|");

    // Baseline: the router alone.
    let clock = ManualClock::new(T0);
    let store = CookieStore::open(dir("baseline"), options(&clock)).unwrap();
    let router = Router::start(store.clone());
    std::thread::sleep(Duration::from_secs(if smoke { 1 } else { 3 }));
    row("nothing else (baseline)", None, &router.finish());
    drop(store);

    // purge_expired of n expired cookies.
    let clock = ManualClock::new(T0);
    let store = CookieStore::open(dir("purge"), options(&clock)).unwrap();
    fill(&store, n, 1_000, 60);
    clock.set(T0 + 120 * NS);
    measure(&format!("purge_expired ({n} expired)"), &store, |s| {
        assert_eq!(s.purge_expired().unwrap(), n as u64);
    });

    // logout_authid of one user holding a sixth of the cookies.
    let clock = ManualClock::new(T0);
    let store = CookieStore::open(dir("authid"), options(&clock)).unwrap();
    fill(&store, n, 6, 3600);
    measure(
        &format!("logout_authid ({} cookies)", n.div_ceil(6)),
        &store,
        |s| {
            assert_eq!(s.logout_authid("user0").unwrap(), n.div_ceil(6) as u64);
        },
    );

    // clear of n cookies.
    let clock = ManualClock::new(T0);
    let store = CookieStore::open(dir("clear"), options(&clock)).unwrap();
    fill(&store, n, 1_000, 3600);
    measure(&format!("clear ({n})"), &store, |s| {
        assert!(s.clear().unwrap() >= n as u64);
    });

    // An export of n cookies, restored into an empty store.
    let export = dir("export.jsonl");
    {
        let clock = ManualClock::new(T0);
        let source = CookieStore::open(dir("source"), options(&clock)).unwrap();
        fill(&source, n, 1_000, 3600);
        let mut out = std::io::BufWriter::new(std::fs::File::create(&export).unwrap());
        cookiestore::maintenance::export(&source, &mut out, ExportOptions::default(), &mut |_| {})
            .unwrap();
        out.flush().unwrap();
    }
    let clock = ManualClock::new(T0);
    let store = CookieStore::open(dir("restore"), options(&clock)).unwrap();
    measure(&format!("restore ({n})"), &store, |s| {
        let mut input = std::io::BufReader::new(std::fs::File::open(&export).unwrap());
        cookiestore::maintenance::restore(s, &mut input, true, &mut |_| {}).unwrap();
    });

    // An import of Crossbar's cookies.dat with n cookies.
    let dat = dir("cookies.dat");
    write_dat(&dat, n);
    let clock = ManualClock::new(T0);
    let store = CookieStore::open(dir("import"), options(&clock)).unwrap();
    measure(&format!("import of cookies.dat ({n})"), &store, |s| {
        cookiestore::maintenance::import_file(s, &dat, T0, &ImportOptions::default(), &mut |_| {})
            .unwrap();
    });

    // repair of a store of n cookies (it rebuilds both indexes).
    let quarantine = dir("quarantine.jsonl");
    measure(&format!("repair ({n})"), &store, |s| {
        cookiestore::maintenance::repair(s.as_lmdb().unwrap(), &quarantine).unwrap();
    });
    println!();
}

/// A cookies.dat of `n` cookies as Crossbar.io's file store writes them.
fn write_dat(path: &Path, n: usize) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for i in 0..n {
        writeln!(
            f,
            "{{\"cbtid\": \"d{i:023}\", \"status\": \"created\", \"created\": \
             \"2026-11-22T00:00:00.000Z\", \"modified\": null, \"deleted\": null, \
             \"max_age\": 604800, \"authid\": \"user{}\", \"authrole\": \"frontend\", \
             \"authmethod\": \"cookie\", \"authrealm\": \"realm1\", \"authextra\": {{}}}}",
            i % 1000
        )
        .unwrap();
    }
    f.flush().unwrap();
}
