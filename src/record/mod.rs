//! The cookie record, independent of where it is stored.
//!
//! **Owns:** what a cookie value may be (`value.rs`, the one home of that rule), the record
//! and its authentication (`cookie.rs`: expiry, what an auth change does, the draw loop of a
//! new cookie), its bytes (`codec.rs`: cfxdb's FlatBuffers `Cookie`, flatc's `generated/`,
//! and `Encoded`, a record ready to write), the CBOR fields as JSON (`cbor.rs`) and read
//! straight from JSON (`transcode.rs`), the lookup path's field reader (`reader.rs`),
//! integers JSON cannot carry (`bigint.rs`), and import marks' digests (`mark.rs`).
//!
//! **May not know:** any backend (LMDB, Redis), the store, the feed, configuration. Nothing
//! here does I/O.

pub(crate) mod bigint;
pub(crate) mod cbor;
pub(crate) mod codec;
pub(crate) mod cookie;
pub(crate) mod generated;
pub(crate) mod mark;
pub(crate) mod reader;
pub(crate) mod transcode;
pub(crate) mod value;
