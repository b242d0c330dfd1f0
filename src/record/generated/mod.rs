//! Rust code that flatc 25.12.19 generates from `schema/cookiestore.fbs`.
//!
//! Checked in so a fresh machine builds with cargo alone; `build.rs` fails the build when a
//! flatc of that version is present and its output differs from this copy.
#![allow(
    missing_docs,
    clippy::all,
    clippy::undocumented_unsafe_blocks,
    unsafe_op_in_unsafe_fn,
    mismatched_lifetime_syntaxes,
    clippy::unwrap_used
)]

include!("cookiestore_generated.rs");

pub use self::cookiestore::schema::*;
