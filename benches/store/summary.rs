//! The store benchmark's summary: criterion's estimates read back from its JSON files, and
//! the Markdown report (`target/bench-summary.md`) with each figure beside its baseline and
//! the targets' verdicts.

use std::fmt::Write as _;
use std::path::PathBuf;

use serde_json::Value;

use super::common::{Kind, label};
use super::{BATCH, POLICIES, Run, common};

pub(super) fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn criterion_home() -> PathBuf {
    std::env::var_os("CRITERION_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| common::target_dir().join("criterion"))
}

fn safe(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '?' | '"' | '/' | '\\' | '*' | '<' | '>' | ':' | '|' | '^' => '_',
            c => c,
        })
        .collect()
}

/// Criterion's mean time per iteration (ns) for a bench measured in this run.
fn mean_ns(run: &Run, group: &str, function: &str) -> Option<f64> {
    let path = criterion_home()
        .join(safe(group))
        .join(safe(function))
        .join("new")
        .join("estimates.json");
    if std::fs::metadata(&path).ok()?.modified().ok()? < run.started {
        return None;
    }
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    v["mean"]["point_estimate"].as_f64()
}

/// Mean time per operation (ns): per iteration divided by the operations in it.
fn per_op(run: &Run, group: &str, function: &str) -> Option<f64> {
    let per_iter = run
        .ids
        .iter()
        .find(|(g, f, _)| g == group && f == function)
        .map_or(1, |(_, _, n)| *n);
    let manual = run
        .manual
        .iter()
        .find(|(g, f, _)| g == group && f == function)
        .map(|(_, _, ns)| *ns);
    manual
        .or_else(|| mean_ns(run, group, function))
        .map(|ns| ns / per_iter as f64)
}

pub(super) fn fmt_ns(ns: f64) -> String {
    if ns >= 1e9 {
        format!("{:.2} s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

fn fmt_rate(per_sec: f64) -> String {
    if per_sec >= 1e6 {
        format!("{:.2} M/s", per_sec / 1e6)
    } else if per_sec >= 1e3 {
        format!("{:.0} k/s", per_sec / 1e3)
    } else {
        format!("{per_sec:.1} /s")
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

pub(super) fn summary(run: &Run) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# cookiestore bench summary\n");
    let _ = writeln!(
        s,
        "Run started {:?} ago; load average at start {}, at end {} (2 cores: above ~0.5 \
         the machine was shared and figures are noisy). Quick mode: {}.\n",
        run.started.elapsed().unwrap_or_default(),
        run.load_start,
        loadavg(),
        run.quick
    );
    let _ = writeln!(
        s,
        "| group | variant | mean per op | ops/s | vs raw_heed |\n|---|---|---:|---:|---:|"
    );
    let mut groups: Vec<&str> = Vec::new();
    for (g, _, _) in &run.ids {
        if !groups.contains(&g.as_str()) {
            groups.push(g);
        }
    }
    for g in &groups {
        let raw = per_op(run, g, "raw_heed");
        for (_, f, _) in run.ids.iter().filter(|(gg, _, _)| gg == g) {
            let Some(ns) = per_op(run, g, f) else {
                continue;
            };
            let ratio = match raw {
                Some(r) if f != "raw_heed" => format!("{:.2}x", ns / r),
                _ => "—".into(),
            };
            let _ = writeln!(
                s,
                "| {g} | {f} | {} | {} | {ratio} |",
                fmt_ns(ns),
                fmt_rate(1e9 / ns)
            );
        }
    }

    if !run.cache_notes.is_empty() {
        let _ = writeln!(s, "\n## The per-process cache\n");
        for note in &run.cache_notes {
            let _ = writeln!(s, "- {note}");
        }
    }
    if !run.interleaved.is_empty() {
        let _ = writeln!(
            s,
            "\n## Interleaved (ours and raw alternating in blocks: 2,000 lookups, 10 writes; \
             robust to load drift)\n\n\
             | group | ours | raw_heed | ratio |\n|---|---:|---:|---:|"
        );
        for (g, o, r) in &run.interleaved {
            let _ = writeln!(
                s,
                "| {g} | {} | {} | {:.2}x |",
                fmt_ns(*o),
                fmt_ns(*r),
                o / r
            );
        }
    }
    if !run.throughput.is_empty() {
        let _ = writeln!(
            s,
            "\n## Multi-process lookups (aggregate, random order)\n\n\
             | store | impl | processes | lookups/s | scaling vs 1 |\n|---|---|---:|---:|---:|"
        );
        for (kind, n, t) in &run.throughput {
            let one = run
                .throughput
                .iter()
                .find(|(k, nn, tt)| k == kind && nn == n && tt.procs == 1)
                .map(|(_, _, tt)| tt.per_sec);
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:.0} | {} |",
                label(*n),
                kind.name(),
                t.procs,
                t.per_sec,
                one.map_or("—".into(), |o| format!("{:.2}x", t.per_sec / o))
            );
        }
    }
    if !run.memory.is_empty() {
        let _ = writeln!(
            s,
            "\n## Memory of a fresh process (/proc/self/smaps_rollup, KiB)\n\n\
             `Anonymous` is the private, non-file-backed memory; the LMDB map is file-backed \
             and shows in Rss/Private_Clean only.\n\n\
             | store | impl | lookups | stage | Anonymous | Rss | Private_Clean | Private_Dirty |\n\
             |---|---|---:|---|---:|---:|---:|---:|"
        );
        for (kind, n, lookups, stages) in &run.memory {
            for (stage, m) in stages {
                let _ = writeln!(
                    s,
                    "| {} | {} | {lookups} | {stage} | {} | {} | {} | {} |",
                    label(*n),
                    kind.name(),
                    m.anonymous_kib,
                    m.rss_kib,
                    m.private_clean_kib,
                    m.private_dirty_kib
                );
            }
        }
    }

    // Durability policies: each ours_<policy> against raw_heed_<policy> (same flags).
    let durability_groups: Vec<&&str> = groups
        .iter()
        .filter(|g| g.starts_with("create_durability/") || g.starts_with("login/"))
        .collect();
    if !durability_groups.is_empty() {
        let _ = writeln!(
            s,
            "\n## Durability policies (ours vs raw heed committing with the same flags)\n\n\
             | group | policy | ours | raw_heed | ratio |\n|---|---|---:|---:|---:|"
        );
        for g in durability_groups {
            for (p, _) in POLICIES {
                let o = per_op(run, g, &format!("ours_{p}"));
                let r = per_op(run, g, &format!("raw_heed_{p}"));
                if let (Some(o), Some(r)) = (o, r) {
                    let _ = writeln!(
                        s,
                        "| {g} | {p} | {} | {} | {:.2}x |",
                        fmt_ns(o),
                        fmt_ns(r),
                        o / r
                    );
                }
            }
        }
    }

    // The performance targets.
    let _ = writeln!(
        s,
        "\n## Targets\n\n| target | measured | verdict |\n|---|---|---|"
    );
    let mut target = |name: String, measured: Option<(String, bool)>| {
        let (m, v) = match measured {
            Some((m, ok)) => (m, verdict(ok)),
            None => ("not measured".into(), "—"),
        };
        let _ = writeln!(s, "| {name} | {m} | {v} |");
    };
    for l in ["100k", "1M"] {
        let g = format!("lookup/{l}");
        let ours = per_op(run, &g, "ours");
        let raw = per_op(run, &g, "raw_heed");
        target(
            format!("lookup {l} within 1.3x of raw heed"),
            ours.zip(raw)
                .map(|(o, r)| (format!("{:.2}x", o / r), o / r <= 1.3)),
        );
        let inter = run.interleaved.iter().find(|(gg, _, _)| *gg == g);
        target(
            format!("lookup {l} within 1.3x of raw heed (interleaved)"),
            inter.map(|(_, o, r)| (format!("{:.2}x", o / r), o / r <= 1.3)),
        );
    }
    for l in ["100k", "1M"] {
        let g = format!("lookup/{l}");
        target(
            format!(
                "borrowed lookup (with_auth, no cache) {l} within 1.15x of raw heed's two gets"
            ),
            per_op(run, &g, "ours_borrowed")
                .zip(per_op(run, &g, "raw_heed_two_get"))
                .map(|(o, r)| (format!("{:.2}x", o / r), o / r <= 1.15)),
        );
        let id = format!("{g}/borrowed_vs_two_get");
        let inter = run.interleaved.iter().find(|(gg, _, _)| *gg == id);
        target(
            format!("borrowed lookup {l} within 1.15x of raw heed's two gets (interleaved)"),
            inter.map(|(_, o, r)| (format!("{:.2}x", o / r), o / r <= 1.15)),
        );
        let g = format!("track/{l}");
        target(
            format!("track of a known cookie {l} within 1.25x of raw heed"),
            per_op(run, &g, "ours")
                .zip(per_op(run, &g, "raw_heed"))
                .map(|(o, r)| (format!("{:.2}x", o / r), o / r <= 1.25)),
        );
        let id = format!("{g}/borrowed_interleaved");
        let inter = run.interleaved.iter().find(|(gg, _, _)| *gg == id);
        target(
            format!("track_with {l} within 1.25x of raw heed (interleaved)"),
            inter.map(|(_, o, r)| (format!("{:.2}x", o / r), o / r <= 1.25)),
        );
        let id = format!("{g}/interleaved");
        let inter = run.interleaved.iter().find(|(gg, _, _)| *gg == id);
        target(
            format!("track {l} within 1.25x of raw heed (interleaved)"),
            inter.map(|(_, o, r)| (format!("{:.2}x", o / r), o / r <= 1.25)),
        );
        let g = format!("create_durability/{l}");
        for (p, _) in POLICIES {
            target(
                format!("create ({p}) {l} within 1.3x of raw heed with the same flags"),
                per_op(run, &g, &format!("ours_{p}"))
                    .zip(per_op(run, &g, &format!("raw_heed_{p}")))
                    .map(|(o, r)| (format!("{:.2}x", o / r), o / r <= 1.3)),
            );
            let id = format!("{g}/{p}_interleaved");
            let inter = run.interleaved.iter().find(|(gg, _, _)| *gg == id);
            target(
                format!(
                    "create ({p}) {l} within 1.3x of raw heed with the same flags (interleaved)"
                ),
                inter.map(|(_, o, r)| (format!("{:.2}x", o / r), o / r <= 1.3)),
            );
        }
    }
    let rate = |g: &str| per_op(run, g, "ours").map(|ns| 1e9 / ns);
    target(
        "lookup 100k ≥ 540k/s (20x Crossbar's database store, 27k/s)".into(),
        rate("lookup/100k").map(|r| (fmt_rate(r), r >= 540_000.0)),
    );
    target(
        "stretch: lookup 100k ≥ 850k/s (Crossbar's file store)".into(),
        rate("lookup/100k").map(|r| (fmt_rate(r), r >= 850_000.0)),
    );
    target(
        "stretch: lookup 1M ≥ 410k/s (Crossbar's file store)".into(),
        rate("lookup/1M").map(|r| (fmt_rate(r), r >= 410_000.0)),
    );
    target(
        "open + first lookup at 1M < 10 ms".into(),
        per_op(run, "open/1M", "ours").map(|ns| (fmt_ns(ns), ns < 10e6)),
    );
    target(
        "purge with nothing expired at 1M < 1 ms".into(),
        per_op(run, "purge_none/1M", "ours").map(|ns| (fmt_ns(ns), ns < 1e6)),
    );
    target(
        "purge of 500,000 expired (1M store) < 2 s".into(),
        per_op(run, "purge_half/1M", "ours").map(|ns| (fmt_ns(ns), ns < 2e9)),
    );
    for l in ["100k", "1M"] {
        let g = format!("create_batch/{l}");
        target(
            format!("create, sync off, {BATCH}/txn, {l}: within 1.5x of raw heed puts"),
            per_op(run, &g, "ours")
                .zip(per_op(run, &g, "raw_heed"))
                .map(|(o, r)| (format!("{:.2}x", o / r), o / r <= 1.5)),
        );
    }
    let ours_rate = |procs| {
        run.throughput
            .iter()
            .filter(|(k, _, t)| *k == Kind::Ours && t.procs == procs)
            .map(|(_, _, t)| t.per_sec)
            .next_back()
    };
    target(
        "2 processes ≥ 1.7x the lookups/s of one".into(),
        ours_rate(1)
            .zip(ours_rate(2))
            .map(|(one, two)| (format!("{:.2}x", two / one), two / one >= 1.7)),
    );
    let mem = run
        .memory
        .iter()
        .find(|(k, _, _, _)| *k == Kind::Ours)
        .and_then(|(_, n, lookups, stages)| {
            let last = stages.last()?.1;
            Some((*n, *lookups, last.anonymous_kib))
        });
    target(
        "private (anonymous) memory after opening 1M and 1M lookups < 30 MiB".into(),
        mem.map(|(n, lookups, kib)| {
            (
                format!(
                    "{:.1} MiB ({} store, {lookups} lookups)",
                    kib as f64 / 1024.0,
                    label(n)
                ),
                kib < 30 * 1024 && n >= 1_000_000,
            )
        }),
    );
    s
}
