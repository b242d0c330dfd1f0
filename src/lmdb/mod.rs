//! The LMDB backend.

pub(crate) mod authid;
pub(crate) mod batch;
pub(crate) mod cache;
pub(crate) mod durability;
pub(crate) mod files;
pub(crate) mod layout;
pub(crate) mod marks;
pub(crate) mod open;
pub(crate) mod pacing;
pub(crate) mod reserve;
pub(crate) mod snapshot;
pub(crate) mod tables;
