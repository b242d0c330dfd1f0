//! The cookie record, independent of where it is stored.

pub(crate) mod bigint;
pub(crate) mod cookie;
pub(crate) mod generated;
pub(crate) mod reader;
pub(crate) mod value;
