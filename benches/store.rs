//! The store against the physical limit: every group runs our operation (`ours`)
//! and a raw heed baseline doing the same LMDB work on the same layout (`raw_heed`), on
//! fixture stores of 100k and 1M cookies built once into `target/bench-stores/`.
//!
//! ```text
//! cargo bench --bench store                      # everything (~10-15 min, first run builds 1M)
//! COOKIESTORE_BENCH_QUICK=1 cargo bench --bench store   # 100k only, fewer samples
//! cargo bench --bench store -- --test            # smoke: each bench once
//! cargo bench --bench store -- lookup/1M         # one group (criterion filter)
//! ```
//!
//! After the criterion run, the multi-process throughput and the memory of a fresh process
//! are measured (children re-executed from this binary), and a ratio summary is printed and
//! written to `target/bench-summary.md`.

// A failed unwrap here (helpers included) is the test, bench or example failing.
#![allow(clippy::unwrap_used)]

#[path = "common/mod.rs"]
mod common;
#[path = "store/summary.rs"]
mod summary;

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use cookiestore::{
    AuthUpdate, CookieStore, Durability, ManualClock, StoreOptions, Tracker, TrackerConfig,
};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, SamplingMode, Throughput};
use heed::EnvFlags;
use serde_json::Value;

use common::{Fixture, Keys, Kind, Mem, Raw, copy_store, label, now_ns, options};
use summary::{fmt_ns, loadavg};

/// Cookies created per write transaction in `create_batch`.
const BATCH: u64 = 1_000;
/// max_age of created cookies (Crossbar's default: one day).
const MAX_AGE: u64 = 86_400;

/// How long and how often a group is sampled.
#[derive(Clone, Copy)]
enum Pace {
    /// Sub-microsecond to microsecond operations.
    Fast,
    /// Write transactions (fsync-bound ones included).
    Write,
    /// Operations of 1 ms to seconds, each with an untimed setup.
    Slow,
}

/// (impl, cookies, lookups, stages) of one memory child.
type MemoryRun = (Kind, u64, u64, Vec<(String, Mem)>);

struct Run {
    quick: bool,
    test_mode: bool,
    filter: Option<String>,
    started: SystemTime,
    load_start: String,
    /// (group, function, operations per iteration), in registration order.
    ids: Vec<(String, String, u64)>,
    throughput: Vec<(Kind, u64, common::Throughput)>,
    memory: Vec<MemoryRun>,
    /// (group, ours ns/op, raw_heed ns/op) measured interleaved.
    interleaved: Vec<(String, f64, f64)>,
    /// (group, function, ns/iteration) timed by hand, outside criterion.
    manual: Vec<(String, String, f64)>,
    /// Lines about the cache (hit rates, sizes), for the summary.
    cache_notes: Vec<String>,
}

impl Run {
    /// Whether bench `id` is selected by the filter: a substring, or several separated by
    /// `|` (criterion reads the same filter as a regular expression).
    fn selected(&self, id: &str) -> bool {
        self.filter
            .as_deref()
            .is_none_or(|f| f.split('|').any(|alt| id.contains(alt)))
    }

    fn any_selected(&self, group: &str, functions: &[&str]) -> bool {
        functions
            .iter()
            .any(|f| self.selected(&format!("{group}/{f}")))
    }

    fn group<'c>(
        &mut self,
        c: &'c mut Criterion,
        name: &str,
        pace: Pace,
    ) -> BenchmarkGroup<'c, WallTime> {
        let mut g = c.benchmark_group(name);
        match (pace, self.quick) {
            (Pace::Slow, _) => {
                g.sample_size(10)
                    .warm_up_time(Duration::from_millis(1))
                    .measurement_time(Duration::from_secs(1))
                    .sampling_mode(SamplingMode::Flat);
            }
            (_, true) => {
                g.sample_size(10)
                    .warm_up_time(Duration::from_millis(300))
                    .measurement_time(Duration::from_secs(1));
            }
            (Pace::Fast, false) => {
                g.sample_size(30)
                    .warm_up_time(Duration::from_secs(1))
                    .measurement_time(Duration::from_secs(3));
            }
            (Pace::Write, false) => {
                g.sample_size(20)
                    .warm_up_time(Duration::from_millis(500))
                    .measurement_time(Duration::from_secs(3));
            }
        }
        g
    }

    /// Prints the interleaved comparison `id` (ours as `labels.0`, raw heed as `labels.1`)
    /// and keeps it under `key` for the summary.
    fn interleaved_row(&mut self, id: &str, key: String, labels: (&str, &str), ns: (f64, f64)) {
        let (ours_ns, raw_ns) = ns;
        println!(
            "{id}: {} {} {} {} ratio {:.2}x",
            labels.0,
            fmt_ns(ours_ns),
            labels.1,
            fmt_ns(raw_ns),
            ours_ns / raw_ns
        );
        self.interleaved.push((key, ours_ns, raw_ns));
    }

    fn register(&mut self, group: &str, function: &str, per_iter: u64) {
        self.ids
            .push((group.to_string(), function.to_string(), per_iter));
    }
}

fn main() {
    if common::child_main() {
        return;
    }
    let args: Vec<String> = std::env::args().collect();
    let mut run = Run {
        quick: std::env::var("COOKIESTORE_BENCH_QUICK").is_ok_and(|v| v == "1"),
        test_mode: args.iter().any(|a| a == "--test"),
        filter: args.iter().skip(1).find(|a| !a.starts_with('-')).cloned(),
        started: SystemTime::now(),
        load_start: loadavg(),
        ids: Vec::new(),
        throughput: Vec::new(),
        memory: Vec::new(),
        interleaved: Vec::new(),
        manual: Vec::new(),
        cache_notes: Vec::new(),
    };
    let mut c = Criterion::default()
        .without_plots()
        .noise_threshold(0.03)
        .configure_from_args();

    let sizes: &[u64] = if run.quick {
        &[100_000]
    } else {
        &[100_000, 1_000_000]
    };
    let mut largest = None;
    for &n in sizes {
        let fx = Fixture::ensure(n);
        read_benches(&mut c, &mut run, &fx);
        cache_benches(&mut c, &mut run, &fx);
        write_benches(&mut c, &mut run, &fx);
        durability_benches(&mut c, &mut run, &fx);
        largest = Some(fx);
    }
    let big = largest.expect("at least one size");
    purge_half(&mut run, &big);
    open_benches(&mut c, &mut run, &big);
    c.final_summary();

    let duration = if run.test_mode {
        Duration::from_millis(200)
    } else if run.quick {
        Duration::from_secs(1)
    } else {
        Duration::from_secs(3)
    };
    if run.selected("multiprocess") {
        for kind in [Kind::Ours, Kind::Raw] {
            for procs in [1, 2] {
                let t = common::run_throughput(kind, &big, procs, duration);
                println!(
                    "multiprocess/{}/{}/{procs}proc: {:.0} lookups/s",
                    label(big.n),
                    kind.name(),
                    t.per_sec
                );
                run.throughput.push((kind, big.n, t));
            }
        }
    }
    if run.selected("memory") {
        let lookups = if run.test_mode { 10_000 } else { big.n };
        for kind in [Kind::Ours, Kind::OursCached, Kind::Raw] {
            let stages = common::run_memory(kind, &big, lookups);
            for (stage, m) in &stages {
                println!(
                    "memory/{}/{}/{stage}: anonymous {} KiB, rss {} KiB",
                    label(big.n),
                    kind.name(),
                    m.anonymous_kib,
                    m.rss_kib
                );
            }
            run.memory.push((kind, big.n, lookups, stages));
        }
    }

    if run.test_mode {
        println!("test mode: no measurements, no summary written");
        return;
    }
    let summary = summary::summary(&run);
    println!("\n{summary}");
    let path = common::target_dir().join("bench-summary.md");
    match std::fs::write(&path, &summary) {
        Ok(()) => println!("summary written to {}", path.display()),
        Err(e) => eprintln!("cannot write {}: {e}", path.display()),
    }
}

// ---- reads -----------------------------------------------------------------------------------

fn read_benches(c: &mut Criterion, run: &mut Run, fx: &Fixture) {
    let l = label(fx.n);
    let lookup = format!("lookup/{l}");
    let track = format!("track/{l}");
    let purge = format!("purge_none/{l}");
    let lookup_fns = [
        "ours",
        "ours_borrowed",
        "raw_heed",
        "raw_heed_two_get",
        "raw_heed_noverify",
        "raw_heed_owned",
    ];
    if !run.any_selected(&lookup, &lookup_fns)
        && !run.any_selected(&track, &["ours", "ours_borrowed", "raw_heed"])
        && !run.any_selected(&purge, &["ours", "raw_heed"])
    {
        return;
    }
    let store = CookieStore::open(fx.ours(), options(false)).expect("open the fixture");
    let raw = Raw::open(&fx.raw(), false);
    // A router worker is a long-lived process: measure with the map faulted in.
    common::warm_store(&store);
    raw.warm();
    let mut keys = Keys::shuffled(fx.n);
    let now = now_ns();
    {
        let v = common::value(7);
        assert_eq!(store.get_auth(&v).unwrap(), Some(common::auth(7)));
        assert_eq!(raw.lookup_owned(&v, now), Some(common::auth(7)));
        assert!(raw.lookup(&v, now) > 0 && raw.lookup(&v, now) == raw.lookup_noverify(&v, now));
    }

    let mut g = run.group(c, &lookup, Pace::Fast);
    g.throughput(Throughput::Elements(1));
    for f in lookup_fns {
        run.register(&lookup, f, 1);
    }
    g.bench_function("ours", |b| {
        b.iter(|| store.get_auth(keys.next_value()).expect("get_auth"))
    });
    // The borrowed view: the same fields raw_heed reads, nothing copied or decoded.
    g.bench_function("ours_borrowed", |b| {
        b.iter(|| {
            store
                .with_auth(keys.next_value(), borrowed_auth_fields)
                .expect("with_auth")
        })
    });
    g.bench_function("raw_heed", |b| {
        b.iter(|| raw.lookup(keys.next_value(), now))
    });
    g.bench_function("raw_heed_two_get", |b| {
        b.iter(|| raw.lookup_two_get(keys.next_value()))
    });
    g.bench_function("raw_heed_noverify", |b| {
        b.iter(|| raw.lookup_noverify(keys.next_value(), now))
    });
    g.bench_function("raw_heed_owned", |b| {
        b.iter(|| raw.lookup_owned(keys.next_value(), now))
    });
    g.finish();

    // The same comparison interleaved in blocks of lookups (robust to the load drifting on
    // a shared machine, which criterion's one-after-the-other measurements are not).
    let id = format!("{lookup}/interleaved");
    if !run.test_mode && run.selected(&id) {
        let total = if run.quick { 2 } else { 6 };
        let (ours_ns, raw_ns) =
            get_auth_vs_raw(&mut keys, &store, &raw, now, Duration::from_secs(total));
        run.interleaved_row(&id, lookup.clone(), ("ours", "raw_heed"), (ours_ns, raw_ns));
    }
    // The borrowed lookup against the bare two gets (read txn, index get, record get).
    let id = format!("{lookup}/borrowed_vs_two_get");
    if !run.test_mode && run.selected(&id) {
        let total = if run.quick { 2 } else { 6 };
        let (ours_ns, raw_ns) = interleaved(
            &mut keys,
            |v| {
                black_box(store.with_auth(v, borrowed_auth_fields).expect("with_auth"));
            },
            |v| {
                black_box(raw.lookup_two_get(v));
            },
            Duration::from_secs(total),
        );
        run.interleaved_row(
            &id,
            id.clone(),
            ("ours_borrowed", "raw_heed_two_get"),
            (ours_ns, raw_ns),
        );
        // The same borrowed lookup against raw heed reading the same fields without any check
        // (FlatBuffers' unchecked accessors): the floor of reading a record at all.
        let id = format!("{lookup}/borrowed_vs_noverify");
        let (ours_ns, raw_ns) = interleaved(
            &mut keys,
            |v| {
                black_box(store.with_auth(v, borrowed_auth_fields).expect("with_auth"));
            },
            |v| {
                black_box(raw.lookup_noverify(v, now));
            },
            Duration::from_secs(total),
        );
        run.interleaved_row(
            &id,
            id.clone(),
            ("ours_borrowed", "raw_heed_noverify"),
            (ours_ns, raw_ns),
        );
    }

    // The tracker with a known cookie: header parsing, the lookup, the Set-Cookie value.
    let tracker = Tracker::new(store.clone(), TrackerConfig::default()).expect("tracker");
    let mut header = Vec::with_capacity(64);
    let mut g = run.group(c, &track, Pace::Fast);
    g.throughput(Throughput::Elements(1));
    run.register(&track, "ours", 1);
    run.register(&track, "ours_borrowed", 1);
    run.register(&track, "raw_heed", 1);
    g.bench_function("ours", |b| {
        b.iter(|| {
            let h = cookie_header(&mut header, keys.next_value());
            let t = tracker.track(Some(h)).expect("track");
            debug_assert!(!t.is_new);
            t
        })
    });
    // The borrowed answer: the same lookup, authextra not decoded, nothing copied.
    g.bench_function("ours_borrowed", |b| {
        b.iter(|| {
            let h = cookie_header(&mut header, keys.next_value());
            tracker
                .track_with(Some(h), |t| {
                    debug_assert!(!t.is_new);
                    t.auth.map_or(0, borrowed_auth_fields) + t.set_cookie.len()
                })
                .expect("track_with")
        })
    });
    g.bench_function("raw_heed", |b| {
        b.iter(|| {
            let h = cookie_header(&mut header, keys.next_value());
            let value = std::str::from_utf8(&h[18..]).expect("ASCII");
            raw.lookup(value, now)
        })
    });
    g.finish();
    track_vs_raw(
        run,
        &mut keys,
        &raw,
        now,
        format!("{track}/interleaved"),
        "ours",
        |h| {
            black_box(tracker.track(Some(h)).expect("track"));
        },
    );
    let id = format!("{track}/borrowed_interleaved");
    track_vs_raw(run, &mut keys, &raw, now, id, "ours_borrowed", |h| {
        let seen = tracker.track_with(Some(h), |t| {
            t.auth.map_or(0, borrowed_auth_fields) + t.set_cookie.len()
        });
        black_box(seen.expect("track_with"));
    });

    // Purge with nothing expired: the store's quick check against the same two reads.
    let mut g = run.group(c, &purge, Pace::Fast);
    run.register(&purge, "ours", 1);
    run.register(&purge, "raw_heed", 1);
    g.bench_function("ours", |b| {
        b.iter(|| {
            let n = store.purge_expired().expect("purge");
            debug_assert_eq!(n, 0);
            n
        })
    });
    g.bench_function("raw_heed", |b| b.iter(|| raw.purge_quiet_check(now)));
    g.finish();
}

// ---- the per-process cache -------------------------------------------------------------------

/// Cookies in the working set of `cached/*`: what a 10 MiB cache holds whole.
const WORKING_SET: usize = 5_000;

fn cache_benches(c: &mut Criterion, run: &mut Run, fx: &Fixture) {
    let l = label(fx.n);
    let group = format!("cached/{l}");
    // (The uncached lookup is `lookup/*`: two handles of one path would share one cache.)
    let fns = [
        "ours_hit",
        "ours_hit_shared",
        "ours_hit_borrowed",
        "track_hit",
        "track_hit_borrowed",
        "raw_heed",
    ];
    if !run.any_selected(&group, &fns) && !run.selected(&format!("{group}/uniform")) {
        return;
    }
    let opts = options(false).cache_bytes(StoreOptions::default().lmdb.cache_bytes);
    let store = CookieStore::open(fx.ours(), opts.clone()).expect("open the fixture");
    let raw = Raw::open(&fx.raw(), false);
    common::warm_store(&store);
    raw.warm();
    let now = now_ns();
    let mut keys = Keys::working_set(fx.n, WORKING_SET);
    for _ in 0..WORKING_SET {
        assert!(store.get_auth(keys.next_value()).expect("fill").is_some());
    }

    let mut g = run.group(c, &group, Pace::Fast);
    g.throughput(Throughput::Elements(1));
    for f in fns {
        run.register(&group, f, 1);
    }
    // A hit: the meta page's transaction id, one hash lookup, the clock, a clone of Auth.
    g.bench_function("ours_hit", |b| {
        b.iter(|| store.get_auth(keys.next_value()).expect("get_auth"))
    });
    // The same hit without the copy: the cached answer shared (`lookup_cached`, what the
    // Python binding uses).
    g.bench_function("ours_hit_shared", |b| {
        b.iter(|| store.lookup_cached(keys.next_value()).expect("a hit"))
    });
    // The borrowed read on a hit: the cached answer lent to the closure, nothing copied.
    g.bench_function("ours_hit_borrowed", |b| {
        b.iter(|| {
            store
                .with_auth(keys.next_value(), borrowed_auth_fields)
                .expect("with_auth")
        })
    });
    // A router's connection of a known cookie on a hit: header, lookup, Set-Cookie value.
    let tracker = Tracker::new(store.clone(), TrackerConfig::default()).expect("tracker");
    let mut header = Vec::with_capacity(64);
    g.bench_function("track_hit", |b| {
        b.iter(|| {
            let h = cookie_header(&mut header, keys.next_value());
            tracker.track(Some(h)).expect("track")
        })
    });
    g.bench_function("track_hit_borrowed", |b| {
        b.iter(|| {
            let h = cookie_header(&mut header, keys.next_value());
            tracker
                .track_with(Some(h), |t| {
                    t.auth.map_or(0, borrowed_auth_fields) + t.set_cookie.len()
                })
                .expect("track_with")
        })
    });
    g.bench_function("raw_heed", |b| {
        b.iter(|| raw.lookup(keys.next_value(), now))
    });
    g.finish();
    let stats = store.cache_stats();
    run.cache_notes.push(format!(
        "{group}: working set of {WORKING_SET} cookies: hit rate {:.4}, {} entries, {} KiB \
         (estimated) of a {} KiB budget",
        stats.hit_rate(),
        stats.entries,
        stats.bytes / 1024,
        stats.capacity_bytes / 1024
    ));

    let id = format!("{group}/interleaved");
    if !run.test_mode && run.selected(&id) {
        let total = if run.quick { 2 } else { 6 };
        let (ours_ns, raw_ns) =
            get_auth_vs_raw(&mut keys, &store, &raw, now, Duration::from_secs(total));
        println!(
            "{id}: ours_hit {} raw_heed {} ratio {:.2}x (raw/ours {:.1}x)",
            fmt_ns(ours_ns),
            fmt_ns(raw_ns),
            ours_ns / raw_ns,
            raw_ns / ours_ns
        );
        run.interleaved.push((id, ours_ns, raw_ns));
    }

    // Every cookie equally likely (the worst case for a cache): the hit rate the default
    // budget gets, and what a lookup then costs.
    let id = format!("{group}/uniform");
    if !run.test_mode && run.selected(&id) {
        drop(store);
        let store = CookieStore::open(fx.ours(), opts).expect("open the fixture");
        let mut all = Keys::shuffled(fx.n).starting_at(7);
        for _ in 0..fx.n {
            black_box(store.get_auth(all.next_value()).expect("fill"));
        }
        let before = store.cache_stats();
        let (ours_ns, raw_ns) = get_auth_vs_raw(
            &mut all,
            &store,
            &raw,
            now,
            Duration::from_secs(if run.quick { 2 } else { 6 }),
        );
        let after = store.cache_stats();
        let (hits, misses) = (after.hits - before.hits, after.misses - before.misses);
        let rate = hits as f64 / (hits + misses).max(1) as f64;
        println!(
            "{id}: ours {} raw_heed {} ratio {:.2}x, hit rate {rate:.3}",
            fmt_ns(ours_ns),
            fmt_ns(raw_ns),
            ours_ns / raw_ns
        );
        run.interleaved.push((id.clone(), ours_ns, raw_ns));
        run.cache_notes.push(format!(
            "{id}: every one of {} cookies equally likely: hit rate {rate:.3} with {} entries \
             ({} KiB estimated) in the default budget",
            fx.n,
            after.entries,
            after.bytes / 1024
        ));
    }
}

/// `theme=dark; cbtid=VALUE` in `buf`: the Cookie header the track benches send.
fn cookie_header<'b>(buf: &'b mut Vec<u8>, value: &str) -> &'b [u8] {
    buf.clear();
    buf.extend_from_slice(b"theme=dark; cbtid=");
    buf.extend_from_slice(value.as_bytes());
    buf
}

/// `ours` (given the Cookie header of a known cookie) against raw heed's lookup of the same
/// cookie, interleaved, as the row `id` (unless in test mode or not selected).
fn track_vs_raw(
    run: &mut Run,
    keys: &mut Keys,
    raw: &Raw,
    now: u64,
    id: String,
    label: &str,
    mut ours: impl FnMut(&[u8]),
) {
    if run.test_mode || !run.selected(&id) {
        return;
    }
    let total = if run.quick { 2 } else { 6 };
    let (mut header, mut raw_header) = (Vec::with_capacity(64), Vec::with_capacity(64));
    let (ours_ns, raw_ns) = interleaved(
        keys,
        |v| ours(cookie_header(&mut header, v)),
        |v| {
            let h = cookie_header(&mut raw_header, v);
            let value = std::str::from_utf8(&h[18..]).expect("ASCII");
            black_box(raw.lookup(value, now));
        },
        Duration::from_secs(total),
    );
    run.interleaved_row(&id, id.clone(), (label, "raw_heed"), (ours_ns, raw_ns));
}

/// What the borrowed lookup reads: the four auth strings, borrowed (authextra not decoded).
fn borrowed_auth_fields(a: cookiestore::AuthRef<'_>) -> usize {
    let authid = black_box(a.authid());
    let role = black_box(a.authrole());
    let method = black_box(a.authmethod());
    let realm = black_box(a.authrealm());
    authid.len() + role.map_or(0, str::len) + method.map_or(0, str::len) + realm.map_or(0, str::len)
}

/// `get_auth` against raw heed's verified lookup, interleaved on `keys` for `total`.
fn get_auth_vs_raw(
    keys: &mut Keys,
    store: &CookieStore,
    raw: &Raw,
    now: u64,
    total: Duration,
) -> (f64, f64) {
    interleaved(
        keys,
        |v| drop(black_box(store.get_auth(v).expect("get_auth"))),
        |v| {
            black_box(raw.lookup(v, now));
        },
        total,
    )
}

/// Alternates blocks of `a` and `b` (each on the next keys, the first of each round
/// alternating) for `total`; returns their mean ns per call.
fn interleaved(
    keys: &mut Keys,
    mut a: impl FnMut(&str),
    mut b: impl FnMut(&str),
    total: Duration,
) -> (f64, f64) {
    const BLOCK: u64 = 2_000;
    let mut spent = [Duration::ZERO; 2];
    let mut calls = [0u64; 2];
    let start = Instant::now();
    let mut round = 0;
    while start.elapsed() < total {
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for which in order {
            let t = Instant::now();
            for _ in 0..BLOCK {
                let v = keys.next_value();
                if which == 0 { a(v) } else { b(v) }
            }
            spent[which] += t.elapsed();
            calls[which] += BLOCK;
        }
        round += 1;
    }
    let ns = |w: usize| spent[w].as_nanos() as f64 / calls[w].max(1) as f64;
    (ns(0), ns(1))
}

// ---- writes ----------------------------------------------------------------------------------

fn write_benches(c: &mut Criterion, run: &mut Run, fx: &Fixture) {
    let l = label(fx.n);
    let create_sync = format!("create_sync/{l}");
    let create_nosync = format!("create_nosync/{l}");
    let create_batch = format!("create_batch/{l}");
    let set_auth = format!("set_auth/{l}");
    let logout = format!("logout/{l}");
    let pair = ["ours", "raw_heed"];
    let want_sync = run.any_selected(&create_sync, &pair);
    let want_nosync = run.any_selected(&create_nosync, &pair)
        || run.any_selected(&create_batch, &pair)
        || run.any_selected(&set_auth, &["ours", "raw_heed", "raw_heed_bytes"])
        || run.any_selected(&logout, &pair);
    if !want_sync && !want_nosync {
        return;
    }
    // Writes go to scratch copies, so the fixture stays as built.
    let ours_dir = fx.scratch("ours");
    let raw_dir = fx.scratch("raw");
    copy_store(&fx.ours(), &ours_dir);
    copy_store(&fx.raw(), &raw_dir);

    if want_sync {
        let store = CookieStore::open(&ours_dir, options(true)).expect("open scratch");
        let raw = Raw::open(&raw_dir, true);
        common::warm_store(&store);
        raw.warm();
        let mut g = run.group(c, &create_sync, Pace::Write);
        g.throughput(Throughput::Elements(1));
        bench_creates(&mut g, run, &create_sync, &store, &raw, 1);
        g.finish();
    }
    if want_nosync {
        let store = CookieStore::open(&ours_dir, options(false)).expect("open scratch");
        let raw = Raw::open(&raw_dir, false);
        common::warm_store(&store);
        raw.warm();

        let mut g = run.group(c, &create_nosync, Pace::Write);
        g.throughput(Throughput::Elements(1));
        bench_creates(&mut g, run, &create_nosync, &store, &raw, 1);
        g.finish();

        let mut g = run.group(c, &create_batch, Pace::Write);
        g.throughput(Throughput::Elements(BATCH));
        bench_creates(&mut g, run, &create_batch, &store, &raw, BATCH);
        g.finish();

        let mut keys = Keys::shuffled(fx.n);
        let mut counter = 0u64;
        let mut auth = common::auth(0);
        let context = common::context(0, common::BASE_NS);
        let mut g = run.group(c, &set_auth, Pace::Write);
        g.throughput(Throughput::Elements(1));
        for f in ["ours", "raw_heed", "raw_heed_bytes"] {
            run.register(&set_auth, f, 1);
        }
        // Each call stores a different authextra, so every call writes.
        g.bench_function("ours", |b| {
            b.iter(|| {
                counter += 1;
                auth.authextra["n"] = Value::from(counter);
                let r = store
                    .set_auth(keys.next_value(), &auth, &context)
                    .expect("set_auth");
                debug_assert_eq!(r, AuthUpdate::Written);
                r
            })
        });
        g.bench_function("raw_heed", |b| {
            b.iter(|| {
                counter += 1;
                auth.authextra["n"] = Value::from(counter);
                let mut txn = raw.env.write_txn().expect("write txn");
                let done = raw.set_auth(&mut txn, keys.next_value(), &auth, &context, now_ns());
                txn.commit().expect("commit");
                done
            })
        });
        let mut scratch = Vec::new();
        g.bench_function("raw_heed_bytes", |b| {
            b.iter(|| {
                let mut txn = raw.env.write_txn().expect("write txn");
                let done = raw.rewrite_record(&mut txn, keys.next_value(), &mut scratch);
                txn.commit().expect("commit");
                done
            })
        });
        g.finish();

        // Logout deletes; each sample's cookies are put back (untimed) afterwards.
        let mut keys = Keys::shuffled(fx.n).starting_at(fx.n as usize / 2);
        let mut g = run.group(c, &logout, Pace::Write);
        g.throughput(Throughput::Elements(1));
        run.register(&logout, "ours", 1);
        run.register(&logout, "raw_heed", 1);
        g.bench_function("ours", |b| {
            b.iter_custom(|iters| {
                let picked: Vec<(u64, String)> = (0..iters)
                    .map(|_| {
                        let (i, v) = keys.next_entry();
                        (i, v.to_string())
                    })
                    .collect();
                let t = Instant::now();
                for (_, v) in &picked {
                    assert!(store.delete(v).expect("delete"));
                }
                let elapsed = t.elapsed();
                store
                    .as_lmdb()
                    .unwrap()
                    .batch("restore", |b| {
                        picked
                            .iter()
                            .try_for_each(|(i, _)| b.put(&common::cookie(*i)))
                    })
                    .expect("restore");
                elapsed
            })
        });
        g.bench_function("raw_heed", |b| {
            b.iter_custom(|iters| {
                let picked: Vec<(u64, String)> = (0..iters)
                    .map(|_| {
                        let (i, v) = keys.next_entry();
                        (i, v.to_string())
                    })
                    .collect();
                let t = Instant::now();
                for (_, v) in &picked {
                    let mut txn = raw.env.write_txn().expect("write txn");
                    assert!(raw.logout(&mut txn, v));
                    txn.commit().expect("commit");
                }
                let elapsed = t.elapsed();
                let mut txn = raw.env.write_txn().expect("write txn");
                for (i, _) in &picked {
                    raw.put_cookie(&mut txn, &common::cookie(*i));
                }
                txn.commit().expect("commit");
                elapsed
            })
        });
        g.finish();
    }
    let _ = std::fs::remove_dir_all(fx.scratch(""));
}

/// `create` (`per_txn` = 1) or a batch of `per_txn` creates in one write transaction, ours
/// and raw; the cookies made in a sample are deleted again (untimed), so the store keeps its
/// size however long criterion runs.
fn bench_creates(
    g: &mut BenchmarkGroup<'_, WallTime>,
    run: &mut Run,
    name: &str,
    store: &CookieStore,
    raw: &Raw,
    per_txn: u64,
) {
    run.register(name, "ours", per_txn);
    run.register(name, "raw_heed", per_txn);
    g.bench_function("ours", |b| {
        b.iter_custom(|iters| {
            let mut made: Vec<String> = Vec::with_capacity((iters * per_txn) as usize);
            let t = Instant::now();
            for _ in 0..iters {
                if per_txn == 1 {
                    made.push(store.create("cbtid", 24, MAX_AGE).expect("create").value);
                } else {
                    let values = store
                        .as_lmdb()
                        .unwrap()
                        .batch("create a batch", |b| {
                            (0..per_txn)
                                .map(|_| b.create("cbtid", 24, MAX_AGE).map(|c| c.value))
                                .collect::<cookiestore::Result<Vec<_>>>()
                        })
                        .expect("create a batch");
                    made.extend(values);
                }
            }
            let elapsed = t.elapsed();
            store
                .as_lmdb()
                .unwrap()
                .batch("clean up", |b| {
                    made.iter().try_for_each(|v| b.delete(v).map(drop))
                })
                .expect("clean up");
            elapsed
        })
    });
    g.bench_function("raw_heed", |b| {
        b.iter_custom(|iters| {
            let mut made = Vec::with_capacity((iters * per_txn) as usize);
            let t = Instant::now();
            for _ in 0..iters {
                let mut txn = raw.env.write_txn().expect("write txn");
                let now = now_ns();
                for _ in 0..per_txn {
                    made.push(raw.create(&mut txn, now, MAX_AGE));
                }
                txn.commit().expect("commit");
            }
            let elapsed = t.elapsed();
            let mut txn = raw.env.write_txn().expect("write txn");
            for (value, oid, expires_at) in &made {
                raw.delete_known(&mut txn, value, oid.as_bytes(), *expires_at);
            }
            txn.commit().expect("commit");
            elapsed
        })
    });
}

// ---- durability policies ------------------------------------------------------------------------

/// The policies benched, with their function-name suffix.
const POLICIES: [(&str, Durability); 4] = [
    ("full", Durability::Full),
    ("safe_lazy", Durability::SafeLazyCreates),
    ("lazy", Durability::LazyCreates),
    ("none", Durability::None),
];

/// Sets the raw environment's flags for one commit as policy `d` does in the store: a lazy
/// commit (a create) skips the meta flush (SafeLazyCreates) or every flush (LazyCreates);
/// `None` flushes nothing.
fn raw_flags(raw: &Raw, d: Durability, lazy: bool) {
    raw.set_commit_flag(
        EnvFlags::NO_SYNC,
        d == Durability::None || (d == Durability::LazyCreates && lazy),
    );
    raw.set_commit_flag(
        EnvFlags::NO_META_SYNC,
        d == Durability::SafeLazyCreates && lazy,
    );
}

/// Per durability policy: `create` (one per transaction) and a login (`create`, then
/// `set_auth` in its own transaction, as a router does), ours beside raw heed committing with
/// the same flags per commit.
fn durability_benches(c: &mut Criterion, run: &mut Run, fx: &Fixture) {
    let l = label(fx.n);
    let create = format!("create_durability/{l}");
    let login = format!("login/{l}");
    let fns: Vec<String> = POLICIES
        .iter()
        .flat_map(|(p, _)| [format!("ours_{p}"), format!("raw_heed_{p}")])
        .collect();
    let fn_refs: Vec<&str> = fns.iter().map(String::as_str).collect();
    if !run.any_selected(&create, &fn_refs) && !run.any_selected(&login, &fn_refs) {
        return;
    }
    let ours_dir = fx.scratch("ours");
    let raw_dir = fx.scratch("raw");
    copy_store(&fx.ours(), &ours_dir);
    copy_store(&fx.raw(), &raw_dir);
    let raw = Raw::open(&raw_dir, true);
    raw.warm();
    let auth = common::auth(0);
    let context = common::context(0, common::BASE_NS);
    for f in &fns {
        run.register(&create, f, 1);
        run.register(&login, f, 1);
    }
    for (p, d) in POLICIES {
        // One policy's handle at a time: handles of one path share one environment.
        let store = CookieStore::open(&ours_dir, options(d != Durability::None).durability(d))
            .expect("open scratch");
        common::warm_store(&store);
        for (group, with_auth) in [(&create, false), (&login, true)] {
            let mut g = run.group(c, group, Pace::Write);
            g.throughput(Throughput::Elements(1));
            g.bench_function(format!("ours_{p}"), |b| {
                b.iter_custom(|iters| {
                    let mut made = Vec::with_capacity(iters as usize);
                    let t = Instant::now();
                    for _ in 0..iters {
                        let v = store.create("cbtid", 24, MAX_AGE).expect("create").value;
                        if with_auth {
                            let r = store.set_auth(&v, &auth, &context).expect("set_auth");
                            debug_assert_eq!(r, AuthUpdate::Written);
                        }
                        made.push(v);
                    }
                    let elapsed = t.elapsed();
                    store
                        .as_lmdb()
                        .unwrap()
                        .batch("clean up", |b| {
                            made.iter().try_for_each(|v| b.delete(v).map(drop))
                        })
                        .expect("clean up");
                    elapsed
                })
            });
            g.bench_function(format!("raw_heed_{p}"), |b| {
                b.iter_custom(|iters| {
                    let mut made = Vec::with_capacity(iters as usize);
                    let t = Instant::now();
                    for _ in 0..iters {
                        let mut txn = raw.env.write_txn().expect("write txn");
                        let now = now_ns();
                        let (value, oid, expires_at) = raw.create(&mut txn, now, MAX_AGE);
                        raw_flags(&raw, d, true);
                        txn.commit().expect("commit");
                        if with_auth {
                            let v = std::str::from_utf8(&value).expect("ASCII");
                            let mut txn = raw.env.write_txn().expect("write txn");
                            assert!(raw.set_auth(&mut txn, v, &auth, &context, now));
                            raw_flags(&raw, d, false);
                            txn.commit().expect("commit");
                        }
                        made.push((value, oid, expires_at));
                    }
                    let elapsed = t.elapsed();
                    let mut txn = raw.env.write_txn().expect("write txn");
                    for (value, oid, expires_at) in &made {
                        raw.delete_known(&mut txn, value, oid.as_bytes(), *expires_at);
                    }
                    raw_flags(&raw, d, false);
                    txn.commit().expect("commit");
                    elapsed
                })
            });
            g.finish();
        }
        // The same, interleaved: ours and raw alternate in blocks of 10 (robust to the load
        // and the shared disk drifting, which fsync-bound timings do a lot here).
        for (group, with_auth) in [(&create, false), (&login, true)] {
            let id = format!("{group}/{p}_interleaved");
            if run.test_mode || !run.selected(&id) {
                continue;
            }
            let total = Duration::from_secs(if run.quick { 2 } else { 4 });
            let mut ours_made = Vec::new();
            let mut raw_made = Vec::new();
            let (ours_ns, raw_ns) = interleaved_blocks(
                10,
                || {
                    let v = store.create("cbtid", 24, MAX_AGE).expect("create").value;
                    if with_auth {
                        store.set_auth(&v, &auth, &context).expect("set_auth");
                    }
                    ours_made.push(v);
                },
                || {
                    let mut txn = raw.env.write_txn().expect("write txn");
                    let now = now_ns();
                    let (value, oid, expires_at) = raw.create(&mut txn, now, MAX_AGE);
                    raw_flags(&raw, d, true);
                    txn.commit().expect("commit");
                    if with_auth {
                        let v = std::str::from_utf8(&value).expect("ASCII");
                        let mut txn = raw.env.write_txn().expect("write txn");
                        assert!(raw.set_auth(&mut txn, v, &auth, &context, now));
                        raw_flags(&raw, d, false);
                        txn.commit().expect("commit");
                    }
                    raw_made.push((value, oid, expires_at));
                },
                total,
            );
            store
                .as_lmdb()
                .unwrap()
                .batch("clean up", |b| {
                    ours_made.iter().try_for_each(|v| b.delete(v).map(drop))
                })
                .expect("clean up");
            let mut txn = raw.env.write_txn().expect("write txn");
            for (value, oid, expires_at) in &raw_made {
                raw.delete_known(&mut txn, value, oid.as_bytes(), *expires_at);
            }
            raw_flags(&raw, d, false);
            txn.commit().expect("commit");
            run.interleaved_row(&id, id.clone(), ("ours", "raw_heed"), (ours_ns, raw_ns));
        }
        drop(store);
    }
    drop(raw);
    let _ = std::fs::remove_dir_all(fx.scratch(""));
}

/// Alternates blocks of `block` calls of `a` and `b` (the first of each round alternating)
/// for `total`; returns their mean ns per call.
fn interleaved_blocks(
    block: u64,
    mut a: impl FnMut(),
    mut b: impl FnMut(),
    total: Duration,
) -> (f64, f64) {
    let mut spent = [Duration::ZERO; 2];
    let mut calls = [0u64; 2];
    let start = Instant::now();
    let mut round = 0;
    while start.elapsed() < total || calls[0] == 0 {
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for which in order {
            let t = Instant::now();
            for _ in 0..block {
                if which == 0 { a() } else { b() }
            }
            spent[which] += t.elapsed();
            calls[which] += block;
        }
        round += 1;
    }
    let ns = |w: usize| spent[w].as_nanos() as f64 / calls[w].max(1) as f64;
    (ns(0), ns(1))
}

// ---- purge and open (largest fixture) ----------------------------------------------------------

/// Purge of a store where half the cookies are expired. Seconds per run and a fresh copy of
/// the fixture each time, so it is timed by hand (outside criterion, whose minimum of 10
/// samples would take minutes): ours and raw alternate, `reps` runs each, copy and open
/// untimed, the map not warmed (a purge walks pages a worker rarely reads).
fn purge_half(run: &mut Run, fx: &Fixture) {
    let name = format!("purge_half/{}", label(fx.n));
    if !run.any_selected(&name, &["ours", "raw_heed"]) {
        return;
    }
    let reps = if run.quick || run.test_mode { 1 } else { 2 };
    let dir = fx.scratch("purge");
    let mut times: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for _ in 0..reps {
        copy_store(&fx.ours(), &dir);
        let store = CookieStore::open(
            &dir,
            options(false).clock(Arc::new(ManualClock::new(common::HALF_EXPIRED_NS))),
        )
        .expect("open the copy");
        let t = Instant::now();
        let deleted = store.purge_expired().expect("purge");
        times[0].push(t.elapsed().as_nanos() as f64);
        assert_eq!(deleted, fx.n / 2);
        drop(store);

        copy_store(&fx.raw(), &dir);
        let raw = Raw::open(&dir, false);
        let t = Instant::now();
        let purged = raw.purge(common::HALF_EXPIRED_NS);
        times[1].push(t.elapsed().as_nanos() as f64);
        assert_eq!(purged.deleted, fx.n / 2);
        drop(raw);
    }
    for (f, t) in ["ours", "raw_heed"].iter().zip(&times) {
        let mean = t.iter().sum::<f64>() / t.len() as f64;
        let all: Vec<String> = t.iter().map(|ns| fmt_ns(*ns)).collect();
        println!(
            "{name}/{f}: mean {} (runs: {})",
            fmt_ns(mean),
            all.join(", ")
        );
        run.register(&name, f, 1);
        run.manual.push((name.clone(), f.to_string(), mean));
    }
    let _ = std::fs::remove_dir_all(fx.scratch(""));
}

fn open_benches(c: &mut Criterion, run: &mut Run, fx: &Fixture) {
    let name = format!("open/{}", label(fx.n));
    let fns = ["ours", "ours_readonly", "raw_heed"];
    if !run.any_selected(&name, &fns) {
        return;
    }
    let mut keys = Keys::shuffled(fx.n);
    let mut g = run.group(c, &name, Pace::Slow);
    for f in fns {
        run.register(&name, f, 1);
    }
    // Open (default options: writable, sync on) and answer one lookup; closing is untimed.
    for (f, readonly) in [("ours", false), ("ours_readonly", true)] {
        g.bench_function(f, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let v = keys.next_value();
                    let t = Instant::now();
                    let store =
                        CookieStore::open(fx.ours(), StoreOptions::default().readonly(readonly))
                            .expect("open");
                    let auth = store.get_auth(v).expect("get_auth");
                    total += t.elapsed();
                    assert!(auth.is_some());
                    drop(store);
                }
                total
            })
        });
    }
    g.bench_function("raw_heed", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let v = keys.next_value();
                let t = Instant::now();
                let raw = Raw::open(&fx.raw(), true);
                let found = raw.lookup(v, now_ns());
                total += t.elapsed();
                assert!(found > 0);
                drop(raw);
            }
            total
        })
    });
    g.finish();
}
