//! The main job: several router worker processes share one cookie store.
//!
//! ```text
//! cargo run --release --example router_workers [-- --path DIR --workers N --connections M]
//! ```
//!
//! Each worker is a real process (this program re-executed with `--worker`). In round one
//! every worker tracks new browser connections and authenticates half of them; in round two
//! every worker receives the cookies made by the *other* workers, tracks them from a `Cookie`
//! header as a browser would send it, checks the authentication it finds, and logs every
//! fifth one out. Short-lived cookies expire meanwhile, and the parent purges them. It prints
//! a short summary; the store stays at the path for `cookiestore stats` / `dump`.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cookiestore::{
    Auth, AuthContext, AuthUpdate, CookieStore, StoreOptions, Tracker, TrackerConfig,
};
use serde_json::{Value, json};

struct Args {
    path: PathBuf,
    workers: usize,
    connections: usize,
    role: Option<(String, usize)>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        path: PathBuf::from("target/router-workers-store"),
        workers: 4,
        connections: 2000,
        role: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut val = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--path" => args.path = PathBuf::from(val("--path")?),
            "--workers" => {
                args.workers = val("--workers")?
                    .parse()
                    .map_err(|e| format!("--workers: {e}"))?
            }
            "--connections" => {
                args.connections = val("--connections")?
                    .parse()
                    .map_err(|e| format!("--connections: {e}"))?
            }
            "--worker" => {
                let round = val("--worker")?;
                let id = val("--worker")?
                    .parse()
                    .map_err(|e| format!("worker id: {e}"))?;
                args.role = Some((round, id));
            }
            "-h" | "--help" => {
                println!(
                    "router_workers [--path DIR] [--workers N] [--connections M]\n\n\
                     Runs N worker processes that share the cookie store at DIR\n\
                     (default target/router-workers-store), M connections each."
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    if args.workers == 0 || args.connections == 0 {
        return Err("--workers and --connections must be at least 1".into());
    }
    Ok(args)
}

fn main() {
    let result = parse_args().and_then(|args| match &args.role {
        Some((round, id)) => worker(&args, round, *id).map_err(|e| e.to_string()),
        None => parent(&args),
    });
    if let Err(e) = result {
        eprintln!("router_workers: {e}");
        std::process::exit(2);
    }
}

fn config() -> TrackerConfig {
    TrackerConfig::default().max_age(3600)
}

/// One worker process. Reads its instructions on stdin, reports JSON lines on stdout.
fn worker(args: &Args, round: &str, id: usize) -> cookiestore::Result<()> {
    let tracker = Tracker::open(&args.path, StoreOptions::default(), config())?;
    let out = std::io::stdout();
    let mut out = out.lock();
    let context = AuthContext::default()
        .worker(Some(format!("worker-{id}")))
        .authmethod(Some("wampcra".into()));
    match round {
        "create" => {
            for i in 0..args.connections {
                let tracked = tracker.track(None)?;
                let authid = (i % 2 == 0).then(|| format!("user-{id}-{i}"));
                if let Some(authid) = &authid {
                    let auth = Auth::new(authid, "frontend", "cookie", "realm1")
                        .with_authextra(json!({"worker": id, "n": i}));
                    assert_eq!(
                        tracker.authenticate(&tracked.value, &auth, &context)?,
                        AuthUpdate::Written
                    );
                }
                // A few short-lived cookies, which will have expired by the purge.
                if i % 10 == 9 {
                    let c = tracker.store().create("cbtid", 24, 1)?;
                    writeln!(out, "{}", json!({"short": c.value})).ok();
                }
                writeln!(out, "{}", json!({"value": tracked.value, "authid": authid})).ok();
            }
        }
        "lookup" => {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                let Ok(job) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                let value = job["value"].as_str().unwrap_or_default();
                let header = format!("theme=dark; {}={value}; lang=en", tracker.config().name);
                let tracked = tracker.track(Some(header.as_bytes()))?;
                let found = !tracked.is_new;
                let auth_ok = found
                    && tracked.auth.as_ref().map(|a| a.authid.as_str()) == job["authid"].as_str();
                let logout =
                    found && job["logout"].as_bool() == Some(true) && tracker.logout(value)?;
                writeln!(
                    out,
                    "{}",
                    json!({"found": found, "auth_ok": auth_ok, "logged_out": logout})
                )
                .ok();
            }
        }
        other => eprintln!("unknown round {other}"),
    }
    Ok(())
}

fn spawn(args: &Args, round: &str, id: usize) -> Result<std::process::Child, String> {
    Command::new(std::env::current_exe().map_err(|e| e.to_string())?)
        .arg("--path")
        .arg(&args.path)
        .args(["--connections", &args.connections.to_string()])
        .args(["--worker", round, &id.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start worker {id}: {e}"))
}

fn collect(child: std::process::Child, id: usize) -> Result<Vec<Value>, String> {
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("worker {id} failed: {}", out.status));
    }
    Ok(BufReader::new(&out.stdout[..])
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| serde_json::from_str(&l).ok())
        .collect())
}

fn parent(args: &Args) -> Result<(), String> {
    let started = Instant::now();
    let store =
        CookieStore::open(&args.path, StoreOptions::default()).map_err(|e| e.to_string())?;
    let before = store.count().map_err(|e| e.to_string())?;
    println!(
        "store: {}  ({} live cookies before)\nround 1: {} worker processes track {} new connections each",
        store.path().display(),
        before,
        args.workers,
        args.connections
    );

    let t = Instant::now();
    let children: Vec<_> = (0..args.workers)
        .map(|id| spawn(args, "create", id))
        .collect::<Result<_, _>>()?;
    let mut made: Vec<Vec<Value>> = Vec::new();
    for (id, child) in children.into_iter().enumerate() {
        made.push(collect(child, id)?);
    }
    let round1 = t.elapsed();
    let tracked: Vec<Vec<&Value>> = made
        .iter()
        .map(|m| m.iter().filter(|v| v.get("value").is_some()).collect())
        .collect();
    let shorts = made
        .iter()
        .flatten()
        .filter(|v| v.get("short").is_some())
        .count();
    let created: usize = tracked.iter().map(Vec::len).sum();
    let authenticated = tracked
        .iter()
        .flatten()
        .filter(|v| v["authid"].is_string())
        .count();

    // Round 2: each worker looks up the cookies of the next worker and logs out every fifth.
    let t = Instant::now();
    let mut children = Vec::new();
    let mut expect_logout = 0;
    for id in 0..args.workers {
        let mut child = spawn(args, "lookup", id)?;
        let mut stdin = child.stdin.take().ok_or("no stdin")?;
        let theirs = &tracked[(id + 1) % args.workers];
        let jobs: Vec<String> = theirs
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let logout = i % 5 == 0;
                expect_logout += logout as usize;
                json!({"value": v["value"], "authid": v["authid"], "logout": logout}).to_string()
            })
            .collect();
        std::thread::spawn(move || {
            for j in jobs {
                if writeln!(stdin, "{j}").is_err() {
                    break;
                }
            }
        });
        children.push(child);
    }
    let mut results = Vec::new();
    for (id, child) in children.into_iter().enumerate() {
        results.extend(collect(child, id)?);
    }
    let round2 = t.elapsed();
    let found = results.iter().filter(|r| r["found"] == true).count();
    let auth_ok = results.iter().filter(|r| r["auth_ok"] == true).count();
    let logged_out = results.iter().filter(|r| r["logged_out"] == true).count();

    // The short-lived cookies have a max_age of 1 s.
    std::thread::sleep(Duration::from_millis(1100));
    let t = Instant::now();
    let purged = store.purge_expired().map_err(|e| e.to_string())?;
    let purge_time = t.elapsed();
    let report = cookiestore::maintenance::check(&store).map_err(|e| e.to_string())?;
    let stats = store.stats().map_err(|e| e.to_string())?;

    let ops = created + authenticated + shorts + results.len() + logged_out;
    println!(
        "round 1: {created} cookies created, {authenticated} authenticated, {shorts} short-lived, in {:.2?}\n\
         round 2: {found}/{} cross-worker lookups found, {auth_ok} with the right auth, {logged_out} logged out, in {:.2?}\n\
         purge:   {purged} expired cookies removed in {:.2?}\n\
         store:   {} live ({} authenticated), {} KiB of {} KiB map used, check: {}\n\
         total:   {ops} operations by {} processes in {:.2?}",
        round1,
        results.len(),
        round2,
        purge_time,
        stats.live,
        stats.authenticated,
        stats.map_used / 1024,
        stats.map_size / 1024,
        if report.is_clean() {
            "clean".to_string()
        } else {
            format!("{} problems", report.problems.len())
        },
        args.workers,
        started.elapsed(),
    );
    let ok = found == results.len()
        && auth_ok == found
        && logged_out == expect_logout
        && purged as usize >= shorts
        && report.is_clean()
        && stats.live == before + (created - logged_out) as u64;
    if !ok {
        return Err("the summary does not add up: see above".into());
    }
    println!("ok");
    Ok(())
}
