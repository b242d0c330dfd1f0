//! One module per command, each with its arguments (`Args`) and `run`.

pub mod check;
pub mod copy;
pub mod delete;
pub mod dump;
pub mod export;
mod format3_helper;
pub mod get;
pub mod import;
pub mod import_store;
pub mod logout;
pub mod purge;
pub mod repair;
pub mod restore;
pub mod revocations;
pub mod stats;
