//! Aggregate lookup throughput of 1 and 2 processes at once, ours and raw heed.
//!
//! ```text
//! cargo run --release --example lookup_throughput -- [COOKIES] [SECONDS] [PROCS...]
//! cargo run --release --example lookup_throughput -- 1000000 3 1 2
//! ```
//!
//! Uses (and if needed builds) the bench fixture in `target/bench-stores/`. Each child is
//! this program re-executed with `COOKIESTORE_BENCH_CHILD=throughput`; it opens the store,
//! warms up until a common start instant, then looks up random fixture cookies for the
//! given time. The parent sums the children's rates.

// A failed unwrap here (helpers included) is the test, bench or example failing.
#![allow(clippy::unwrap_used)]

#[path = "../benches/common/mod.rs"]
mod common;

use std::time::Duration;

use common::{Fixture, Kind, label};

fn main() {
    if common::child_main() {
        return;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: u64 = args
        .first()
        .map_or(1_000_000, |a| a.parse().expect("COOKIES"));
    let secs: f64 = args.get(1).map_or(3.0, |a| a.parse().expect("SECONDS"));
    let procs: Vec<usize> = if args.len() > 2 {
        args[2..]
            .iter()
            .map(|a| a.parse().expect("PROCS"))
            .collect()
    } else {
        vec![1, 2]
    };
    let fx = Fixture::ensure(n);
    println!("| store | impl | processes | lookups/s | scaling vs 1 |");
    println!("|---|---|---:|---:|---:|");
    for kind in [Kind::Ours, Kind::Raw] {
        let mut one = None;
        for &p in &procs {
            let t = common::run_throughput(kind, &fx, p, Duration::from_secs_f64(secs));
            if p == 1 {
                one = Some(t.per_sec);
            }
            println!(
                "| {} | {} | {p} | {:.0} | {} |",
                label(n),
                kind.name(),
                t.per_sec,
                one.map_or("—".into(), |o| format!("{:.2}x", t.per_sec / o))
            );
        }
    }
}
