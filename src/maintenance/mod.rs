//! Maintenance: checking and repairing a store, moving cookies in and out of it (JSON lines,
//! Crossbar.io's `cookies.dat`, another store's records), and reading LMDB's lock file. What
//! the `cookiestore` tool is built on.
//!
//! - `check.rs`: [`check`]; `problem.rs`: the damage it reports; `repair.rs`: [`repair`];
//! - `legacy.rs`: reading `cookies.dat`; `legacy_import.rs`: importing it;
//! - `json_lines.rs`: [`export`] and [`restore`]; `record_line.rs`: a restore's record lines;
//! - `store_import.rs`: [`import_records`], another store's records.

pub(crate) mod check;
pub(crate) mod json_lines;
pub(crate) mod legacy;
pub(crate) mod legacy_import;
pub(crate) mod problem;
pub(crate) mod record_line;
pub(crate) mod repair;
pub(crate) mod store_import;

pub use crate::lmdb::files::{ReaderSlots, reader_slots};
pub use check::{CheckReport, check};
pub use json_lines::{
    ExportOptions, ExportSummary, RestoreSummary, decode_record, export, restore,
};
pub use legacy::{
    LegacyCookie, LegacyLine, LegacyLineError, LegacyStatus, MAX_LINE, Replay, parse_line, replay,
};
pub use legacy_import::{
    ImportOptions, ImportSummary, LegacySource, import_file, import_legacy, read_legacy,
};
pub use problem::Problem;
pub use repair::{Quarantined, RepairReport, repair};
pub use store_import::{StoreImportSummary, import_records};

/// Cookies written per write transaction by imports and restores.
pub(crate) const BATCH: usize = 2_000;

/// Whether `value` can be stored (the rules of [`CookieValue`](crate::CookieValue)).
pub(crate) fn storable(value: &str) -> std::result::Result<(), String> {
    match crate::record::value::check(value)
        .err()
        .map(|p| p.to_string())
    {
        None => Ok(()),
        Some(problem) => Err(problem),
    }
}
