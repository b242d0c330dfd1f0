//! A tight lookup loop for profilers (perf, valgrind --tool=callgrind).
//!
//! ```text
//! cargo build --release --example profile_lookup
//! perf record -e cpu-clock -g target/release/examples/profile_lookup ours 100000 2000000
//! valgrind --tool=callgrind target/release/examples/profile_lookup ours 100000 200000
//! ```
//!
//! MODE is one of `ours` (`get_auth`), `ours_borrowed` (`with_auth`), `ours_lookup` (`lookup`), `track` (the tracker with a
//! known cookie), `raw_two_get` (read txn and both gets, nothing decoded), `raw` (the raw heed baseline: two gets, verified record, auth fields
//! borrowed), `raw_noverify`, `raw_owned` (raw plus the owned `Auth` that `get_auth`
//! returns); write modes on a scratch copy: `w_create_ours`, `w_create_raw`,
//! `w_set_auth_ours`, `w_set_auth_raw`, `w_logout_ours`, `w_logout_raw`, `w_purge_ours`,
//! `w_purge_raw` (ITERATIONS, when not 0, is the raw purge's batch size). Uses (and if needed
//! builds) the bench fixture of COOKIES cookies. Prints the mean time per lookup of the
//! measured loop (after a warm-up pass over every cookie).

// A failed unwrap here (helpers included) is the test, bench or example failing.
#![allow(clippy::unwrap_used)]

#[path = "../benches/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::time::Instant;

use common::{Fixture, Keys, Raw, now_ns, options};
use cookiestore::{CookieStore, Tracker, TrackerConfig};

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

    // Write modes (`w_*`) work on a scratch copy of the fixture, sync off.
    let is_raw = mode.starts_with("raw") || mode.ends_with("_raw");
    let is_write = mode.starts_with("w_");
    let (ours_dir, raw_dir) = if is_write {
        let (o, r) = (fx.scratch("profile-ours"), fx.scratch("profile-raw"));
        if is_raw {
            common::copy_store(&fx.raw(), &r);
        } else {
            common::copy_store(&fx.ours(), &o);
        }
        (o, r)
    } else {
        (fx.ours(), fx.raw())
    };
    let (store, raw) = if is_raw {
        (None, Some(Raw::open(&raw_dir, false)))
    } else {
        (
            Some(CookieStore::open(&ours_dir, options(false)).expect("open")),
            None,
        )
    };
    let mut auth = common::auth(0);
    let context = common::context(0, common::BASE_NS);
    let mut counter = 0u64;
    let t = Instant::now();
    match (&store, &raw) {
        (Some(s), _) => {
            common::warm_store(s);
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
            "ours_borrowed" => store
                .as_ref()
                .unwrap()
                .with_auth(v, |a| {
                    a.authid().len()
                        + a.authrole().map_or(0, str::len)
                        + a.authmethod().map_or(0, str::len)
                        + a.authrealm().map_or(0, str::len)
                })
                .unwrap()
                .unwrap_or(0),
            "raw" => raw.as_ref().unwrap().lookup(v, now),
            "raw_two_get" => raw.as_ref().unwrap().lookup_two_get(v),
            "raw_noverify" => raw.as_ref().unwrap().lookup_noverify(v, now),
            "raw_owned" => black_box(raw.as_ref().unwrap().lookup_owned(v, now)).is_some() as usize,
            "w_create_ours" => {
                black_box(store.as_ref().unwrap().create("cbtid", 24, 86_400).unwrap());
                1
            }
            "w_create_raw" => {
                let r = raw.as_ref().unwrap();
                let mut txn = r.env.write_txn().unwrap();
                black_box(r.create(&mut txn, now, 86_400));
                txn.commit().unwrap();
                1
            }
            "w_set_auth_ours" | "w_set_auth_raw" => {
                counter += 1;
                auth.authextra["n"] = counter.into();
                if let Some(s) = store.as_ref() {
                    s.set_auth(v, &auth, &context).unwrap();
                } else {
                    let r = raw.as_ref().unwrap();
                    let mut txn = r.env.write_txn().unwrap();
                    r.set_auth(&mut txn, v, &auth, &context, now);
                    txn.commit().unwrap();
                }
                1
            }
            "w_logout_ours" => store.as_ref().unwrap().delete(v).unwrap() as usize,
            "w_logout_raw" => {
                let r = raw.as_ref().unwrap();
                let mut txn = r.env.write_txn().unwrap();
                let done = r.logout(&mut txn, v);
                txn.commit().unwrap();
                done as usize
            }
            other => panic!("unknown mode {other:?}"),
        }
    };
    let mut found = 0;
    if mode == "w_purge_ours" || mode == "w_purge_raw" {
        // Purge half the store once (the even cookies are expired at HALF_EXPIRED_NS).
        let t = Instant::now();
        let deleted = match (&store, &raw) {
            (Some(_), _) => {
                drop(store);
                let s = CookieStore::open(
                    &ours_dir,
                    options(false).clock(std::sync::Arc::new(cookiestore::ManualClock::new(
                        common::HALF_EXPIRED_NS,
                    ))),
                )
                .expect("open");
                s.purge_expired().expect("purge")
            }
            // ITERATIONS, when not 0, is the raw purge's batch size.
            (_, Some(r)) if iters > 0 => {
                r.purge_in_batches(common::HALF_EXPIRED_NS, iters as usize)
                    .deleted
            }
            (_, Some(r)) => r.purge(common::HALF_EXPIRED_NS).deleted,
            _ => unreachable!(),
        };
        println!(
            "{mode} {n} cookies: purged {deleted} in {:.3} s",
            t.elapsed().as_secs_f64()
        );
        return;
    }
    let warm_ops = if is_write { 0 } else { n.min(iters) };
    for _ in 0..warm_ops {
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
