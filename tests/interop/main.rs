//! Interoperability with the real Python implementations: cfxdb 25.12.2 and zlmdb 25.12.3
//! (LMDB 0.9.33), Crossbar.io 25.12.1, and zlmdb 26.10.1 (LMDB 1.0.2).
//!
//! The Python side is `tools/interop/*.py`, run with the virtualenvs `tools/interop/setup.sh`
//! creates (`target/interop-venv`, or `$COOKIESTORE_INTEROP_VENV`, and the same path with
//! `-z26`). When `CI` is set (to anything non-empty) a missing venv fails the tests; otherwise
//! they are skipped with a message on stderr (see `common::need`).
//!
//! Records are compared as parsed JSON (the scripts' record JSON and our `Cookie`'s serde form
//! use the same field names, ns integers and uuid strings). Python's JSON is parsed here with
//! an exact number parser ([`json_exact`]): serde_json without its `float_roundtrip` feature
//! can be one ULP off.
//!
//! One module per case: [`cfxdb_writes`] (1), [`we_write`] (2), [`taking_turns`] (3),
//! [`concurrent`] (4), [`format3`] (5), [`migration`] (6); [`harness`] runs the scripts and
//! the CLI and compares records.

// A failed unwrap here (helpers included) is the test, bench or example failing.
#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;

/// `OsString` arguments from anything that is `AsRef<OsStr>`.
macro_rules! args {
    ($($a:expr),* $(,)?) => {
        [$(std::ffi::OsString::from(AsRef::<std::ffi::OsStr>::as_ref(&$a))),*]
    };
}

mod harness;
mod json_exact;

mod cfxdb_writes;
mod concurrent;
mod format3;
mod migration;
mod taking_turns;
mod we_write;
