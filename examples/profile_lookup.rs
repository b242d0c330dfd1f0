//! A tight lookup loop for profilers (perf, valgrind --tool=callgrind).
//!
//! ```text
//! cargo build --release --example profile_lookup
//! perf record -e cpu-clock -g target/release/examples/profile_lookup ours 100000 2000000
//! valgrind --tool=callgrind target/release/examples/profile_lookup ours 100000 200000
//! ```
//!
//! MODE is one of `ours` (`get_auth`), `ours_lookup` (`lookup`), `track` (the tracker with a
//! known cookie), `raw` (the raw heed baseline: two gets, verified record, auth fields
//! borrowed), `raw_noverify`, `raw_owned` (raw plus the owned `Auth` that `get_auth`
//! returns). Uses (and if needed builds) the bench fixture of COOKIES cookies. Prints the
//! mean time per lookup of the measured loop (after a warm-up pass over every cookie).

#[path = "../benches/common/fixture.rs"]
mod fixture;

use std::hint::black_box;
use std::time::Instant;

use cookiestore::{CookieStore, Tracker, TrackerConfig};
use fixture::{Fixture, Keys, Raw, now_ns, options};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().map_or("ours", String::as_str).to_string();
    let n: u64 = args.get(1).map_or(100_000, |a| a.parse().expect("COOKIES"));
    let iters: u64 = args
        .get(2)
        .map_or(2_000_000, |a| a.parse().expect("ITERATIONS"));
    let fx = Fixture::ensure(n);
    let mut keys = Keys::shuffled(n);
    let now = now_ns();
    let mut header = Vec::with_capacity(64);

    let (store, raw) = if mode.starts_with("raw") {
        (None, Some(Raw::open(&fx.raw(), false)))
    } else {
        (
            Some(CookieStore::open(fx.ours(), options(false)).expect("open")),
            None,
        )
    };
    let t = Instant::now();
    match (&store, &raw) {
        (Some(s), _) => {
            fixture::warm_store(s);
        }
        (_, Some(r)) => {
            r.warm();
        }
        _ => {}
    }
    eprintln!("warmed the map in {:.2} s", t.elapsed().as_secs_f64());
    let tracker = store
        .as_ref()
        .map(|s| Tracker::new(s.clone(), TrackerConfig::default()).expect("tracker"));
    let mut one = |keys: &mut Keys| -> usize {
        let v = keys.next_value();
        match mode.as_str() {
            "ours" => black_box(store.as_ref().unwrap().get_auth(v).unwrap()).is_some() as usize,
            "ours_lookup" => {
                black_box(store.as_ref().unwrap().lookup(v).unwrap()).is_some() as usize
            }
            "track" => {
                header.clear();
                header.extend_from_slice(b"cbtid=");
                header.extend_from_slice(v.as_bytes());
                let t = tracker.as_ref().unwrap().track(Some(&header)).unwrap();
                black_box(t).auth.is_some() as usize
            }
            "raw" => raw.as_ref().unwrap().lookup(v, now),
            "raw_noverify" => raw.as_ref().unwrap().lookup_noverify(v, now),
            "raw_owned" => black_box(raw.as_ref().unwrap().lookup_owned(v, now)).is_some() as usize,
            other => panic!("unknown mode {other:?}"),
        }
    };
    let mut found = 0;
    for _ in 0..n.min(iters) {
        found += one(&mut keys);
    }
    let t = Instant::now();
    for _ in 0..iters {
        found += one(&mut keys);
    }
    let elapsed = t.elapsed();
    assert!(found > 0);
    println!(
        "{mode} {n} cookies: {iters} lookups, {:.0} ns per lookup",
        elapsed.as_nanos() as f64 / iters as f64
    );
}
