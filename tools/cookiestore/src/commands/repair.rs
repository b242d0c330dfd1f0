//! `repair`: quarantine undecodable records, rebuild both indexes.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

use cookiestore::maintenance::repair;
use serde_json::json;

use super::check::{check_store, report_text};
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
    /// Time limit of the repair in seconds (0: none), which runs in a child process; by
    /// default 60 s plus 60 s per GiB of data.mdb.
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u64>,
}

pub fn run(ctx: &Ctx, a: Args) -> Outcome {
    let dir = ctx.lmdb_only(&a.path, "repair")?;
    // The repair runs in a child process (this same command, `isolate::CHILD_ENV` set), as
    // `check` does: damage that crashes LMDB, in the walk or in the write (LMDB trusts the
    // pages it rewrites too), ends the child and is reported here. LMDB commits a transaction
    // whole or not at all, so a crash leaves the store as it was before that transaction.
    if !isolate::is_child() {
        let args: Vec<OsString> = std::env::args_os().skip(1).collect();
        match isolate::walk_in_child(&args, isolate::time_limit(&a.path, a.timeout)) {
            Some(Walk::Exited {
                code,
                stdout,
                stderr,
            }) => return isolate::relay(code, &stdout, &stderr),
            Some(Walk::Crashed(how)) => {
                return Err(isolate::damaged(&a.path, "repairing it", &how));
            }
            None => {} // no child could be started: repair here
        }
    }
    let store = ctx.open_existing(&dir)?;
    let quarantine = store.path().unwrap_or(&dir).join("quarantine.jsonl");
    let before = check_store(&store)?;
    let done = repair(store.lmdb("repair")?, &quarantine)?;
    let after = check_store(&store)?;
    let mut out = stdout();
    if a.json {
        json_line(
            &mut out,
            &json!({
                "path": store.location().to_string(),
                "quarantine": quarantine,
                "before": before,
                "repair": done,
                "after": after,
            }),
        )?;
    } else {
        let mut text = format!("repairing {}\nbefore: ", store.location());
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
        let left = &after.problems;
        Err(Failure::Found(Some(format!(
            "{} {} after repair (listed above)",
            plural(left.len(), "problem"),
            if left.len() == 1 { "remains" } else { "remain" }
        ))))
    }
}
