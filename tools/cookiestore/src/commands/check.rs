//! `check`: records, both indexes and metadata agree.

use std::io::Write;
use std::path::PathBuf;

use cookiestore::maintenance::{CheckReport, check};
use cookiestore::{CookieStore, Error};

use crate::Failure;
use crate::context::Ctx;
use crate::isolate::{self, Walk};
use crate::output::{Outcome, json_line, plural, stdout};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The store directory (LMDB stores only).
    pub path: PathBuf,
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Time limit of the walk in seconds (0: none); by default 60 s plus 60 s per GiB of
    /// data.mdb. A walk that runs out of time is reported as a damaged data.mdb.
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u64>,
}

/// Checks one snapshot; damaged metadata is an error that says what to do.
pub fn check_store(store: &CookieStore) -> Result<CheckReport, Failure> {
    check(store.lmdb("check")?).map_err(|e| match e {
        Error::CorruptMetadata { problem } => Failure::Error(format!(
            "the table metadata (slot 0) is damaged, so the tables cannot be located: {problem}; \
             repair does not rebuild metadata: restore from a copy or an export"
        )),
        other => other.into(),
    })
}

/// A check report as text, appended to `text`.
pub fn report_text(report: &CheckReport, text: &mut String) {
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

pub fn run(ctx: &Ctx, a: Args) -> Outcome {
    ctx.lmdb_only(&a.path, "check")?;
    // The walk runs in a child process (this same command, `isolate::CHILD_ENV` set): damage
    // that crashes LMDB or sends it in circles ends the child, and is reported here.
    if !isolate::is_child() {
        let args: Vec<_> = std::env::args_os().skip(1).collect();
        match isolate::walk_in_child(&args, isolate::time_limit(&a.path, a.timeout)) {
            Some(Walk::Exited {
                code,
                stdout,
                stderr,
            }) => return isolate::relay(code, &stdout, &stderr),
            Some(Walk::Crashed(how)) => return Err(isolate::damaged(&a.path, "walking it", &how)),
            None => {} // no child could be started: walk here
        }
    }
    let store = ctx.open_read(&a.path)?;
    let report = check_store(&store)?;
    let mut out = stdout();
    if a.json {
        json_line(&mut out, &report)?;
    } else {
        let mut text = format!("checked {}\n", store.location());
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
