//! Child processes (this program re-executed): aggregate lookup throughput of several
//! processes at once, and the memory of a fresh process.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cookiestore::{CookieStore, StoreOptions};

use super::*;

/// Set in a re-executed child: its role.
pub const CHILD_ENV: &str = "COOKIESTORE_BENCH_CHILD";
const KIND_ENV: &str = "COOKIESTORE_BENCH_KIND";
const DIR_ENV: &str = "COOKIESTORE_BENCH_DIR";
const N_ENV: &str = "COOKIESTORE_BENCH_N";
const DURATION_ENV: &str = "COOKIESTORE_BENCH_DURATION_MS";
const START_ENV: &str = "COOKIESTORE_BENCH_START_NS";
const LOOKUPS_ENV: &str = "COOKIESTORE_BENCH_LOOKUPS";

/// Which implementation a child drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `CookieStore::get_auth`, the per-process cache off.
    Ours,
    /// `CookieStore::get_auth` through the per-process cache (default budget).
    OursCached,
    /// [`Raw::lookup`].
    Raw,
}

impl Kind {
    /// Its name in reports and in the child's environment.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Ours => "ours",
            Kind::OursCached => "ours_cached",
            Kind::Raw => "raw_heed",
        }
    }

    fn parse(s: &str) -> Kind {
        match s {
            "ours" => Kind::Ours,
            "ours_cached" => Kind::OursCached,
            "raw_heed" => Kind::Raw,
            other => panic!("unknown kind {other:?}"),
        }
    }
}

/// Runs the child role named in [`CHILD_ENV`], if any; returns whether this process was a
/// child (and should exit).
pub fn child_main() -> bool {
    let Ok(role) = std::env::var(CHILD_ENV) else {
        return false;
    };
    let var = |name| std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"));
    let kind = Kind::parse(&var(KIND_ENV));
    let dir = PathBuf::from(var(DIR_ENV));
    let n: u64 = var(N_ENV).parse().expect("n");
    match role.as_str() {
        "throughput" => {
            let duration = Duration::from_millis(var(DURATION_ENV).parse().expect("ms"));
            let start_ns: u64 = var(START_ENV).parse().expect("start");
            let (count, elapsed) = child_throughput(kind, &dir, n, start_ns, duration);
            println!("lookups={count} elapsed_ns={}", elapsed.as_nanos());
        }
        "memory" => {
            let lookups: u64 = var(LOOKUPS_ENV).parse().expect("lookups");
            for (stage, m) in child_memory(kind, &dir, n, lookups) {
                println!(
                    "stage={stage} anon_kib={} rss_kib={} private_clean_kib={} \
                     private_dirty_kib={} pss_kib={}",
                    m.anonymous_kib, m.rss_kib, m.private_clean_kib, m.private_dirty_kib, m.pss_kib
                );
            }
        }
        other => panic!("unknown child role {other:?}"),
    }
    true
}

enum Looker {
    Ours(CookieStore),
    Raw(Raw),
}

impl Looker {
    fn open(kind: Kind, fixture_dir: &Path) -> Looker {
        match kind {
            Kind::Ours => Looker::Ours(
                CookieStore::open(fixture_dir.join("ours"), options(false)).expect("open store"),
            ),
            Kind::OursCached => Looker::Ours(
                CookieStore::open(
                    fixture_dir.join("ours"),
                    options(false).cache_bytes(StoreOptions::default().lmdb.cache_bytes),
                )
                .expect("open store"),
            ),
            Kind::Raw => Looker::Raw(Raw::open(&fixture_dir.join("raw"), false)),
        }
    }

    /// Faults the whole map in (see [`Raw::warm`]).
    fn warm(&self) {
        match self {
            Looker::Ours(store) => {
                warm_store(store);
            }
            Looker::Raw(raw) => {
                raw.warm();
            }
        }
    }

    /// One lookup; returns whether the cookie was found.
    #[inline]
    fn lookup(&self, value: &str, now: u64) -> bool {
        match self {
            Looker::Ours(store) => store.get_auth(value).expect("get_auth").is_some(),
            Looker::Raw(raw) => raw.lookup(value, now) != 0,
        }
    }
}

fn child_throughput(
    kind: Kind,
    fixture_dir: &Path,
    n: u64,
    start_ns: u64,
    duration: Duration,
) -> (u64, Duration) {
    let looker = Looker::open(kind, fixture_dir);
    // Each process walks its own random order.
    let mut keys = Keys::shuffled(n).starting_at(std::process::id() as usize * 7919);
    looker.warm();
    let now = now_ns();
    // Warm up (page tables of the map, caches) with lookups until the common start.
    while now_ns() < start_ns {
        for _ in 0..256 {
            looker.lookup(keys.next_value(), now);
        }
    }
    let started = Instant::now();
    let mut count = 0u64;
    loop {
        for _ in 0..256 {
            assert!(
                looker.lookup(keys.next_value(), now),
                "fixture cookie missing"
            );
        }
        count += 256;
        if started.elapsed() >= duration {
            return (count, started.elapsed());
        }
    }
}

/// Memory figures of this process from /proc/self/smaps_rollup (KiB).
#[derive(Debug, Default, Clone, Copy)]
pub struct Mem {
    /// `Anonymous:` — private, non-file-backed memory (heap, stacks, anonymous maps).
    pub anonymous_kib: u64,
    /// `Rss:`.
    pub rss_kib: u64,
    /// `Private_Clean:` (includes file pages mapped only by this process, e.g. the LMDB map).
    pub private_clean_kib: u64,
    /// `Private_Dirty:`.
    pub private_dirty_kib: u64,
    /// `Pss:`.
    pub pss_kib: u64,
}

/// Reads /proc/self/smaps_rollup.
pub fn mem_now() -> Mem {
    let file = std::fs::File::open("/proc/self/smaps_rollup").expect("smaps_rollup");
    let mut m = Mem::default();
    for line in std::io::BufReader::new(file).lines() {
        let line = line.expect("line");
        let mut parts = line.split_whitespace();
        let (Some(key), Some(num)) = (parts.next(), parts.next()) else {
            continue;
        };
        let Ok(kib) = num.parse::<u64>() else {
            continue;
        };
        match key {
            "Anonymous:" => m.anonymous_kib = kib,
            "Rss:" => m.rss_kib = kib,
            "Private_Clean:" => m.private_clean_kib = kib,
            "Private_Dirty:" => m.private_dirty_kib = kib,
            "Pss:" => m.pss_kib = kib,
            _ => {}
        }
    }
    m
}

fn child_memory(kind: Kind, fixture_dir: &Path, n: u64, lookups: u64) -> Vec<(&'static str, Mem)> {
    let mut stages = vec![("start", mem_now())];
    let looker = Looker::open(kind, fixture_dir);
    stages.push(("opened", mem_now()));
    let now = now_ns();
    // Values are generated on the fly so the harness itself holds no per-cookie memory.
    let mut v = [0u8; VALUE_LEN];
    for k in 0..lookups {
        value_into(mix(SEED_ORDER ^ k) % n, &mut v);
        let value = std::str::from_utf8(&v).expect("ASCII");
        assert!(looker.lookup(value, now), "fixture cookie missing");
    }
    stages.push(("after_lookups", mem_now()));
    drop(looker);
    stages
}

fn child_command(role: &str, kind: Kind, fx: &Fixture) -> Command {
    let mut cmd = Command::new(std::env::current_exe().expect("current exe"));
    cmd.env(CHILD_ENV, role)
        .env(KIND_ENV, kind.name())
        .env(DIR_ENV, &fx.dir)
        .env(N_ENV, fx.n.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    cmd
}

fn field(line: &str, name: &str) -> u64 {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {name} in {line:?}"))
        .parse()
        .expect("a number")
}

/// Aggregate lookup throughput of `procs` processes running at once.
#[derive(Debug, Clone, Copy)]
pub struct Throughput {
    /// Processes.
    pub procs: usize,
    /// Lookups done by all of them.
    pub lookups: u64,
    /// Lookups per second, summed over processes.
    pub per_sec: f64,
}

/// Runs `procs` child processes that each look up random fixture cookies for `duration`,
/// all starting at the same instant; sums their rates.
pub fn run_throughput(kind: Kind, fx: &Fixture, procs: usize, duration: Duration) -> Throughput {
    // Children open the store, shuffle the keys and warm up before the common start.
    let start_ns = now_ns() + 2_000_000_000 + fx.n * 3_000;
    let children: Vec<_> = (0..procs)
        .map(|_| {
            child_command("throughput", kind, fx)
                .env(DURATION_ENV, duration.as_millis().to_string())
                .env(START_ENV, start_ns.to_string())
                .spawn()
                .expect("spawn a child")
        })
        .collect();
    let mut lookups = 0;
    let mut per_sec = 0.0;
    for child in children {
        let out = child.wait_with_output().expect("child output");
        assert!(out.status.success(), "a throughput child failed");
        let line = String::from_utf8(out.stdout).expect("utf8");
        let count = field(&line, "lookups");
        let ns = field(&line, "elapsed_ns");
        lookups += count;
        per_sec += count as f64 / (ns as f64 / 1e9);
    }
    Throughput {
        procs,
        lookups,
        per_sec,
    }
}

/// Memory of a fresh process at its stages: start, opened, after `lookups` lookups.
pub fn run_memory(kind: Kind, fx: &Fixture, lookups: u64) -> Vec<(String, Mem)> {
    let out = child_command("memory", kind, fx)
        .env(LOOKUPS_ENV, lookups.to_string())
        .output()
        .expect("run the memory child");
    assert!(out.status.success(), "the memory child failed");
    String::from_utf8(out.stdout)
        .expect("utf8")
        .lines()
        .filter(|l| l.starts_with("stage="))
        .map(|l| {
            let stage = l.split_whitespace().next().unwrap_or("")["stage=".len()..].to_string();
            (
                stage,
                Mem {
                    anonymous_kib: field(l, "anon_kib"),
                    rss_kib: field(l, "rss_kib"),
                    private_clean_kib: field(l, "private_clean_kib"),
                    private_dirty_kib: field(l, "private_dirty_kib"),
                    pss_kib: field(l, "pss_kib"),
                },
            )
        })
        .collect()
}
