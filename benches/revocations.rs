//! Polling the revocation feed when nothing was committed (the common case, every 100 ms in
//! every worker) against the cheapest LMDB read there is: beginning and ending a raw heed
//! read transaction on a store of the same layout.
//!
//! ```text
//! cargo bench --bench revocations
//! cargo bench --bench revocations -- --test      # smoke: each bench once
//! ```

use std::hint::black_box;

use cookiestore::{CookieStore, StoreOptions, Subscriber};
use criterion::{Criterion, criterion_group, criterion_main};

fn store_with_cookies(dir: &std::path::Path) -> CookieStore {
    let store = CookieStore::open(dir, StoreOptions::default().sync(false)).unwrap();
    store
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
    // SAFETY: this environment is opened once in this process and no store handle of it is
    // open (the one that built it was dropped).
    let env = unsafe {
        heed::EnvOpenOptions::new()
            .map_size(1 << 26)
            .open(raw_dir.path())
            .unwrap()
    };

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
}

criterion_group!(benches, poll_idle);
criterion_main!(benches);
