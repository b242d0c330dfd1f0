//! Bulk maintenance on Redis, before and after batching, side by side in one run: the
//! `cookiestore` binary of this tree and the binary of an older build (`COOKIESTORE_BASE_BIN`,
//! e.g. built from the commit before batching) run the same commands, alternately, against
//! one private redis-server (loopback, no persistence: `--save "" --appendonly no`), on the
//! same fixture of `N` cookies (100,000 by default):
//!
//! - `restore` of an export of the N cookies (and N/10 import marks) into an empty store;
//! - `export` of that store;
//! - `logout --authid heavy`: one user holding every tenth cookie (N/10);
//! - `import` of an LMDB store holding the N cookies into an empty store.
//!
//! ```text
//! git worktree add --detach ../base <commit before batching>
//! (cd ../base && cargo build --release -p cookiestore-cli)
//! cargo build --release -p cookiestore-cli
//! COOKIESTORE_BASE_BIN=../base/target/release/cookiestore cargo bench --bench redis_bulk
//! COOKIESTORE_BULK_N=20000 ... cargo bench --bench redis_bulk   # a smaller fixture
//! cargo bench --bench redis_bulk -- --test                       # smoke: N = 2,000
//! ```
//!
//! `COOKIESTORE_MAIN_BIN` adds a second baseline (column `main`, e.g. the last commit before
//! the work measured), run in the same rounds. Without `COOKIESTORE_BASE_BIN` only this tree's
//! binary (and `main`, if given) runs; with
//! `COOKIESTORE_BULK_FIXTURE=path` the bench only writes its fixture (the export) there. The binary of this tree is
//! `target/release/cookiestore` (`COOKIESTORE_NEW_BIN` overrides). Each command is timed
//! from start to exit (process start and the fixture file's parsing included); records per
//! second are N (the user's cookies for the logout) over that time. Timings, not
//! assertions; skipped with a message when redis-server or a binary is missing.

// A failed unwrap here (helpers included) is the test, bench or example failing.
#![allow(clippy::unwrap_used)]

#[path = "../tests/common/redis_server.rs"]
#[allow(dead_code)]
mod redis_server;

#[path = "common/cookies.rs"]
#[allow(dead_code)]
mod cookies;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use redis_server::{RedisServer, redis_server_exists};

/// For `redis_server::need_redis` (not used: the bench skips with a message itself).
#[allow(dead_code)]
fn need(cond: bool, _why: &str) -> bool {
    cond
}

/// The user holding every tenth cookie.
const HEAVY: &str = "heavy";

/// Writes the export of cookies 0..n (cookie `i % 10 == 0` of [`HEAVY`]) and a mark line
/// for every tenth cookie's value, as `cookiestore export` writes them.
fn write_fixture(path: &Path, n: u64) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for i in 0..n {
        let mut c = cookies::cookie(i);
        if i.is_multiple_of(10) {
            c.authid = Some(HEAVY.into());
        }
        serde_json::to_writer(&mut out, &c).unwrap();
        out.write_all(b"\n").unwrap();
    }
    for i in (5..n).step_by(10) {
        let digest = sha256_hex(&cookies::value(i));
        writeln!(
            out,
            "{{\"imported_sha256\":\"{digest}\",\"expires\":{}}}",
            cookies::cookie(i).expires_at()
        )
        .unwrap();
    }
    out.flush().unwrap();
}

fn sha256_hex(value: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(value.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Runs `bin args`, which must succeed; its wall time in seconds.
fn timed(bin: &Path, args: &[&str]) -> f64 {
    let start = Instant::now();
    let out = Command::new(bin).args(args).output().unwrap();
    let took = start.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "{} {args:?} failed: {}",
        bin.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

fn flush(server: &RedisServer) {
    server.command(&["FLUSHALL"]);
}

/// The CPU time redis-server used (user and system, `INFO cpu`) since the last call, in
/// seconds: what the restore cost Redis's thread, whether in scripts or in commands.
fn redis_cpu_secs(server: &RedisServer, last: &mut f64) -> f64 {
    let mut con = redis::Client::open(server.url(""))
        .unwrap()
        .get_connection()
        .unwrap();
    let info: String = redis::cmd("INFO").arg("cpu").query(&mut con).unwrap();
    let total: f64 = info
        .lines()
        .filter_map(|l| {
            l.strip_prefix("used_cpu_user:")
                .or_else(|| l.strip_prefix("used_cpu_sys:"))
        })
        .filter_map(|n| n.trim().parse::<f64>().ok())
        .sum();
    let since = total - *last;
    *last = total;
    since
}

/// The CPU time (user and system) of this process's waited-for children since the last
/// call, in seconds (Linux: `cutime` and `cstime` of `/proc/self/stat`, in USER_HZ ticks of
/// 10 ms): what the `cookiestore` command just run used. 0 where that file is absent.
fn children_cpu_secs(last: &mut f64) -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name (which may hold spaces), from `state` (field 3) on.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
    let ticks = |field: usize| {
        fields
            .get(field - 3)
            .and_then(|t| t.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let total = (ticks(16) + ticks(17)) / 100.0;
    let since = total - *last;
    *last = total;
    since
}

/// The 1-minute load average (Linux), for the record of the run.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// One round of the four operations with `bin`: (operation, records, seconds); the CPU
/// time redis-server spent during the restore is the row `restore: Redis CPU`, the
/// `cookiestore` process's own the row `restore: client CPU`.
fn round(
    bin: &Path,
    server: &RedisServer,
    fixture: &Path,
    lmdb: &Path,
    scratch: &Path,
    n: u64,
) -> Vec<(&'static str, u64, f64)> {
    let url = server.url("");
    let export_to = scratch.join("out.jsonl");
    let fixture = fixture.to_str().unwrap();
    flush(server);
    let (mut cpu, mut client_cpu) = (0.0, 0.0);
    redis_cpu_secs(server, &mut cpu);
    children_cpu_secs(&mut client_cpu);
    let restore = timed(bin, &["restore", &url, fixture]);
    let restore_client = children_cpu_secs(&mut client_cpu);
    let restore_redis = redis_cpu_secs(server, &mut cpu);
    let export = timed(bin, &["export", &url, "-o", export_to.to_str().unwrap()]);
    let logout = timed(bin, &["logout", &url, "--authid", HEAVY]);
    flush(server);
    let import = timed(bin, &["import", &url, lmdb.to_str().unwrap()]);
    flush(server);
    vec![
        ("restore", n, restore),
        ("restore: Redis CPU", n, restore_redis),
        ("restore: client CPU", n, restore_client),
        ("export", n, export),
        ("logout_authid", n.div_ceil(10), logout),
        ("import (store)", n, import),
    ]
}

fn main() {
    let smoke = std::env::args().any(|a| a == "--test");
    if !redis_server_exists() {
        eprintln!("redis_bulk: skipped: no redis-server");
        return;
    }
    let n: u64 = if smoke {
        2_000
    } else {
        std::env::var("COOKIESTORE_BULK_N")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(100_000)
    };
    if let Some(path) = std::env::var_os("COOKIESTORE_BULK_FIXTURE") {
        // Only write the fixture there (to run the commands by hand).
        write_fixture(Path::new(&path), n);
        return;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let new_bin = std::env::var_os("COOKIESTORE_NEW_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/release/cookiestore"));
    if !new_bin.exists() {
        eprintln!(
            "redis_bulk: skipped: no {} (cargo build --release -p cookiestore-cli)",
            new_bin.display()
        );
        return;
    }
    let base_bin = std::env::var_os("COOKIESTORE_BASE_BIN").map(PathBuf::from);
    let scratch = tempfile::tempdir().unwrap();
    let fixture = scratch.path().join("fixture.jsonl");
    write_fixture(&fixture, n);
    let lmdb = scratch.path().join("lmdb");
    timed(
        &new_bin,
        &["restore", lmdb.to_str().unwrap(), fixture.to_str().unwrap()],
    );
    let main_bin = std::env::var_os("COOKIESTORE_MAIN_BIN").map(PathBuf::from);
    let server = RedisServer::start();

    let mut bins: Vec<(&str, &Path)> = Vec::new();
    if let Some(base) = &base_bin {
        bins.push(("before", base));
    }
    if let Some(main) = &main_bin {
        bins.push(("main", main));
    }
    bins.push(("after", &new_bin));
    let load_before = load_average();
    let rounds = if smoke { 1 } else { 2 };
    // (binary label, operation) -> best seconds over the rounds, and records.
    let mut best: Vec<(&str, &str, u64, f64)> = Vec::new();
    for _ in 0..rounds {
        for (label, bin) in &bins {
            for (op, records, secs) in round(bin, &server, &fixture, &lmdb, scratch.path(), n) {
                match best.iter_mut().find(|b| b.0 == *label && b.1 == op) {
                    Some(b) => b.3 = b.3.min(secs),
                    None => best.push((label, op, records, secs)),
                }
            }
        }
    }
    println!(
        "redis_bulk: N = {n} cookies, best of {rounds} round(s), loopback redis-server, \
         load average {load_before} before, {} after",
        load_average()
    );
    println!(
        "{:<19} {:>9} {:>16} {:>16} {:>16} {:>9} {:>9}",
        "operation",
        "records",
        "before s (rec/s)",
        "main s (rec/s)",
        "after s (rec/s)",
        "x before",
        "x main"
    );
    for op in [
        "restore",
        "restore: Redis CPU",
        "restore: client CPU",
        "export",
        "logout_authid",
        "import (store)",
    ] {
        let get = |label: &str| best.iter().find(|b| b.0 == label && b.1 == op);
        let after = get("after").unwrap();
        let cell = |label: &str| match get(label) {
            Some(b) if op.ends_with("CPU") => format!("{:.3}", b.3),
            Some(b) => format!("{:.3} ({:.0})", b.3, b.2 as f64 / b.3),
            None => "-".into(),
        };
        let speedup = |label: &str| match get(label) {
            Some(b) if after.3 > 0.0 => format!("{:.1}x", b.3 / after.3),
            _ => "-".into(),
        };
        println!(
            "{:<19} {:>9} {:>16} {:>16} {:>16} {:>9} {:>9}",
            op,
            after.2,
            cell("before"),
            cell("main"),
            cell("after"),
            speedup("before"),
            speedup("main")
        );
    }
}
