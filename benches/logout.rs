//! Logout everywhere, each beside a raw heed baseline in the same run:
//!
//! - polling the revocation feed when nothing was committed (the common case, every 100 ms in
//!   every worker) vs beginning and ending a raw heed read transaction;
//! - polling with one new entry vs a raw read transaction that gets one key;
//! - `logout_authid` of 1 cookie and of 1,000 cookies in the 1M-cookie fixture store vs raw
//!   heed deleting the same cookies' three entries when their keys are already known (the
//!   work without the authid index and the feed).
//!
//! ```text
//! cargo bench --bench logout
//! cargo bench --bench logout -- --test      # smoke: each bench once
//! COOKIESTORE_BENCH_QUICK=1 cargo bench --bench logout   # the 100k fixture instead of 1M
//! ```

// A failed unwrap here (helpers included) is the test, bench or example failing.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::time::Instant;

use cookiestore::{CookieStore, StoreOptions, Subscriber};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};

#[path = "common/mod.rs"]
mod common;

use common::{Fixture, Raw, copy_store};

fn store_with_cookies(dir: &std::path::Path) -> CookieStore {
    let store = CookieStore::open(dir, StoreOptions::default().sync(false)).unwrap();
    store
        .as_lmdb()
        .unwrap()
        .batch("fill", |b| {
            for _ in 0..1_000 {
                b.create("cbtid", 24, 86_400)?;
            }
            Ok(())
        })
        .unwrap();
    let victim = store.create("cbtid", 24, 86_400).unwrap();
    store.delete(&victim.value).unwrap();
    store
}

fn poll_idle(c: &mut Criterion) {
    let ours_dir = tempfile::tempdir().unwrap();
    let store = store_with_cookies(ours_dir.path());
    let mut subscriber = Subscriber::new(&store).unwrap();

    // The raw baseline gets its own environment (LMDB allows one open per process).
    let raw_dir = tempfile::tempdir().unwrap();
    drop(store_with_cookies(raw_dir.path()));
    let raw = Raw::open(raw_dir.path(), false);
    let env = &raw.env;

    let mut group = c.benchmark_group("revocations_poll_idle");
    group.bench_function("ours_subscriber_poll", |b| {
        b.iter(|| black_box(subscriber.poll().unwrap()))
    });
    group.bench_function("raw_heed_read_txn", |b| {
        b.iter(|| {
            let txn = env.read_txn().unwrap();
            black_box(txn.id());
        })
    });
    group.finish();
    assert_eq!(subscriber.reads(), 1, "an idle poll opened a transaction");

    // One new entry per poll: a logout commits (untimed), then the poll reads it.
    let mut group = c.benchmark_group("revocations_poll_one_new");
    group.bench_function("ours_subscriber_poll", |b| {
        b.iter_custom(|iters| {
            let mut total = std::time::Duration::ZERO;
            for _ in 0..iters {
                let c = store.create("cbtid", 24, 86_400).unwrap();
                store.delete(&c.value).unwrap();
                let t = Instant::now();
                let found = subscriber.poll().unwrap();
                total += t.elapsed();
                assert_eq!(found.entries.len(), 1);
            }
            total
        })
    });
    group.bench_function("raw_heed_read_txn_get", |b| {
        let key = [0u8, 0, 0, 1];
        b.iter(|| {
            let txn = env.read_txn().unwrap();
            black_box(raw.db.get(&txn, &key).unwrap().map(<[u8]>::len));
        })
    });
    group.finish();
}

/// `logout_authid` in the fixture store: one cookie (a fixture authid is unique), and 1,000
/// cookies of one user added for it (untimed), against raw heed deleting the same cookies
/// by known keys.
fn logout_authid(c: &mut Criterion) {
    let quick = std::env::var("COOKIESTORE_BENCH_QUICK").is_ok_and(|v| v == "1");
    let fx = Fixture::ensure(if quick { 100_000 } else { 1_000_000 });
    let ours_dir = fx.scratch("logout-ours");
    let raw_dir = fx.scratch("logout-raw");
    copy_store(&fx.ours(), &ours_dir);
    copy_store(&fx.raw(), &raw_dir);
    let store = CookieStore::open(&ours_dir, common::options(false)).unwrap();
    common::warm_store(&store);
    let raw = Raw::open(&raw_dir, false);
    raw.warm();
    let label = common::label(fx.n);

    let mut g = c.benchmark_group(format!("logout_authid_1/{label}"));
    let mut i = fx.n / 3;
    g.bench_function("ours", |b| {
        b.iter_batched(
            || {
                i = (i + 7_919) % fx.n;
                i
            },
            |i| {
                let n = store.logout_authid(&common::auth(i).authid).unwrap();
                assert_eq!(n, 1);
                store.put(&common::cookie(i)).unwrap();
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("raw_heed", |b| {
        b.iter_batched(
            || {
                i = (i + 7_919) % fx.n;
                common::cookie(i)
            },
            |c| {
                let mut txn = raw.env.write_txn().unwrap();
                raw.delete_known(
                    &mut txn,
                    c.value.as_bytes(),
                    c.oid.as_bytes(),
                    c.expires_at(),
                );
                txn.commit().unwrap();
                let mut txn = raw.env.write_txn().unwrap();
                raw.put_cookie(&mut txn, &c);
                txn.commit().unwrap();
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();

    // 1,000 cookies of one user: made (untimed) before each logout.
    let bulk: Vec<cookiestore::Cookie> = (0..1_000u64)
        .map(|k| {
            let mut c = common::cookie(fx.n + k);
            c.authid = Some("bulk-user".into());
            c
        })
        .collect();
    let mut g = c.benchmark_group(format!("logout_authid_1000/{label}"));
    g.sample_size(20);
    g.bench_function("ours", |b| {
        b.iter_custom(|iters| {
            let mut total = std::time::Duration::ZERO;
            for _ in 0..iters {
                store
                    .as_lmdb()
                    .unwrap()
                    .batch("bench setup", |b| bulk.iter().try_for_each(|c| b.put(c)))
                    .unwrap();
                let t = Instant::now();
                assert_eq!(store.logout_authid("bulk-user").unwrap(), 1_000);
                total += t.elapsed();
            }
            total
        })
    });
    g.bench_function("raw_heed", |b| {
        b.iter_custom(|iters| {
            let mut total = std::time::Duration::ZERO;
            for _ in 0..iters {
                let mut txn = raw.env.write_txn().unwrap();
                for c in &bulk {
                    raw.put_cookie(&mut txn, c);
                }
                txn.commit().unwrap();
                let t = Instant::now();
                let mut txn = raw.env.write_txn().unwrap();
                for c in &bulk {
                    raw.delete_known(
                        &mut txn,
                        c.value.as_bytes(),
                        c.oid.as_bytes(),
                        c.expires_at(),
                    );
                }
                txn.commit().unwrap();
                total += t.elapsed();
            }
            total
        })
    });
    g.finish();
    drop(store);
    let _ = std::fs::remove_dir_all(&ours_dir);
    let _ = std::fs::remove_dir_all(&raw_dir);
}

criterion_group!(benches, poll_idle, logout_authid);
criterion_main!(benches);
