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
//! fifth one out. In round three every worker holds open "connections" for the same cookies
//! and watches the store's revocation feed; one worker logs those cookies out (by value, and
//! one by authid), and every worker reports its own connections of them to close, with the
//! delay from the logout's commit. Short-lived cookies expire meanwhile, and the parent purges
//! them. It prints a short summary; the store stays at the path for `cookiestore stats` /
//! `dump`.

// A failed unwrap here (helpers included) is the test, bench or example failing.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use cookiestore::{
    Auth, AuthContext, AuthUpdate, Clock, Connections, CookieStore, StoreOptions, SystemClock,
    Tracker, TrackerConfig, WatchEvent, Watcher,
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
        "watch" => watch(&tracker, id, &mut out)?,
        other => eprintln!("unknown round {other}"),
    }
    Ok(())
}

/// Round three, in one worker: hold a connection for each cookie named on stdin, watch the
/// revocation feed, and report the connections it hands over to close. Worker 0 also logs
/// the cookies out when the parent says "go".
fn watch(tracker: &Tracker, id: usize, out: &mut impl Write) -> cookiestore::Result<()> {
    let mut lines = std::io::stdin().lock().lines().map_while(Result::ok);
    let job: Value = serde_json::from_str(&lines.next().unwrap_or_default()).unwrap_or_default();
    let cookies: Vec<(String, String)> = job["cookies"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            (
                c[0].as_str().unwrap_or_default().into(),
                c[1].as_str().unwrap_or_default().into(),
            )
        })
        .collect();
    let registry = Arc::new(Connections::<u64>::new());
    for (n, (value, _)) in cookies.iter().enumerate() {
        registry.register(value, (id * 1_000_000 + n) as u64);
    }
    let (tx, rx) = mpsc::channel();
    let _watcher = Watcher::spawn(
        tracker.store(),
        registry.clone(),
        Watcher::DEFAULT_INTERVAL,
        move |event| {
            if let WatchEvent::Revoked {
                revocations,
                connections,
            } = event
            {
                let now = SystemClock.now_ns();
                let delays: Vec<u64> = revocations
                    .iter()
                    .map(|r| now.saturating_sub(r.at_ns))
                    .collect();
                tx.send((connections.len(), delays)).ok();
            }
        },
    )?;
    writeln!(out, "{}", json!({"ready": id})).ok();
    out.flush().ok();
    if id == 0 && lines.next().as_deref() == Some("go") {
        let (last, rest) = cookies.split_last().expect("round three has cookies");
        for (value, _) in rest {
            tracker.logout(value)?;
        }
        tracker.store().logout_authid(&last.1)?;
    }
    let (mut closed, mut delays) = (0, Vec::new());
    let deadline = Instant::now() + Duration::from_secs(20);
    while closed < cookies.len() && Instant::now() < deadline {
        if let Ok((n, d)) = rx.recv_timeout(Duration::from_millis(200)) {
            closed += n;
            delays.extend(d);
        }
    }
    writeln!(out, "{}", json!({"closed": closed, "delays_ns": delays})).ok();
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
        store.location(),
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

    // Round 3: every worker holds connections for the same cookies; worker 0 logs them out.
    let t = Instant::now();
    let still_live: Vec<&Value> = tracked[0]
        .iter()
        .enumerate()
        .filter(|(i, v)| v["authid"].is_string() && (i % 5 != 0 || args.workers < 2))
        .map(|(_, v)| *v)
        .take(50)
        .collect();
    let job = json!({"cookies": still_live.iter().map(|v| json!([v["value"], v["authid"]])).collect::<Vec<_>>()});
    let mut watchers = Vec::new();
    for id in 0..args.workers {
        let mut child = spawn(args, "watch", id)?;
        let mut stdin = child.stdin.take().ok_or("no stdin")?;
        writeln!(stdin, "{job}").map_err(|e| e.to_string())?;
        let mut stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        let mut ready = String::new();
        stdout.read_line(&mut ready).map_err(|e| e.to_string())?;
        if !ready.contains("ready") {
            return Err(format!("worker {id} did not start watching: {ready:?}"));
        }
        watchers.push((child, stdin, stdout));
    }
    writeln!(watchers[0].1, "go").map_err(|e| e.to_string())?;
    let mut closed = Vec::new();
    let mut delays: Vec<u64> = Vec::new();
    for (id, (mut child, stdin, mut stdout)) in watchers.into_iter().enumerate() {
        drop(stdin);
        let mut line = String::new();
        stdout.read_line(&mut line).map_err(|e| e.to_string())?;
        let status = child.wait().map_err(|e| e.to_string())?;
        if !status.success() {
            return Err(format!("worker {id} failed in round 3: {status}"));
        }
        let v: Value = serde_json::from_str(&line).unwrap_or_default();
        closed.push(v["closed"].as_u64().unwrap_or(0) as usize);
        delays.extend(
            v["delays_ns"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_u64),
        );
    }
    delays.sort_unstable();
    let pct = |p: usize| {
        delays
            .get((delays.len() * p / 100).min(delays.len().saturating_sub(1)))
            .map_or(0.0, |ns| *ns as f64 / 1e6)
    };
    let round3 = t.elapsed();

    // The short-lived cookies have a max_age of 1 s.
    std::thread::sleep(Duration::from_millis(1100));
    let t = Instant::now();
    let purged = store.purge_expired().map_err(|e| e.to_string())?;
    let purge_time = t.elapsed();
    let report =
        cookiestore::maintenance::check(store.as_lmdb().unwrap()).map_err(|e| e.to_string())?;
    let stats = store.stats().map_err(|e| e.to_string())?;

    let ops = created + authenticated + shorts + results.len() + logged_out + still_live.len();
    println!(
        "round 1: {created} cookies created, {authenticated} authenticated, {shorts} short-lived, in {:.2?}\n\
         round 2: {found}/{} cross-worker lookups found, {auth_ok} with the right auth, {logged_out} logged out, in {:.2?}\n\
         round 3: {} cookies logged out by worker 0 (one by authid); connections handed over to close per worker: {closed:?} of {} each; delay after the logout commit: median {:.1} ms, p99 {:.1} ms, in {:.2?}\n\
         purge:   {purged} expired cookies removed in {:.2?}\n\
         store:   {} live ({} authenticated), {} KiB of {} KiB map used, check: {}\n\
         total:   {ops} operations by {} processes in {:.2?}",
        round1,
        results.len(),
        round2,
        still_live.len(),
        still_live.len(),
        pct(50),
        pct(99),
        round3,
        purge_time,
        stats.live,
        stats.authenticated,
        stats.lmdb.as_ref().unwrap().map_used / 1024,
        stats.lmdb.as_ref().unwrap().map_size / 1024,
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
        && !still_live.is_empty()
        && closed.iter().all(|&n| n == still_live.len())
        && purged as usize >= shorts
        && report.is_clean()
        && stats.live == before + (created - logged_out - still_live.len()) as u64;
    if !ok {
        return Err("the summary does not add up: see above".into());
    }
    println!("ok");
    Ok(())
}
