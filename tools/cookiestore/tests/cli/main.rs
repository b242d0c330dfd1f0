//! The `cookiestore` command-line tool, run as a real process on real stores: one module per
//! group of commands.

// A failed unwrap here (helpers included) is the test, bench or example failing.
#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;

mod check_repair;
mod dump_restore;
mod import;
mod lifecycle;
mod manners;
mod snapshots;
mod support;
