//! `check`: records, both indexes and metadata agree.

use std::io::Write;
use std::path::PathBuf;

use cookiestore::maintenance::{CheckReport, check};
use cookiestore::{CookieStore, Error};

use crate::Failure;
use crate::context::Ctx;
use crate::output::{Outcome, json_line, plural, stdout};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The store directory (LMDB stores only).
    pub path: PathBuf,
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Checks one snapshot; damaged metadata is an error that says what to do.
pub fn check_store(store: &CookieStore) -> Result<CheckReport, Failure> {
    check(store).map_err(|e| match e {
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
