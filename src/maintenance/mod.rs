//! Maintenance: checking and repairing a store, moving cookies in and out of it (JSON lines,
//! Crossbar.io's `cookies.dat`), and reading LMDB's lock file. What the `cookiestore` tool is
//! built on.

pub(crate) mod check;
pub(crate) mod legacy;
pub(crate) mod migrate;

pub use crate::lmdb::files::{ReaderSlots, reader_slots};
pub use check::{CheckReport, Problem, Quarantined, RepairReport, check, repair};
pub use legacy::{
    LegacyCookie, LegacyLine, LegacyLineError, LegacyStatus, MAX_LINE, Replay, parse_line, replay,
};
pub use migrate::{
    ExportOptions, ExportSummary, ImportOptions, ImportSummary, LegacySource, RestoreSummary,
    StoreImportSummary, decode_record, export, import_file, import_legacy, import_records,
    read_legacy, restore,
};
