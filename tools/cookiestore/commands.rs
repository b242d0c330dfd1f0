//! The subcommands.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cookiestore::check::{CheckReport, Problem, check, repair};
use cookiestore::migrate::{self, ExportOptions, ImportOptions};
use cookiestore::timefmt::{self, format_rfc3339_ns};
use cookiestore::{Clock, Cookie, CookieStore, Error, ManualClock, StoreOptions};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::format::{DumpCookie, printable, relative, short_time, shorten, size, table};
use crate::readers::reader_slots;
use crate::{
    CheckArgs, Cli, Command, CopyArgs, DeleteArgs, DumpArgs, DumpFormat, ExportArgs, Failure,
    GetArgs, ImportArgs, PurgeArgs, RepairArgs, RestoreArgs, StatsArgs,
};

type Outcome = Result<(), Failure>;

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Outcome {
    let now = match &cli.now {
        Some(text) => Some(
            timefmt::parse_rfc3339_ns(text).map_err(|e| Failure::Error(format!("--now: {e}")))?,
        ),
        None => None,
    };
    let maxsize = parse_size(&cli.maxsize).ok_or_else(|| {
        Failure::Error(format!(
            "--maxsize {:?}: expected a number of bytes, optionally with a KiB, MiB or GiB \
                 suffix (128KiB to 128GiB)",
            cli.maxsize
        ))
    })?;
    let ctx = Ctx { now, maxsize };
    match cli.command {
        Command::Dump(a) => dump(&ctx, a),
        Command::Stats(a) => stats(&ctx, a),
        Command::Get(a) => get(&ctx, a),
        Command::Delete(a) => delete(&ctx, a),
        Command::Purge(a) => purge(&ctx, a),
        Command::Check(a) => check_cmd(&ctx, a),
        Command::Repair(a) => repair_cmd(&ctx, a),
        Command::Import(a) => import(&ctx, a),
        Command::Export(a) => export(&ctx, a),
        Command::Restore(a) => restore(&ctx, a),
        Command::Copy(a) => copy(&ctx, a),
    }
}

struct Ctx {
    /// `--now`, in ns.
    now: Option<u64>,
    /// `--maxsize`, in bytes.
    maxsize: u64,
}

/// `1073741824`, `1GiB`, `512MiB`, `64 KiB` (also `G`, `M`, `K`, `GB`...: binary units).
fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => return None,
    };
    number.checked_mul(1 << shift)
}

impl Ctx {
    fn options(&self, readonly: bool) -> StoreOptions {
        let mut options = StoreOptions {
            readonly,
            maxsize: self.maxsize,
            ..StoreOptions::default()
        };
        if let Some(now) = self.now {
            options.clock = Arc::new(ManualClock::new(now)) as Arc<dyn Clock>;
        }
        options
    }

    /// Opens read-only: one reader slot, nothing written, works in a read-only directory.
    fn open_read(&self, path: &Path) -> Result<CookieStore, Failure> {
        Ok(CookieStore::open(path, self.options(true))?)
    }

    /// Opens an existing store for writing (never creates one: a typo must not make a store).
    fn open_existing(&self, path: &Path) -> Result<CookieStore, Failure> {
        // The read-only open gives the precise error for a missing path, a file that is not
        // a store, LMDB format 3...
        drop(self.open_read(path)?);
        self.open_write(path)
    }

    /// Opens for writing, creating the store if missing.
    fn open_write(&self, path: &Path) -> Result<CookieStore, Failure> {
        Ok(CookieStore::open(path, self.options(false))?)
    }
}

fn stdout() -> BufWriter<io::StdoutLock<'static>> {
    BufWriter::with_capacity(1 << 16, io::stdout().lock())
}

fn warn(message: &str) {
    let _ = writeln!(io::stderr(), "cookiestore: {}", crate::one_line(message));
}

/// A progress bar on stderr when it is a terminal; hidden otherwise.
fn progress(len: Option<u64>, template: &str) -> ProgressBar {
    if !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = match len {
        Some(len) => ProgressBar::new(len),
        None => ProgressBar::new_spinner(),
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

fn json_line(out: &mut dyn Write, value: &impl serde::Serialize) -> io::Result<()> {
    serde_json::to_writer(&mut *out, value).map_err(io::Error::from)?;
    out.write_all(b"\n")
}

/// `1 record`, `2 records`.
fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 1.0 {
        format!("{:.1} ms", s * 1e3)
    } else {
        format!("{s:.2} s")
    }
}

// ---- dump ---------------------------------------------------------------------------------

fn dump(ctx: &Ctx, a: DumpArgs) -> Outcome {
    let store = ctx.open_read(&a.path)?;
    let mut out = stdout();
    let mut corrupt = 0u64;
    let mut rows: Vec<Vec<String>> = Vec::new();
    let result = store.snapshot(|s| {
        let now = s.now_ns();
        let mut n = 0u64;
        for item in s.records()? {
            if a.limit.is_some_and(|limit| n >= limit) {
                break;
            }
            let c = match item {
                Ok(c) => c,
                Err(e @ Error::CorruptRecord { .. }) => {
                    warn(&e.to_string());
                    corrupt += 1;
                    continue;
                }
                Err(e) => return Err(e),
            };
            if (!a.include_expired && c.is_expired(now))
                || (a.authenticated && c.authid.is_none())
                || a.authid
                    .as_ref()
                    .is_some_and(|x| c.authid.as_ref() != Some(x))
                || a.realm
                    .as_ref()
                    .is_some_and(|x| c.authrealm.as_ref() != Some(x))
            {
                continue;
            }
            n += 1;
            match a.format {
                DumpFormat::Json => json_line(&mut out, &DumpCookie::new(&c))?,
                DumpFormat::Table => rows.push(table_row(&c, now)),
            }
        }
        Ok(())
    });
    result?;
    if a.format == DumpFormat::Table {
        let header = ["VALUE", "AUTHID", "AUTHROLE", "REALM", "CREATED", "EXPIRES"];
        out.write_all(table(&header, &rows).as_bytes())?;
    }
    out.flush()?;
    if corrupt > 0 {
        return Err(Failure::Reported);
    }
    Ok(())
}

fn table_row(c: &Cookie, now: u64) -> Vec<String> {
    let opt = |v: &Option<String>, max| {
        v.as_deref()
            .map_or_else(|| "-".to_string(), |s| shorten(&printable(s), max))
    };
    vec![
        shorten(&printable(&c.value), 12),
        opt(&c.authid, 24),
        opt(&c.authrole, 16),
        opt(&c.authrealm, 16),
        short_time(c.created),
        relative(c.expires_at(), now),
    ]
}

// ---- stats --------------------------------------------------------------------------------

fn stats(ctx: &Ctx, a: StatsArgs) -> Outcome {
    // Read lock.mdb before the store is open in this process: closing a descriptor of the
    // lock file would drop the process's own POSIX locks on it.
    let readers = reader_slots(&a.path);
    let store = ctx.open_read(&a.path)?;
    let s = store.stats()?;
    let now = store.now_ns();
    let mut out = stdout();
    if a.json {
        let tables: Vec<_> = s
            .tables
            .iter()
            .map(|t| json!({"slot": t.slot, "oid": t.oid, "name": t.name}))
            .collect();
        json_line(
            &mut out,
            &json!({
                "path": store.path(),
                "now": format_rfc3339_ns(now),
                "txn_id": s.txn_id,
                "cookies": {
                    "records": s.records,
                    "live": s.live,
                    "expired": s.expired,
                    "authenticated": s.authenticated,
                    "undecodable": s.corrupt,
                },
                "oldest_created": s.oldest_created.map(format_rfc3339_ns),
                "newest_created": s.newest_created.map(format_rfc3339_ns),
                "next_expiry": s.next_expiry.map(format_rfc3339_ns),
                "value_index_entries": s.value_index_entries,
                "expiry_index_entries": s.expiry_index_entries,
                "foreign_writes": s.foreign_writes,
                "map": {"size": s.map_size, "used": s.map_used},
                "pages": {
                    "page_size": s.page_size,
                    "depth": s.depth,
                    "branch": s.branch_pages,
                    "leaf": s.leaf_pages,
                    "overflow": s.overflow_pages,
                    "entries": s.entries,
                },
                "readers": {
                    "max": s.readers_max,
                    "used": s.readers_used,
                    "reading": readers.map(|r| r.reading),
                    "idle": readers.map(|r| r.idle),
                    "stale": readers.map(|r| r.stale),
                },
                "tables": tables,
            }),
        )?;
        out.flush()?;
        return Ok(());
    }
    let when = |t: Option<u64>| t.map_or_else(|| "-".to_string(), format_rfc3339_ns);
    let mut text = String::new();
    let mut line = |k: &str, v: String| {
        text.push_str(format!("{k:<16}{v}").trim_end());
        text.push('\n');
    };
    line(
        "store",
        format!("{} (snapshot txn {})", store.path().display(), s.txn_id),
    );
    line("now", format_rfc3339_ns(now));
    line(
        "cookies",
        format!(
            "{} live, {} expired not yet purged, {} authenticated",
            s.live, s.expired, s.authenticated
        ),
    );
    if s.corrupt > 0 {
        line(
            "undecodable",
            format!("{} records (run `cookiestore check`)", s.corrupt),
        );
    }
    line("oldest", when(s.oldest_created));
    line("newest", when(s.newest_created));
    line(
        "next expiry",
        match s.next_expiry {
            Some(t) => format!("{} ({})", format_rfc3339_ns(t), relative(t, now)),
            None => "-".into(),
        },
    );
    line(
        "map",
        format!(
            "{} used of {} ({:.1}%)",
            size(s.map_used),
            size(s.map_size),
            s.map_used as f64 * 100.0 / s.map_size.max(1) as f64
        ),
    );
    line(
        "pages",
        format!(
            "{} bytes each; depth {}, {} branch, {} leaf, {} overflow; {} entries",
            s.page_size, s.depth, s.branch_pages, s.leaf_pages, s.overflow_pages, s.entries
        ),
    );
    line(
        "indexes",
        format!(
            "{} by value, {} by expiry{}",
            s.value_index_entries,
            s.expiry_index_entries,
            if s.foreign_writes {
                " (another program wrote since cookiestore: the expiry index is reconciled at \
                 the next writable open)"
            } else {
                ""
            }
        ),
    );
    line(
        "reader slots",
        match readers {
            Some(r) => format!(
                "{} of {} used: {} reading, {} idle, {} stale (this command holds one)",
                s.readers_used, s.readers_max, r.reading, r.idle, r.stale
            ),
            None => format!("{} of {} used", s.readers_used, s.readers_max),
        },
    );
    line("tables", String::new());
    let rows: Vec<Vec<String>> = s
        .tables
        .iter()
        .map(|t| vec![t.slot.to_string(), t.oid.clone(), t.name.clone()])
        .collect();
    for l in table(&["SLOT", "OID", "NAME"], &rows).lines() {
        text.push_str(&format!("  {l}\n"));
    }
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

// ---- get / delete ---------------------------------------------------------------------------

fn get(ctx: &Ctx, a: GetArgs) -> Outcome {
    let store = ctx.open_read(&a.path)?;
    let Some(c) = store.get(&a.value)? else {
        return Err(Failure::Found(Some(format!(
            "no live cookie with value {:?}",
            a.value
        ))));
    };
    let mut out = stdout();
    if a.json {
        json_line(&mut out, &DumpCookie::new(&c))?;
    } else {
        let now = store.now_ns();
        let d = DumpCookie::new(&c);
        let text_of = |v: Option<String>| v.map_or_else(|| "-".to_string(), |s| printable(&s));
        let owned = |v: Option<&str>| v.map(str::to_string);
        let fields: [(&str, String); 17] = [
            ("oid", d.oid.to_string()),
            ("created", text_of(d.created.clone())),
            ("max_age", format!("{} s", d.max_age)),
            ("name", text_of(owned(d.name))),
            ("value", printable(d.value)),
            ("authenticated", text_of(d.authenticated.clone())),
            (
                "authenticated_on_node",
                text_of(d.authenticated_on_node.map(|u| u.to_string())),
            ),
            (
                "authenticated_on_worker",
                text_of(owned(d.authenticated_on_worker)),
            ),
            (
                "authenticated_transport_info",
                d.authenticated_transport_info.to_string(),
            ),
            (
                "authenticated_session",
                text_of(d.authenticated_session.map(|n| n.to_string())),
            ),
            (
                "authenticated_joined_at",
                text_of(d.authenticated_joined_at.clone()),
            ),
            (
                "authenticated_authmethod",
                text_of(owned(d.authenticated_authmethod)),
            ),
            ("authid", text_of(owned(d.authid))),
            ("authrole", text_of(owned(d.authrole))),
            ("authmethod", text_of(owned(d.authmethod))),
            ("authrealm", text_of(owned(d.authrealm))),
            ("authextra", d.authextra.to_string()),
        ];
        let mut text = String::new();
        for (k, v) in fields {
            text.push_str(&format!("{k:<30}{v}\n"));
        }
        text.push_str(&format!(
            "{:<30}{} ({})\n",
            "expires",
            format_rfc3339_ns(c.expires_at()),
            relative(c.expires_at(), now)
        ));
        out.write_all(text.as_bytes())?;
    }
    out.flush()?;
    Ok(())
}

fn delete(ctx: &Ctx, a: DeleteArgs) -> Outcome {
    let store = ctx.open_existing(&a.path)?;
    if store.delete(&a.value)? {
        let mut out = stdout();
        writeln!(out, "deleted the cookie with value {:?}", a.value)?;
        out.flush()?;
        Ok(())
    } else {
        Err(Failure::Found(Some(format!(
            "no cookie with value {:?}",
            a.value
        ))))
    }
}

// ---- purge ----------------------------------------------------------------------------------

fn purge(ctx: &Ctx, a: PurgeArgs) -> Outcome {
    let started = Instant::now();
    let (n, at, store_path) = if a.dry_run {
        let store = ctx.open_read(&a.path)?;
        let stats = store.stats()?;
        (stats.expired, store.now_ns(), store.path().to_path_buf())
    } else {
        if let Some(now) = ctx.now
            && now > timefmt::now_ns()
            && !a.force
        {
            return Err(Failure::Error(format!(
                "--now {} is later than the system clock: purging would delete cookies that are \
                 still valid; use --dry-run to count them, or add --force",
                format_rfc3339_ns(now)
            )));
        }
        let store = ctx.open_existing(&a.path)?;
        let n = store.purge_expired()?;
        (n, store.now_ns(), store.path().to_path_buf())
    };
    let took = started.elapsed();
    let mut out = stdout();
    if a.json {
        json_line(
            &mut out,
            &json!({
                "path": store_path,
                "dry_run": a.dry_run,
                "expired_at": format_rfc3339_ns(at),
                "purged": if a.dry_run { 0 } else { n },
                "would_purge": if a.dry_run { n } else { 0 },
                "seconds": took.as_secs_f64(),
            }),
        )?;
    } else if a.dry_run {
        writeln!(
            out,
            "{n} expired cookies would be purged (expiry at {}); nothing was deleted ({})",
            format_rfc3339_ns(at),
            secs(took)
        )?;
    } else {
        writeln!(out, "purged {n} expired cookies in {}", secs(took))?;
    }
    out.flush()?;
    Ok(())
}

// ---- check / repair -------------------------------------------------------------------------

fn check_store(store: &CookieStore) -> Result<CheckReport, Failure> {
    check(store).map_err(|e| match e {
        Error::CorruptMetadata { problem } => Failure::Error(format!(
            "the table metadata (slot 0) is damaged, so the tables cannot be located: {problem}; \
             repair does not rebuild metadata: restore from a copy or an export"
        )),
        other => other.into(),
    })
}

fn report_text(report: &CheckReport, text: &mut String) {
    text.push_str(&format!(
        "snapshot txn {}: {} records, {} value index entries, {} expiry index entries\n",
        report.txn_id, report.records, report.value_index_entries, report.expiry_index_entries
    ));
    for note in &report.notes {
        text.push_str(&format!("note: {note}\n"));
    }
    if !report.deferred.is_empty() {
        text.push_str(&format!(
            "note: {} expiry index differences, not damage (another program wrote):\n",
            report.deferred.len()
        ));
        for p in report.deferred.iter().take(20) {
            text.push_str(&format!("  {p}\n"));
        }
        if report.deferred.len() > 20 {
            text.push_str(&format!("  ... and {} more\n", report.deferred.len() - 20));
        }
    }
    if report.problems.is_empty() {
        text.push_str("no problems found\n");
    } else {
        text.push_str(&format!(
            "{} found:\n",
            plural(report.problems.len(), "problem")
        ));
        for p in &report.problems {
            text.push_str(&format!("  {}: {p}\n", p.kind()));
        }
    }
}

fn check_cmd(ctx: &Ctx, a: CheckArgs) -> Outcome {
    let store = ctx.open_read(&a.path)?;
    let report = check_store(&store)?;
    let mut out = stdout();
    if a.json {
        json_line(&mut out, &report)?;
    } else {
        let mut text = format!("checked {}\n", store.path().display());
        report_text(&report, &mut text);
        out.write_all(text.as_bytes())?;
    }
    out.flush()?;
    if report.is_clean() {
        Ok(())
    } else {
        Err(Failure::Found(None))
    }
}

fn repair_cmd(ctx: &Ctx, a: RepairArgs) -> Outcome {
    let store = ctx.open_existing(&a.path)?;
    let quarantine = store.path().join("quarantine.jsonl");
    let before = check_store(&store)?;
    let done = repair(&store, &quarantine)?;
    let after = check_store(&store)?;
    let mut out = stdout();
    if a.json {
        json_line(
            &mut out,
            &json!({
                "path": store.path(),
                "quarantine": quarantine,
                "before": before,
                "repair": done,
                "after": after,
            }),
        )?;
    } else {
        let mut text = format!("repairing {}\nbefore: ", store.path().display());
        report_text(&before, &mut text);
        if done.quarantined.is_empty() {
            text.push_str("quarantined no record\n");
        } else {
            text.push_str(&format!(
                "quarantined {} into {}:\n",
                plural(done.quarantined.len(), "record"),
                quarantine.display()
            ));
            for q in &done.quarantined {
                let oid = q
                    .oid
                    .map_or_else(|| "(malformed key)".into(), |o| o.to_string());
                text.push_str(&format!("  {oid}: {}\n", q.reason));
            }
        }
        for oid in &done.oid_fixed {
            text.push_str(&format!("rewrote record {oid} with the oid of its key\n"));
        }
        text.push_str(&format!(
            "rebuilt the value index ({} -> {} entries) and the expiry index ({} -> {} \
             entries); {} records\nafter: ",
            done.value_index_entries.0,
            done.value_index_entries.1,
            done.expiry_index_entries.0,
            done.expiry_index_entries.1,
            done.records
        ));
        report_text(&after, &mut text);
        out.write_all(text.as_bytes())?;
    }
    out.flush()?;
    if after.is_clean() {
        Ok(())
    } else {
        let left: Vec<&Problem> = after.problems.iter().collect();
        Err(Failure::Found(Some(format!(
            "{} {} after repair (listed above)",
            plural(left.len(), "problem"),
            if left.len() == 1 { "remains" } else { "remain" }
        ))))
    }
}

// ---- import ---------------------------------------------------------------------------------

fn import(ctx: &Ctx, a: ImportArgs) -> Outcome {
    let started = Instant::now();
    let len = fs::metadata(&a.file)
        .map_err(|e| {
            Failure::Error(format!(
                "{}: cannot read the cookies file: {e}",
                a.file.display()
            ))
        })?
        .len();
    // Read the whole file before touching (or creating) the store.
    let bar = progress(
        Some(len),
        "reading {bar:30} {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
    );
    let source = migrate::read_legacy(&a.file, &mut |n| bar.set_position(n))?;
    bar.finish_and_clear();
    // Work out the changes on a read-only handle first: an import that changes nothing
    // writes nothing (not even a transaction), and --dry-run stops there.
    let plan_options = ImportOptions {
        name: a.name.clone(),
        dry_run: true,
    };
    let plan = if a.dry_run || a.path.join("data.mdb").exists() {
        let store = ctx.open_read(&a.path)?;
        let now = store.now_ns();
        let plan = migrate::import_legacy(&store, &source, now, &plan_options, &mut |_| {})?;
        Some((plan, now, store.path().to_path_buf()))
    } else {
        None
    };
    let (summary, now, store_path) = match plan {
        Some((plan, now, path))
            if a.dry_run || plan.imported + plan.updated + plan.removed_from_store == 0 =>
        {
            (plan, now, path)
        }
        _ => {
            let store = ctx.open_write(&a.path)?;
            let now = store.now_ns();
            let bar = progress(
                Some(source.replay.cookies.len() as u64),
                "importing {bar:30} {pos}/{len} cookies ({per_sec}, {eta})",
            );
            let options = ImportOptions {
                name: a.name,
                dry_run: false,
            };
            let summary = migrate::import_legacy(&store, &source, now, &options, &mut |n| {
                bar.set_position(n)
            })?;
            bar.finish_and_clear();
            (summary, now, store.path().to_path_buf())
        }
    };
    let took = started.elapsed();
    let file = a.file.display();
    for (line, problem) in &summary.bad_lines {
        warn(&format!("{file} line {line}: {problem}; skipped"));
    }
    for (value, problem) in &summary.rejected {
        warn(&format!("cookie {value:?} rejected: {problem}; skipped"));
    }
    let mut out = stdout();
    if a.json {
        let mut v = serde_json::to_value(&summary).map_err(io::Error::from)?;
        v["seconds"] = json!(took.as_secs_f64());
        v["expired_at"] = json!(format_rfc3339_ns(now));
        v["dry_run"] = json!(a.dry_run);
        json_line(&mut out, &v)?;
    } else {
        let text = format!(
            "{}imported {file} into {} in {} ({} lines)\n\
             {:<11}{:>8}  new cookies\n\
             {:<11}{:>8}  existing cookies whose fields changed\n\
             {:<11}{:>8}  existing cookies already identical\n\
             {:<11}{:>8}  logged out in the file ({} of them removed from the store)\n\
             {:<11}{:>8}  dropped (expired at {})\n\
             {:<11}{:>8}  skipped{}\n",
            if a.dry_run {
                "dry run, nothing written: would have "
            } else {
                ""
            },
            store_path.display(),
            secs(took),
            summary.lines,
            "imported",
            summary.imported,
            "updated",
            summary.updated,
            "unchanged",
            summary.unchanged,
            "deleted",
            summary.deleted,
            summary.removed_from_store,
            "expired",
            summary.expired,
            format_rfc3339_ns(now),
            "bad lines",
            summary.bad_lines.len(),
            if summary.rejected.is_empty() {
                String::new()
            } else {
                format!(
                    " (and {} cookies rejected by the store)",
                    summary.rejected.len()
                )
            },
        );
        out.write_all(text.as_bytes())?;
    }
    out.flush()?;
    if summary.bad_lines.is_empty() && summary.rejected.is_empty() {
        Ok(())
    } else {
        Err(Failure::Found(None))
    }
}

// ---- export / restore -----------------------------------------------------------------------

fn export(ctx: &Ctx, a: ExportArgs) -> Outcome {
    let started = Instant::now();
    let store = ctx.open_read(&a.path)?;
    let options = ExportOptions {
        live_only: a.live_only,
        skip_corrupt: a.skip_corrupt,
    };
    let bar = progress(None, "{spinner} exporting: {pos} cookies ({per_sec})");
    let mut tick = |n| bar.set_position(n);
    let hint = |e: Error| -> Failure {
        match e {
            e @ Error::CorruptRecord { .. } => {
                Failure::Error(format!("{e}; or export the rest with --skip-corrupt"))
            }
            other => other.into(),
        }
    };
    let summary = match &a.output {
        None => {
            let mut out = stdout();
            migrate::export(&store, &mut out, options, &mut tick).map_err(hint)?
        }
        Some(path) => {
            let tmp = tmp_path(path);
            let result = (|| -> Result<migrate::ExportSummary, Failure> {
                let file = File::create(&tmp).map_err(|e| {
                    Failure::Error(format!("{}: cannot create: {e}", tmp.display()))
                })?;
                let mut w = BufWriter::with_capacity(1 << 16, file);
                let summary = migrate::export(&store, &mut w, options, &mut tick).map_err(hint)?;
                let file = w
                    .into_inner()
                    .map_err(|e| io::Error::from(e.error().kind()))?;
                file.sync_all()?;
                fs::rename(&tmp, path).map_err(|e| {
                    Failure::Error(format!("{}: cannot rename into place: {e}", path.display()))
                })?;
                Ok(summary)
            })();
            if result.is_err() {
                let _ = fs::remove_file(&tmp);
            }
            result?
        }
    };
    bar.finish_and_clear();
    for (oid, problem) in &summary.corrupt {
        warn(&format!(
            "record {oid} cannot be decoded ({problem}); skipped"
        ));
    }
    if let Some(path) = &a.output {
        let mut out = stdout();
        writeln!(
            out,
            "exported {} cookies ({} expired, not yet purged) from snapshot txn {} to {} in {}",
            summary.cookies,
            summary.expired,
            summary.txn_id,
            path.display(),
            secs(started.elapsed())
        )?;
        out.flush()?;
    }
    if summary.corrupt.is_empty() {
        Ok(())
    } else {
        Err(Failure::Found(None))
    }
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

fn restore(ctx: &Ctx, a: RestoreArgs) -> Outcome {
    let started = Instant::now();
    let mut input: Box<dyn BufRead> = if a.file.as_os_str() == "-" {
        Box::new(BufReader::new(io::stdin().lock()))
    } else {
        let file = File::open(&a.file).map_err(|e| {
            Failure::Error(format!("{}: cannot read the export: {e}", a.file.display()))
        })?;
        Box::new(BufReader::with_capacity(1 << 16, file))
    };
    let store = ctx.open_write(&a.path)?;
    let bar = progress(None, "{spinner} restoring: line {pos} ({per_sec})");
    let summary = migrate::restore(&store, &mut input, a.merge, &mut |n| bar.set_position(n))?;
    bar.finish_and_clear();
    let file = a.file.display();
    for (line, problem) in &summary.bad_lines {
        warn(&format!("{file} line {line}: {problem}; skipped"));
    }
    for (line, value, oid) in &summary.conflicts {
        warn(&format!(
            "{file} line {line}: value {value:?} belongs to cookie {oid} in the store; skipped"
        ));
    }
    let mut out = stdout();
    if a.json {
        let mut v = serde_json::to_value(&summary).map_err(io::Error::from)?;
        v["seconds"] = json!(started.elapsed().as_secs_f64());
        json_line(&mut out, &v)?;
    } else {
        writeln!(
            out,
            "restored {file} into {} in {} ({} lines): {} new, {} replaced, {} unchanged, {} \
             conflicts, {} bad lines",
            store.path().display(),
            secs(started.elapsed()),
            summary.lines,
            summary.restored,
            summary.replaced,
            summary.unchanged,
            summary.conflicts.len(),
            summary.bad_lines.len()
        )?;
    }
    out.flush()?;
    if summary.bad_lines.is_empty() && summary.conflicts.is_empty() {
        Ok(())
    } else {
        Err(Failure::Found(None))
    }
}

// ---- copy -----------------------------------------------------------------------------------

fn copy(ctx: &Ctx, a: CopyArgs) -> Outcome {
    let started = Instant::now();
    let store = ctx.open_read(&a.path)?;
    let bar = progress(None, "{spinner} copying {elapsed}");
    store.copy_to(&a.dest, a.compact)?;
    bar.finish_and_clear();
    let copied = fs::metadata(a.dest.join("data.mdb"))
        .map(|m| m.len())
        .unwrap_or(0);
    let original = fs::metadata(store.path().join("data.mdb"))
        .map(|m| m.len())
        .unwrap_or(0);
    let mut out = stdout();
    writeln!(
        out,
        "copied {} ({}) to {} ({}{}) in {}",
        store.path().display(),
        size(original),
        a.dest.display(),
        size(copied),
        if a.compact { ", compacted" } else { "" },
        secs(started.elapsed())
    )?;
    out.flush()?;
    Ok(())
}
